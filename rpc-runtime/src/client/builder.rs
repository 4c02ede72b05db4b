//! Building a [`Client`]: its settings, and connecting.

use std::time::Duration;

use super::config::Settings;
use super::handle::Client;
use super::interceptor::Interceptor;

use crate::backend::{self, Enqueue};
use crate::error::Error;
use crate::telemetry::ClientMetrics;

/// Builds a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    settings: Settings,
}

impl ClientBuilder {
    /// A builder for the broker at `url` (`redis://`, `rediss://`, `memory://`).
    pub fn new(url: impl Into<String>) -> Self {
        ClientBuilder {
            settings: Settings::new(url),
        }
    }

    /// Key prefix (default `rpc`); clients and workers must agree.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.settings.broker.prefix = prefix.into();
        self
    }

    /// Timeout of calls whose options and schema set none (default 30 s).
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.settings.default_timeout = timeout;
        self
    }

    /// Largest request message accepted, in bytes (default 8 MiB).
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.settings.max_payload = bytes;
        self
    }

    /// How long results of `send_*` calls are kept for fetch-by-id (default 5 min).
    pub fn result_ttl(mut self, ttl: Duration) -> Self {
        self.settings.result_ttl = ttl;
        self
    }

    /// Default attempt limit for calls whose options and schema set none.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.settings.max_attempts = Some(attempts);
        self
    }

    /// Starts this client's id, and so its inbox key, with `prefix` and a
    /// dash (`rpc:inbox:{tenant-a-<random>}`), so a Redis ACL user can be
    /// limited to its own inboxes (`~rpc:inbox:{tenant-a-*`, see
    /// `deploy/redis/roles.acl`). Letters, digits and `_ . :` only.
    pub fn client_id_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.settings.client_id_prefix = prefix.into();
        self
    }

    /// Counts this client's calls and their latency in `metrics` (see
    /// [`ClientMetrics::register`]); off unless set.
    pub fn metrics(mut self, metrics: ClientMetrics) -> Self {
        self.settings.metrics = Some(metrics);
        self
    }

    /// How calls are added to a Redis jobs stream (default
    /// [`Enqueue::Auto`]: directly, or through the service's intake once
    /// Redis refuses this client `XADD`, as it does the client ACL role).
    pub fn enqueue(mut self, enqueue: Enqueue) -> Self {
        self.settings.broker.enqueue = enqueue;
        self
    }

    /// Runs `interceptor` on every call this client sends, after those
    /// added before it: to add metadata (a token, a tenant) or refuse the
    /// call (see [`Interceptor`]).
    pub fn interceptor(mut self, interceptor: impl Interceptor) -> Self {
        self.settings.interceptors.push(interceptor);
        self
    }

    /// Connects.
    pub async fn connect(self) -> Result<Client, Error> {
        if !self.settings.client_id_prefix.is_empty()
            && !rpc_protocol::limits::is_client_id(&format!("{}-x", self.settings.client_id_prefix))
        {
            return Err(Error::config(format_args!(
                "client id prefix {:?} has characters an inbox key may not \
                 (letters, digits and `_ - . :` only, 100 at most)",
                self.settings.client_id_prefix
            )));
        }
        let backend = backend::connect(&self.settings.broker).await?;
        let client = Client::from_backend(backend, self.settings);
        // The broker's clock, for `sent_ms` and delayed calls: without a
        // sample this machine's clock stands in (and the next call retries).
        if let Err(e) = client.inner.clock.sample(&*client.inner.backend).await {
            tracing::warn!(error = %e, "could not read the broker's clock; using this machine's until it can");
        }
        Ok(client)
    }
}

impl Client {
    /// Connects to `url` with default settings.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), rpc_runtime::Error> {
    /// let client = rpc_runtime::Client::connect("redis://127.0.0.1:6379/").await?;
    /// let reply = client.call_and_wait("Calculator.add", serde_json::json!({"a": 1, "b": 2})).await?;
    /// assert_eq!(reply.data, 3);
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Client, Error> {
        ClientBuilder::new(url).connect().await
    }

    /// A builder with settings.
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url)
    }
}
