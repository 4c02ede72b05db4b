//! How many calls wait in each priority lane of a queue (docs/PROTOCOL.md,
//! "Priorities"): lane `p` of queue `Q` is its own stream, `P:{Q}:jobs`
//! for the default priority and `P:{Q}:jobs:<p>` for the others, so a
//! flood of urgent calls or a starved lane shows here and nowhere else.
//!
//! A lane's depth is measured as the queue's `queued` always was (what its
//! stream holds not yet delivered to a worker), and the five add up to
//! it. A lane whose stream cannot be read (a key of another type) is
//! marked, not an error: the rest of the view stays readable.

use rpc_protocol::priority::{DEFAULT, LANES};
use serde::Serialize;

/// One priority lane of a queue (or of a service, summed over its shards).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LaneDepth {
    /// The priority, 1 (most urgent) to 5.
    pub priority: u8,
    /// Calls waiting in the lane: in its stream, not yet delivered.
    pub queued: u64,
    /// Whether the lane's stream (one of them, for a service's sum) could
    /// not be read: a key of another type where the stream belongs.
    /// `queued` counts the lanes that could.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unreadable: bool,
}

impl LaneDepth {
    /// An empty, readable lane.
    pub fn empty(priority: u8) -> LaneDepth {
        LaneDepth {
            priority,
            queued: 0,
            unreadable: false,
        }
    }
}

/// The five lanes, most urgent first, all empty.
pub fn empty_lanes() -> Vec<LaneDepth> {
    LANES.iter().map(|&p| LaneDepth::empty(p)).collect()
}

/// The five lanes of a queue whose default lane holds `default_queued`
/// and whose other lanes are `others` (any order; a lane not given is
/// empty), most urgent first.
pub fn lanes_of(default_queued: u64, others: &[LaneDepth]) -> Vec<LaneDepth> {
    let mut lanes = empty_lanes();
    for lane in &mut lanes {
        if lane.priority == DEFAULT {
            lane.queued = default_queued;
        } else if let Some(o) = others.iter().find(|o| o.priority == lane.priority) {
            *lane = *o;
        }
    }
    lanes
}

/// Adds `part`'s lanes into `total`'s (a service's sum over its shards):
/// depths add up, and a lane unreadable in any shard is marked.
pub fn add_lanes(total: &mut [LaneDepth], part: &[LaneDepth]) {
    for lane in total.iter_mut() {
        if let Some(p) = part.iter().find(|p| p.priority == lane.priority) {
            lane.queued = lane.queued.saturating_add(p.queued);
            lane.unreadable |= p.unreadable;
        }
    }
}

/// Whether any lane but the default one holds calls or is unreadable:
/// whether a view that shows one line per service has lanes to show.
pub fn any_other_lane(lanes: &[LaneDepth]) -> bool {
    lanes
        .iter()
        .any(|l| l.priority != DEFAULT && (l.queued > 0 || l.unreadable))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queues_lanes_are_its_default_queue_and_the_others_given() {
        let urgent = LaneDepth {
            priority: 1,
            queued: 4,
            unreadable: false,
        };
        let broken = LaneDepth {
            priority: 5,
            queued: 0,
            unreadable: true,
        };
        let lanes = lanes_of(7, &[broken, urgent]);
        let depths: Vec<_> = lanes.iter().map(|l| (l.priority, l.queued)).collect();
        assert_eq!(depths, [(1, 4), (2, 0), (3, 7), (4, 0), (5, 0)]);
        assert!(lanes[4].unreadable && any_other_lane(&lanes));
        assert!(!any_other_lane(&lanes_of(7, &[])));

        let mut total = empty_lanes();
        add_lanes(&mut total, &lanes);
        add_lanes(&mut total, &lanes_of(1, &[]));
        let depths: Vec<_> = total.iter().map(|l| l.queued).collect();
        assert_eq!(depths, [4, 0, 8, 0, 0]);
        assert!(total[4].unreadable);
    }
}
