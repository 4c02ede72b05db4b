//! The worker: take jobs, run them on the mounted services, reply, ack.
//!
//! Shape of a running worker:
//! * one *taker* loop that leases as many jobs as there are free slots
//!   (a semaphore bounds the jobs running at once) with one blocking read;
//! * jobs run inline on the taker up to their first wait, and a job that
//!   finished so is completed (reply + keep result + ack) in the same
//!   round trip as the taker's next read; a job that waits gets a task of
//!   its own, which completes it in one round trip of the shared connection;
//! * one *janitor* loop that renews the leases of running jobs and reclaims
//!   jobs whose lease went idle past the visibility timeout (their worker
//!   died or stalled);
//! * one *lifecycle* loop that moves due scheduled jobs and retries onto
//!   the queues and learns pauses and cancellations (`lifecycle.rs`);
//! * on Redis, one *mover* per service that moves calls from clients
//!   without `XADD` rights from the service's intake onto its stream
//!   (`intake.rs`);
//! * before a job runs, what its message asks for: a delayed call that
//!   came early goes onto the schedule, a rate-limited one waits for its
//!   turn there (`rate_limit.rs`), an idempotent one claims its key
//!   (`admit.rs`);
//! * a *heartbeat* that says every few seconds that the worker is alive
//!   and reads back an operator's quiet or stop (`heartbeat.rs`);
//! * with a metrics listener, a *probe* that asks the broker for its time
//!   when nothing else heard from it for a second, so `/readyz` knows
//!   within seconds that it went away (`probe.rs`; the checks themselves
//!   are `telemetry/health.rs`).
//!
//! Nothing a client sends can stop the worker: a message that does not parse
//! is dead-lettered with the reason, an unknown job gets an error reply, and a
//! handler's panic is caught and counted as a failed attempt.
//!
//! Shutdown (SIGTERM, ctrl-c, or the future given to [`Worker::run_until`]):
//! stop taking, let running jobs finish and ack (up to the grace period),
//! return. Jobs still running after the grace period are not acked and will be
//! reclaimed by another worker.
//!
//! `builder.rs` builds a worker, `run.rs` runs it; `shared.rs` is what its
//! tasks share; `take.rs` takes jobs, `check.rs` checks a message, `job.rs` runs one (`admit.rs` and `rate_limit.rs` first,
//! `cut_short.rs` for deadlines, cancellations and panics,
//! `requeue.rs` and `handoff.rs` for what goes back), `completion.rs`
//! writes the outcome; `leases.rs` keeps the running jobs' leases,
//! `janitor.rs` renews them and reclaims,
//! `lifecycle.rs` polls the schedule, pauses and cancellations,
//! `intake.rs` moves the intake, `periodic.rs` ticks periodic jobs,
//! `failures.rs` records each failed attempt on the broker (best effort),
//! `probe.rs` checks the broker for readiness, `daily_stats.rs` counts the
//! jobs processed and failed per day and `daily_flush.rs` adds them to the
//! broker's counters, `progress_writer.rs` writes the progress handlers
//! report (at most once per call every 200 ms).

mod admit;
mod builder;
mod check;
mod completion;
mod cut_short;
mod daily_flush;
mod daily_stats;
mod due_hint;
mod failures;
mod group_admit;
mod group_limits;
mod handoff;
mod heartbeat;
mod idle_polls;
mod intake;
mod janitor;
mod jitter;
mod job;
mod lane_take;
mod lanes;
mod leases;
mod lifecycle;
mod outstanding;
mod pause;
mod periodic;
mod periodic_check;
mod probe;
mod progress_writer;
mod rate_book;
mod rate_limit;
mod requeue;
mod run;
mod served;
mod settings;
mod shard_discovery;
mod shard_watch;
mod shared;
mod signal;
mod stats;
mod take;

pub use self::builder::WorkerBuilder;
pub use self::run::Worker;
pub use self::settings::WorkerSettings;
pub use self::signal::shutdown_signal;
pub use self::stats::StatsSnapshot;
