//! The `#[backoff = "..."]` attribute's value: a job's retry policy, read
//! from its text form into the model, emitted as an `rpc_runtime::Backoff`.
//!
//! ```text
//! backoff  = "none" | "fixed" "(" duration ")" | "exponential" "(" duration "," duration ")"
//! duration = DIGITS ("ms" | "s" | "m" | "h")        above zero, at most 24h; base <= max
//! ```
//!
//! rpc-runtime reads the same grammar (`impl FromStr for Backoff`, for
//! settings given as text). Codegen does not depend on the runtime, so the
//! grammar is written twice: both parsers' unit tests hold the same
//! accepted/refused examples, and `tests/backoff_grammar.rs` checks that the
//! two agree on them and on arbitrary text. Change both or neither.

/// How a retry policy is written, for help texts.
pub const USAGE: &str = "`#[backoff = \"exponential(100ms, 30s)\"]`: `none`, `fixed(<delay>)` \
     or `exponential(<base>, <max>)` with base <= max, each duration a whole number \
     followed by `ms`, `s`, `m` or `h`, from 1ms to 24h";

/// The longest delay a policy may name (24 h), as rpc-runtime caps it.
const MAX_DELAY_MS: u64 = 24 * 60 * 60 * 1000;

/// Units a duration may be written in.
const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

/// The grammar, as error messages state it.
const GRAMMAR: &str = "`none`, `fixed(<delay>)` or `exponential(<base>, <max>)`";

/// A job's retry policy: `rpc_runtime::Backoff`, in the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backoff {
    None,
    Fixed { delay_ms: u64 },
    Exponential { base_ms: u64, max_ms: u64 },
}

/// Reads a policy, or says what was expected (the diagnostic's label).
pub fn parse(text: &str) -> Result<Backoff, String> {
    let text = text.trim();
    let (name, args) = match text.split_once('(') {
        None => (text, None),
        Some((name, rest)) => match rest.trim_end().strip_suffix(')') {
            Some(args) => (name.trim_end(), Some(args)),
            None => {
                return Err(format!(
                    "expected {GRAMMAR}: `)` is missing at the end of `{text}`"
                ))
            }
        },
    };
    match (name, args) {
        ("none", None) => Ok(Backoff::None),
        ("fixed", Some(args)) => match durations(args)?.as_slice() {
            [delay_ms] => Ok(Backoff::Fixed {
                delay_ms: *delay_ms,
            }),
            _ => Err("expected `fixed(<delay>)` with one duration, such as `fixed(500ms)`".into()),
        },
        ("exponential", Some(args)) => match durations(args)?.as_slice() {
            [base_ms, max_ms] if base_ms <= max_ms => Ok(Backoff::Exponential {
                base_ms: *base_ms,
                max_ms: *max_ms,
            }),
            [base_ms, max_ms] => Err(format!(
                "expected `exponential(<base>, <max>)` with base <= max, found base {} > max {}",
                duration_text(*base_ms),
                duration_text(*max_ms)
            )),
            _ => Err(
                "expected `exponential(<base>, <max>)` with two durations, such as `exponential(100ms, 30s)`"
                    .into(),
            ),
        },
        ("none", Some(_)) => Err("expected `none` without parentheses".into()),
        ("fixed", None) => Err("expected `fixed(<delay>)`, such as `fixed(500ms)`".into()),
        ("exponential", None) => {
            Err("expected `exponential(<base>, <max>)`, such as `exponential(100ms, 30s)`".into())
        }
        _ => Err(format!("expected {GRAMMAR}, found `{text}`")),
    }
}

/// The comma-separated durations between the parentheses, in ms.
fn durations(args: &str) -> Result<Vec<u64>, String> {
    if args.trim().is_empty() {
        return Ok(Vec::new());
    }
    args.split(',').map(duration_ms).collect()
}

/// One duration (`100ms`, `30s`, `5m`, `1h`) in ms.
fn duration_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let per_unit = UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, ms)| *ms);
    let (false, Some(per_unit)) = (number.is_empty(), per_unit) else {
        return Err(format!(
            "expected a duration such as `100ms`, `30s`, `5m` or `1h` (a whole number, then `ms`, `s`, `m` or `h`), found `{text}`"
        ));
    };
    let too_long = || format!("expected a duration of at most 24h, found `{text}`");
    let ms = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(per_unit))
        .ok_or_else(too_long)?;
    match ms {
        0 => Err(format!(
            "expected a duration above zero (`none` retries at once), found `{text}`"
        )),
        ms if ms > MAX_DELAY_MS => Err(too_long()),
        ms => Ok(ms),
    }
}

/// A duration in ms, in the largest unit that divides it (`30s`).
fn duration_text(ms: u64) -> String {
    let (unit, per_unit) = UNITS
        .iter()
        .find(|(_, per_unit)| ms != 0 && ms.is_multiple_of(*per_unit))
        .copied()
        .unwrap_or(("ms", 1));
    format!("{}{unit}", ms / per_unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The same examples as rpc-runtime's `backoff.rs` tests: the two
    // parsers of the grammar accept and refuse the same texts.
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
            assert_eq!(parse(text).as_ref(), Ok(expected), "{text:?}");
        }
    }

    #[test]
    fn refused_texts_say_what_was_expected() {
        for (text, why) in REFUSED {
            match parse(text) {
                Ok(b) => panic!("{text:?} was accepted as {b:?}"),
                Err(e) => assert!(e.contains(why), "{text:?}: {e}"),
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn garbage_never_panics(text in "\\PC{0,40}") {
            let _ = parse(&text);
        }

        #[test]
        fn near_misses_never_panic(text in "[ a-z0-9(),]{0,30}") {
            let _ = parse(&text);
        }
    }
}
