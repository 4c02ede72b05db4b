//! Cancellation on the worker: the calls this worker has learned are
//! cancelled (from its lifecycle polls of `P:{Service}:cancelled`), and the
//! running jobs it can stop.
//!
//! A job is checked against the learned set before it starts (a cancelled
//! queued job never runs) and registers a token while it runs, which a
//! later poll fires: the handler sees it through `Context::cancelled()` /
//! `is_cancelled()`, and its future is dropped after the cancel grace
//! period if it does not end by itself. The set is only consulted when it
//! is not empty, so the plain call path pays one atomic load.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use tokio_util::sync::CancellationToken;

use crate::client::lock;
use crate::wire::limits::MAX_ID_BYTES;

/// Cancelled call ids remembered per worker at most (the oldest go first);
/// the broker remembers them for a day (`backend::CANCEL_MEMORY`).
const REMEMBERED: usize = 100_000;

/// What a worker knows of cancellations.
#[derive(Default)]
pub(super) struct Cancellations {
    /// Call ids learned to be cancelled, with when (broker ms).
    learned: Mutex<HashMap<String, u64>>,
    /// Whether `learned` has anything (checked without the lock).
    any: AtomicBool,
    /// Tokens of running jobs, by call id (a call may run twice at once
    /// after a redelivery; each run has its token).
    running: Mutex<HashMap<String, Vec<(u64, CancellationToken)>>>,
    /// Numbers the runs, to tell a call's runs apart.
    serial: AtomicU64,
}

impl Cancellations {
    /// Whether call `id` is known to be cancelled.
    pub(super) fn is_cancelled(&self, id: &str) -> bool {
        self.any.load(Ordering::Acquire) && lock(&self.learned).contains_key(id)
    }

    /// Learns cancellations from a poll (ids are unchecked broker data:
    /// an id no call can have is ignored with a log line); fires the
    /// tokens of running jobs among them. Returns how many were new.
    pub(super) fn learn(&self, queue: &str, cancelled: Vec<(String, u64)>) -> usize {
        let mut new = 0;
        let mut learned = lock(&self.learned);
        for (id, at) in cancelled {
            if id.is_empty() || id.len() > MAX_ID_BYTES {
                tracing::warn!(
                    queue,
                    bytes = id.len(),
                    "ignoring a cancellation entry that is no call id"
                );
                continue;
            }
            if learned.insert(id.clone(), at).is_none() {
                new += 1;
                if let Some(tokens) = lock(&self.running).get(&id) {
                    tracing::info!(queue, id, "cancelling a running job");
                    tokens.iter().for_each(|(_, token)| token.cancel());
                }
            }
        }
        if learned.len() > REMEMBERED {
            let mut by_age: Vec<(u64, String)> =
                learned.iter().map(|(id, at)| (*at, id.clone())).collect();
            by_age.sort();
            for (_, id) in by_age.into_iter().take(learned.len() - REMEMBERED) {
                learned.remove(&id);
            }
        }
        self.any.store(!learned.is_empty(), Ordering::Release);
        new
    }

    /// A token for a job of call `id` that starts running; `Running`
    /// forgets it when dropped.
    pub(super) fn start(&self, id: &str) -> Running<'_> {
        let token = CancellationToken::new();
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        lock(&self.running)
            .entry(id.to_owned())
            .or_default()
            .push((serial, token.clone()));
        // Learned between the check before the start and the registration.
        if self.is_cancelled(id) {
            token.cancel();
        }
        Running {
            cancellations: self,
            id: id.to_owned(),
            serial,
            token,
        }
    }
}

/// A running job's registration; forgets the token on drop.
pub(super) struct Running<'a> {
    cancellations: &'a Cancellations,
    id: String,
    serial: u64,
    pub(super) token: CancellationToken,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut running = lock(&self.cancellations.running);
        if let Some(tokens) = running.get_mut(&self.id) {
            tokens.retain(|(serial, _)| *serial != self.serial);
            if tokens.is_empty() {
                running.remove(&self.id);
            }
        }
    }
}
