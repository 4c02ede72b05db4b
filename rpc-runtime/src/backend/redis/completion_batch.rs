//! The common completions of a worker's batch, gathered per queue and sent
//! as one script call for every queue (`scripts/complete_batch.lua`): every
//! reply pushed (one `RPUSH` per caller's inbox), the jobs whose replies
//! went out and the one-way jobs acked with one `XACK`, and the acked
//! entries trimmed from the stream. A lone reply, or a few acks alone, go
//! the cheaper ways they always went.
//!
//! A worker's read pipeline sends these ahead of its next read. Per job
//! that is a reply and a share of one script call, where a script call per
//! job (`reply_and_ack.lua`) cost Redis about 8 µs of its ~15 µs a call at
//! 64 in flight (rpc-bench), and `XDEL` of each entry was most of what a
//! drained one-way job cost Redis beyond the floor's `XACK` (`rpc-bench
//! --jobs`). The script keeps what one job's completion promises: a job is
//! acked only once its reply was written, and an inbox's TTL is set only
//! after a push to it succeeded. Completions that do more (keep a result,
//! retry, dead-letter) keep their own script call (`completion::Call`).

use redis::{RedisError, Script, Value};
use rpc_protocol::stream::GROUP;
use rpc_protocol::Keys;

use super::completion::{classify, inbox_ttl_ms, outcome};
use super::scripts::compiled;
use crate::backend::{CompleteError, Completion, CompletionStep, Delivery};

/// The batch completion script.
pub(super) fn complete_batch_script() -> &'static Script {
    compiled(&rpc_protocol::scripts::COMPLETE_BATCH)
}

/// The script of one reply and its ack.
fn reply_and_ack_script() -> &'static Script {
    compiled(&rpc_protocol::scripts::REPLY_AND_ACK)
}

/// Whether a completion goes in a batch: its ack alone (a one-way job, or
/// an answer nobody waits for or keeps), or a reply to a caller's inbox
/// then the ack. Anything else (a kept result, a retry, a dead letter) is
/// its own script call.
pub(super) fn batches(completion: &Completion) -> bool {
    completion.keep_result.is_none()
        && completion.requeue.is_none()
        && completion.dead_letter.is_none()
}

/// At most this many replies per inbox, and this many ids that only ack,
/// in one script call (the script passes them to one command each, and
/// Lua's `unpack` is bounded).
const MOST_PER_CALL: usize = 1000;

/// Ack-only batches smaller than this are sent as a plain `XACK`, their
/// `XDEL` with the next read once `XACK` counted every id: for a few ids
/// the trim script's own cost is more than trimming saves.
const FEWEST_TO_TRIM: usize = 12;

/// One inbox's replies in a batch.
struct Inbox<'a> {
    key: &'a str,
    ttl_ms: u64,
    /// (index into the completions, reply, entry id)
    replies: Vec<(usize, &'a [u8], &'a str)>,
}

/// The batched completions of one queue.
pub(super) struct CompleteBatch<'a> {
    /// The queue, and its jobs stream (named once per batch, not per job:
    /// `Keys::jobs` formats).
    queue: &'a str,
    jobs: String,
    inboxes: Vec<Inbox<'a>>,
    /// (index into the completions, entry id) of the jobs that only ack.
    acks: Vec<(usize, &'a str)>,
    /// No other batch of the same gather replies: a lone reply then goes
    /// as `reply_and_ack.lua`, where beside other replying batches (a
    /// sharded service's, one reply per shard) it joins their one
    /// `complete_batch.lua` call.
    replies_alone: bool,
}

/// How a batch is sent.
enum Form {
    /// `XACK`, and `XDEL` with the next read: a few acks alone.
    Plain,
    /// `XACK`, and the reader owes `trim_acked.lua` (`reader/owed_trims.rs`):
    /// more acks alone.
    AckTrim,
    /// `reply_and_ack.lua`: one reply and its ack, no other queue of the
    /// batch replying (a lone call's).
    One,
    /// `complete_batch.lua`.
    Script,
}

impl<'a> CompleteBatch<'a> {
    /// The batches of the completions in `done` that [`batches`] takes,
    /// per queue (more than one when a queue has more than a script call
    /// takes), in the order each queue first appears.
    pub(super) fn gather(
        keys: &Keys,
        done: &'a [(Delivery, Completion)],
    ) -> Vec<CompleteBatch<'a>> {
        let mut out: Vec<CompleteBatch<'a>> = Vec::new();
        for (i, (delivery, completion)) in done.iter().enumerate() {
            if !batches(completion) {
                continue;
            }
            let queue = delivery.queue.as_str();
            let reply = match (&completion.reply, &completion.reply_to) {
                (Some(body), Some(to)) => Some((body, to)),
                // Nobody waits for the answer: the ack alone.
                _ => None,
            };
            let has_room = |b: &CompleteBatch<'a>| match reply {
                Some((_, to)) => b
                    .inboxes
                    .iter()
                    .find(|inbox| inbox.key == to)
                    .is_none_or(|inbox| inbox.replies.len() < MOST_PER_CALL),
                None => b.acks.len() < MOST_PER_CALL,
            };
            let batch = match out.iter().rposition(|b| b.queue == queue && has_room(b)) {
                Some(at) => &mut out[at],
                None => {
                    out.push(CompleteBatch {
                        queue,
                        jobs: keys.jobs(queue),
                        inboxes: Vec::new(),
                        acks: Vec::new(),
                        replies_alone: true,
                    });
                    out.last_mut().expect("just pushed")
                }
            };
            let Some((body, to)) = reply else {
                batch.acks.push((i, &delivery.token));
                continue;
            };
            let ttl_ms = inbox_ttl_ms(completion);
            let inbox = match batch.inboxes.iter().position(|b| b.key == to) {
                Some(at) => &mut batch.inboxes[at],
                None => {
                    batch.inboxes.push(Inbox {
                        key: to,
                        ttl_ms: 0,
                        replies: Vec::new(),
                    });
                    batch.inboxes.last_mut().expect("just pushed")
                }
            };
            // The inbox lives as long as the longest TTL asked.
            inbox.ttl_ms = inbox.ttl_ms.max(ttl_ms);
            inbox.replies.push((i, body, &delivery.token));
        }
        let replying = out.iter().filter(|b| !b.inboxes.is_empty()).count();
        // Each inbox's ids and the ack-only ids oldest first, as the
        // script asks.
        for batch in &mut out {
            batch.replies_alone = replying == 1;
            for inbox in &mut batch.inboxes {
                // Each id read once (`sort_by_key` reads it per comparison).
                inbox
                    .replies
                    .sort_by_cached_key(|&(_, _, token)| entry_id(token));
            }
            batch.acks.sort_by_cached_key(|&(_, token)| entry_id(token));
        }
        out
    }

    /// The jobs stream of the batch's queue.
    pub(super) fn jobs(&self) -> &str {
        &self.jobs
    }

    fn form(&self) -> Form {
        match (self.inboxes.as_slice(), self.acks.len()) {
            ([], n) if n < FEWEST_TO_TRIM => Form::Plain,
            ([], _) => Form::AckTrim,
            ([one], 0) if one.replies.len() == 1 && self.replies_alone => Form::One,
            _ => Form::Script,
        }
    }

    /// The indices (into the completions) of this batch's jobs, in the
    /// order the script numbers them (its `k`, from 1).
    pub(super) fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.inboxes
            .iter()
            .flat_map(|inbox| inbox.replies.iter().map(|&(i, _, _)| i))
            .chain(self.acks.iter().map(|&(i, _)| i))
    }

    /// The ids of the batch in the script's order.
    fn tokens(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.inboxes
            .iter()
            .flat_map(|inbox| inbox.replies.iter().map(|&(_, _, t)| t))
            .chain(self.acks.iter().map(|&(_, t)| t))
    }

    /// The commands that complete the batch, for a pipeline (the caller
    /// handles `NOSCRIPT`); [`CompleteBatch::outcome`] reads their answers.
    pub(super) fn commands(&self) -> Vec<redis::Cmd> {
        match self.form() {
            // The `XDEL` waits for `XACK`'s count (`left_on_stream`); the
            // trim of more acks is owed (`reader/owed_trims.rs`).
            Form::Plain | Form::AckTrim => {
                let tokens: Vec<&str> = self.tokens().collect();
                let mut ack = redis::cmd("XACK");
                ack.arg(&self.jobs).arg(GROUP).arg(&tokens);
                vec![ack]
            }
            Form::One => {
                let inbox = &self.inboxes[0];
                let (_, body, token) = inbox.replies[0];
                // Sized once (a lone call's completion, on every call).
                let bytes = 96 + inbox.key.len() + self.jobs.len() + body.len() + token.len();
                let mut cmd = redis::Cmd::with_capacity(9, bytes);
                cmd.arg("EVALSHA")
                    .arg(reply_and_ack_script().get_hash())
                    .arg(2)
                    .arg(inbox.key)
                    .arg(&self.jobs)
                    .arg(body)
                    .arg(inbox.ttl_ms)
                    .arg(GROUP)
                    .arg(token);
                vec![cmd]
            }
            Form::Script => vec![CompleteBatch::script_call(&[self])],
        }
    }

    /// Whether the batch goes as (part of) a `complete_batch.lua` call.
    pub(super) fn is_scripted(&self) -> bool {
        matches!(self.form(), Form::Script)
    }

    /// One `complete_batch.lua` call for `batches` (every one scripted, all
    /// on one Redis: their queues may be in different slots), for a
    /// pipeline (the caller handles `NOSCRIPT`): each inbox's replies of
    /// every batch in one push (at most [`MOST_PER_CALL`] per push), then
    /// each batch's ids, part by part (an inbox's, then the acks alone), in
    /// the order [`CompleteBatch::indices`] gives.
    pub(super) fn script_call(batches: &[&CompleteBatch<'_>]) -> redis::Cmd {
        fn key_index<'k>(keys: &mut Vec<&'k str>, key: &'k str) -> usize {
            match keys.iter().position(|k| *k == key) {
                Some(at) => at + 1,
                None => {
                    keys.push(key);
                    keys.len()
                }
            }
        }
        /// One push: an inbox (its index in KEYS), the longest TTL asked,
        /// its replies.
        struct Push<'r> {
            key: usize,
            ttl_ms: u64,
            replies: Vec<&'r [u8]>,
        }
        // Every stream and inbox once; the arguments name them by index.
        let mut keys: Vec<&str> = Vec::new();
        let mut pushes: Vec<Push> = Vec::new();
        // Per batch: its stream's index, and the push of each of its inboxes.
        let mut streams: Vec<(usize, Vec<usize>)> = Vec::with_capacity(batches.len());
        for batch in batches {
            let jobs = key_index(&mut keys, &batch.jobs);
            let mut parts = Vec::with_capacity(batch.inboxes.len());
            for inbox in &batch.inboxes {
                let key = key_index(&mut keys, inbox.key);
                let n = inbox.replies.len();
                let at = match pushes
                    .iter()
                    .position(|p| p.key == key && p.replies.len() + n <= MOST_PER_CALL)
                {
                    Some(at) => at,
                    None => {
                        pushes.push(Push {
                            key,
                            ttl_ms: 0,
                            replies: Vec::new(),
                        });
                        pushes.len() - 1
                    }
                };
                let push = &mut pushes[at];
                push.ttl_ms = push.ttl_ms.max(inbox.ttl_ms);
                push.replies
                    .extend(inbox.replies.iter().map(|&(_, reply, _)| reply));
                parts.push(at + 1);
            }
            streams.push((jobs, parts));
        }
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(complete_batch_script().get_hash()).arg(keys.len());
        for key in &keys {
            cmd.arg(*key);
        }
        cmd.arg(GROUP).arg(pushes.len());
        for push in &pushes {
            cmd.arg(push.key).arg(push.ttl_ms).arg(push.replies.len());
            for &reply in &push.replies {
                cmd.arg(reply);
            }
        }
        cmd.arg(batches.len());
        for (batch, (jobs, parts)) in batches.iter().zip(&streams) {
            let acks = usize::from(!batch.acks.is_empty());
            cmd.arg(*jobs).arg(parts.len() + acks);
            for (inbox, &push) in batch.inboxes.iter().zip(parts) {
                cmd.arg(push).arg(inbox.replies.len());
            }
            if acks == 1 {
                cmd.arg(0).arg(batch.acks.len());
            }
            for token in batch.tokens() {
                cmd.arg(token);
            }
        }
        cmd
    }

    /// What the answers to [`CompleteBatch::commands`] say, as `(index,
    /// error)` for each job of the batch that did not complete.
    pub(super) fn outcome(&self, answers: &[Value]) -> Vec<(usize, CompleteError)> {
        let every = |e: CompleteError| self.indices().map(|i| (i, e.clone())).collect();
        match (self.form(), answers) {
            (Form::Plain | Form::AckTrim, [ack]) => match plain_outcome(ack, &Value::Okay) {
                Ok(()) => Vec::new(),
                Err(e) => every(e),
            },
            (Form::One, [reply]) => match outcome(reply) {
                Ok(()) => Vec::new(),
                Err(e) => every(e),
            },
            (Form::Script, [reply]) => CompleteBatch::script_outcome(&[self], reply),
            _ => every(CompleteError::Transient(format!(
                "unexpected answers to a batch of completions: {answers:?}"
            ))),
        }
    }

    /// The acked ids of this batch that the answer to its plain `XACK`
    /// says are left on the stream for the worker to delete (`XDEL`) with
    /// its next read: a few acks alone, once `XACK` counted every one.
    /// None for the other forms (the ids of more acks alone are owed a
    /// trim: [`CompleteBatch::owed`]).
    pub(super) fn left_on_stream(&self, answers: &[Value]) -> Vec<&'a str> {
        match (self.form(), answers) {
            (Form::Plain, [ack]) => self.counted_in_full(ack),
            _ => Vec::new(),
        }
    }

    /// The acked ids of more acks alone that the answer to their `XACK`
    /// says the reader owes a trim (`reader/owed_trims.rs`): all of them,
    /// once `XACK` counted every one. None for the other forms.
    pub(super) fn owed(&self, answers: &[Value]) -> Vec<&'a str> {
        match (self.form(), answers) {
            (Form::AckTrim, [ack]) => self.counted_in_full(ack),
            _ => Vec::new(),
        }
    }

    /// How many acked ids this batch may owe a trim, and the newest of
    /// them: more acks alone, before their `XACK` is answered.
    pub(super) fn may_owe(&self) -> Option<(usize, &'a str)> {
        match self.form() {
            // Oldest first (`gather`): the newest is the last.
            Form::AckTrim => Some((self.acks.len(), self.acks.last()?.1)),
            _ => None,
        }
    }

    /// The batch's ack-only ids when `ack` (the answer to their `XACK`)
    /// counted every distinct one; none otherwise.
    fn counted_in_full(&self, ack: &Value) -> Vec<&'a str> {
        // Only ids that all named leases are deleted (`complete_batch.lua`'s
        // rule): an id `XACK` did not count may name a waiting job (a Redis
        // restarted with its clock behind gave a new job the id), so a
        // batch `XACK` did not count in full is left to a later trim or the
        // workers' sweep.
        // Oldest first (`gather`): an id given twice is side by side. (Ids
        // equal as numbers but not as text, or that are no ids, may be
        // counted more than once: never fewer, so a batch is never taken
        // for counted in full when it was not.)
        let distinct = self.acks.len() - self.acks.windows(2).filter(|w| w[0].1 == w[1].1).count();
        if !matches!(ack, Value::Int(n) if usize::try_from(*n).ok() == Some(distinct)) {
            return Vec::new();
        }
        self.acks.iter().map(|&(_, t)| t).collect()
    }

    /// What the answer to [`CompleteBatch::script_call`] of `batches`
    /// says, as `(index, error)` for each job that did not complete.
    pub(super) fn script_outcome(
        batches: &[&CompleteBatch<'_>],
        reply: &Value,
    ) -> Vec<(usize, CompleteError)> {
        let by_place: Vec<usize> = batches.iter().flat_map(|b| b.indices()).collect();
        refusals(&by_place, reply)
    }
}

/// What an answer of `complete_batch.lua` says, as `(index, error)` for
/// each job that did not complete, `by_place` giving the index of each of
/// the call's entry ids in argument order (the script's `k`, from 1).
pub(super) fn refusals(by_place: &[usize], reply: &Value) -> Vec<(usize, CompleteError)> {
    let every = |e: CompleteError| by_place.iter().map(|&i| (i, e.clone())).collect();
    let parts = match reply {
        Value::Array(parts) => parts,
        Value::ServerError(e) => return every(classify(&RedisError::from(e.clone()))),
        other => {
            return every(CompleteError::Transient(format!(
                "unexpected answer to the batch completion script: {other:?}"
            )))
        }
    };
    let mut failed: Vec<(usize, CompleteError)> = Vec::new();
    for refusal in parts.chunks(3) {
        let [Value::Int(k), step, error] = refusal else {
            return every(CompleteError::Transient(format!(
                "unexpected answer to the batch completion script: {reply:?}"
            )));
        };
        let e = outcome(&Value::Array(vec![step.clone(), error.clone()]))
            .err()
            .unwrap_or_else(|| CompleteError::Transient("a step was refused".to_owned()));
        match *k {
            // The acked entries could not be removed: the jobs are
            // completed, the entries stay (counted as queued) until an
            // operator looks.
            -1 => tracing::warn!(
                "acked entries could not be removed from their stream: {}",
                text_of(error)
            ),
            k => {
                let place = usize::try_from(k - 1).ok();
                if let Some(&i) = place.and_then(|p| by_place.get(p)) {
                    failed.push((i, e));
                }
            }
        }
    }
    failed
}

/// A stream entry id as the numbers it orders by (`None`, first, for what
/// Redis would not have made: only `<ms>-<seq>` as Redis writes it, decimal
/// without sign or leading zeros, each part fitting 64 bits; the scripts
/// compare ids as text, and `011-0` or `+1-0` would sort there as no id
/// Redis holds).
pub(super) fn entry_id(token: &str) -> Option<(u64, u64)> {
    fn number(digits: &str) -> Option<u64> {
        let canonical = digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        if canonical {
            digits.parse().ok()
        } else {
            None
        }
    }
    let (ms, seq) = token.split_once('-')?;
    Some((number(ms)?, number(seq)?))
}

/// Whether `token` reads as a stream entry id as Redis writes it
/// ([`entry_id`]).
pub(super) fn is_entry_id(token: &str) -> bool {
    entry_id(token).is_some()
}

fn text_of(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        _ => String::new(),
    }
}

/// What the answers to a plain `XACK` + `XDEL` say, for every job alike:
/// `NOGROUP` on the ack is no refusal, as in the scripts.
pub(super) fn plain_outcome(ack: &Value, del: &Value) -> Result<(), CompleteError> {
    match (ack, del) {
        (Value::ServerError(e), _) if e.code() != "NOGROUP" => {
            Err(match classify(&RedisError::from(e.clone())) {
                CompleteError::Refused { reason, .. } => CompleteError::Refused {
                    step: Some(CompletionStep::Ack),
                    reason,
                },
                transient => transient,
            })
        }
        (_, Value::ServerError(e)) => Err(classify(&RedisError::from(e.clone()))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
