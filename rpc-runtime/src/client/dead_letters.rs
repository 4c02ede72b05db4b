//! A service's dead letters seen from a client: listed, and replayed onto
//! the queue with a fresh attempt count (Sidekiq's "retry from the dead
//! set").

use super::handle::Client;

use crate::backend::DeadLetter;
use crate::call::JobId;
use crate::error::Error;

impl Client {
    /// Lists up to `max` dead letters of one queue, oldest first: a
    /// service's own name for an unsharded service; a sharded service
    /// keeps a dead-letter stream per shard, so call this for each of its
    /// queues ([`Inspector::shard_queues`](crate::Inspector::shard_queues) names them, as `rpc dead-letters`
    /// and the dashboard do), or only shard 0's are listed.
    pub async fn dead_letters(&self, queue: &str, max: usize) -> Result<Vec<DeadLetter>, Error> {
        self.inner.backend.dead_letters(queue, max).await
    }

    /// Puts a dead-lettered job back on its queue (the lane of its priority)
    /// with a fresh attempt count and no deadline (the old one has passed),
    /// then removes the dead letter. Returns the call id. Sidekiq's "retry from the dead set".
    /// `queue` is the one [`Client::dead_letters`] listed it from (of a
    /// sharded service, its shard's queue).
    pub async fn replay_dead_letter(&self, queue: &str, dead: &DeadLetter) -> Result<JobId, Error> {
        let replay = rpc_protocol::job::for_replay(&dead.payload).ok_or_else(|| Error::Codec {
            what: format!("replay dead letter {}", dead.token),
            reason: "it is not a readable job message (it was dead-lettered as unreadable)"
                .to_owned(),
        })?;
        // Back onto the lane of its priority (rpc_protocol::priority).
        let lane = rpc_protocol::priority::lane_queue(queue, replay.priority);
        // Enqueue first, then delete: a crash in between leaves a duplicate
        // dead letter, never a lost job.
        self.inner.backend.push_job(&lane, &replay.message).await?;
        self.inner
            .backend
            .remove_dead_letter(queue, &dead.token)
            .await?;
        Ok(JobId::from(replay.id))
    }
}
