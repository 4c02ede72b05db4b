//! The per-key limits a worker applies (its deploy-time overrides), the
//! group slots its running jobs hold, and when it last saw keyed calls of
//! each queue: the state `group_admit.rs` keeps between steps. A file of
//! its own so that `shared.rs` can hold it without importing the steps
//! that use `Shared`.

use std::collections::HashMap;

use rpc_protocol::limits::MAX_GROUP_LIMIT;
use tokio::time::Instant;

use crate::error::Error;
use crate::sync::lock;

/// A slot this worker holds for a running job.
pub(super) struct Held {
    pub(super) id: String,
    pub(super) job: String,
    pub(super) key: String,
    pub(super) limit: u32,
}

/// The per-key limits this worker applies, and the slots it holds.
#[derive(Default)]
pub(super) struct GroupLimits {
    /// `Service.job` -> its per-key limit (deploy-time overrides).
    limits: HashMap<String, u32>,
    /// Slots held by running jobs, by (queue, delivery token).
    pub(super) held: std::sync::Mutex<HashMap<(String, String), Held>>,
    /// When each queue's groups were last swept.
    pub(super) swept: std::sync::Mutex<HashMap<String, Instant>>,
    /// When this worker last saw a keyed call of each queue.
    pub(super) keyed_seen: std::sync::Mutex<HashMap<String, Instant>>,
}

impl GroupLimits {
    /// The limits `limits` sets (`Service.job` -> K), each checked.
    pub(super) fn new(limits: HashMap<String, u32>) -> Result<GroupLimits, Error> {
        for (job, limit) in &limits {
            if !(1..=MAX_GROUP_LIMIT).contains(limit) {
                return Err(Error::config(format_args!(
                    "the per-key limit of `{job}` must be 1 to {MAX_GROUP_LIMIT} ({limit} given)"
                )));
            }
            if job
                .split_once('.')
                .is_none_or(|(s, j)| s.is_empty() || j.is_empty())
            {
                return Err(Error::config(format_args!(
                    "a per-key limit names its job as `Service.job` ({job:?} given)"
                )));
            }
        }
        Ok(GroupLimits {
            limits,
            ..GroupLimits::default()
        })
    }

    /// Notes a keyed call of `queue`: its groups are swept often a while.
    pub(super) fn saw_keyed(&self, queue: &str) {
        let now = Instant::now();
        let mut seen = lock(&self.keyed_seen);
        match seen.get_mut(queue) {
            Some(at) => *at = now,
            None => {
                seen.insert(queue.to_owned(), now);
            }
        }
    }

    /// The per-key limit of job `Service.job` on this worker: its
    /// override, else the schema's (`schema`), else 1.
    pub(super) fn limit_of(&self, service: &str, job: &str, schema: Option<u32>) -> u32 {
        self.limits
            .get(&format!("{service}.{job}"))
            .copied()
            .or(schema)
            .unwrap_or(1)
            .clamp(1, MAX_GROUP_LIMIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_out_of_range_or_misnamed_are_refused() {
        let one = |job: &str, k| GroupLimits::new(HashMap::from([(job.to_owned(), k)]));
        assert!(one("S.j", 1).is_ok());
        assert!(one("S.j", MAX_GROUP_LIMIT).is_ok());
        assert!(one("S.j", 0).is_err());
        assert!(one("S.j", MAX_GROUP_LIMIT + 1).is_err());
        assert!(one("j", 2).is_err());
        let limits = one("S.j", 4).unwrap();
        assert_eq!(limits.limit_of("S", "j", Some(9)), 4, "the override wins");
        assert_eq!(
            limits.limit_of("S", "other", Some(9)),
            9,
            "then the schema's"
        );
        assert_eq!(limits.limit_of("S", "other", None), 1);
    }
}
