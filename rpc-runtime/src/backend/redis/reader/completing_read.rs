//! A worker's completions and its next read in one round trip, on a
//! single Redis: the completions that do more than reply and ack (a script
//! call each), the rest batched (one script call for every queue's), the
//! acked entries the last batch left and the trims owed, then the read
//! (`XREADGROUP ... BLOCK`), all in one pipeline. Redis runs them in order,
//! so the replies and acks are applied before the read blocks. (On a
//! Cluster a completion spans slots, and so nodes: `reader.rs` completes
//! over the shared connection, then reads.)

use std::time::Duration;

use redis::{RedisError, Value};

use super::super::completion::{outcome, Call, Slots};
use super::super::completion_batch::{batches, CompleteBatch};
use super::super::unreadable_queues::may_be_a_queues;
use super::super::values::collect_deliveries;
use super::RedisReader;
use crate::backend::{CompleteError, CompletedAndTaken, Completion, Delivery};
use crate::error::Error;

impl RedisReader {
    /// Completes `done` and reads the next jobs of `queues`, in one
    /// pipeline (see the module's documentation).
    pub(super) async fn complete_then_read(
        &mut self,
        done: &[(Delivery, Completion)],
        queues: &[String],
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> CompletedAndTaken {
        // One pipeline: the completions that do more than reply and ack (a
        // script call each), the rest batched (one script call for them all),
        // then the blocking read. Redis runs them in order, so the replies
        // and acks are applied before the read blocks.
        let (keys, readable) = self.readable(queues);
        let mut pipe = redis::pipe();
        // First the acked entries the last batch left on their streams.
        let deletions = self.left_deletions();
        let skipped = deletions.len();
        for del in deletions {
            pipe.add_command(del);
        }
        let mut scripted = Vec::new();
        for (i, (delivery, completion)) in done.iter().enumerate() {
            if batches(completion) {
                continue;
            }
            if let Some(call) = Call::new(&self.keys, delivery, completion, Slots::All) {
                pipe.add_command(call.evalsha());
                scripted.push(i);
            }
        }
        // Each batch sent on its own, with how many commands it sent; the
        // scripted ones of every queue together, as one script call.
        let gathered = CompleteBatch::gather(&self.keys, done);
        let (together, alone): (Vec<&CompleteBatch>, Vec<&CompleteBatch>) =
            gathered.iter().partition(|b| b.is_scripted());
        let batched: Vec<(&CompleteBatch, usize)> = alone
            .into_iter()
            .map(|batch| {
                let commands = batch.commands();
                let sent = commands.len();
                for cmd in commands {
                    pipe.add_command(cmd);
                }
                (batch, sent)
            })
            .collect();
        if !together.is_empty() {
            pipe.add_command(CompleteBatch::script_call(&together));
        }
        // The trims owed, with this pipeline's larger ack-only batches,
        // once they come to enough (`reader/owed_trims.rs`); else they stay
        // owed, and the read does not block, so that an emptied stream
        // answers at once and the next read, which blocks, trims first.
        let may_owe: Vec<(&str, &str)> = batched
            .iter()
            .filter_map(|(batch, _)| Some((batch.jobs(), batch.may_owe()?.1)))
            .collect();
        let owing: usize = batched
            .iter()
            .filter_map(|(batch, _)| batch.may_owe().map(|(n, _)| n))
            .sum();
        let trims = if self.owed.due_with(owing) {
            let (trims, sent) = self.owed.commands(&may_owe);
            for trim in trims {
                pipe.add_command(trim);
            }
            Some(sent)
        } else {
            None
        };
        let trimmed = trims.as_ref().map_or(0, |sent| sent.len());
        let block = (trims.is_some() || (self.owed.is_empty() && owing == 0)).then_some(wait);
        let calls = scripted.len()
            + batched.iter().map(|(_, sent)| sent).sum::<usize>()
            + usize::from(!together.is_empty());
        debug_assert_eq!(
            scripted.len() + gathered.iter().map(|b| b.indices().count()).sum::<usize>(),
            done.len(),
            "every completion acks"
        );
        if !keys.is_empty() {
            pipe.add_command(Self::read_group_cmd(&keys, consumer, max, block));
        }
        pipe.ignore_errors();
        let mut replies = match self.run_pipeline(&pipe, wait).await {
            Ok(mut replies) => {
                replies.drain(..skipped);
                self.left.clear();
                replies
            }
            // The connection failed: which commands ran is unknown, and
            // what the reader owed is forgotten with the connection
            // (`drop_connection`).
            Err(e) => {
                let e = Error::from(e);
                return CompletedAndTaken {
                    not_completed: (0..done.len())
                        .map(|i| (i, CompleteError::Transient(e.to_string())))
                        .collect(),
                    taken: Err(e),
                };
            }
        };
        let mut not_completed: Vec<(usize, CompleteError)> = scripted
            .iter()
            .zip(&replies)
            .filter_map(|(&i, reply)| outcome(reply).err().map(|e| (i, e)))
            .collect();
        let batch_replies = &replies[scripted.len()..calls];
        let mut at = 0;
        let mut left = Vec::new();
        for (batch, sent) in &batched {
            let answers = &batch_replies[at..at + sent];
            not_completed.extend(batch.outcome(answers));
            let ids = batch.left_on_stream(answers);
            if !ids.is_empty() {
                left.push((
                    batch.jobs().to_owned(),
                    ids.into_iter().map(str::to_owned).collect(),
                ));
            }
            self.owed.owe(batch.jobs(), &batch.owed(answers));
            at += sent;
        }
        self.left = left;
        if let Some(reply) = batch_replies.get(at).filter(|_| !together.is_empty()) {
            not_completed.extend(CompleteBatch::script_outcome(&together, reply));
        }
        let trim_replies = &replies[calls..calls + trimmed];
        if let Some(sent) = &trims {
            let left = self.owed.settle(sent, trim_replies);
            self.left.extend(left);
        }
        // Redis lost its scripts (a restart): the jobs are completed again
        // one by one (which loads their scripts); the batch scripts are
        // loaded for the next batches.
        let lost: Vec<Value> = batch_replies.iter().chain(trim_replies).cloned().collect();
        self.reload_lost_scripts(&lost).await;
        not_completed.sort_by_key(|(i, _)| *i);
        let start = calls + trimmed;
        // Moved out: the deliveries take their ids and payloads from it.
        let read = replies
            .get_mut(start)
            .map(|read| std::mem::replace(read, Value::Nil));
        let taken = match read {
            // Every queue is set aside: no read was sent.
            None => self.none_readable(Some(wait)),
            Some(Value::ServerError(e)) if e.code() == "NOGROUP" => self
                .recreate_groups(&keys)
                .await
                .map(|()| Vec::new())
                .map_err(Error::from),
            Some(Value::ServerError(e)) => {
                let e = RedisError::from(e);
                if may_be_a_queues(&e) {
                    self.read_each(&keys, &readable, consumer, max).await
                } else {
                    Err(e.into())
                }
            }
            Some(read) => {
                let mut out = Vec::new();
                collect_deliveries(read, &keys, &readable, &mut out);
                Ok(out)
            }
        };
        CompletedAndTaken {
            not_completed,
            taken,
        }
    }
}
