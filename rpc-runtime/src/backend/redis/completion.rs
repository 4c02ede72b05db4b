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
//! On a single Redis the whole completion is one script call. On a Cluster
//! its keys live in up to three slots (the caller's inbox, the kept result,
//! the queue), so it is up to three calls, one per slot, in step order,
//! each sent only when the one before it succeeded.

use std::sync::OnceLock;

use redis::{RedisError, Value};

use super::commands::{is_connection_failure, Commands};
use super::{dead_key, jobs_key, result_key, GROUP};
use crate::backend::{
    CompleteError, Completion, CompletionStep, Delivery, DEAD_LETTER_CAP, DEFAULT_INBOX_TTL,
};

/// The completion script's source, compiled into the binary.
pub(super) const SOURCE: &str = include_str!("scripts/complete.lua");

/// The completion script.
pub(super) fn script() -> &'static redis::Script {
    static SCRIPT: OnceLock<redis::Script> = OnceLock::new();
    SCRIPT.get_or_init(|| redis::Script::new(SOURCE))
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

/// One call of the completion script: its plan, keys and arguments.
pub(super) struct Call {
    plan: String,
    keys: Vec<String>,
    args: [Vec<u8>; 9],
}

impl Call {
    /// The script call for the steps of `completion` that live in `slots`,
    /// or `None` when there are none.
    pub(super) fn new(
        prefix: &str,
        delivery: &Delivery,
        completion: &Completion,
        slots: Slots,
    ) -> Option<Call> {
        let mut call = Call {
            plan: String::new(),
            keys: Vec::new(),
            args: Default::default(),
        };
        let has = |s: Slots| slots == Slots::All || slots == s;
        let ms = |d: std::time::Duration| (d.as_millis().max(1) as u64).to_string().into_bytes();
        let jobs = jobs_key(prefix, &delivery.queue);
        if let Some(body) = &completion.reply {
            call.args[0] = body.clone();
            if let (Some(to), true) = (&completion.reply_to, has(Slots::Inbox)) {
                call.step('R', to.clone());
                call.args[1] = ms(completion.inbox_ttl.unwrap_or(DEFAULT_INBOX_TTL));
            }
            if let (Some((id, ttl)), true) = (&completion.keep_result, has(Slots::Result)) {
                call.step('K', result_key(prefix, id));
                call.args[2] = ms(*ttl);
            }
        }
        if has(Slots::Queue) {
            if let Some(payload) = &completion.requeue {
                call.step('Q', jobs.clone());
                call.args[3] = payload.clone();
            }
            if let Some(reason) = &completion.dead_letter {
                call.step('D', dead_key(prefix, &delivery.queue));
                call.args[4] = reason.clone().into_bytes();
                call.args[5] = delivery.payload.clone();
                call.args[6] = DEAD_LETTER_CAP.to_string().into_bytes();
            }
            call.step('A', jobs);
            call.args[7] = GROUP.as_bytes().to_vec();
            call.args[8] = delivery.token.clone().into_bytes();
        }
        (!call.plan.is_empty()).then_some(call)
    }

    fn step(&mut self, step: char, key: String) {
        self.plan.push(step);
        self.keys.push(key);
    }

    /// `EVALSHA` of the script with this call's keys and arguments, for a
    /// pipeline (the caller handles `NOSCRIPT`).
    pub(super) fn evalsha(&self) -> redis::Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(script().get_hash()).arg(self.keys.len());
        for key in &self.keys {
            cmd.arg(key);
        }
        cmd.arg(&self.plan);
        for arg in &self.args {
            cmd.arg(arg);
        }
        cmd
    }

    /// Runs the call on the shared connection (loading the script if Redis
    /// does not have it).
    async fn run(&self, commands: &Commands) -> Result<(), CompleteError> {
        let mut invocation = script().prepare_invoke();
        for key in &self.keys {
            invocation.key(key);
        }
        invocation.arg(&self.plan);
        for arg in &self.args {
            invocation.arg(arg);
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
                "Q" => CompletionStep::Requeue,
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
/// codes above are transient, the rest a refusal of the whole call.
pub(super) fn classify(e: &RedisError) -> CompleteError {
    match e.code() {
        None if is_connection_failure(e) || e.is_timeout() => {
            CompleteError::Transient(e.to_string())
        }
        Some(code) if is_transient_code(code) => CompleteError::Transient(e.to_string()),
        None => CompleteError::Transient(e.to_string()),
        Some(_) => CompleteError::Refused {
            step: None,
            reason: e.to_string(),
        },
    }
}

/// Applies a completion over the shared connection: one script call on a
/// single Redis, one per slot on a Cluster, each only after the one before
/// it succeeded.
pub(super) async fn complete_on(
    commands: &Commands,
    prefix: &str,
    delivery: &Delivery,
    completion: &Completion,
) -> Result<(), CompleteError> {
    let parts: &[Slots] = match commands {
        Commands::Cluster(_) => &[Slots::Inbox, Slots::Result, Slots::Queue],
        Commands::Single(_) => &[Slots::All],
    };
    for &slots in parts {
        if let Some(call) = Call::new(prefix, delivery, completion, slots) {
            call.run(commands).await?;
        }
    }
    Ok(())
}
