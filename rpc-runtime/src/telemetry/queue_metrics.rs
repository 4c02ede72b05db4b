//! The queues' figures as Prometheus gauges, read from the broker at
//! scrape time: the same for every worker, so exported once for the whole
//! fleet (by `rpc exporter`), never by each worker (a `sum()` over workers
//! would count each queue once per worker).
//!
//! The figures are read into a snapshot before the registry is encoded;
//! the collector writes the snapshot as it is, so a service that went away
//! leaves no stale series, and a broker that cannot be read gives
//! `rpc_broker_up 0` and no queue figures rather than old ones.
//!
//! A sharded service is one series per gauge, its figures summed over its
//! shards ([`Inspector`] adds them up), and `rpc_queue_shards` says how
//! many queues it has: no label per shard, so the series stay one per
//! service and metric however many shards a service is given (the
//! per-shard breakdown is `rpc stats --shards` and the dashboard's).
//!
//! Rate limits are one series per limit and metric (`rpc_rate_limit_*`,
//! labelled `rpc_service` and `rpc_method`, the job limited, empty for a
//! service's own limit): a schema defines at most one per job and one per
//! service, and [`Inspector::rate_limits`] lists at most
//! [`MAX_RATE_LIMITS_LISTED`](crate::inspect::MAX_RATE_LIMITS_LISTED) per
//! service whatever the broker holds, so a call, a turn or a key never
//! makes a series.
//!
//! Priority lanes and group keys are written by `lane_and_group_series.rs`:
//! five series per service for the lanes, and per-service counts for the
//! group keys, never a series per key.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use std::sync::atomic::AtomicU64;

use super::lane_and_group_series::{encode_groups, encode_lanes, ServiceGroups, ServiceLanes};
use crate::error::Error;
use crate::inspect::{Inspector, RateState};
use crate::sync::lock;

/// One service's queue as read at one scrape.
#[derive(Debug, Clone, Default, PartialEq)]
struct QueueFigures {
    service: String,
    shards: u64,
    queued: u64,
    leased: u64,
    scheduled: u64,
    dead_letters: u64,
    paused: bool,
    consumers: u64,
    oldest_leased_age: f64,
    entries_added: Option<u64>,
}

/// One rate limit as read at one scrape.
#[derive(Debug, Clone, Default, PartialEq)]
struct LimitFigures {
    service: String,
    /// The job limited; empty for the service's own limit.
    job: String,
    state: RateState,
}

/// What the last read found.
#[derive(Debug, Default)]
struct Snapshot {
    up: bool,
    took: Duration,
    read: Read,
}

/// The figures one read found.
#[derive(Debug, Default)]
struct Read {
    queues: Vec<QueueFigures>,
    limits: Vec<LimitFigures>,
    lanes: Vec<ServiceLanes>,
    groups: Vec<ServiceGroups>,
}

/// The queue gauges of every service under one prefix, refreshed from the
/// broker before each scrape ([`QueueMetrics::refresh`]).
#[derive(Debug, Clone)]
pub(crate) struct QueueMetrics {
    inspector: Inspector,
    last: Arc<Mutex<Snapshot>>,
}

impl QueueMetrics {
    /// Queue metrics read through `inspector`, registered in `registry`.
    pub(crate) fn register(inspector: Inspector, registry: &mut Registry) -> QueueMetrics {
        let last = Arc::new(Mutex::new(Snapshot::default()));
        registry.register_collector(Box::new(QueueCollector(last.clone())));
        QueueMetrics { inspector, last }
    }

    /// Reads every service's figures (within `timeout`); on failure, the
    /// broker is marked down and no figures are kept.
    pub(crate) async fn refresh(&self, timeout: Duration) -> Result<(), Error> {
        let started = Instant::now();
        let read = match tokio::time::timeout(timeout, read_all(&self.inspector)).await {
            Ok(read) => read,
            Err(_) => Err(Error::Broker(format!(
                "the queue figures were not read within {timeout:?}"
            ))),
        };
        let mut last = lock(&self.last);
        last.took = started.elapsed();
        match read {
            Ok(read) => {
                last.up = true;
                last.read = read;
                Ok(())
            }
            Err(e) => {
                last.up = false;
                last.read = Read::default();
                Err(e)
            }
        }
    }
}

async fn read_all(inspector: &Inspector) -> Result<Read, Error> {
    let mut out = Vec::new();
    let mut limits = Vec::new();
    let mut lanes = Vec::new();
    let mut groups = Vec::new();
    // One pass for every service's limits, one for its group keys; a
    // service is exported only with a queue, so no limit's or group's
    // garbage makes a service appear.
    let services = inspector.services().await?;
    let mut every_limit = inspector.every_rate_limit().await?;
    let mut every_group = inspector.every_busy_group_key().await?;
    for service in services {
        for limit in every_limit.remove(&service).unwrap_or_default() {
            limits.push(LimitFigures {
                service: service.clone(),
                job: limit.job.unwrap_or_default(),
                state: limit.state,
            });
        }
        // Bounded: no message is read, only counts.
        let Some(stats) = inspector.service_stats_bounded(&service).await? else {
            continue;
        };
        lanes.push((service.clone(), stats.lanes.clone()));
        if let Some(g) = every_group.remove(&service) {
            groups.push((service.clone(), g));
        }
        out.push(QueueFigures {
            shards: u64::from(stats.shards),
            queued: stats.queued,
            leased: stats.leased,
            scheduled: inspector.scheduled_count(&service).await?,
            dead_letters: stats.dead_letters,
            paused: inspector.is_paused(&service).await?,
            consumers: stats.consumers.len() as u64,
            oldest_leased_age: stats.oldest_leased_age.map_or(0.0, |a| a.as_secs_f64()),
            entries_added: stats.entries_added,
            service,
        });
    }
    Ok(Read {
        queues: out,
        limits,
        lanes,
        groups,
    })
}

type Labels = [(&'static str, String); 1];
type Gauges = Family<Labels, Gauge<f64, AtomicU64>>;

/// Writes the last snapshot.
#[derive(Debug)]
struct QueueCollector(Arc<Mutex<Snapshot>>);

impl Collector for QueueCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let last = lock(&self.0);
        let up = Gauge::<i64>::default();
        up.set(i64::from(last.up));
        let m = encoder.encode_descriptor(
            "rpc_broker_up",
            "1 when the last read of the queue figures from the broker succeeded, else 0",
            None,
            up.metric_type(),
        )?;
        up.encode(m)?;
        let took = Gauge::<f64, AtomicU64>::default();
        took.set(last.took.as_secs_f64());
        let m = encoder.encode_descriptor(
            "rpc_exporter_read_duration",
            "How long the last read of the queue figures took",
            Some(&Unit::Seconds),
            took.metric_type(),
        )?;
        took.encode(m)?;

        type Figure = fn(&QueueFigures) -> f64;
        let gauges: [(&str, &str, Option<Unit>, Figure); 8] = [
            (
                "rpc_queue_depth",
                "Jobs waiting for a worker: in the stream, not yet delivered",
                None,
                |q| q.queued as f64,
            ),
            (
                "rpc_queue_leased",
                "Jobs delivered to a worker and not yet acked (running, or to be reclaimed)",
                None,
                |q| q.leased as f64,
            ),
            (
                "rpc_queue_scheduled",
                "Jobs waiting on the schedule: delayed calls and retries not yet due",
                None,
                |q| q.scheduled as f64,
            ),
            (
                "rpc_queue_dead_letters",
                "Entries in the dead-letter stream",
                None,
                |q| q.dead_letters as f64,
            ),
            (
                "rpc_queue_shards",
                "Queues (shards) the service's figures add up (1 for an unsharded service)",
                None,
                |q| q.shards as f64,
            ),
            (
                "rpc_queue_paused",
                "1 while the service is paused, else 0",
                None,
                |q| f64::from(u8::from(q.paused)),
            ),
            (
                "rpc_queue_consumers",
                "Consumers (worker processes) in the service's group",
                None,
                |q| q.consumers as f64,
            ),
            (
                "rpc_queue_oldest_leased_age",
                "Age of the oldest leased job (0 when none)",
                Some(Unit::Seconds),
                |q| q.oldest_leased_age,
            ),
        ];
        for (name, help, unit, figure) in gauges {
            let family = Gauges::default();
            for q in &last.read.queues {
                family
                    .get_or_create(&[("rpc_service", q.service.clone())])
                    .set(figure(q));
            }
            let m = encoder.encode_descriptor(name, help, unit.as_ref(), family.metric_type())?;
            family.encode(m)?;
        }
        let added = Family::<Labels, Counter>::default();
        for q in &last.read.queues {
            if let Some(n) = q.entries_added {
                added
                    .get_or_create(&[("rpc_service", q.service.clone())])
                    .inc_by(n);
            }
        }
        let m = encoder.encode_descriptor(
            "rpc_queue_enqueued",
            "Entries ever added to the service's jobs stream (new jobs, retries, replays; Redis 7+)",
            None,
            added.metric_type(),
        )?;
        added.encode(m)?;
        encode_limits(&last.read.limits, &mut encoder)?;
        encode_lanes(&last.read.lanes, &mut encoder)?;
        encode_groups(&last.read.groups, &mut encoder)
    }
}

type LimitLabels = [(&'static str, String); 2];

/// The rate limits' series: one per limit and metric.
fn encode_limits(
    limits: &[LimitFigures],
    encoder: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    let labels = |l: &LimitFigures| -> LimitLabels {
        [
            ("rpc_service", l.service.clone()),
            ("rpc_method", l.job.clone()),
        ]
    };
    type Figure = fn(&RateState) -> u64;
    let gauges: [(&str, &str, Figure); 2] = [
        (
            "rpc_rate_limit_waiting",
            "Calls holding a turn of the rate limit, waiting on the schedule for it",
            |s| s.waiting,
        ),
        (
            "rpc_rate_limit_starts_last_second",
            "Starts the rate limit allowed in the last whole second",
            |s| s.last_second,
        ),
    ];
    for (name, help, figure) in gauges {
        let family = Family::<LimitLabels, Gauge>::default();
        for l in limits {
            family
                .get_or_create(&labels(l))
                .set(i64::try_from(figure(&l.state)).unwrap_or(i64::MAX));
        }
        let m = encoder.encode_descriptor(name, help, None, family.metric_type())?;
        family.encode(m)?;
    }
    let counters: [(&str, &str, Figure); 2] = [
        (
            "rpc_rate_limit_allowed",
            "Starts the rate limit allowed, in all (the fleet's, across restarts)",
            |s| s.allowed,
        ),
        (
            "rpc_rate_limit_waited",
            "Calls the rate limit gave a turn to wait for, in all",
            |s| s.waited,
        ),
    ];
    for (name, help, figure) in counters {
        let family = Family::<LimitLabels, Counter>::default();
        for l in limits {
            family.get_or_create(&labels(l)).inc_by(figure(&l.state));
        }
        let m = encoder.encode_descriptor(name, help, None, family.metric_type())?;
        family.encode(m)?;
    }
    Ok(())
}
