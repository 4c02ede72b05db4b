//! Progress in memory: the newest value per call, with when it expires,
//! as Redis keeps `P:progress:{call}`.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use rpc_protocol::progress::MAX_VALUE_BYTES;

use super::registry::MemoryBackend;
use crate::backend::progress::ProgressStore;
use crate::error::Error;

#[async_trait]
impl ProgressStore for MemoryBackend {
    async fn write_progress(&self, id: &str, value: &[u8], ttl: Duration) -> Result<(), Error> {
        let now = Instant::now();
        let mut state = self.state();
        state.progress.retain(|_, (_, expires)| *expires > now);
        state
            .progress
            .insert(id.to_owned(), (value.to_vec(), now + ttl));
        Ok(())
    }

    async fn read_progress(&self, id: &str) -> Result<Option<Vec<u8>>, Error> {
        let now = Instant::now();
        let state = self.state();
        Ok(state
            .progress
            .get(id)
            .filter(|(_, expires)| *expires > now)
            .map(|(value, _)| value[..value.len().min(MAX_VALUE_BYTES + 1)].to_vec()))
    }
}
