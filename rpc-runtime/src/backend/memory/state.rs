//! What a memory broker holds, shaped after the Redis keys it stands in
//! for: per queue the ready jobs, the leases and the dead letters; the
//! inboxes, kept results, progress, schedule, cancellations, pause flags,
//! idempotency keys and periodic records, workers' beats and controls.
//!
//! A queue's priority lanes (`lanes.rs`) are entries of [`State::queues`]
//! of their own (`Q^p`) for their stream part alone; every other map is
//! keyed by the lane-free queue name, shared by its lanes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use rpc_protocol::worker::WorkerControl;

use rpc_protocol::priority::{self, lane_queue, split_lane, OTHER_LANES};

use super::lanes::lane_free;
use crate::backend::control::DeadLetter;
use crate::backend::failures::RecordedFailure;

/// One lane's stream (`P:{Q}:jobs` or `P:{Q}:jobs:<p>`), and, on the
/// default lane's entry alone, the dead letters its queue's lanes share.
#[derive(Default)]
pub(super) struct Queue {
    pub(super) ready: VecDeque<Ready>,
    pub(super) leased: HashMap<u64, Lease>,
    /// Kept on the lane-free name's entry (`State::dead_letters_mut`).
    pub(super) dead: VecDeque<DeadLetter>,
    /// Jobs ever added (Redis's `entries-added`).
    pub(super) added: u64,
    /// The consumers that read this queue, with when they last did.
    pub(super) consumers: HashMap<String, Instant>,
}

/// A queued job.
pub(super) struct Ready {
    pub(super) token: u64,
    /// When it was queued (ms since the epoch).
    pub(super) enqueued_ms: u64,
    pub(super) payload: Vec<u8>,
    /// Cancelled while it was scheduled (Redis's `c` field).
    pub(super) cancelled: bool,
}

pub(super) struct Lease {
    pub(super) payload: Vec<u8>,
    pub(super) cancelled: bool,
    pub(super) enqueued_ms: u64,
    pub(super) consumer: String,
    pub(super) since: Instant,
    pub(super) deliveries: u32,
}

pub(super) struct Inbox {
    pub(super) replies: VecDeque<Vec<u8>>,
    pub(super) expires: Instant,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) next_token: u64,
    pub(super) queues: HashMap<String, Queue>,
    pub(super) inboxes: HashMap<String, Inbox>,
    pub(super) results: HashMap<String, (Vec<u8>, Instant)>,
    /// Calls' newest progress, with when it expires (`progress.rs`).
    pub(super) progress: HashMap<String, (Vec<u8>, Instant)>,
    /// Per queue: scheduled jobs by token, with when they are due (ms
    /// since the epoch).
    pub(super) scheduled: HashMap<String, HashMap<String, (u64, Vec<u8>)>>,
    /// Per queue: cancelled call ids, with when (ms since the epoch).
    pub(super) cancelled: HashMap<String, HashMap<String, u64>>,
    /// Shard counts by service: (count, seen).
    pub(super) shard_counts: HashMap<String, (Option<u32>, Option<u32>)>,
    /// Paused queues.
    pub(super) paused: HashSet<String>,
    /// Idempotency keys by (queue, key): the call id, its fingerprint, and
    /// when the key is forgotten.
    pub(super) once: HashMap<(String, String), (String, String, Instant)>,
    /// Per queue: the periodic jobs' definitions and last ticks.
    pub(super) periodic: HashMap<String, PeriodicRecords>,
    /// Daily counts by (queue, day): processed, failed (`daily_counts.rs`).
    pub(super) daily: HashMap<(String, String), (u64, u64)>,
    /// Per queue: recent failures, oldest first, with the next entry's
    /// sequence number (`failures.rs`).
    pub(super) failures: HashMap<String, (VecDeque<RecordedFailure>, u64)>,
    /// Workers' beats by id, with when they expire.
    pub(super) beats: HashMap<String, (Vec<u8>, Instant)>,
    /// Per queue: worker id -> its last beat (ms since the epoch).
    pub(super) registries: HashMap<String, HashMap<String, u64>>,
    /// Operators' controls by worker id, with when they expire.
    pub(super) controls: HashMap<String, (WorkerControl, Instant)>,
    /// Rate limits' states by (service, job or `None` for the service's
    /// own), with their turns (`rate_limits.rs`).
    pub(super) rates: HashMap<(String, Option<String>), Limiter>,
    /// Per-key concurrency by (queue, job, key): `group_slots.rs`.
    pub(super) groups: HashMap<(String, String, String), Group>,
}

/// One limit's state: what `P:{S}:rate[:<job>]` and its turns hold
/// (`rate_limits.rs`).
#[derive(Default)]
pub(super) struct Limiter {
    /// When the next start is due at the steady rate, µs.
    pub(super) tat: u64,
    pub(super) rate: Option<String>,
    pub(super) allowed: u64,
    pub(super) waited: u64,
    pub(super) second: u64,
    pub(super) this_second: u64,
    pub(super) last_second: u64,
    /// Calls' turns, µs.
    pub(super) turns: HashMap<String, u64>,
}

impl Limiter {
    /// Counts a start in second `second`.
    pub(super) fn started(&mut self, second: u64) {
        if self.second == second {
            self.this_second += 1;
        } else {
            self.last_second = if self.second + 1 == second {
                self.this_second
            } else {
                0
            };
            self.second = second;
            self.this_second = 1;
        }
        self.allowed += 1;
    }
}

/// One job's group key (`group_slots.rs`): the calls holding slots, and
/// the parked messages, as Redis keeps them in a sorted set and a list.
#[derive(Default)]
pub(super) struct Group {
    /// Call id -> when its slot lapses (ms since the epoch).
    pub(super) running: HashMap<String, u64>,
    /// Parked job messages, oldest first.
    pub(super) waiting: VecDeque<Vec<u8>>,
}

/// One queue's periodic jobs, as Redis keeps them in two hashes.
#[derive(Default)]
pub(super) struct PeriodicRecords {
    /// Name -> definition JSON.
    pub(super) definitions: HashMap<String, Vec<u8>>,
    /// Name -> the last tick enqueued (ms since the epoch).
    pub(super) last: HashMap<String, u64>,
}

impl State {
    /// Appends a job to a queue's lane, `queue` being the lane's name (the
    /// caller wakes the takers).
    pub(super) fn enqueue(&mut self, queue: &str, payload: Vec<u8>, cancelled: bool) {
        self.next_token += 1;
        let token = self.next_token;
        let q = self.queues.entry(queue.to_owned()).or_default();
        q.added += 1;
        q.ready.push_back(Ready {
            token,
            enqueued_ms: rpc_protocol::time::unix_ms(SystemTime::now()),
            payload,
            cancelled,
        });
    }

    /// Puts a job on the schedule of `queue`'s lanes under `token`, due
    /// after `delay`, unless the token is taken: a scheduled job is never
    /// replaced (as complete.lua's `S`). Returns the job back when another
    /// message holds the token; the same message again is taken as done.
    pub(super) fn schedule(
        &mut self,
        queue: &str,
        token: &str,
        payload: Vec<u8>,
        delay: Duration,
    ) -> Result<(), Vec<u8>> {
        let due =
            rpc_protocol::time::unix_ms(SystemTime::now()).saturating_add(delay.as_millis() as u64);
        let scheduled = self
            .scheduled
            .entry(lane_free(queue).to_owned())
            .or_default();
        match scheduled.get(token) {
            Some((_, held)) if *held == payload => Ok(()),
            Some(_) => Err(payload),
            None => {
                scheduled.insert(token.to_owned(), (due, payload));
                Ok(())
            }
        }
    }

    /// Notes that `consumer` read `queue` now (Redis's consumer idle time).
    pub(super) fn seen(&mut self, queue: &str, consumer: &str) {
        let q = self.queues.entry(queue.to_owned()).or_default();
        match q.consumers.get_mut(consumer) {
            Some(at) => *at = Instant::now(),
            None => {
                q.consumers.insert(consumer.to_owned(), Instant::now());
            }
        }
    }
}

/// A queue's priority lanes in the state (`lanes.rs` names them).
impl State {
    /// Which of `queue`'s lanes other than the default exist (bit `p - 1`
    /// for lane `p`), as `poll.lua` reports them: a lane exists once
    /// something was pushed onto it or a worker prepared it.
    pub(super) fn lane_bits(&self, queue: &str) -> u8 {
        let queue = lane_free(queue);
        OTHER_LANES
            .iter()
            .filter(|&&p| self.queues.contains_key(lane_queue(queue, p).as_ref()))
            .fold(0, |bits, &p| bits | 1 << (p - 1))
    }

    /// The lanes of `service` that exist, most urgent first: every lane of
    /// a queue's name, the one lane of a lane's name (`Q^p`).
    pub(super) fn lanes(&self, service: &str) -> Vec<&Queue> {
        match split_lane(service) {
            (queue, priority::DEFAULT) => priority::LANES
                .iter()
                .filter_map(|&p| self.queues.get(lane_queue(queue, p).as_ref()))
                .collect(),
            _ => self.queues.get(service).into_iter().collect(),
        }
    }

    /// The dead letters of `queue`'s lanes, which they share: kept on the
    /// default lane's entry.
    pub(super) fn dead_letters(&self, queue: &str) -> Option<&VecDeque<DeadLetter>> {
        self.queues.get(lane_free(queue)).map(|q| &q.dead)
    }

    /// The dead letters of `queue`'s lanes, to add to or take from.
    pub(super) fn dead_letters_mut(&mut self, queue: &str) -> &mut VecDeque<DeadLetter> {
        &mut self
            .queues
            .entry(lane_free(queue).to_owned())
            .or_default()
            .dead
    }

    /// The queues that exist, each once whatever lanes it has, sorted.
    pub(super) fn lane_free_queues(&self) -> Vec<String> {
        let mut queues: Vec<String> = self
            .queues
            .keys()
            .map(|q| lane_free(q).to_owned())
            .collect();
        queues.sort();
        queues.dedup();
        queues
    }
}

/// The token of entry `n` added at `ms`, shaped like a Redis stream entry
/// id (`<ms>-<n>`), so tools that check tokens take it alike.
pub(super) fn token(ms: u64, n: u64) -> String {
    format!("{ms}-{n}")
}

/// The entry number of a token ([`token`]); `None` for anything else.
pub(super) fn entry_number(token: &str) -> Option<u64> {
    token.split_once('-')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scheduled_job_is_never_replaced_under_its_token() {
        let mut state = State::default();
        let hour = Duration::from_secs(3600);
        assert_eq!(state.schedule("S", "c", b"first".to_vec(), hour), Ok(()));
        let due = state.scheduled["S"]["c"].0;
        // The same message again: taken as done.
        assert_eq!(
            state.schedule("S", "c", b"first".to_vec(), hour * 2),
            Ok(())
        );
        // Another: handed back, for the dead-letter stream.
        assert_eq!(
            state.schedule("S", "c", b"other".to_vec(), Duration::ZERO),
            Err(b"other".to_vec())
        );
        assert_eq!(state.scheduled["S"]["c"], (due, b"first".to_vec()));
    }
}
