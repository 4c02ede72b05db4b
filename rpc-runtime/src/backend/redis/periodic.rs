//! Periodic jobs on Redis: a worker offers each tick through
//! `scripts/tick.lua`, which enqueues it on the jobs stream only if it is
//! newer than the last tick recorded, atomically, so N workers enqueue each
//! tick once.
//!
//! Keys, under the service's hash tag so the script touches one slot (it
//! works on a Cluster): `P:{Service}:periodic` (hash: periodic job name ->
//! definition JSON, with the next tick) and `P:{Service}:periodic:last`
//! (hash: name -> the last tick enqueued, ms since the epoch).

use redis::{Script, Value};

use super::RedisBackend;
use crate::backend::{TickAnswer, TickOutcome, TickRequest};
use crate::error::Error;
use crate::periodic::{read_states, PeriodicState};
use rpc_protocol::periodic::parse_last;

fn tick_script() -> &'static Script {
    super::scripts::compiled(&rpc_protocol::scripts::TICK)
}

impl RedisBackend {
    /// Offers one tick to `tick.lua`.
    pub(super) async fn offer_tick(
        &self,
        queue: &str,
        tick: &TickRequest<'_>,
    ) -> Result<TickAnswer, Error> {
        let mut invocation = tick_script().prepare_invoke();
        invocation
            .key(self.keys.periodic(queue))
            .key(self.keys.periodic_last(queue))
            .key(self.keys.jobs(queue))
            .arg(tick.name)
            .arg(tick.tick_ms)
            .arg(tick.mode.as_str())
            .arg(tick.message)
            .arg(tick.definition);
        let answer = self.commands.invoke(&invocation).await?;
        tick_answer(answer).ok_or_else(|| {
            Error::Broker(
                "unexpected answer to tick.lua (is it the script of this version?)".into(),
            )
        })
    }

    /// Reads both hashes of `queue`.
    pub(super) async fn list_periodic(&self, queue: &str) -> Result<Vec<PeriodicState>, Error> {
        let definitions: Vec<(Vec<u8>, Vec<u8>)> = self
            .commands
            .query(redis::cmd("HGETALL").arg(self.keys.periodic(queue)))
            .await?;
        let lasts: Vec<(Vec<u8>, Vec<u8>)> = self
            .commands
            .query(redis::cmd("HGETALL").arg(self.keys.periodic_last(queue)))
            .await?;
        Ok(read_states(queue, definitions, lasts))
    }
}

/// `{outcome, now_ms, previous}` as the script answers.
fn tick_answer(answer: Value) -> Option<TickAnswer> {
    let Value::Array(parts) = answer else {
        return None;
    };
    let text = |v: &Value| match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        _ => None,
    };
    let [outcome, now, previous] = parts.as_slice() else {
        return None;
    };
    let outcome = TickOutcome::parse(&text(outcome)?)?;
    let Value::Int(now) = now else {
        return None;
    };
    let previous = text(previous)?;
    let previous_ms = parse_last(&previous);
    let unreadable_previous = (previous_ms.is_none() && !previous.is_empty())
        .then(|| String::from_utf8_lossy(&previous).into_owned());
    Some(TickAnswer {
        outcome,
        broker_now_ms: (*now).max(0) as u64,
        previous_ms,
        unreadable_previous,
    })
}
