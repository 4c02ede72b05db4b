//! The one place a broker URL is read to pick a backend.

use std::sync::Arc;

use super::broker::Broker;
use super::config::BrokerConfig;
use super::memory::MemoryBackend;
use super::redis::RedisBackend;
use crate::error::Error;

/// Connects to the broker the URL names.
pub async fn connect(config: &BrokerConfig) -> Result<Arc<dyn Broker>, Error> {
    let url = config.url.trim();
    if let Some(name) = url.strip_prefix("memory://") {
        return Ok(MemoryBackend::named(name));
    }
    if url.starts_with("redis://")
        || url.starts_with("rediss://")
        || url.starts_with("redis+cluster://")
        || url.starts_with("rediss+cluster://")
        || url.starts_with("redis+unix://")
        || url.starts_with("unix://")
    {
        return Ok(Arc::new(RedisBackend::connect(config).await?));
    }
    Err(Error::InvalidUrl {
        url: url.to_owned(),
        reason: "expected a redis://, rediss://, redis+cluster:// or memory:// URL".to_owned(),
    })
}
