//! The fields of stream entries, the consumer group, and the intake's
//! elements: what goes into Redis besides the JSON envelopes.

/// The consumer group every worker joins on every jobs stream.
pub const GROUP: &str = "workers";
/// The field of a jobs stream entry holding the message.
pub const MESSAGE: &str = "m";
/// The field that flags an entry whose call was cancelled before it got
/// onto the stream (its value is `1`): on the schedule, in the intake, or
/// when `complete.lua` step `S` finds it cancelled. The worker answers it
/// `cancelled` without running it.
pub const CANCELLED: &str = "c";
/// The field of a dead letter holding why it was dead-lettered (it comes
/// first; [`MESSAGE`] holds the message exactly as it was).
pub const REASON: &str = "reason";
/// The optional field of a dead letter naming the worker (its consumer
/// name) that dead-lettered it, after [`MESSAGE`]; absent in dead letters
/// written by older workers and by operators.
pub const WORKER: &str = "worker";
/// The optional field of a dead letter holding how long its last attempt
/// ran, in ms (decimal digits), after [`WORKER`]; absent when the message
/// never ran (unreadable, refused before its handler).
pub const DURATION_MS: &str = "duration_ms";
/// The fields of an entry of `P:{S}:failures`, one failed attempt, in this
/// order: the call id, the job (`Service.job`), the attempt (from 1), the
/// error kind (as in replies), the message (at most
/// [`FAILURE_MESSAGE_BYTES`](crate::limits::FAILURE_MESSAGE_BYTES)), the
/// worker (consumer name), how long the attempt ran (ms), and whether it
/// will be retried (`1` or `0`). Everything in it is hostile to readers.
pub const FAILURE_ID: &str = "id";
/// See [`FAILURE_ID`].
pub const FAILURE_JOB: &str = "job";
/// See [`FAILURE_ID`].
pub const FAILURE_ATTEMPT: &str = "attempt";
/// See [`FAILURE_ID`].
pub const FAILURE_KIND: &str = "kind";
/// See [`FAILURE_ID`].
pub const FAILURE_MESSAGE: &str = "message";
/// See [`FAILURE_ID`]; the same name as a dead letter's.
pub const FAILURE_WORKER: &str = WORKER;
/// See [`FAILURE_ID`]; the same name as a dead letter's.
pub const FAILURE_DURATION_MS: &str = DURATION_MS;
/// See [`FAILURE_ID`].
pub const FAILURE_RETRIED: &str = "retried";
/// The approximate cap of a dead-letter stream (`XADD ... MAXLEN ~`).
pub const DEAD_LETTER_CAP: usize = 10_000;
/// The dead-letter reason of a message put on the schedule under a token
/// (its call id) that another message holds there: scheduled calls are
/// never replaced (`complete.lua`, step `S`, writes the same text).
pub const ALREADY_SCHEDULED: &str = "a call with this id is already scheduled";

/// What an intake element that asks for a cancellation starts with; the
/// call id follows. Any other element is a job message.
pub const CANCEL_REQUEST: &str = "cancel ";

/// The intake element that asks for call `id` to be cancelled.
pub fn cancel_request(id: &str) -> String {
    format!("{CANCEL_REQUEST}{id}")
}
