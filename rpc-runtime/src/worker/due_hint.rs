//! When the calls this worker put on the schedule itself are due (retries,
//! delayed calls, calls waiting for their rate limit's turn), so the
//! lifecycle loop wakes for each without waiting for its service's next
//! poll (which is a second away when the service is idle on this worker).

use std::collections::BTreeSet;
use std::sync::Mutex;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::sync::lock;

/// The most times kept: past it the latest are dropped (their calls are
/// moved by the regular polls, at most a poll late).
const MOST_KEPT: usize = 4_096;

/// When calls this worker itself scheduled are due, so the loop wakes for
/// each without waiting for its next poll (a retry's gap is then its
/// backoff, not its backoff plus up to a poll; a rate limit's turns are
/// kept to the millisecond).
#[derive(Default)]
pub(super) struct DueHint {
    at: Mutex<BTreeSet<Instant>>,
    pub(super) earlier: Notify,
}

impl DueHint {
    /// A call of this worker's is due at `at` (a little after, to let its
    /// completion reach the broker first).
    pub(super) fn due_at(&self, at: Instant) {
        let mut hints = lock(&self.at);
        let earliest = hints.first().is_none_or(|first| at < *first);
        hints.insert(at);
        if hints.len() > MOST_KEPT {
            hints.pop_last();
        }
        if earliest {
            self.earlier.notify_one();
        }
    }

    /// The earliest hint to wake for, if any (it stays until
    /// [`DueHint::take_if_come`]).
    pub(super) fn peek(&self) -> Option<Instant> {
        lock(&self.at).first().copied()
    }

    /// Whether a hint has come by `now`; those that have are forgotten
    /// (the caller polls for them).
    pub(super) fn take_if_come(&self, now: Instant) -> bool {
        let mut hints = lock(&self.at);
        let mut came = false;
        while hints.first().is_some_and(|first| *first <= now) {
            hints.pop_first();
            came = true;
        }
        came
    }
}
