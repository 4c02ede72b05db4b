//! Trims owed: the acked entries of a worker's larger ack-only batches
//! (one-way jobs) are removed from their stream a few hundred at a time,
//! not after every batch.
//!
//! A batch of a dozen or more acks alone is a plain `XACK` in the pipeline
//! of the worker's next read, and its entries are removed by
//! `trim_acked.lua` given the newest id acked. That script call cost Redis
//! about what acking the batch did when it ran after every batch: at
//! concurrency 16, 0.55 µs of `evalsha` a job, the whole Redis CPU per job
//! 1.37x the hand-written floor's (`rpc-bench --jobs`). Now the reader
//! owes the trim, and sends one per stream once it owes [`TRIM_AT`] ids or
//! more, and whenever it is about to wait for jobs: a read that would block
//! (`take_jobs`), and before the reader stops or is given up (`settle`).
//! So that a worker going idle does not hold its trims through a blocking
//! read, a read that carries completions while trims are owed has no
//! `BLOCK`: when the stream is empty it answers at once, and the next read,
//! which blocks, trims first.
//!
//! Until a trim, the entries are acked and still on the stream: the
//! group's lag (the queued count of `rpc stats` and the dashboard) does not
//! count them, `XLEN` does, at most [`TRIM_AT`] plus one batch per worker
//! and stream. A worker killed while it owes leaves them for a worker's
//! sweep (`trim_acked.lua` with `+`, once per beat TTL), as it leaves the
//! ids of a batch it had not deleted yet.
//!
//! What a trim leaves (a lease older than some ids is held, or the script
//! could not run) goes as the ids it always went: deleted with the next
//! read (`XDEL`, the reader's `left`).

use redis::{Cmd, Value};
use rpc_protocol::stream::GROUP;

use super::super::completion_batch::entry_id;
use super::super::scripts::compiled;

/// Ids owed a trim, over every stream, at which the reader trims with the
/// read it is sending (16 batches of 16; at concurrency 100, every third
/// batch).
pub(super) const TRIM_AT: usize = 256;

/// An entry id as the numbers it orders by (kept so, not as text: one
/// allocation fewer per acked job).
type Id = (u64, u64);

/// An entry id as Redis writes it.
fn text(id: Id) -> String {
    format!("{}-{}", id.0, id.1)
}

/// The acked ids one stream owes a trim.
struct Owed {
    jobs: String,
    /// Acked ids, each counted by the `XACK` that acked it.
    ids: Vec<Id>,
    /// The newest of them.
    newest: Id,
}

/// The trims a reader owes, per stream.
#[derive(Default)]
pub(super) struct OwedTrims {
    streams: Vec<Owed>,
    count: usize,
}

/// Trims sent in a pipeline, in the order of their commands: each stream
/// and the newest id it was trimmed to.
pub(super) struct TrimsSent {
    jobs: Vec<String>,
}

impl TrimsSent {
    /// How many commands the trims are.
    pub(super) fn len(&self) -> usize {
        self.jobs.len()
    }
}

impl OwedTrims {
    /// Whether nothing is owed.
    pub(super) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether owing `more` ids too reaches [`TRIM_AT`].
    pub(super) fn due_with(&self, more: usize) -> bool {
        self.count + more >= TRIM_AT
    }

    /// Records ids an `XACK` counted in full on `jobs` (only those that
    /// read as entry ids: no trim could remove anything else).
    pub(super) fn owe(&mut self, jobs: &str, ids: &[&str]) {
        let at = match self.streams.iter().position(|o| o.jobs == jobs) {
            Some(at) => at,
            None => {
                self.streams.push(Owed {
                    jobs: jobs.to_owned(),
                    ids: Vec::with_capacity(ids.len()),
                    newest: (0, 0),
                });
                self.streams.len() - 1
            }
        };
        let owed = &mut self.streams[at];
        for &id in ids {
            let Some(key) = entry_id(id) else {
                tracing::debug!(jobs, id, "an acked id that is no entry id is not trimmed");
                continue;
            };
            if owed.ids.is_empty() || key > owed.newest {
                owed.newest = key;
            }
            owed.ids.push(key);
            self.count += 1;
        }
        if self.streams[at].ids.is_empty() {
            self.streams.swap_remove(at);
        }
    }

    /// One `trim_acked.lua` call per stream owed or in `also` (streams a
    /// batch in the same pipeline acks, with the newest id it acks), for a
    /// pipeline; each trims to the newest id of the stream.
    pub(super) fn commands(&self, also: &[(&str, &str)]) -> (Vec<Cmd>, TrimsSent) {
        let mut newest: Vec<(&str, String)> = self
            .streams
            .iter()
            .map(|o| (o.jobs.as_str(), text(o.newest)))
            .collect();
        // Only an id as Redis writes it may bound a trim (`trim_acked.lua`
        // reads "99" as no id, where `XTRIM MINID 99` would take 99-0).
        for &(jobs, id) in also.iter().filter(|(_, id)| entry_id(id).is_some()) {
            match newest.iter_mut().find(|(j, _)| *j == jobs) {
                Some((_, at)) if entry_id(at) >= entry_id(id) => {}
                Some((_, at)) => *at = id.to_owned(),
                None => newest.push((jobs, id.to_owned())),
            }
        }
        let script = compiled(&rpc_protocol::scripts::TRIM_ACKED);
        let cmds = newest
            .iter()
            .map(|(jobs, id)| {
                let mut trim = redis::cmd("EVALSHA");
                trim.arg(script.get_hash())
                    .arg(1)
                    .arg(jobs)
                    .arg(GROUP)
                    .arg(id);
                trim
            })
            .collect();
        let jobs = newest.iter().map(|(jobs, _)| (*jobs).to_owned()).collect();
        (cmds, TrimsSent { jobs })
    }

    /// Reads the answers to the trims `sent`: each trimmed stream owes
    /// nothing more, and its ids the trim left (at or past the bound it
    /// answered; all of them when it failed) are handed back, per stream,
    /// for the worker to delete with its next read.
    pub(super) fn settle(
        &mut self,
        sent: &TrimsSent,
        answers: &[Value],
    ) -> Vec<(String, Vec<String>)> {
        let mut left = Vec::new();
        for (jobs, answer) in sent.jobs.iter().zip(answers) {
            let Some(at) = self.streams.iter().position(|o| &o.jobs == jobs) else {
                continue;
            };
            let owed = self.streams.swap_remove(at);
            self.count -= owed.ids.len();
            let kept = left_after(owed.ids, answer);
            if !kept.is_empty() {
                left.push((owed.jobs, kept));
            }
        }
        left
    }
}

/// The ids a trim answered with `answer` left on the stream: none when it
/// removed every acked entry up to its newest id (`""`), those at or past
/// the bound it answered, or all of them (`0-0`, an error, `NOSCRIPT`, an
/// answer that is no id).
fn left_after(ids: Vec<Id>, answer: &Value) -> Vec<String> {
    let kept: Vec<Id> = match answer {
        Value::BulkString(b) if b.is_empty() => Vec::new(),
        Value::BulkString(b) => match std::str::from_utf8(b).ok().and_then(entry_id) {
            Some(bound) => ids.into_iter().filter(|&id| id >= bound).collect(),
            None => ids,
        },
        Value::ServerError(e) => {
            tracing::debug!(error = ?e, "trimming acked entries failed: they are deleted with the next read");
            ids
        }
        _ => ids,
    };
    kept.into_iter().map(text).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn packed(cmd: &Cmd) -> String {
        String::from_utf8_lossy(&cmd.get_packed_command()).into_owned()
    }

    #[test]
    fn owed_until_the_threshold_then_one_trim_per_stream_to_its_newest_id() {
        let mut owed = OwedTrims::default();
        assert!(owed.is_empty());
        let a: Vec<String> = (0..200).map(|i| format!("{}-0", 1000 + i)).collect();
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        owed.owe("A", &a);
        owed.owe("B", &["5-1", "10-0", "9-9"]);
        assert!(!owed.is_empty());
        assert!(!owed.due_with(TRIM_AT - 204));
        assert!(owed.due_with(TRIM_AT - 203));
        // C is only in the pipeline's batch; A's batch there is older than
        // what A owes, B's newer.
        let (cmds, sent) = owed.commands(&[("C", "7-0"), ("A", "3-0"), ("B", "11-2")]);
        assert_eq!(sent.len(), 3);
        let cmds: Vec<String> = cmds.iter().map(packed).collect();
        assert!(cmds[0].contains("\r\nA\r\n") && cmds[0].contains("\r\n1199-0\r\n"));
        assert!(cmds[1].contains("\r\nB\r\n") && cmds[1].contains("\r\n11-2\r\n"));
        assert!(cmds[2].contains("\r\nC\r\n") && cmds[2].contains("\r\n7-0\r\n"));
        // A trimmed in full; B up to a held lease at 9-9; C's script lost.
        let noscript = redis::parse_redis_value(b"-NOSCRIPT No matching script\r\n").unwrap();
        let left = owed.settle(&sent, &[bulk(""), bulk("9-9"), noscript]);
        assert_eq!(
            left,
            vec![("B".to_owned(), vec!["10-0".to_owned(), "9-9".to_owned()])]
        );
        assert!(owed.is_empty(), "every stream trimmed owes nothing");
    }

    #[test]
    fn what_a_failed_or_strange_answer_leaves_is_every_id() {
        let ids = || vec![(1, 0), (2, 0)];
        let all = vec!["1-0".to_owned(), "2-0".to_owned()];
        assert!(left_after(ids(), &bulk("")).is_empty());
        assert_eq!(left_after(ids(), &bulk("0-0")), all);
        assert_eq!(left_after(ids(), &bulk("2-0")), vec!["2-0".to_owned()]);
        assert_eq!(left_after(ids(), &bulk("garbage")), all);
        assert_eq!(left_after(ids(), &Value::Int(3)), all);
        assert_eq!(left_after(ids(), &Value::Nil), all);
    }

    #[test]
    fn ids_that_are_no_entry_ids_never_steer_the_trim() {
        let mut owed = OwedTrims::default();
        owed.owe("A", &["99999999999999999999999-0", "x", "4-0"]);
        let (cmds, _) = owed.commands(&[]);
        assert!(packed(&cmds[0]).contains("\r\n4-0\r\n"));
        // A stream owing no id that reads as one owes nothing.
        let mut owed = OwedTrims::default();
        owed.owe("A", &["x", "1-x"]);
        assert!(owed.is_empty());
        let (cmds, sent) = owed.commands(&[]);
        assert!(cmds.is_empty() && sent.len() == 0);
    }
}
