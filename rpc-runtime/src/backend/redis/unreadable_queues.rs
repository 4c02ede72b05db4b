//! Queues whose stream Redis refuses to read, set aside for a while.
//!
//! A worker reads all its queues together: on a single Redis with one
//! multi-stream `XREADGROUP`, on a Cluster with one pipeline of reads per
//! master (`cluster_reader.rs`). If one queue's key cannot be read (its
//! stream replaced by a string: `WRONGTYPE`; a key the user may not touch:
//! `NOPERM`), failing the whole read for it would stop the worker serving
//! every other queue too, and read again and fail again for as long as the
//! key stays broken. So the readers set such a queue aside instead:
//!
//! - it is logged once (an error naming the key and what Redis said) and
//!   left out of the reads for [`SET_ASIDE_FOR`];
//! - then it is read again, so that once an operator repairs the key (or
//!   deletes it: the reader recreates the group on `NOGROUP`) it is served
//!   again; still broken, it is logged and set aside again, so a broken key
//!   costs one log line and one failed read every few seconds, not a hot
//!   loop;
//! - every queue of a read set aside makes that read fail as before, so
//!   the worker's health tells of a worker that can serve nothing.
//!
//! Errors that say something about the server rather than the key
//! ([`is_server_wide`]: loading, a failover, a redirection) are never a
//! queue's: the readers handle them as they did.
//!
//! In the normal case nothing is set aside, and a read asks only
//! [`UnreadableQueues::is_empty`]: no extra command, no allocation.

use std::fmt::Display;
use std::time::{Duration, Instant};

use redis::RedisError;

use crate::error::Error;

/// How long a queue that Redis refused to read is left out of the reads.
pub(super) const SET_ASIDE_FOR: Duration = Duration::from_secs(5);

/// A queue set aside: its jobs key, until when, and why.
struct SetAside {
    key: String,
    until: Instant,
    why: String,
}

/// The queues (by jobs key) a reader leaves out of its reads for now.
#[derive(Default)]
pub(super) struct UnreadableQueues {
    aside: Vec<SetAside>,
    /// Queues set aside since [`UnreadableQueues::take_count`] last asked
    /// (counted as broker errors in the worker's metrics).
    newly: usize,
}

impl UnreadableQueues {
    /// Whether no queue is set aside (the normal case, asked on every read).
    pub(super) fn is_empty(&self) -> bool {
        self.aside.is_empty()
    }

    /// Leaves the queue of `key` out of the reads for [`SET_ASIDE_FOR`],
    /// because reading it failed with `error`.
    pub(super) fn set_aside(&mut self, key: &str, error: &dyn Display) {
        let why = error.to_string();
        tracing::error!(
            key,
            error = %why,
            "Redis refuses to read this queue's stream; serving the worker's other queues and trying it again in {}s (repair or delete the key)",
            SET_ASIDE_FOR.as_secs()
        );
        let until = Instant::now() + SET_ASIDE_FOR;
        match self.aside.iter_mut().find(|a| a.key == key) {
            Some(a) => {
                a.until = until;
                a.why = why;
            }
            None => self.aside.push(SetAside {
                key: key.to_owned(),
                until,
                why,
            }),
        }
        self.newly += 1;
    }

    /// Whether the queue of `key` is left out of reads now. A queue whose
    /// time is up is forgotten here, so it is read again.
    pub(super) fn holds(&mut self, key: &str) -> bool {
        let Some(i) = self.aside.iter().position(|a| a.key == key) else {
            return false;
        };
        if Instant::now() < self.aside[i].until {
            return true;
        }
        self.aside.swap_remove(i);
        tracing::info!(key, "reading a queue set aside again");
        false
    }

    /// How many times a queue was set aside since the last call.
    pub(super) fn take_count(&mut self) -> usize {
        std::mem::take(&mut self.newly)
    }

    /// The error of a read none of whose queues can be read now.
    pub(super) fn none_readable(&self) -> Error {
        let why: Vec<String> = self
            .aside
            .iter()
            .map(|a| format!("{}: {}", a.key, a.why))
            .collect();
        Error::Broker(format!(
            "Redis refuses to read every queue of this read (set aside, tried again every {}s): {}",
            SET_ASIDE_FOR.as_secs(),
            why.join("; ")
        ))
    }
}

/// Whether an error code says something about the server or the cluster
/// (it is loading, busy, failing over, the slot moved) rather than about
/// the key a command named.
pub(super) fn is_server_wide(code: &str) -> bool {
    matches!(
        code,
        "MOVED"
            | "ASK"
            | "TRYAGAIN"
            | "CLUSTERDOWN"
            | "MASTERDOWN"
            | "LOADING"
            | "BUSY"
            | "READONLY"
            | "NOAUTH"
            | "OOM"
            | "MISCONF"
            | "NOREPLICAS"
    )
}

/// Whether a failed read of one or more queues may be some queue's own
/// fault (Redis answered with an error about a key), so that the queues
/// are worth reading one by one to find it. `NOGROUP` is not: the reader
/// recreates the group.
pub(super) fn may_be_a_queues(e: &RedisError) -> bool {
    e.code()
        .is_some_and(|code| code != "NOGROUP" && !is_server_wide(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_set_aside_is_held_until_its_time_is_up() {
        let keys = rpc_protocol::Keys::new("rpc");
        let (a, b) = (keys.jobs("A"), keys.jobs("B"));
        let mut aside = UnreadableQueues::default();
        assert!(aside.is_empty());
        aside.set_aside(&a, &"WRONGTYPE Operation against a key");
        assert!(aside.holds(&a));
        assert!(!aside.holds(&b));
        assert_eq!(aside.take_count(), 1);
        assert_eq!(aside.take_count(), 0);
        assert!(aside.none_readable().to_string().contains(&a));
        aside.aside[0].until = Instant::now();
        assert!(!aside.holds(&a), "read again once its time is up");
        assert!(aside.is_empty());
    }

    #[test]
    fn server_wide_errors_are_no_queues_fault() {
        assert!(!is_server_wide("WRONGTYPE"));
        assert!(!is_server_wide("NOPERM"));
        assert!(is_server_wide("LOADING"));
        assert!(is_server_wide("MOVED"));
    }
}
