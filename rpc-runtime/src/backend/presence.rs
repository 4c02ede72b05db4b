//! Workers that say they are alive: the broker side of heartbeats.
//!
//! A worker writes its beat ([`WorkerBeat`]) every few seconds under a key
//! that expires, and its id into each of its services' registries with the
//! time of the beat; an operator writes a [`WorkerControl`] that the worker
//! reads back with its next beat. Tools read the registries and the beats
//! through [`Inspector::workers`](crate::Inspector::workers), the worker's
//! janitor reads who is live before it forgets consumers. Both brokers
//! implement it (docs/PROTOCOL.md, "Workers").

use async_trait::async_trait;
use rpc_protocol::worker::{WorkerBeat, WorkerControl};

use crate::error::Error;

/// One entry of a service's registry: a worker id and the time of its last
/// beat (ms, Redis's clock as the worker saw it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The worker's id.
    pub id: String,
    /// When it last beat.
    pub last_beat_ms: u64,
}

/// Heartbeats and the operator's controls.
#[async_trait]
pub trait Presence: Send + Sync + 'static {
    /// Writes `beat`: the beat key with a TTL of `beat.ttl_ms`, the
    /// worker's entry in each of `beat.services`' registries (trimming
    /// entries older than the registry's retention), and returns what an
    /// operator asked of this worker, if anything.
    async fn beat(&self, beat: &WorkerBeat) -> Result<Option<WorkerControl>, Error>;

    /// Removes the beat of a worker that stops for good; its registry
    /// entries stay, as when it was last seen.
    async fn unregister(&self, worker_id: &str) -> Result<(), Error>;

    /// Up to `max` entries of `service`'s registry, the latest beat first;
    /// empty for an unknown service.
    async fn registered(&self, service: &str, max: usize) -> Result<Vec<Registered>, Error>;

    /// The beats of `ids` as stored (`None` for a worker whose beat
    /// expired), unchecked: read them with [`WorkerBeat::decode`].
    async fn beats(&self, ids: &[String]) -> Result<Vec<Option<Vec<u8>>>, Error>;

    /// Asks worker `id` to be quiet or stop (read by its next beat; the
    /// request expires after a day if no worker reads it).
    async fn set_control(&self, worker_id: &str, control: WorkerControl) -> Result<(), Error>;
}
