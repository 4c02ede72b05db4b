//! The busiest group keys of a service (docs/PROTOCOL.md, "Per-key
//! concurrency"): for each job and key, the calls holding one of its slots
//! now and the calls parked until one is free, so a tenant that hogs its
//! slots, or one whose calls pile up, shows.
//!
//! Group keys are the application's (a tenant, a customer): there may be
//! millions, so nothing here is one line or one series per key. The
//! broker is asked about at most [`MAX_GROUP_KEYS_VISITED`] keys of a
//! service per look (the answer says when it stopped there), and views
//! show the [`TOP_GROUP_KEYS`] busiest of those.
//!
//! What is found where a key's state belongs but is not what the workers
//! write (a key of another type) is read as unreadable, never an error.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use serde::Serialize;

/// The most group keys of one service the broker is asked about per look:
/// past them the look stops and says so ([`BusyGroupKeys::capped`]).
pub const MAX_GROUP_KEYS_VISITED: usize = 1_000;

/// How many group keys of a service the views show: the busiest.
pub const TOP_GROUP_KEYS: usize = 10;

/// One job's group key and its load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupKeyLoad {
    /// The job (its wire name inside the service).
    pub job: String,
    /// The group key.
    pub key: String,
    /// Calls holding one of its slots now (slots not lapsed); `None` when
    /// its running set could not be read.
    pub running: Option<u64>,
    /// Calls parked until a slot is free; `None` when its waiting list
    /// could not be read.
    pub waiting: Option<u64>,
}

impl GroupKeyLoad {
    /// Whether its state could not be read, in part or whole.
    pub fn is_unreadable(&self) -> bool {
        self.running.is_none() || self.waiting.is_none()
    }

    /// Whether it has nothing to show: no call running or waiting, and
    /// readable (a set whose slots all lapsed, not yet swept).
    fn is_idle(&self) -> bool {
        self.running == Some(0) && self.waiting == Some(0)
    }
}

/// The group keys of one queue or service, as one look found them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BusyGroupKeys {
    /// The keys: as a broker's look read them, every one in no order; as
    /// [`merge`](Self::merge) keeps them (what the
    /// [`Inspector`](crate::Inspector) answers), the busiest first: most
    /// running, then most waiting, then by job and key, unreadable counts
    /// as none.
    pub keys: Vec<GroupKeyLoad>,
    /// How many keys the look read.
    pub visited: u64,
    /// Calls holding a slot, over every key the look read (not only those
    /// listed).
    pub running: u64,
    /// Calls parked, over every key the look read.
    pub waiting: u64,
    /// Keys the look read with calls parked: keys whose every slot is
    /// taken, at their limit (a call parks only then).
    pub at_limit: u64,
    /// Whether the look stopped at its bound
    /// ([`MAX_GROUP_KEYS_VISITED`] per service) before it saw every key:
    /// busier keys than those listed may exist.
    pub capped: bool,
}

impl BusyGroupKeys {
    /// What one look read: `keys`, all of them (the totals count them
    /// all), `capped` when it stopped at its bound.
    pub fn read(keys: Vec<GroupKeyLoad>, capped: bool) -> BusyGroupKeys {
        let sum = |f: fn(&GroupKeyLoad) -> Option<u64>| {
            keys.iter().filter_map(f).fold(0u64, u64::saturating_add)
        };
        BusyGroupKeys {
            visited: keys.len() as u64,
            running: sum(|k| k.running),
            waiting: sum(|k| k.waiting),
            at_limit: keys.iter().filter(|k| k.waiting > Some(0)).count() as u64,
            keys,
            capped,
        }
    }

    /// The keys of `parts` (one service's shards, or one look cut by
    /// queue) together: the same job and key in two parts add up, and
    /// only the `top` busiest are kept (idle keys left out); the totals
    /// are the parts' added up.
    pub fn merge(parts: impl IntoIterator<Item = BusyGroupKeys>, top: usize) -> BusyGroupKeys {
        let mut by_key: BTreeMap<(String, String), GroupKeyLoad> = BTreeMap::new();
        let mut merged = BusyGroupKeys::default();
        for part in parts {
            merged.visited = merged.visited.saturating_add(part.visited);
            merged.running = merged.running.saturating_add(part.running);
            merged.waiting = merged.waiting.saturating_add(part.waiting);
            merged.at_limit = merged.at_limit.saturating_add(part.at_limit);
            merged.capped |= part.capped;
            for load in part.keys {
                match by_key.get_mut(&(load.job.clone(), load.key.clone())) {
                    Some(seen) => {
                        seen.running = seen.running.zip(load.running).map(|(a, b)| a + b);
                        seen.waiting = seen.waiting.zip(load.waiting).map(|(a, b)| a + b);
                    }
                    None => {
                        by_key.insert((load.job.clone(), load.key.clone()), load);
                    }
                }
            }
        }
        let mut keys: Vec<GroupKeyLoad> = by_key.into_values().filter(|k| !k.is_idle()).collect();
        // Stable: ties stay in job and key order.
        keys.sort_by_key(|k| {
            (
                Reverse(k.running.unwrap_or(0)),
                Reverse(k.waiting.unwrap_or(0)),
            )
        });
        keys.truncate(top);
        merged.keys = keys;
        merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(job: &str, key: &str, running: Option<u64>, waiting: Option<u64>) -> GroupKeyLoad {
        GroupKeyLoad {
            job: job.into(),
            key: key.into(),
            running,
            waiting,
        }
    }

    #[test]
    fn the_busiest_keys_of_all_parts_are_kept_idle_ones_left_out() {
        let a = BusyGroupKeys::read(
            vec![
                load("j", "t1", Some(1), Some(0)),
                load("j", "t2", Some(2), Some(5)),
                load("j", "idle", Some(0), Some(0)),
            ],
            false,
        );
        let b = BusyGroupKeys::read(
            vec![
                load("j", "t1", Some(2), Some(1)),
                load("j", "junk", None, Some(0)),
                load("k", "t2", Some(2), Some(9)),
            ],
            true,
        );
        assert_eq!((b.running, b.waiting, b.at_limit), (4, 10, 2));
        let top = BusyGroupKeys::merge([a, b], 3);
        let names: Vec<_> = top.keys.iter().map(|k| (&*k.job, &*k.key)).collect();
        assert_eq!(names, [("j", "t1"), ("k", "t2"), ("j", "t2")]);
        assert_eq!(top.keys[0].running, Some(3));
        assert_eq!((top.visited, top.capped), (6, true));
        assert_eq!((top.running, top.waiting, top.at_limit), (7, 15, 3));
        let all = BusyGroupKeys::merge([top.clone()], 10);
        assert_eq!(all.keys.len(), 3);
    }
}
