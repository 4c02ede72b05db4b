//! The untyped path's names: `Service.job` strings turned into the
//! `JobRef`s the typed machinery wants, and application errors as plain
//! runtime errors.

use std::sync::Mutex;

use super::call::{Answered, Call, OneWayCall};
use super::handle::Client;
use super::reply::{decode_reply, label};

use crate::call::{CallOptions, JobId, JobRef};
use crate::error::{CallError, Error, ErrorKind};
use crate::sync::lock;

/// The `JobRef` of an untyped call to `Service.job`.
pub(super) fn untyped_ref(job: &str) -> Result<JobRef, Error> {
    let (service, name) = split_job(job)?;
    // Untyped calls name jobs at run time; JobRef wants 'static names.
    // Leaking per call would grow without bound, so intern them.
    Ok(JobRef {
        service: intern(service),
        job: intern(name),
        timeout_ms: None,
        max_attempts: None,
        shards: 1,
        priority: None,
    })
}

/// An untyped call's application error, as the runtime error that carries it.
pub(super) fn untyped_error(job: &str, e: CallError<serde_json::Value>) -> Error {
    match e {
        CallError::Rpc(e) => e,
        CallError::App(data) => Error::Remote {
            job: job.to_owned(),
            kind: ErrorKind::App,
            message: "the job returned its application error".to_owned(),
            data: Some(data),
        },
    }
}

pub(super) fn split_job(job: &str) -> Result<(&str, &str), Error> {
    match job.split_once('.') {
        // `S~k` names shard k of service S, never a service of its own.
        Some((service, _)) if service.contains(rpc_protocol::shards::SEPARATOR) => {
            Err(Error::config(format_args!(
                "cannot route job `{job}`: a service name has no `{}` (`S~k` is a shard of `S`)",
                rpc_protocol::shards::SEPARATOR
            )))
        }
        // `Q^p` names lane p of queue Q (rpc_protocol::priority).
        Some((service, _)) if service.contains(rpc_protocol::priority::LANE_SEPARATOR) => {
            Err(Error::config(format_args!(
                "cannot route job `{job}`: a service name has no `{}` (a call's priority is an option: `priority`)",
                rpc_protocol::priority::LANE_SEPARATOR
            )))
        }
        Some((service, name)) if !service.is_empty() && !name.is_empty() => Ok((service, name)),
        _ => Err(Error::config(format_args!(
            "cannot route job `{job}`: job names are `Service.job`"
        ))),
    }
}

pub(super) fn intern(s: &str) -> &'static str {
    static NAMES: std::sync::OnceLock<Mutex<std::collections::HashSet<&'static str>>> =
        std::sync::OnceLock::new();
    let mut names = lock(NAMES.get_or_init(Default::default));
    if let Some(n) = names.get(s) {
        return n;
    }
    let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

/// The answer to an untyped [`Client::call_and_wait`]: the old library's
/// `Response { data, id, response_key }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// What the job returned.
    pub data: serde_json::Value,
    /// The call id.
    pub id: JobId,
    /// The key under which the result is kept (while its TTL lasts, when the
    /// call asked for it to be kept).
    pub response_key: String,
}

impl Client {
    /// A call of `job` (`Service.job`) with `data`: `.await` sends it and
    /// waits for the answer (options go on the [`Call`] first; `.send()`
    /// gives a [`Pending`] handle instead).
    ///
    /// ```no_run
    /// # async fn f(client: rpc_runtime::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let sum = client.call("Calculator.add", serde_json::json!({"a": 1, "b": 2})).await?;
    /// assert_eq!(sum, 3);
    /// # Ok(()) }
    /// ```
    pub fn call(
        &self,
        job: &str,
        data: serde_json::Value,
    ) -> Call<serde_json::Value, serde_json::Value> {
        Call::new(self, untyped_ref(job), data)
    }

    /// A one-way send of `job` with `data`: `.await` returns its id once it
    /// is queued, and nothing waits for an answer (the old library's
    /// `call(name, data)`).
    pub fn send(&self, job: &str, data: serde_json::Value) -> OneWayCall {
        Call::new(self, untyped_ref(job), data)
    }

    /// Calls `job` with `data` and waits for the answer, as the old
    /// library's `call_and_wait` did: the answer's `data`, with the call's
    /// `id` and the `response_key` its result is kept under (see
    /// [`Call::response`], which takes options).
    pub async fn call_and_wait(
        &self,
        job: &str,
        data: serde_json::Value,
    ) -> Result<Response, Error> {
        self.call(job, data).response().await
    }

    /// What [`Call::response`] runs.
    pub(super) async fn respond(
        &self,
        job: JobRef,
        data: &(dyn rpc_protocol::WriteParams + Send + Sync),
        options: &CallOptions,
    ) -> Result<Response, Error> {
        let observed = self.observe(&job, options);
        let answer = match self.call_raw(&job, data, options, true, &observed).await {
            Ok(answer) => Ok(answer),
            Err(e) => Err(CallError::Rpc(
                Box::pin(self.explain(Some(job.service), e)).await,
            )),
        };
        let answer = answer.and_then(|(id, body)| {
            decode_reply::<serde_json::Value, serde_json::Value>(label(&job), &body)
                .map(|data| (id, data))
        });
        self.observed(observed, &job, &answer);
        let name = label(&job).to_string();
        let (id, data) = answer.map_err(|e| untyped_error(&name, e))?;
        let response_key = self.inner.backend.result_name(id.as_str());
        Ok(Response {
            data,
            id,
            response_key,
        })
    }
}

impl Call<serde_json::Value, serde_json::Value, Answered> {
    /// Sends the call and waits for the answer in the old library's shape:
    /// its `data`, with the call's `id` and the `response_key` its result
    /// is kept under. An application error is an [`Error::Remote`] of kind
    /// `app` carrying the error value.
    pub async fn response(self) -> Result<Response, Error> {
        let parts = self.parts()?;
        parts
            .client
            .respond(parts.job, &*parts.params, parts.options())
            .await
    }
}
