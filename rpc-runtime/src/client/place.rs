//! What a call carries for the job lifecycle, decided when it is sent: when
//! it is due (a delay or a start time, turned once into `run_at_ms` on the
//! broker's clock) and its idempotency key, both checked here so a bad
//! value is refused with a clear error before anything is sent.
//!
//! Every call goes onto the queue the same way (`Queue::push_job`);
//! workers put a call that came early on the schedule and claim an
//! idempotency key when they take the call. The client writes no schedule
//! or key itself: the client ACL role may not (docs/SECURITY.md).

use std::time::Duration;

use rpc_protocol::limits::{MAX_DELAY_MS, MAX_TTL_MS};

use super::reply::{label, timed_out};

use crate::backend::Broker;
use crate::call::{CallOptions, JobId, JobRef};
use crate::error::Error;

/// When a call is due, and under which idempotency key it is sent.
#[derive(Debug, Clone, Default)]
pub(super) struct Placement {
    /// Not to run before this broker time (ms); `None`: at once.
    pub(super) run_at_ms: Option<u64>,
    /// How long after sending it is due (the caller waits this long more).
    pub(super) delay: Duration,
}

impl Placement {
    /// The placement `options` ask for, or why they cannot be sent: a
    /// delay or start time more than 366 days ahead, a timeout over 366
    /// days, a malformed idempotency key or TTL.
    pub(super) fn of(
        job: &JobRef,
        options: &CallOptions,
        timeout: Duration,
        now_ms: u64,
    ) -> Result<Placement, Error> {
        let refuse = |reason: String| Error::config(format_args!("`{}`: {reason}", label(job)));
        let max_delay = Duration::from_millis(MAX_DELAY_MS);
        if timeout > Duration::from_millis(MAX_TTL_MS) {
            return Err(refuse(format!(
                "a timeout is at most 366 days ({timeout:?} given)"
            )));
        }
        if let Some(key) = &options.idempotency_key {
            if !rpc_protocol::limits::is_idempotency_key(key) {
                return Err(refuse(format!(
                    "idempotency key {key:?} is not 1 to {} bytes without control characters or braces",
                    rpc_protocol::limits::MAX_IDEMPOTENCY_KEY_BYTES
                )));
            }
        }
        if let Some(key) = &options.group {
            if !rpc_protocol::limits::is_group_key(key) {
                return Err(refuse(format!(
                    "group key {:?} is not 1 to {} bytes without control characters or braces ({} bytes given)",
                    key.chars().take(64).collect::<String>(),
                    rpc_protocol::limits::MAX_GROUP_KEY_BYTES,
                    key.len()
                )));
            }
        }
        if let Some(p) = options
            .priority
            .filter(|p| !rpc_protocol::priority::is_priority(*p))
        {
            return Err(refuse(rpc_protocol::priority::out_of_range(p.into())));
        }
        if let Some(ttl) = options.idempotency_ttl {
            if ttl.is_zero() || ttl > Duration::from_millis(MAX_TTL_MS) {
                return Err(refuse(format!(
                    "an idempotency key is held for 1 ms to 366 days ({ttl:?} given)"
                )));
            }
        }
        let run_at_ms = match (options.delay, options.run_at) {
            (Some(delay), _) if delay > max_delay => {
                return Err(refuse(format!(
                    "a delay is at most 366 days ({delay:?} given)"
                )))
            }
            (Some(delay), _) if delay.is_zero() => None,
            (Some(delay), _) => Some(now_ms.saturating_add(delay.as_millis() as u64)),
            // A start time is a time on the broker's clock, taken as given:
            // no clock of this machine's turns it into a delay.
            (None, Some(at)) => {
                let at_ms = rpc_protocol::time::unix_ms(at);
                if at_ms > now_ms.saturating_add(MAX_DELAY_MS) {
                    return Err(refuse("a start time is at most 366 days ahead".to_owned()));
                }
                // One in the past runs at once, its time counted from now.
                (at_ms > now_ms).then_some(at_ms)
            }
            (None, None) => None,
        };
        let delay = Duration::from_millis(run_at_ms.map_or(0, |at| at.saturating_sub(now_ms)));
        Ok(Placement { run_at_ms, delay })
    }
}

/// How long `options`' idempotency key is remembered.
pub(super) fn idempotency_ttl(options: &CallOptions) -> Duration {
    options
        .idempotency_ttl
        .unwrap_or(CallOptions::DEFAULT_IDEMPOTENCY_TTL)
}

/// Puts a job message on its queue, giving up at the call's deadline (a
/// broker that is down may otherwise keep a reconnecting command waiting
/// for seconds).
pub(super) async fn place_until(
    backend: &dyn Broker,
    job: &JobRef,
    queue: &str,
    id: &JobId,
    payload: &[u8],
    deadline: tokio::time::Instant,
    timeout: Duration,
) -> Result<(), Error> {
    let pushed = match tokio::time::timeout_at(deadline, backend.push_job(queue, payload)).await {
        Ok(pushed) => pushed,
        Err(_) => return Err(timed_out(label(job), id, timeout)),
    };
    match (pushed, rpc_protocol::priority::split_lane(queue)) {
        // Garbage where the call's priority lane would be: the call goes
        // onto its queue's own stream (taken at the default priority's
        // turn) rather than fail, as the scripts move calls (PROTOCOL.md,
        // "Priorities").
        (Err(e), (base, p))
            if p != rpc_protocol::priority::DEFAULT && e.to_string().contains("WRONGTYPE") =>
        {
            tracing::warn!(queue, error = %e, "the call's priority lane is no stream; sending it on its queue's own");
            match tokio::time::timeout_at(deadline, backend.push_job(base, payload)).await {
                Ok(pushed) => pushed,
                Err(_) => Err(timed_out(label(job), id, timeout)),
            }
        }
        (pushed, _) => pushed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::BrokerClock;

    fn job() -> JobRef {
        JobRef {
            service: "S",
            job: "j",
            timeout_ms: None,
            max_attempts: None,
            shards: 1,
            priority: None,
        }
    }

    #[test]
    fn a_start_time_is_sent_as_given_whatever_this_machine_s_clock_says() {
        // This machine is 60 s behind the broker: a start time an hour
        // ahead is still that very time, not an hour from a wrong "now".
        let clock = BrokerClock::with_offset_ms(60_000);
        let at = std::time::SystemTime::now() + Duration::from_secs(3_600);
        let options = CallOptions::run_at(at);
        let placed =
            Placement::of(&job(), &options, Duration::from_secs(1), clock.now_ms()).unwrap();
        assert_eq!(placed.run_at_ms, Some(rpc_protocol::time::unix_ms(at)));
        // A delay counts from the broker's now.
        let placed = Placement::of(
            &job(),
            &CallOptions::delay(Duration::from_secs(10)),
            Duration::from_secs(1),
            clock.now_ms(),
        )
        .unwrap();
        let expected = clock.now_ms() + 10_000;
        assert!(placed.run_at_ms.unwrap().abs_diff(expected) < 1_000);
    }

    #[test]
    fn absurd_delays_and_timeouts_are_refused_before_anything_is_sent() {
        let clock = BrokerClock::new();
        let year = Duration::from_secs(367 * 24 * 3600);
        for options in [
            CallOptions::delay(year),
            CallOptions::delay(Duration::MAX),
            CallOptions::run_at(std::time::SystemTime::now() + year),
            CallOptions::idempotency_key(""),
            CallOptions::idempotency_key("a\nb"),
            CallOptions::idempotency_key("x}:intake"),
            CallOptions::default().with_group(""),
            CallOptions::default().with_group("a\nb"),
            CallOptions::default().with_group("x}:intake"),
            CallOptions::default().with_group("k".repeat(129)),
        ] {
            let refused = Placement::of(&job(), &options, Duration::from_secs(1), clock.now_ms());
            assert!(refused.is_err(), "{options:?}");
        }
        assert!(Placement::of(&job(), &CallOptions::default(), year, clock.now_ms()).is_err());
    }
}
