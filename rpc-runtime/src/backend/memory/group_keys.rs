//! The group keys of a memory broker's queues, for the operator's view
//! (`inspection.rs`): each job and key's calls holding a slot now (slots
//! not lapsed on this process's clock) and parked, read under the lock,
//! bounded as on Redis.
//!
//! The broker keeps groups by (queue, job, key) as the worker named the
//! queue; a lane's name (`Q^p`) counts as its queue `Q`, whose group keys
//! every lane shares.

use std::collections::BTreeMap;
use std::time::SystemTime;

use rpc_protocol::priority::split_lane;

use super::state::{Group, State};
use crate::backend::inspection::group_keys::{BusyGroupKeys, GroupKeyLoad};

/// One group's load at `now_ms`.
fn load(job: &str, key: &str, group: &Group, now_ms: u64) -> GroupKeyLoad {
    GroupKeyLoad {
        job: job.to_owned(),
        key: key.to_owned(),
        running: Some(group.running.values().filter(|&&t| t > now_ms).count() as u64),
        waiting: Some(group.waiting.len() as u64),
    }
}

impl State {
    /// The group keys of every queue (of queue `only`, when given), by
    /// queue, at most `max_per_queue` read per queue and `max_visited` in
    /// all.
    pub(super) fn group_keys(
        &self,
        only: Option<&str>,
        max_per_queue: usize,
        max_visited: usize,
    ) -> BTreeMap<String, BusyGroupKeys> {
        let now_ms = rpc_protocol::time::unix_ms(SystemTime::now());
        let only = only.map(|q| split_lane(q).0);
        let mut found: Vec<(&str, &str, &str, &Group)> = self
            .groups
            .iter()
            .map(|((q, job, key), g)| (split_lane(q).0, job.as_str(), key.as_str(), g))
            .filter(|(q, ..)| only.is_none_or(|o| o == *q))
            .collect();
        // In a stable order, so a cut keeps the same keys look after look.
        found.sort_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
        let stopped = found.len() > max_visited;
        found.truncate(max_visited);
        let mut read: BTreeMap<&str, (Vec<GroupKeyLoad>, bool)> = BTreeMap::new();
        for (queue, job, key, group) in found {
            let (keys, capped) = read.entry(queue).or_default();
            if keys.len() >= max_per_queue {
                *capped = true;
                continue;
            }
            keys.push(load(job, key, group, now_ms));
        }
        read.into_iter()
            .map(|(queue, (keys, capped))| {
                (
                    queue.to_owned(),
                    BusyGroupKeys::read(keys, capped || stopped),
                )
            })
            .collect()
    }

    /// [`State::group_keys`] of queue `queue` alone.
    pub(super) fn group_keys_of(&self, queue: &str, max_visited: usize) -> BusyGroupKeys {
        let base = split_lane(queue).0;
        self.group_keys(Some(base), max_visited, max_visited.saturating_add(1))
            .remove(base)
            .unwrap_or_default()
    }
}
