//! The priority lanes a worker reads ([`rpc_protocol::priority`]).
//!
//! A queue's lanes other than the default one are read once a lifecycle
//! poll of the queue has seen their stream (the first call sent at a
//! priority creates it), and from then on: the runtime never deletes a
//! stream. So a worker of a service nobody sends priorities to reads as it
//! always did, one stream per queue, and pays nothing for the feature.
//! docs/PROTOCOL.md, "Priorities", says how soon a new lane is noticed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use rpc_protocol::priority::{lane_queue, split_lane, LANES, OTHER_LANES};

use crate::sync::lock;

/// The lanes seen, per queue.
#[derive(Default)]
pub(super) struct Lanes {
    /// Some served queue has a lane other than the default.
    any: AtomicBool,
    /// Queue -> its lanes seen (bit `p - 1` for lane `p`).
    seen: Mutex<HashMap<String, u8>>,
}

impl Lanes {
    /// Whether any queue has a lane other than the default (one relaxed
    /// load: the taker asks before every read).
    pub(super) fn any(&self) -> bool {
        self.any.load(Ordering::Relaxed)
    }

    /// Learns the lanes of `queue` a poll reported (`bits` as
    /// `LifecyclePoll::lanes`); returns the lane queues new to this worker.
    pub(super) fn learn(&self, queue: &str, bits: u8) -> Vec<String> {
        let mut seen = lock(&self.seen);
        let known = seen.get(queue).copied().unwrap_or(0);
        let new = bits & !known & lane_bits();
        if new == 0 {
            return Vec::new();
        }
        seen.insert(queue.to_owned(), known | new);
        self.any.store(true, Ordering::Relaxed);
        OTHER_LANES
            .iter()
            .filter(|&&p| new & bit(p) != 0)
            .map(|&p| lane_queue(queue, p).into_owned())
            .collect()
    }

    /// The lanes of `queues` this worker reads, grouped by priority (index
    /// 0 is priority 1): every queue's default lane, and the others seen.
    pub(super) fn by_lane(&self, queues: &[String]) -> [Vec<String>; 5] {
        let seen = lock(&self.seen);
        let mut out: [Vec<String>; 5] = Default::default();
        for queue in queues {
            let bits = seen.get(queue.as_str()).copied().unwrap_or(0) | bit(3);
            for p in LANES {
                if bits & bit(p) != 0 {
                    out[usize::from(p - 1)].push(lane_queue(queue, p).into_owned());
                }
            }
        }
        out
    }

    /// `queues` and the lanes of them seen: what leases live in.
    pub(super) fn with_lanes(&self, queues: &[String]) -> Vec<String> {
        if !self.any() {
            return queues.to_vec();
        }
        self.by_lane(queues).into_iter().flatten().collect()
    }
}

/// The queue a lane belongs to (`Q^p` -> `Q`): the worker's per-queue state
/// (busy, pause, cancellations, group sweeps) is kept by queue.
pub(super) fn queue_of(lane: &str) -> &str {
    split_lane(lane).0
}

fn bit(p: u8) -> u8 {
    1 << (p - 1)
}

fn lane_bits() -> u8 {
    OTHER_LANES.iter().fold(0, |bits, &p| bits | bit(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_are_learned_once_and_grouped_by_priority() {
        let lanes = Lanes::default();
        assert!(!lanes.any());
        assert_eq!(lanes.by_lane(&["S".into()])[2], ["S"]);
        assert_eq!(lanes.learn("S~1", 0b1_0001 | 0b100), ["S~1^1", "S~1^5"]);
        assert!(lanes.any());
        assert!(lanes.learn("S~1", 0b1_0001).is_empty());
        let by = lanes.by_lane(&["S".into(), "S~1".into()]);
        assert_eq!(by[0], ["S~1^1"]);
        assert_eq!(by[2], ["S", "S~1"]);
        assert_eq!(by[4], ["S~1^5"]);
        assert_eq!(queue_of("S~1^5"), "S~1");
    }
}
