//! Prometheus metrics of workers and clients, on `prometheus-client`.
//!
//! Names follow Prometheus conventions: a `rpc_` namespace, base units in
//! the name (`_seconds`), counters end in `_total` (the encoder adds it).
//! Labels are OpenTelemetry's attribute names as Prometheus spells them
//! (`rpc.service` is `rpc_service`, `rpc.method` is `rpc_method`), never
//! `job` or `instance`, which Prometheus sets on every scraped series; the
//! values are the wire names of the service and job, which a worker takes
//! from its mounted services (never from a message: a peer cannot grow the
//! label set). `outcome` is the one list of [`JobOutcome`]. Updating a
//! metric is an atomic add or a bucket increment under a short lock;
//! nothing here allocates once a label set has been seen.
//!
//! A worker's metrics carry nothing about queues: those are the same for
//! every worker and are exported once, by `rpc exporter`
//! ([`super::queue_metrics`]). A worker serves its registry itself
//! ([`crate::WorkerBuilder::metrics_addr`]); a client's metrics go into
//! the application's registry ([`ClientMetrics::register`]) for the
//! application to serve.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use std::time::Duration;

pub use super::outcome::JobOutcome;

/// The label of a job whose name no mounted service knows (or an
/// unreadable message's): one bounded value, whatever the message said.
pub const UNKNOWN: &str = "(unknown)";

/// Buckets of handler and call durations, in seconds: OpenTelemetry's
/// advice for `messaging.process.duration` and `rpc.*.call.duration` (5 ms
/// to 10 s), then on to an hour, since a job may run that long.
pub const DURATION_BUCKETS: [f64; 20] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0, 60.0,
    300.0, 900.0, 1800.0, 3600.0,
];

/// Buckets of the time a job waited in its queue, in seconds: from 5 ms to
/// a day, so that a backlog of hours or a delayed job is measured, not
/// lumped into `+Inf`.
pub const QUEUE_WAIT_BUCKETS: [f64; 22] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0,
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct JobLabels {
    rpc_service: &'static str,
    rpc_method: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct JobOutcomeLabels {
    rpc_service: &'static str,
    rpc_method: &'static str,
    outcome: JobOutcome,
}

type Histograms = Family<JobLabels, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

fn queue_wait_histogram() -> Histogram {
    Histogram::new(QUEUE_WAIT_BUCKETS)
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
}

impl WorkerMetrics {
    /// Creates a worker's metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> WorkerMetrics {
        let m = WorkerMetrics {
            jobs: Family::default(),
            handler_duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            queue_wait: Family::new_with_constructor(queue_wait_histogram as fn() -> Histogram),
            in_flight: Gauge::default(),
            reclaimed: Counter::default(),
            broker_errors: Counter::default(),
            reconnects: Counter::default(),
        };
        let r = registry.sub_registry_with_prefix("rpc_worker");
        r.register(
            "jobs",
            "Jobs ended, by service (rpc_service), job (rpc_method) and outcome",
            m.jobs.clone(),
        );
        r.register_with_unit(
            "handler_duration",
            "Time handlers ran, by service and job (OpenTelemetry's messaging.process.duration)",
            Unit::Seconds,
            m.handler_duration.clone(),
        );
        r.register_with_unit(
            "queue_wait",
            "Time from enqueue (broker clock) to the start of the job, by service and job",
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
        m
    }

    pub(crate) fn job_ended(&self, service: &'static str, job: &'static str, outcome: JobOutcome) {
        self.jobs
            .get_or_create(&JobOutcomeLabels {
                rpc_service: service,
                rpc_method: job,
                outcome,
            })
            .inc();
    }

    pub(crate) fn handler_ran(&self, service: &'static str, job: &'static str, took: Duration) {
        self.handler_duration
            .get_or_create(&JobLabels {
                rpc_service: service,
                rpc_method: job,
            })
            .observe(took.as_secs_f64());
    }

    pub(crate) fn waited(&self, service: &'static str, job: &'static str, waited: Duration) {
        self.queue_wait
            .get_or_create(&JobLabels {
                rpc_service: service,
                rpc_method: job,
            })
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
    calls: Family<JobOutcomeLabels, Counter>,
    duration: Histograms,
}

impl ClientMetrics {
    /// Creates a client's metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> ClientMetrics {
        let m = ClientMetrics {
            calls: Family::default(),
            duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
        };
        let r = registry.sub_registry_with_prefix("rpc_client");
        r.register(
            "calls",
            "Calls that waited for an answer, by service (rpc_service), job (rpc_method) and outcome",
            m.calls.clone(),
        );
        r.register_with_unit(
            "call_duration",
            "Time from sending a call to its answer or failure (OpenTelemetry's rpc.client.call.duration)",
            Unit::Seconds,
            m.duration.clone(),
        );
        m
    }

    pub(crate) fn call_ended(
        &self,
        service: &'static str,
        job: &'static str,
        outcome: JobOutcome,
        took: Duration,
    ) {
        self.calls
            .get_or_create(&JobOutcomeLabels {
                rpc_service: service,
                rpc_method: job,
                outcome,
            })
            .inc();
        self.duration
            .get_or_create(&JobLabels {
                rpc_service: service,
                rpc_method: job,
            })
            .observe(took.as_secs_f64());
    }
}
