//! The documented ranges of the protocol's values. A message with a value
//! outside them is refused (dead-lettered, answered `bad_request`) before it
//! steers anything: an out-of-range TTL would make Redis refuse the
//! completion, an attempt number near `u32::MAX` would overflow, a start
//! time centuries ahead would never run. docs/PROTOCOL.md gives each range
//! with its field.

/// `attempt` and `max_attempts` lie in `1..=MAX_ATTEMPTS`.
pub const MAX_ATTEMPTS: u32 = 1_000;
/// `result_ttl_ms` and `timeout_ms` are at most a year (366 days).
pub const MAX_TTL_MS: u64 = 366 * 24 * 60 * 60 * 1000;
/// `deadline_ms` is at most 9999-12-31T23:59:59.999Z.
pub const MAX_DEADLINE_MS: u64 = 253_402_300_799_999;
/// `id` is at most this many bytes.
pub const MAX_ID_BYTES: usize = 256;
/// A job no worker knows is handed back at most this many times before
/// it is answered `unknown_job` (`handoffs` lies in `0..=MAX_HANDOFFS`).
/// Each hand-back waits on the schedule for a growing delay, so the
/// count is also a span of time (PROTOCOL.md, "Unknown jobs").
pub const MAX_HANDOFFS: u32 = 32;
/// A call may be delayed by at most this long (366 days): `run_at_ms`
/// further ahead than this is refused where it enters.
pub const MAX_DELAY_MS: u64 = MAX_TTL_MS;
/// An idempotency key is 1 to this many bytes, without control
/// characters.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 200;
/// The largest job message a worker runs by default, in bytes; larger ones
/// are dead-lettered unread.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Whether `id` can name a client's inbox: 1 to 128 characters of
/// `A-Z a-z 0-9 _ - . :` (docs/PROTOCOL.md, "Keys"). No braces, so an inbox
/// key has exactly one hash tag; no spaces or control characters.
pub fn is_client_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

/// Whether `key` may be an idempotency key: 1 to
/// [`MAX_IDEMPOTENCY_KEY_BYTES`] bytes, no control characters.
pub fn is_idempotency_key(key: &str) -> bool {
    (1..=MAX_IDEMPOTENCY_KEY_BYTES).contains(&key.len()) && !key.chars().any(char::is_control)
}
