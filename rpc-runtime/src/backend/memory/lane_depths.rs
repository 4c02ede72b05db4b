//! The priority lanes of a memory broker's queue, for the operator's view
//! (`inspection.rs`).
//!
//! The memory broker keeps lane `p` of queue `Q` in its map of queues
//! under the lane's own name, `Q^p`
//! ([`lane_queue`](rpc_protocol::priority::lane_queue)), the default lane
//! under `Q` itself, as a worker names its lanes: so a lane's depth is
//! the calls ready in the entry of that name, and a lane with no entry is
//! empty.

use rpc_protocol::priority::{lane_queue, split_lane, OTHER_LANES};

use super::state::State;
use crate::backend::inspection::lanes::{lanes_of, LaneDepth};

impl State {
    /// The five lanes of queue `queue`, whose default lane holds
    /// `default_queued` calls ready, most urgent first.
    pub(super) fn lanes(&self, queue: &str, default_queued: u64) -> Vec<LaneDepth> {
        let base = split_lane(queue).0;
        let others: Vec<LaneDepth> = OTHER_LANES
            .iter()
            .map(|&priority| LaneDepth {
                priority,
                queued: self
                    .queues
                    .get(lane_queue(base, priority).as_ref())
                    .map_or(0, |q| q.ready.len() as u64),
                unreadable: false,
            })
            .collect();
        lanes_of(default_queued, &others)
    }
}
