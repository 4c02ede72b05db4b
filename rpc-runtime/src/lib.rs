//! Runtime for typed RPC over Redis queues.
//!
//! Schema files (`*.rpc`) are turned into Rust by `rpc-codegen`; the generated
//! code calls into this crate. This crate carries the calls: a [`Client`]
//! sends job messages and routes replies back to waiting calls, a [`Worker`]
//! takes jobs, runs them on mounted [`Service`]s and replies. Between them is
//! a broker behind the [`backend::Broker`] traits: Redis Streams in
//! production, an in-process queue (`memory://`) for tests and demos.
//!
//! The untyped path by job name stays available for scripts, tools and other
//! languages ([`Client::call`], [`Client::send`], [`Client::call_and_wait`],
//! [`DynamicService`]); the wire format is in `docs/PROTOCOL.md`.
//!
//! # The modules, lowest layer first
//!
//! A module imports only from its own layer and those below, and no two
//! modules import each other, directly or through others (checked by
//! `tests/module_graph.rs`):
//!
//! 1. `sync` (the lock helper), `bytes`, `error`, `telemetry::propagation`
//!    (W3C trace context): leaves.
//! 2. `call` (call ids, options, job descriptions), `context` (what a
//!    handler knows of its call; cancellation), `periodic` (periodic job
//!    definitions and their stored state).
//! 3. `backend`: the broker seam, as capability traits (`Queue`,
//!    `Schedule`, `Control`, `Inspection`) with Redis (`backend/redis/`) and
//!    in-process (`backend/memory/`) brokers behind them.
//! 4. `clock` (the broker's clock), `inspect` (the operator's read-only
//!    view), `service` (what a worker runs), `middleware` (what runs around
//!    it).
//! 5. `client` (calls: the builder, routing replies, pending handles,
//!    interceptors) and `telemetry` (spans, metrics, health, the metrics
//!    listener).
//! 6. `worker`: takes jobs, admits, runs and completes them, and the
//!    lifecycle loops (schedule, pause, cancellations, periodic ticks).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rpc_runtime::Error> {
//! use rpc_runtime::{Client, DynamicService, Worker};
//! use serde_json::json;
//!
//! let worker = Worker::builder("memory://doc")
//!     .mount(DynamicService::new("Math").job("add", |req| async move {
//!         let (a, b) = (req.data["a"].as_i64().unwrap_or(0), req.data["b"].as_i64().unwrap_or(0));
//!         req.respond(json!(a + b))
//!     }))
//!     .build()
//!     .await?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let running = tokio::spawn(worker.run_until(async { let _ = stopped.await; }));
//!
//! let client = Client::connect("memory://doc").await?;
//! let response = client.call_and_wait("Math.add", json!({"a": 2, "b": 3})).await?;
//! assert_eq!(response.data, json!(5));
//!
//! let _ = stop.send(());
//! running.await.expect("worker task")?;
//! # Ok(()) }
//! ```

pub mod backend;
mod bytes;
mod call;
mod client;
mod clock;
mod context;
mod error;
pub mod inspect;
mod job_schemas;
mod middleware;
pub mod periodic;
mod service;
mod sync;
pub mod telemetry;
mod worker;

/// The protocol every implementation agrees on (keys, envelopes, limits,
/// scripts): the `rpc-protocol` crate.
pub use rpc_protocol as protocol;

pub use backend::{Cancelled, Enqueue};
pub use bytes::Bytes;
/// How a generated client names a job; only generated code needs it.
#[doc(hidden)]
pub use call::JobRef;
pub use call::{CallOptions, JobId, JobInfo, JobSchema};
pub use client::{
    Answered, Batch, BatchError, Call, Client, ClientBuilder, Interceptor, OneWay, OneWayBatch,
    OneWayCall, Outgoing, Pending, ProgressUpdate, ProgressWatch, Response, Sent,
};
pub use context::progress::{BadProgress, Progress};
pub use context::Context;
pub use error::{
    CallError, Error, ErrorKind, HandlerError, JobError, Never, TimeoutCause, TimeoutDiagnosis,
};
pub use inspect::Inspector;
pub use middleware::{Middleware, Next};
pub use periodic::{MissedTicks, Periodic};
pub use rpc_protocol::rate::{RateError, RateLimit};
pub use rpc_protocol::{Backoff, ParseBackoffError};
pub use service::{BoxFuture, DynamicService, Outcome, Request, Service};
pub use worker::{shutdown_signal, StatsSnapshot, Worker, WorkerBuilder, WorkerSettings};

/// Pulls in the module generated for a schema file by `rpc-codegen` in `build.rs`.
///
/// `rpc_runtime::include_schema!("calculator");` expands to the generated
/// `pub mod calculator { ... }` from `$OUT_DIR/calculator.rs`.
#[macro_export]
macro_rules! include_schema {
    ($name:literal) => {
        include!(concat!(env!("OUT_DIR"), "/", $name, ".rs"));
    };
}

/// Items generated code uses. Not a stable API for anything else.
#[doc(hidden)]
pub mod __private {
    pub use serde;
    pub use serde_json;
    pub use serde_json::value::RawValue;

    pub use crate::service::BoxFuture;
    use crate::service::Outcome;
    use crate::{HandlerError, JobError};

    /// Decodes a typed job's parameters, or the outcome that says why they
    /// do not fit. They are one JSON object keyed by parameter name; serde's
    /// derive would also read them from an array in declaration order.
    pub fn decode<T: serde::de::DeserializeOwned>(params: &RawValue) -> Result<T, Outcome> {
        if !rpc_protocol::job::is_json_object(params.get().as_bytes()) {
            return Err(Outcome::bad_request(
                "the parameters must be a JSON object keyed by parameter name",
            ));
        }
        crate::service::decode(params)
    }

    /// The outcome of a plain or one-way job.
    pub fn finish<T: serde::Serialize>(result: Result<T, HandlerError>) -> Outcome {
        crate::service::finish(result)
    }

    /// The outcome of a `Result<T, E>` job.
    pub fn finish_app<T: serde::Serialize, E: serde::Serialize>(
        result: Result<T, JobError<E>>,
    ) -> Outcome {
        crate::service::finish_app(result)
    }

    /// A call of `job` (a job that answers) with `params`, through
    /// `client`: what a generated client's job method returns.
    pub fn call<T, E, P: serde::Serialize + Send + Sync + 'static>(
        client: &crate::Client,
        job: crate::JobRef,
        params: P,
    ) -> crate::Call<T, E> {
        crate::Call::new(client, Ok(job), params)
    }

    /// A call of the one-way `job` with `params`, through `client`.
    pub fn one_way<P: serde::Serialize + Send + Sync + 'static>(
        client: &crate::Client,
        job: crate::JobRef,
        params: P,
    ) -> crate::OneWayCall {
        crate::Call::new(client, Ok(job), params)
    }

    /// A module's job schemas from the packed JSON text rpc-codegen
    /// embedded in it: the documents `rpc-codegen json-schema` prints.
    pub fn job_schemas(text: &str) -> Vec<crate::JobSchema> {
        crate::job_schemas::unpack(text)
    }
}
