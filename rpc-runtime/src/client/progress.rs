//! Watching a call's progress: [`ProgressWatch`], from a [`Pending`]
//! ([`Pending::progress`]) or by call id from any process
//! ([`Client::watch_progress`]), for a caller that reconnected or a tool
//! that did not place the call.
//!
//! A watch reads the call's progress key every
//! [`WATCH_INTERVAL`](rpc_protocol::progress::WATCH_INTERVAL) and yields
//! each value newer than the last (progress is a state: values written
//! between two reads are skipped, never queued). It ends when the call is
//! answered (its reply routed to this client, or for a call watched by id
//! its kept result there), with the value read after that, or at its
//! deadline. A value that is not the documented one is yielded once as an
//! error and then skipped; the watch goes on. Only a watched call pays
//! for the reads: nothing is sent for calls nobody watches.

use std::time::Duration;

use futures_util::stream::BoxStream;
use rpc_protocol::progress::{ProgressValue, WATCH_INTERVAL};
use tokio::time::Instant;

use super::handle::Client;
use super::pending::Pending;

use crate::call::JobId;
use crate::context::progress::Progress;
use crate::error::Error;
use crate::sync::lock;

/// One progress value of a call, as its handler reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressUpdate {
    /// The report's number within its attempt (reports written less often
    /// than made skip numbers).
    pub seq: u64,
    /// The attempt that reported it, from 1.
    pub attempt: u32,
    /// When it was reported, ms since the epoch (the broker's clock as the
    /// worker saw it).
    pub at_ms: u64,
    /// How far along: steps, or a fraction.
    pub progress: Progress,
    /// The fraction done, `0.0..=1.0` (for steps, `done / total`).
    pub fraction: f64,
    /// What the handler said (at most 200 characters).
    pub message: String,
}

impl From<ProgressValue> for ProgressUpdate {
    fn from(v: ProgressValue) -> Self {
        let progress = match (v.done, v.total) {
            (Some(done), Some(total)) => Progress::Steps { done, total },
            _ => Progress::Fraction(v.fraction),
        };
        ProgressUpdate {
            seq: v.seq,
            attempt: v.attempt,
            at_ms: v.at_ms,
            progress,
            fraction: v.fraction,
            message: v.message,
        }
    }
}

/// A watch on one call's progress: [`next`](ProgressWatch::next) until
/// `None`, or [`into_stream`](ProgressWatch::into_stream).
///
/// ```no_run
/// # async fn f(client: rpc_runtime::Client) -> Result<(), Box<dyn std::error::Error>> {
/// let pending = client.call("Files.copy", serde_json::json!({})).send().await?;
/// let mut progress = pending.progress();
/// let watching = async {
///     while let Some(update) = progress.next().await {
///         if let Ok(update) = update {
///             eprintln!("{:.0}% {}", update.fraction * 100.0, update.message);
///         }
///     }
/// };
/// let (answer, ()) = tokio::join!(pending, watching);
/// # Ok(()) }
/// ```
pub struct ProgressWatch {
    client: Client,
    id: JobId,
    deadline: Instant,
    /// The call's reply is routed to this client: it is answered once
    /// the reply has been handed over (its waiter is gone).
    routed: bool,
    /// `(attempt, seq)` of the last value yielded.
    seen: Option<(u32, u64)>,
    /// The last malformed value reported (reported once, then skipped).
    refused: Option<Vec<u8>>,
    next_read: Option<Instant>,
    ended: bool,
}

impl std::fmt::Debug for ProgressWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressWatch")
            .field("id", &self.id)
            .field("seen", &self.seen)
            .field("ended", &self.ended)
            .finish()
    }
}

impl<T, E> Pending<T, E> {
    /// Watches this call's progress until it is answered or its deadline
    /// passes (see [`ProgressWatch`]); await the `Pending` alongside.
    pub fn progress(&self) -> ProgressWatch {
        ProgressWatch::new(
            self.client.clone(),
            self.id.clone(),
            self.deadline,
            self.rx.is_some(),
        )
    }
}

impl Client {
    /// Watches the progress of call `id`, placed by any process, for at
    /// most `timeout`: the watch ends earlier when the call's kept result
    /// is there (a call whose result is not kept is watched to the end of
    /// `timeout`).
    pub fn watch_progress(&self, id: &JobId, timeout: Duration) -> ProgressWatch {
        // A timeout no clock can add (`Duration::MAX`) is a century.
        let now = Instant::now();
        let deadline = now
            .checked_add(timeout)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600));
        ProgressWatch::new(self.clone(), id.clone(), deadline, false)
    }

    /// Reads call `id`'s progress now: `None` if there is none (none
    /// reported, written yet, or it expired).
    pub async fn read_progress(&self, id: &JobId) -> Result<Option<ProgressUpdate>, Error> {
        let Some(bytes) = self.inner.backend.read_progress(id.as_str()).await? else {
            return Ok(None);
        };
        ProgressValue::decode(&bytes)
            .map(|v| Some(v.into()))
            .map_err(|e| Error::codec("read the call's progress", e))
    }
}

impl ProgressWatch {
    fn new(client: Client, id: JobId, deadline: Instant, routed: bool) -> Self {
        ProgressWatch {
            client,
            id,
            deadline,
            routed,
            seen: None,
            refused: None,
            next_read: None,
            ended: false,
        }
    }

    /// The call watched.
    pub fn id(&self) -> &JobId {
        &self.id
    }

    /// The next new value; `None` once the call is answered or the
    /// deadline has passed. An `Err` (the broker failed, or the stored
    /// value is not progress) does not end the watch.
    pub async fn next(&mut self) -> Option<Result<ProgressUpdate, Error>> {
        loop {
            if self.ended {
                return None;
            }
            if let Some(at) = self.next_read {
                tokio::time::sleep_until(at.min(self.deadline)).await;
            }
            if Instant::now() >= self.deadline {
                self.ended = true;
                return None;
            }
            self.next_read = Some(Instant::now() + WATCH_INTERVAL);
            // Looked at before the read: the value read after an answer is
            // the last there will be.
            let answered = self.answered().await;
            let backend = &self.client.inner.backend;
            let read =
                tokio::time::timeout_at(self.deadline, backend.read_progress(self.id.as_str()))
                    .await;
            self.ended = answered;
            let bytes = match read {
                Err(_) => {
                    self.ended = true;
                    return None;
                }
                Ok(Err(e)) => return Some(Err(e)),
                Ok(Ok(None)) => continue,
                Ok(Ok(Some(bytes))) => bytes,
            };
            match ProgressValue::decode(&bytes) {
                Ok(value) if value.is_after(self.seen) => {
                    self.seen = Some((value.attempt, value.seq));
                    return Some(Ok(value.into()));
                }
                Ok(_) => {}
                Err(e) if self.refused.as_deref() != Some(&bytes[..]) => {
                    tracing::warn!(id = %self.id, "skipping a progress value that is not one: {e}");
                    self.refused = Some(bytes);
                    return Some(Err(Error::codec("read the call's progress", e)));
                }
                Err(_) => {}
            }
        }
    }

    /// Whether the call has been answered.
    async fn answered(&self) -> bool {
        if self.routed {
            // The router removes a call's waiter as it hands it its reply
            // (and a call that gave up removes its own).
            return !lock(&self.client.inner.inbox.state)
                .waiters
                .contains_key(self.id.as_str());
        }
        let kept = self.client.inner.backend.get_result(self.id.as_str());
        matches!(
            tokio::time::timeout_at(self.deadline, kept).await,
            Ok(Ok(Some(_)))
        )
    }

    /// The watch as a [`Stream`](futures_util::Stream) of the values
    /// [`next`](ProgressWatch::next) gives.
    pub fn into_stream(self) -> BoxStream<'static, Result<ProgressUpdate, Error>> {
        Box::pin(futures_util::stream::unfold(self, |mut watch| async move {
            watch.next().await.map(|item| (item, watch))
        }))
    }
}
