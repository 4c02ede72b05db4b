//! What every handler shares: the options, the schemas, the secrets (the
//! CSRF token, the session value), the throttle of wrong tokens, the
//! sampler, and the connections to Redis.
//!
//! Connections are made on first use, never at start, and tried again on
//! the next page for as long as they fail (once made, they reconnect by
//! themselves): a dashboard started while Redis is down must come up, show
//! the error, and recover on its own when Redis does.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rpc_protocol::limits::DAILY_STATS_SHOWN;
use rpc_runtime::inspect::{empty_lanes, last_days, DailyCount, ServiceStats};
use rpc_runtime::{Client, Inspector};
use tokio::sync::{Mutex, Semaphore};

use crate::auth::{self, Throttle};
use crate::bounds::{MAX_SERVICES, MAX_SERVICE_NAME_BYTES};
use crate::daily_history::DailyHistory;
use crate::error::PageError;
use crate::sampler::Sampler;
use crate::schema_catalog::Catalog;
use crate::Options;

/// Whole messages held at once (each up to `bounds::REPLAY_MAX_BYTES`).
const WHOLE_READS: usize = 2;
/// How long connecting may take before a page reports Redis as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Shared state, cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    options: Options,
    catalog: Catalog,
    csrf: String,
    /// The session cookie's value: derived from the token, never the token.
    session: Option<String>,
    throttle: Throttle,
    sampler: Sampler,
    daily: DailyHistory,
    inspector: Mutex<Option<Arc<Inspector>>>,
    client: Mutex<Option<Client>>,
    /// Reads that hold a whole message (a replay, the edit form).
    whole_reads: Semaphore,
}

impl AppState {
    pub fn new(options: Options, catalog: Catalog) -> AppState {
        let session = token_of(&options).map(auth::session_value);
        AppState {
            inner: Arc::new(Inner {
                options,
                catalog,
                csrf: crate::security::new_secret(),
                session,
                throttle: Throttle::default(),
                sampler: Sampler::default(),
                daily: DailyHistory::default(),
                inspector: Mutex::new(None),
                client: Mutex::new(None),
                whole_reads: Semaphore::new(WHOLE_READS),
            }),
        }
    }

    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    pub fn csrf(&self) -> &str {
        &self.inner.csrf
    }

    pub fn token(&self) -> Option<&str> {
        token_of(&self.inner.options)
    }

    /// The session cookie's value, when there is a token.
    pub fn session(&self) -> Option<&str> {
        self.inner.session.as_deref()
    }

    /// Failed token attempts, by client address.
    pub fn throttle(&self) -> &Throttle {
        &self.inner.throttle
    }

    /// Where the dashboard listens (port 0 when the router was made
    /// without knowing its listener).
    pub fn listen(&self) -> std::net::SocketAddr {
        self.inner.options.listen
    }

    /// A turn to hold a whole message in memory; at most `WHOLE_READS` at once.
    pub async fn whole_reads(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.inner.whole_reads.acquire().await.ok()
    }

    pub fn read_only(&self) -> bool {
        self.inner.options.read_only
    }

    pub fn sampler(&self) -> &Sampler {
        &self.inner.sampler
    }

    /// Processed and failed per day over the charted days, oldest first,
    /// of `services` added up, as workers counted them in Redis.
    pub async fn daily_counts(&self, services: &[String]) -> Result<Vec<DailyCount>, PageError> {
        let inspector = self.inspector().await?;
        let now = inspector.broker_time_ms().await?;
        let mut per_service = Vec::with_capacity(services.len() + 1);
        // No service: every day at zero.
        per_service.push(
            last_days(now, DAILY_STATS_SHOWN)
                .into_iter()
                .map(|day| DailyCount {
                    day,
                    processed: 0,
                    failed: 0,
                })
                .collect(),
        );
        for service in services {
            per_service.push(self.inner.daily.of(&inspector, service, now).await?);
        }
        Ok(crate::daily_history::total(&per_service))
    }

    /// The read-only view of the queues, connecting first if there is none yet.
    pub async fn inspector(&self) -> Result<Arc<Inspector>, PageError> {
        let mut slot = self.inner.inspector.lock().await;
        if let Some(inspector) = slot.as_ref() {
            return Ok(inspector.clone());
        }
        let options = &self.inner.options;
        let connecting = Inspector::connect(&options.url, &options.prefix);
        let inspector = Arc::new(
            tokio::time::timeout(CONNECT_TIMEOUT, connecting)
                .await
                .map_err(|_| no_answer())??,
        );
        *slot = Some(inspector.clone());
        Ok(inspector)
    }

    /// The client that makes the writes (replay, delete, enqueue, cancel,
    /// pause, resume).
    pub async fn client(&self) -> Result<Client, PageError> {
        let mut slot = self.inner.client.lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let options = &self.inner.options;
        let connecting = Client::builder(&options.url)
            .prefix(&options.prefix)
            .connect();
        let client = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| no_answer())??;
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Every service: those with a queue in Redis and those the schemas
    /// define, the first `MAX_SERVICES` by name. A key whose service part is
    /// longer than any service's name is left out (anyone who may add a job
    /// may create it).
    pub async fn services(&self) -> Result<Vec<String>, PageError> {
        let mut all: BTreeSet<String> = self
            .inspector()
            .await?
            .services()
            .await?
            .into_iter()
            .filter(|s| s.len() <= MAX_SERVICE_NAME_BYTES)
            .collect();
        all.extend(self.catalog().services());
        Ok(all.into_iter().take(MAX_SERVICES).collect())
    }

    /// The counts of one service (zeros but its dead letters for a service
    /// that has no queue).
    pub async fn service_stats(&self, service: &str) -> Result<ServiceStats, PageError> {
        let inspector = self.inspector().await?;
        if let Some(stats) = inspector.service_stats_bounded(service).await? {
            return Ok(stats);
        }
        // No jobs stream (yet, or any more): its dead letters may still be there.
        let dead_letters = inspector.dead_letter_count(service).await?;
        let shards = inspector.shards_of(service).await?.len();
        Ok(ServiceStats {
            service: service.to_owned(),
            shards: u32::try_from(shards).unwrap_or(u32::MAX),
            queued: 0,
            lanes: empty_lanes(),
            leased: 0,
            dead_letters,
            stream_length: 0,
            entries_added: None,
            consumers: Vec::new(),
            oldest_leased_age: None,
        })
    }

    /// The counts of every service.
    pub async fn all_service_stats(&self) -> Result<Vec<ServiceStats>, PageError> {
        let mut out = Vec::new();
        for service in self.services().await? {
            out.push(self.service_stats(&service).await?);
        }
        Ok(out)
    }

    /// Checks that the dashboard knows of the service, or gives the 404 page:
    /// a schema defines it, or it has a queue, a schedule, a pause flag or
    /// dead letters in Redis.
    pub async fn known_service(&self, service: &str) -> Result<(), PageError> {
        let inspector = self.inspector().await?;
        if service.len() > MAX_SERVICE_NAME_BYTES {
            return Err(PageError::NotFound(format!(
                "no service has a name this long (at most {MAX_SERVICE_NAME_BYTES} bytes)"
            )));
        }
        if self.catalog().services().contains(service)
            || inspector.service_stats_bounded(service).await?.is_some()
            || inspector.scheduled_count(service).await? > 0
            || inspector.is_paused(service).await?
            || inspector.dead_letter_count(service).await? > 0
        {
            return Ok(());
        }
        Err(PageError::NotFound(format!(
            "no service named `{service}`: it has no queue, schedule or dead letters under the \
             prefix `{}`, and no schema defines it",
            self.inner.options.prefix
        )))
    }
}

/// The token, unless none (or an empty one) was given.
fn token_of(options: &Options) -> Option<&str> {
    options.token.as_deref().filter(|t| !t.trim().is_empty())
}

fn no_answer() -> PageError {
    PageError::Unavailable(format!("no answer from Redis within {CONNECT_TIMEOUT:?}"))
}
