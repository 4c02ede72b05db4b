//! JSON strings written the way serde_json writes them, without its
//! byte-by-byte escape when nothing needs escaping: the ids, job names
//! and inbox keys of every message almost never do. Used by the writers
//! of the hottest messages (`job_write.rs`, the ok reply in `reply.rs`),
//! whose tests check their output against serde_json's.

/// Whether serde_json writes `s` inside its quotes as it is: no quote, no
/// backslash, no control character (it escapes nothing else). Every byte
/// is looked at, without an early exit, so the compiler checks many at
/// once: the strings are short and almost never need escaping.
pub(crate) fn needs_no_escape(s: &str) -> bool {
    !s.bytes().fold(false, |bad, b| {
        bad | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

/// Appends `s` as a JSON string: copied when nothing in it needs
/// escaping, else written by serde_json.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) -> serde_json::Result<()> {
    if needs_no_escape(s) {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(out, s)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn writes_what_serde_json_writes(s in prop_oneof![
            "[a-zA-Z0-9:{}._-]{0,40}",
            "[a\"\\\\\u{0}-\u{1f}\u{7f}é☃]{0,12}",
            any::<String>(),
        ]) {
            let mut out = Vec::new();
            super::write_str(&mut out, &s).unwrap();
            prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&s).unwrap());
        }
    }
}
