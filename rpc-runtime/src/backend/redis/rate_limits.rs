//! Rate limits on Redis: one `rate_limit.lua` call per limited start, on
//! the service's own slot (`P:{S}:rate[:<job>]`, `P:{S}:turns[:<job>]`),
//! so the limit is one state for the whole fleet, also on a Cluster and
//! for a sharded service.
//!
//! Only workers run it (the worker ACL role); a client never touches a
//! limit. The limit's state is written by the script alone, and what it
//! finds there that it did not write is replaced, never trusted.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use redis::{Script, Value};

use super::completion::classify;
use super::connect::RedisBackend;
use crate::backend::rate_limits::{
    in_listed_order, last_second, Limit, RateAnswer, RateLimits, RateScope, RateState,
    ServiceRateLimit, MAX_RATE_LIMITS_LISTED,
};
use crate::backend::CompleteError;
use crate::error::Error;

fn rate_script() -> &'static Script {
    super::scripts::compiled(&rpc_protocol::scripts::RATE_LIMIT)
}

#[async_trait]
impl RateLimits for RedisBackend {
    async fn admit_rate(
        &self,
        service: &str,
        id: &str,
        limits: &[Limit<'_>],
        longest: Duration,
    ) -> Result<RateAnswer, Error> {
        let Some(first) = limits.first() else {
            return Ok(RateAnswer::Start);
        };
        let mut invocation = rate_script().prepare_invoke();
        invocation
            .key(self.keys.rate_turns(service, first.scope.job()))
            .arg(id)
            .arg(u64::try_from(longest.as_micros()).unwrap_or(u64::MAX));
        for limit in limits {
            invocation
                .key(self.keys.rate(service, limit.scope.job()))
                .arg(limit.rate.interval_us())
                .arg(limit.rate.tolerance_us())
                .arg(limit.rate.to_string());
        }
        let answer = match self.commands.invoke(&invocation).await {
            Ok(answer) => answer,
            Err(e) => {
                return match classify(&e) {
                    CompleteError::Refused { reason, .. } => Ok(RateAnswer::Refused(reason)),
                    CompleteError::Transient(reason) => Err(Error::Broker(reason)),
                }
            }
        };
        read_answer(&answer).ok_or_else(|| {
            Error::Broker(format!("unexpected answer to rate_limit.lua: {answer:?}"))
        })
    }

    async fn rate_state(&self, service: &str, scope: RateScope<'_>) -> Result<RateState, Error> {
        let mut hmget = redis::cmd("HMGET");
        hmget.arg(self.keys.rate(service, scope.job())).arg(&[
            "rate",
            "allowed",
            "waited",
            "second",
            "this_second",
            "last_second",
        ]);
        let mut zcard = redis::cmd("ZCARD");
        zcard.arg(self.keys.rate_turns(service, scope.job()));
        // A key of another type (garbage) reads as an unused limit.
        let fields: Vec<Option<String>> = self.commands.query(&hmget).await.unwrap_or_default();
        let waiting: u64 = self.commands.query(&zcard).await.unwrap_or(0);
        // This machine's clock: the count is a second's, a skew of a
        // second shows the one before.
        let now_s = rpc_protocol::time::unix_ms(std::time::SystemTime::now()) / 1_000;
        let number = |i: usize| -> u64 {
            fields
                .get(i)
                .and_then(|f| f.as_deref())
                .and_then(|f| f.parse().ok())
                .unwrap_or(0)
        };
        Ok(RateState {
            rate: fields
                .first()
                .cloned()
                .flatten()
                .map(|r| r.chars().take(80).collect()),
            allowed: number(1),
            waited: number(2),
            waiting,
            last_second: last_second(now_s, number(3), number(4), number(5)),
        })
    }

    async fn rate_limits(&self, service: &str) -> Result<Vec<ServiceRateLimit>, Error> {
        // `SCAN ... TYPE hash`: a key of another type is no limit. All of
        // them are in the service's slot, so on a Cluster one master is
        // scanned.
        let found = super::scan::scan_slot(
            &self.commands,
            &self.keys.rate(service, None),
            &self.keys.rate_pattern(service),
            Some("hash"),
            MAX_RATE_LIMITS_LISTED + 1,
        )
        .await
        .map_err(|e| Error::Broker(format!("list the rate limits of {service}: {e}")))?;
        let jobs = found
            .iter()
            .filter_map(|key| self.keys.job_of_rate(service, key))
            .map(|job| job.map(str::to_owned))
            .collect();
        self.states_of(service, jobs).await
    }

    async fn every_rate_limit(&self) -> Result<BTreeMap<String, Vec<ServiceRateLimit>>, Error> {
        let found = super::scan::scan_all(&self.commands, &self.keys.rates_pattern(), "hash")
            .await
            .map_err(|e| Error::Broker(format!("list the rate limits: {e}")))?;
        let mut jobs: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
        for (service, job) in found.iter().filter_map(|key| self.keys.rate_of(key)) {
            jobs.entry(service.to_owned())
                .or_default()
                .push(job.map(str::to_owned));
        }
        let mut out = BTreeMap::new();
        for (service, jobs) in jobs {
            let limits = self.states_of(&service, jobs).await?;
            out.insert(service, limits);
        }
        Ok(out)
    }
}

impl RedisBackend {
    /// The state of each of `jobs`' limits of `service`, listed in order.
    async fn states_of(
        &self,
        service: &str,
        jobs: Vec<Option<String>>,
    ) -> Result<Vec<ServiceRateLimit>, Error> {
        let mut out = Vec::new();
        for job in in_listed_order(jobs) {
            let scope = job.as_deref().map_or(RateScope::Service, RateScope::Job);
            let state = self.rate_state(service, scope).await?;
            out.push(ServiceRateLimit { job, state });
        }
        Ok(out)
    }
}

/// `{code, µs}` from the script: 0 start, 1 a turn, 2 too late.
fn read_answer(answer: &Value) -> Option<RateAnswer> {
    let Value::Array(parts) = answer else {
        return None;
    };
    let [Value::Int(code), Value::Int(us)] = parts.as_slice() else {
        return None;
    };
    let wait = Duration::from_micros(u64::try_from(*us).ok()?);
    match code {
        0 => Some(RateAnswer::Start),
        1 => Some(RateAnswer::Turn(wait)),
        2 => Some(RateAnswer::TooLate(wait)),
        _ => None,
    }
}
