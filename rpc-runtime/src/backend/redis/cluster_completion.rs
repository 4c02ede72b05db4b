//! A worker's completions on a Cluster, grouped by key instead of sent job
//! by job: the replies to each caller's inbox in one `RPUSH`, then, once
//! those pushes are seen to have succeeded, each inbox's TTL and each
//! queue's acks (`complete_batch.lua` with acks alone: `XACK`, and the
//! entries removed only when it counted them), every group's command sent
//! at once over the shared connection.
//!
//! A completion's keys live in up to three slots there, so job by job it
//! was two or three script calls in turn (`completion::complete_on`), and a
//! batch of 64 answered jobs some 130 round trips one after the other, each
//! a script call whose own cost was most of what it did. Grouped, a batch is
//! two rounds. What a completion promises holds as on a single Redis: a job
//! is acked only after its reply was written, a refused push leaves its
//! jobs leased, and a TTL is set only on an inbox a push succeeded to.
//! Completions that do more (keep a result, retry, dead-letter) still go one
//! by one, in their slots' order.

use std::collections::HashSet;

use futures_util::future::join_all;
use redis::Value;
use rpc_protocol::stream::GROUP;
use rpc_protocol::Keys;

use super::commands::Commands;
use super::completion::{classify, complete_on, inbox_ttl_ms, reply_pushed};
use super::completion_batch::{batches, complete_batch_script, entry_id, is_entry_id, refusals};
use crate::backend::{CompleteError, Completion, CompletionStep, Delivery};

/// Replies in one `RPUSH`, and ids in one `XACK`, at most.
const MOST_PER_COMMAND: usize = 1000;

/// Completes `done` on a Cluster; returns the indices (into `done`) of the
/// completions that did not wholly take effect, with why, in order.
pub(super) async fn complete_grouped(
    commands: &Commands,
    keys: &Keys,
    done: &[(Delivery, Completion)],
) -> Vec<(usize, CompleteError)> {
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

    // Round one: every inbox's replies.
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

    // Round two: the TTL of each inbox written to, and each queue's acks.
    let expires = inboxes
        .iter()
        .filter(|(inbox, _, _)| written.contains(inbox))
        .map(|(inbox, ttl, _)| {
            let mut expire = redis::cmd("PEXPIRE");
            expire.arg(*inbox).arg(*ttl);
            expire
        })
        .collect::<Vec<_>>();
    // Each queue's acks as `complete_batch.lua` with acks alone (one key,
    // so one slot): an entry is removed only when `XACK` counted every id
    // of its part. A plain `XACK` + `XDEL` would delete what a stale id
    // names: after a failover to a replica that had not received the
    // newest entries, new waiting jobs may take the ids of leases the old
    // master handed out.
    let ack_calls = acks
        .iter_mut()
        .flat_map(|(queue, jobs)| {
            let stream = keys.jobs(queue);
            // Oldest first, as the script asks.
            jobs.sort_by_cached_key(|&i| entry_id(&done[i].0.token));
            jobs.chunks(MOST_PER_COMMAND)
                .map(|chunk| {
                    let mut call = complete_batch_script().prepare_invoke();
                    call.key(&stream)
                        .arg(GROUP)
                        .arg(0) // no pushes
                        .arg(1) // one stream: KEYS[1], one part of acks alone
                        .arg(1)
                        .arg(1)
                        .arg(0)
                        .arg(chunk.len());
                    for &i in chunk {
                        call.arg(&done[i].0.token);
                    }
                    (chunk, call)
                })
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>();
    let expired = join_all(expires.iter().map(|expire| commands.query::<Value>(expire)));
    let acked = join_all(ack_calls.iter().map(|(_, call)| commands.invoke(call)));
    let (expired, acked) = tokio::join!(expired, acked);
    for e in expired.into_iter().filter_map(Result::err) {
        // The reply is there; an inbox without its TTL is a leak only if
        // its caller died, and no reason to run the job again.
        tracing::warn!(error = %e, "could not set a caller's inbox TTL");
    }
    for ((chunk, _), answer) in ack_calls.iter().zip(acked) {
        match answer {
            Ok(reply) => failed.extend(refusals(chunk, &reply)),
            Err(e) => {
                let e = classify(&e);
                failed.extend(chunk.iter().map(|&i| (i, e.clone())));
            }
        }
    }
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
