//! A worker's completions on a Cluster, grouped by key instead of sent job
//! by job: the replies to each caller's inbox in one `RPUSH`, then, once
//! those pushes are seen to have succeeded, each inbox's TTL and each
//! queue's acks (`complete_batch.lua` with acks alone: `XACK`, and the
//! entries removed only when it counted them).
//!
//! A completion's keys live in up to three slots there, so job by job it
//! was two or three script calls in turn (`completion::complete_on`), and a
//! batch of 64 answered jobs some 130 round trips one after the other, each
//! a script call whose own cost was most of what it did. Grouped, a batch is
//! two rounds: [`push_replies`], then what it leaves ([`Replied`]), sent
//! either over the shared connection ([`settle_shared`]) or, by a worker
//! that sweeps each master's queues itself, in the same pipeline as its next
//! read of that master (`cluster_reader/sweep.rs`), so a master is not woken
//! once for the acks and once more for the read. What a completion promises
//! holds as on a single Redis: a job is acked only after its reply was
//! written, a refused push leaves its jobs leased, and a TTL is set only on
//! an inbox a push succeeded to. Completions that do more (keep a result,
//! retry, dead-letter) still go one by one, in their slots' order.

use std::collections::HashSet;

use futures_util::future::join_all;
use redis::{RedisResult, Value};
use rpc_protocol::stream::GROUP;
use rpc_protocol::Keys;

use super::commands::Commands;
use super::completion::{classify, complete_on, inbox_ttl_ms, reply_pushed};
use super::completion_batch::{batches, complete_batch_script, entry_id, is_entry_id, refusals};
use crate::backend::{CompleteError, Completion, CompletionStep, Delivery};

/// Replies in one `RPUSH`, and ids in one `XACK`, at most.
const MOST_PER_COMMAND: usize = 1000;

/// What is left of a batch once its replies are pushed: each inbox's TTL
/// and each queue's acks.
#[derive(Default)]
pub(super) struct Replied<'d> {
    /// The completions that failed so far (indices into the batch), with
    /// why.
    pub(super) failed: Vec<(usize, CompleteError)>,
    /// Each inbox a push succeeded to, with the longest TTL asked.
    pub(super) expires: Vec<(&'d str, u64)>,
    /// The acks, per queue, at most [`MOST_PER_COMMAND`] each.
    pub(super) acks: Vec<Acks<'d>>,
}

/// One call of `complete_batch.lua` with acks alone: jobs of one queue,
/// oldest first (as the script asks). One key, so one slot.
pub(super) struct Acks<'d> {
    pub(super) queue: &'d str,
    /// The jobs' indices into the batch, in the order of `tokens`.
    jobs: Vec<usize>,
    tokens: Vec<&'d str>,
}

impl Acks<'_> {
    /// The call as `EVALSHA`, for a pipeline (whose sender handles
    /// `NOSCRIPT`: [`Acks::send_shared`] loads the script).
    pub(super) fn evalsha(&self, keys: &Keys) -> redis::Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(complete_batch_script().get_hash())
            .arg(1)
            .arg(keys.jobs(self.queue));
        self.argv(|a| {
            cmd.arg(a);
        });
        cmd
    }

    /// Gives the call's ARGV in order: the group, no pushes, one stream
    /// (KEYS[1]) of one part of acks alone, its ids.
    fn argv(&self, mut arg: impl FnMut(&str)) {
        let count = self.tokens.len().to_string();
        for a in [GROUP, "0", "1", "1", "1", "0", &count] {
            arg(a);
        }
        for token in &self.tokens {
            arg(token);
        }
    }

    /// The call over the shared connection, which follows `MOVED` and loads
    /// the script. Sending it again after a call whose answer was lost is
    /// safe: ids already acked are not counted, so nothing is removed twice
    /// and nothing is refused.
    pub(super) async fn send_shared(
        &self,
        commands: &Commands,
        keys: &Keys,
    ) -> Vec<(usize, CompleteError)> {
        let mut call = complete_batch_script().prepare_invoke();
        call.key(keys.jobs(self.queue));
        self.argv(|a| {
            call.arg(a);
        });
        self.answer(commands.invoke(&call).await)
    }

    /// The jobs of this call that did not complete, read from its answer.
    pub(super) fn answer(&self, answer: RedisResult<Value>) -> Vec<(usize, CompleteError)> {
        match answer {
            Ok(reply) => refusals(&self.jobs, &reply),
            Err(e) => {
                let e = classify(&e);
                self.jobs.iter().map(|&i| (i, e.clone())).collect()
            }
        }
    }
}

/// An inbox's TTL, once a push to it succeeded.
pub(super) fn expire_cmd(inbox: &str, ttl_ms: u64) -> redis::Cmd {
    let mut expire = redis::cmd("PEXPIRE");
    expire.arg(inbox).arg(ttl_ms);
    expire
}

/// Logs a TTL that could not be set.
pub(super) fn expire_failed(e: &dyn std::fmt::Display) {
    // The reply is there; an inbox without its TTL is a leak only if its
    // caller died, and no reason to run the job again.
    tracing::warn!(error = %e, "could not set a caller's inbox TTL");
}

/// Round one: every inbox's replies (and, one by one, the completions that
/// do more than reply and ack). Returns what is left to send.
pub(super) async fn push_replies<'d>(
    commands: &Commands,
    keys: &Keys,
    done: &'d [(Delivery, Completion)],
) -> Replied<'d> {
    let mut failed = Vec::new();
    // The replies per inbox, and the jobs to ack per queue once their
    // replies are written (indices into `done`).
    let mut inboxes: Vec<(&str, u64, Vec<usize>)> = Vec::new();
    let mut acks: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, (delivery, completion)) in done.iter().enumerate() {
        if !is_entry_id(&delivery.token) {
            // Redis refuses a whole `XACK` for one id it cannot parse: such
            // a token (which no read hands out) fails alone, unwritten.
            failed.push((i, not_an_entry_id(&delivery.token)));
            continue;
        }
        if !batches(completion) {
            if let Err(e) = complete_on(commands, keys, delivery, completion).await {
                failed.push((i, e));
            }
            continue;
        }
        match (&completion.reply, &completion.reply_to) {
            (Some(_), Some(to)) => {
                let ttl_ms = inbox_ttl_ms(completion);
                match inboxes.iter_mut().find(|(key, _, _)| key == to) {
                    Some((_, ttl, jobs)) => {
                        *ttl = (*ttl).max(ttl_ms);
                        jobs.push(i);
                    }
                    None => inboxes.push((to, ttl_ms, vec![i])),
                }
            }
            _ => add_ack(&mut acks, &delivery.queue, i),
        }
    }

    let pushes = inboxes.iter().flat_map(|(inbox, _, jobs)| {
        jobs.chunks(MOST_PER_COMMAND).map(move |chunk| {
            let mut push = redis::cmd("RPUSH");
            push.arg(*inbox);
            for &i in chunk {
                push.arg(done[i].1.reply.as_deref().unwrap_or_default());
            }
            (*inbox, chunk, push)
        })
    });
    let pushes: Vec<_> = pushes.collect();
    let answers = join_all(
        pushes
            .iter()
            .map(|(_, _, push)| commands.query::<Value>(push)),
    )
    .await;
    let mut written: HashSet<&str> = HashSet::new();
    for ((inbox, chunk, _), answer) in pushes.iter().zip(answers) {
        match reply_pushed(answer) {
            Ok(()) => {
                written.insert(inbox);
                for &i in *chunk {
                    add_ack(&mut acks, &done[i].0.queue, i);
                }
            }
            Err(e) => {
                failed.extend(chunk.iter().map(|&i| (i, e.clone())));
            }
        }
    }
    let expires = inboxes
        .iter()
        .filter(|(inbox, _, _)| written.contains(inbox))
        .map(|&(inbox, ttl, _)| (inbox, ttl))
        .collect();
    // Each queue's acks as `complete_batch.lua` with acks alone (one key,
    // so one slot): an entry is removed only when `XACK` counted every id
    // of its part. A plain `XACK` + `XDEL` would delete what a stale id
    // names: after a failover to a replica that had not received the
    // newest entries, new waiting jobs may take the ids of leases the old
    // master handed out.
    let acks = acks
        .into_iter()
        .flat_map(|(queue, mut jobs)| {
            // Oldest first, as the script asks.
            jobs.sort_by_cached_key(|&i| entry_id(&done[i].0.token));
            jobs.chunks(MOST_PER_COMMAND)
                .map(|chunk| Acks {
                    queue,
                    jobs: chunk.to_vec(),
                    tokens: chunk.iter().map(|&i| done[i].0.token.as_str()).collect(),
                })
                .collect::<Vec<_>>()
        })
        .collect();
    Replied {
        failed,
        expires,
        acks,
    }
}

/// Round two over the shared connection: the TTLs and the acks, all at
/// once. Returns every completion of the batch that failed (indices into
/// it, with why), in order.
pub(super) async fn settle_shared(
    commands: &Commands,
    keys: &Keys,
    replied: Replied<'_>,
) -> Vec<(usize, CompleteError)> {
    let Replied {
        mut failed,
        expires,
        acks,
    } = replied;
    let expired = join_all(expires.iter().map(|&(inbox, ttl)| async move {
        commands.query::<Value>(&expire_cmd(inbox, ttl)).await
    }));
    let acked = join_all(acks.iter().map(|a| a.send_shared(commands, keys)));
    let (expired, acked) = tokio::join!(expired, acked);
    for e in expired.into_iter().filter_map(Result::err) {
        expire_failed(&e);
    }
    failed.extend(acked.into_iter().flatten());
    failed.sort_by_key(|(i, _)| *i);
    failed
}

/// Adds job `i` of `queue` to the acks.
fn add_ack<'a>(acks: &mut Vec<(&'a str, Vec<usize>)>, queue: &'a str, i: usize) {
    match acks.iter_mut().find(|(q, _)| *q == queue) {
        Some((_, jobs)) => jobs.push(i),
        None => acks.push((queue, vec![i])),
    }
}

/// The refusal of a completion whose token is no stream entry id.
fn not_an_entry_id(token: &str) -> CompleteError {
    let shown: String = token.chars().take(40).collect();
    CompleteError::Refused {
        step: Some(CompletionStep::Ack),
        reason: format!("`{shown}` is not a stream entry id"),
    }
}
