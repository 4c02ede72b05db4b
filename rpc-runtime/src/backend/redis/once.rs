//! Idempotency keys: a call sent with a key is enqueued only if no call
//! holds the key; duplicates attach to the call that does (same id, same
//! result). `scripts/send_once.lua` checks the key, sets it and enqueues
//! (or schedules) in one atomic step, so of any number of racing senders
//! exactly one call is enqueued.
//!
//! Key: `P:{Service}:once:<key>`, a string `<call id> <fingerprint>` that
//! expires after the key's TTL; under the service's hash tag, so the
//! script touches one slot with the stream and the schedule.

use std::sync::OnceLock;
use std::time::Duration;

use redis::{Script, Value};

use super::schedule::{schedule_key, scheduled_key};
use super::values::{as_int, as_string};
use super::{jobs_key, RedisBackend};
use crate::backend::{OnceKey, OnceSent};
use crate::error::Error;

/// `send_once.lua`'s source.
pub(super) const SEND_ONCE_SOURCE: &str = include_str!("scripts/send_once.lua");

fn send_once_script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(SEND_ONCE_SOURCE))
}

/// The idempotency key `key` of `queue`.
pub(super) fn once_key(prefix: &str, queue: &str, key: &str) -> String {
    format!("{prefix}:{{{queue}}}:once:{key}")
}

impl RedisBackend {
    /// Sends a call under an idempotency key (see `scripts/send_once.lua`).
    pub(super) async fn send_once(
        &self,
        queue: &str,
        once: &OnceKey,
        id: &str,
        payload: &[u8],
        delay: Option<Duration>,
    ) -> Result<OnceSent, Error> {
        let mut invocation = send_once_script().prepare_invoke();
        invocation
            .key(once_key(&self.prefix, queue, &once.key))
            .key(jobs_key(&self.prefix, queue))
            .key(schedule_key(&self.prefix, queue))
            .key(scheduled_key(&self.prefix, queue))
            .arg(id)
            .arg(&once.fingerprint)
            .arg(payload)
            .arg(once.ttl.as_millis().max(1) as u64)
            .arg(delay.map_or(-1, |d| d.as_millis() as i64));
        let reply = self.commands.invoke(&invocation).await?;
        let parts = match &reply {
            Value::Array(parts) => parts,
            _ => return Err(unexpected(&reply)),
        };
        let (Some(sent), Some(holder), Some(same)) = (
            parts.first().and_then(as_int),
            parts.get(1).and_then(as_string),
            parts.get(2).and_then(as_int),
        ) else {
            return Err(unexpected(&reply));
        };
        // A retried first try (the connection failed after Redis ran it)
        // finds the key held by this very call: that is a send.
        if sent == 1 || (holder == id && same == 1) {
            return Ok(OnceSent::New);
        }
        Ok(OnceSent::Held {
            id: holder,
            same: same == 1,
        })
    }
}

fn unexpected(reply: &Value) -> Error {
    Error::Broker(format!("unexpected answer to send_once.lua: {reply:?}"))
}
