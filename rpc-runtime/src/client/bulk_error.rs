//! What a batch's failure says: which call was refused before anything
//! was sent, or what became of each call when sending failed part-way.
//! Shared by the batch API (`bulk.rs`) and its sender (`bulk_send.rs`).

use crate::call::JobId;
use crate::error::Error;

/// What became of one call of a batch that failed part-way.
#[derive(Debug)]
#[non_exhaustive]
pub enum Sent {
    /// Queued under this id.
    Queued(JobId),
    /// Refused by the broker: not queued.
    Refused(JobId, Error),
    /// In a round trip that failed: it may have been queued (look for it
    /// by id, or send it again under an idempotency key).
    Unknown(JobId),
    /// Not sent: an earlier round trip for its queue failed.
    NotSent(JobId),
}

impl Sent {
    /// The id the call was (or would have been) sent under.
    pub fn id(&self) -> &JobId {
        match self {
            Sent::Queued(id) | Sent::Refused(id, _) | Sent::Unknown(id) | Sent::NotSent(id) => id,
        }
    }

    /// Whether the call is surely queued.
    pub fn is_queued(&self) -> bool {
        matches!(self, Sent::Queued(_))
    }

    /// A call of a batch that was not surely queued, as its own error.
    pub(super) fn into_error(self, why: &str) -> Error {
        match self {
            Sent::Refused(_, e) => e,
            Sent::Unknown(id) => Error::Broker(format!(
                "call {id} may not have been queued (its batch's round trip failed): {why}"
            )),
            Sent::NotSent(id) | Sent::Queued(id) => Error::Broker(format!(
                "call {id} was not sent (an earlier round trip of its batch failed): {why}"
            )),
        }
    }
}

/// Why a batch failed: one call was refused before anything was sent, or
/// sending failed part-way (then [`calls`](Self::calls) says what became
/// of each).
#[derive(Debug)]
pub struct BatchError {
    /// What went wrong: the refused call's error, or the broker's.
    pub error: Box<Error>,
    /// The call that could not be sent, by its place in the batch (from
    /// 0): nothing was sent. `None`: the batch went out, in part.
    pub refused: Option<usize>,
    /// What became of each call, in order (empty when nothing was sent).
    pub calls: Vec<Sent>,
    /// How many calls the batch had.
    pub len: usize,
}

impl BatchError {
    pub(super) fn refused(index: usize, len: usize, error: Error) -> Self {
        BatchError {
            error: Box::new(error),
            refused: Some(index),
            calls: Vec::new(),
            len,
        }
    }

    pub(super) fn partial(error: Error, calls: Vec<Sent>) -> Self {
        BatchError {
            error: Box::new(error),
            refused: None,
            len: calls.len(),
            calls,
        }
    }

    /// The calls that are surely queued: their place in the batch and id.
    pub fn queued(&self) -> impl Iterator<Item = (usize, &JobId)> {
        self.calls
            .iter()
            .enumerate()
            .filter_map(|(i, sent)| match sent {
                Sent::Queued(id) => Some((i, id)),
                _ => None,
            })
    }

    /// Whether sending the batch again may work (the broker failed), as
    /// [`Error::is_transient`].
    pub fn is_transient(&self) -> bool {
        self.refused.is_none() && self.error.is_transient()
    }
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.len;
        if let Some(i) = self.refused {
            return write!(
                f,
                "call {i} of a batch of {n} cannot be sent, so none was: {}",
                self.error
            );
        }
        let count = |which: fn(&Sent) -> bool| self.calls.iter().filter(|s| which(s)).count();
        write!(
            f,
            "a batch of {n} calls was sent in part ({} queued, {} may have been, {} refused, {} not sent): {}",
            count(|s| matches!(s, Sent::Queued(_))),
            count(|s| matches!(s, Sent::Unknown(_))),
            count(|s| matches!(s, Sent::Refused(..))),
            count(|s| matches!(s, Sent::NotSent(_))),
            self.error
        )
    }
}

impl std::error::Error for BatchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.error)
    }
}
