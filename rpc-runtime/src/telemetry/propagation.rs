//! W3C Trace Context (`traceparent`, `tracestate`) in a job message's
//! `meta`, so a worker's span is a child of its caller's span across
//! processes and languages (docs/PROTOCOL.md, "Trace context").
//!
//! Only what the runtime needs is here: parse a `traceparent` (anything
//! malformed is ignored, never an error: a new trace starts), make a child
//! or a new root, and write the header. The ids are random; no clock or
//! counter enters them.

use std::fmt;

/// The `meta` key of the W3C `traceparent` header.
pub const TRACEPARENT: &str = "traceparent";
/// The `meta` key of the W3C `tracestate` header (passed on untouched).
pub const TRACESTATE: &str = "tracestate";

/// One span's place in a trace: what a `traceparent` header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    /// The trace's id (never zero).
    pub trace_id: u128,
    /// The span's id (never zero).
    pub span_id: u64,
    /// The caller's sampling decision (`trace-flags` bit 0).
    pub sampled: bool,
}

impl TraceContext {
    /// Reads a `traceparent` header; `None` for anything that is not one.
    ///
    /// Version `00` must be exactly `00-<32 hex>-<16 hex>-<2 hex>`; a later
    /// version is read by its first four fields, as the spec asks; `ff` and
    /// all-zero ids are invalid.
    ///
    /// ```
    /// use rpc_runtime::telemetry::TraceContext;
    /// let t = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
    /// assert_eq!(t.span_id, 0x00f067aa0ba902b7);
    /// assert!(TraceContext::parse("00-nothex-00f067aa0ba902b7-01").is_none());
    /// ```
    pub fn parse(header: &str) -> Option<TraceContext> {
        let header = header.trim();
        let b = header.as_bytes();
        // ASCII only, so the slices below fall on character boundaries.
        if !header.is_ascii() || b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let version = u8::from_str_radix(lower_hex(&header[0..2])?, 16).ok()?;
        if version == 0xff || (version == 0 && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
            return None;
        }
        let trace_id = u128::from_str_radix(lower_hex(&header[3..35])?, 16).ok()?;
        let span_id = u64::from_str_radix(lower_hex(&header[36..52])?, 16).ok()?;
        let flags = u8::from_str_radix(lower_hex(&header[53..55])?, 16).ok()?;
        if trace_id == 0 || span_id == 0 {
            return None;
        }
        Some(TraceContext {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    /// The first span of a new trace.
    pub fn new_root() -> TraceContext {
        TraceContext {
            trace_id: random_u128(),
            span_id: random_span_id(),
            sampled: true,
        }
    }

    /// A new span in the same trace, whose parent is this one.
    pub fn child(&self) -> TraceContext {
        TraceContext {
            span_id: random_span_id(),
            ..*self
        }
    }

    /// The `traceparent` header (version `00`).
    pub fn traceparent(&self) -> String {
        self.to_string()
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The span id as 16 lowercase hex digits.
    pub fn span_id_hex(&self) -> String {
        format!("{:016x}", self.span_id)
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }
}

/// `s` if it is lowercase hex digits only (the spec forbids uppercase).
fn lower_hex(s: &str) -> Option<&str> {
    s.bytes()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        .then_some(s)
}

fn random_u128() -> u128 {
    // uuid's v4 generator is the random source this crate already has.
    uuid::Uuid::new_v4().as_u128()
}

fn random_span_id() -> u64 {
    (random_u128() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_round_trips_and_children_keep_the_trace() {
        let root = TraceContext::new_root();
        assert_eq!(TraceContext::parse(&root.traceparent()), Some(root));
        let child = root.child();
        assert_eq!(child.trace_id, root.trace_id);
        assert_ne!(child.span_id, root.span_id);
    }

    #[test]
    fn malformed_traceparents_are_ignored() {
        // Each is a header a peer might send; none may start or steer a trace.
        for bad in [
            "",
            "garbage",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736+00f067aa0ba902b7-01",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad:?}");
        }
        // A later version with more fields is read by its first four.
        assert!(
            TraceContext::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz")
                .is_some()
        );
    }
}
