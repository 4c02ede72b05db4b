//! A client's settings, as its builder collects them and the client keeps
//! them for every call.

use std::time::Duration;

use super::interceptor::Interceptors;

use crate::backend::BrokerConfig;
use crate::telemetry::ClientMetrics;

/// What a [`ClientBuilder`](super::ClientBuilder) sets.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) broker: BrokerConfig,
    pub(super) default_timeout: Duration,
    pub(super) max_payload: usize,
    pub(super) result_ttl: Duration,
    pub(super) max_attempts: Option<u32>,
    pub(super) client_id_prefix: String,
    pub(super) metrics: Option<ClientMetrics>,
    pub(super) interceptors: Interceptors,
}

impl Settings {
    /// The defaults, for the broker at `url`.
    pub(super) fn new(url: impl Into<String>) -> Self {
        Settings {
            broker: BrokerConfig::new(url),
            default_timeout: Duration::from_secs(30),
            max_payload: 8 * 1024 * 1024,
            result_ttl: Duration::from_secs(300),
            max_attempts: None,
            client_id_prefix: String::new(),
            metrics: None,
            interceptors: Interceptors::default(),
        }
    }
}
