//! The group keys of queues on Redis (docs/PROTOCOL.md, "Per-key
//! concurrency"): found by `SCAN MATCH P:{Q}:group:*:running` (one queue,
//! on the master of its slot) or `P:{*}:group:*:running` (every queue, in
//! one pass over every master), then read a queue at a time in one
//! pipeline: `ZCOUNT` of the running set above Redis's clock (slots not
//! lapsed) and `LLEN` of the waiting list.
//!
//! The scan asks for keys of any type, so a running set of another type
//! is found and shown as unreadable (its `ZCOUNT` fails, alone: the
//! pipeline keeps each command's error to itself) rather than hidden. A
//! score of any size counts as whatever it says: a slot lapsing in a
//! thousand years is running.

use std::collections::BTreeMap;

use redis::{FromRedisValue, Value};

use super::super::scan;
use super::view::RedisView;
use crate::backend::inspection::group_keys::{BusyGroupKeys, GroupKeyLoad, MAX_GROUP_KEYS_VISITED};
use crate::error::Error;

/// Keys read per pipeline: a round trip each, small enough replies.
const KEYS_PER_PIPELINE: usize = 200;

impl RedisView {
    /// The group keys of queue `queue`, at most `max_visited` read.
    pub(crate) async fn group_keys(
        &self,
        queue: &str,
        max_visited: usize,
    ) -> Result<BusyGroupKeys, Error> {
        let found = scan::scan_slot(
            &self.connection,
            &self.keys.groups_waiting(queue),
            &self.keys.group_running_pattern(queue),
            None,
            max_visited.saturating_add(1),
        )
        .await
        .map_err(|e| self.broker(e))?;
        let groups: Vec<(String, String)> = found
            .iter()
            .filter_map(|k| self.keys.group_of_running(k))
            .map(|(_, job, key)| (job.to_owned(), key.to_owned()))
            .collect();
        self.read_groups(queue, groups, max_visited).await
    }

    /// The group keys of every queue, by queue, in one scan that stops
    /// after about `max_visited` keys.
    pub(crate) async fn every_group_key(
        &self,
        max_visited: usize,
    ) -> Result<BTreeMap<String, BusyGroupKeys>, Error> {
        let found = scan::scan_all_at_most(
            &self.connection,
            &self.keys.groups_running_pattern(),
            None,
            max_visited.saturating_add(1),
        )
        .await
        .map_err(|e| self.broker(e))?;
        let stopped = found.len() > max_visited;
        let mut by_queue: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for (queue, job, key) in found.iter().filter_map(|k| self.keys.group_of_running(k)) {
            by_queue
                .entry(queue.to_owned())
                .or_default()
                .push((job.to_owned(), key.to_owned()));
        }
        let mut out = BTreeMap::new();
        for (queue, groups) in by_queue {
            let mut read = self
                .read_groups(&queue, groups, MAX_GROUP_KEYS_VISITED)
                .await?;
            read.capped |= stopped;
            out.insert(queue, read);
        }
        Ok(out)
    }

    /// The load of `groups` (job, key) of `queue`, the first `max` of
    /// them (`capped` when there were more).
    async fn read_groups(
        &self,
        queue: &str,
        mut groups: Vec<(String, String)>,
        max: usize,
    ) -> Result<BusyGroupKeys, Error> {
        // SCAN may return a key twice.
        groups.sort();
        groups.dedup();
        let capped = groups.len() > max;
        groups.truncate(max);
        let now = self.server_time_ms().await?;
        let mut keys = Vec::with_capacity(groups.len());
        for chunk in groups.chunks(KEYS_PER_PIPELINE) {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for (job, key) in chunk {
                pipe.cmd("ZCOUNT")
                    .arg(self.keys.group_running(queue, job, key))
                    .arg(format!("({now}"))
                    .arg("+inf")
                    .cmd("LLEN")
                    .arg(self.keys.group_waiting(queue, job, key));
            }
            let replies: Vec<Value> = self.pipeline(&pipe).await?;
            let mut replies = replies.into_iter();
            for (job, key) in chunk {
                let count = |v: Option<Value>| v.and_then(|v| u64::from_redis_value(v).ok());
                keys.push(GroupKeyLoad {
                    job: job.clone(),
                    key: key.clone(),
                    running: count(replies.next()),
                    waiting: count(replies.next()),
                });
            }
        }
        Ok(BusyGroupKeys::read(keys, capped))
    }
}
