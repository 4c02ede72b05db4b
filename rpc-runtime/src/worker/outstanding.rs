//! Completions in flight: a stopping worker waits until every job it
//! finished has had its completion written (or given up).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Completions in flight, so that a stopping worker waits for them.
#[derive(Default)]
pub(super) struct Outstanding {
    count: AtomicUsize,
    idle: Notify,
}

/// One completion in flight; dropping it says it is over.
pub(super) struct OutstandingGuard(Arc<Outstanding>);

impl Outstanding {
    pub(super) fn enter(self: &Arc<Self>) -> OutstandingGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        OutstandingGuard(self.clone())
    }

    /// Waits until no completion is in flight.
    pub(super) async fn wait_idle(&self) {
        loop {
            let idle = self.idle.notified();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }
}

impl Drop for OutstandingGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}
