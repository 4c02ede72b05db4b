//! The dead-letter stream: listing and removing dead letters.

use redis::Value;

use super::values::as_string;
use super::{RedisBackend, FIELD};
use crate::backend::DeadLetter;
use crate::error::Error;

impl RedisBackend {
    pub(super) async fn list_dead_letters(
        &self,
        queue: &str,
        max: usize,
    ) -> Result<Vec<DeadLetter>, Error> {
        let v: Value = self
            .commands
            .query(
                redis::cmd("XRANGE")
                    .arg(self.dead_key(queue))
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    // COUNT must fit an i64; the stream holds ~10,000 at most.
                    .arg(max.min(1_000_000)),
            )
            .await?;
        let mut out = Vec::new();
        if let Value::Array(entries) = v {
            for entry in entries {
                let Value::Array(parts) = entry else { continue };
                let (Some(token), Some(Value::Array(fields))) =
                    (parts.first().and_then(as_string), parts.get(1))
                else {
                    continue;
                };
                let mut reason = String::new();
                let mut payload = Vec::new();
                for pair in fields.chunks(2) {
                    match (pair.first().and_then(as_string).as_deref(), pair.get(1)) {
                        (Some(rpc_protocol::stream::REASON), Some(v)) => {
                            reason = as_string(v).unwrap_or_default()
                        }
                        (Some(FIELD), Some(Value::BulkString(b))) => payload = b.clone(),
                        _ => {}
                    }
                }
                out.push(DeadLetter {
                    token,
                    reason,
                    payload,
                });
            }
        }
        Ok(out)
    }

    pub(super) async fn delete_dead_letter(&self, queue: &str, token: &str) -> Result<bool, Error> {
        let removed: i64 = self
            .commands
            .query(redis::cmd("XDEL").arg(self.dead_key(queue)).arg(token))
            .await?;
        Ok(removed > 0)
    }
}
