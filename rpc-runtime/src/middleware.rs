//! Worker middleware: code that runs around every handler of a worker, to
//! read the call's metadata, refuse it with a typed error, time or log it.
//!
//! A small trait of our own rather than tower's `Layer` / `Service`: a
//! handler here is one async call that always answers (an [`Outcome`]),
//! with no readiness, backpressure or request/response types to adapt, so
//! `poll_ready` and the layer stack's type gymnastics would buy nothing
//! and cost every user a tower dependency. The shape is axum's
//! `middleware::from_fn`: a middleware gets the call's [`Context`] and
//! [`Next`], and either answers itself or runs `next`.
//!
//! ```
//! use rpc_runtime::{BoxFuture, Context, Middleware, Next, Outcome};
//!
//! /// Refuses every call that does not carry the shared token.
//! struct RequireToken(String);
//!
//! impl Middleware for RequireToken {
//!     fn handle<'a>(&'a self, ctx: Context, next: Next<'a>) -> BoxFuture<'a, Outcome> {
//!         Box::pin(async move {
//!             match ctx.metadata().get("authorization") {
//!                 Some(token) if *token == self.0 => next.run(ctx).await,
//!                 Some(_) => Outcome::unauthenticated("the token is not valid"),
//!                 None => Outcome::unauthenticated("no token"),
//!             }
//!         })
//!     }
//! }
//! ```
//!
//! Middleware runs in the order it was added to the worker, the first
//! outermost, after the worker has admitted the call (its deadline,
//! cancellation and idempotency key are checked) and before its parameters
//! are decoded. A worker without middleware calls the handler directly.

use std::sync::Arc;

use serde_json::value::RawValue;

use crate::context::Context;
use crate::service::{BoxFuture, Outcome, Service};

/// Runs around every handler of a worker (see the module docs).
pub trait Middleware: Send + Sync + 'static {
    /// Answers the call itself, or runs `next` (the rest of the chain, then
    /// the handler) and returns, or changes, its outcome.
    fn handle<'a>(&'a self, ctx: Context, next: Next<'a>) -> BoxFuture<'a, Outcome>;
}

/// The rest of a call's middleware chain, then its handler.
pub struct Next<'a> {
    service: &'a dyn Service,
    job: &'a str,
    params: &'a RawValue,
    rest: &'a [Arc<dyn Middleware>],
}

impl<'a> Next<'a> {
    /// The wire job name, without the service.
    pub fn job(&self) -> &str {
        self.job
    }

    /// The wire service name.
    pub fn service(&self) -> &'static str {
        self.service.name()
    }

    /// The call's parameters, as sent (not yet checked against the job).
    pub fn params(&self) -> &RawValue {
        self.params
    }

    /// Runs the rest of the chain and the handler.
    pub fn run(self, ctx: Context) -> BoxFuture<'a, Outcome> {
        match self.rest.split_first() {
            Some((first, rest)) => first.handle(ctx, Next { rest, ..self }),
            None => self.service.dispatch(ctx, self.job, self.params),
        }
    }
}

/// Runs `service`'s job through `chain`: the handler itself when the
/// chain is empty (the plain path pays nothing for middleware).
pub(crate) fn dispatch<'a>(
    chain: &'a [Arc<dyn Middleware>],
    service: &'a dyn Service,
    ctx: Context,
    job: &'a str,
    params: &'a RawValue,
) -> BoxFuture<'a, Outcome> {
    Next {
        service,
        job,
        params,
        rest: chain,
    }
    .run(ctx)
}
