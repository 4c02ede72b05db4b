//! A call's progress, as a worker writes it and a watcher reads it: one
//! string key per call (`P:progress:{call}`, [`Keys::progress`]) holding
//! the newest value as compact JSON, with a TTL.
//!
//! Progress is a state, not an event log: each write replaces the value,
//! so a watcher sees the newest and may skip intermediate ones (that is
//! the bound, and the only one: nothing is trimmed, the key holds the
//! newest until its TTL). `seq` counts the handler's reports within one
//! attempt, so a watcher skips a value it has seen, and `attempt` orders
//! a retry's values after the attempt before it. A worker writes at most
//! one value per call every [`WRITE_INTERVAL`]; a worker that never
//! reports progress (an older one, say) never writes the key.
//!
//! Everything read is hostile: [`ProgressValue::decode`] takes only the
//! documented object, its numbers in range, at most [`MAX_VALUE_BYTES`].
//!
//! [`Keys::progress`]: crate::Keys::progress

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The longest message kept, in characters (a longer one is cut at a
/// character boundary).
pub const MESSAGE_CHARS: usize = 200;
/// The largest value a watcher reads, in bytes: a longer one is refused
/// unread past this (a message of [`MESSAGE_CHARS`] escaped as `\uXXXX`
/// fits, with the numbers).
pub const MAX_VALUE_BYTES: usize = 2048;
/// A worker writes a call's progress at most once per this interval
/// (latest wins), however often its handler reports.
pub const WRITE_INTERVAL: Duration = Duration::from_millis(200);
/// How often a watcher reads the key.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(200);
/// The TTL of a call's progress without a deadline or kept result.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60 * 60);
/// The longest TTL a progress value is given.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// One progress value, as it is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressValue {
    /// The report's number within its attempt, from 1; reports written
    /// less often than they are made skip numbers.
    pub seq: u64,
    /// When the handler reported it (ms since the epoch, the worker's
    /// view of the broker's clock).
    pub at_ms: u64,
    /// The attempt that reported it, from 1 (absent: 1).
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// Steps done, with `total`; both absent for a plain fraction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<u64>,
    /// The number of steps, at least 1 and at least `done`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// How far along, `0.0..=1.0` (`done / total` for steps).
    pub fraction: f64,
    /// What the handler said, at most [`MESSAGE_CHARS`] characters.
    #[serde(default)]
    pub message: String,
}

fn first_attempt() -> u32 {
    1
}

/// Why a progress value is refused: from a handler, or read from the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadProgress {
    /// A fraction that is NaN, infinite or outside `0..=1`.
    #[error("a progress fraction must be a number from 0 to 1, not {0}")]
    Fraction(String),
    /// Steps with `done > total`, or `total` 0.
    #[error("progress steps must be done/total with 0 <= done <= total and total >= 1, not {done}/{total}")]
    Steps { done: u64, total: u64 },
    /// `done` without `total` or the other way round.
    #[error("progress has `done` or `total` without the other")]
    HalfSteps,
    /// A value longer than [`MAX_VALUE_BYTES`].
    #[error("the progress value is {0} bytes or more, over the limit of {MAX_VALUE_BYTES}")]
    TooLarge(usize),
    /// Not the documented JSON object.
    #[error("the progress value is not the documented JSON object: {0}")]
    Malformed(String),
}

/// Checks a fraction: finite, from 0 to 1.
pub fn check_fraction(fraction: f64) -> Result<f64, BadProgress> {
    if fraction.is_finite() && (0.0..=1.0).contains(&fraction) {
        Ok(fraction)
    } else {
        Err(BadProgress::Fraction(fraction.to_string()))
    }
}

/// Checks steps and gives their fraction: `total >= 1`, `done <= total`.
pub fn check_steps(done: u64, total: u64) -> Result<f64, BadProgress> {
    if total == 0 || done > total {
        return Err(BadProgress::Steps { done, total });
    }
    Ok(done as f64 / total as f64)
}

/// `message` cut to at most [`MESSAGE_CHARS`] characters.
pub fn cut_message(message: &str) -> &str {
    match message.char_indices().nth(MESSAGE_CHARS) {
        Some((end, _)) => &message[..end],
        None => message,
    }
}

/// The TTL of a call's progress: what is left of its deadline plus how
/// long its result is kept, or [`DEFAULT_TTL`] when it has neither; at
/// least a second, at most [`MAX_TTL`].
pub fn ttl(remaining: Option<Duration>, kept: Option<Duration>) -> Duration {
    let ttl = match (remaining, kept) {
        (None, None) => DEFAULT_TTL,
        (remaining, kept) => remaining.unwrap_or(DEFAULT_TTL) + kept.unwrap_or_default(),
    };
    ttl.clamp(Duration::from_secs(1), MAX_TTL)
}

impl ProgressValue {
    /// The compact JSON a worker writes.
    pub fn encode(&self) -> Vec<u8> {
        // Only strings and numbers already checked: nothing can fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a stored value strictly: the documented object, its numbers
    /// in range, at most [`MAX_VALUE_BYTES`]; a message over
    /// [`MESSAGE_CHARS`] is cut.
    pub fn decode(bytes: &[u8]) -> Result<ProgressValue, BadProgress> {
        if bytes.len() > MAX_VALUE_BYTES {
            return Err(BadProgress::TooLarge(bytes.len()));
        }
        // serde's derive would also read an array in field order.
        if !crate::job::is_json_object(bytes) {
            return Err(BadProgress::Malformed("not a JSON object".to_owned()));
        }
        let mut value: ProgressValue =
            serde_json::from_slice(bytes).map_err(|e| BadProgress::Malformed(e.to_string()))?;
        check_fraction(value.fraction)?;
        match (value.done, value.total) {
            (None, None) => {}
            (Some(done), Some(total)) => {
                check_steps(done, total)?;
            }
            _ => return Err(BadProgress::HalfSteps),
        }
        if value.attempt == 0 {
            return Err(BadProgress::Malformed("`attempt` starts at 1".to_owned()));
        }
        let cut = cut_message(&value.message);
        if cut.len() < value.message.len() {
            value.message = cut.to_owned();
        }
        Ok(value)
    }

    /// Whether this value comes after `seen` (`(attempt, seq)` of the last
    /// value a watcher passed on).
    pub fn is_after(&self, seen: Option<(u32, u64)>) -> bool {
        seen.is_none_or(|seen| (self.attempt, self.seq) > seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(done: u64, total: u64) -> ProgressValue {
        ProgressValue {
            seq: 3,
            at_ms: 1_700_000_000_000,
            attempt: 1,
            done: Some(done),
            total: Some(total),
            fraction: done as f64 / total as f64,
            message: "copying".to_owned(),
        }
    }

    #[test]
    fn a_value_reads_back_as_written() {
        let value = steps(3, 10);
        let text = String::from_utf8(value.encode()).unwrap();
        assert_eq!(
            text,
            r#"{"seq":3,"at_ms":1700000000000,"attempt":1,"done":3,"total":10,"fraction":0.3,"message":"copying"}"#
        );
        assert_eq!(ProgressValue::decode(text.as_bytes()), Ok(value));
        // A fraction alone, from another language, without `attempt`.
        let plain = ProgressValue::decode(br#"{"seq":1,"at_ms":5,"fraction":0.5}"#).unwrap();
        assert_eq!(
            (plain.attempt, plain.done, plain.message.as_str()),
            (1, None, "")
        );
    }

    #[test]
    fn bad_values_are_refused_not_believed() {
        for bad in [
            &b"not json"[..],
            b"[1,2,3,4,5,6,7]",
            br#"{"seq":"one","at_ms":1,"fraction":0.5}"#,
            br#"{"seq":1,"at_ms":1,"fraction":1.5}"#,
            br#"{"seq":1,"at_ms":1,"fraction":-0.1}"#,
            br#"{"seq":-1,"at_ms":1,"fraction":0.1}"#,
            br#"{"seq":1,"at_ms":1,"fraction":0.1,"done":4,"total":3}"#,
            br#"{"seq":1,"at_ms":1,"fraction":0.1,"done":0,"total":0}"#,
            br#"{"seq":1,"at_ms":1,"fraction":0.1,"done":1}"#,
            br#"{"seq":1,"at_ms":1,"attempt":0,"fraction":0.1}"#,
            br#"{"seq":1,"at_ms":1,"fraction":0.1,"message":7}"#,
        ] {
            assert!(
                ProgressValue::decode(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let huge = format!(
            r#"{{"seq":1,"at_ms":1,"fraction":0.1,"message":"{}"}}"#,
            "x".repeat(MAX_VALUE_BYTES)
        );
        assert!(matches!(
            ProgressValue::decode(huge.as_bytes()),
            Err(BadProgress::TooLarge(_))
        ));
    }

    #[test]
    fn fractions_and_steps_are_checked() {
        assert_eq!(check_fraction(0.0), Ok(0.0));
        assert_eq!(check_fraction(1.0), Ok(1.0));
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.01, 1.01] {
            assert!(check_fraction(bad).is_err(), "{bad}");
        }
        assert_eq!(check_steps(0, 4), Ok(0.0));
        assert_eq!(check_steps(4, 4), Ok(1.0));
        assert!(check_steps(5, 4).is_err());
        assert!(check_steps(0, 0).is_err());
    }

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MESSAGE_CHARS + 5);
        let cut = cut_message(&long);
        assert_eq!(cut.chars().count(), MESSAGE_CHARS);
        assert_eq!(cut_message("short"), "short");
    }

    #[test]
    fn the_ttl_covers_the_deadline_and_the_kept_result_within_bounds() {
        let s = Duration::from_secs;
        assert_eq!(ttl(None, None), DEFAULT_TTL);
        assert_eq!(ttl(Some(s(30)), None), s(30));
        assert_eq!(ttl(Some(s(30)), Some(s(300))), s(330));
        assert_eq!(ttl(None, Some(s(300))), DEFAULT_TTL + s(300));
        assert_eq!(ttl(Some(Duration::ZERO), None), s(1));
        assert_eq!(ttl(Some(s(400 * 24 * 3600)), None), MAX_TTL);
    }

    #[test]
    fn a_retry_orders_after_the_attempt_before_it() {
        let mut v = steps(1, 2);
        assert!(v.is_after(None));
        assert!(!v.is_after(Some((1, 3))));
        assert!(v.is_after(Some((1, 2))));
        v.attempt = 2;
        v.seq = 1;
        assert!(v.is_after(Some((1, 50))));
    }
}
