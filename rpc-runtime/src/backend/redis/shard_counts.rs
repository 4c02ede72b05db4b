//! The shard count on Redis: `HMGET` for a client (whose ACL role may run
//! no script), `scripts/shards.lua` for a worker or an operator, which
//! record what they serve or set; `shards_found.rs` for the shards that
//! hold work whatever the count says.

use async_trait::async_trait;
use redis::Value;
use rpc_protocol::shards::{is_count, FIELD_COUNT, FIELD_SEEN, MAX_SHARDS};

use super::connect::RedisBackend;
use super::values::as_int;
use crate::backend::shard_counts::{ShardCount, ShardCounts, ShardOp};
use crate::error::Error;

fn shards_script() -> &'static redis::Script {
    super::scripts::compiled(&rpc_protocol::scripts::SHARDS)
}

/// A field's value if it is a valid shard count.
fn valid(v: Option<i64>) -> Option<u32> {
    v.and_then(|n| u32::try_from(n).ok())
        .filter(|&n| is_count(n))
}

#[async_trait]
impl ShardCounts for RedisBackend {
    async fn shard_count(&self, service: &str, op: ShardOp) -> Result<ShardCount, Error> {
        let key = self.keys.shards(service);
        let (verb, n) = match op {
            ShardOp::Read => {
                let mut cmd = redis::cmd("HMGET");
                cmd.arg(&key).arg(FIELD_COUNT).arg(FIELD_SEEN);
                return match self.commands.query::<Value>(&cmd).await {
                    Ok(Value::Array(fields)) => Ok(ShardCount {
                        count: valid(fields.first().and_then(as_int)),
                        seen: valid(fields.get(1).and_then(as_int)),
                    }),
                    // Garbage in the key (another type): as if unset.
                    Err(e) if e.code() == Some("WRONGTYPE") => Ok(ShardCount::default()),
                    Ok(_) => Ok(ShardCount::default()),
                    Err(e) => Err(e.into()),
                };
            }
            ShardOp::Serve(n) => ("serve", n),
            ShardOp::Set(n) => ("set", n),
        };
        let mut invocation = shards_script().prepare_invoke();
        invocation.key(&key).arg(verb).arg(n).arg(MAX_SHARDS);
        let reply = self.commands.invoke(&invocation).await?;
        let Value::Array(parts) = &reply else {
            return Err(Error::Broker(format!(
                "unexpected answer to shards.lua: {reply:?}"
            )));
        };
        Ok(ShardCount {
            count: valid(parts.first().and_then(as_int)),
            seen: valid(parts.get(1).and_then(as_int)),
        })
    }

    async fn shards_with_work(&self, service: &str, from: u32) -> Result<Vec<u32>, Error> {
        Ok(
            super::shards_found::shards_with_work(&self.commands, &self.keys, service, from)
                .await?,
        )
    }
}
