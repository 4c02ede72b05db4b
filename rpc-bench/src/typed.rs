//! The typed side of the bench, written by hand the way `rpc-codegen` would
//! emit it for this schema (see `docs/GENERATED-API.md`):
//!
//! ```text
//! service Bench {
//!     fn add(a: i64, b: i64) -> i64;
//!     fn note(n: u64);
//! }
//! ```
//!
//! The bench does not depend on the code generator so that a change there
//! cannot silently change what is measured; the shapes are the same (request
//! structs, a `JobRef` constant per job, `__private::call` / `one_way`
//! returning a `Call` that is awaited, and a `Service` impl that decodes with `__private::decode` and answers with
//! `__private::finish`).

use std::future::Future;

use rpc_runtime::__private::{self, BoxFuture, RawValue};
use rpc_runtime::{
    Call, Client, Context, HandlerError, JobInfo, JobRef, OneWayCall, Outcome, Service,
};
use serde::{Deserialize, Serialize};

/// Parameters of `Bench.add`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchAddRequest {
    pub a: i64,
    pub b: i64,
}

/// Parameters of `Bench.note` (one-way).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchNoteRequest {
    pub n: u64,
}

const ADD: JobRef = JobRef {
    service: "Bench",
    job: "add",
    timeout_ms: None,
    max_attempts: None,
    shards: 1,
    priority: None,
};

const NOTE: JobRef = JobRef {
    service: "Bench",
    job: "note",
    timeout_ms: None,
    max_attempts: None,
    shards: 1,
    priority: None,
};

/// The handler trait a worker implements.
pub trait Bench: Send + Sync + 'static {
    fn add(
        &self,
        ctx: Context,
        a: i64,
        b: i64,
    ) -> impl Future<Output = Result<i64, HandlerError>> + Send;
    fn note(&self, ctx: Context, n: u64) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// Mounts a [`Bench`] handler on a worker.
pub struct BenchServer<H>(H);

impl<H: Bench> BenchServer<H> {
    pub fn new(handler: H) -> Self {
        BenchServer(handler)
    }
}

impl<H: Bench> Service for BenchServer<H> {
    fn name(&self) -> &'static str {
        "Bench"
    }

    fn jobs(&self) -> &'static [JobInfo] {
        &[
            JobInfo {
                name: "add",
                one_way: false,
                timeout_ms: None,
                max_attempts: None,
                deprecated: false,
                backoff: None,
                rate: None,
                group_limit: None,
                priority: None,
            },
            JobInfo {
                name: "note",
                one_way: true,
                timeout_ms: None,
                max_attempts: None,
                deprecated: false,
                backoff: None,
                rate: None,
                group_limit: None,
                priority: None,
            },
        ]
    }

    fn dispatch<'a>(
        &'a self,
        ctx: Context,
        job: &'a str,
        params: &'a RawValue,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            match job {
                "add" => {
                    let req: BenchAddRequest = match __private::decode(params) {
                        Ok(req) => req,
                        Err(outcome) => return outcome,
                    };
                    __private::finish(self.0.add(ctx, req.a, req.b).await)
                }
                "note" => {
                    let req: BenchNoteRequest = match __private::decode(params) {
                        Ok(req) => req,
                        Err(outcome) => return outcome,
                    };
                    __private::finish(self.0.note(ctx, req.n).await)
                }
                other => Outcome::unknown_job(other),
            }
        })
    }
}

/// The typed client.
#[derive(Clone, Debug)]
pub struct BenchClient {
    client: Client,
}

impl BenchClient {
    pub fn new(client: Client) -> Self {
        BenchClient { client }
    }

    /// A call of `add`: awaited, it waits for the answer.
    pub fn add(&self, a: i64, b: i64) -> Call<i64> {
        __private::call(&self.client, ADD, BenchAddRequest { a, b })
    }

    /// A one-way send of `note`: awaited, it returns once enqueued.
    pub fn note(&self, n: u64) -> OneWayCall {
        __private::one_way(&self.client, NOTE, BenchNoteRequest { n })
    }
}

/// The handler the bench worker runs: the same arithmetic as the floor's.
pub struct Adder;

impl Bench for Adder {
    async fn add(&self, _ctx: Context, a: i64, b: i64) -> Result<i64, HandlerError> {
        Ok(a.wrapping_add(b))
    }

    async fn note(&self, _ctx: Context, _n: u64) -> Result<(), HandlerError> {
        Ok(())
    }
}

/// The queue key the typed jobs land on (for the bench's drain check).
pub fn jobs_key() -> String {
    rpc_runtime::protocol::Keys::new("rpc").jobs("Bench")
}

/// The typed worker process (`worker --kind typed`): [`Adder`] mounted,
/// serving metrics on a free port with `--telemetry`, and the rate limits
/// of `RPC_BENCH_RATE_LIMITS` if set (limits that never bite measure what
/// a rate-limited job costs: every start asks, none waits).
pub async fn run_worker(url: &str, concurrency: usize, telemetry: bool) -> Result<(), String> {
    let mut builder = rpc_runtime::Worker::builder(url)
        .mount(BenchServer::new(Adder))
        .concurrency(concurrency);
    if telemetry {
        builder = builder.metrics_addr(([127, 0, 0, 1], 0).into());
    }
    if let Ok(spec) = std::env::var("RPC_BENCH_RATE_LIMITS") {
        builder = builder
            .rate_limits(&spec)
            .map_err(|e| format!("typed worker: {e}"))?;
    }
    let worker = builder
        .build()
        .await
        .map_err(|e| format!("typed worker: {e}"))?;
    println!("ready");
    worker
        .run()
        .await
        .map(drop)
        .map_err(|e| format!("typed worker: {e}"))
}
