//! Durations on the command line, one grammar for every flag that takes one
//! (`--timeout`, `--keep`, `--delay`, `--wait`, `--interval`): humantime's
//! (`10s`, `1h 30m`, `250ms`, `2days`), or a bare number of seconds
//! (`--timeout 2.5`), as these flags took before they took units.
//!
//! Values that no duration can hold (negative, not a number, past `u64`
//! seconds) are usage errors from clap, never a panic of
//! `Duration::from_secs_f64`.

use std::time::Duration;

/// Parses one flag's value (a clap `value_parser`).
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|_| {
            format!("{text} seconds is not a duration (not negative, not that long)")
        });
    }
    humantime::parse_duration(text).map_err(|e| {
        format!("{e} (a duration is like `30s`, `1h 30m`, `250ms`, or a number of seconds)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_or_a_bare_number_of_seconds() {
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("1h 30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("2.5"), Ok(Duration::from_millis(2_500)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse(" 30 "), Ok(Duration::from_secs(30)));
    }

    /// Reproduces `rpc call --timeout -1` (or `inf`, `NaN`, `1e30`)
    /// panicking in `Duration::from_secs_f64`: each is a clear usage error.
    #[test]
    fn impossible_durations_are_refused_not_panicked_on() {
        for text in ["-1", "inf", "NaN", "1e30", "", "ten", "10 parsecs"] {
            let err = parse(text).expect_err(text);
            assert!(err.contains("duration"), "{text}: {err}");
        }
    }
}
