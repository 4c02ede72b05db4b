//! What every handler shares: the options, the schemas, the secrets, the
//! sampler, and the connections to Redis.
//!
//! Connections are made on first use and remade after a failure, never at
//! start: a dashboard started while Redis is down must come up, show the
//! error, and recover on its own when Redis does.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rpc_runtime::Client;
use tokio::sync::Mutex;

use crate::error::PageError;
use crate::queue_reader::{QueueReader, ReadError, ServiceStats};
use crate::sampler::Sampler;
use crate::schema_catalog::Catalog;
use crate::Options;

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
    sampler: Sampler,
    reader: Mutex<Option<QueueReader>>,
    client: Mutex<Option<Client>>,
}

impl AppState {
    pub fn new(options: Options, catalog: Catalog) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                options,
                catalog,
                csrf: crate::security::new_secret(),
                sampler: Sampler::default(),
                reader: Mutex::new(None),
                client: Mutex::new(None),
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
        self.inner
            .options
            .token
            .as_deref()
            .filter(|t| !t.is_empty())
    }

    pub fn read_only(&self) -> bool {
        self.inner.options.read_only
    }

    pub fn sampler(&self) -> &Sampler {
        &self.inner.sampler
    }

    /// The reader, connecting first if there is none yet.
    pub async fn reader(&self) -> Result<QueueReader, ReadError> {
        let mut slot = self.inner.reader.lock().await;
        if let Some(reader) = slot.as_ref() {
            return Ok(reader.clone());
        }
        let options = &self.inner.options;
        let reader = tokio::time::timeout(
            CONNECT_TIMEOUT,
            QueueReader::connect(&options.url, &options.prefix),
        )
        .await
        .map_err(|_| ReadError(format!("no answer from Redis within {CONNECT_TIMEOUT:?}")))??;
        *slot = Some(reader.clone());
        Ok(reader)
    }

    /// The client that makes the writes (replay, delete, enqueue).
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
            .map_err(|_| PageError::Unavailable("no answer from Redis".to_owned()))??;
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Every service: those with streams in Redis and those the schemas define.
    pub async fn services(&self) -> Result<Vec<String>, ReadError> {
        let mut all: BTreeSet<String> =
            self.reader().await?.services().await?.into_iter().collect();
        all.extend(self.catalog().services());
        Ok(all.into_iter().collect())
    }

    /// The counts of every service.
    pub async fn all_service_stats(&self) -> Result<Vec<ServiceStats>, ReadError> {
        let reader = self.reader().await?;
        let mut out = Vec::new();
        for service in self.services().await? {
            out.push(reader.service_stats(&service).await?);
        }
        Ok(out)
    }

    /// A service the dashboard knows of, or the 404 page.
    pub async fn known_service(&self, service: &str) -> Result<QueueReader, PageError> {
        let reader = self.reader().await?;
        if self.catalog().services().contains(service) || reader.exists(service).await? {
            Ok(reader)
        } else {
            Err(PageError::NotFound(format!(
                "no service named `{service}`: it has no queue or dead letters under the prefix \
                 `{}`, and no schema defines it",
                self.inner.options.prefix
            )))
        }
    }
}
