//! The dashboard's own samples of every service's counts, taken on a timer,
//! so the overview can draw the last minutes (queued, leased, jobs in and
//! out per second) without anything else in the system keeping history.
//!
//! Rates come from counters Redis keeps per stream: `entries-added` (jobs
//! in) and the group's `entries-read` (jobs handed to workers: out). The
//! difference between two samples over the time between them is the rate;
//! a counter that went backwards (the stream was recreated) starts over.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use crate::queue_reader::ServiceStats;
use crate::state::AppState;

/// One service's counts at one moment.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: SystemTime,
    pub queued: u64,
    pub leased: u64,
    pub dead_letters: u64,
    pub consumers: usize,
    pub added: Option<u64>,
    pub read: Option<u64>,
}

impl Sample {
    fn of(stats: &ServiceStats, at: SystemTime) -> Sample {
        Sample {
            at,
            queued: stats.queued,
            leased: stats.leased,
            dead_letters: stats.dead_letters,
            consumers: stats.consumers.len(),
            added: stats.entries_added,
            read: stats.entries_read,
        }
    }
}

/// Jobs per second in and out between two samples.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    pub at: Option<SystemTime>,
    pub jobs_in: f64,
    pub jobs_out: f64,
}

/// The samples kept, per service, oldest first.
#[derive(Debug, Default)]
pub struct History {
    pub services: BTreeMap<String, VecDeque<Sample>>,
    /// When the last round of samples failed, and why.
    pub last_error: Option<String>,
    pub last_round: Option<SystemTime>,
}

impl History {
    /// The rates between consecutive samples of a service, oldest first.
    pub fn rates(&self, service: &str) -> Vec<Rates> {
        let Some(samples) = self.services.get(service) else {
            return Vec::new();
        };
        samples
            .iter()
            .zip(samples.iter().skip(1))
            .map(|(a, b)| {
                let secs =
                    b.at.duration_since(a.at)
                        .unwrap_or_default()
                        .as_secs_f64()
                        .max(0.001);
                let per_sec = |x: Option<u64>, y: Option<u64>| match (x, y) {
                    (Some(x), Some(y)) if y >= x => (y - x) as f64 / secs,
                    _ => 0.0,
                };
                Rates {
                    at: Some(b.at),
                    jobs_in: per_sec(a.added, b.added),
                    jobs_out: per_sec(a.read, b.read),
                }
            })
            .collect()
    }

    fn record(&mut self, stats: &[ServiceStats], at: SystemTime, keep: usize) {
        for s in stats {
            let samples = self.services.entry(s.service.clone()).or_default();
            samples.push_back(Sample::of(s, at));
            while samples.len() > keep {
                samples.pop_front();
            }
        }
        self.last_round = Some(at);
        self.last_error = None;
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
        // A panic while holding the lock cannot leave the history half
        // written in a way that matters for drawing charts.
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
                sampler.sample_once(&state, keep).await;
            }
        })
    }

    /// One round: every known service's counts, or the error that stopped it.
    pub async fn sample_once(&self, state: &AppState, keep: usize) {
        match state.all_service_stats().await {
            Ok(stats) => self.history().record(&stats, SystemTime::now(), keep),
            Err(e) => self.history().last_error = Some(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_counter_differences_over_time() {
        // 10 jobs added and 4 read over 2 s is 5 in/s and 2 out/s.
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let stats = |added, read| ServiceStats {
            service: "S".into(),
            entries_added: Some(added),
            entries_read: Some(read),
            ..ServiceStats::default()
        };
        let mut history = History::default();
        history.record(&[stats(100, 50)], t0, 10);
        history.record(&[stats(110, 54)], t0 + Duration::from_secs(2), 10);
        // A recreated stream starts its counters over: no negative rate.
        history.record(&[stats(3, 1)], t0 + Duration::from_secs(4), 10);
        let rates = history.rates("S");
        assert_eq!((rates[0].jobs_in, rates[0].jobs_out), (5.0, 2.0));
        assert_eq!((rates[1].jobs_in, rates[1].jobs_out), (0.0, 0.0));
        history.record(&[stats(4, 2)], t0 + Duration::from_secs(6), 2);
        assert_eq!(
            history.services["S"].len(),
            2,
            "only `keep` samples are kept"
        );
    }
}
