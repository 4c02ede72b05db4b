//! An idempotent call's fingerprint: which job and which parameters a key
//! stands for, so a second call with the key can be told apart from the
//! first ("the same call again": attach to it) or not ("another call under
//! the same key": a conflict).
//!
//! Two senders, in any language, must reach the same fingerprint for the
//! same call however they spell its JSON, so the parameters are hashed in
//! a canonical form rather than as sent: RFC 8785 (JSON Canonicalization
//! Scheme) for structure and strings, with one change for numbers. RFC 8785
//! writes every number as an IEEE double, which would give two different
//! `u64` ids above 2^53 one fingerprint, and so let one caller's call
//! answer another's. Here an integer written without a fraction or an
//! exponent is written exactly. docs/PROTOCOL.md ("Idempotency keys")
//! states the rules; the tests below pin them.

use sha2::{Digest, Sha256};

/// The fingerprint of a call of `job` (`Service.job`) with `params` (the
/// JSON as sent): SHA-256, lowercase hex, of the job name, a newline and
/// the canonical form of the parameters. `None` when `params` is not JSON.
pub fn fingerprint(job: &str, params: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(params).ok()?;
    let mut text = String::with_capacity(params.len());
    canonical(&value, &mut text);
    let mut sha = Sha256::new();
    sha.update(job.as_bytes());
    sha.update(b"\n");
    sha.update(text.as_bytes());
    Some(sha.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `value` in the canonical form: no white space, object members
/// sorted by their keys' UTF-16 code units, strings escaped as RFC 8785
/// says, numbers as [`number`] says.
pub fn canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => number(n, out),
        Value::String(s) => string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            let mut sorted: Vec<_> = members.iter().collect();
            sorted.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, (key, item)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(key, out);
                out.push(':');
                canonical(item, out);
            }
            out.push('}');
        }
    }
}

/// A number: an integer literal that fits a 64-bit integer exactly as
/// written; any other number as the IEEE double it reads as, written as
/// ECMAScript's `Number.prototype.toString` does (RFC 8785, 3.2.2.3), so
/// `1`, `1.0` and `1e0` agree, and `-0` is `0`.
fn number(n: &serde_json::Number, out: &mut String) {
    if let Some(i) = n.as_i64() {
        out.push_str(&i.to_string());
    } else if let Some(u) = n.as_u64() {
        out.push_str(&u.to_string());
    } else if let Some(f) = n.as_f64() {
        // Whole doubles below 2^53 are exact integers: written as such
        // (ECMAScript would write the same digits).
        if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
            out.push_str(&(f as i64).to_string());
        } else {
            out.push_str(ryu_js::Buffer::new().format(f));
        }
    }
}

/// A string as RFC 8785 writes it (serde_json escapes exactly the same
/// characters, the same way: `"`, `\`, and controls below U+0020, with
/// `\b \t \n \f \r` and lowercase `\u00xx` for the rest).
fn string(s: &str, out: &mut String) {
    out.push_str(&serde_json::to_string(s).expect("a str always serializes"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(json: &str) -> String {
        let mut out = String::new();
        canonical(&serde_json::from_str(json).unwrap(), &mut out);
        out
    }

    #[test]
    fn key_order_white_space_and_number_spelling_do_not_change_the_fingerprint() {
        let a = fingerprint("S.j", r#"{"b": [1, 2.0, 1e0], "a": {"y": -0, "x": "é"}}"#);
        let b = fingerprint("S.j", r#"{"a":{"x":"\u00e9","y":0},"b":[1,2,1]}"#);
        assert_eq!(a, b);
        assert_ne!(
            a,
            fingerprint("S.k", r#"{"a":{"x":"é","y":0},"b":[1,2,1]}"#)
        );
        assert_eq!(a.as_ref().map(String::len), Some(64));
    }

    #[test]
    fn large_integers_are_exact_where_a_double_would_merge_them() {
        assert_ne!(
            fingerprint("S.j", r#"{"id": 9007199254740993}"#),
            fingerprint("S.j", r#"{"id": 9007199254740992}"#)
        );
        assert_eq!(canon("18446744073709551615"), "18446744073709551615");
        assert_eq!(canon("-9223372036854775808"), "-9223372036854775808");
    }

    #[test]
    fn the_canonical_form_follows_rfc_8785() {
        // RFC 8785's own examples (3.2.2.3 numbers, 3.2.3 sorting by UTF-16).
        assert_eq!(canon("1e30"), "1e+30");
        assert_eq!(canon("4.50"), "4.5");
        assert_eq!(canon("2e-3"), "0.002");
        assert_eq!(canon("0.000001"), "0.000001");
        assert_eq!(canon("1e-7"), "1e-7");
        assert_eq!(
            canon(r#"{"\u20ac":1,"\r":2,"\ud83d\ude00":3,"1":4,"\u0080":5,"\u00f6":6,"\ufb33":7}"#),
            "{\"\\r\":2,\"1\":4,\"\u{80}\":5,\"ö\":6,\"€\":1,\"😀\":3,\"\u{fb33}\":7}"
        );
        assert_eq!(canon(r#""\u001f\b/""#), r#""\u001f\b/""#);
        assert_eq!(fingerprint("S.j", "not json"), None);
    }
}
