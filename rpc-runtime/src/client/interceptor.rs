//! Client interceptors: code that runs on every outgoing call, after its
//! options are set and before its message is written, as tonic's
//! `Interceptor` does for gRPC requests. An interceptor adds metadata
//! (an auth token, a tenant, a request id) or refuses the call, which then
//! fails with [`Error::Refused`](crate::Error::Refused) and sends nothing.
//!
//! Interceptors are synchronous: they run once per call on the caller's
//! task, in the order they were added, and cost nothing when there are
//! none.
//!
//! ```no_run
//! # async fn f() -> Result<(), rpc_runtime::Error> {
//! let token = std::env::var("SERVICE_TOKEN").unwrap_or_default();
//! let client = rpc_runtime::Client::builder("redis://127.0.0.1:6379/")
//!     .interceptor(move |call: &mut rpc_runtime::Outgoing<'_>| {
//!         if token.is_empty() {
//!             return Err("no SERVICE_TOKEN set".to_owned());
//!         }
//!         call.insert_meta("authorization", token.as_str());
//!         Ok(())
//!     })
//!     .connect()
//!     .await?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use crate::call::{JobId, JobRef};

/// A call on its way out, as an [`Interceptor`] sees it.
#[derive(Debug)]
pub struct Outgoing<'a> {
    pub(crate) job: &'a JobRef,
    pub(crate) id: &'a JobId,
    pub(crate) timeout: Duration,
    pub(crate) metadata: &'a mut BTreeMap<String, String>,
}

impl Outgoing<'_> {
    /// The wire service name.
    pub fn service(&self) -> &str {
        self.job.service
    }

    /// The wire job name, without the service.
    pub fn job(&self) -> &str {
        self.job.job
    }

    /// The call id.
    pub fn id(&self) -> &JobId {
        self.id
    }

    /// How long the caller waits for the answer.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The metadata the handler will read.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        self.metadata
    }

    /// The metadata, to change.
    pub fn metadata_mut(&mut self) -> &mut BTreeMap<String, String> {
        self.metadata
    }

    /// Sets one metadata entry (replacing one of the same key).
    pub fn insert_meta(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.metadata.insert(key.into(), value.into());
    }
}

/// Runs on every outgoing call of a client; `Err(reason)` refuses it.
pub trait Interceptor: Send + Sync + 'static {
    /// Looks at (and may change the metadata of) one call.
    fn intercept(&self, call: &mut Outgoing<'_>) -> Result<(), String>;
}

impl<F> Interceptor for F
where
    F: Fn(&mut Outgoing<'_>) -> Result<(), String> + Send + Sync + 'static,
{
    fn intercept(&self, call: &mut Outgoing<'_>) -> Result<(), String> {
        self(call)
    }
}

/// A client's interceptors, run in the order they were added.
#[derive(Clone, Default)]
pub(crate) struct Interceptors(Vec<std::sync::Arc<dyn Interceptor>>);

impl Interceptors {
    pub(crate) fn push(&mut self, interceptor: impl Interceptor) {
        self.0.push(std::sync::Arc::new(interceptor));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Runs every interceptor on `call`; the first refusal's reason.
    pub(crate) fn run(&self, call: &mut Outgoing<'_>) -> Result<(), String> {
        self.0.iter().try_for_each(|i| i.intercept(call))
    }
}

impl std::fmt::Debug for Interceptors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} interceptor(s)", self.0.len())
    }
}
