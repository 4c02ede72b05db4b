//! Handing back a job this worker does not know, for a worker that does.
//!
//! During a rolling deploy, workers of an older schema share a queue with
//! newer ones, and a job added in the new schema reaches old workers too.
//! An old worker hands such a job back (queued again with `handoffs + 1`)
//! instead of answering `unknown_job`, at most
//! [`MAX_HANDOFFS`](rpc_protocol::limits::MAX_HANDOFFS) times.
//!
//! A hand-back goes through the service's schedule, due after a short
//! delay on Redis's clock, never straight onto the jobs stream. Straight on
//! the stream, the worker that handed it back read it again at once: its
//! completion travels in the same pipeline as its next blocking read, so
//! its own read was first in line for the new entry. 32 hand-backs were
//! spent in about 60 ms, and under load 27 to 43 of 200 calls were answered
//! `unknown_job` with a new worker right beside the old one (issue 19). On
//! the schedule, the job comes back only after its delay, when every
//! worker's reader has the same chance at it.
//!
//! The delays make the limit one of time as well as of count (a count
//! alone is spent in milliseconds by a worker that re-reads its own
//! hand-backs): hand-back `k` (1 to 32) waits `20 ms + 2 ms × (k − 1)`,
//! raised by a random 0 to 50 % so that jobs handed back together do not
//! come back together. A job far from its deadline is so answered
//! `unknown_job` no sooner than 1.632 s (the sum of the 32 least delays)
//! after its first hand-back.
//!
//! Near the deadline, the delay is cut so that the job comes back with
//! room left to run: half the time it has left, but at least
//! [`LEAST_ROOM`] and at most [`MOST_ROOM`]. A hand-back whose delay would
//! be cut below half its least delay is not made: the caller is answered
//! `unknown_job` at once, with the reason, like a retry that would start
//! too late, rather than left to time out. So a call of 100 ms that reaches
//! an old worker is still handed back (two or three times, with shorter
//! delays), and a
//! call of a second no worker knows is answered some 35 to 70 ms before
//! its deadline, not at the last moment: on a loaded machine a trip
//! through the schedule sometimes takes 50 to 130 ms more than its delay,
//! and such an answer would race the caller's own timer.
//!
//! Each trip through the schedule ends a little after its due time (when a
//! worker's next look moves it: about 3 ms on a loaded machine), and the
//! job's new entry, stamped then, would carry the call's deadline that much
//! later every time. A hand-back counts [`TRIP_ALLOWANCE`] of the call's
//! time for it, so that 32 trips do not, as a rule, carry the deadline past
//! the caller's.

use std::time::Duration;

use rpc_protocol::limits::MAX_HANDOFFS;

use super::jitter::jitter;

/// The least delay of the first hand-back, in ms.
const FIRST_DELAY_MS: u64 = 20;

/// How much longer each further hand-back waits at least, in ms.
const DELAY_STEP_MS: u64 = 2;

/// The least time a handed-back job comes back with, left to its deadline.
const LEAST_ROOM: Duration = Duration::from_millis(20);

/// The most room a hand-back keeps (far from the deadline, half the time
/// left would be more).
const MOST_ROOM: Duration = Duration::from_millis(100);

/// How much of the call's time a hand-back counts for its trip through the
/// schedule beyond its delay.
pub(super) const TRIP_ALLOWANCE: Duration = Duration::from_millis(5);

/// What to do with a job this worker does not know.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum HandBack {
    /// Hand it back: on the schedule, due after this delay.
    After(Duration),
    /// Answer `unknown_job` with this reason.
    Answer(String),
}

/// Decides about a job of `service` named `job` that this worker does not
/// know, handed back `handoffs` times so far, with `left` to its deadline
/// (`None`: it has none).
pub(super) fn hand_back(
    handoffs: u32,
    left: Option<Duration>,
    service: &str,
    job: &str,
) -> HandBack {
    let nobody = format!("no worker that took it knows job `{job}` of service `{service}`");
    if handoffs >= MAX_HANDOFFS {
        return HandBack::Answer(format!("{nobody} (handed back {MAX_HANDOFFS} times)"));
    }
    let delay = delay(handoffs);
    let Some(left) = left else {
        return HandBack::After(delay);
    };
    let room = (left / 2).clamp(LEAST_ROOM, MOST_ROOM);
    let delay = delay.min(left.saturating_sub(room + TRIP_ALLOWANCE));
    if delay < least_delay(handoffs) / 2 {
        return HandBack::Answer(format!(
            "{nobody} (handed back {handoffs} times; too little of the call's time is left for another hand-back)"
        ));
    }
    HandBack::After(delay)
}

/// The least delay of the hand-back after `handoffs` earlier ones.
fn least_delay(handoffs: u32) -> Duration {
    Duration::from_millis(FIRST_DELAY_MS + DELAY_STEP_MS * u64::from(handoffs))
}

/// The delay of the hand-back after `handoffs` earlier ones, far from the
/// deadline: its least delay raised by a random 0 to 50 %.
fn delay(handoffs: u32) -> Duration {
    let least = least_delay(handoffs).as_millis() as u64;
    Duration::from_millis(least + jitter(least / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 19: a hand-back queued at once was read back at once by the
    /// worker that made it; every hand-back now waits on the schedule.
    #[test]
    fn every_hand_back_waits_on_the_schedule_for_a_delay_that_grows() {
        let mut before = Duration::ZERO;
        for handoffs in 0..MAX_HANDOFFS {
            let least = least_delay(handoffs);
            assert!(least >= Duration::from_millis(FIRST_DELAY_MS));
            assert!(least > before, "hand-back {handoffs}: {least:?}");
            before = least;
            for left in [None, Some(Duration::from_secs(30))] {
                for _ in 0..50 {
                    match hand_back(handoffs, left, "S", "j") {
                        HandBack::After(d) => assert!(
                            d >= least && d <= least + least / 2,
                            "hand-back {handoffs}: {d:?} outside {least:?} + 50 %"
                        ),
                        other => panic!("hand-back {handoffs}: {other:?}"),
                    }
                }
            }
        }
    }

    /// The limit is in time as well as count: the 32 least delays add up to
    /// the documented span (PROTOCOL.md, "Unknown jobs").
    #[test]
    fn the_hand_backs_of_a_job_span_at_least_the_documented_time() {
        let total: Duration = (0..MAX_HANDOFFS).map(least_delay).sum();
        assert_eq!(total, Duration::from_millis(1_632));
    }

    #[test]
    fn a_job_handed_back_to_the_limit_is_answered_with_the_reason() {
        let HandBack::Answer(reason) = hand_back(MAX_HANDOFFS, None, "Calculator", "sum") else {
            panic!("not answered");
        };
        assert_eq!(
            reason,
            "no worker that took it knows job `sum` of service `Calculator` (handed back 32 times)"
        );
    }

    /// Near the deadline the delay is cut so the job comes back with room
    /// to run: a short call reaching an old worker is still handed back.
    #[test]
    fn a_short_call_is_still_handed_back_with_room_to_run() {
        for (left_ms, room_ms) in [(100, 50), (60, 30), (1_000, 100), (35, 20)] {
            let left = Duration::from_millis(left_ms);
            let room = Duration::from_millis(room_ms);
            for _ in 0..50 {
                match hand_back(0, Some(left), "S", "j") {
                    HandBack::After(d) => {
                        assert!(d >= least_delay(0) / 2, "{left_ms} ms left: {d:?}");
                        assert!(
                            d + TRIP_ALLOWANCE + room <= left,
                            "{left_ms} ms left: a delay of {d:?} leaves less than {room:?}"
                        );
                    }
                    other => panic!("{left_ms} ms left: {other:?}"),
                }
            }
        }
    }

    /// A hand-back that would come back with too little time left to run
    /// is not made: the caller learns why at once instead of timing out.
    #[test]
    fn a_hand_back_too_near_the_deadline_answers_at_once() {
        // The fourth hand-back's least delay is 26 ms: cut below 13 ms, it
        // is not made.
        for left_ms in [0, 1, 10, 25, 37] {
            let HandBack::Answer(reason) =
                hand_back(3, Some(Duration::from_millis(left_ms)), "S", "j")
            else {
                panic!("handed back with {left_ms} ms left");
            };
            assert!(
                reason.ends_with("(handed back 3 times; too little of the call's time is left for another hand-back)"),
                "{reason}"
            );
        }
    }
}
