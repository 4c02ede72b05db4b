//! The Redis broker's handle, [`RedisBackend`], and how it connects:
//! a shared connection for ordinary commands (a `ConnectionManager`, or a
//! cluster connection) and a source of blocking connections for readers.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::{ConnectionInfo, IntoConnectionInfo, RedisError};
use rpc_protocol::Keys;

use super::cluster_commands::ClusterCommands;
use super::coalesce::Coalescer;
use super::commands::{create_group, Commands};
use super::doorbell::Doorbell;
use super::inspect::view::RedisView;
use super::intake::EnqueueMode;
use super::resp::RespConnection;
use super::url::{parse_target, redact};
use crate::backend::config::BrokerConfig;
use crate::error::Error;

/// Connection timeout of every connection.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// On a Cluster with several queues in different slots one `XREADGROUP`
/// cannot block on all of them; each queue then gets a short blocking turn.
/// (Over TLS only: over plain TCP a worker waits on the queues' doorbells,
/// `cluster_reader.rs`.)
pub(super) const CLUSTER_TURN: Duration = Duration::from_millis(200);

/// How blocking readers connect. (One per backend, so the size difference
/// of the variants does not matter.)
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub(crate) enum ReaderSource {
    Single(redis::Client),
    /// The cluster client, and the settings (user, password) to reach a
    /// single master with over plain TCP (`None` over TLS): the cluster
    /// reader's connections to each master (`cluster_reader.rs`).
    Cluster(ClusterClient, Option<ConnectionInfo>),
}

/// Redis as a broker.
pub struct RedisBackend {
    pub(super) source: ReaderSource,
    pub(super) commands: Commands,
    pub(super) keys: Keys,
    pub(super) url_for_logs: String,
    /// Whether this client adds jobs to streams or through intakes.
    pub(super) enqueue: EnqueueMode,
    /// The read-only view over the same connection.
    pub(super) view: RedisView,
    /// Rings queues' doorbells on a Cluster (`doorbell.rs`).
    pub(super) doorbell: Doorbell,
    /// On a single Redis, single pushes sent at the same time gathered
    /// into pipelines (`coalesce.rs`).
    pub(super) coalescer: Option<Coalescer>,
}

impl RedisBackend {
    /// Connects to `config.url` (`redis://[user:pass@]host:port/db`,
    /// `rediss://` for TLS, `redis+cluster://host:port,host:port` for a
    /// Cluster).
    pub async fn connect(config: &BrokerConfig) -> Result<Self, Error> {
        let url = config.url.trim();
        let command_timeout = config.command_timeout;
        let target = parse_target(url.trim())?;
        if target.nodes.iter().any(|n| n.starts_with("rediss://")) {
            // rustls needs a process-wide crypto provider; another part of the
            // program may have installed one already, which is just as good.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let invalid = |e: RedisError| Error::InvalidUrl {
            url: redact(url),
            reason: e.to_string(),
        };
        let cannot_connect =
            |e: RedisError| Error::Broker(format!("cannot connect to {}: {e}", redact(url)));
        let (source, commands) = if target.cluster {
            let builder = |response_timeout: Option<Duration>| {
                let mut b = ClusterClient::builder(target.nodes.clone())
                    .connection_timeout(CONNECT_TIMEOUT)
                    .retries(2);
                if let Some(t) = response_timeout {
                    b = b.response_timeout(t);
                }
                if let Some(certs) = &target.tls {
                    b = b.certs(certs.clone());
                }
                b.build()
            };
            let commands_client = builder(Some(command_timeout)).map_err(invalid)?;
            // Readers block: their connections must have no response timeout.
            let reader_client = builder(None).map_err(invalid)?;
            let con = commands_client
                .get_async_connection()
                .await
                .map_err(cannot_connect)?;
            let seed = target.nodes[0]
                .as_str()
                .into_connection_info()
                .ok()
                .filter(RespConnection::handles);
            (
                ReaderSource::Cluster(reader_client, seed),
                Commands::Cluster(ClusterCommands::new(commands_client, con, CONNECT_TIMEOUT)),
            )
        } else {
            let node = target.nodes[0].as_str();
            let client = match &target.tls {
                Some(certs) => redis::Client::build_with_tls(node, certs.clone()),
                None => redis::Client::open(node),
            }
            .map_err(invalid)?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(command_timeout))
                .set_number_of_retries(2);
            let con = ConnectionManager::new_with_config(client.clone(), config)
                .await
                .map_err(cannot_connect)?;
            (ReaderSource::Single(client), Commands::Single(con))
        };
        let keys = Keys::new(&config.prefix);
        Ok(RedisBackend {
            source,
            view: RedisView::new(commands.clone(), keys.clone(), redact(url)),
            doorbell: Doorbell::new(commands.clone(), keys.clone()),
            coalescer: match &commands {
                Commands::Single(con) => Some(Coalescer::new(con.clone())),
                Commands::Cluster(_) => None,
            },
            commands,
            keys,
            url_for_logs: redact(url),
            enqueue: EnqueueMode::new(target.enqueue.unwrap_or(config.enqueue)),
        })
    }

    pub(super) fn jobs_key(&self, queue: &str) -> String {
        self.keys.jobs(queue)
    }

    pub(super) fn dead_key(&self, queue: &str) -> String {
        self.keys.dead(queue)
    }

    pub(super) async fn create_group(&self, queue: &str) -> Result<(), Error> {
        Ok(create_group(&self.commands, &self.jobs_key(queue)).await?)
    }
}
