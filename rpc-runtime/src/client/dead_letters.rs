//! A service's dead letters seen from a client: listed, and replayed onto
//! the queue with a fresh attempt count (Sidekiq's "retry from the dead
//! set").

use super::handle::Client;

use crate::backend::DeadLetter;
use crate::call::JobId;
use crate::error::Error;

impl Client {
    /// Lists up to `max` dead letters of a service, oldest first.
    pub async fn dead_letters(&self, service: &str, max: usize) -> Result<Vec<DeadLetter>, Error> {
        self.inner.backend.dead_letters(service, max).await
    }

    /// Puts a dead-lettered job back on its queue (the lane of its priority)
    /// with a fresh attempt count and no deadline (the old one has passed),
    /// then removes the dead letter. Returns the call id. Sidekiq's "retry from the dead set".
    pub async fn replay_dead_letter(
        &self,
        service: &str,
        dead: &DeadLetter,
    ) -> Result<JobId, Error> {
        let replay = rpc_protocol::job::for_replay(&dead.payload).ok_or_else(|| Error::Codec {
            what: format!("replay dead letter {}", dead.token),
            reason: "it is not a readable job message (it was dead-lettered as unreadable)"
                .to_owned(),
        })?;
        // Back onto the lane of its priority (rpc_protocol::priority).
        let lane = rpc_protocol::priority::lane_queue(service, replay.priority);
        // Enqueue first, then delete: a crash in between leaves a duplicate
        // dead letter, never a lost job.
        self.inner.backend.push_job(&lane, &replay.message).await?;
        self.inner
            .backend
            .remove_dead_letter(service, &dead.token)
            .await?;
        Ok(JobId::from(replay.id))
    }
}
