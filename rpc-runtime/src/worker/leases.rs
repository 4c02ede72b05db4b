//! The table of leases this worker holds (the running jobs' deliveries,
//! per queue), which the janitor renews: touched twice per job, when it is
//! taken and when its completion is through.
//!
//! Hashed with foldhash rather than SipHash: hashing the queue and the
//! token was about 5% of a draining worker's instructions (callgrind).
//! The keys are this worker's queue names and the stream entry ids Redis
//! handed it, and the table never holds more than the jobs in flight
//! (about the concurrency), so colliding keys could at worst make a few
//! hundred entries slow to find; foldhash's per-process random seed makes
//! even that hard to arrange.

use std::collections::{HashMap, HashSet};

use crate::backend::Delivery;

/// The hasher of the table (randomly seeded once per process).
type FastHash = foldhash::fast::RandomState;

/// Leased tokens per queue.
pub(super) type Leases = HashMap<String, HashSet<String, FastHash>, FastHash>;

/// Records `delivery`'s lease; the queue name is copied only the first
/// time the queue holds a lease.
pub(super) fn hold(leases: &mut Leases, delivery: &Delivery) {
    match leases.get_mut(&delivery.queue) {
        Some(tokens) => {
            tokens.insert(delivery.token.clone());
        }
        None => {
            let mut tokens = HashSet::default();
            tokens.insert(delivery.token.clone());
            leases.insert(delivery.queue.clone(), tokens);
        }
    }
}

/// Forgets `delivery`'s lease (its job is completed or given up).
pub(super) fn forget(leases: &mut Leases, delivery: &Delivery) {
    if let Some(tokens) = leases.get_mut(&delivery.queue) {
        tokens.remove(&delivery.token);
    }
}
