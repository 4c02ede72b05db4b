//! A queue as the memory broker's inspection reads it: the streams of all
//! its priority lanes (`lanes.rs`) folded into one, with the dead letters
//! they share, so that every figure and list of `inspection.rs` counts
//! every lane's calls and no lane shows as a service of its own.
//!
//! Tokens are numbered across the whole broker, so the lanes' jobs merge
//! by token into the order they were added, and a token names one job
//! whatever lane holds it. A lane's own name (`Q^p`) reads that lane
//! alone, with its queue's dead letters.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use super::lanes::lane_free;
use super::state::{entry_number, Lease, Queue, Ready, State};
use crate::backend::control::DeadLetter;
use crate::backend::inspection::figures::{ConsumerStats, ServiceStats};
use crate::backend::inspection::lanes::LaneDepth;

/// The dead letters of a queue with no entry of its own yet.
static NO_DEAD_LETTERS: VecDeque<DeadLetter> = VecDeque::new();

/// The lanes of one queue that exist, read together.
pub(super) struct ServiceView<'a> {
    /// Most urgent first.
    lanes: Vec<&'a Queue>,
    /// The queue's dead letters, shared by its lanes.
    pub(super) dead: &'a VecDeque<DeadLetter>,
    /// The calls ready in each of the five lanes (`lane_depths.rs`).
    depths: Vec<LaneDepth>,
}

impl State {
    /// `service`'s lanes read together; `None` when none of them exists.
    pub(super) fn view(&self, service: &str) -> Option<ServiceView<'_>> {
        let lanes = self.lanes(service);
        if lanes.is_empty() {
            return None;
        }
        Some(ServiceView {
            lanes,
            dead: self.dead_letters(service).unwrap_or(&NO_DEAD_LETTERS),
            depths: self.lane_depths(service),
        })
    }

    /// Whether `service` is known: a lane of it exists, or calls wait on
    /// its schedule.
    pub(super) fn knows(&self, service: &str) -> bool {
        !self.lanes(service).is_empty()
            || self
                .scheduled
                .get(lane_free(service))
                .is_some_and(|s| !s.is_empty())
    }
}

impl<'a> ServiceView<'a> {
    /// The queued jobs of every lane, oldest token first.
    pub(super) fn ready(&self) -> Vec<&'a Ready> {
        let mut ready: Vec<&Ready> = self.lanes.iter().flat_map(|q| q.ready.iter()).collect();
        ready.sort_by_key(|r| r.token);
        ready
    }

    /// The leased jobs of every lane, by token (Redis lists pending
    /// entries by id).
    pub(super) fn leased(&self) -> Vec<(u64, &'a Lease)> {
        let mut leased: Vec<(u64, &Lease)> = self
            .lanes
            .iter()
            .flat_map(|q| q.leased.iter().map(|(n, l)| (*n, l)))
            .collect();
        leased.sort_by_key(|(n, _)| *n);
        leased
    }

    /// The lease on the job of entry number `n`, whichever lane holds it.
    pub(super) fn lease(&self, n: u64) -> Option<&'a Lease> {
        self.lanes.iter().find_map(|q| q.leased.get(&n))
    }

    /// A queued or leased job by token: its message.
    pub(super) fn job_message(&self, token: &str) -> Option<&'a [u8]> {
        let n = entry_number(token)?;
        if let Some(lease) = self.lease(n) {
            return Some(&lease.payload);
        }
        self.lanes
            .iter()
            .find_map(|q| q.ready.iter().find(|r| r.token == n))
            .map(|r| r.payload.as_slice())
    }

    /// A dead letter by token.
    pub(super) fn dead_letter(&self, token: &str) -> Option<&'a DeadLetter> {
        self.dead.iter().find(|d| d.token == token)
    }

    /// The figures of the queue: its lanes' sums, each consumer once
    /// (holding the leases it holds in any lane, idle since it last read
    /// any).
    pub(super) fn stats(&self, service: &str) -> ServiceStats {
        let now = Instant::now();
        let leased = self.leased();
        let mut seen: HashMap<&str, Instant> = HashMap::new();
        for (name, at) in self.lanes.iter().flat_map(|q| q.consumers.iter()) {
            let latest = seen.entry(name.as_str()).or_insert(*at);
            *latest = (*latest).max(*at);
        }
        let mut consumers: Vec<ConsumerStats> = seen
            .into_iter()
            .map(|(name, at)| ConsumerStats {
                name: name.to_owned(),
                pending: leased.iter().filter(|(_, l)| l.consumer == name).count() as u64,
                idle: now.duration_since(at),
                inactive: None,
            })
            .collect();
        consumers.sort_by(|a, b| a.name.cmp(&b.name));
        let queued: usize = self.lanes.iter().map(|q| q.ready.len()).sum();
        let now_ms = rpc_protocol::time::unix_ms(SystemTime::now());
        let oldest = leased.iter().map(|(_, l)| l.enqueued_ms).min();
        ServiceStats {
            service: service.to_owned(),
            shards: 1,
            queued: queued as u64,
            lanes: self.depths.clone(),
            leased: leased.len() as u64,
            dead_letters: self.dead.len() as u64,
            stream_length: (queued + leased.len()) as u64,
            entries_added: Some(self.lanes.iter().map(|q| q.added).sum()),
            consumers,
            oldest_leased_age: oldest.map(|at| Duration::from_millis(now_ms.saturating_sub(at))),
        }
    }
}
