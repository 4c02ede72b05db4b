//! When a periodic job's ticks fall: the tick-time arithmetic, in
//! milliseconds since the Unix epoch, kept apart from the worker's loop so
//! that every worker (and every test) computes the same instants.
//!
//! Two kinds of schedule:
//!
//! * **every** *d*: ticks at the whole multiples of *d* since the Unix epoch
//!   (an interval of 200 ms ticks at `…000`, `…200`, `…400`). Aligning to
//!   the epoch rather than to a worker's start is what lets N workers, each
//!   started at its own moment, agree on one tick id per instant.
//! * **cron**: the instants a cron expression names, evaluated in UTC by
//!   the `croner` crate (five fields, or six with seconds first; `@hourly`
//!   and friends, `L`, `W`, `#`). Cron instants are whole seconds.

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds};
use croner::Cron;

/// A parsed schedule.
#[derive(Debug, Clone)]
pub(crate) enum Schedule {
    /// Every `ms` milliseconds, aligned to the Unix epoch.
    Every { ms: u64 },
    /// The instants of a cron expression, in UTC.
    Cron { expression: String, cron: Box<Cron> },
}

impl Schedule {
    /// Parses a cron expression (seconds optional), or says why not.
    pub(crate) fn cron(expression: &str) -> Result<Schedule, String> {
        let parser = CronParser::builder().seconds(Seconds::Optional).build();
        let cron = parser.parse(expression).map_err(|e| e.to_string())?;
        // The expression is kept as written (not croner's rendering of
        // it): operators see in the listing what the developer wrote.
        Ok(Schedule::Cron {
            expression: expression.trim().to_owned(),
            cron: Box::new(cron),
        })
    }

    /// The first tick strictly after `ms`; `None` if there is none (a cron
    /// expression whose instants all lie in the past, or beyond croner's
    /// search limit).
    pub(crate) fn next_after(&self, ms: u64) -> Option<u64> {
        match self {
            Schedule::Every { ms: every } => (ms / every).checked_add(1)?.checked_mul(*every),
            Schedule::Cron { cron, .. } => {
                // Cron instants are whole seconds: searching from the second
                // `ms` falls in, exclusively, finds the first one after `ms`.
                let second = utc_second(ms)?;
                let next = cron.find_next_occurrence(&second, false).ok()?;
                to_ms(next)
            }
        }
    }

    /// The latest tick at or before `ms`; `None` if there is none.
    pub(crate) fn latest_at_or_before(&self, ms: u64) -> Option<u64> {
        match self {
            Schedule::Every { ms: every } => Some(ms / every * every),
            Schedule::Cron { cron, .. } => {
                let second = utc_second(ms)?;
                let previous = cron.find_previous_occurrence(&second, true).ok()?;
                to_ms(previous)
            }
        }
    }

    /// How people read it: `every 200ms`, `cron 0 */5 * * * *`.
    pub(crate) fn describe(&self) -> String {
        match self {
            Schedule::Every { ms } => format!("every {}", interval_text(*ms)),
            Schedule::Cron { expression, .. } => format!("cron {expression}"),
        }
    }
}

/// An interval as written in the listing: `200ms`, `5s`, `10m`, `2h`, `1d`
/// (the largest unit that divides it).
pub(crate) fn interval_text(ms: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
    ];
    for (size, unit) in UNITS {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// The whole UTC second `ms` falls in.
fn utc_second(ms: u64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(i64::try_from(ms / 1000).ok()?, 0)
}

fn to_ms(t: DateTime<Utc>) -> Option<u64> {
    u64::try_from(t.timestamp_millis()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-01T00:00:00Z.
    const NEW_YEAR: u64 = 1_767_225_600_000;

    #[test]
    fn interval_ticks_are_multiples_of_the_interval_since_the_epoch() {
        let every = Schedule::Every { ms: 200 };
        assert_eq!(every.next_after(1_000), Some(1_200));
        assert_eq!(every.next_after(1_001), Some(1_200));
        assert_eq!(every.next_after(1_199), Some(1_200));
        assert_eq!(every.latest_at_or_before(1_199), Some(1_000));
        assert_eq!(every.latest_at_or_before(1_200), Some(1_200));
        // Two workers started 73 ms apart compute the same ticks.
        let a = every.next_after(NEW_YEAR + 5);
        let b = every.next_after(NEW_YEAR + 78);
        assert_eq!(a, b);
        assert_eq!(every.next_after(u64::MAX), None);
    }

    #[test]
    fn cron_ticks_are_the_expressions_instants_in_utc() {
        let five_minutes = Schedule::cron("0 */5 * * * *").unwrap();
        assert_eq!(
            five_minutes.next_after(NEW_YEAR),
            Some(NEW_YEAR + 5 * 60_000)
        );
        assert_eq!(five_minutes.next_after(NEW_YEAR - 1), Some(NEW_YEAR));
        assert_eq!(
            five_minutes.latest_at_or_before(NEW_YEAR + 299_999),
            Some(NEW_YEAR)
        );
        assert_eq!(five_minutes.latest_at_or_before(NEW_YEAR), Some(NEW_YEAR));
        // Five fields: minute granularity, at second 0; in UTC.
        let three_am = Schedule::cron("0 3 * * *").unwrap();
        assert_eq!(
            three_am.next_after(NEW_YEAR),
            Some(NEW_YEAR + 3 * 3_600_000)
        );
        // Sub-second starts: the next tick is still the next whole instant.
        let every_second = Schedule::cron("* * * * * *").unwrap();
        assert_eq!(
            every_second.next_after(NEW_YEAR + 400),
            Some(NEW_YEAR + 1_000)
        );
        assert_eq!(
            every_second.latest_at_or_before(NEW_YEAR + 400),
            Some(NEW_YEAR)
        );
    }

    #[test]
    fn a_cron_expression_that_is_not_one_is_refused_with_the_reason() {
        for bad in ["", "every day", "61 * * * *", "* * * *", "0 0 0 32 * *"] {
            let err = Schedule::cron(bad).expect_err(bad);
            assert!(!err.is_empty(), "{bad}");
        }
    }

    #[test]
    fn schedules_describe_themselves_as_written() {
        assert_eq!(Schedule::Every { ms: 200 }.describe(), "every 200ms");
        assert_eq!(Schedule::Every { ms: 5_000 }.describe(), "every 5s");
        assert_eq!(Schedule::Every { ms: 90_000 }.describe(), "every 90s");
        assert_eq!(Schedule::Every { ms: 7_200_000 }.describe(), "every 2h");
        assert_eq!(
            Schedule::cron(" 0 */5 * * * * ").unwrap().describe(),
            "cron 0 */5 * * * *"
        );
    }
}
