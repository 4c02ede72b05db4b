//! A read-only view of the queues, for operators: `rpc stats`, `rpc top`,
//! `rpc scheduled`, the dashboard, and a worker's queue gauges.
//!
//! An [`Inspector`] is a broker seen through its
//! [`Inspection`](crate::backend::Inspection) capability (it derefs to
//! it), plus the few read-only questions other capabilities answer (a kept
//! result, a call's progress, the pause flag, the broker's clock). It
//! works on Redis and on `memory://` alike; it writes nothing, so it is
//! safe to point at a production Redis with the operator's read-only ACL
//! user (docs/SECURITY.md). Ages are measured against the broker's clock, and
//! [`human_time`] writes them (and due times) for people, the same in
//! every view. [`Inspector::workers`] lists the workers from their
//! heartbeats (`inspect/workers.rs`). A sharded service is one service
//! here, its figures and lists summed and merged over its shards
//! (`inspect/shards.rs`, `inspect/shard_lists.rs`).
//! [`Inspector::rate_limits`] lists a service's rate limits and their
//! state; [`Inspector::busy_group_keys`] its busiest group keys
//! (`inspect/busy_groups.rs`). A service's figures count its calls at
//! every priority, lane by lane in [`ServiceStats::lanes`].
//!
//! ```no_run
//! # async fn f() -> Result<(), rpc_runtime::Error> {
//! let inspector = rpc_runtime::Inspector::connect("redis://127.0.0.1:6379/", "rpc").await?;
//! for service in inspector.services().await? {
//!     if let Some(stats) = inspector.service_stats(&service).await? {
//!         println!("{service}: {} queued, {} leased", stats.queued, stats.leased);
//!     }
//! }
//! # Ok(()) }
//! ```

mod busy_groups;
pub mod human_time;
mod recent_scan;
mod shard_lists;
pub mod shards;
pub mod workers;

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::{connect, Broker, BrokerConfig, Enqueue, Inspection};
use crate::error::Error;

pub use self::workers::{Liveness, ServiceHealth, WorkerInfo};
pub use crate::backend::daily_counts::{last_days, utc_day, DailyCount};
pub use crate::backend::failures::{Failure, RecordedFailure};
pub use crate::backend::inspection::excerpts::{
    DeadLetterExcerpt, Excerpt, Found, Lease, LeasedExcerpt, MessageExcerpt, SearchPage, Stream,
    MAX_ENTRIES_PER_READ, MAX_WINDOW_BYTES,
};
pub use crate::backend::inspection::figures::{
    ConsumerStats, InboxStats, LeasedJob, Ping, QueuedJob, Rates, ServiceStats,
};
pub use crate::backend::inspection::group_keys::{
    BusyGroupKeys, GroupKeyLoad, MAX_GROUP_KEYS_VISITED, TOP_GROUP_KEYS,
};
pub use crate::backend::inspection::lanes::{any_other_lane, empty_lanes, lanes_of, LaneDepth};
pub use crate::backend::inspection::scheduled::{ScheduledExcerpt, ScheduledJob};
pub use crate::backend::rate_limits::{RateState, ServiceRateLimit, MAX_RATE_LIMITS_LISTED};
pub use crate::periodic::PeriodicState;
pub use rpc_protocol::progress::ProgressValue;
pub use rpc_protocol::worker::{WorkerBeat, WorkerControl, WorkerState};

/// How long one command may take before the inspector reports the broker
/// as unreachable: an operator's page should say so within seconds.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// A read-only view of one broker's queues. Cloning is cheap and shares
/// the connection.
#[derive(Clone)]
pub struct Inspector {
    broker: Arc<dyn Broker>,
    url: String,
    /// The last scan of the queues, which finding a service's shards
    /// reuses for a moment (`inspect/shards.rs`).
    scanned: recent_scan::RecentScan,
}

impl Inspector {
    /// Connects to `url` (`redis://`, `rediss://`, `redis+unix://`,
    /// `redis+cluster://host:port,...` for a Cluster, or `memory://NAME`)
    /// to inspect the queues under `prefix`. Fails with
    /// [`Error::InvalidUrl`] or, when Redis does not answer or refuses the
    /// credentials, [`Error::Broker`].
    pub async fn connect(url: &str, prefix: &str) -> Result<Inspector, Error> {
        let config = BrokerConfig {
            prefix: prefix.to_owned(),
            // An inspector adds no jobs; say so, so that a URL's own
            // `?enqueue=` is the only thing that could differ.
            enqueue: Enqueue::Stream,
            command_timeout: COMMAND_TIMEOUT,
            ..BrokerConfig::new(url)
        };
        Ok(Inspector::new(connect(&config).await?))
    }

    /// The view of a broker already connected (a worker's, a client's).
    pub fn new(broker: Arc<dyn Broker>) -> Inspector {
        Inspector {
            url: broker.describe(),
            broker,
            scanned: recent_scan::RecentScan::default(),
        }
    }

    /// The URL this inspector reads, without its password.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether other processes' queues are visible here: `false` for a
    /// `memory://` broker opened by a tool of its own, which sees only its
    /// own, empty, queues.
    pub fn is_shared(&self) -> bool {
        self.broker.is_shared()
    }

    /// A kept result by call id while it lasts: the reply envelope as a
    /// worker stored it.
    pub async fn kept_result(&self, call_id: &str) -> Result<Option<Vec<u8>>, Error> {
        self.broker.get_result(call_id).await
    }

    /// Call `call_id`'s newest progress (docs/PROTOCOL.md, "Progress"),
    /// checked: `None` when none is kept, [`Error::Codec`] when what is
    /// there is not a progress value.
    pub async fn progress(&self, call_id: &str) -> Result<Option<ProgressValue>, Error> {
        let Some(bytes) = self.broker.read_progress(call_id).await? else {
            return Ok(None);
        };
        ProgressValue::decode(&bytes)
            .map(Some)
            .map_err(|e| Error::codec("read the call's progress", e))
    }

    /// The broker's clock, ms since the Unix epoch: what ages, last and
    /// next ticks are measured against.
    pub async fn broker_time_ms(&self) -> Result<u64, Error> {
        self.broker.broker_time_ms().await
    }
}

impl Inspector {
    /// The workers of `service` (of every service with `None`), live ones
    /// first, then by id; gone ones stay listed for a day after their last
    /// beat. At most [`MAX_WORKERS_LISTED`](rpc_protocol::worker::MAX_WORKERS_LISTED) per service are read.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), rpc_runtime::Error> {
    /// let inspector = rpc_runtime::Inspector::connect("redis://127.0.0.1:6379/", "rpc").await?;
    /// for w in inspector.workers(Some("Calculator")).await? {
    ///     println!("{} {:?}", w.id, w.liveness);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn workers(&self, service: Option<&str>) -> Result<Vec<WorkerInfo>, Error> {
        let services = match service {
            Some(s) => vec![s.to_owned()],
            None => self.services().await?,
        };
        let now_ms = self.broker_time_ms().await?;
        workers::workers_of(&*self.broker, &services, now_ms).await
    }

    /// How many live workers serve each of `services` (0 for none).
    pub async fn live_worker_counts(
        &self,
        services: &[String],
    ) -> Result<BTreeMap<String, u64>, Error> {
        let now_ms = self.broker_time_ms().await?;
        let workers = workers::workers_of(&*self.broker, services, now_ms).await?;
        let mut counts: BTreeMap<String, u64> = services.iter().map(|s| (s.clone(), 0)).collect();
        for w in workers.iter().filter(|w| w.liveness == Liveness::Live) {
            for s in &w.services {
                if let Some(n) = counts.get_mut(s) {
                    *n += 1;
                }
            }
        }
        Ok(counts)
    }

    /// The rate limits of `service` that have state on the broker
    /// (docs/PROTOCOL.md, "Rate limits"): the service's own first, then
    /// its jobs' by name, at most [`MAX_RATE_LIMITS_LISTED`]. What is no
    /// limit's state is left out or read as zeros, never an error.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), rpc_runtime::Error> {
    /// let inspector = rpc_runtime::Inspector::connect("redis://127.0.0.1:6379/", "rpc").await?;
    /// for limit in inspector.rate_limits("Mailer").await? {
    ///     let job = limit.job.as_deref().unwrap_or("(the service)");
    ///     println!("{job}: {} waiting", limit.state.waiting);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn rate_limits(&self, service: &str) -> Result<Vec<ServiceRateLimit>, Error> {
        self.broker.rate_limits(service).await
    }

    /// [`Inspector::rate_limits`] of every service that has any, by
    /// service, in one pass over the broker (one `SCAN` on Redis).
    pub async fn every_rate_limit(&self) -> Result<BTreeMap<String, Vec<ServiceRateLimit>>, Error> {
        self.broker.every_rate_limit().await
    }

    /// The paused flag, live workers and queue of `service` (see
    /// [`ServiceHealth`]).
    pub async fn service_health(&self, service: &str) -> ServiceHealth {
        workers::service_health(&*self.broker, service).await
    }
}

impl Deref for Inspector {
    type Target = dyn Inspection;

    fn deref(&self) -> &(dyn Inspection + 'static) {
        &*self.broker
    }
}

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspector").field("url", &self.url).finish()
    }
}
