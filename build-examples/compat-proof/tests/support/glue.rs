//! One job of one schema version, type-erased: how that version's client
//! writes and reads it (through `Client::call_typed`, `send_typed`,
//! `send_one_way` and `pending`, as generated clients do) and how its worker
//! reads and answers it (`__private::decode` of the request type, results
//! and application errors written through the version's types, as generated
//! servers do).

use std::time::Duration;

use rpc_runtime::__private::RawValue;
use rpc_runtime::{BoxFuture, CallError, CallOptions, Client, JobId, JobRef, Never, Outcome};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// How a call went wrong, or `Ok`.
pub type Observed = Result<(), String>;

/// One job of one version, type-erased: how this version's client writes
/// and reads it, and how its worker reads and answers it.
#[derive(Clone, Copy)]
pub struct Glue {
    pub service: &'static str,
    pub job: &'static str,
    pub one_way: bool,
    pub write_params: fn(&Value) -> Option<Value>,
    pub read_params: fn(&RawValue) -> Result<(), Outcome>,
    pub write_ok: fn(&Value) -> Option<Outcome>,
    pub write_err: fn(&Value) -> Option<Outcome>,
    pub call: fn(Client, JobRef, Value) -> BoxFuture<'static, Observed>,
    pub send: fn(Client, JobRef, Value) -> BoxFuture<'static, Result<JobId, String>>,
    pub fetch: fn(Client, JobId) -> BoxFuture<'static, Observed>,
}

impl Glue {
    pub fn job_ref(&self) -> JobRef {
        JobRef {
            service: self.service,
            job: self.job,
            timeout_ms: None,
            max_attempts: None,
            shards: 1,
            priority: None,
        }
    }
}

/// A call's deadline: a call of a job no worker serves (a removed service)
/// is answered only by it, so it is what the live runs wait for that.
fn options() -> CallOptions {
    CallOptions::timeout(Duration::from_millis(1500))
}

/// A sent job's deadline: jobs are queued before the worker that serves
/// them starts (the deploy), which on a loaded machine took over 1.5 s and
/// let them expire unserved; what breaks is found by the worker's log, not
/// by this deadline.
fn send_options() -> CallOptions {
    CallOptions::timeout(Duration::from_secs(60))
}

fn write_params<R: Serialize + DeserializeOwned>(value: &Value) -> Option<Value> {
    let request: R = serde_json::from_value(value.clone()).ok()?;
    serde_json::to_value(request).ok()
}

fn read_params<R: DeserializeOwned>(params: &RawValue) -> Result<(), Outcome> {
    rpc_runtime::__private::decode::<R>(params).map(|_| ())
}

fn write_ok<T: Serialize + DeserializeOwned>(value: &Value) -> Option<Outcome> {
    let ok: T = serde_json::from_value(value.clone()).ok()?;
    Some(Outcome::Ok(serde_json::to_string(&ok).ok()?))
}

fn write_err<E: Serialize + DeserializeOwned>(value: &Value) -> Option<Outcome> {
    let err: E = serde_json::from_value(value.clone()).ok()?;
    Some(Outcome::App(serde_json::to_string(&err).ok()?))
}

fn call<T: DeserializeOwned + Send + 'static, E: DeserializeOwned + Send + 'static>(
    client: Client,
    job: JobRef,
    params: Value,
) -> BoxFuture<'static, Observed> {
    Box::pin(async move {
        match rpc_runtime::__private::call::<T, E, _>(&client, job, params)
            .options(options())
            .await
        {
            Ok(_) | Err(CallError::App(_)) => Ok(()),
            Err(CallError::Rpc(err)) => Err(err.to_string()),
        }
    })
}

fn send<T: DeserializeOwned + Send + 'static, E: DeserializeOwned + Send + 'static>(
    client: Client,
    job: JobRef,
    params: Value,
) -> BoxFuture<'static, Result<JobId, String>> {
    Box::pin(async move {
        let options = CallOptions {
            result_ttl: Some(Duration::from_secs(60)),
            ..send_options()
        };
        rpc_runtime::__private::call::<T, E, _>(&client, job, params)
            .options(options)
            .send()
            .await
            .map(|pending| pending.id().clone())
            .map_err(|e| e.to_string())
    })
}

fn fetch<T: DeserializeOwned + Send + 'static, E: DeserializeOwned + Send + 'static>(
    client: Client,
    id: JobId,
) -> BoxFuture<'static, Observed> {
    Box::pin(async move {
        match client.attach::<T, E>(id).await {
            Ok(_) | Err(CallError::App(_)) => Ok(()),
            Err(CallError::Rpc(err)) => Err(err.to_string()),
        }
    })
}

fn send_one_way(
    client: Client,
    job: JobRef,
    params: Value,
) -> BoxFuture<'static, Result<JobId, String>> {
    Box::pin(async move {
        rpc_runtime::__private::one_way(&client, job, params)
            .options(send_options())
            .await
            .map_err(|e| e.to_string())
    })
}

fn not_called(_: Client, _: JobRef, _: Value) -> BoxFuture<'static, Observed> {
    Box::pin(async { Err("one-way jobs are sent, not called".to_string()) })
}

fn not_fetched(_: Client, _: JobId) -> BoxFuture<'static, Observed> {
    Box::pin(async { Err("one-way jobs keep no result".to_string()) })
}

/// A job that answers `T` or fails with `E` (`Never` for none).
pub fn answering<Req, T, E>(service: &'static str, job: &'static str) -> Glue
where
    Req: Serialize + DeserializeOwned,
    T: Serialize + DeserializeOwned + Send + 'static,
    E: Serialize + DeserializeOwned + Send + 'static,
{
    Glue {
        service,
        job,
        one_way: false,
        write_params: write_params::<Req>,
        read_params: read_params::<Req>,
        write_ok: write_ok::<T>,
        write_err: write_err::<E>,
        call: call::<T, E>,
        send: send::<T, E>,
        fetch: fetch::<T, E>,
    }
}

/// A one-way job.
pub fn one_way<Req: Serialize + DeserializeOwned>(
    service: &'static str,
    job: &'static str,
) -> Glue {
    Glue {
        service,
        job,
        one_way: true,
        write_params: write_params::<Req>,
        read_params: read_params::<Req>,
        write_ok: write_ok::<()>,
        write_err: write_err::<Never>,
        call: not_called,
        send: send_one_way,
        fetch: not_fetched,
    }
}
