//! Backing off the lifecycle poll of idle queues as the fleet grows,
//! without widening the window in which a cancelled call still runs.
//!
//! Each worker polls each of its queues (`poll.lua`): every 100 ms while
//! busy there, and every second while idle. A fleet of F workers then
//! polls an idle queue F times a second, and 100 workers serving 50
//! services of 8 shards would run 40,000 scripts a second doing nothing.
//! So an idle queue's poll waits [`IDLE_EVERY`] times the number of live
//! workers of its service (read by the janitor from the registry every
//! beat TTL), at most [`MAX_IDLE_FACTOR`] times: the fleet as a whole
//! still looks at every idle queue about once a second (0.1 F times a
//! second past 10 workers), and at every busy one ten times a second per
//! busy worker.
//!
//! What an idle poll is for: a pause, a job put on the schedule by a
//! worker that died, and the calls cancelled while queued, which a worker
//! skips when it takes them. The last must not wait for a slower poll: a
//! job taken from a queue whose last poll is older than [`FRESH_FOR`]
//! asks the broker whether its call was cancelled (one `ZSCORE`,
//! `Control::cancelled_at`), as a worker that had to forget cancellations
//! does. While no service has more than one worker nothing backs off, and
//! the check is one atomic load.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::sync::lock;

/// How often an idle queue is polled by a worker alone on its service.
pub(super) const IDLE_EVERY: Duration = Duration::from_secs(1);

/// The most an idle poll backs off, as a multiple of [`IDLE_EVERY`].
pub(super) const MAX_IDLE_FACTOR: u32 = 10;

/// How old a queue's last poll may be for what it said about
/// cancellations to be the whole answer.
pub(super) const FRESH_FOR: Duration = Duration::from_millis(1_500);

#[derive(Default)]
pub(super) struct IdlePolls {
    /// Live workers per service (this one included), as last read.
    fleet: Mutex<HashMap<String, u32>>,
    /// When each queue was last polled.
    polled: Mutex<HashMap<String, Instant>>,
    /// Whether any service's idle poll backs off (more than one worker):
    /// until then no poll is older than a second and a bit, and a job's
    /// check costs one atomic load.
    backed_off: AtomicBool,
}

impl IdlePolls {
    /// Records how many live workers serve `service`.
    pub(super) fn fleet_is(&self, service: &str, workers: usize) {
        let n = u32::try_from(workers).unwrap_or(u32::MAX).max(1);
        if n > 1 {
            self.backed_off.store(true, Ordering::Relaxed);
        }
        lock(&self.fleet).insert(service.to_owned(), n);
    }

    /// How long an idle `queue` waits between polls.
    pub(super) fn idle_every(&self, queue: &str) -> Duration {
        let service = rpc_protocol::shards::service_of_queue(queue);
        let factor = lock(&self.fleet)
            .get(service)
            .copied()
            .unwrap_or(1)
            .clamp(1, MAX_IDLE_FACTOR);
        IDLE_EVERY * factor
    }

    /// Records a poll of `queue` that answered.
    pub(super) fn polled(&self, queue: &str, at: Instant) {
        let mut polled = lock(&self.polled);
        match polled.get_mut(queue) {
            Some(t) => *t = at,
            None => {
                polled.insert(queue.to_owned(), at);
            }
        }
    }

    /// Whether what the last poll of `queue` said may be out of date.
    pub(super) fn is_stale(&self, queue: &str) -> bool {
        if !self.backed_off.load(Ordering::Relaxed) {
            return false;
        }
        lock(&self.polled)
            .get(queue)
            .is_none_or(|at| at.elapsed() > FRESH_FOR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_poll_backs_off_with_the_fleet_up_to_a_cap() {
        let polls = IdlePolls::default();
        assert_eq!(polls.idle_every("S~3"), IDLE_EVERY);
        polls.fleet_is("S", 4);
        assert_eq!(polls.idle_every("S~3"), IDLE_EVERY * 4);
        polls.fleet_is("S", 1_000);
        assert_eq!(polls.idle_every("S"), IDLE_EVERY * MAX_IDLE_FACTOR);
        polls.fleet_is("S", 0);
        assert_eq!(polls.idle_every("S"), IDLE_EVERY);
    }

    #[test]
    fn a_poll_goes_stale() {
        let polls = IdlePolls::default();
        assert!(!polls.is_stale("S"), "a worker alone polls every second");
        polls.fleet_is("S", 2);
        assert!(polls.is_stale("S"), "never polled");
        polls.polled("S", Instant::now());
        assert!(!polls.is_stale("S"));
        let old = Instant::now()
            .checked_sub(FRESH_FOR + Duration::from_millis(1))
            .expect("the clock is past that");
        polls.polled("S", old);
        assert!(polls.is_stale("S"));
    }
}
