//! How many calls wait in each priority lane of a memory broker's queue,
//! for the operator's view (`service_view.rs` puts them in a queue's
//! figures).
//!
//! The memory broker keeps lane `p` of queue `Q` in its map of queues
//! under the lane's own name, `Q^p`
//! ([`lane_queue`](rpc_protocol::priority::lane_queue)), the default lane
//! under `Q` itself (`lanes.rs`): so a lane's depth is the calls ready in
//! the entry of that name, and a lane with no entry is empty.

use rpc_protocol::priority::{lane_queue, split_lane, DEFAULT};

use super::state::State;
use crate::backend::inspection::lanes::{empty_lanes, LaneDepth};

impl State {
    /// The five lanes of `service`, most urgent first: every lane of a
    /// queue's name, only its own of a lane's name (`Q^p`), as
    /// [`State::lanes`] reads them.
    pub(super) fn lane_depths(&self, service: &str) -> Vec<LaneDepth> {
        let (queue, only) = split_lane(service);
        let mut lanes = empty_lanes();
        for lane in lanes
            .iter_mut()
            .filter(|l| only == DEFAULT || l.priority == only)
        {
            lane.queued = self
                .queues
                .get(lane_queue(queue, lane.priority).as_ref())
                .map_or(0, |q| q.ready.len() as u64);
        }
        lanes
    }
}
