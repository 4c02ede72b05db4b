//! A call's progress on the broker: one value per call, the newest,
//! written by the worker running it and read by whoever watches it
//! (`rpc_protocol::progress` is the value; on Redis the key is
//! `P:progress:{call}`, in the call's slot, with a TTL).
//!
//! Kept apart from [`Queue`](super::Queue): only calls whose handlers
//! report progress ever touch it, so the plain call path sends nothing
//! more.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::Error;

/// Where calls' progress is kept.
#[async_trait]
pub trait ProgressStore: Send + Sync + 'static {
    /// Replaces call `id`'s progress with `value`, kept for `ttl`.
    async fn write_progress(&self, id: &str, value: &[u8], ttl: Duration) -> Result<(), Error>;

    /// Call `id`'s progress, if any: at most
    /// [`MAX_VALUE_BYTES`](rpc_protocol::progress::MAX_VALUE_BYTES) + 1
    /// bytes of it (longer is refused by the reader without reading the
    /// rest).
    async fn read_progress(&self, id: &str) -> Result<Option<Vec<u8>>, Error>;
}
