//! Rate limits: how many starts of a job (or of any job of a service) the
//! whole fleet may make per period, written `"50/s"`, `"1000/m"`,
//! `"10/500ms"`, `"100/s burst 20"`.
//!
//! A limit is a GCRA (generic cell rate algorithm, a token bucket kept as
//! one number): starts are spaced `period / count` apart, and `burst` of
//! them may start at once after a quiet spell. The default burst is 1, so
//! no window of one period ever holds more than `count` starts; a burst of
//! B admits up to B - 1 more in the window that follows a quiet spell. The
//! workers share the one number in Redis (docs/PROTOCOL.md, "Rate
//! limits"), so the limit holds across the fleet, not per worker.
//!
//! ```
//! use rpc_protocol::rate::RateLimit;
//! let r: RateLimit = "100/s burst 20".parse().unwrap();
//! assert_eq!((r.count, r.per_ms, r.burst), (100, 1_000, 20));
//! assert_eq!(r.interval_us(), 10_000);
//! assert_eq!(r.to_string(), "100/s burst 20");
//! assert!("0/s".parse::<RateLimit>().is_err());
//! ```

use std::fmt;
use std::str::FromStr;

/// The most starts a limit may allow per period.
pub const MAX_COUNT: u32 = 1_000_000;
/// The longest period: a day.
pub const MAX_PERIOD_MS: u64 = 24 * 60 * 60 * 1_000;
/// The most starts per second any limit may allow (so starts are at least
/// a microsecond apart, the unit the limiter counts in).
pub const MAX_PER_SECOND: u64 = 1_000_000;

/// How a rate limit is written, for error messages and diagnostics.
pub const USAGE: &str = "`\"<count>/<period>\"` with an optional `burst <n>`: `\"50/s\"`, `\"1000/m\"`, `\"10/500ms\"`, `\"100/s burst 20\"` (periods: ms, s, m, h, or a number before one, up to 24h)";

/// At most `count` starts per `per_ms`, of which `burst` may come at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    /// Starts allowed per period, 1..=[`MAX_COUNT`].
    pub count: u32,
    /// The period, in ms, 1..=[`MAX_PERIOD_MS`].
    pub per_ms: u64,
    /// How many may start at once after a quiet spell, 1..=`count`.
    pub burst: u32,
}

/// Why a rate limit was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad rate limit {text:?}: {why}; write {USAGE}")]
pub struct RateError {
    text: String,
    why: String,
}

impl RateError {
    /// Why, without the text and the usage.
    pub fn reason(&self) -> String {
        self.why.clone()
    }
}

impl RateLimit {
    /// `count` starts per `per_ms` with a burst of `burst`, if in range.
    pub fn new(count: u32, per_ms: u64, burst: u32) -> Result<RateLimit, String> {
        if count == 0 || count > MAX_COUNT {
            return Err(format!("the count must be 1 to {MAX_COUNT}"));
        }
        if per_ms == 0 || per_ms > MAX_PERIOD_MS {
            return Err("the period must be 1ms to 24h".to_owned());
        }
        if u64::from(count) * 1_000 > MAX_PER_SECOND * per_ms {
            return Err(format!(
                "that is over {MAX_PER_SECOND} starts a second, the most a limit can space"
            ));
        }
        if burst == 0 || burst > count {
            return Err(format!("the burst must be 1 to the count ({count})"));
        }
        Ok(RateLimit {
            count,
            per_ms,
            burst,
        })
    }

    /// The spacing of starts, in µs: the period over the count, rounded up
    /// (so rounding never allows more than the limit).
    pub fn interval_us(&self) -> u64 {
        (self.per_ms * 1_000).div_ceil(u64::from(self.count))
    }

    /// How far ahead of its turn a start may come (the burst), in µs.
    pub fn tolerance_us(&self) -> u64 {
        u64::from(self.burst - 1) * self.interval_us()
    }
}

impl FromStr for RateLimit {
    type Err = RateError;

    fn from_str(text: &str) -> Result<RateLimit, RateError> {
        parse(text).map_err(|why| RateError {
            text: text.chars().take(80).collect(),
            why,
        })
    }
}

fn parse(text: &str) -> Result<RateLimit, String> {
    if text.len() > 64 {
        return Err("longer than 64 bytes".to_owned());
    }
    let (rate, burst) = match text.split_once("burst") {
        Some((rate, burst)) => (rate.trim().trim_end_matches(',').trim_end(), Some(burst)),
        None => (text.trim(), None),
    };
    let (count, period) = rate
        .split_once('/')
        .ok_or_else(|| "no `/` between the count and the period".to_owned())?;
    let count = whole(count.trim(), "the count")?;
    let per_ms = period_ms(period.trim())?;
    let burst = match burst {
        None => 1,
        Some(b) => whole(b.trim(), "the burst")?,
    };
    let count = u32::try_from(count).map_err(|_| format!("the count must be 1 to {MAX_COUNT}"))?;
    let burst = u32::try_from(burst).map_err(|_| format!("the burst must be 1 to {count}"))?;
    RateLimit::new(count, per_ms, burst)
}

/// A whole decimal number, digits only.
fn whole(text: &str, what: &str) -> Result<u64, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} must be a whole number, not {text:?}"));
    }
    text.parse()
        .map_err(|_| format!("{what} is too large: {text}"))
}

/// A period: a unit (`ms`, `s`, `m`, `h`, or `sec`, `min`, `hour`) with an
/// optional whole number before it.
fn period_ms(text: &str) -> Result<u64, String> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (n, unit) = text.split_at(digits);
    let n = if n.is_empty() {
        1
    } else {
        whole(n, "the period")?
    };
    let unit_ms = match unit.trim() {
        "ms" => 1,
        "s" | "sec" | "second" => 1_000,
        "m" | "min" | "minute" => 60_000,
        "h" | "hour" => 3_600_000,
        other => return Err(format!("unknown period unit {other:?}")),
    };
    n.checked_mul(unit_ms)
        .filter(|ms| (1..=MAX_PERIOD_MS).contains(ms))
        .ok_or_else(|| "the period must be 1ms to 24h".to_owned())
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/", self.count)?;
        match self.per_ms {
            1_000 => write!(f, "s")?,
            60_000 => write!(f, "m")?,
            3_600_000 => write!(f, "h")?,
            ms if ms % 3_600_000 == 0 => write!(f, "{}h", ms / 3_600_000)?,
            ms if ms % 60_000 == 0 => write!(f, "{}m", ms / 60_000)?,
            ms if ms % 1_000 == 0 => write!(f, "{}s", ms / 1_000)?,
            ms => write!(f, "{ms}ms")?,
        }
        if self.burst > 1 {
            write!(f, " burst {}", self.burst)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_forms_parse_and_print_back() {
        for (text, count, per_ms, burst, printed) in [
            ("50/s", 50, 1_000, 1, "50/s"),
            ("1000/m", 1_000, 60_000, 1, "1000/m"),
            ("10/500ms", 10, 500, 1, "10/500ms"),
            ("100/s burst 20", 100, 1_000, 20, "100/s burst 20"),
            ("100/s, burst 20", 100, 1_000, 20, "100/s burst 20"),
            (" 3 / 10s ", 3, 10_000, 1, "3/10s"),
            ("5/min", 5, 60_000, 1, "5/m"),
            ("1/24h", 1, 86_400_000, 1, "1/24h"),
            ("2/90m", 2, 5_400_000, 1, "2/90m"),
        ] {
            let r: RateLimit = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                (r.count, r.per_ms, r.burst),
                (count, per_ms, burst),
                "{text}"
            );
            assert_eq!(r.to_string(), printed);
            assert_eq!(printed.parse::<RateLimit>().as_ref(), Ok(&r));
        }
    }

    #[test]
    fn garbage_and_out_of_range_limits_are_refused_with_the_reason() {
        for (text, why) in [
            ("", "no `/`"),
            ("50", "no `/`"),
            ("0/s", "the count must be 1"),
            ("-1/s", "whole number"),
            ("1.5/s", "whole number"),
            ("50/fortnight", "unknown period unit"),
            ("50/0s", "the period must be 1ms to 24h"),
            ("50/25h", "the period must be 1ms to 24h"),
            ("1000001/h", "the count must be 1 to 1000000"),
            ("99999999999999999999/s", "too large"),
            ("2000/ms", "over 1000000 starts a second"),
            ("10/s burst 0", "the burst must be 1"),
            ("10/s burst 11", "the burst must be 1 to the count"),
            ("10/s burst x", "whole number"),
        ] {
            let e = text.parse::<RateLimit>().expect_err(text).to_string();
            assert!(e.contains(why), "{text}: {e}");
            assert!(e.contains("write `\"<count>/<period>\"`"), "{e}");
        }
        let long = format!("1/s{}", " ".repeat(100));
        assert!(long
            .parse::<RateLimit>()
            .unwrap_err()
            .to_string()
            .contains("longer than 64 bytes"));
    }

    #[test]
    fn spacing_rounds_up_so_the_limit_is_never_exceeded() {
        let r: RateLimit = "3/s".parse().unwrap();
        assert_eq!(r.interval_us(), 333_334);
        assert!(r.interval_us() * 3 >= 1_000_000);
        let r: RateLimit = "100/s burst 5".parse().unwrap();
        assert_eq!(r.tolerance_us(), 40_000);
    }
}
