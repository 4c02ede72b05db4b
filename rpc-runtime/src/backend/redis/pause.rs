//! Pausing a service: a flag key that workers read on every lifecycle poll
//! (`scripts/poll.lua`) and, while it exists, take none of the service's
//! jobs. It lives in Redis, so a worker that starts later sees it too.
//!
//! Key: `P:{Service}:paused`, a string holding when it was paused (ms,
//! Redis's clock); no expiry: a pause lasts until a resume.

use super::RedisBackend;
use crate::error::Error;

impl RedisBackend {
    /// Sets or clears the pause flag; returns whether it changed.
    pub(super) async fn pause(&self, queue: &str, paused: bool) -> Result<bool, Error> {
        let key = self.keys.paused(queue);
        if paused {
            let now = rpc_protocol::time::unix_ms(std::time::SystemTime::now());
            let mut cmd = redis::cmd("SET");
            cmd.arg(&key).arg(now).arg("NX");
            let set: Option<String> = self.commands.query(&cmd).await?;
            Ok(set.is_some())
        } else {
            let removed: i64 = self.commands.query(redis::cmd("DEL").arg(&key)).await?;
            Ok(removed > 0)
        }
    }

    /// Whether the pause flag is set.
    pub(super) async fn paused(&self, queue: &str) -> Result<bool, Error> {
        let exists: i64 = self
            .commands
            .query(redis::cmd("EXISTS").arg(self.keys.paused(queue)))
            .await?;
        Ok(exists > 0)
    }
}
