//! A call's priority: which of a queue's five lanes it waits in, and how
//! workers share their slots between the lanes.
//!
//! Priorities run from [`HIGHEST`] (1, taken first) to [`LOWEST`] (5), and
//! [`DEFAULT`] (3) is the middle, as in BullMQ and Temporal, where a
//! smaller number is the more urgent. A call at the default priority waits
//! where every call always did, on the queue's stream `P:{Q}:jobs`; a call
//! at another priority `p` waits on `P:{Q}:jobs:<p>`, a stream of its own
//! in the same slot (so one script still sees every lane of a queue).
//! Everything else of the queue (schedule, dead letters, cancellations,
//! idempotency and group keys) is shared by its lanes: a retried or delayed
//! call goes back onto the lane its message's `priority` names.
//!
//! Workers take from the lanes by weight, never strictly: of every
//! `sum of weights` starts when every lane has work, lane `p` gets
//! [`weight`]`(p)` (256, 64, 16, 4, 1), so a lane is taken 4 times as often
//! as the next less urgent one, and the least urgent still gets at least 1
//! start in 341 under any load: a flood of urgent work delays the rest but
//! never starves it. FIFO holds within a lane. docs/PROTOCOL.md,
//! "Priorities", is the normative text.
//!
//! Inside a worker a lane is a queue name of its own, `Q^p`
//! ([`lane_queue`]), whose keys [`crate::Keys`] builds under `Q`'s hash
//! tag: only its stream differs from `Q`'s.
//!
//! ```
//! use rpc_protocol::priority;
//! assert_eq!(priority::lane_queue("Calc", 1), "Calc^1");
//! assert_eq!(priority::lane_queue("Calc", priority::DEFAULT), "Calc");
//! assert_eq!(priority::split_lane("Calc~2^5"), ("Calc~2", 5));
//! assert_eq!(priority::split_lane("Calc"), ("Calc", priority::DEFAULT));
//! assert_eq!(priority::weight(1), 256);
//! ```

use std::borrow::Cow;

/// The most urgent priority.
pub const HIGHEST: u8 = 1;
/// The least urgent priority.
pub const LOWEST: u8 = 5;
/// A call's priority when none is given: the middle.
pub const DEFAULT: u8 = 3;

/// What separates a queue's name from its lane in a worker's queue names.
/// Not a character of a schema identifier nor of a shard mark.
pub const LANE_SEPARATOR: char = '^';

/// Whether `p` is a priority.
pub fn is_priority(p: u8) -> bool {
    (HIGHEST..=LOWEST).contains(&p)
}

/// Lane `p`'s share of a worker's starts while every lane has work:
/// `4^(LOWEST - p)`.
pub fn weight(p: u8) -> u32 {
    let p = p.clamp(HIGHEST, LOWEST);
    4u32.pow(u32::from(LOWEST - p))
}

/// The worker's queue name of lane `p` of queue `queue`: the queue itself
/// for the default priority, `queue^p` for the others.
pub fn lane_queue(queue: &str, p: u8) -> Cow<'_, str> {
    if p == DEFAULT || !is_priority(p) {
        Cow::Borrowed(queue)
    } else {
        Cow::Owned(format!("{queue}{LANE_SEPARATOR}{p}"))
    }
}

/// The queue and lane of a worker's queue name: `("Q", p)` for `Q^p` with
/// `p` a priority other than the default, else the name itself at the
/// default priority.
pub fn split_lane(queue: &str) -> (&str, u8) {
    match queue.rsplit_once(LANE_SEPARATOR) {
        Some((base, lane)) if !base.is_empty() => match lane.parse::<u8>() {
            Ok(p) if is_priority(p) && p != DEFAULT && lane.len() == 1 => (base, p),
            _ => (queue, DEFAULT),
        },
        _ => (queue, DEFAULT),
    }
}

/// The lanes other than the default one, most urgent first.
pub const OTHER_LANES: [u8; 4] = [1, 2, 4, 5];

/// Every lane, most urgent first.
pub const LANES: [u8; 5] = [1, 2, 3, 4, 5];

/// A priority out of range, as a client or a worker says it.
pub fn out_of_range(p: i64) -> String {
    format!("`priority` {p} is outside {HIGHEST}..={LOWEST} (1 is the most urgent, {DEFAULT} the default)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_round_trip() {
        for q in ["Calc", "Calc~3", "a^b"] {
            for p in LANES {
                assert_eq!(split_lane(&lane_queue(q, p)), (q, p), "{q} {p}");
            }
        }
    }

    #[test]
    fn odd_names_are_default_lanes() {
        for q in ["^1", "Q^3", "Q^0", "Q^6", "Q^01", "Q^", "Q^x"] {
            assert_eq!(split_lane(q), (q, DEFAULT), "{q}");
        }
    }

    #[test]
    fn weights_fall_by_four() {
        assert_eq!(LANES.map(weight), [256, 64, 16, 4, 1]);
        assert_eq!(LANES.iter().map(|&p| weight(p)).sum::<u32>(), 341);
    }
}
