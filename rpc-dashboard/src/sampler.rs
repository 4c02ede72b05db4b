//! The dashboard's own samples of every service's counts, taken on a timer,
//! so the overview can draw the last minutes (queued, jobs in and out per
//! second) without anything else in the system keeping history.
//!
//! Rates come from two samples of the same service
//! ([`rpc_runtime::inspect::Rates::between`]): jobs in from the stream's
//! `entries-added` counter, jobs out from what was added minus how much the
//! stream grew (workers delete what they finish).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use rpc_runtime::inspect::{Rates, ServiceStats};

use crate::state::AppState;

/// The samples kept, per service, oldest first.
#[derive(Debug, Default)]
pub struct History {
    pub services: BTreeMap<String, VecDeque<(SystemTime, ServiceStats)>>,
}

impl History {
    /// The rates between consecutive samples of a service, oldest first;
    /// an unknown rate (Redis 6, a recreated stream) counts as 0.
    pub fn rates(&self, service: &str) -> Vec<(f64, f64)> {
        let Some(samples) = self.services.get(service) else {
            return Vec::new();
        };
        samples
            .iter()
            .zip(samples.iter().skip(1))
            .map(|((t0, a), (t1, b))| {
                let elapsed = t1.duration_since(*t0).unwrap_or_default();
                let rates = Rates::between(a, b, elapsed);
                (
                    rates.in_per_sec.unwrap_or(0.0),
                    rates.out_per_sec.unwrap_or(0.0),
                )
            })
            .collect()
    }

    /// The latest sample of each service.
    pub fn latest(&self) -> Vec<ServiceStats> {
        self.services
            .values()
            .filter_map(|samples| samples.back().map(|(_, s)| s.clone()))
            .collect()
    }

    fn record(&mut self, stats: Vec<ServiceStats>, at: SystemTime, keep: usize) {
        for s in stats {
            let samples = self.services.entry(s.service.clone()).or_default();
            samples.push_back((at, s));
            while samples.len() > keep {
                samples.pop_front();
            }
        }
    }
}

/// The shared history and the task that fills it.
#[derive(Clone, Default)]
pub struct Sampler {
    history: Arc<Mutex<History>>,
}

impl Sampler {
    /// The history, to read.
    pub fn history(&self) -> MutexGuard<'_, History> {
        // Nothing panics while holding the lock; if something did, the
        // history is still whole samples, good enough to draw.
        self.history.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a round of samples every `every`, keeping `keep` per service,
    /// until the returned task is aborted.
    pub fn spawn(
        &self,
        state: AppState,
        every: Duration,
        keep: usize,
    ) -> tokio::task::JoinHandle<()> {
        let sampler = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // A failed round leaves a gap; the pages say why Redis is down.
                if let Ok(stats) = state.all_service_stats().await {
                    sampler.history().record(stats, SystemTime::now(), keep);
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(added: u64, length: u64) -> ServiceStats {
        ServiceStats {
            service: "S".into(),
            shards: 1,
            queued: length,
            lanes: rpc_runtime::inspect::lanes_of(length, &[]),
            leased: 0,
            dead_letters: 0,
            stream_length: length,
            entries_added: Some(added),
            consumers: Vec::new(),
            oldest_leased_age: None,
        }
    }

    #[test]
    fn charts_get_one_rate_per_pair_of_samples_and_keep_the_last_few() {
        // 10 jobs added over 2 s while the stream grew by 6: 5 in/s, 2 out/s.
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut history = History::default();
        history.record(vec![stats(100, 0)], t0, 10);
        history.record(vec![stats(110, 6)], t0 + Duration::from_secs(2), 10);
        // A recreated stream starts its counter over: no rate, drawn as 0.
        history.record(vec![stats(3, 3)], t0 + Duration::from_secs(4), 10);
        assert_eq!(history.rates("S"), [(5.0, 2.0), (0.0, 0.0)]);
        history.record(vec![stats(4, 3)], t0 + Duration::from_secs(6), 2);
        assert_eq!(
            history.services["S"].len(),
            2,
            "only `keep` samples are kept"
        );
        assert_eq!(history.latest()[0].entries_added, Some(4));
    }
}
