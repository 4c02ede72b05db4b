//! Periodic jobs: a job a worker enqueues on a schedule, a cron expression
//! or an interval, given to the worker with [`WorkerBuilder::periodic`].
//!
//! Every worker that is given a periodic job computes the same tick times
//! (intervals are aligned to the Unix epoch, cron instants are in UTC) on
//! the broker's clock, and offers each tick to the broker under a
//! deterministic id, `periodic:<name>:<tick ms>`. The broker enqueues a tick
//! only if it is newer than the last one enqueued, atomically (a Lua script
//! on Redis), so with N workers each tick runs once. What happens to ticks
//! that passed while every worker was down is the job's [`MissedTicks`]
//! policy. `docs/PROTOCOL.md`, "Periodic jobs", has the keys and the script.
//!
//! A tick is an ordinary one-way job message (no `reply_to`), with `meta`
//! `periodic` = the periodic job's name, so the handler is an ordinary job
//! handler; it must belong to a service mounted on the same worker.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rpc_runtime::Error> {
//! use std::time::Duration;
//! use rpc_runtime::{DynamicService, MissedTicks, Periodic, Worker};
//! use serde_json::json;
//!
//! let files = DynamicService::new("Files").job("sweep", |req| async move {
//!     // req.context.meta()["periodic"] == "sweep-tmp"
//!     req.respond(json!(null))
//! });
//! let worker = Worker::builder("memory://periodic-doc")
//!     .mount(files)
//!     // At second 0 of every fifth minute, UTC; a run missed while no
//!     // worker was up is made up for once when one starts.
//!     .periodic(Periodic::cron("sweep-tmp", "0 */5 * * * *", "Files.sweep", json!({})))
//!     // Every 30 s (at :00 and :30), missed ticks skipped.
//!     .periodic(
//!         Periodic::every("heartbeat", Duration::from_secs(30), "Files.sweep", json!({"dry": true}))
//!             .missed(MissedTicks::Skip)
//!             .timeout(Duration::from_secs(10)),
//!     )
//!     .build()
//!     .await?;
//! # drop(worker);
//! # Ok(()) }
//! ```
//!
//! [`WorkerBuilder::periodic`]: crate::WorkerBuilder::periodic

mod schedule;
pub(crate) mod stored;

use std::time::Duration;

pub(crate) use self::schedule::Schedule;
pub use self::stored::PeriodicState;

/// Names are 1 to this many characters of `A-Z a-z 0-9 _ - .`.
pub const MAX_NAME_LEN: usize = 128;
/// The shortest interval [`Periodic::every`] takes.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// A run's timeout when neither [`Periodic::timeout`] nor the job's
/// `#[timeout_ms]` sets one (the client's default call timeout).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

pub use rpc_protocol::periodic::{tick_id, MissedTicks};

/// A job to enqueue on a schedule; give it to
/// [`WorkerBuilder::periodic`](crate::WorkerBuilder::periodic). Nothing is
/// checked until [`WorkerBuilder::build`](crate::WorkerBuilder::build),
/// which refuses, with the reason, a name that is not 1 to
/// [`MAX_NAME_LEN`] characters of `A-Z a-z 0-9 _ - .` or is given twice, a
/// cron expression croner cannot read (or that never fires), an interval
/// under [`MIN_INTERVAL`], a job not served by a service mounted on that
/// worker, and parameters that are not a JSON object.
#[derive(Debug, Clone)]
pub struct Periodic {
    pub(crate) name: String,
    pub(crate) schedule: Spec,
    pub(crate) job: String,
    pub(crate) params: serde_json::Value,
    pub(crate) missed: MissedTicks,
    pub(crate) timeout: Option<Duration>,
}

/// When a periodic job fires, as given.
#[derive(Debug, Clone)]
pub(crate) enum Spec {
    Cron(String),
    Every(Duration),
}

impl Periodic {
    /// Enqueues `job` (`Service.job`) with `params` at the instants of a
    /// cron expression, in UTC: five fields (`min hour dom month dow`), or
    /// six with seconds first, as the `croner` crate reads them (`@daily`,
    /// `L`, `W`, `#` too).
    pub fn cron(
        name: impl Into<String>,
        expression: impl Into<String>,
        job: impl Into<String>,
        params: serde_json::Value,
    ) -> Periodic {
        Periodic::new(name, Spec::Cron(expression.into()), job, params)
    }

    /// Enqueues `job` (`Service.job`) with `params` every `interval` (whole
    /// milliseconds), at the multiples of `interval` since the Unix epoch:
    /// every 10 minutes is at :00, :10, :20, whenever the workers started.
    pub fn every(
        name: impl Into<String>,
        interval: Duration,
        job: impl Into<String>,
        params: serde_json::Value,
    ) -> Periodic {
        Periodic::new(name, Spec::Every(interval), job, params)
    }

    fn new(
        name: impl Into<String>,
        schedule: Spec,
        job: impl Into<String>,
        params: serde_json::Value,
    ) -> Periodic {
        Periodic {
            name: name.into(),
            schedule,
            job: job.into(),
            params,
            missed: MissedTicks::default(),
            timeout: None,
        }
    }

    /// What to do about ticks missed while no worker ran (default
    /// [`MissedTicks::RunOnce`]).
    pub fn missed(mut self, policy: MissedTicks) -> Periodic {
        self.missed = policy;
        self
    }

    /// Each run's timeout, measured from when the tick is enqueued: a run
    /// no worker starts within it expires unrun (default: the job's
    /// `#[timeout_ms]`, else [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Periodic {
        self.timeout = Some(timeout);
        self
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Whether `name` can name a periodic job: 1 to [`MAX_NAME_LEN`]
/// characters of `A-Z a-z 0-9 _ - .`.
pub fn is_periodic_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}
