//! What waits on a service's schedule, as an operator sees it: delayed
//! calls and retries waiting out their backoff.

use serde::Serialize;

use super::excerpts::Excerpt;
use super::figures::message;
use rpc_protocol::job::JobMessage;

/// A job waiting on a service's schedule: a delayed call, or a failed call
/// waiting to be retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScheduledJob {
    /// The entry token, which is the call id.
    pub id: String,
    /// When it is due, in ms since the Unix epoch on Redis's clock.
    pub due_ms: u64,
    /// The attempt it will be (1 for a delayed call, 2 and up for a retry);
    /// `None` when the message is no readable job message.
    pub attempt: Option<u32>,
    /// The full job name (`Service.job`); `None` when the message is no
    /// readable job message.
    pub job: Option<String>,
    /// The message (empty when the entry has none: moved onto the queue
    /// meanwhile, or written broken).
    #[serde(rename = "message", serialize_with = "message")]
    pub payload: Vec<u8>,
}

/// A job on the schedule with the windows of its token and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScheduledExcerpt {
    /// The token (the call id), cut to 512 bytes.
    pub token: Excerpt,
    /// When it is due, ms since the Unix epoch on Redis's clock; `None`
    /// when only its message is left (moved onto the queue meanwhile).
    pub due_ms: Option<u64>,
    /// The window of the message; `None` when it has none.
    pub message: Option<Excerpt>,
}

impl ScheduledJob {
    /// Whether this is a retry waiting out its backoff (attempt 2 or later)
    /// rather than a call sent with a delay.
    pub fn is_retry(&self) -> bool {
        self.attempt.is_some_and(|a| a > 1)
    }
}

/// The attempt and job name of a job message, or `(None, None)` when it is
/// none (not a JSON object, or missing the fields every job message has).
pub(crate) fn attempt_and_job(payload: &[u8]) -> (Option<u32>, Option<String>) {
    if !rpc_protocol::job::is_json_object(payload) {
        return (None, None);
    }
    match serde_json::from_slice::<JobMessage>(payload) {
        Ok(message) => (Some(message.attempt), Some(message.job.into_owned())),
        Err(_) => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_job_messages_give_an_attempt_and_a_job() {
        let message = br#"{"v":1,"id":"c1","job":"Math.add","params":{},"attempt":3}"#;
        assert_eq!(
            attempt_and_job(message),
            (Some(3), Some("Math.add".to_owned()))
        );
        for garbage in [
            &b""[..],
            b"\xff\x00{",
            b"[1,2]",
            b"{\"job\":1}",
            b"not json",
        ] {
            assert_eq!(attempt_and_job(garbage), (None, None), "{garbage:?}");
        }
    }
}
