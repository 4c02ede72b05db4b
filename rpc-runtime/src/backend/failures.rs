//! Recent failed attempts per service, kept by the broker so an operator
//! sees what failed, how, where and how long it ran, even when it was
//! retried and later succeeded or was answered with an error (dead letters
//! are kept elsewhere): workers add one entry per failed attempt, best
//! effort, and the dashboard reads the newest back.
//!
//! On Redis it is a stream (`P:{S}:failures`) capped at
//! [`FAILURES_CAP`](rpc_protocol::limits::FAILURES_CAP) with `MAXLEN ~`
//! and expiring [`FAILURES_KEPT`](rpc_protocol::limits::FAILURES_KEPT)
//! after its last write; its fields are `rpc_protocol::stream::FAILURE_*`.

use async_trait::async_trait;
use rpc_protocol::limits::FAILURE_MESSAGE_BYTES;

use crate::error::Error;

/// One failed attempt of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The call id.
    pub id: String,
    /// `Service.job`.
    pub job: String,
    /// Which attempt failed (from 1).
    pub attempt: u32,
    /// The error kind, as in replies (`handler`, `deadline_exceeded`, ...).
    pub kind: String,
    /// The error message, at most [`FAILURE_MESSAGE_BYTES`].
    pub message: String,
    /// The worker (its consumer name) that ran the attempt.
    pub worker: String,
    /// How long the attempt ran, in ms.
    pub duration_ms: u64,
    /// Whether the job will be tried again.
    pub retried: bool,
}

/// A failure as read back, with where it sits in the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedFailure {
    /// Its entry id (on Redis the stream id, `<ms>-<seq>`): the cursor
    /// of the next page is the last entry id of this one.
    pub entry: String,
    /// When it was recorded, ms since the epoch (the broker's clock).
    pub at_ms: u64,
    /// What was recorded (anything read is hostile: fields that are
    /// missing or malformed read as empty or zero).
    pub failure: Failure,
}

/// The record of recent failures: added by workers, read by operators.
#[async_trait]
pub trait Failures: Send + Sync + 'static {
    /// Adds `failure` to `queue`'s record, keeping it bounded.
    async fn record_failure(&self, queue: &str, failure: &Failure) -> Result<(), Error>;

    /// At most `max` of `queue`'s recorded failures, newest first, older
    /// than entry `before` when given (the previous page's last entry).
    async fn recent_failures(
        &self,
        queue: &str,
        before: Option<&str>,
        max: usize,
    ) -> Result<Vec<RecordedFailure>, Error>;
}

/// `message` cut to at most [`FAILURE_MESSAGE_BYTES`], at a character
/// boundary, with `…` when it was cut.
pub fn cut_message(message: &str) -> String {
    if message.len() <= FAILURE_MESSAGE_BYTES {
        return message.to_owned();
    }
    let mut end = FAILURE_MESSAGE_BYTES - '…'.len_utf8();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        assert_eq!(cut_message("short"), "short");
        let long = "é".repeat(FAILURE_MESSAGE_BYTES);
        let cut = cut_message(&long);
        assert!(cut.len() <= FAILURE_MESSAGE_BYTES, "{}", cut.len());
        assert!(cut.ends_with('…'));
    }
}
