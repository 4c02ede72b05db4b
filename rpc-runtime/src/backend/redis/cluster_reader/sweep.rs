//! One sweep of a Cluster's queues: per master, one pipeline over the
//! reader's own connection to it. It carries what the last batch of
//! completions left for that master (its inboxes' TTLs and its queues'
//! acks, `cluster_completion.rs`), then a non-blocking `XREADGROUP` per
//! queue of that master that may hold a job. Redis runs them in order, so
//! the acks are applied before the reads; and a master is woken once per
//! round of a worker, not once for the acks and once more for the read
//! (each wake-up of a master costs it far more than the commands it runs).
//!
//! What a master did not run goes over the shared connection, which
//! follows `MOVED` and loads scripts: an ack or a TTL for a queue or inbox
//! whose master has no link now, an ack refused with `NOSCRIPT` or a
//! redirect, a TTL refused with a redirect, and everything a lost link carried (running an ack again is
//! safe: ids already acked are not counted, so nothing is removed twice).

use futures_util::future::join_all;
use redis::Value;

use super::super::cluster_completion::{expire_cmd, expire_failed, settle_shared, Replied};
use super::super::cluster_slots::key_slot;
use super::super::commands::create_group;
use super::super::unreadable_queues::UnreadableQueues;
use super::super::values::collect_deliveries;
use super::{ClusterTaker, SWEEP_TIMEOUT};
use crate::backend::{CompleteError, Delivery};
use crate::error::Error;

/// What one master's pipeline carries (indices into the batch's TTLs and
/// acks, and the queues read with their `COUNT`), in this order.
#[derive(Default)]
struct Plan {
    expires: Vec<usize>,
    acks: Vec<usize>,
    reads: Vec<(usize, usize)>,
}

impl Plan {
    fn len(&self) -> usize {
        self.expires.len() + self.acks.len() + self.reads.len()
    }
}

/// Whether Redis refused a command without running it for the cluster's
/// state (a slot moved or moving, a node down or loading): the slot map is
/// stale.
fn redirected(code: &str) -> bool {
    matches!(
        code,
        "MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN" | "MASTERDOWN" | "LOADING"
    )
}

/// Whether Redis refused a TTL or an ack without running it for a reason
/// that the shared connection gets past (it loads the script, follows
/// redirects).
fn not_run_here(code: &str) -> bool {
    code == "NOSCRIPT" || redirected(code)
}

impl ClusterTaker {
    /// Sends what `replied` left (TTLs and acks) with the first sweep, then
    /// takes as [`ClusterTaker::take`] does. Returns the completions that
    /// did not take effect, in order, whatever the take does.
    #[allow(clippy::too_many_arguments)]
    pub(in super::super) async fn settle_and_take(
        &mut self,
        replied: Replied<'_>,
        queues: &[String],
        consumer: &str,
        max: usize,
        wait: std::time::Duration,
        unreadable: &mut UnreadableQueues,
    ) -> (Vec<(usize, CompleteError)>, Result<Vec<Delivery>, Error>) {
        if self.queues[..] != *queues {
            self.reset(queues);
        }
        if self.stale && self.refresh_due() {
            if let Err(e) = self.refresh().await {
                let failed = settle_shared(&self.commands, &self.keys, replied).await;
                return (failed, Err(e));
            }
        }
        self.hear_waiting();
        let (failed, out) = self.sweep(consumer, max.max(1), unreadable, replied).await;
        if !out.is_empty() {
            return (failed, Ok(out));
        }
        (
            failed,
            self.take(queues, consumer, max, wait, unreadable).await,
        )
    }

    /// The link to the master of `key`'s slot, if there is one.
    fn link_of_key(&self, key: &str) -> Option<usize> {
        let master = self.map.as_ref()?.master_of(key_slot(key.as_bytes()))?;
        self.links.iter().position(|l| l.master == *master)
    }

    /// One pipelined round to every master at once: what `owed` left for
    /// it, then non-blocking reads of its dirty queues. What one queue's
    /// read refuses sets that queue aside; the other reads' deliveries are
    /// kept (they are leased now). Returns the completions that did not
    /// take effect (sorted), and the deliveries.
    pub(super) async fn sweep(
        &mut self,
        consumer: &str,
        max: usize,
        unreadable: &mut UnreadableQueues,
        owed: Replied<'_>,
    ) -> (Vec<(usize, CompleteError)>, Vec<Delivery>) {
        let Replied {
            mut failed,
            expires,
            acks,
        } = owed;
        let mut plans: Vec<Plan> = (0..self.links.len()).map(|_| Plan::default()).collect();
        let (mut expire_shared, mut ack_shared) = (Vec::new(), Vec::new());
        for (e, &(inbox, _)) in expires.iter().enumerate() {
            match self.link_of_key(inbox) {
                Some(li) => plans[li].expires.push(e),
                None => expire_shared.push(e),
            }
        }
        for (a, call) in acks.iter().enumerate() {
            match self.index.get(call.queue).and_then(|&q| self.link_of[q]) {
                Some(li) => plans[li].acks.push(a),
                None => ack_shared.push(a),
            }
        }
        for q in 0..self.queues.len() {
            if let (true, Some(li)) = (self.to_read(q, unreadable), self.link_of[q]) {
                plans[li].reads.push((q, max));
            }
        }
        let pipes: Vec<redis::Pipeline> = plans
            .iter()
            .map(|plan| {
                let mut pipe = redis::pipe();
                for &e in &plan.expires {
                    let (inbox, ttl) = expires[e];
                    pipe.add_command(expire_cmd(inbox, ttl));
                }
                for &a in &plan.acks {
                    pipe.add_command(acks[a].evalsha(&self.keys));
                }
                for &(q, count) in &plan.reads {
                    pipe.add_command(read_cmd(&self.jobs_keys[q], consumer, count));
                }
                pipe
            })
            .collect();
        let reading = self
            .links
            .iter_mut()
            .zip(&pipes)
            .enumerate()
            .filter(|(_, (_, pipe))| !pipe.is_empty())
            .map(|(li, (link, pipe))| async move {
                let replies =
                    tokio::time::timeout(SWEEP_TIMEOUT, link.reads.query_pipeline(pipe)).await;
                (li, replies)
            });
        let answers = join_all(reading).await;
        let mut out = Vec::new();
        let mut lost = Vec::new();
        let mut missing_groups = Vec::new();
        for (li, answer) in answers {
            let plan = &plans[li];
            let replies = match answer {
                Ok(Ok(replies)) if replies.len() == plan.len() => replies,
                _ => {
                    // Whatever it carried may or may not have run: the
                    // TTLs and acks again over the shared connection.
                    lost.push(li);
                    expire_shared.extend(&plan.expires);
                    ack_shared.extend(&plan.acks);
                    continue;
                }
            };
            let mut replies = replies.into_iter();
            for (&e, reply) in plan.expires.iter().zip(replies.by_ref()) {
                match reply {
                    // Not run there (a slot moved since the map was
                    // fetched): the shared connection follows the redirect.
                    Value::ServerError(err) if not_run_here(err.code()) => {
                        self.stale |= redirected(err.code());
                        expire_shared.push(e);
                    }
                    Value::ServerError(err) => expire_failed(&err),
                    _ => {}
                }
            }
            for (&a, reply) in plan.acks.iter().zip(replies.by_ref()) {
                match reply {
                    Value::ServerError(e) if not_run_here(e.code()) => {
                        self.stale |= redirected(e.code());
                        ack_shared.push(a);
                    }
                    reply => failed.extend(acks[a].answer(Ok(reply))),
                }
            }
            for (&(q, count), reply) in plan.reads.iter().zip(replies) {
                match reply {
                    Value::ServerError(e) => match e.code() {
                        "NOGROUP" => missing_groups.push(q),
                        code if redirected(code) => {
                            // Read again once the map is fetched again.
                            self.dirty[q] = false;
                            self.stale = true;
                        }
                        _ => unreadable.set_aside(&self.jobs_keys[q], &e),
                    },
                    reply => {
                        let before = out.len();
                        collect_deliveries(
                            reply,
                            &self.jobs_keys[q..=q],
                            &self.queues[q..=q],
                            &mut out,
                        );
                        if out.len() - before < count {
                            self.dirty[q] = false;
                        }
                    }
                }
            }
        }
        self.lose_links(lost);
        if !expire_shared.is_empty() || !ack_shared.is_empty() {
            let commands = &self.commands;
            let expired = join_all(expire_shared.iter().map(|&e| {
                let (inbox, ttl) = expires[e];
                async move { commands.query::<Value>(&expire_cmd(inbox, ttl)).await }
            }));
            let acked = join_all(
                ack_shared
                    .iter()
                    .map(|&a| acks[a].send_shared(commands, &self.keys)),
            );
            let (expired, acked) = tokio::join!(expired, acked);
            for e in expired.into_iter().filter_map(Result::err) {
                expire_failed(&e);
            }
            failed.extend(acked.into_iter().flatten());
        }
        failed.sort_by_key(|(i, _)| *i);
        for q in missing_groups {
            tracing::warn!(queue = %self.queues[q], "consumer group missing; recreating it");
            if let Err(e) = create_group(&self.commands, &self.jobs_keys[q]).await {
                // Not a reason to drop what the other reads leased.
                unreadable.set_aside(&self.jobs_keys[q], &e);
            }
        }
        (failed, out)
    }
}

/// `XREADGROUP GROUP workers <consumer> COUNT <count> STREAMS <key> >`,
/// without blocking.
fn read_cmd(key: &str, consumer: &str, count: usize) -> redis::Cmd {
    let mut cmd = redis::cmd("XREADGROUP");
    cmd.arg("GROUP")
        .arg(rpc_protocol::stream::GROUP)
        .arg(consumer)
        .arg("COUNT")
        .arg(count)
        .arg("STREAMS")
        .arg(key)
        .arg(">");
    cmd
}
