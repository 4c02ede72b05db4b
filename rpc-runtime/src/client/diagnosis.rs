//! Why a call timed out: after the timeout (never before: the call path
//! must not get slower), a few bounded reads of the broker say whether the
//! service is paused, has no live worker (and when one was last seen), or
//! is busy (queue length, oldest waiting job); the answer rides on
//! [`Error::Timeout`] as a [`TimeoutDiagnosis`].

use std::time::Duration;

use super::handle::Client;

use crate::error::{Error, TimeoutDiagnosis};
use crate::inspect::workers::service_health;

/// The longest the reads behind a diagnosis may take: the caller already
/// waited its timeout, and gets the error without one past this.
const DIAGNOSIS_BOUND: Duration = Duration::from_secs(1);

impl Client {
    /// `error` with a diagnosis of `service` when it is a timeout; any
    /// other error as it is.
    pub(super) async fn explain(&self, service: Option<&str>, error: Error) -> Error {
        let (
            Some(service),
            Error::Timeout {
                diagnosis: None, ..
            },
        ) = (service, &error)
        else {
            return error;
        };
        let backend = &*self.inner.backend;
        let Ok(health) =
            tokio::time::timeout(DIAGNOSIS_BOUND, service_health(backend, service)).await
        else {
            return error;
        };
        let Error::Timeout { job, id, after, .. } = error else {
            return error;
        };
        let ago = |ms: u64| Duration::from_millis(ms);
        Error::Timeout {
            job,
            id,
            after,
            diagnosis: Some(Box::new(TimeoutDiagnosis {
                service: health.service,
                paused: health.paused,
                live_workers: health.live_workers,
                quiet_workers: health.quiet_workers,
                last_seen_ago: health
                    .last_seen_ms
                    .map(|seen| ago(health.now_ms.saturating_sub(seen))),
                queued: health.queued,
                oldest_queued_age: health.oldest_queued_age_ms.map(ago),
            })),
        }
    }
}
