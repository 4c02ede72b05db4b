//! A worker's counters, and their snapshot: the same events as the
//! `outcome` label of `rpc_worker_jobs_total` (`telemetry::JobOutcome`),
//! without service or job. `failed` also counts `unknown_job`;
//! `dead_lettered` is the outcome `dead`, `expired` the outcome `timeout`.

use std::sync::atomic::AtomicU64;

/// Counters a worker keeps (see [`Worker::stats`]).
#[derive(Debug, Default)]
pub struct Stats {
    /// Jobs completed with a result.
    pub succeeded: AtomicU64,
    /// Jobs answered with an error (application, handler, unknown job, ...).
    pub failed: AtomicU64,
    /// Jobs put back for another attempt.
    pub retried: AtomicU64,
    /// Jobs moved to the dead-letter stream.
    pub dead_lettered: AtomicU64,
    /// Jobs taken over from another (dead or stalled) worker.
    pub reclaimed: AtomicU64,
    /// Jobs skipped because their deadline had passed.
    pub expired: AtomicU64,
    /// Jobs cancelled before or while they ran.
    pub cancelled: AtomicU64,
}

/// A snapshot of a worker's counters (see [`Worker::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Jobs completed with a result.
    pub succeeded: u64,
    /// Jobs answered with an error (application, handler, unknown job, ...).
    pub failed: u64,
    /// Jobs put back for another attempt.
    pub retried: u64,
    /// Jobs moved to the dead-letter stream.
    pub dead_lettered: u64,
    /// Jobs taken over from another (dead or stalled) worker.
    pub reclaimed: u64,
    /// Jobs skipped because their deadline had passed.
    pub expired: u64,
    /// Jobs cancelled before or while they ran.
    pub cancelled: u64,
}
