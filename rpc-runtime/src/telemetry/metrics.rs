//! Prometheus metrics of workers and clients, on `prometheus-client`.
//!
//! Names follow Prometheus conventions: base units (`_seconds`), counters
//! end in `_total` (the encoder adds it), labels are the wire names of the
//! service and job, which a worker takes from its mounted services (never
//! from a message: a peer cannot grow the label set). Updating a metric is
//! an atomic add or a bucket increment under a short lock; nothing here
//! allocates once a label set has been seen.
//!
//! A worker serves its registry itself ([`crate::WorkerBuilder::metrics_addr`]);
//! a client's metrics go into the application's registry
//! ([`ClientMetrics::register`]) for the application to serve.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// The label of a job whose name no mounted service knows (or an
/// unreadable message's): one bounded value, whatever the message said.
pub const UNKNOWN: &str = "(unknown)";

/// How a job ended, as the `outcome` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum JobOutcome {
    /// Completed with a result.
    succeeded,
    /// Answered with an error (application error, handler failure, bad request).
    failed,
    /// Put back for another attempt.
    retried,
    /// Moved to the dead-letter stream.
    dead_lettered,
    /// Skipped or cancelled because its deadline passed.
    expired,
    /// No mounted service has the job (answered `unknown_job` or handed back).
    unknown_job,
    /// Cancelled by its caller or an operator, before or while it ran.
    cancelled,
}

impl JobOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            JobOutcome::succeeded => "succeeded",
            JobOutcome::failed => "failed",
            JobOutcome::retried => "retried",
            JobOutcome::dead_lettered => "dead_lettered",
            JobOutcome::expired => "expired",
            JobOutcome::unknown_job => "unknown_job",
            JobOutcome::cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct JobLabels {
    service: &'static str,
    job: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct JobOutcomeLabels {
    service: &'static str,
    job: &'static str,
    outcome: JobOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CallOutcomeLabels {
    service: &'static str,
    job: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ServiceLabels {
    service: String,
}

type Histograms = Family<JobLabels, Histogram, fn() -> Histogram>;

/// Durations from half a millisecond to about 16 s.
fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_5, 2.0, 16))
}

fn histograms() -> Histograms {
    Family::new_with_constructor(seconds_histogram as fn() -> Histogram)
}

/// A worker's metrics. Cheap to clone (the metrics are shared).
#[derive(Debug, Clone)]
pub struct WorkerMetrics {
    jobs: Family<JobOutcomeLabels, Counter>,
    handler_duration: Histograms,
    queue_wait: Histograms,
    in_flight: Gauge,
    reclaimed: Counter,
    broker_errors: Counter,
    reconnects: Counter,
    pub(crate) queues: QueueGauges,
}

/// Per-service figures read from the broker at scrape time.
#[derive(Debug, Clone, Default)]
pub(crate) struct QueueGauges {
    pub(crate) stream_length: Family<ServiceLabels, Gauge>,
    pub(crate) leased: Family<ServiceLabels, Gauge>,
    pub(crate) dead_letters: Family<ServiceLabels, Gauge>,
    pub(crate) consumers: Family<ServiceLabels, Gauge>,
    pub(crate) oldest_leased_age: Family<ServiceLabels, Gauge<f64, AtomicU64>>,
}

impl WorkerMetrics {
    /// Creates a worker's metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> WorkerMetrics {
        let m = WorkerMetrics {
            jobs: Family::default(),
            handler_duration: histograms(),
            queue_wait: histograms(),
            in_flight: Gauge::default(),
            reclaimed: Counter::default(),
            broker_errors: Counter::default(),
            reconnects: Counter::default(),
            queues: QueueGauges::default(),
        };
        let r = registry.sub_registry_with_prefix("rpc_worker");
        r.register(
            "jobs",
            "Jobs ended, by service, job and outcome",
            m.jobs.clone(),
        );
        r.register_with_unit(
            "handler_duration",
            "Time handlers ran, by service and job",
            Unit::Seconds,
            m.handler_duration.clone(),
        );
        r.register_with_unit(
            "queue_wait",
            "Time from enqueue (broker clock) to the start of the job",
            Unit::Seconds,
            m.queue_wait.clone(),
        );
        r.register("jobs_in_flight", "Jobs running now", m.in_flight.clone());
        r.register(
            "reclaimed_jobs",
            "Jobs taken over from a dead or stalled worker",
            m.reclaimed.clone(),
        );
        r.register(
            "broker_errors",
            "Broker commands that failed",
            m.broker_errors.clone(),
        );
        r.register(
            "broker_reconnects",
            "Times the taker reconnected to the broker after losing it",
            m.reconnects.clone(),
        );
        let q = registry.sub_registry_with_prefix("rpc_queue");
        let g = &m.queues;
        q.register(
            "stream_length",
            "Entries in the service's jobs stream",
            g.stream_length.clone(),
        );
        q.register(
            "leased_jobs",
            "Jobs delivered and not yet acked",
            g.leased.clone(),
        );
        q.register(
            "dead_letters",
            "Entries in the dead-letter stream",
            g.dead_letters.clone(),
        );
        q.register(
            "consumers",
            "Consumers (workers) in the group",
            g.consumers.clone(),
        );
        q.register_with_unit(
            "oldest_leased_age",
            "Age of the oldest leased job (0 when none)",
            Unit::Seconds,
            g.oldest_leased_age.clone(),
        );
        m
    }

    pub(crate) fn job_ended(&self, service: &'static str, job: &'static str, outcome: JobOutcome) {
        self.jobs
            .get_or_create(&JobOutcomeLabels {
                service,
                job,
                outcome,
            })
            .inc();
    }

    pub(crate) fn handler_ran(&self, service: &'static str, job: &'static str, took: Duration) {
        self.handler_duration
            .get_or_create(&JobLabels { service, job })
            .observe(took.as_secs_f64());
    }

    pub(crate) fn waited(&self, service: &'static str, job: &'static str, waited: Duration) {
        self.queue_wait
            .get_or_create(&JobLabels { service, job })
            .observe(waited.as_secs_f64());
    }

    /// Counts a job as running until the guard is dropped.
    pub(crate) fn running(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    pub(crate) fn reclaimed(&self) {
        self.reclaimed.inc();
    }

    pub(crate) fn broker_error(&self) {
        self.broker_errors.inc();
    }

    pub(crate) fn reconnected(&self) {
        self.reconnects.inc();
    }
}

/// A job counted in `rpc_worker_jobs_in_flight`.
pub(crate) struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl QueueGauges {
    pub(crate) fn set(&self, stats: &crate::inspect::ServiceStats) {
        let labels = ServiceLabels {
            service: stats.service.clone(),
        };
        let int = |v: u64| v.min(i64::MAX as u64) as i64;
        self.stream_length
            .get_or_create(&labels)
            .set(int(stats.stream_length));
        self.leased.get_or_create(&labels).set(int(stats.leased));
        self.dead_letters
            .get_or_create(&labels)
            .set(int(stats.dead_letters));
        self.consumers
            .get_or_create(&labels)
            .set(stats.consumers.len() as i64);
        self.oldest_leased_age
            .get_or_create(&labels)
            .set(stats.oldest_leased_age.map_or(0.0, |a| a.as_secs_f64()));
    }
}

/// A client's metrics: calls by outcome and their latency. Register them
/// in the application's registry and hand them to
/// [`crate::ClientBuilder::metrics`].
///
/// ```
/// use rpc_runtime::telemetry::{prometheus_client::registry::Registry, ClientMetrics};
/// let mut registry = Registry::default();
/// let metrics = ClientMetrics::register(&mut registry);
/// let builder = rpc_runtime::Client::builder("memory://docs").metrics(metrics);
/// # let _ = builder;
/// ```
#[derive(Debug, Clone)]
pub struct ClientMetrics {
    calls: Family<CallOutcomeLabels, Counter>,
    duration: Histograms,
}

impl ClientMetrics {
    /// Creates a client's metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> ClientMetrics {
        let m = ClientMetrics {
            calls: Family::default(),
            duration: histograms(),
        };
        let r = registry.sub_registry_with_prefix("rpc_client");
        r.register(
            "calls",
            "Calls that waited for an answer, by service, job and outcome (ok, app_error, timeout, the error kind, broker_error, ...)",
            m.calls.clone(),
        );
        r.register_with_unit(
            "call_duration",
            "Time from sending a call to its answer or failure",
            Unit::Seconds,
            m.duration.clone(),
        );
        m
    }

    pub(crate) fn call_ended(
        &self,
        service: &'static str,
        job: &'static str,
        outcome: &'static str,
        took: Duration,
    ) {
        self.calls
            .get_or_create(&CallOutcomeLabels {
                service,
                job,
                outcome,
            })
            .inc();
        self.duration
            .get_or_create(&JobLabels { service, job })
            .observe(took.as_secs_f64());
    }
}
