//! Progress reported by a handler ([`Progress`]), and where a worker keeps
//! it until it is written ([`ProgressBoard`]).
//!
//! Reporting never waits on the broker: [`Context::progress`] checks the
//! value and puts it on the worker's board, replacing any value of the
//! call not yet written, and wakes the worker's one progress writer
//! (`worker/progress_writer.rs`), which writes at most one value per call
//! every [`WRITE_INTERVAL`]. A tight loop of reports therefore costs a
//! lock and a wake each, and Redis a write per interval. A call that never
//! reports progress costs nothing: its context carries a reference to the
//! board and the TTL, and the board is looked at after the handler only
//! when it holds anything.
//!
//! [`Context::progress`]: super::Context::progress
//! [`WRITE_INTERVAL`]: rpc_protocol::progress::WRITE_INTERVAL

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

pub use rpc_protocol::progress::BadProgress;
use rpc_protocol::progress::{check_fraction, check_steps, cut_message};

use crate::sync::lock;

/// How far along a job is: a fraction from 0 to 1, or steps `done` of
/// `total`.
///
/// ```
/// use rpc_runtime::Progress;
/// assert_eq!(Progress::from(0.25), Progress::Fraction(0.25));
/// assert_eq!(Progress::from((3, 10)), Progress::Steps { done: 3, total: 10 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Progress {
    /// A fraction, `0.0..=1.0`.
    Fraction(f64),
    /// `done` of `total` steps (`1 <= total`, `done <= total`).
    Steps { done: u64, total: u64 },
}

impl From<f64> for Progress {
    fn from(fraction: f64) -> Self {
        Progress::Fraction(fraction)
    }
}

impl From<(u64, u64)> for Progress {
    fn from((done, total): (u64, u64)) -> Self {
        Progress::Steps { done, total }
    }
}

impl Progress {
    /// The fraction done, once the value is checked.
    pub fn fraction(self) -> Result<f64, BadProgress> {
        match self {
            Progress::Fraction(f) => check_fraction(f),
            Progress::Steps { done, total } => check_steps(done, total),
        }
    }

    /// The steps, if this is steps.
    pub fn steps(self) -> Option<(u64, u64)> {
        match self {
            Progress::Steps { done, total } => Some((done, total)),
            Progress::Fraction(_) => None,
        }
    }
}

/// A checked report, waiting for the writer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Report {
    pub(crate) seq: u64,
    pub(crate) attempt: u32,
    pub(crate) steps: Option<(u64, u64)>,
    pub(crate) fraction: f64,
    pub(crate) message: String,
    /// When it was reported, for `at_ms`.
    pub(crate) at: SystemTime,
}

/// One call's place on the board.
#[derive(Debug)]
struct Slot {
    /// Reports so far (the next one's `seq` is one more).
    seq: u64,
    /// The newest report not written yet.
    unwritten: Option<Report>,
    /// The value's TTL.
    ttl: Duration,
    /// Not written before this.
    next_write: Instant,
    /// The handler has returned: the slot goes once its value is written.
    finished: bool,
    /// When the slot was last touched (a slot nobody finishes, reported
    /// to by a task the handler left behind, goes after its TTL).
    touched: Instant,
}

/// A write the writer is to make now.
#[derive(Debug)]
pub(crate) struct DueWrite {
    pub(crate) id: String,
    pub(crate) report: Report,
    pub(crate) ttl: Duration,
}

/// A worker's progress not written yet, by call id.
#[derive(Debug, Default)]
pub(crate) struct ProgressBoard {
    slots: Mutex<HashMap<String, Slot>>,
    /// Whether `slots` may hold anything (checked without the lock).
    any: AtomicBool,
    /// Wakes the writer.
    pub(crate) wake: tokio::sync::Notify,
}

/// What a running call's context holds to report progress: the board and
/// the TTL its values get.
#[derive(Debug, Clone)]
pub(crate) struct ProgressHandle {
    pub(crate) board: Arc<ProgressBoard>,
    /// How long the call's result is kept, if it is.
    pub(crate) kept: Option<Duration>,
}

impl ProgressBoard {
    /// Puts a report of call `id` on the board (checked first).
    pub(crate) fn report(
        &self,
        id: &str,
        attempt: u32,
        ttl: Duration,
        progress: Progress,
        message: &str,
    ) -> Result<(), BadProgress> {
        let fraction = progress.fraction()?;
        let message = cut_message(message).to_owned();
        let now = Instant::now();
        let mut slots = lock(&self.slots);
        let slot = slots.entry(id.to_owned()).or_insert_with(|| Slot {
            seq: 0,
            unwritten: None,
            ttl,
            next_write: now,
            finished: false,
            touched: now,
        });
        slot.seq += 1;
        slot.touched = now;
        slot.ttl = ttl;
        let first = slot.unwritten.is_none();
        slot.unwritten = Some(Report {
            seq: slot.seq,
            attempt,
            steps: progress.steps(),
            fraction,
            message,
            at: SystemTime::now(),
        });
        self.any.store(true, Ordering::Release);
        drop(slots);
        if first {
            // The writer learns of a call with something to write once;
            // later reports only replace the value.
            self.wake.notify_one();
        }
        Ok(())
    }

    /// The handler of call `id` has returned: its newest value, if not
    /// written yet, is written at once (before it is superseded by the
    /// reply, if the writer is quick), and then the slot goes.
    pub(crate) fn finish(&self, id: &str) {
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        let mut slots = lock(&self.slots);
        let Some(slot) = slots.get_mut(id) else {
            return;
        };
        if slot.unwritten.is_none() {
            slots.remove(id);
            return;
        }
        slot.finished = true;
        slot.next_write = Instant::now();
        drop(slots);
        self.wake.notify_one();
    }

    /// Takes the writes due at `now` (each slot's newest value, once per
    /// interval), forgets finished and stale slots, and says when the next
    /// write falls due.
    pub(crate) fn take_due(
        &self,
        now: Instant,
        interval: Duration,
    ) -> (Vec<DueWrite>, Option<Instant>) {
        let mut due = Vec::new();
        let mut next: Option<Instant> = None;
        let mut slots = lock(&self.slots);
        slots.retain(|id, slot| {
            if slot.next_write <= now {
                if let Some(report) = slot.unwritten.take() {
                    due.push(DueWrite {
                        id: id.clone(),
                        report,
                        ttl: slot.ttl,
                    });
                    slot.next_write = now + interval;
                }
            } else if slot.unwritten.is_some() {
                next = Some(next.map_or(slot.next_write, |n| n.min(slot.next_write)));
            }
            let stale = now.saturating_duration_since(slot.touched) > slot.ttl;
            !(slot.unwritten.is_none() && (slot.finished || stale))
        });
        self.any.store(!slots.is_empty(), Ordering::Release);
        (due, next)
    }

    /// Every value not written yet, due or not (a stopping worker's last
    /// writes).
    pub(crate) fn take_all(&self) -> Vec<DueWrite> {
        let mut slots = lock(&self.slots);
        let all = slots
            .iter_mut()
            .filter_map(|(id, slot)| {
                slot.unwritten.take().map(|report| DueWrite {
                    id: id.clone(),
                    report,
                    ttl: slot.ttl,
                })
            })
            .collect();
        slots.clear();
        self.any.store(false, Ordering::Release);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);
    const EVERY: Duration = Duration::from_millis(200);

    #[test]
    fn bad_values_are_refused_and_nothing_is_kept() {
        let board = ProgressBoard::default();
        for bad in [
            Progress::Fraction(f64::NAN),
            Progress::Fraction(f64::INFINITY),
            Progress::Fraction(-0.5),
            Progress::Fraction(1.5),
            Progress::Steps { done: 5, total: 4 },
            Progress::Steps { done: 0, total: 0 },
        ] {
            assert!(board.report("c", 1, TTL, bad, "x").is_err(), "{bad:?}");
        }
        assert!(board.take_all().is_empty());
    }

    #[test]
    fn a_tight_loop_leaves_one_write_per_interval_the_newest() {
        let board = ProgressBoard::default();
        for i in 0..100_000u64 {
            board
                .report("c", 1, TTL, (i, 100_000).into(), "working")
                .unwrap();
        }
        let start = Instant::now();
        let (due, next) = board.take_due(start, EVERY);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].report.seq, 100_000);
        assert_eq!(due[0].report.steps, Some((99_999, 100_000)));
        assert_eq!(next, None);
        // More reports within the interval wait for it.
        board.report("c", 1, TTL, 0.5.into(), "later").unwrap();
        let (due, next) = board.take_due(start + EVERY / 2, EVERY);
        assert!(due.is_empty());
        assert_eq!(next, Some(start + EVERY));
        let (due, _) = board.take_due(start + EVERY, EVERY);
        assert_eq!(due[0].report.seq, 100_001);
    }

    #[test]
    fn a_finished_call_has_its_newest_value_written_at_once_then_goes() {
        let board = ProgressBoard::default();
        board.report("c", 1, TTL, 0.1.into(), "a").unwrap();
        let _ = board.take_due(Instant::now(), EVERY);
        board.report("c", 1, TTL, 0.9.into(), "b").unwrap();
        board.finish("c");
        let (due, _) = board.take_due(Instant::now(), EVERY);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].report.message, "b");
        assert!(lock(&board.slots).is_empty());
        // A call that reported nothing leaves nothing to do.
        board.finish("other");
        assert!(!board.any.load(Ordering::Acquire));
    }

    #[test]
    fn messages_are_cut_to_their_limit() {
        let board = ProgressBoard::default();
        let long = "é".repeat(1000);
        board.report("c", 1, TTL, 0.5.into(), &long).unwrap();
        let all = board.take_all();
        assert_eq!(
            all[0].report.message.chars().count(),
            rpc_protocol::progress::MESSAGE_CHARS
        );
    }
}
