//! Rate limits on the broker: the one state every worker of the fleet
//! shares per limit, so "50/s" means 50 starts a second in all, not per
//! worker (Celery's `rate_limit` is per worker; this is not).
//!
//! A worker asks [`RateLimits::admit_rate`] before a rate-limited job's
//! handler runs. A call over its limit is given a turn (the first time
//! every limit allows it) and waits on the schedule until then; when it
//! comes back its turn is due and it starts without asking again. So a
//! backlog is spread one interval apart, never retried in a herd (the
//! failure Sidekiq's window limiter had), and waiting is no attempt.
//! docs/PROTOCOL.md, "Rate limits", is the normative description;
//! `rpc_protocol::rate` the grammar; on Redis it is `rate_limit.lua`.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use rpc_protocol::rate::RateLimit;

use crate::error::Error;

/// Which rate limit: a service's own (every job of it counts) or one job's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateScope<'a> {
    Service,
    Job(&'a str),
}

impl<'a> RateScope<'a> {
    /// The job, for a job's limit.
    pub fn job(self) -> Option<&'a str> {
        match self {
            RateScope::Service => None,
            RateScope::Job(job) => Some(job),
        }
    }
}

/// One limit a call must pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit<'a> {
    pub scope: RateScope<'a>,
    pub rate: RateLimit,
}

/// What [`RateLimits::admit_rate`] said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateAnswer {
    /// Start now.
    Start,
    /// Come back after this long: the call's turn (given now, or earlier).
    Turn(Duration),
    /// The first turn is this far away, later than the call may wait: none
    /// was given.
    TooLate(Duration),
    /// The broker refused to say, for good (asking again would get the
    /// same): why.
    Refused(String),
}

/// A limit's state as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct RateState {
    /// The limit as the workers last wrote it (`None`: never used).
    pub rate: Option<String>,
    /// Starts allowed in all.
    pub allowed: u64,
    /// Calls that were given a turn to wait for, in all.
    pub waited: u64,
    /// Calls holding a turn now (waiting on the schedule for it).
    pub waiting: u64,
    /// Starts in the last whole second.
    pub last_second: u64,
}

/// The most limits of one service [`RateLimits::rate_limits`] lists: far
/// more than a schema defines (one per job and one for the service), few
/// enough that a page, a table and the exporter's series stay bounded
/// whatever garbage the broker holds.
pub const MAX_RATE_LIMITS_LISTED: usize = 100;

/// One limit of a service and its state, as [`RateLimits::rate_limits`]
/// lists it.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct ServiceRateLimit {
    /// The job limited; `None` for the service's own limit (all its jobs).
    pub job: Option<String>,
    #[serde(flatten)]
    pub state: RateState,
}

/// Where the fleet's rate limits keep their state.
#[async_trait]
pub trait RateLimits: Send + Sync + 'static {
    /// Whether call `id` of `service` may start under `limits` (one or
    /// two: its job's, its service's); a call that must wait is given a
    /// turn no later than `longest` from now, or none.
    async fn admit_rate(
        &self,
        service: &str,
        id: &str,
        limits: &[Limit<'_>],
        longest: Duration,
    ) -> Result<RateAnswer, Error>;

    /// A limit's state, for operators.
    async fn rate_state(&self, service: &str, scope: RateScope<'_>) -> Result<RateState, Error>;

    /// Every limit of `service` that has state on the broker (used at
    /// least once), the service's own first, then the jobs' by name; at
    /// most [`MAX_RATE_LIMITS_LISTED`]. State that is not a limit's (a key
    /// of another type, fields that are not numbers) is left out or read
    /// as zeros, never an error.
    async fn rate_limits(&self, service: &str) -> Result<Vec<ServiceRateLimit>, Error>;

    /// [`RateLimits::rate_limits`] of every service that has any, by
    /// service, found in one pass (on Redis one `SCAN`, where asking each
    /// service would scan once per service): what the exporter reads at
    /// each scrape.
    async fn every_rate_limit(&self) -> Result<BTreeMap<String, Vec<ServiceRateLimit>>, Error>;
}

/// `limits` in the order [`RateLimits::rate_limits`] lists them, at most
/// [`MAX_RATE_LIMITS_LISTED`].
pub(crate) fn in_listed_order(mut jobs: Vec<Option<String>>) -> Vec<Option<String>> {
    // `None` (the service's own) sorts first.
    jobs.sort();
    jobs.dedup();
    jobs.truncate(MAX_RATE_LIMITS_LISTED);
    jobs
}

/// Starts in the last whole second before `now_second`, from a limit's
/// per-second counts (`second`: the second `this_second` counts).
pub(crate) fn last_second(now_second: u64, second: u64, this_second: u64, last: u64) -> u64 {
    if second == now_second {
        last
    } else if second + 1 == now_second {
        this_second
    } else {
        0
    }
}
