//! Building a [`Worker`]: the services and middleware it serves, its
//! settings, its periodic jobs; connecting and checking them all.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpc_protocol::rate::RateLimit;
use rpc_protocol::Backoff;

use super::due_hint::DueHint;
use super::janitor::liveness_window;
use super::pause::PausedQueues;
use super::probe;
use super::rate_book::RateBook;
use super::run::Worker;
use super::served::Served;
use super::settings::WorkerSettings;
use super::shared::Shared;
use super::stats::Stats;

use crate::backend;
use crate::backend::{Broker, BrokerConfig, ShardOp};
use crate::clock::BrokerClock;
use crate::error::Error;
use crate::middleware::Middleware;
use crate::service::Service;
use crate::telemetry::health::Health;
use crate::telemetry::listener::Exposition;
use crate::telemetry::{listener, WorkerMetrics};

/// Builds a [`Worker`].
pub struct WorkerBuilder {
    broker: BrokerConfig,
    services: Vec<Arc<dyn Service>>,
    middleware: Vec<Arc<dyn Middleware>>,
    settings: WorkerSettings,
    metrics_addr: Option<SocketAddr>,
    /// Jobs to enqueue on a schedule (`worker/periodic.rs`).
    periodic: Vec<crate::periodic::Periodic>,
    /// Rate limits set at deploy time, by `Service` or `Service.job`.
    rates: Vec<(String, RateLimit)>,
    /// Per-key limits by `Service.job` (`worker/group_admit.rs`).
    group_limits: HashMap<String, u32>,
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
            rates: Vec::new(),
            group_limits: HashMap::new(),
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

    /// How often the worker writes its heartbeat and how long one lives
    /// (default every 5 s, living 30 s; see [`WorkerSettings::beat_ttl`]).
    /// [`WorkerBuilder::build`] refuses a period outside 100 ms..=60 s or
    /// a TTL shorter than the period or longer than 10 minutes.
    pub fn heartbeat(mut self, every: Duration, ttl: Duration) -> Self {
        self.settings.beat_every = every;
        self.settings.beat_ttl = ttl;
        self
    }

    /// The version the heartbeat tells, for `rpc workers` (default
    /// `rpc-runtime <version>`): an application's own is more useful.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.settings.version = version.into();
        self
    }

    /// Fail at once when the broker cannot be reached at start, instead of
    /// waiting for it (the default waits, retrying with a message in the
    /// log every few seconds).
    pub fn fail_fast(mut self, fail_fast: bool) -> Self {
        self.settings.wait_for_broker = !fail_fast;
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

    /// Limits the starts of `target` across the fleet to `rate`, whatever
    /// the schema says: `"Service.job"` for one job, `"Service"` for every
    /// job of a service together. Every worker serving the service should
    /// be given the same limits: each start is checked against the limits
    /// of the worker that takes it. [`WorkerBuilder::build`] refuses a
    /// target that names no mounted service or job.
    pub fn rate_limit(mut self, target: impl Into<String>, rate: RateLimit) -> Self {
        self.rates.push((target.into(), rate));
        self
    }

    /// Rate limits written as one string, as a deploy sets them (an
    /// environment variable, a flag): `"Mail.send=10/s; Mail=1000/m"`,
    /// entries separated by `;` or newlines. Each is given to
    /// [`WorkerBuilder::rate_limit`]; a malformed entry is an error here.
    pub fn rate_limits(mut self, spec: &str) -> Result<Self, Error> {
        for entry in spec
            .split([';', '\n'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let Some((target, rate)) = entry.split_once('=') else {
                return Err(Error::config(format_args!(
                    "rate limit {entry:?}: write it as `Service.job=50/s` or `Service=50/s`"
                )));
            };
            let rate = rate.trim().parse::<RateLimit>().map_err(|e| {
                Error::config(format_args!("rate limit for `{}`: {e}", target.trim()))
            })?;
            self.rates.push((target.trim().to_owned(), rate));
        }
        Ok(self)
    }

    /// Runs at most `limit` (1 to 10,000) calls of job `job`
    /// (`Service.job`) with the same group key at once across the fleet
    /// (a call's key: [`Call::group`](crate::Call::group)); without this,
    /// a keyed job's limit is 1. Every worker of the job should say the
    /// same: each applies its own when it takes a slot. [`build`] refuses
    /// a limit out of range.
    ///
    /// [`build`]: WorkerBuilder::build
    pub fn group_limit(mut self, job: impl Into<String>, limit: u32) -> Self {
        self.group_limits.insert(job.into(), limit);
        self
    }

    /// Connects to the broker and prepares the queues.
    pub async fn build(self) -> Result<Worker, Error> {
        // Bound first: a worker that cannot serve its metrics does not start.
        let listener = match self.metrics_addr {
            Some(addr) => Some(listener::bind(addr).await?),
            None => None,
        };
        let periodic = super::periodic_check::prepare(self.periodic, &self.services)?;
        let named: super::shared::Services = self
            .services
            .iter()
            .map(|s| (s.name(), s.clone()))
            .collect();
        let rates = RateBook::new(&named, &self.rates)?;
        let groups = super::group_limits::GroupLimits::new(self.group_limits)?;
        check_heartbeat(&self.settings)?;
        let backend = connect_or_wait(&self.broker, self.settings.wait_for_broker).await?;
        let mut services = super::shared::Services::default();
        for s in self.services {
            // `S~k` names a shard of `S`, `Q^p` a priority lane of `Q`: a
            // service so named would read another's queue.
            if s.name().contains([
                rpc_protocol::shards::SEPARATOR,
                rpc_protocol::priority::LANE_SEPARATOR,
            ]) {
                return Err(Error::config(format_args!(
                    "service `{}`: a service name has no `{}` (a shard) nor `{}` (a priority lane)",
                    s.name(),
                    rpc_protocol::shards::SEPARATOR,
                    rpc_protocol::priority::LANE_SEPARATOR
                )));
            }
            if services.insert(s.name(), s.clone()).is_some() {
                return Err(Error::config(format_args!(
                    "service `{}` is mounted twice",
                    s.name()
                )));
            }
        }
        let mut queues = shard_queues(&*backend, &services).await;
        backend.prepare_queues(&queues).await?;
        // The shards a lost count no longer names, found by their keys.
        let mut names: Vec<&'static str> = services.keys().copied().collect();
        names.sort_unstable();
        let found = super::shard_discovery::serve_found(&*backend, &names, &queues).await;
        queues.extend(found);
        for queue in &queues {
            // Housekeeping only: a failure here must not stop the worker.
            if let Err(e) = backend
                .forget_idle_consumers(queue, self.settings.forget_consumers_after, &[])
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
                metrics = Some(WorkerMetrics::register(&mut registry));
                // No queue gauges: `rpc exporter` serves those once.
                crate::telemetry::register_process_metrics(&mut registry);
                let exposition = Exposition {
                    registry,
                    health: Some(health.clone()),
                    queues: None,
                };
                Some((listener, Arc::new(exposition)))
            }
        };
        Ok(Worker {
            shared: Arc::new(Shared {
                backend,
                services,
                middleware: self.middleware,
                served: Served::new(queues),
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
                idle_polls: Default::default(),
                daily: Default::default(),
                progress: Default::default(),
                rates,
                groups,
                lanes: Default::default(),
            }),
            exposition,
            periodic,
        })
    }
}

/// The queues of every mounted service: each shard of it, as many as the
/// schema says or the broker holds (`P:{S}:shards`: the count clients
/// place on, and every shard the service ever had, so shards no longer
/// written to are drained), recording this worker's number there. Shards
/// beyond them that hold work (the count was lost) are added by
/// `shard_discovery.rs`.
async fn shard_queues(backend: &dyn Broker, services: &super::shared::Services) -> Vec<String> {
    let mut names: Vec<&'static str> = services.keys().copied().collect();
    names.sort_unstable();
    let mut queues = Vec::new();
    for name in names {
        let schema = services[name]
            .shards()
            .clamp(1, rpc_protocol::shards::MAX_SHARDS);
        let serving = match backend.shard_count(name, ShardOp::Serve(schema)).await {
            Ok(count) => count.serving(schema),
            Err(e) => {
                tracing::warn!(service = name, error = %e, "cannot read the shard count; serving the schema's shards");
                schema
            }
        };
        queues.extend((0..serving).map(|k| rpc_protocol::shards::queue(name, k).into_owned()));
    }
    queues
}

/// The heartbeat settings a beat may state, and a worker id that fits a key.
fn check_heartbeat(settings: &WorkerSettings) -> Result<(), Error> {
    use rpc_protocol::worker::{MAX_BEAT_EVERY_MS, MAX_BEAT_TTL_MS, MIN_BEAT_EVERY_MS};
    let every = settings.beat_every.as_millis();
    let ttl = settings.beat_ttl.as_millis();
    if !(u128::from(MIN_BEAT_EVERY_MS)..=u128::from(MAX_BEAT_EVERY_MS)).contains(&every) {
        return Err(Error::config(format_args!(
            "a heartbeat every {:?} is outside {MIN_BEAT_EVERY_MS} ms..={MAX_BEAT_EVERY_MS} ms",
            settings.beat_every
        )));
    }
    if ttl < every || ttl > u128::from(MAX_BEAT_TTL_MS) {
        return Err(Error::config(format_args!(
            "a heartbeat TTL of {:?} must be at least the period ({:?}) and at most {MAX_BEAT_TTL_MS} ms",
            settings.beat_ttl, settings.beat_every
        )));
    }
    if !rpc_protocol::worker::is_worker_id(&settings.consumer) {
        return Err(Error::config(format_args!(
            "the consumer name {:?} is not 1 to 128 of A-Z a-z 0-9 _ - . :",
            settings.consumer
        )));
    }
    if settings.version.len() > rpc_protocol::worker::MAX_BEAT_TEXT_BYTES
        || settings.version.chars().any(char::is_control)
    {
        return Err(Error::config(
            "the version must be at most 255 bytes without control characters",
        ));
    }
    Ok(())
}

/// The longest wait between two tries to reach the broker at start.
const MAX_CONNECT_WAIT: Duration = Duration::from_secs(30);

/// Connects to the broker; when it cannot be reached and `wait` is set,
/// tries again with growing waits (1 s, 2 s, ... 30 s), saying so in the log
/// each time, until it can. A URL that cannot work fails at once.
async fn connect_or_wait(
    config: &BrokerConfig,
    wait: bool,
) -> Result<Arc<dyn backend::Broker>, Error> {
    let mut delay = Duration::from_secs(1);
    loop {
        match backend::connect(config).await {
            // Refused credentials will not get better by waiting.
            Err(Error::Broker(reason)) if wait && !is_refusal(&reason) => {
                tracing::warn!(
                    %reason,
                    retry_in = ?delay,
                    "cannot reach the broker; waiting for it (fail fast instead with WorkerBuilder::fail_fast)"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_CONNECT_WAIT);
            }
            other => return other,
        }
    }
}

/// Whether the broker answered and refused us (rather than not answering).
fn is_refusal(reason: &str) -> bool {
    [
        "WRONGPASS",
        "NOPERM",
        "NoPerm",
        "Authentication",
        "invalid username-password",
    ]
    .iter()
    .any(|word| reason.contains(word))
}

impl Worker {
    /// A builder for a worker on the broker at `url`.
    pub fn builder(url: impl Into<String>) -> WorkerBuilder {
        WorkerBuilder::new(url)
    }
}
