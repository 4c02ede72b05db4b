//! What a service's page shows of its load beyond the counts: how many
//! calls wait at each priority (docs/PROTOCOL.md, "Priorities"), and its
//! busiest group keys with the calls holding their slots and the calls
//! parked behind them ("Per-key concurrency"). Both come bounded from the
//! inspector: five lanes, and the ten busiest keys of a look at no more
//! than 1,000, which the page says when it stopped there. Keys and job
//! names are cut like every name the page shows, and escaped by the
//! template.

use rpc_runtime::inspect::{any_other_lane, BusyGroupKeys, LaneDepth};

use crate::bounds;

/// One priority lane, in the page's table of them.
pub struct LaneRow {
    /// 1 (most urgent) to 5.
    pub priority: u8,
    /// Whether it is the default priority's lane.
    pub default: bool,
    pub queued: u64,
    /// Whether its stream (one shard's, at least) could not be read.
    pub unreadable: bool,
}

/// The lanes' rows, when any but the default has calls or is unreadable
/// (else none: a service that uses no priorities shows no table).
pub fn lane_rows(lanes: &[LaneDepth]) -> Vec<LaneRow> {
    if !any_other_lane(lanes) {
        return Vec::new();
    }
    lanes
        .iter()
        .map(|l| LaneRow {
            priority: l.priority,
            default: l.priority == rpc_protocol::priority::DEFAULT,
            queued: l.queued,
            unreadable: l.unreadable,
        })
        .collect()
}

/// One busy group key, in the page's table of them.
pub struct GroupKeyRow {
    pub job: String,
    pub key: String,
    /// `None`: its running set could not be read.
    pub running: Option<u64>,
    /// `None`: its waiting list could not be read.
    pub waiting: Option<u64>,
}

/// The busiest group keys of a service, as the page shows them.
pub struct GroupKeys {
    pub rows: Vec<GroupKeyRow>,
    /// Keys the look read.
    pub visited: u64,
    /// Calls running and parked over every key read, and keys at their
    /// limit (calls parked behind them).
    pub running: u64,
    pub waiting: u64,
    pub at_limit: u64,
    /// Whether the look stopped at its bound: busier keys may exist.
    pub capped: bool,
}

impl GroupKeys {
    /// Whether there is anything to show.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && !self.capped
    }
}

impl From<BusyGroupKeys> for GroupKeys {
    fn from(g: BusyGroupKeys) -> GroupKeys {
        GroupKeys {
            rows: g
                .keys
                .into_iter()
                .map(|k| GroupKeyRow {
                    job: bounds::name(&k.job),
                    key: bounds::name(&k.key),
                    running: k.running,
                    waiting: k.waiting,
                })
                .collect(),
            visited: g.visited,
            running: g.running,
            waiting: g.waiting,
            at_limit: g.at_limit,
            capped: g.capped,
        }
    }
}
