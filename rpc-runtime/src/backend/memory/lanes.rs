//! Priority lanes in the memory broker, named as on Redis
//! ([`rpc_protocol::priority`]): lane `p` of queue `Q` is the queue entry
//! `Q^p` ([`lane_queue`]), `Q` itself for the default lane. Only a lane's
//! stream part (its ready jobs, leases and consumers) is its own;
//! everything else the broker keeps by queue name (schedule,
//! cancellations, dead letters, pause flag, idempotency keys, periodic
//! records, counts, group and rate-limit state) is keyed by the lane-free
//! name ([`lane_free`]), as [`rpc_protocol::Keys`] maps every key of `Q^p`
//! but the stream to `Q`'s.
//!
//! A call leaving the schedule, a group's waiting list or a periodic tick
//! goes onto the lane its message's `priority` names ([`lane_of_message`]),
//! read as leniently as `poll.lua`'s `lane_of`: a message that does not
//! parse goes onto the default lane, where the worker refuses it.
//!
//! Names only: what the broker's state says of a queue's lanes (which
//! exist, where their dead letters are) is in `state.rs`.

use std::borrow::Cow;

use rpc_protocol::priority::{self, lane_queue, split_lane};

/// A message larger than this is not decoded for its priority (the
/// scripts' `lane_of` stops at the same size): it goes onto the default
/// lane.
const MAX_DECODED_BYTES: usize = 1024 * 1024;

/// The queue a lane belongs to: `Q` for `Q^p` and for `Q`.
pub(super) fn lane_free(queue: &str) -> &str {
    split_lane(queue).0
}

/// The lane of `queue` (any lane of it) that `message` goes onto: the one
/// its `priority` field names, the default lane when it names none or the
/// message does not parse.
pub(super) fn lane_of_message<'a>(queue: &'a str, message: &[u8]) -> Cow<'a, str> {
    lane_queue(lane_free(queue), message_priority(message))
}

/// A message's priority as the scripts read it: its top-level `priority`
/// when that is a priority, else the default.
fn message_priority(message: &[u8]) -> u8 {
    #[derive(serde::Deserialize)]
    struct Priority {
        #[serde(default)]
        priority: Option<i64>,
    }
    if message.len() > MAX_DECODED_BYTES {
        return priority::DEFAULT;
    }
    serde_json::from_slice::<Priority>(message)
        .ok()
        .and_then(|m| m.priority)
        .and_then(|p| u8::try_from(p).ok())
        .filter(|p| priority::is_priority(*p))
        .unwrap_or(priority::DEFAULT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_goes_onto_the_lane_its_priority_names() {
        let lane = |m: &str| lane_of_message("Q~2^4", m.as_bytes()).into_owned();
        assert_eq!(lane(r#"{"v":1,"id":"a","priority":1}"#), "Q~2^1");
        assert_eq!(lane(r#"{"v":1,"id":"a","priority":5}"#), "Q~2^5");
        // The default, none, garbage and out of range: the default lane.
        for m in [
            r#"{"v":1,"id":"a","priority":3}"#,
            r#"{"v":1,"id":"a"}"#,
            r#"{"v":1,"id":"a","priority":9}"#,
            r#"{"v":1,"id":"a","priority":"1"}"#,
            r#"{"v":1,"id":"a","priority":null}"#,
            "not json",
        ] {
            assert_eq!(lane(m), "Q~2", "{m}");
        }
    }
}
