//! Windows of values that may be any size (messages, reasons, kept
//! results), each with its full length, and the entries a search by call
//! id found: what pages that must stay small whatever the queues hold are
//! made of.

use std::time::Duration;

use serde::Serialize;

/// The most entries one read returns (the scripts cap it too).
pub const MAX_ENTRIES_PER_READ: usize = 1000;
/// The largest window one read returns per value (the scripts cap it too).
pub const MAX_WINDOW_BYTES: usize = 1024 * 1024;
/// Which stream of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Stream {
    /// `P:{Service}:jobs`: queued and leased jobs.
    Jobs,
    /// `P:{Service}:dead`: dead letters.
    Dead,
}

/// A window of a value that may be large, and the value's full length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Excerpt {
    /// The bytes of the window.
    pub bytes: Vec<u8>,
    /// The whole value's length in bytes.
    pub len: u64,
}

impl Excerpt {
    /// Whether a window read from offset 0 holds the whole value.
    pub fn is_whole(&self) -> bool {
        self.bytes.len() as u64 == self.len
    }
}

/// A stream entry with the window of its message (`m`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageExcerpt {
    /// The entry id.
    pub token: String,
    /// The window of the message; `None` for an entry without one.
    pub message: Option<Excerpt>,
}

/// A dead letter with the windows of its reason and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetterExcerpt {
    /// The entry id.
    pub token: String,
    /// The window of the reason; `None` for an entry without one.
    pub reason: Option<Excerpt>,
    /// The window of the message; `None` for an entry without one.
    pub message: Option<Excerpt>,
}

/// Who holds a leased job, and for how long.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    /// The consumer holding the lease.
    pub consumer: String,
    /// Time since the lease was last delivered or renewed.
    #[serde(rename = "idle_ms", serialize_with = "super::figures::millis")]
    pub idle: Duration,
    /// How often the group has handed this entry out.
    pub deliveries: u64,
}

/// A leased job with the window of its message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeasedExcerpt {
    /// The entry id.
    pub token: String,
    /// Who holds it.
    pub lease: Lease,
    /// The window of the message; `None` if the entry was deleted meanwhile.
    pub message: Option<Excerpt>,
}

/// What a search for `call_id` looks for in a message: the id as JSON
/// writes it, quotes included (as `find_call.lua` does), so that an id is
/// not found inside a longer one.
pub(crate) fn call_id_needle(call_id: &str) -> String {
    serde_json::Value::from(call_id).to_string()
}

/// A page of a stream, newest first ([`Inspection::search_stream`]).
///
/// [`Inspection::search_stream`]: crate::backend::Inspection::search_stream
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPage {
    /// The matching entries, newest first.
    pub tokens: Vec<String>,
    /// The oldest entry looked at, when the search stopped before the
    /// oldest entry of the stream (the page was full, or the deadline
    /// passed): every entry from the start of the search down to this one
    /// was looked at, and the next page starts below it. `None` when the
    /// search reached the oldest entry.
    pub reached: Option<String>,
}

/// What a search found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The entries whose message holds the call id, newest first.
    pub tokens: Vec<String>,
    /// Whether every entry was looked at; `false` when the deadline or
    /// `max_matches` stopped the search first.
    pub finished: bool,
}
