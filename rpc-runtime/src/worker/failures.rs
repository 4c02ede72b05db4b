//! Recording a failed attempt (retried, or answered with an error) in the
//! service's record of recent failures ([`Failures`](crate::backend::Failures)),
//! after its completion: stats for the dashboard, like the daily counts,
//! so a write the broker refuses is logged at debug and dropped; it never
//! fails the job nor holds its completion back. Dead letters are recorded
//! by their own stream.

use super::shared::Shared;
use crate::backend::Failure;

/// Adds `failure` to `queue`'s record; best effort.
pub(super) async fn record(shared: &Shared, queue: &str, failure: Failure) {
    if let Err(e) = shared.backend.record_failure(queue, &failure).await {
        tracing::debug!(queue, id = %failure.id, "a failed attempt was not recorded: {e}");
    }
}
