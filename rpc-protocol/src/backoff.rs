//! How long a failed job waits before its next attempt: the retry policy
//! and its grammar.
//!
//! A retry waits in the service's schedule (never in the consumer group) for
//! the delay its [`Backoff`] gives: by default exponential with jitter, so a
//! dependency that is down is not hammered by every worker at once; per job
//! from the schema's `#[backoff = "..."]`; per failure from the handler.
//!
//! The text form (`none`, `fixed(2s)`, `exponential(100ms, 30s)`) is the
//! schema attribute's: [`FromStr`] reads it, `Display` writes it back. This
//! is the one parser: rpc-codegen uses it for the schema's diagnostics, the
//! runtime for the policy it runs. The random part of a delay is the
//! caller's to draw ([`Backoff::delay`] takes it), so this crate needs no
//! source of randomness.

use std::fmt;
use std::str::FromStr;
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
    /// failed), jitter included: `random` is any random number (the jitter
    /// is `random` modulo the jitter's range).
    pub fn delay(&self, attempt: u32, random: u64) -> Duration {
        match *self {
            Backoff::None => Duration::ZERO,
            Backoff::Fixed { delay_ms } => Duration::from_millis(delay_ms),
            Backoff::Exponential { base_ms, max_ms } => {
                let doublings = attempt.saturating_sub(1).min(63);
                let full = base_ms
                    .saturating_mul(1u64 << doublings)
                    .min(max_ms.max(base_ms));
                let half = full / 2;
                Duration::from_millis(full - half + random % (half + 1))
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
            other => other.delay(attempt, 0),
        }
    }
}

/// How a retry policy is written, for help texts (rpc-codegen's diagnostic
/// of the schema's attribute).
pub const USAGE: &str = "`#[backoff = \"exponential(100ms, 30s)\"]`: `none`, `fixed(<delay>)` \
     or `exponential(<base>, <max>)` with base <= max, each duration a whole number \
     followed by `ms`, `s`, `m` or `h`, from 1ms to 24h";

/// The longest delay a policy may name: a retry a day later is a job that
/// should have been scheduled, not retried.
const MAX_DELAY_MS: u64 = 24 * 60 * 60 * 1000;

/// Units a duration may be written in, largest first (how `Display` picks).
const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

/// The grammar, as error messages state it.
const GRAMMAR: &str = "`none`, `fixed(<delay>)` or `exponential(<base>, <max>)`";

/// Why a text is not a [`Backoff`]: says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseBackoffError {
    message: String,
}

impl ParseBackoffError {
    fn new(message: impl Into<String>) -> Self {
        ParseBackoffError {
            message: message.into(),
        }
    }
}

/// Reads the text form: `none`, `fixed(<dur>)` or
/// `exponential(<base>, <max>)`, where a duration is a whole number and a
/// unit (`ms`, `s`, `m`, `h`), above zero and at most 24 h, and base <= max.
/// Whitespace around the tokens is allowed.
///
/// ```
/// use rpc_protocol::Backoff;
/// let backoff: Backoff = "exponential(100ms, 30s)".parse().unwrap();
/// assert_eq!(backoff, Backoff::DEFAULT);
/// assert_eq!(backoff.to_string(), "exponential(100ms, 30s)");
/// assert!("exponential(30s, 100ms)".parse::<Backoff>().is_err());
/// ```
impl FromStr for Backoff {
    type Err = ParseBackoffError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (name, args) = match text.split_once('(') {
            None => (text, None),
            Some((name, rest)) => match rest.trim_end().strip_suffix(')') {
                Some(args) => (name.trim_end(), Some(args)),
                None => {
                    return Err(ParseBackoffError::new(format!(
                        "expected {GRAMMAR}: `)` is missing at the end of `{text}`"
                    )))
                }
            },
        };
        match (name, args) {
            ("none", None) => Ok(Backoff::None),
            ("fixed", Some(args)) => match durations(args)?.as_slice() {
                [delay_ms] => Ok(Backoff::Fixed {
                    delay_ms: *delay_ms,
                }),
                _ => Err(ParseBackoffError::new(
                    "expected `fixed(<delay>)` with one duration, such as `fixed(500ms)`",
                )),
            },
            ("exponential", Some(args)) => match durations(args)?.as_slice() {
                [base_ms, max_ms] if base_ms <= max_ms => Ok(Backoff::Exponential {
                    base_ms: *base_ms,
                    max_ms: *max_ms,
                }),
                [base_ms, max_ms] => Err(ParseBackoffError::new(format!(
                    "expected `exponential(<base>, <max>)` with base <= max, found base {} > max {}",
                    DurationText(*base_ms),
                    DurationText(*max_ms)
                ))),
                _ => Err(ParseBackoffError::new(
                    "expected `exponential(<base>, <max>)` with two durations, such as `exponential(100ms, 30s)`",
                )),
            },
            ("none", Some(_)) => Err(ParseBackoffError::new(
                "expected `none` without parentheses",
            )),
            ("fixed", None) => Err(ParseBackoffError::new(
                "expected `fixed(<delay>)`, such as `fixed(500ms)`",
            )),
            ("exponential", None) => Err(ParseBackoffError::new(
                "expected `exponential(<base>, <max>)`, such as `exponential(100ms, 30s)`",
            )),
            _ => Err(ParseBackoffError::new(format!(
                "expected {GRAMMAR}, found `{text}`"
            ))),
        }
    }
}

/// The comma-separated durations between the parentheses, in ms.
fn durations(args: &str) -> Result<Vec<u64>, ParseBackoffError> {
    if args.trim().is_empty() {
        return Ok(Vec::new());
    }
    args.split(',').map(duration_ms).collect()
}

/// One duration (`100ms`, `30s`, `5m`, `1h`) in ms.
fn duration_ms(text: &str) -> Result<u64, ParseBackoffError> {
    let text = text.trim();
    let expected = || {
        ParseBackoffError::new(format!(
            "expected a duration such as `100ms`, `30s`, `5m` or `1h` (a whole number, then `ms`, `s`, `m` or `h`), found `{text}`"
        ))
    };
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let per_unit = UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, ms)| *ms);
    let (false, Some(per_unit)) = (number.is_empty(), per_unit) else {
        return Err(expected());
    };
    let too_long = || {
        ParseBackoffError::new(format!(
            "expected a duration of at most 24h, found `{text}`"
        ))
    };
    let ms = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(per_unit))
        .ok_or_else(too_long)?;
    match ms {
        0 => Err(ParseBackoffError::new(format!(
            "expected a duration above zero (`none` retries at once), found `{text}`"
        ))),
        ms if ms > MAX_DELAY_MS => Err(too_long()),
        ms => Ok(ms),
    }
}

/// Writes the text form [`FromStr`] reads, each duration in the largest
/// unit that divides it: `exponential(100ms, 30s)`.
impl fmt::Display for Backoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Backoff::None => f.write_str("none"),
            Backoff::Fixed { delay_ms } => write!(f, "fixed({})", DurationText(delay_ms)),
            Backoff::Exponential { base_ms, max_ms } => write!(
                f,
                "exponential({}, {})",
                DurationText(base_ms),
                DurationText(max_ms)
            ),
        }
    }
}

/// A duration in ms, written in the largest unit that divides it.
struct DurationText(u64);

impl fmt::Display for DurationText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (unit, per_unit) = UNITS
            .iter()
            .find(|(_, per_unit)| self.0 != 0 && self.0.is_multiple_of(*per_unit))
            .copied()
            .unwrap_or(("ms", 1));
        write!(f, "{}{unit}", self.0 / per_unit)
    }
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
        for random in [0, 1, 49, 50, 51, 12_345, u64::MAX - 1, u64::MAX] {
            let (d1, d2, d3) = (b.delay(1, random), b.delay(2, random), b.delay(3, random));
            assert!((50..=100).contains(&(d1.as_millis() as u64)), "{d1:?}");
            assert!((100..=200).contains(&(d2.as_millis() as u64)), "{d2:?}");
            assert!(d3 >= d2 && d2 >= d1);
            assert!(b.delay(40, random) <= Duration::from_secs(1));
            assert!(b.delay(u32::MAX, random) >= Duration::from_millis(500));
        }
        assert_eq!(Backoff::None.delay(3, 7), Duration::ZERO);
        assert_eq!(
            Backoff::Fixed { delay_ms: 7 }.delay(9, 7),
            Duration::from_millis(7)
        );
    }

    // What the grammar accepts and refuses (rpc-codegen's diagnostics and
    // the runtime's policy both use this parser).
    const ACCEPTED: &[(&str, Backoff)] = &[
        ("none", Backoff::None),
        ("  none\t", Backoff::None),
        ("fixed(500ms)", Backoff::Fixed { delay_ms: 500 }),
        ("fixed( 2s )", Backoff::Fixed { delay_ms: 2_000 }),
        ("fixed(1m)", Backoff::Fixed { delay_ms: 60_000 }),
        (
            "fixed(24h)",
            Backoff::Fixed {
                delay_ms: 86_400_000,
            },
        ),
        (
            "fixed(86400000ms)",
            Backoff::Fixed {
                delay_ms: 86_400_000,
            },
        ),
        ("fixed(007s)", Backoff::Fixed { delay_ms: 7_000 }),
        (
            "exponential(100ms, 30s)",
            Backoff::Exponential {
                base_ms: 100,
                max_ms: 30_000,
            },
        ),
        (
            " exponential ( 100ms ,30s ) ",
            Backoff::Exponential {
                base_ms: 100,
                max_ms: 30_000,
            },
        ),
        (
            "exponential(1s,1s)",
            Backoff::Exponential {
                base_ms: 1_000,
                max_ms: 1_000,
            },
        ),
        (
            "exponential(1ms, 24h)",
            Backoff::Exponential {
                base_ms: 1,
                max_ms: 86_400_000,
            },
        ),
    ];

    // Refused texts, each with a piece of the message that says why.
    const REFUSED: &[(&str, &str)] = &[
        (
            "",
            "expected `none`, `fixed(<delay>)` or `exponential(<base>, <max>)`",
        ),
        ("None", "found `None`"),
        ("linear(1s)", "found `linear(1s)`"),
        ("fixed 1s", "found `fixed 1s`"),
        ("none()", "`none` without parentheses"),
        ("fixed", "expected `fixed(<delay>)`"),
        ("exponential", "expected `exponential(<base>, <max>)`"),
        ("fixed()", "with one duration"),
        ("fixed(1s, 2s)", "with one duration"),
        ("exponential(100ms)", "with two durations"),
        ("exponential(1s, 2s, 3s)", "with two durations"),
        ("exponential(1s, 2s,)", "found ``"),
        ("fixed(1s", "`)` is missing"),
        ("exponential(100ms, 30s) x", "`)` is missing"),
        ("fixed(1s))", "found `1s)`"),
        ("fixed((1s))", "found `(1s)`"),
        ("fixed(10)", "a duration such as `100ms`"),
        ("fixed(1 s)", "found `1 s`"),
        ("fixed(1.5s)", "found `1.5s`"),
        ("fixed(-1s)", "found `-1s`"),
        ("fixed(+1s)", "found `+1s`"),
        ("fixed(1d)", "found `1d`"),
        ("fixed(1S)", "found `1S`"),
        ("fixed(ms)", "found `ms`"),
        ("fixed(\u{ff11}s)", "a duration such as `100ms`"),
        ("fixed(0ms)", "above zero"),
        ("exponential(0s, 1s)", "above zero"),
        ("fixed(25h)", "at most 24h"),
        ("fixed(1441m)", "at most 24h"),
        ("fixed(86400001ms)", "at most 24h"),
        ("fixed(99999999999999999999999ms)", "at most 24h"),
        ("fixed(18446744073709551615h)", "at most 24h"),
        (
            "exponential(30s, 100ms)",
            "expected `exponential(<base>, <max>)` with base <= max, found base 30s > max 100ms",
        ),
    ];

    #[test]
    fn the_grammar_accepts_what_it_documents() {
        for (text, expected) in ACCEPTED {
            assert_eq!(text.parse::<Backoff>().as_ref(), Ok(expected), "{text:?}");
        }
    }

    #[test]
    fn refused_texts_say_what_was_expected() {
        for (text, why) in REFUSED {
            match text.parse::<Backoff>() {
                Ok(b) => panic!("{text:?} was accepted as {b:?}"),
                Err(e) => assert!(e.to_string().contains(why), "{text:?}: {e}"),
            }
        }
    }

    #[test]
    fn display_uses_the_largest_exact_unit() {
        assert_eq!(Backoff::DEFAULT.to_string(), "exponential(100ms, 30s)");
        assert_eq!(Backoff::None.to_string(), "none");
        assert_eq!(
            Backoff::Fixed { delay_ms: 90_000 }.to_string(),
            "fixed(90s)"
        );
        assert_eq!(
            Backoff::Fixed {
                delay_ms: 7_200_000
            }
            .to_string(),
            "fixed(2h)"
        );
        assert_eq!(
            Backoff::Fixed { delay_ms: 1_500 }.to_string(),
            "fixed(1500ms)"
        );
    }

    /// A delay the grammar can state: 1 ms to 24 h.
    fn delay_ms() -> impl proptest::strategy::Strategy<Value = u64> {
        use proptest::prelude::*;
        prop_oneof![
            1..=MAX_DELAY_MS,
            (1..=24u64).prop_map(|h| h * 3_600_000),
            (1..=1_440u64).prop_map(|m| m * 60_000),
            (1..=86_400u64).prop_map(|s| s * 1_000),
        ]
    }

    fn valid_backoff() -> impl proptest::strategy::Strategy<Value = Backoff> {
        use proptest::prelude::*;
        prop_oneof![
            Just(Backoff::None),
            delay_ms().prop_map(|delay_ms| Backoff::Fixed { delay_ms }),
            (delay_ms(), delay_ms()).prop_map(|(a, b)| Backoff::Exponential {
                base_ms: a.min(b),
                max_ms: a.max(b),
            }),
        ]
    }

    proptest::proptest! {
        #[test]
        fn display_round_trips_through_from_str(backoff in valid_backoff()) {
            proptest::prop_assert_eq!(backoff.to_string().parse::<Backoff>(), Ok(backoff));
        }

        #[test]
        fn garbage_never_panics(text in "\\PC{0,40}") {
            let _ = text.parse::<Backoff>();
        }

        // Near misses reach every branch: whatever is accepted prints back
        // to a text that means the same.
        #[test]
        fn near_misses_never_panic(text in "[ a-z0-9(),]{0,30}") {
            if let Ok(backoff) = text.parse::<Backoff>() {
                proptest::prop_assert_eq!(backoff.to_string().parse::<Backoff>(), Ok(backoff));
            }
        }
    }
}
