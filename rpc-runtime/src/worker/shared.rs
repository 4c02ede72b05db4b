//! What every task of a worker shares: the broker, the mounted services
//! and their middleware, the settings, the running leases, the counters,
//! the clock, health and the lifecycle state learned from polls.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::daily_stats::DailyStats;
use super::due_hint::DueHint;
use super::idle_polls::IdlePolls;
use super::outstanding::Outstanding;
use super::pause::PausedQueues;
use super::served::Served;
use super::settings::WorkerSettings;
use super::stats::{Stats, StatsSnapshot};

use crate::backend::{Broker, Delivery};
use crate::clock::BrokerClock;
use crate::context::cancellations::Cancellations;
use crate::context::progress::ProgressBoard;
use crate::middleware::Middleware;
use crate::service::Service;
use crate::sync::lock;
use crate::telemetry::health::Health;
use crate::telemetry::{JobOutcome, WorkerMetrics, UNKNOWN};

/// The mounted services by name. Hashed with foldhash, not SipHash: a job
/// looks its queue's service up once, and SipHash of the name cost more
/// than the rest of the lookup. Only the services' own names are keys;
/// names from messages are only looked up, which no choice of name can
/// make slow.
pub(super) type Services = HashMap<&'static str, Arc<dyn Service>, foldhash::fast::RandomState>;

pub(super) struct Shared {
    pub(super) backend: Arc<dyn Broker>,
    pub(super) services: Services,
    /// Runs around every handler, the first outermost.
    pub(super) middleware: Vec<Arc<dyn Middleware>>,
    /// The queues read: every shard of every service (`served.rs`).
    pub(super) served: Served,
    pub(super) settings: WorkerSettings,
    /// Leases held by running jobs, per queue, renewed by the janitor.
    pub(super) running: Mutex<super::leases::Leases>,
    pub(super) stats: Stats,
    /// The worker's view of the broker's clock (deadlines are measured on it).
    pub(super) clock: BrokerClock,
    /// Completions in flight (a stopping worker waits for them).
    pub(super) outstanding: Arc<Outstanding>,
    /// Prometheus metrics, when a metrics address is set.
    pub(super) metrics: Option<WorkerMetrics>,
    /// Liveness and readiness marks for `/healthz` and `/readyz`.
    pub(super) health: Arc<Health>,
    /// The services paused, as last polled.
    pub(super) paused: PausedQueues,
    /// Cancelled calls learned (running jobs' contexts share them).
    pub(super) cancels: Arc<Cancellations>,
    /// The fleet's size and the polls' ages, for the idle poll's back-off.
    pub(super) idle_polls: IdlePolls,
    /// The earliest retry this worker scheduled, for the lifecycle loop.
    pub(super) due_hint: DueHint,
    /// Jobs ended per service and day, not yet added to the broker's.
    pub(super) daily: DailyStats,
    /// Progress reported by running jobs, not written yet
    /// (`progress_writer.rs`).
    pub(super) progress: Arc<ProgressBoard>,
    /// The mounted jobs' rate limits (`rate_limit.rs`).
    pub(super) rates: super::rate_book::RateBook,
    /// Per-key limits and the group slots running jobs hold
    /// (`group_limits.rs`, used by `group_admit.rs`).
    pub(super) groups: super::group_limits::GroupLimits,
    /// The priority lanes seen, per queue (`lanes.rs`).
    pub(super) lanes: super::lanes::Lanes,
}

impl Shared {
    /// Marks `queue` as having had a job taken since the lifecycle loop
    /// last looked, so the queue is busy even when that job ended before
    /// the look (jobs shorter than its 100 ms turn).
    pub(super) fn note_taken(&self, queue: &str) {
        self.served.note_taken(super::lanes::queue_of(queue));
    }

    /// Stops renewing a delivery's lease (its job is completed or given up).
    pub(super) fn forget_lease(&self, delivery: &Delivery) {
        super::leases::forget(&mut lock(&self.running), delivery);
    }

    /// Starts renewing a delivery's lease (its job is taken).
    pub(super) fn hold_lease(&self, delivery: &Delivery) {
        super::leases::hold(&mut lock(&self.running), delivery);
    }

    /// Counts a job that ended: in the counters and, when kept, the metrics.
    pub(super) fn count(&self, outcome: JobOutcome, service: &'static str, job: &'static str) {
        let s = &self.stats;
        let counter = match outcome {
            JobOutcome::succeeded => &s.succeeded,
            // `error` is a client's outcome; a worker never ends a job so.
            JobOutcome::failed | JobOutcome::unknown_job | JobOutcome::error => &s.failed,
            JobOutcome::retried => &s.retried,
            JobOutcome::dead => &s.dead_lettered,
            JobOutcome::timeout => &s.expired,
            JobOutcome::cancelled => &s.cancelled,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.daily.count(service, outcome);
        if let Some(metrics) = &self.metrics {
            metrics.job_ended(service, job, outcome);
        }
    }

    /// The mounted service's name for a queue, as a metrics label.
    pub(super) fn queue_label(&self, queue: &str) -> &'static str {
        self.queue_service(queue).map_or(UNKNOWN, |(name, _)| name)
    }

    /// The mounted service `queue` belongs to, with its name.
    pub(super) fn queue_service(&self, queue: &str) -> Option<(&'static str, &Arc<dyn Service>)> {
        self.services
            .get_key_value(rpc_protocol::shards::service_of_queue(queue))
            .map(|(name, service)| (*name, service))
    }

    /// A broker command failed.
    pub(super) fn broker_error(&self) {
        if let Some(metrics) = &self.metrics {
            metrics.broker_error();
        }
    }

    pub(super) fn snapshot(&self) -> StatsSnapshot {
        let s = &self.stats;
        StatsSnapshot {
            succeeded: s.succeeded.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            retried: s.retried.load(Ordering::Relaxed),
            dead_lettered: s.dead_lettered.load(Ordering::Relaxed),
            reclaimed: s.reclaimed.load(Ordering::Relaxed),
            expired: s.expired.load(Ordering::Relaxed),
            cancelled: s.cancelled.load(Ordering::Relaxed),
        }
    }
}
