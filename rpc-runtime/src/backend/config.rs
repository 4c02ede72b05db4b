//! Where a client or worker connects: the broker URL, the key prefix, and
//! how a client adds jobs on Redis.

use std::time::Duration;

/// Where and how to connect: the URL and the key prefix.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `redis://`, `rediss://`, `redis+cluster://` or `memory://` URL.
    pub url: String,
    /// Prefix of every key (lets several applications share one Redis).
    pub prefix: String,
    /// How a client adds jobs on Redis.
    pub enqueue: Enqueue,
    /// How long an ordinary (non-blocking) command may take before it
    /// fails (Redis; blocking reads have their own waits).
    pub command_timeout: Duration,
}

impl BrokerConfig {
    /// A config for `url` with the default prefix `rpc`.
    pub fn new(url: impl Into<String>) -> Self {
        BrokerConfig {
            url: url.into(),
            prefix: "rpc".to_owned(),
            enqueue: Enqueue::Auto,
            command_timeout: Duration::from_secs(10),
        }
    }
}

/// How a client adds jobs to a Redis jobs stream (docs/PROTOCOL.md, "The
/// intake"; docs/SECURITY.md). A URL's `?enqueue=auto|stream|intake` wins
/// over the builder's setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Enqueue {
    /// `XADD` to the stream until Redis answers `NOPERM` (a client-role ACL
    /// user), then through the intake for good. The one refused `XADD`
    /// shows in Redis's `ACL LOG`: restricted users better say `Intake`.
    #[default]
    Auto,
    /// Always `XADD` to the stream (a trusted producer).
    Stream,
    /// Always `RPUSH` to the service's intake, which workers move onto the
    /// stream: what the client ACL role allows.
    Intake,
}
