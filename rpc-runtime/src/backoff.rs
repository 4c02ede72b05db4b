//! How long a failed job waits before its next attempt.
//!
//! A retry waits in the service's schedule (never in the consumer group) for
//! the delay its [`Backoff`] gives: by default exponential with jitter, so a
//! dependency that is down is not hammered by every worker at once; per job
//! from the schema's `#[backoff = "..."]`; per failure from
//! [`HandlerError::retry_after`](crate::HandlerError::retry_after).

use std::time::Duration;

/// A retry policy: the delay before attempt `n + 1` after attempt `n` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    /// Retry at once.
    None,
    /// The same delay before every retry.
    Fixed {
        /// The delay, in ms.
        delay_ms: u64,
    },
    /// `base * 2^(n-1)` after the `n`th attempt, at most `max`, with equal
    /// jitter: half the delay is fixed, the other half random, so retries
    /// of many jobs spread out but the gaps of one job never shrink.
    Exponential {
        /// The delay after the first attempt, in ms.
        base_ms: u64,
        /// The longest delay, in ms.
        max_ms: u64,
    },
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::DEFAULT
    }
}

impl Backoff {
    /// The worker's default: `exponential(100ms, 30s)`.
    pub const DEFAULT: Backoff = Backoff::Exponential {
        base_ms: 100,
        max_ms: 30_000,
    };

    /// The delay before the attempt after `attempt` (1 = the first attempt
    /// failed), jitter included.
    pub fn delay(&self, attempt: u32) -> Duration {
        match *self {
            Backoff::None => Duration::ZERO,
            Backoff::Fixed { delay_ms } => Duration::from_millis(delay_ms),
            Backoff::Exponential { base_ms, max_ms } => {
                let doublings = attempt.saturating_sub(1).min(63);
                let full = base_ms
                    .saturating_mul(1u64 << doublings)
                    .min(max_ms.max(base_ms));
                let half = full / 2;
                Duration::from_millis(full - half + jitter(half))
            }
        }
    }

    /// The delay without jitter (the most [`Backoff::delay`] gives).
    pub fn max_delay(&self, attempt: u32) -> Duration {
        match *self {
            Backoff::Exponential { base_ms, max_ms } => {
                let doublings = attempt.saturating_sub(1).min(63);
                Duration::from_millis(
                    base_ms
                        .saturating_mul(1u64 << doublings)
                        .min(max_ms.max(base_ms)),
                )
            }
            other => other.delay(attempt),
        }
    }
}

/// A random number in `0..=max`.
fn jitter(max: u64) -> u64 {
    if max == 0 {
        return 0;
    }
    let random = u64::from_le_bytes(
        uuid::Uuid::new_v4().as_bytes()[..8]
            .try_into()
            .expect("a UUID has 16 bytes"),
    );
    random % (max + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_gaps_grow_and_stop_at_the_cap() {
        let b = Backoff::Exponential {
            base_ms: 100,
            max_ms: 1_000,
        };
        for _ in 0..200 {
            let (d1, d2, d3) = (b.delay(1), b.delay(2), b.delay(3));
            assert!((50..=100).contains(&(d1.as_millis() as u64)), "{d1:?}");
            assert!((100..=200).contains(&(d2.as_millis() as u64)), "{d2:?}");
            assert!(d3 >= d2 && d2 >= d1);
            assert!(b.delay(40) <= Duration::from_secs(1));
            assert!(b.delay(u32::MAX) >= Duration::from_millis(500));
        }
        assert_eq!(Backoff::None.delay(3), Duration::ZERO);
        assert_eq!(
            Backoff::Fixed { delay_ms: 7 }.delay(9),
            Duration::from_millis(7)
        );
    }
}
