//! Durations and moments as an operator reads them: `850ms`, `4.2s`,
//! `13m14s`, `2h05m`, `3d04h`; `in 20h33m`, `3m ago`.
//!
//! The one formatter of the operator's views: `rpc stats`, `top`,
//! `scheduled` and `periodic`, and the dashboard's pages, so a lease age or a
//! due time reads the same everywhere. Two units at most, the larger first,
//! the smaller zero-padded and left out when zero (`3m`, not `3m00s`): a
//! table of lease ages is read at a glance, not to the millisecond. Every
//! unit is cut down, never rounded up, so a value never reads as more than
//! it is (59.9 s is `59s`, not `1m`), and reading a growing age never goes
//! backwards.
//!
//! ```
//! use std::time::Duration;
//! use rpc_runtime::inspect::human_time;
//!
//! assert_eq!(human_time::duration(Duration::from_secs(7_500)), "2h05m");
//! assert_eq!(human_time::relative_ms(1_000, 181_000), "3m ago");
//! assert_eq!(human_time::relative_ms(74_000_000, 0), "in 20h33m");
//! ```

use std::time::{Duration, SystemTime};

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// `d` in its largest unit and the next one: `850ms`, `4.2s` (tenths under
/// ten seconds, `1s` when whole), `42s`, `13m14s`, `3m`, `2h05m`, `2h`,
/// `3d04h`, `3d`; `0ms` for anything under a millisecond.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => format!("{}ms", d.subsec_millis()),
        1..10 => match d.subsec_millis() / 100 {
            0 => format!("{secs}s"),
            tenths => format!("{secs}.{tenths}s"),
        },
        10..MINUTE => format!("{secs}s"),
        MINUTE..HOUR => two_units(secs / MINUTE, 'm', secs % MINUTE, 's'),
        HOUR..DAY => two_units(secs / HOUR, 'h', secs % HOUR / MINUTE, 'm'),
        _ => two_units(secs / DAY, 'd', secs % DAY / HOUR, 'h'),
    }
}

/// `3m`, or `3m05s`: the smaller unit padded to two digits, left out when zero.
fn two_units(large: u64, large_unit: char, small: u64, small_unit: char) -> String {
    if small == 0 {
        format!("{large}{large_unit}")
    } else {
        format!("{large}{large_unit}{small:02}{small_unit}")
    }
}

/// When `then` is, seen from `now`, both in ms since the Unix epoch on one
/// clock (Redis's, for the figures [`Inspector`](crate::Inspector) reads):
/// `3m ago`, `in 20h33m`, or `now`.
pub fn relative_ms(then_ms: u64, now_ms: u64) -> String {
    if then_ms <= now_ms {
        ago(Duration::from_millis(now_ms - then_ms))
    } else {
        format!("in {}", duration(Duration::from_millis(then_ms - now_ms)))
    }
}

/// When a job on the schedule is due (`due_ms` from its score): like
/// [`relative_ms`], or `never` past the last millisecond of the year 9999,
/// the latest time any field of the protocol may hold (a score of `+inf`
/// reads as `u64::MAX`).
pub fn due_ms(due_ms: u64, now_ms: u64) -> String {
    if due_ms > rpc_protocol::limits::MAX_DEADLINE_MS {
        return "never".to_owned();
    }
    relative_ms(due_ms, now_ms)
}

/// [`relative_ms`] for two [`SystemTime`]s.
pub fn relative(then: SystemTime, now: SystemTime) -> String {
    match now.duration_since(then) {
        Ok(past) => ago(past),
        Err(ahead) => format!("in {}", duration(ahead.duration())),
    }
}

fn ago(past: Duration) -> String {
    if past.is_zero() {
        "now".to_owned()
    } else {
        format!("{} ago", duration(past))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(ms: u64) -> String {
        duration(Duration::from_millis(ms))
    }

    #[test]
    fn a_duration_reads_in_its_largest_unit_and_the_next() {
        assert_eq!(ms(850), "850ms");
        assert_eq!(ms(4_200), "4.2s");
        assert_eq!(ms(42_000), "42s");
        assert_eq!(ms(794_000), "13m14s");
        assert_eq!(ms(185_000), "3m05s");
        assert_eq!(ms(7_500_000), "2h05m");
        assert_eq!(ms(74_000_000), "20h33m");
        assert_eq!(ms((3 * 86_400 + 4 * 3_600) * 1_000), "3d04h");
    }

    #[test]
    fn a_smaller_unit_of_zero_is_left_out() {
        assert_eq!(ms(1_000), "1s");
        assert_eq!(ms(180_000), "3m");
        assert_eq!(ms(7_200_000), "2h");
        assert_eq!(ms(86_400_000), "1d");
        // Seconds under a whole minute of an hour are dropped with it.
        assert_eq!(ms(3_600_000 + 59_999), "1h");
    }

    /// Reproduces `rpc scheduled`'s `DUE IN 2171493.6s`: no value is
    /// written in seconds past a minute, or with more than one fraction digit.
    #[test]
    fn large_values_take_large_units() {
        assert_eq!(ms(2_171_493_600), "25d03h");
        assert_eq!(
            duration(Duration::from_secs(u64::MAX)),
            "213503982334601d07h"
        );
        assert_eq!(duration(Duration::MAX), "213503982334601d07h");
    }

    /// Every unit is cut down at its edge, never rounded up into the next.
    #[test]
    fn edges_are_cut_down_never_rounded_up() {
        assert_eq!(duration(Duration::ZERO), "0ms");
        assert_eq!(duration(Duration::from_micros(999)), "0ms");
        assert_eq!(ms(999), "999ms");
        assert_eq!(ms(1_099), "1s");
        assert_eq!(ms(9_999), "9.9s");
        assert_eq!(ms(10_000), "10s");
        assert_eq!(ms(59_999), "59s");
        assert_eq!(ms(60_000), "1m");
        assert_eq!(ms(3_599_999), "59m59s");
        assert_eq!(ms(86_399_999), "23h59m");
    }

    #[test]
    fn moments_read_as_ago_or_in() {
        assert_eq!(relative_ms(1_000, 181_000), "3m ago");
        assert_eq!(relative_ms(74_000_000, 0), "in 20h33m");
        assert_eq!(relative_ms(5, 5), "now");
        assert_eq!(relative_ms(u64::MAX, 0), "in 213503982334d14h");
        let now = SystemTime::now();
        assert_eq!(relative(now - Duration::from_secs(5), now), "5s ago");
        assert_eq!(relative(now + Duration::from_millis(4_250), now), "in 4.2s");
        assert_eq!(relative(now, now), "now");
    }

    #[test]
    fn a_due_time_past_the_year_9999_is_never() {
        let last = rpc_protocol::limits::MAX_DEADLINE_MS;
        assert_eq!(due_ms(u64::MAX, 0), "never");
        assert_eq!(due_ms(last + 1, 0), "never");
        assert_eq!(due_ms(last, last - 20_000), "in 20s");
        assert_eq!(due_ms(1_000, 4_000), "3s ago");
    }
}
