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
//! On its read pipeline a worker sends the common completions (a reply
//! then the ack, or the ack alone) of a whole batch as one script call for
//! every queue instead (`completion_batch.rs`); the rest go one by one,
//! here.
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
        let bytes = 64
            + self.keys.iter().map(|k| k.len() + 16).sum::<usize>()
            + self.args.iter().map(|a| a.len() + 16).sum::<usize>();
        let mut cmd = redis::Cmd::with_capacity(3 + self.keys.len() + self.args.len(), bytes);
        cmd.arg("EVALSHA")
            .arg(self.script.get_hash())
            .arg(self.keys.len());
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

/// What an `RPUSH` of replies answered, for its jobs: a refusal is the
/// reply step's (nothing was written; the jobs stay leased).
pub(super) fn reply_pushed(answer: Result<Value, RedisError>) -> Result<(), CompleteError> {
    let error = match answer {
        Ok(Value::ServerError(e)) => RedisError::from(e),
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    Err(match classify(&error) {
        CompleteError::Refused { reason, .. } => CompleteError::Refused {
            step: Some(CompletionStep::Reply),
            reason,
        },
        transient => transient,
    })
}

/// The TTL, in ms, a completion's reply gives its caller's inbox.
pub(super) fn inbox_ttl_ms(completion: &Completion) -> u64 {
    let ttl = completion.inbox_ttl.unwrap_or(DEFAULT_INBOX_TTL);
    ttl.as_millis().clamp(1, u64::MAX.into()) as u64
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
