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
//!   died or stalled).
//!
//! Nothing a client sends can stop the worker: a message that does not parse
//! is dead-lettered with the reason, an unknown job gets an error reply, and a
//! handler's panic is caught and counted as a failed attempt.
//!
//! Shutdown (SIGTERM, ctrl-c, or the future given to [`Worker::run_until`]):
//! stop taking, let running jobs finish and ack (up to the grace period),
//! return. Jobs still running after the grace period are not acked and will be
//! reclaimed by another worker.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use tokio::sync::Semaphore;

use crate::backend::{self, Backend, BrokerConfig, Completion, Delivery};
use crate::call::{Context, JobId, JobInfo};
use crate::client::lock;
use crate::error::{Error, ErrorKind};
use crate::service::{Outcome, Service};
use crate::wire::{self, JobMessage};

/// Builds a [`Worker`].
pub struct WorkerBuilder {
    broker: BrokerConfig,
    services: Vec<Arc<dyn Service>>,
    settings: WorkerSettings,
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
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            concurrency: 64,
            visibility_timeout: Duration::from_secs(30),
            max_attempts: 3,
            shutdown_grace: Duration::from_secs(30),
            consumer: default_consumer_name(),
            inbox_ttl: backend::DEFAULT_INBOX_TTL,
            max_message_bytes: 16 * 1024 * 1024,
            forget_consumers_after: Duration::from_secs(24 * 60 * 60),
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
            settings: WorkerSettings::default(),
        }
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

    /// Connects to the broker and prepares the queues.
    pub async fn build(self) -> Result<Worker, Error> {
        let backend = backend::connect(&self.broker).await?;
        let mut services = HashMap::new();
        for s in self.services {
            if services.insert(s.name(), s.clone()).is_some() {
                return Err(Error::Codec {
                    what: "mount services".to_owned(),
                    reason: format!("service `{}` is mounted twice", s.name()),
                });
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
        Ok(Worker {
            shared: Arc::new(Shared {
                backend,
                services,
                queues,
                settings: self.settings,
                running: Mutex::default(),
                stats: Stats::default(),
            }),
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
}

struct Shared {
    backend: Arc<dyn Backend>,
    services: HashMap<&'static str, Arc<dyn Service>>,
    queues: Vec<String>,
    settings: WorkerSettings,
    /// Leases held by running jobs, per queue, renewed by the janitor.
    running: Mutex<HashMap<String, HashSet<String>>>,
    stats: Stats,
}

/// A worker serving mounted services. Clone-free: run it once.
pub struct Worker {
    shared: Arc<Shared>,
}

impl Worker {
    /// A builder for a worker on the broker at `url`.
    pub fn builder(url: impl Into<String>) -> WorkerBuilder {
        WorkerBuilder::new(url)
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
        let slots = Arc::new(Semaphore::new(shared.settings.concurrency));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tracing::info!(
            broker = %shared.backend.describe(),
            queues = ?shared.queues,
            consumer = %shared.settings.consumer,
            concurrency = shared.settings.concurrency,
            "worker started"
        );
        let taker = tokio::spawn(take_loop(shared.clone(), slots.clone(), stop_rx.clone()));
        let janitor = tokio::spawn(janitor_loop(shared.clone(), slots.clone(), stop_rx));
        shutdown.await;
        tracing::info!("worker stopping: no new jobs; waiting for running ones");
        let _ = stop_tx.send(true);
        let _ = taker.await;
        // Running jobs hold slots; getting all of them back means all are done.
        let all = shared.settings.concurrency as u32;
        let drained =
            tokio::time::timeout(shared.settings.shutdown_grace, slots.acquire_many(all)).await;
        if drained.is_err() {
            tracing::warn!(
                "shutdown grace period over; unfinished jobs will be reclaimed by other workers"
            );
        }
        janitor.abort();
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

    fn snapshot(&self) -> StatsSnapshot {
        let s = &self.stats;
        StatsSnapshot {
            succeeded: s.succeeded.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            retried: s.retried.load(Ordering::Relaxed),
            dead_lettered: s.dead_lettered.load(Ordering::Relaxed),
            reclaimed: s.reclaimed.load(Ordering::Relaxed),
            expired: s.expired.load(Ordering::Relaxed),
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

/// How long a finished job keeps trying to complete (reply + ack) while the
/// broker is unreachable.
const COMPLETE_PATIENCE: Duration = Duration::from_secs(30);

/// How long the taker's read blocks when it carries completions: their
/// answer (and so the end of their leases) comes only when the read does,
/// and a stopping worker waits for it.
const COMPLETING_READ_WAIT: Duration = Duration::from_millis(250);

/// Jobs that finished on the taker's first poll, whose completions go out
/// with its next read.
type Finished = Vec<(Delivery, Completion)>;

async fn take_loop(
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut reader = None;
    let mut backoff = Duration::from_millis(50);
    let mut finished: Finished = Vec::new();
    loop {
        if *stop.borrow() {
            complete_now(&shared, std::mem::take(&mut finished)).await;
            return;
        }
        // Wait for at least one free slot, then lease as many jobs as there are slots.
        let first = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => return },
            _ = stop.changed() => {
                complete_now(&shared, finished).await;
                return;
            }
        };
        let free = slots.available_permits() + 1;
        if reader.is_none() {
            match shared.backend.open_reader().await {
                Ok(r) => reader = Some(r),
                Err(e) => {
                    tracing::warn!(error = %e, "worker cannot reach the broker; retrying");
                    complete_later(&shared, std::mem::take(&mut finished));
                    drop(first);
                    sleep_or_stop(&mut stop, backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            }
        }
        let Some(r) = reader.as_mut() else { continue };
        let consumer = &shared.settings.consumer;
        let taken = if finished.is_empty() {
            tokio::select! {
                taken = r.take_jobs(&shared.queues, consumer, free, Duration::from_secs(1)) => taken,
                _ = stop.changed() => return,
            }
        } else {
            // Not cancelled on stop: the completions are in this round trip.
            let done = std::mem::take(&mut finished);
            let out = r
                .complete_and_take(&done, &shared.queues, consumer, free, COMPLETING_READ_WAIT)
                .await;
            let mut retry = Vec::new();
            for (i, (delivery, completion)) in done.into_iter().enumerate() {
                if out.not_completed.contains(&i) {
                    retry.push((delivery, completion));
                } else {
                    shared.forget_lease(&delivery);
                }
            }
            complete_later(&shared, retry);
            out.taken
        };
        match taken {
            Ok(deliveries) => {
                backoff = Duration::from_millis(50);
                let mut first = Some(first);
                for delivery in deliveries {
                    let permit = match first.take() {
                        Some(p) => p,
                        None => match slots.clone().try_acquire_owned() {
                            Ok(p) => p,
                            // Cannot happen (we asked for no more than were free);
                            // if it did, the job stays leased and is reclaimed later.
                            Err(_) => break,
                        },
                    };
                    start_job(shared.clone(), delivery, permit, Some(&mut finished)).await;
                }
                // No yield here: jobs that finished inline go out with the
                // next read, and yielding first costs a wake-up of another
                // runtime thread per read (measured: worker CPU per
                // sequential call 1.6x the floor's with it, 1.1-1.2x without).
            }
            Err(e) => {
                tracing::warn!(error = %e, "taking jobs failed; reconnecting");
                reader = None;
                drop(first);
                sleep_or_stop(&mut stop, backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Completes finished jobs through the shared connection, one by one, and
/// returns when they are done (or given up on).
async fn complete_now(shared: &Arc<Shared>, finished: Finished) {
    for (delivery, completion) in finished {
        finish_job(shared, &delivery, &completion).await;
    }
}

/// Completes finished jobs through the shared connection in the background.
fn complete_later(shared: &Arc<Shared>, finished: Finished) {
    if !finished.is_empty() {
        let shared = shared.clone();
        tokio::spawn(async move { complete_now(&shared, finished).await });
    }
}

async fn sleep_or_stop(stop: &mut tokio::sync::watch::Receiver<bool>, t: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(t) => {}
        _ = stop.changed() => {}
    }
}

async fn janitor_loop(
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    // Renew leases three times per visibility timeout, so one late renewal
    // does not cost a lease.
    let period = (shared.settings.visibility_timeout / 3).max(Duration::from_millis(50));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let running: Vec<(String, Vec<String>)> = lock(&shared.running)
            .iter()
            .map(|(q, t)| (q.clone(), t.iter().cloned().collect()))
            .collect();
        for (queue, tokens) in running {
            if let Err(e) = shared
                .backend
                .extend(&queue, &shared.settings.consumer, &tokens)
                .await
            {
                tracing::warn!(error = %e, queue, "renewing leases failed");
            }
        }
        if *stop.borrow() {
            // Shutting down: keep renewing the leases of running jobs, take no new ones.
            continue;
        }
        for queue in &shared.queues {
            let free = slots.available_permits();
            if free == 0 {
                break;
            }
            match shared
                .backend
                .reclaim(
                    queue,
                    &shared.settings.consumer,
                    shared.settings.visibility_timeout,
                    free,
                )
                .await
            {
                Ok(deliveries) => {
                    for delivery in deliveries {
                        let Ok(permit) = slots.clone().try_acquire_owned() else {
                            break;
                        };
                        shared.stats.reclaimed.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(queue, token = %delivery.token, deliveries = delivery.deliveries, "took over a job whose lease expired");
                        start_job(shared.clone(), delivery, permit, None).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, queue, "reclaiming stalled jobs failed"),
            }
        }
    }
}

/// Starts a job: runs it right here up to its first wait, then hands the
/// rest to a task of its own.
///
/// Most handlers finish without waiting, so the first poll runs the handler
/// to its end. Doing that inline instead of in a freshly spawned task saves
/// a task hand-off (a thread wake-up) on the path of every reply. A job that
/// finished so is pushed onto `finished` when the caller (the taker) sends
/// the completions with its next read; otherwise its completion is queued on
/// the shared connection right away. A handler that does wait is spawned at
/// its first wait and runs concurrently as usual.
async fn start_job(
    shared: Arc<Shared>,
    delivery: Delivery,
    permit: tokio::sync::OwnedSemaphorePermit,
    finished: Option<&mut Finished>,
) {
    lock(&shared.running)
        .entry(delivery.queue.clone())
        .or_default()
        .insert(delivery.token.clone());
    let mut run = Box::pin(async move {
        let completion = run_job(&shared, &delivery).await;
        (shared, delivery, completion)
    });
    match (poll_once(&mut run).await, finished) {
        // The handler is done, so is its slot; the lease stays in `running`
        // (renewed) until the completion is through.
        (Poll::Ready((_, delivery, completion)), Some(finished)) => {
            drop(permit);
            finished.push((delivery, completion));
        }
        (Poll::Ready((shared, delivery, completion)), None) => {
            let mut done = Box::pin(async move {
                finish_job(&shared, &delivery, &completion).await;
                drop(permit);
            });
            if poll_once(&mut done).await.is_pending() {
                tokio::spawn(done);
            }
        }
        (Poll::Pending, _) => {
            tokio::spawn(async move {
                let (shared, delivery, completion) = run.await;
                finish_job(&shared, &delivery, &completion).await;
                drop(permit);
            });
        }
    }
}

/// Polls `fut` once, here, without waiting: its output if that finished it.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut *fut).poll(cx))).await
}

/// Completes a job (reply + ack) and forgets its lease. The completion must
/// reach the broker or the job is redone: keep trying through a broker
/// outage (a restart takes seconds) for a bounded time, then leave the job
/// to be reclaimed and redone.
async fn finish_job(shared: &Shared, delivery: &Delivery, completion: &Completion) {
    let mut delay = Duration::from_millis(50);
    let give_up = tokio::time::Instant::now() + COMPLETE_PATIENCE;
    loop {
        match shared.backend.complete(delivery, completion).await {
            Ok(()) => break,
            Err(e) if tokio::time::Instant::now() + delay < give_up => {
                tracing::warn!(error = %e, "completing a job failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
            Err(e) => {
                tracing::error!(error = %e, token = %delivery.token, "could not complete a job; it will be redelivered");
                break;
            }
        }
    }
    shared.forget_lease(delivery);
}

/// Runs one delivery and says how to complete it.
async fn run_job(shared: &Shared, delivery: &Delivery) -> Completion {
    let inbox_ttl = Some(shared.settings.inbox_ttl);
    if delivery.payload.len() > shared.settings.max_message_bytes {
        shared.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        let reason = format!(
            "oversized job message: {} bytes, over the worker's limit of {} bytes",
            delivery.payload.len(),
            shared.settings.max_message_bytes
        );
        tracing::warn!(queue = %delivery.queue, token = %delivery.token, "{reason}; dead-lettering");
        // Not parsed at all (that is the point), so the caller is not told;
        // it times out at its deadline.
        return Completion {
            dead_letter: Some(reason),
            ..Completion::default()
        };
    }
    let msg: JobMessage = match serde_json::from_slice(&delivery.payload) {
        Ok(m) => m,
        Err(e) => {
            shared.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(queue = %delivery.queue, token = %delivery.token, error = %e, "dead-lettering an unreadable message");
            let mut c = unreadable(delivery, &e.to_string());
            c.inbox_ttl = inbox_ttl;
            return c;
        }
    };
    if msg.v != wire::PROTOCOL_VERSION {
        shared.stats.failed.fetch_add(1, Ordering::Relaxed);
        let Some(to) = msg.reply_to.as_deref() else {
            return Completion::default();
        };
        let reply = wire::encode_error_reply(
            &msg.id,
            ErrorKind::BadRequest,
            &format!(
                "protocol version {} is not spoken here (this worker speaks {})",
                msg.v,
                wire::PROTOCOL_VERSION
            ),
            None,
        );
        return Completion {
            reply: Some(reply),
            reply_to: Some(to.to_owned()),
            inbox_ttl,
            ..Completion::default()
        };
    }
    let (service_name, job_name) = msg.job.split_once('.').unwrap_or(("", &msg.job));
    let service = shared
        .services
        .get(service_name)
        .filter(|_| service_name == delivery.queue);
    let info: Option<&JobInfo> = service.and_then(|s| s.jobs().iter().find(|j| j.name == job_name));
    let max_attempts = msg
        .max_attempts
        .or(info.and_then(|i| i.max_attempts))
        .unwrap_or(shared.settings.max_attempts)
        .max(1);
    let attempt = msg
        .attempt
        .saturating_add(delivery.deliveries.saturating_sub(1));
    let reply_to = msg.reply_to.as_deref().map(str::to_owned);
    let keep = (msg.result_ttl_ms > 0)
        .then(|| (msg.id.to_string(), Duration::from_millis(msg.result_ttl_ms)));
    let answer = |reply: Vec<u8>| Completion {
        reply: Some(reply),
        reply_to: reply_to.clone(),
        keep_result: keep.clone(),
        inbox_ttl,
        ..Completion::default()
    };
    let fail = |kind: ErrorKind, message: &str| {
        answer(wire::encode_error_reply(&msg.id, kind, message, None))
    };
    // Moves the message to the dead-letter stream and tells the caller why.
    let dead_letter = |reason: String| Completion {
        dead_letter: Some(reason.clone()),
        ..fail(ErrorKind::DeadLettered, &reason)
    };

    if attempt > max_attempts {
        shared.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        let reason = format!(
            "delivered {attempt} times, over the limit of {max_attempts} (its workers died or stalled past the visibility timeout)"
        );
        tracing::warn!(job = %msg.job, id = %msg.id, "{reason}; dead-lettering");
        return dead_letter(reason);
    }
    let deadline = msg.deadline_ms.map(wire::from_unix_ms);
    if deadline.is_some_and(|d| d <= SystemTime::now()) {
        shared.stats.expired.fetch_add(1, Ordering::Relaxed);
        return fail(
            ErrorKind::DeadlineExceeded,
            "the deadline passed before a worker could start the job",
        );
    }
    let Some(service) = service else {
        shared.stats.failed.fetch_add(1, Ordering::Relaxed);
        return fail(
            ErrorKind::UnknownJob,
            &format!("no service `{service_name}` is mounted on this worker"),
        );
    };
    let ctx = Context {
        id: JobId::from(msg.id.as_ref()),
        job: msg.job.as_ref().into(),
        attempt,
        max_attempts,
        deadline,
        metadata: Arc::new(
            msg.meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
    };
    let run =
        std::panic::AssertUnwindSafe(service.dispatch(ctx, job_name, msg.params)).catch_unwind();
    let outcome = match deadline.map(|d| {
        d.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    }) {
        Some(left) => match tokio::time::timeout(left, run).await {
            Ok(r) => r,
            Err(_) => {
                shared.stats.expired.fetch_add(1, Ordering::Relaxed);
                return fail(
                    ErrorKind::DeadlineExceeded,
                    "the deadline passed while the job was running; it was cancelled",
                );
            }
        },
        None => run.await,
    };
    let outcome = outcome.unwrap_or_else(|panic| Outcome::Failed {
        kind: ErrorKind::Handler,
        message: format!("the handler panicked: {}", panic_message(&panic)),
        retry: true,
    });
    match outcome {
        Outcome::Ok(json) => {
            shared.stats.succeeded.fetch_add(1, Ordering::Relaxed);
            if reply_to.is_none() && keep.is_none() {
                return Completion::default();
            }
            answer(wire::encode_ok_reply(&msg.id, &json))
        }
        Outcome::App(json) => {
            shared.stats.failed.fetch_add(1, Ordering::Relaxed);
            answer(wire::encode_error_reply(
                &msg.id,
                ErrorKind::App,
                "the job returned its application error",
                Some(&json),
            ))
        }
        Outcome::Failed {
            kind,
            message,
            retry,
        } => {
            if retry && attempt < max_attempts {
                shared.stats.retried.fetch_add(1, Ordering::Relaxed);
                let mut next = msg;
                next.attempt = attempt + 1;
                match serde_json::to_vec(&next) {
                    Ok(payload) => {
                        return Completion {
                            requeue: Some(payload),
                            ..Completion::default()
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "could not re-encode a job for retry"),
                }
                return Completion::default();
            }
            if retry {
                shared.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                return dead_letter(format!(
                    "failed on attempt {attempt} of {max_attempts}: {message}"
                ));
            }
            shared.stats.failed.fetch_add(1, Ordering::Relaxed);
            fail(kind, &message)
        }
    }
}

/// The completion for a message that is not a job message: dead-letter it,
/// and if enough of it parses to know the caller, tell the caller why.
fn unreadable(delivery: &Delivery, reason: &str) -> Completion {
    #[derive(serde::Deserialize)]
    struct Header {
        id: String,
        reply_to: Option<String>,
    }
    let reason = format!("unreadable job message: {reason}");
    let reply = serde_json::from_slice::<Header>(&delivery.payload)
        .ok()
        .and_then(|h| {
            h.reply_to.map(|to| {
                (
                    to,
                    wire::encode_error_reply(&h.id, ErrorKind::BadRequest, &reason, None),
                )
            })
        });
    Completion {
        reply_to: reply.as_ref().map(|(to, _)| to.clone()),
        reply: reply.map(|(_, body)| body),
        dead_letter: Some(reason),
        ..Completion::default()
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}
