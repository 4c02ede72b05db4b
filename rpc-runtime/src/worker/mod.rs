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
//!   came early goes onto the schedule, an idempotent one claims its key
//!   (`admit.rs`);
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

mod admit;
mod completion;
mod handoff;
mod intake;
mod janitor;
mod jitter;
mod job;
mod lifecycle;
mod pause;
mod periodic;
mod probe;
mod requeue;
mod take;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use self::completion::Outstanding;
use self::janitor::{janitor_loop, liveness_window};
use self::lifecycle::{DueHint, Lifecycle};
use self::pause::PausedQueues;
use self::probe::probe_loop;
use self::take::take_loop;
use crate::backend::{self, Broker, BrokerConfig, Delivery};
use crate::clock::BrokerClock;
use crate::context::cancellations::Cancellations;
use crate::error::Error;
use crate::middleware::Middleware;
use crate::service::Service;
use crate::sync::lock;
use crate::telemetry::health::Health;
use crate::telemetry::listener::{self, Exposition};
use crate::telemetry::{JobOutcome, WorkerMetrics, UNKNOWN};
use rpc_protocol::Backoff;

/// Builds a [`Worker`].
pub struct WorkerBuilder {
    broker: BrokerConfig,
    services: Vec<Arc<dyn Service>>,
    middleware: Vec<Arc<dyn Middleware>>,
    settings: WorkerSettings,
    metrics_addr: Option<SocketAddr>,
    /// Jobs to enqueue on a schedule (`worker/periodic.rs`).
    periodic: Vec<crate::periodic::Periodic>,
}

/// Tunables of a worker.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Jobs run at once (default 64).
    pub concurrency: usize,
    /// How long a job's lease may go without renewal before another worker
    /// takes the job over (default 30 s).
    pub visibility_timeout: Duration,
    /// Attempt limit for jobs whose message and schema set none (default 3).
    pub max_attempts: u32,
    /// How long shutdown waits for running jobs (default 30 s).
    pub shutdown_grace: Duration,
    /// Consumer name in the group (default: host-pid-random).
    pub consumer: String,
    /// How long a caller's inbox lives after a reply is pushed to it
    /// (default 60 s): a client that died with calls in flight leaves an
    /// inbox that expires after this.
    pub inbox_ttl: Duration,
    /// Largest job message the worker runs, in bytes (default 16 MiB);
    /// larger ones are dead-lettered unread.
    pub max_message_bytes: usize,
    /// At start, consumers of the worker's groups idle this long with no
    /// leases are removed from the broker (default 24 h): every worker
    /// process joins under a fresh name, so dead ones would otherwise pile up.
    pub forget_consumers_after: Duration,
    /// The retry policy of jobs whose schema sets none (default
    /// [`Backoff::DEFAULT`], exponential from 100 ms to 30 s with jitter).
    pub backoff: Backoff,
    /// How long a cancelled job's handler may run on after the
    /// cancellation before its future is dropped (default 5 s).
    pub cancel_grace: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            concurrency: 64,
            visibility_timeout: Duration::from_secs(30),
            max_attempts: 3,
            shutdown_grace: Duration::from_secs(30),
            consumer: default_consumer_name(),
            inbox_ttl: rpc_protocol::limits::DEFAULT_INBOX_TTL,
            max_message_bytes: 16 * 1024 * 1024,
            forget_consumers_after: Duration::from_secs(24 * 60 * 60),
            backoff: Backoff::DEFAULT,
            cancel_grace: Duration::from_secs(5),
        }
    }
}

fn default_consumer_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".to_owned());
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &rand[..8])
}

impl WorkerBuilder {
    /// A worker for the broker at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        WorkerBuilder {
            broker: BrokerConfig::new(url),
            services: Vec::new(),
            middleware: Vec::new(),
            settings: WorkerSettings::default(),
            metrics_addr: None,
            periodic: Vec::new(),
        }
    }

    /// Enqueues a job on a schedule (see [`crate::Periodic`]): every worker
    /// given the same periodic job offers each tick, and the broker
    /// enqueues it once. Its job must belong to a service mounted here;
    /// [`WorkerBuilder::build`] refuses it otherwise, or when the definition
    /// is invalid, with the reason.
    pub fn periodic(mut self, job: crate::periodic::Periodic) -> Self {
        self.periodic.push(job);
        self
    }

    /// Serves Prometheus metrics (`/metrics`), `/healthz` and `/readyz`
    /// over HTTP on `addr` (port 0: any free port, see
    /// [`Worker::metrics_addr`]). Off unless set; with it off the worker
    /// keeps no metrics. [`WorkerBuilder::build`] fails if the address
    /// cannot be bound.
    pub fn metrics_addr(mut self, addr: SocketAddr) -> Self {
        self.metrics_addr = Some(addr);
        self
    }

    /// Key prefix (default `rpc`); clients and workers must agree.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.broker.prefix = prefix.into();
        self
    }

    /// Mounts a service (a generated `<Service>Server` or a [`crate::DynamicService`]).
    pub fn mount(mut self, service: impl Service) -> Self {
        self.services.push(Arc::new(service));
        self
    }

    /// Runs `middleware` around every handler of this worker, inside the
    /// middleware added before it (see [`Middleware`]): to check a token,
    /// refuse a call, time or log it.
    pub fn middleware(mut self, middleware: impl Middleware) -> Self {
        self.middleware.push(Arc::new(middleware));
        self
    }

    /// Jobs run at once.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.settings.concurrency = n.max(1);
        self
    }

    /// See [`WorkerSettings::visibility_timeout`].
    pub fn visibility_timeout(mut self, t: Duration) -> Self {
        self.settings.visibility_timeout = t;
        self
    }

    /// See [`WorkerSettings::max_attempts`].
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.settings.max_attempts = n.max(1);
        self
    }

    /// See [`WorkerSettings::shutdown_grace`].
    pub fn shutdown_grace(mut self, t: Duration) -> Self {
        self.settings.shutdown_grace = t;
        self
    }

    /// See [`WorkerSettings::consumer`].
    pub fn consumer_name(mut self, name: impl Into<String>) -> Self {
        self.settings.consumer = name.into();
        self
    }

    /// See [`WorkerSettings::inbox_ttl`].
    pub fn inbox_ttl(mut self, t: Duration) -> Self {
        self.settings.inbox_ttl = t;
        self
    }

    /// See [`WorkerSettings::max_message_bytes`].
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.settings.max_message_bytes = bytes;
        self
    }

    /// See [`WorkerSettings::forget_consumers_after`].
    pub fn forget_consumers_after(mut self, t: Duration) -> Self {
        self.settings.forget_consumers_after = t;
        self
    }

    /// See [`WorkerSettings::backoff`].
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.settings.backoff = backoff;
        self
    }

    /// See [`WorkerSettings::cancel_grace`].
    pub fn cancel_grace(mut self, t: Duration) -> Self {
        self.settings.cancel_grace = t;
        self
    }

    /// Connects to the broker and prepares the queues.
    pub async fn build(self) -> Result<Worker, Error> {
        // Bound first: a worker that cannot serve its metrics does not start.
        let listener = match self.metrics_addr {
            Some(addr) => Some(listener::bind(addr).await?),
            None => None,
        };
        let periodic = crate::periodic::prepare(self.periodic, &self.services)?;
        let backend = backend::connect(&self.broker).await?;
        let mut services = HashMap::new();
        for s in self.services {
            if services.insert(s.name(), s.clone()).is_some() {
                return Err(Error::config(format_args!(
                    "service `{}` is mounted twice",
                    s.name()
                )));
            }
        }
        let queues: Vec<String> = services.keys().map(|s| s.to_string()).collect();
        backend.prepare_queues(&queues).await?;
        for queue in &queues {
            // Housekeeping only: a failure here must not stop the worker.
            if let Err(e) = backend
                .forget_idle_consumers(queue, self.settings.forget_consumers_after)
                .await
            {
                tracing::warn!(error = %e, queue, "could not forget idle consumers");
            }
        }
        let clock = BrokerClock::new();
        match clock.sample(&*backend).await {
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the broker's clock; deadlines use this machine's until it can")
            }
            Ok(()) if clock.offset_ms().abs() > 1_000 => tracing::info!(
                offset_ms = clock.offset_ms(),
                "this machine's clock is off the broker's; deadlines are measured on the broker's"
            ),
            Ok(()) => {}
        }
        let health = Arc::new(Health::new(
            liveness_window(&self.settings),
            probe::READY_WINDOW,
        ));
        health.broker_answered();
        health.loop_turned();
        let mut metrics = None;
        let exposition = match listener {
            None => None,
            Some(listener) => {
                let mut registry = prometheus_client::registry::Registry::default();
                let m = WorkerMetrics::register(&mut registry);
                metrics = Some(m.clone());
                let inspector = crate::inspect::Inspector::new(backend.clone());
                let exposition = Exposition {
                    registry,
                    metrics: m,
                    health: health.clone(),
                    inspector,
                    services: queues.clone(),
                };
                Some((listener, Arc::new(exposition)))
            }
        };
        Ok(Worker {
            shared: Arc::new(Shared {
                backend,
                services,
                middleware: self.middleware,
                queues,
                settings: self.settings,
                running: Mutex::default(),
                stats: Stats::default(),
                clock,
                outstanding: Arc::default(),
                metrics,
                health,
                paused: PausedQueues::default(),
                cancels: Arc::default(),
                due_hint: DueHint::default(),
            }),
            exposition,
            periodic,
        })
    }
}

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

struct Shared {
    backend: Arc<dyn Broker>,
    services: HashMap<&'static str, Arc<dyn Service>>,
    /// Runs around every handler, the first outermost.
    middleware: Vec<Arc<dyn Middleware>>,
    queues: Vec<String>,
    settings: WorkerSettings,
    /// Leases held by running jobs, per queue, renewed by the janitor.
    running: Mutex<HashMap<String, HashSet<String>>>,
    stats: Stats,
    /// The worker's view of the broker's clock (deadlines are measured on it).
    clock: BrokerClock,
    /// Completions in flight (a stopping worker waits for them).
    outstanding: Arc<Outstanding>,
    /// Prometheus metrics, when a metrics address is set.
    metrics: Option<WorkerMetrics>,
    /// Liveness and readiness marks for `/healthz` and `/readyz`.
    health: Arc<Health>,
    /// The services paused, as last polled.
    paused: PausedQueues,
    /// Cancelled calls learned (running jobs' contexts share them).
    cancels: Arc<Cancellations>,
    /// The earliest retry this worker scheduled, for the lifecycle loop.
    due_hint: DueHint,
}

/// A worker serving mounted services. Clone-free: run it once.
pub struct Worker {
    shared: Arc<Shared>,
    /// The bound metrics listener and what it serves.
    exposition: Option<(tokio::net::TcpListener, Arc<Exposition>)>,
    /// The periodic jobs, checked.
    periodic: Vec<crate::periodic::Prepared>,
}

impl Worker {
    /// A builder for a worker on the broker at `url`.
    pub fn builder(url: impl Into<String>) -> WorkerBuilder {
        WorkerBuilder::new(url)
    }

    /// The address the metrics listener is bound to (see
    /// [`WorkerBuilder::metrics_addr`]); it serves once the worker runs.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        let (listener, _) = self.exposition.as_ref()?;
        listener.local_addr().ok()
    }

    /// Counters so far.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.snapshot()
    }

    /// A handle to the counters that stays valid while the worker runs.
    pub fn stats_handle(&self) -> impl Fn() -> StatsSnapshot + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || shared.snapshot()
    }

    /// Runs until SIGTERM or ctrl-c, then shuts down gracefully.
    pub async fn run(self) -> Result<StatsSnapshot, Error> {
        self.run_until(shutdown_signal()).await
    }

    /// Runs until `shutdown` completes, then shuts down gracefully.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<StatsSnapshot, Error> {
        let shared = self.shared;
        // The checks are served, and so the broker probed, only with a listener.
        let (serving, probe) = match self.exposition {
            Some((listener, exposition)) => (
                Some(tokio::spawn(listener::serve(listener, exposition))),
                Some(tokio::spawn(probe_loop(shared.clone()))),
            ),
            None => (None, None),
        };
        let slots = Arc::new(Semaphore::new(shared.settings.concurrency));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tracing::info!(
            broker = %shared.backend.describe(),
            queues = ?shared.queues,
            consumer = %shared.settings.consumer,
            concurrency = shared.settings.concurrency,
            "worker started"
        );
        // Pauses and cancellations known before the first job is taken.
        let mut lifecycle = Lifecycle::new(shared.clone());
        lifecycle.round().await;
        let taker = tokio::spawn(take_loop(shared.clone(), slots.clone(), stop_rx.clone()));
        let ticker = periodic::spawn(shared.clone(), self.periodic, stop_rx.clone());
        let janitor = tokio::spawn(janitor_loop(shared.clone(), slots.clone(), stop_rx.clone()));
        let lifecycle = tokio::spawn(lifecycle.run());
        let movers = intake::spawn(&shared, &stop_rx);
        // Ready once the taker has read the queues (`take.rs`).
        shutdown.await;
        shared.health.stopping();
        tracing::info!("worker stopping: no new jobs; waiting for running ones");
        let _ = stop_tx.send(true);
        for mover in movers {
            let _ = mover.await;
        }
        let _ = taker.await;
        if let Some(ticker) = ticker {
            let _ = ticker.await;
        }
        // Running jobs hold slots; getting all of them back means all are done.
        let all = shared.settings.concurrency as u32;
        let drained = tokio::time::timeout(shared.settings.shutdown_grace, async {
            let _all = slots.acquire_many(all).await;
            // Jobs done; their completions may still be on their way.
            shared.outstanding.wait_idle().await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "shutdown grace period over; unfinished jobs will be reclaimed by other workers"
            );
        }
        janitor.abort();
        lifecycle.abort();
        if let Some(serving) = serving {
            serving.abort();
        }
        if let Some(probe) = probe {
            probe.abort();
        }
        Ok(shared.snapshot())
    }
}

impl Shared {
    /// Stops renewing a delivery's lease (its job is completed or given up).
    fn forget_lease(&self, delivery: &Delivery) {
        if let Some(set) = lock(&self.running).get_mut(&delivery.queue) {
            set.remove(&delivery.token);
        }
    }

    /// Counts a job that ended: in the counters and, when kept, the metrics.
    fn count(&self, outcome: JobOutcome, service: &'static str, job: &'static str) {
        let s = &self.stats;
        let counter = match outcome {
            JobOutcome::succeeded => &s.succeeded,
            JobOutcome::failed | JobOutcome::unknown_job => &s.failed,
            JobOutcome::retried => &s.retried,
            JobOutcome::dead_lettered => &s.dead_lettered,
            JobOutcome::expired => &s.expired,
            JobOutcome::cancelled => &s.cancelled,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(metrics) = &self.metrics {
            metrics.job_ended(service, job, outcome);
        }
    }

    /// The mounted service's name for a queue, as a metrics label.
    fn queue_label(&self, queue: &str) -> &'static str {
        self.services
            .get_key_value(queue)
            .map_or(UNKNOWN, |(name, _)| *name)
    }

    /// A broker command failed.
    fn broker_error(&self) {
        if let Some(metrics) = &self.metrics {
            metrics.broker_error();
        }
    }

    fn snapshot(&self) -> StatsSnapshot {
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

/// Resolves on SIGTERM or ctrl-c.
///
/// The signal handlers are installed when this is called, not when the
/// future is first polled: a process that says it is ready after calling it
/// cannot be killed by a SIGTERM that arrives before the worker polls it.
/// Call it inside a Tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            match (term, int) {
                (Some(mut term), Some(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                (Some(mut term), None) => {
                    term.recv().await;
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
