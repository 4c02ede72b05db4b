//! The documented ranges of the protocol's values. A message with a value
//! outside them is refused (dead-lettered, answered `bad_request`) before it
//! steers anything: an out-of-range TTL would make Redis refuse the
//! completion, an attempt number near `u32::MAX` would overflow, a start
//! time centuries ahead would never run. docs/PROTOCOL.md gives each range
//! with its field.

use std::time::Duration;

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
/// characters or braces ([`is_idempotency_key`]).
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 200;
/// The largest job message a worker runs by default, in bytes; larger ones
/// are dead-lettered unread.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// How long the broker remembers a cancellation: a call queued behind a
/// backlog (or a pause) that long is still skipped when a worker reaches
/// it (PROTOCOL.md, "Cancellation").
pub const CANCEL_MEMORY: Duration = Duration::from_secs(24 * 60 * 60);
/// How long a daily count (`P:{S}:stat:processed:<day>`,
/// `P:{S}:stat:failed:<day>`) is kept after its last write: long enough
/// for a chart of the last 30 days, short enough that the counters of a
/// service stay a few dozen keys.
pub const DAILY_STATS_KEPT: Duration = Duration::from_secs(35 * 24 * 60 * 60);
/// How many days of counts the dashboard's history chart shows.
pub const DAILY_STATS_SHOWN: u32 = 30;
/// The approximate cap of a service's stream of recent failures
/// (`P:{S}:failures`, `XADD ... MAXLEN ~`): the newest attempts that failed.
pub const FAILURES_CAP: usize = 1_000;
/// How long the stream of recent failures lives after its last write
/// (`PEXPIRE`), so an abandoned service's record goes away.
pub const FAILURES_KEPT: Duration = Duration::from_secs(24 * 60 * 60);
/// The longest error message kept in a failure entry, in bytes (cut at a
/// character boundary).
pub const FAILURE_MESSAGE_BYTES: usize = 1_024;
/// How long an inbox lives after its last reply unless the job says
/// otherwise, so a dead client's inbox expires.
pub const DEFAULT_INBOX_TTL: Duration = Duration::from_secs(60);

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
/// [`MAX_IDEMPOTENCY_KEY_BYTES`] bytes, no control characters, no braces.
/// The key ends a Redis key (`P:{S}:once:<key>`), and ACL patterns match
/// `}` with `*`: a key `x}:intake` would make it a key a client may write
/// (`P:{*}:intake`), so a client could plant a list there and make every
/// claim of it fail.
pub fn is_idempotency_key(key: &str) -> bool {
    (1..=MAX_IDEMPOTENCY_KEY_BYTES).contains(&key.len())
        && !key.chars().any(|c| c.is_control() || c == '{' || c == '}')
}

/// The longest group key (a call's tenant, customer or resource: the key
/// of its per-key concurrency limit), in bytes.
pub const MAX_GROUP_KEY_BYTES: usize = 128;

/// The highest per-key concurrency limit a job may have (`#[group_limit]`,
/// a worker's override).
pub const MAX_GROUP_LIMIT: u32 = 10_000;

/// Whether `key` may be a job message's `group`: 1 to
/// [`MAX_GROUP_KEY_BYTES`] bytes, no control characters, no braces. It
/// ends Redis keys (`P:{S}:group:<job>:<key>:running`), so the same rule as
/// an idempotency key's holds (see [`is_idempotency_key`]).
pub fn is_group_key(key: &str) -> bool {
    (1..=MAX_GROUP_KEY_BYTES).contains(&key.len())
        && !key.chars().any(|c| c.is_control() || c == '{' || c == '}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_keys_are_short_printable_and_brace_free() {
        assert!(is_group_key("tenant-42"));
        assert!(is_group_key(&"k".repeat(MAX_GROUP_KEY_BYTES)));
        assert!(!is_group_key(&"k".repeat(MAX_GROUP_KEY_BYTES + 1)));
        for bad in ["", "x}:intake", "{S}", "a\u{0}b", "tab\t"] {
            assert!(!is_group_key(bad), "{bad:?}");
        }
    }

    #[test]
    fn an_idempotency_key_has_no_braces_or_control_characters() {
        assert!(is_idempotency_key("order-42: été"));
        assert!(is_idempotency_key(&"k".repeat(MAX_IDEMPOTENCY_KEY_BYTES)));
        for bad in ["", "x}:intake", "{S}", "a\u{0}b", "line\n"] {
            assert!(!is_idempotency_key(bad), "{bad:?}");
        }
        assert!(!is_idempotency_key(
            &"k".repeat(MAX_IDEMPOTENCY_KEY_BYTES + 1)
        ));
    }
}
