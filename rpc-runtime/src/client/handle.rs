//! The [`Client`] handle: what every clone shares (the broker, the reply
//! inbox and its router, the settings, the broker's clock), and the few
//! things about it every call needs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::config::Settings;
use super::routing::{fresh_client_id, route_replies, Inbox};
use super::shard_cache::ShardCache;

use crate::backend::Broker;
use crate::clock::BrokerClock;
use crate::sync::lock;

/// How old the sample of the broker's clock may get before the client takes
/// another (in the background; calls go on with the old one meanwhile).
const CLOCK_RESAMPLE: Duration = Duration::from_secs(300);

/// A connection to the broker for making calls. Cheap to clone; clones share
/// the inbox and the reader.
#[derive(Clone)]
pub struct Client {
    pub(super) inner: Arc<ClientInner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("broker", &self.inner.backend.describe())
            .field("inbox", &self.inner.inbox.name())
            .finish()
    }
}

pub(super) struct ClientInner {
    pub(super) backend: Arc<dyn Broker>,
    pub(super) inbox: Arc<Inbox>,
    pub(super) router: Mutex<Option<tokio::task::JoinHandle<()>>>,
    pub(super) config: Settings,
    /// The broker's clock as this client sees it.
    pub(super) clock: Arc<BrokerClock>,
    /// A sample of the clock is being taken in the background.
    pub(super) sampling: Arc<std::sync::atomic::AtomicBool>,
    /// The shard counts of the services it called.
    pub(super) shards: ShardCache,
}

impl Drop for ClientInner {
    fn drop(&mut self) {
        if let Some(router) = self.router.get_mut().ok().and_then(Option::take) {
            router.abort();
        }
    }
}

impl Client {
    pub(super) fn from_backend(backend: Arc<dyn Broker>, config: Settings) -> Client {
        let id = fresh_client_id(&config.client_id_prefix);
        let inbox = Arc::new(Inbox {
            name: Mutex::new(backend.inbox_name(&id).into()),
            id_prefix: config.client_id_prefix.clone(),
            state: Mutex::default(),
            wake_router: tokio::sync::Notify::new(),
            read_failures: tokio::sync::watch::Sender::new(0),
        });
        Client {
            inner: Arc::new(ClientInner {
                backend,
                inbox,
                router: Mutex::new(None),
                config,
                clock: Arc::new(BrokerClock::new()),
                sampling: Arc::default(),
                shards: ShardCache::new(),
            }),
        }
    }

    /// The broker's clock; a sample older than a few minutes is renewed in
    /// the background.
    pub(super) fn broker_clock(&self) -> &BrokerClock {
        use std::sync::atomic::Ordering;
        let inner = &self.inner;
        if !inner.clock.sampled_within(CLOCK_RESAMPLE)
            && !inner.sampling.swap(true, Ordering::Relaxed)
        {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let (clock, backend, sampling) = (
                    inner.clock.clone(),
                    inner.backend.clone(),
                    inner.sampling.clone(),
                );
                rt.spawn(async move {
                    if let Err(e) = clock.sample(&*backend).await {
                        tracing::debug!(error = %e, "could not sample the broker's clock");
                    }
                    sampling.store(false, Ordering::Relaxed);
                });
            } else {
                inner.sampling.store(false, Ordering::Relaxed);
            }
        }
        &inner.clock
    }

    /// The broker this client talks to.
    pub fn backend(&self) -> &Arc<dyn Broker> {
        &self.inner.backend
    }

    /// The key of this client's reply inbox now (it changes if something
    /// overwrites the inbox and the client moves to a fresh one).
    pub fn inbox(&self) -> String {
        self.inner.inbox.name().to_string()
    }

    /// Number of calls waiting for a reply to be routed to them (for
    /// metrics and leak tests); a call reading its own reply is not counted.
    pub fn in_flight(&self) -> usize {
        lock(&self.inner.inbox.state).waiters.len()
    }

    /// Starts the task that routes this client's replies, unless it runs.
    pub(super) fn ensure_router(&self) {
        let mut router = lock(&self.inner.router);
        if router.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let backend = self.inner.backend.clone();
        let inbox = Arc::downgrade(&self.inner.inbox);
        *router = Some(tokio::spawn(route_replies(backend, inbox)));
    }
}
