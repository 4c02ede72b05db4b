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

use rpc_protocol::Keys;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::{RedisError, Script, Value};

use super::values::{as_int, as_string};
use super::FIELD;
use crate::backend::{Enqueue, CANCEL_MEMORY};
use rpc_protocol::limits::MAX_ID_BYTES;

/// Elements one mover call moves from each list at most.
const MOVE_COUNT: usize = 1_000;
/// Bytes of messages one mover call moves at most (at least one message).
const MOVE_BYTES: usize = 8 * 1024 * 1024;

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
        let mut cmd = redis::cmd("XADD");
        cmd.arg(key).arg("*").arg(FIELD).arg(payload);
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
/// the intake (taking it to `moving`), then move everything there is.
pub(super) fn move_pipeline(keys: &Keys, queue: &str, wait: Duration) -> redis::Pipeline {
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
        .add_command(move_invocation(keys, queue, &moving, &intake))
        .ignore_errors();
    pipe
}

/// `EVALSHA intake.lua` for `queue`.
pub(super) fn move_invocation(keys: &Keys, queue: &str, moving: &str, intake: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(intake_script().get_hash())
        .arg(6)
        .arg(moving)
        .arg(intake)
        .arg(keys.jobs(queue))
        .arg(keys.schedule(queue))
        .arg(keys.scheduled(queue))
        .arg(keys.cancelled(queue))
        .arg(MOVE_COUNT)
        .arg(MOVE_BYTES)
        .arg(CANCEL_MEMORY.as_millis() as u64)
        .arg(MAX_ID_BYTES);
    cmd
}

/// What one call of `intake.lua` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Moved {
    pub(crate) messages: usize,
    pub(crate) cancels: usize,
    pub(crate) refused: usize,
    /// Redis refused to add a message (it stays on the intake).
    pub(crate) error: Option<String>,
}

/// Reads `intake.lua`'s answer.
pub(super) fn parse_moved(reply: &Value) -> Option<Moved> {
    let Value::Array(parts) = reply else {
        return None;
    };
    let int = |i: usize| parts.get(i).and_then(as_int).map(|n| n.max(0) as usize);
    Some(Moved {
        messages: int(0)?,
        cancels: int(1)?,
        refused: int(2)?,
        error: parts.get(3).and_then(as_string).filter(|e| !e.is_empty()),
    })
}
