//! The broker's clock, as this process sees it.
//!
//! Times that steer a job are on the broker's clock, never on a caller's or
//! a worker's. A job's deadline is measured from the queue entry's broker
//! timestamp (a Redis stream id is Redis's time at `XADD`) plus the
//! `timeout_ms` the caller sent; a delayed call's `run_at_ms` is a broker
//! time. So a caller or a worker 30 s behind or ahead gets the deadline it
//! asked for. To compare with "now", a worker keeps the offset between its
//! own clock and the broker's, sampled with `TIME` at start and then by the
//! janitor, half the round trip counted on each side; a client samples it
//! when it connects and again every few minutes, to stamp `sent_ms` and
//! turn a delay into a `run_at_ms`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::backend::Broker;
use crate::error::Error;

/// A sample whose round trip took longer than this is too coarse to
/// replace one we have.
const COARSE_SAMPLE: Duration = Duration::from_millis(250);

/// The offset of the broker's clock from this machine's.
#[derive(Debug)]
pub(crate) struct BrokerClock {
    /// Broker time minus local time, in ms (0 until sampled: trust the
    /// local clock, as a worker that cannot ask the broker must).
    offset_ms: AtomicI64,
    /// Round trip of the sample the offset came from, in ms (`i64::MAX`:
    /// no sample yet).
    sample_rtt_ms: AtomicI64,
    /// When the last sample was taken, in ms after `origin` (`u64::MAX`:
    /// never).
    sampled_at_ms: AtomicU64,
    origin: Instant,
}

/// One reading of this machine's clock and the broker's: a call is
/// stamped from one, and every call of a batch from the same one (a batch
/// of 100,000 read the clocks six times a call).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reading {
    /// This machine's time, in ms since the Unix epoch.
    pub(crate) local_ms: u64,
    /// The broker's time, in ms since the Unix epoch (this machine's
    /// until the offset is sampled).
    pub(crate) broker_ms: u64,
    /// Whether the offset was ever sampled.
    pub(crate) sampled: bool,
}

impl Default for BrokerClock {
    fn default() -> Self {
        BrokerClock::new()
    }
}

impl BrokerClock {
    pub(crate) fn new() -> Self {
        BrokerClock {
            offset_ms: AtomicI64::new(0),
            sample_rtt_ms: AtomicI64::new(i64::MAX),
            sampled_at_ms: AtomicU64::new(u64::MAX),
            origin: Instant::now(),
        }
    }

    /// A clock `offset_ms` ahead of this machine's, as if sampled now.
    #[cfg(test)]
    pub(crate) fn with_offset_ms(offset_ms: i64) -> Self {
        let clock = BrokerClock::new();
        clock.offset_ms.store(offset_ms, Ordering::Relaxed);
        clock.sampled_at_ms.store(0, Ordering::Relaxed);
        clock
    }

    /// Whether the offset was sampled in the last `within` (a client
    /// samples again in the background when not).
    pub(crate) fn sampled_within(&self, within: Duration) -> bool {
        let at = self.sampled_at_ms.load(Ordering::Relaxed);
        at != u64::MAX
            && (self.origin.elapsed().as_millis() as u64).saturating_sub(at)
                < within.as_millis() as u64
    }

    /// Whether the offset was ever sampled (until then it is 0: this
    /// machine's clock stands in for the broker's).
    pub(crate) fn is_sampled(&self) -> bool {
        self.sampled_at_ms.load(Ordering::Relaxed) != u64::MAX
    }

    /// Asks the broker for its time and updates the offset.
    pub(crate) async fn sample(&self, backend: &dyn Broker) -> Result<(), Error> {
        let local_before = rpc_protocol::time::unix_ms(SystemTime::now()) as i64;
        let started = Instant::now();
        let broker = backend.broker_time_ms().await? as i64;
        let rtt = started.elapsed();
        let rtt_ms = rtt.as_millis() as i64;
        if rtt > COARSE_SAMPLE && self.sample_rtt_ms.load(Ordering::Relaxed) != i64::MAX {
            return Ok(());
        }
        let offset = broker - (local_before + rtt_ms / 2);
        self.offset_ms.store(offset, Ordering::Relaxed);
        self.sample_rtt_ms.store(rtt_ms, Ordering::Relaxed);
        self.sampled_at_ms
            .store(self.origin.elapsed().as_millis() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// The broker's time now, in ms since the Unix epoch.
    pub(crate) fn now_ms(&self) -> u64 {
        self.read().broker_ms
    }

    /// This machine's clock and the broker's, read once.
    pub(crate) fn read(&self) -> Reading {
        let local_ms = rpc_protocol::time::unix_ms(SystemTime::now());
        Reading {
            local_ms,
            broker_ms: (local_ms as i64)
                .saturating_add(self.offset_ms.load(Ordering::Relaxed))
                .max(0) as u64,
            sampled: self.is_sampled(),
        }
    }

    /// Broker time minus local time, in ms.
    pub(crate) fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }
}

/// When a job's time started, for its `timeout_ms` (broker clock, ms):
/// the queue entry's timestamp, or the sender's `sent_ms` when that is
/// earlier (the call waited in the intake before a worker moved it onto
/// the queue: that wait counts); for a delayed call, its `run_at_ms` when
/// that is later (its time starts when it is due).
pub(crate) fn started_ms(
    enqueued_ms: Option<u64>,
    sent_ms: Option<u64>,
    run_at_ms: Option<u64>,
) -> Option<u64> {
    let start = match (enqueued_ms, sent_ms) {
        (Some(entry), Some(sent)) => Some(entry.min(sent)),
        (entry, _) => entry,
    }?;
    Some(run_at_ms.map_or(start, |due| start.max(due)))
}

/// How long a job has left: from `timeout_ms` and when its time started
/// ([`started_ms`], measured on the broker's clock) when the message has
/// both, else from the absolute `deadline_ms` on this machine's clock
/// (messages from peers that predate `timeout_ms`). `None`: no deadline.
pub(crate) fn time_left(
    clock: &BrokerClock,
    timeout_ms: Option<u64>,
    started_ms: Option<u64>,
    deadline_ms: Option<u64>,
) -> Option<Duration> {
    match (timeout_ms, started_ms) {
        (Some(timeout), Some(started)) => {
            let due = started.saturating_add(timeout);
            Some(Duration::from_millis(due.saturating_sub(clock.now_ms())))
        }
        _ => deadline_ms.map(|d| {
            rpc_protocol::time::from_unix_ms(d)
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_counts_from_the_broker_timestamp_not_the_senders_clock() {
        let clock = BrokerClock::new();
        let now = clock.now_ms();
        // Enqueued 1 s ago (broker time) with 3 s to go: about 2 s left,
        // whatever absolute deadline the sender's clock wrote.
        let left = time_left(&clock, Some(3_000), Some(now - 1_000), Some(1)).unwrap();
        assert!(left > Duration::from_millis(1_900) && left <= Duration::from_millis(2_000));
        // The broker's clock 30 s ahead of ours: the same entry, stamped by
        // the broker, still has about 2 s.
        clock.offset_ms.store(30_000, Ordering::Relaxed);
        let left = time_left(&clock, Some(3_000), Some(now + 29_000), None).unwrap();
        assert!(left > Duration::from_millis(1_900) && left <= Duration::from_millis(2_000));
        // No timeout_ms (an older client): the absolute deadline, local clock.
        assert_eq!(
            time_left(&clock, None, Some(now), Some(1)),
            Some(Duration::ZERO)
        );
        assert_eq!(time_left(&clock, None, Some(now), None), None);
    }

    #[test]
    fn a_call_s_time_starts_when_it_was_sent_or_when_it_is_due() {
        // Moved from the intake 5 s after it was sent: the 5 s count.
        assert_eq!(started_ms(Some(10_000), Some(5_000), None), Some(5_000));
        // A sent time after the entry (a sender's clock ahead) never
        // lengthens the deadline.
        assert_eq!(started_ms(Some(10_000), Some(99_000), None), Some(10_000));
        // A delayed call counts from when it is due.
        assert_eq!(
            started_ms(Some(10_000), Some(5_000), Some(60_000)),
            Some(60_000)
        );
        assert_eq!(
            started_ms(Some(70_000), Some(5_000), Some(60_000)),
            Some(60_000)
        );
        assert_eq!(started_ms(None, Some(5_000), None), None);
    }
}
