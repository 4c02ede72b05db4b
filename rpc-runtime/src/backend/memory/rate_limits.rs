//! Rate limits in memory: the GCRA of `rate_limit.lua`, step for step, on
//! this process's clock, so `memory://` limits and gives turns as Redis
//! does.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::lanes::lane_free;
use super::registry::MemoryBackend;
use crate::backend::rate_limits::{
    in_listed_order, last_second, Limit, RateAnswer, RateLimits, RateScope, RateState,
    ServiceRateLimit,
};
use crate::error::Error;

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A limit's state is its service's, shared by the service's priority
/// lanes (`lanes.rs`).
fn key(service: &str, scope: RateScope<'_>) -> (String, Option<String>) {
    (
        lane_free(service).to_owned(),
        scope.job().map(str::to_owned),
    )
}

#[async_trait]
impl RateLimits for MemoryBackend {
    async fn admit_rate(
        &self,
        service: &str,
        id: &str,
        limits: &[Limit<'_>],
        longest: Duration,
    ) -> Result<RateAnswer, Error> {
        if limits.is_empty() {
            return Ok(RateAnswer::Start);
        }
        let now = now_us();
        let second = now / 1_000_000;
        let mut state = self.state();
        let keys: Vec<_> = limits.iter().map(|l| key(service, l.scope)).collect();
        for k in &keys {
            state.rates.entry(k.clone()).or_default();
        }
        let turns = &mut state.rates.get_mut(&keys[0]).expect("made above").turns;
        if let Some(&turn) = turns.get(id) {
            if turn > now {
                return Ok(RateAnswer::Turn(Duration::from_micros(turn - now)));
            }
            turns.remove(id);
            for k in &keys {
                state.rates.get_mut(k).expect("made above").started(second);
            }
            return Ok(RateAnswer::Start);
        }
        turns.retain(|_, at| *at + 3_600_000_000 > now);
        let mut at = now;
        for (k, limit) in keys.iter().zip(limits) {
            let tat = state.rates[k].tat.max(now);
            at = at.max(tat.saturating_sub(limit.rate.tolerance_us()));
        }
        if at - now > longest.as_micros() as u64 {
            return Ok(RateAnswer::TooLate(Duration::from_micros(at - now)));
        }
        for (k, limit) in keys.iter().zip(limits) {
            let limiter = state.rates.get_mut(k).expect("made above");
            limiter.tat = limiter.tat.max(now).max(at) + limit.rate.interval_us();
            limiter.rate = Some(limit.rate.to_string());
        }
        if at <= now {
            for k in &keys {
                state.rates.get_mut(k).expect("made above").started(second);
            }
            return Ok(RateAnswer::Start);
        }
        state
            .rates
            .get_mut(&keys[0])
            .expect("made above")
            .turns
            .insert(id.to_owned(), at);
        for k in &keys {
            state.rates.get_mut(k).expect("made above").waited += 1;
        }
        Ok(RateAnswer::Turn(Duration::from_micros(at - now)))
    }

    async fn rate_state(&self, service: &str, scope: RateScope<'_>) -> Result<RateState, Error> {
        let second = now_us() / 1_000_000;
        let state = self.state();
        let Some(l) = state.rates.get(&key(service, scope)) else {
            return Ok(RateState::default());
        };
        Ok(RateState {
            rate: l.rate.clone(),
            allowed: l.allowed,
            waited: l.waited,
            waiting: l.turns.len() as u64,
            last_second: last_second(second, l.second, l.this_second, l.last_second),
        })
    }

    async fn rate_limits(&self, service: &str) -> Result<Vec<ServiceRateLimit>, Error> {
        let jobs = self
            .state()
            .rates
            .keys()
            .filter(|(s, _)| s == lane_free(service))
            .map(|(_, job)| job.clone())
            .collect();
        let mut out = Vec::new();
        for job in in_listed_order(jobs) {
            let scope = job.as_deref().map_or(RateScope::Service, RateScope::Job);
            let state = self.rate_state(service, scope).await?;
            out.push(ServiceRateLimit { job, state });
        }
        Ok(out)
    }

    async fn every_rate_limit(&self) -> Result<BTreeMap<String, Vec<ServiceRateLimit>>, Error> {
        let services: BTreeSet<String> =
            self.state().rates.keys().map(|(s, _)| s.clone()).collect();
        let mut out = BTreeMap::new();
        for service in services {
            let limits = self.rate_limits(&service).await?;
            out.insert(service, limits);
        }
        Ok(out)
    }
}
