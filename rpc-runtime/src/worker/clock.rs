//! The broker's clock, as this worker sees it.
//!
//! A job's deadline is measured on the broker's clock: the queue entry's
//! broker timestamp (a Redis stream id is Redis's time at `XADD`) plus the
//! `timeout_ms` the caller sent. Neither the caller's clock nor this
//! machine's enters into it, so a caller 30 s behind or ahead gets the
//! deadline it asked for. To compare with "now", the worker keeps the offset
//! between its own clock and the broker's, sampled with `TIME` at start and
//! then by the janitor, half the round trip counted on each side.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::backend::Backend;
use crate::error::Error;
use crate::wire;

/// A sample whose round trip took longer than this is too coarse to
/// replace one we have.
const COARSE_SAMPLE: Duration = Duration::from_millis(250);

/// The offset of the broker's clock from this machine's.
#[derive(Debug, Default)]
pub(super) struct BrokerClock {
    /// Broker time minus local time, in ms (0 until sampled: trust the
    /// local clock, as a worker that cannot ask the broker must).
    offset_ms: AtomicI64,
    /// Round trip of the sample the offset came from, in ms (`i64::MAX`:
    /// no sample yet).
    sample_rtt_ms: AtomicI64,
}

impl BrokerClock {
    pub(super) fn new() -> Self {
        BrokerClock {
            offset_ms: AtomicI64::new(0),
            sample_rtt_ms: AtomicI64::new(i64::MAX),
        }
    }

    /// Asks the broker for its time and updates the offset.
    pub(super) async fn sample(&self, backend: &dyn Backend) -> Result<(), Error> {
        let local_before = wire::unix_ms(SystemTime::now()) as i64;
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
        Ok(())
    }

    /// The broker's time now, in ms since the Unix epoch.
    pub(super) fn now_ms(&self) -> u64 {
        let local = wire::unix_ms(SystemTime::now()) as i64;
        local
            .saturating_add(self.offset_ms.load(Ordering::Relaxed))
            .max(0) as u64
    }

    /// Broker time minus local time, in ms.
    pub(super) fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }
}

/// How long a job has left: from `timeout_ms` and the entry's broker
/// timestamp when the message has both (measured on the broker's clock),
/// else from the absolute `deadline_ms` on this machine's clock (messages
/// from peers that predate `timeout_ms`). `None`: no deadline.
pub(super) fn time_left(
    clock: &BrokerClock,
    timeout_ms: Option<u64>,
    enqueued_ms: Option<u64>,
    deadline_ms: Option<u64>,
) -> Option<Duration> {
    match (timeout_ms, enqueued_ms) {
        (Some(timeout), Some(enqueued)) => {
            let due = enqueued.saturating_add(timeout);
            Some(Duration::from_millis(due.saturating_sub(clock.now_ms())))
        }
        _ => deadline_ms.map(|d| {
            wire::from_unix_ms(d)
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
}
