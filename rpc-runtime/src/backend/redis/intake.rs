//! The intake: how a client that may not add to a jobs stream gets its
//! calls onto one.
//!
//! `XADD` cannot be granted to a client role safely: its `MAXLEN` and
//! `MINID` options trim the stream, so a client allowed to add a job could
//! delete every other caller's queued jobs, and Redis ACLs cannot forbid an
//! option. So the client role gets `RPUSH` on `P:{Service}:intake` instead,
//! a list it can only append to, and workers move what arrives there onto
//! the stream (`scripts/intake.lua`). A cancellation request from a client
//! travels the same way (`cancel <call id>`), since the client role may not
//! write the cancelled set or the schedule either.
//!
//! A client with `XADD` rights (no ACLs, or a trusted producer) adds to the
//! stream directly, which saves Redis the move; a client starts that way
//! and turns to the intake for good the first time Redis answers `NOPERM`
//! ([`Enqueue::Auto`]). Either way the stream receives the same message.
//!
//! Each worker runs one mover per service it serves (`worker/intake.rs`):
//! on its own blocking connection it sends `BLMOVE intake moving LEFT RIGHT
//! <wait>` and `EVALSHA intake.lua` as one pipeline, so the moment an
//! element arrives Redis hands it to one waiting mover (only one: the
//! element leaves the intake) and runs the script right after, inside the
//! same pass of its event loop; the script's `XADD` then wakes the takers
//! blocked in `XREADGROUP`. A call through the intake costs Redis one
//! `BLMOVE` and one short script more than a direct `XADD`, and no round
//! trip more.
//!
//! What arrives is hostile: a client role may push elements of any size
//! (up to Redis's `proto-max-bulk-len`) in any number, and Redis runs
//! nothing else while the script copies them. So one call reads only what
//! it moves, a slice at a time, within a byte budget ([`MOVE_BYTES`]), and
//! an element over the workers' message limit is dead-lettered by the
//! script, never queued.

use rpc_protocol::Keys;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::{RedisError, Script, Value};

use super::values::{as_int, as_string};
use crate::backend::Enqueue;
use crate::error::Error;
use rpc_protocol::limits::CANCEL_MEMORY;
use rpc_protocol::limits::MAX_ID_BYTES;
use rpc_protocol::stream::{DEAD_LETTER_CAP, MESSAGE as FIELD};

/// Elements one mover call moves from each list at most.
const MOVE_COUNT: usize = 1_000;
/// The byte budget of one mover call: it takes no more elements once those
/// it took add up to this (so it goes past by one element at most, and
/// takes one whatever its size). Redis runs nothing else for several
/// milliseconds per MiB a call copies (5 to 7 ms on a loaded two-core
/// machine: the `LRANGE` into Lua, then the `XADD`), so a small budget keeps
/// it answering; the mover calls again at once while the intake is not
/// empty, so the cost is a round trip per MiB moved.
const MOVE_BYTES: usize = 1024 * 1024;
/// The longest error text of Redis's kept (it ends up in logs).
const ERROR_CHARS: usize = 300;

pub(super) fn intake_script() -> &'static Script {
    super::scripts::compiled(&rpc_protocol::scripts::INTAKE)
}

/// How this client adds jobs now, shared by the backend and its readers.
#[derive(Debug, Clone)]
pub(crate) struct EnqueueMode(Arc<AtomicU8>);

const TO_STREAM: u8 = 0;
const TO_INTAKE: u8 = 1;

impl EnqueueMode {
    pub(super) fn new(enqueue: Enqueue) -> Self {
        let mode = match enqueue {
            Enqueue::Auto | Enqueue::Stream => TO_STREAM,
            Enqueue::Intake => TO_INTAKE,
        };
        EnqueueMode(Arc::new(AtomicU8::new(mode)))
    }

    /// Whether jobs go through the intake.
    pub(super) fn via_intake(&self) -> bool {
        self.0.load(Ordering::Relaxed) == TO_INTAKE
    }

    /// After Redis answered `error` to a direct `XADD`: whether this client
    /// turned to the intake (it is not allowed to add to streams), so the
    /// job should be sent again that way.
    pub(super) fn turn_to_intake_after(&self, error: &RedisError) -> bool {
        if error.code() != Some("NOPERM") {
            return false;
        }
        self.turn_to_intake();
        true
    }

    /// From now on, jobs and cancellations go through the intake.
    pub(super) fn turn_to_intake(&self) {
        if self.0.swap(TO_INTAKE, Ordering::Relaxed) == TO_STREAM {
            tracing::info!(
                "this client may not write jobs streams or lifecycle keys (NOPERM); sending its calls and cancellations through the services' intakes"
            );
        }
    }

    /// The command that adds `payload` to `queue` the current way.
    pub(super) fn push_cmd(&self, keys: &Keys, queue: &str, payload: &[u8]) -> redis::Cmd {
        let intake = self.via_intake();
        push_cmd_to(intake, &push_key(intake, keys, queue), payload)
    }
}

/// The key jobs of `queue` are added to: its intake or its stream.
pub(crate) fn push_key(intake: bool, keys: &Keys, queue: &str) -> String {
    if intake {
        keys.intake(queue)
    } else {
        keys.jobs(queue)
    }
}

/// The command that adds `payload` to `key` (see [`push_key`]).
pub(crate) fn push_cmd_to(intake: bool, key: &str, payload: &[u8]) -> redis::Cmd {
    if intake {
        let mut cmd = redis::cmd("RPUSH");
        cmd.arg(key).arg(payload);
        cmd
    } else {
        // Sized once: grown argument by argument, the buffer was
        // reallocated on the way to the payload's size, on every send.
        let mut cmd = redis::Cmd::with_capacity(5, 6 + key.len() + FIELD.len() + payload.len());
        cmd.arg("XADD").arg(key).arg("*").arg(FIELD).arg(payload);
        cmd
    }
}

/// The command that asks workers to cancel call `id` of `queue`.
pub(super) fn cancel_request_cmd(keys: &Keys, queue: &str, id: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("RPUSH");
    cmd.arg(keys.intake(queue))
        .arg(rpc_protocol::stream::cancel_request(id));
    cmd
}

/// The mover's pipeline for `queue`: wait up to `wait` for an element on
/// the intake (taking it to `moving`), then move everything there is;
/// elements over `max_message_bytes` are dead-lettered.
pub(super) fn move_pipeline(
    keys: &Keys,
    queue: &str,
    wait: Duration,
    max_message_bytes: usize,
) -> redis::Pipeline {
    let (moving, intake) = (keys.moving(queue), keys.intake(queue));
    let secs = format!("{}.{:03}", wait.as_millis() / 1000, wait.as_millis() % 1000);
    let mut blmove = redis::cmd("BLMOVE");
    blmove
        .arg(&intake)
        .arg(&moving)
        .arg("LEFT")
        .arg("RIGHT")
        .arg(secs);
    let mut pipe = redis::pipe();
    pipe.add_command(blmove)
        .add_command(move_invocation(
            keys,
            queue,
            &moving,
            &intake,
            max_message_bytes,
        ))
        .ignore_errors();
    pipe
}

/// `EVALSHA intake.lua` for `queue`.
fn move_invocation(
    keys: &Keys,
    queue: &str,
    moving: &str,
    intake: &str,
    max_message_bytes: usize,
) -> redis::Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(intake_script().get_hash())
        .arg(7)
        .arg(moving)
        .arg(intake)
        .arg(keys.jobs(queue))
        .arg(keys.schedule(queue))
        .arg(keys.scheduled(queue))
        .arg(keys.cancelled(queue))
        .arg(keys.dead(queue))
        .arg(MOVE_COUNT)
        .arg(MOVE_BYTES)
        .arg(CANCEL_MEMORY.as_millis() as u64)
        .arg(MAX_ID_BYTES)
        .arg(max_message_bytes.max(1))
        .arg(DEAD_LETTER_CAP);
    cmd
}

/// What one call of `intake.lua` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Moved {
    pub(crate) messages: usize,
    pub(crate) cancels: usize,
    pub(crate) refused: usize,
    /// Elements dead-lettered for being over the message size limit.
    pub(crate) dead_lettered: usize,
    /// Redis refused to add a message (it stays on the intake).
    pub(crate) error: Option<String>,
}

impl Moved {
    /// How many elements the call took off the lists.
    pub(crate) fn elements(&self) -> usize {
        self.messages + self.cancels + self.refused + self.dead_lettered
    }
}

/// Reads `intake.lua`'s answer, `{moved, cancels, refused, error, dead}`:
/// `None` unless every part is there and believable (counts of at most
/// what one call may take, an error that is text).
pub(super) fn parse_moved(reply: &Value) -> Option<Moved> {
    let Value::Array(parts) = reply else {
        return None;
    };
    if parts.len() != 5 {
        return None;
    }
    // Each list gives at most MOVE_COUNT elements to one call.
    let count = |i: usize| {
        let n = as_int(parts.get(i)?)?;
        usize::try_from(n).ok().filter(|n| *n <= 2 * MOVE_COUNT)
    };
    let error = match parts.get(3)? {
        Value::Nil => None,
        v => Some(as_string(v)?)
            .filter(|e| !e.is_empty())
            .map(|e| e.chars().take(ERROR_CHARS).collect()),
    };
    let moved = Moved {
        messages: count(0)?,
        cancels: count(1)?,
        refused: count(2)?,
        dead_lettered: count(4)?,
        error,
    };
    (moved.elements() <= 2 * MOVE_COUNT).then_some(moved)
}

/// What the mover makes of one call's answer for `queue`: how many
/// elements it took, or the error that stopped it (what was not moved
/// waits for the next call).
pub(super) fn report(queue: &str, moved: &Moved, max_message_bytes: usize) -> Result<usize, Error> {
    if moved.refused > 0 {
        tracing::warn!(
            queue,
            refused = moved.refused,
            "ignored cancellation requests whose call id is not 1 to {MAX_ID_BYTES} bytes"
        );
    }
    if moved.dead_lettered > 0 {
        tracing::warn!(
            queue,
            dead_lettered = moved.dead_lettered,
            "dead-lettered intake elements over the message limit of {max_message_bytes} bytes"
        );
    }
    if let Some(error) = &moved.error {
        // Left on the intake (out of memory, say): the next turn tries again.
        return Err(Error::Broker(format!(
            "moving the intake of `{queue}` onto its stream was refused: {error}"
        )));
    }
    Ok(moved.elements())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(parts: Vec<Value>) -> Value {
        Value::Array(parts)
    }

    #[test]
    fn an_answer_of_the_documented_shape_is_read() {
        let reply = answer(vec![
            Value::Int(3),
            Value::Int(1),
            Value::Int(0),
            Value::BulkString(Vec::new()),
            Value::Int(2),
        ]);
        let moved = parse_moved(&reply).expect("read");
        assert_eq!(
            moved,
            Moved {
                messages: 3,
                cancels: 1,
                refused: 0,
                dead_lettered: 2,
                error: None
            }
        );
        assert_eq!(moved.elements(), 6);
    }

    #[test]
    fn an_answer_that_is_not_believable_is_refused() {
        let ok = || {
            vec![
                Value::Int(1),
                Value::Int(0),
                Value::Int(0),
                Value::BulkString(b"OOM".to_vec()),
                Value::Int(0),
            ]
        };
        assert_eq!(
            parse_moved(&answer(ok())).and_then(|m| m.error),
            Some("OOM".to_owned())
        );
        let mut short = ok();
        short.pop();
        let mut negative = ok();
        negative[4] = Value::Int(-1);
        let mut huge = ok();
        huge[0] = Value::Int(i64::MAX);
        let mut too_many = ok();
        too_many[0] = Value::Int(MOVE_COUNT as i64 * 2);
        too_many[4] = Value::Int(1);
        let mut not_text = ok();
        not_text[3] = Value::Int(7);
        let mut not_utf8 = ok();
        not_utf8[3] = Value::BulkString(vec![0xff, 0xfe]);
        for bad in [short, negative, huge, too_many, not_text, not_utf8] {
            assert_eq!(parse_moved(&answer(bad.clone())), None, "{bad:?}");
        }
        assert_eq!(parse_moved(&Value::Int(1)), None);
        let mut long_error = ok();
        long_error[3] = Value::BulkString(vec![b'e'; 100_000]);
        let error = parse_moved(&answer(long_error)).and_then(|m| m.error);
        assert_eq!(error.map(|e| e.len()), Some(ERROR_CHARS));
    }
}
