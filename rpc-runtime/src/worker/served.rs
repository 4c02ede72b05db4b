//! The queues a worker reads: every shard of every mounted service, a
//! list that only grows (when an operator raises a service's shard count,
//! `shard_watch.rs` adds the new shards while the worker runs), with a
//! flag per queue the taker sets when it takes a job there (so the
//! lifecycle loop knows the queue is busy without a round trip).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// The queues read, and their "a job was taken" flags, in one order.
#[derive(Clone)]
pub(super) struct QueueList {
    pub(super) names: Arc<[String]>,
    pub(super) taken: Arc<[AtomicBool]>,
}

impl QueueList {
    fn new(names: Vec<String>) -> QueueList {
        QueueList {
            taken: names.iter().map(|_| AtomicBool::new(false)).collect(),
            names: names.into(),
        }
    }
}

pub(super) struct Served {
    list: RwLock<QueueList>,
}

impl Served {
    pub(super) fn new(names: Vec<String>) -> Served {
        Served {
            list: RwLock::new(QueueList::new(names)),
        }
    }

    /// The queues now (a cheap clone: two reference counts).
    pub(super) fn list(&self) -> QueueList {
        self.list.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The queue names now.
    pub(super) fn names(&self) -> Arc<[String]> {
        self.list().names
    }

    /// Marks `queue` as having had a job taken (one relaxed store).
    pub(super) fn note_taken(&self, queue: &str) {
        let list = self.list.read().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = list.names.iter().position(|q| q == queue) {
            list.taken[i].store(true, Ordering::Relaxed);
        }
    }

    /// Adds the queues of `more` not read yet, at the end; returns them.
    pub(super) fn add(&self, more: &[String]) -> Vec<String> {
        let mut list = self.list.write().unwrap_or_else(|e| e.into_inner());
        let new: Vec<String> = more
            .iter()
            .filter(|q| !list.names.contains(q))
            .cloned()
            .collect();
        if !new.is_empty() {
            let names: Vec<String> = list.names.iter().chain(&new).cloned().collect();
            let grown = QueueList::new(names);
            // Flags already set stay set.
            for (i, flag) in list.taken.iter().enumerate() {
                grown.taken[i].store(flag.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            *list = grown;
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_grows_at_the_end_and_keeps_its_flags() {
        let served = Served::new(vec!["S".into(), "S~1".into()]);
        served.note_taken("S~1");
        let new = served.add(&["S".into(), "S~1".into(), "S~2".into()]);
        assert_eq!(new, ["S~2"]);
        let list = served.list();
        assert_eq!(&*list.names, ["S", "S~1", "S~2"]);
        assert!(list.taken[1].load(Ordering::Relaxed));
        assert!(!list.taken[0].load(Ordering::Relaxed));
        assert!(served.add(&["S".into()]).is_empty());
    }
}
