//! Completing a job: reply, keep the result, requeue or dead-letter, then
//! ack, in that order, each write checked before the next.
//!
//! All of it is one call of `scripts/complete.lua` (loaded once, run by
//! hash). A pipeline of plain commands cannot do this safely: Redis runs
//! every command of a pipeline whatever the ones before it answered, so
//! under `maxmemory` a refused `RPUSH` of the reply is followed by an `XACK`
//! and `XDEL` that succeed (they free memory), and the job is gone with its
//! caller still waiting; a `PEXPIRE` after a refused `RPUSH` would expire a
//! key the worker did not write. The script stops at the first refusal and
//! says which step it was, so the worker can tell "try again" (out of
//! memory, loading) from "this will never work" (wrong type, no
//! permission) and end the job once.
//!
//! A completion that is its ack alone (a one-way job's) has no write
//! before the ack for a script to check: a worker's read pipeline sends
//! all of those it has as one `XACK` and one `XDEL` per queue
//! ([`AckBatch`]).
//!
//! On a single Redis the whole completion is one script call. On a Cluster
//! its keys live in up to three slots (the kept result, the caller's inbox,
//! the queue), so it is up to three calls, one per slot, in that order,
//! each sent only when the one before it succeeded: the result is kept
//! before the reply goes out, so a caller that has its answer finds the
//! result kept, as it would on a single Redis.

use rpc_protocol::limits::DEFAULT_INBOX_TTL;
use rpc_protocol::Keys;
use std::borrow::Cow;
use std::time::Duration;

use redis::{RedisError, Script, Value};

use super::commands::{is_connection_failure, Commands};
use super::scripts::compiled;
use crate::backend::{CompleteError, Completion, CompletionStep, Delivery, DEAD_LETTER_CAP};
use rpc_protocol::stream::GROUP;

/// The general completion script.
fn complete_script() -> &'static Script {
    compiled(&rpc_protocol::scripts::COMPLETE)
}

/// The script of the common completion: a reply, then the ack. Every call
/// of a job that answers pays it, so it is the cheapest the promise allows
/// (measured with `INFO commandstats`: 8.0 µs of Redis time against 12.4 µs
/// for the same completion through `complete.lua`).
fn reply_and_ack_script() -> &'static Script {
    compiled(&rpc_protocol::scripts::REPLY_AND_ACK)
}

/// Whether a completion is its ack alone: nothing to reply, keep, requeue
/// or dead-letter (a one-way job that ran, or a job whose answer nobody
/// waits for or keeps). Such a completion has no step before the ack to
/// protect, so it needs no script: a worker's pipeline acks a batch of
/// them with one `XACK` and one `XDEL` per queue ([`AckBatch`]).
pub(super) fn is_ack_only(completion: &Completion) -> bool {
    let answers = completion.reply.is_some()
        && (completion.reply_to.is_some() || completion.keep_result.is_some());
    !answers && completion.requeue.is_none() && completion.dead_letter.is_none()
}

/// The ack-only completions ([`is_ack_only`]) of one queue, applied as
/// `XACK <jobs> workers <id>...` then `XDEL <jobs> <id>...`: what
/// `complete.lua`'s plan `A` does for one job, for all of them, without a
/// script. (Measured on the bench's one-way jobs, `rpc-bench --jobs`: a
/// script call per job was most of Redis's CPU per job.) XACK and XDEL
/// are never refused for memory, so nothing the script's order protects
/// is lost: `NOGROUP` on the ack is no refusal, as in the script; any
/// other refusal ends every completion of the batch, as the script would
/// have ended each.
pub(super) struct AckBatch<'a> {
    jobs: String,
    /// Indices into the completions given to [`AckBatch::gather`].
    pub(super) indices: Vec<usize>,
    tokens: Vec<&'a str>,
}

impl<'a> AckBatch<'a> {
    /// The batches of the ack-only completions in `done`, one per queue,
    /// in the order each queue first appears.
    pub(super) fn gather(keys: &Keys, done: &'a [(Delivery, Completion)]) -> Vec<AckBatch<'a>> {
        let mut batches: Vec<AckBatch<'a>> = Vec::new();
        for (i, (delivery, completion)) in done.iter().enumerate() {
            if !is_ack_only(completion) {
                continue;
            }
            let jobs = keys.jobs(&delivery.queue);
            let batch = match batches.iter_mut().position(|b| b.jobs == jobs) {
                Some(at) => &mut batches[at],
                None => {
                    batches.push(AckBatch {
                        jobs,
                        indices: Vec::new(),
                        tokens: Vec::new(),
                    });
                    batches.last_mut().expect("just pushed")
                }
            };
            batch.indices.push(i);
            batch.tokens.push(&delivery.token);
        }
        batches
    }

    /// `XACK` and `XDEL` of the batch, for a pipeline.
    pub(super) fn commands(&self) -> [redis::Cmd; 2] {
        let mut ack = redis::cmd("XACK");
        ack.arg(&self.jobs).arg(GROUP).arg(&self.tokens);
        let mut del = redis::cmd("XDEL");
        del.arg(&self.jobs).arg(&self.tokens);
        [ack, del]
    }

    /// What the answers to [`AckBatch::commands`] say, for every
    /// completion of the batch alike.
    pub(super) fn outcome(ack: &Value, del: &Value) -> Result<(), CompleteError> {
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
}

/// Which of a completion's keys one script call may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slots {
    /// Every key (a single Redis).
    All,
    /// Only the caller's inbox.
    Inbox,
    /// Only the kept result's key.
    Result,
    /// Only the service's streams (jobs and dead letters share a slot).
    Queue,
}

/// One call of a completion script: which script, its keys and arguments
/// (borrowed from the completion where they are large).
pub(super) struct Call<'a> {
    script: &'static Script,
    keys: Vec<String>,
    args: Vec<Cow<'a, [u8]>>,
}

impl<'a> Call<'a> {
    /// The script call for the steps of `completion` that live in `slots`,
    /// or `None` when there are none.
    pub(super) fn new(
        keys: &Keys,
        delivery: &'a Delivery,
        completion: &'a Completion,
        slots: Slots,
    ) -> Option<Call<'a>> {
        let ms = |d: Duration| Cow::Owned((d.as_millis().max(1) as u64).to_string().into_bytes());
        let inbox_ttl = completion.inbox_ttl.unwrap_or(DEFAULT_INBOX_TTL);
        let jobs = keys.jobs(&delivery.queue);
        let group = Cow::Borrowed(GROUP.as_bytes());
        let token = Cow::Borrowed(delivery.token.as_bytes());
        // The common case: a reply, then the ack.
        if let (Slots::All, Some(body), Some(to), None, None, None) = (
            slots,
            &completion.reply,
            &completion.reply_to,
            &completion.keep_result,
            &completion.requeue,
            &completion.dead_letter,
        ) {
            return Some(Call {
                script: reply_and_ack_script(),
                keys: vec![to.clone(), jobs],
                args: vec![Cow::Borrowed(body), ms(inbox_ttl), group, token],
            });
        }
        // Anything else goes through complete.lua's plan: its arguments are
        // fixed (see the script's header), empty where a step is absent.
        let mut plan = String::new();
        let mut call_keys = Vec::new();
        let mut args: Vec<Cow<'a, [u8]>> = vec![Cow::Borrowed(b""); 15];
        // A step and its key (`S` has four more keys, pushed with a step
        // of `None`).
        let mut step = |letter: Option<char>, key: String| {
            if let Some(letter) = letter {
                plan.push(letter);
            }
            call_keys.push(key);
        };
        let has = |s: Slots| slots == Slots::All || slots == s;
        if let Some(body) = &completion.reply {
            args[1] = Cow::Borrowed(body);
            if let (Some(to), true) = (&completion.reply_to, has(Slots::Inbox)) {
                step(Some('R'), to.clone());
                args[2] = ms(inbox_ttl);
            }
            if let (Some((id, ttl)), true) = (&completion.keep_result, has(Slots::Result)) {
                step(Some('K'), keys.result(id));
                args[3] = ms(*ttl);
            }
        }
        if has(Slots::Queue) {
            if let Some(payload) = &completion.requeue {
                args[4] = Cow::Borrowed(payload);
                match &completion.requeue_after {
                    None => step(Some('Q'), jobs.clone()),
                    Some((retry_token, delay)) => {
                        step(Some('S'), keys.schedule(&delivery.queue));
                        step(None, keys.scheduled(&delivery.queue));
                        step(None, keys.cancelled(&delivery.queue));
                        step(None, jobs.clone());
                        // Where a message under a token already scheduled goes.
                        step(None, keys.dead(&delivery.queue));
                        args[7] = Cow::Owned(DEAD_LETTER_CAP.to_string().into_bytes());
                        args[10] = Cow::Borrowed(retry_token.as_bytes());
                        args[11] = Cow::Owned(delay.as_millis().to_string().into_bytes());
                        if let Some(at) = completion.requeue_at_ms {
                            args[12] = Cow::Owned(at.to_string().into_bytes());
                        }
                    }
                }
            }
            if let Some(reason) = &completion.dead_letter {
                step(Some('D'), keys.dead(&delivery.queue));
                args[5] = Cow::Borrowed(reason.as_bytes());
                args[6] = Cow::Borrowed(&delivery.payload);
                args[7] = Cow::Owned(DEAD_LETTER_CAP.to_string().into_bytes());
                if let Some((worker, ran)) = &completion.dead_letter_by {
                    args[13] = Cow::Borrowed(worker.as_bytes());
                    if let Some(ran) = ran {
                        args[14] = Cow::Owned(ran.as_millis().to_string().into_bytes());
                    }
                }
            }
            step(Some('A'), jobs);
            args[8] = group;
            args[9] = token;
        }
        if plan.is_empty() {
            return None;
        }
        args[0] = Cow::Owned(plan.into_bytes());
        Some(Call {
            script: complete_script(),
            keys: call_keys,
            args,
        })
    }

    /// `EVALSHA` of the script with this call's keys and arguments, for a
    /// pipeline (the caller handles `NOSCRIPT`).
    pub(super) fn evalsha(&self) -> redis::Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.script.get_hash()).arg(self.keys.len());
        for key in &self.keys {
            cmd.arg(key);
        }
        for arg in &self.args {
            cmd.arg(&**arg);
        }
        cmd
    }

    /// Runs the call on the shared connection (loading the script if Redis
    /// does not have it).
    async fn run(&self, commands: &Commands) -> Result<(), CompleteError> {
        let mut invocation = self.script.prepare_invoke();
        for key in &self.keys {
            invocation.key(key);
        }
        for arg in &self.args {
            invocation.arg(&**arg);
        }
        match commands.invoke(&invocation).await {
            Ok(v) => outcome(&v),
            Err(e) => Err(classify(&e)),
        }
    }
}

/// What a script call's reply says: 1 when every step ran, `{step, error}`
/// for the first step Redis refused, or an error for the call itself.
pub(super) fn outcome(reply: &Value) -> Result<(), CompleteError> {
    match reply {
        Value::Int(1) | Value::Okay => Ok(()),
        Value::ServerError(e) => Err(classify(&RedisError::from(e.clone()))),
        Value::Array(parts) => {
            let text = |v: Option<&Value>| match v {
                Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(Value::SimpleString(s)) => s.clone(),
                _ => String::new(),
            };
            let step = match text(parts.first()).as_str() {
                "R" => CompletionStep::Reply,
                "K" => CompletionStep::Keep,
                "Q" | "S" => CompletionStep::Requeue,
                "D" => CompletionStep::DeadLetter,
                _ => CompletionStep::Ack,
            };
            let error = text(parts.get(1));
            let code = error.split_whitespace().next().unwrap_or("");
            if is_transient_code(code) {
                Err(CompleteError::Transient(format!("{step}: {error}")))
            } else {
                Err(CompleteError::Refused {
                    step: Some(step),
                    reason: error,
                })
            }
        }
        other => Err(CompleteError::Transient(format!(
            "unexpected answer to the completion script: {other:?}"
        ))),
    }
}

/// Error codes that say "not now" rather than "never": the server is
/// loading, busy with a script, out of memory, failing over, or lost the
/// script cache (a restart). Everything else Redis says (WRONGTYPE, NOPERM,
/// ERR ...) will say it again.
fn is_transient_code(code: &str) -> bool {
    matches!(
        code,
        "LOADING"
            | "BUSY"
            | "TRYAGAIN"
            | "OOM"
            | "MASTERDOWN"
            | "CLUSTERDOWN"
            | "READONLY"
            | "NOREPLICAS"
            | "NOSCRIPT"
            | "MOVED"
            | "ASK"
    )
}

/// A failed script call as a [`CompleteError`]: connection failures and the
/// codes above are transient, the rest a refusal of the whole call. A
/// server's error reads as Redis wrote it, code first (`NOPERM User ...`),
/// like a step's refusal, so the worker can tell which it was.
pub(super) fn classify(e: &RedisError) -> CompleteError {
    let as_redis_wrote_it = |code: &str| match e.detail() {
        Some(detail) => format!("{code} {detail}"),
        None => code.to_owned(),
    };
    match e.code() {
        None if is_connection_failure(e) || e.is_timeout() => {
            CompleteError::Transient(e.to_string())
        }
        Some(code) if is_transient_code(code) => CompleteError::Transient(as_redis_wrote_it(code)),
        None => CompleteError::Transient(e.to_string()),
        Some(code) => CompleteError::Refused {
            step: None,
            reason: as_redis_wrote_it(code),
        },
    }
}

/// Applies a completion over the shared connection: one script call on a
/// single Redis, one per slot on a Cluster, each only after the one before
/// it succeeded.
pub(super) async fn complete_on(
    commands: &Commands,
    keys: &Keys,
    delivery: &Delivery,
    completion: &Completion,
) -> Result<(), CompleteError> {
    let parts: &[Slots] = match commands {
        // The kept result before the reply: a caller that has its answer
        // may hand the call's id to another process, which must find the
        // result kept (on a single Redis both are written in one step).
        Commands::Cluster(_) => &[Slots::Result, Slots::Inbox, Slots::Queue],
        Commands::Single(_) => &[Slots::All],
    };
    for &slots in parts {
        if let Some(call) = Call::new(keys, delivery, completion, slots) {
            call.run(commands).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(queue: &str, token: &str) -> Delivery {
        Delivery {
            queue: queue.to_owned(),
            token: token.to_owned(),
            payload: b"{}".to_vec(),
            deliveries: 1,
            enqueued_ms: None,
            cancelled: false,
        }
    }

    #[test]
    fn only_a_completion_with_nothing_before_its_ack_is_ack_only() {
        let reply = Some(b"{}".to_vec());
        assert!(is_ack_only(&Completion::default()));
        // A reply nobody waits for or keeps is not written.
        assert!(is_ack_only(&Completion {
            reply: reply.clone(),
            ..Completion::default()
        }));
        for not in [
            Completion {
                reply: reply.clone(),
                reply_to: Some("inbox".to_owned()),
                ..Completion::default()
            },
            Completion {
                reply: reply.clone(),
                keep_result: Some(("id".to_owned(), Duration::from_secs(1))),
                ..Completion::default()
            },
            Completion {
                requeue: Some(b"{}".to_vec()),
                ..Completion::default()
            },
            Completion {
                dead_letter: Some("why".to_owned()),
                ..Completion::default()
            },
        ] {
            assert!(!is_ack_only(&not), "{not:?}");
        }
    }

    #[test]
    fn ack_only_completions_are_batched_per_queue_in_order() {
        let keys = Keys::new("rpc");
        let answer = Completion {
            reply: Some(b"{}".to_vec()),
            reply_to: Some("inbox".to_owned()),
            ..Completion::default()
        };
        let done = vec![
            (delivery("A", "1-0"), Completion::default()),
            (delivery("B", "2-0"), Completion::default()),
            (delivery("A", "3-0"), answer),
            (delivery("A", "4-0"), Completion::default()),
        ];
        let batches = AckBatch::gather(&keys, &done);
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].indices, vec![0, 3]);
        assert_eq!(batches[1].indices, vec![1]);
        let [ack, del] = batches[0].commands();
        let packed = |c: &redis::Cmd| String::from_utf8_lossy(&c.get_packed_command()).into_owned();
        let ack = packed(&ack);
        assert!(ack.contains("XACK") && ack.contains(&keys.jobs("A")) && ack.contains(GROUP));
        assert!(ack.contains("1-0") && ack.contains("4-0") && !ack.contains("3-0"));
        let del = packed(&del);
        assert!(del.contains("XDEL") && del.contains("1-0") && del.contains("4-0"));
        assert_eq!(AckBatch::outcome(&Value::Int(2), &Value::Int(2)), Ok(()));
    }
}
