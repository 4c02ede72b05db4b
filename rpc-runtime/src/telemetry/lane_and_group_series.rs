//! The exporter's series of priority lanes and group keys
//! (`queue_metrics.rs` reads the figures; this writes them).
//!
//! Lanes: `rpc_queue_lane_depth`, one series per service and priority
//! (`priority` "1" to "5"), so five per service whatever the queue holds;
//! they add up to `rpc_queue_depth`.
//!
//! Group keys: per service, never per key. A group key is the
//! application's (a tenant, a customer id) and comes from a message, and
//! the exporter takes no label value from a message (docs/METRICS.md):
//! even the ten busiest keys as labels would make new series as the
//! busiest change, without end, and put customers' ids into Prometheus.
//! So the exporter gives the calls running and parked over the keys, and
//! how many keys are at their limit (calls parked behind them); which keys
//! those are is `rpc stats` and the dashboard's service page. The figures
//! come from a bounded look, and `rpc_group_keys_look_capped` says when
//! it stopped before it saw every key (the figures are then lower
//! bounds).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::inspect::{BusyGroupKeys, LaneDepth};

/// One service's lanes, as read at one scrape.
pub(super) type ServiceLanes = (String, Vec<LaneDepth>);

/// One service's group keys, as read at one scrape.
pub(super) type ServiceGroups = (String, BusyGroupKeys);

type LaneLabels = [(&'static str, String); 2];

/// `rpc_queue_lane_depth`: one series per service and priority.
pub(super) fn encode_lanes(
    lanes: &[ServiceLanes],
    encoder: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    let family = Family::<LaneLabels, Gauge<f64, AtomicU64>>::default();
    for (service, lanes) in lanes {
        for lane in lanes {
            family
                .get_or_create(&[
                    ("rpc_service", service.clone()),
                    ("priority", lane.priority.to_string()),
                ])
                .set(lane.queued as f64);
        }
    }
    let m = encoder.encode_descriptor(
        "rpc_queue_lane_depth",
        "Jobs waiting for a worker at one priority (1 most urgent, 3 the default); the lanes add up to rpc_queue_depth",
        None,
        family.metric_type(),
    )?;
    family.encode(m)
}

type ServiceLabels = [(&'static str, String); 1];

/// The group keys' series: one per service that has group keys, and
/// metric.
pub(super) fn encode_groups(
    groups: &[ServiceGroups],
    encoder: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    type Figure = fn(&BusyGroupKeys) -> u64;
    let gauges: [(&str, &str, Figure); 4] = [
        (
            "rpc_group_calls_running",
            "Calls holding a slot of their group key (per-key concurrency), over the keys looked at",
            |g| g.running,
        ),
        (
            "rpc_group_calls_waiting",
            "Calls parked until a slot of their group key is free, over the keys looked at",
            |g| g.waiting,
        ),
        (
            "rpc_group_keys_at_limit",
            "Group keys with calls parked behind them: every slot taken",
            |g| g.at_limit,
        ),
        (
            "rpc_group_keys_look_capped",
            "1 when the look at the group keys stopped at its bound (1000 keys a service) before it saw them all, else 0",
            |g| u64::from(g.capped),
        ),
    ];
    for (name, help, figure) in gauges {
        let family = Family::<ServiceLabels, Gauge>::default();
        for (service, g) in groups {
            family
                .get_or_create(&[("rpc_service", service.clone())])
                .set(i64::try_from(figure(g)).unwrap_or(i64::MAX));
        }
        let m = encoder.encode_descriptor(name, help, None, family.metric_type())?;
        family.encode(m)?;
    }
    Ok(())
}
