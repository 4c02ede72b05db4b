//! The earliest retry this worker scheduled, so the lifecycle loop wakes
//! for it without waiting for its service's next poll (which is a second
//! away when the service is idle on this worker).

use std::sync::Mutex;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::sync::lock;

/// When this worker itself scheduled a retry due, so the loop wakes for it
/// without waiting for its next poll (the retry's gap is then its backoff,
/// not its backoff plus up to a poll).
#[derive(Default)]
pub(super) struct DueHint {
    at: Mutex<Option<Instant>>,
    pub(super) earlier: Notify,
}

impl DueHint {
    /// A retry of this worker's is due at `at` (a little after, to let its
    /// completion reach the broker first).
    pub(super) fn due_at(&self, at: Instant) {
        let mut hint = lock(&self.at);
        if hint.is_none_or(|h| at < h) {
            *hint = Some(at);
            self.earlier.notify_one();
        }
    }

    /// The hint to wake for, if any (it stays until [`DueHint::take_if_come`]).
    pub(super) fn peek(&self) -> Option<Instant> {
        *lock(&self.at)
    }

    /// Whether the hint has come by `now`; one that has is forgotten (the
    /// caller polls for it).
    pub(super) fn take_if_come(&self, now: Instant) -> bool {
        let mut hint = lock(&self.at);
        match *hint {
            Some(at) if at <= now => {
                *hint = None;
                true
            }
            _ => false,
        }
    }
}
