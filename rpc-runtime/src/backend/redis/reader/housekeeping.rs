//! A worker's reader's housekeeping of its streams: the trims it owes its
//! larger ack-only batches (`owed_trims.rs`) and the `XDEL`s of acked
//! entries batches and trims left, sent before a read that may wait for
//! jobs or when the reader settles, and forgotten with a lost connection
//! (a Redis restarted without persistence may give new jobs those ids).

use std::time::Duration;

use redis::Value;

use super::owed_trims::OwedTrims;
use super::{RedisReader, Via};
use crate::error::Error;

impl RedisReader {
    /// The `XDEL`s of the acked entries earlier batches left on their
    /// streams (`left`, which keeps them until they are known sent).
    pub(super) fn left_deletions(&self) -> Vec<redis::Cmd> {
        self.left
            .iter()
            .map(|(jobs, ids)| {
                let mut del = redis::cmd("XDEL");
                del.arg(jobs).arg(ids);
                del
            })
            .collect()
    }

    /// Drops the reading connection, so the next read opens a new one, and
    /// with it what the reader owed its stream: trims and acked ids to
    /// delete were counted on that connection, and a connection lost may be
    /// a Redis restarted without persistence, whose new jobs can carry the
    /// very ids this reader acked (a clock behind). Deleting them there
    /// would delete waiting jobs; the entries they name, if still acked,
    /// go with a later trim or a worker's sweep.
    pub(super) fn drop_connection(&mut self) {
        self.con = None;
        self.owed = OwedTrims::default();
        self.left.clear();
    }

    /// Sends the trims the reader owes and the `XDEL`s of what earlier
    /// batches left, then of what those trims left: on the reading
    /// connection (`Via::Reading`) before a read that may wait for jobs,
    /// so a restart between them breaks that connection first and nothing
    /// is sent to the new Redis (`drop_connection`); on the shared one
    /// (`Via::Shared`) when the reader settles before it is dropped, its
    /// own connection maybe cut short by a cancelled read. What Redis did
    /// not answer stays owed.
    pub(super) async fn housekeep(&mut self, via: Via) {
        if self.owed.is_empty() && self.left.is_empty() {
            return;
        }
        let (trims, sent) = if self.owed.is_empty() {
            (Vec::new(), None)
        } else {
            let (trims, sent) = self.owed.commands(&[]);
            (trims, Some(sent))
        };
        let cmds: Vec<redis::Cmd> = trims.into_iter().chain(self.left_deletions()).collect();
        let Some(answers) = self.send_housekeeping(cmds, via).await else {
            return;
        };
        self.left.clear();
        if let Some(sent) = sent {
            let trim_answers = &answers[..sent.len()];
            let left = self.owed.settle(&sent, trim_answers);
            self.left = left;
            self.reload_lost_scripts(trim_answers).await;
        }
        // What the trims left, deleted now: the read may wait long.
        if !self.left.is_empty()
            && self
                .send_housekeeping(self.left_deletions(), via)
                .await
                .is_some()
        {
            self.left.clear();
        }
    }

    /// One pipeline of housekeeping commands over `via`: their answers,
    /// or `None` when the connection failed (logged; a reading connection
    /// is dropped, and what was owed with it).
    async fn send_housekeeping(&mut self, cmds: Vec<redis::Cmd>, via: Via) -> Option<Vec<Value>> {
        let mut pipe = redis::pipe();
        for cmd in cmds {
            pipe.add_command(cmd);
        }
        pipe.ignore_errors();
        let answers = match via {
            Via::Reading => self
                .run_pipeline(&pipe, Duration::ZERO)
                .await
                .map_err(Error::from),
            Via::Shared => self
                .commands
                .query_pipeline(&pipe)
                .await
                .map_err(Error::from),
        };
        answers
            .map_err(|e| tracing::debug!(error = %e, "trimming or deleting acked entries failed"))
            .ok()
    }

    /// Loads the batch scripts again when an answer says Redis lost them
    /// (`NOSCRIPT`: a restart, `SCRIPT FLUSH`), so the next batches and
    /// trims find them.
    pub(super) async fn reload_lost_scripts(&self, answers: &[Value]) {
        if !answers
            .iter()
            .any(|r| matches!(r, Value::ServerError(e) if e.code() == "NOSCRIPT"))
        {
            return;
        }
        for script in [
            rpc_protocol::scripts::COMPLETE_BATCH,
            rpc_protocol::scripts::TRIM_ACKED,
        ] {
            let load = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(script.source)
                .to_owned();
            if let Err(e) = self.commands.query::<Value>(&load).await {
                tracing::warn!(error = %e, script = script.name, "could not load a batch completion script");
            }
        }
    }
}
