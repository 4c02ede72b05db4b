//! Progress on Redis: `SET P:progress:{call} <json> PX <ttl>` by the
//! worker (the newest replaces the last; `%W~P:progress:*` in the worker's
//! ACL role), `GETRANGE ... 0 <limit>` by a watcher, so a value far over
//! the limit never leaves Redis whole (`%R~P:progress:{*` for a client, its
//! tenant's calls only for a tenant's).

use std::time::Duration;

use async_trait::async_trait;
use rpc_protocol::progress::MAX_VALUE_BYTES;

use super::connect::RedisBackend;
use crate::backend::progress::ProgressStore;
use crate::error::Error;

#[async_trait]
impl ProgressStore for RedisBackend {
    async fn write_progress(&self, id: &str, value: &[u8], ttl: Duration) -> Result<(), Error> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let _: redis::Value = self
            .commands
            .query(
                redis::cmd("SET")
                    .arg(self.keys.progress(id))
                    .arg(value)
                    .arg("PX")
                    .arg(ms),
            )
            .await?;
        Ok(())
    }

    async fn read_progress(&self, id: &str) -> Result<Option<Vec<u8>>, Error> {
        // GETRANGE of a missing key is empty, as is an empty value: both
        // are "no progress".
        let value: Vec<u8> = match self
            .commands
            .query(
                redis::cmd("GETRANGE")
                    .arg(self.keys.progress(id))
                    .arg(0)
                    .arg(MAX_VALUE_BYTES),
            )
            .await
        {
            Ok(value) => value,
            // Something else planted there: not progress.
            Err(e) if e.code() == Some("WRONGTYPE") => {
                return Err(Error::Codec {
                    what: "read progress".to_owned(),
                    reason: "the progress key holds something other than a string".to_owned(),
                })
            }
            Err(e) => return Err(e.into()),
        };
        Ok((!value.is_empty()).then_some(value))
    }
}
