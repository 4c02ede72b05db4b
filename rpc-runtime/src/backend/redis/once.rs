//! Idempotency keys: of the calls sent with one key, the first a worker
//! takes claims it and runs; the others are answered with the holder's id
//! (or a conflict, for other parameters) and never run.
//!
//! The claim is made by the worker, not the client: a client role that
//! could write these keys could plant one naming its own call for another
//! caller's key (and so hand that caller its result), and the fingerprint
//! a worker computes from the parameters it will run cannot be forged.
//! One command claims atomically: `SET P:{Service}:once:<key> "<call id>
//! <fingerprint>" NX PX <ttl> GET` sets the key if it is free and answers
//! what it held otherwise, so of any number of racing workers exactly one
//! claims it.

use std::time::Duration;

use redis::Value;

use super::RedisBackend;
use crate::backend::OnceClaim;
use crate::error::Error;

impl RedisBackend {
    /// Claims `key` for call `id` unless another call holds it.
    pub(super) async fn claim(
        &self,
        queue: &str,
        key: &str,
        id: &str,
        fingerprint: &str,
        ttl: Duration,
    ) -> Result<OnceClaim, Error> {
        let mut set = redis::cmd("SET");
        set.arg(self.keys.once(queue, key))
            .arg(format!("{id} {fingerprint}"))
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .arg("GET");
        let held = match self.commands.query::<Value>(&set).await? {
            Value::Nil => return Ok(OnceClaim::Claimed),
            Value::BulkString(held) => String::from_utf8_lossy(&held).into_owned(),
            Value::SimpleString(held) => held,
            other => {
                return Err(Error::Broker(format!(
                    "unexpected answer to SET ... NX GET: {other:?}"
                )))
            }
        };
        Ok(read_holder(&held, id, fingerprint))
    }
}

/// What a held key's value `<call id> <fingerprint>` means for call `id`.
/// A value not of that form (garbage) holds the key for a call that can
/// never be attached to: a conflict, with the value as the holder.
fn read_holder(held: &str, id: &str, fingerprint: &str) -> OnceClaim {
    let Some((holder, theirs)) = held.split_once(' ') else {
        return OnceClaim::Held {
            id: held.chars().take(256).collect(),
            same: false,
        };
    };
    let same = theirs == fingerprint;
    // A redelivery of the call that claimed the key (its worker died
    // after the claim): it is still this call's.
    if holder == id && same {
        return OnceClaim::Claimed;
    }
    OnceClaim::Held {
        id: holder.to_owned(),
        same,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_key_is_read_as_its_holder_or_as_a_conflict() {
        assert_eq!(read_holder("c1 ab", "c1", "ab"), OnceClaim::Claimed);
        assert_eq!(
            read_holder("c1 ab", "c2", "ab"),
            OnceClaim::Held {
                id: "c1".into(),
                same: true
            }
        );
        assert_eq!(
            read_holder("c1 ab", "c1", "cd"),
            OnceClaim::Held {
                id: "c1".into(),
                same: false
            }
        );
        assert_eq!(
            read_holder("garbage", "c1", "ab"),
            OnceClaim::Held {
                id: "garbage".into(),
                same: false
            }
        );
    }
}
