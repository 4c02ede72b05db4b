//! The connection ordinary (non-blocking) commands share, and the few
//! commands every part of the backend needs on it.

use redis::aio::ConnectionManager;

use super::cluster_commands::ClusterCommands;
use redis::{FromRedisValue, RedisError, Value};

use rpc_protocol::stream::GROUP;

/// The connection ordinary commands share.
#[derive(Clone)]
pub(crate) enum Commands {
    Single(ConnectionManager),
    Cluster(ClusterCommands),
}

/// Whether a command failed because the connection did (not because Redis
/// refused the command), so that one more try on a fresh connection may work.
pub(super) fn is_connection_failure(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal()
}

impl Commands {
    pub(super) async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        match self {
            Commands::Single(con) => {
                retry_once(|| async { cmd.query_async(&mut con.clone()).await }).await
            }
            Commands::Cluster(con) => cmd.query_async(&mut con.clone()).await,
        }
    }

    /// A pipeline's answers, one per command, errors kept as values (for
    /// a pipeline that `ignore_errors`); on a Cluster its commands must
    /// share a slot.
    pub(super) async fn query_pipeline(
        &self,
        pipe: &redis::Pipeline,
    ) -> redis::RedisResult<Vec<Value>> {
        match self {
            Commands::Single(con) => {
                retry_once(|| async { pipe.query_async(&mut con.clone()).await }).await
            }
            Commands::Cluster(con) => pipe.query_async(&mut con.clone()).await,
        }
    }

    /// [`Commands::query`], also saying whether the command went out a
    /// second time because the first try's connection failed: Redis may
    /// then have run it twice, and a command whose answer depends on what
    /// was there before (`SET ... NX GET`) may be reading its own first
    /// run. (A Cluster connection retries inside the driver, unseen.)
    pub(super) async fn query_told_of_retry<T: FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> (redis::RedisResult<T>, bool) {
        match self {
            Commands::Single(con) => match cmd.query_async(&mut con.clone()).await {
                Err(e) if is_connection_failure(&e) => {
                    (cmd.query_async(&mut con.clone()).await, true)
                }
                other => (other, false),
            },
            Commands::Cluster(con) => (cmd.query_async(&mut con.clone()).await, false),
        }
    }

    /// Runs a script by hash, loading it first if Redis does not have it
    /// (a restart empties the script cache). The script's own answer comes
    /// back as a value, a refusal of the call itself as an error.
    pub(super) async fn invoke(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> redis::RedisResult<Value> {
        match self {
            Commands::Single(con) => {
                retry_once(|| async { invocation.invoke_async(&mut con.clone()).await }).await
            }
            Commands::Cluster(con) => invocation.invoke_async(&mut con.clone()).await,
        }
    }
}

/// Runs `attempt`, and once more if the connection failed. After Redis
/// restarts, a `ConnectionManager`'s first command still sees the failure of
/// the old connection; one retry reconnects. A duplicate (the first try did
/// reach Redis) is harmless under at-least-once delivery.
pub(super) async fn retry_once<T, F, Fut>(attempt: F) -> redis::RedisResult<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<T>>,
{
    match attempt().await {
        Err(e) if is_connection_failure(&e) => attempt().await,
        other => other,
    }
}

/// `XGROUP CREATE key workers 0 MKSTREAM`, where an existing group is fine.
/// The group starts at `0` so jobs sent while no group existed (a Redis
/// restarted without persistence, then a client's `XADD`) are still served.
pub(super) async fn create_group(commands: &Commands, key: &str) -> redis::RedisResult<()> {
    let res: redis::RedisResult<Value> = commands
        .query(
            redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(key)
                .arg(GROUP)
                .arg("0")
                .arg("MKSTREAM"),
        )
        .await;
    match res {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether Redis said the stream or its consumer group does not exist: after
/// a restart without persistence, or a deleted stream.
pub(super) fn is_nogroup(e: &RedisError) -> bool {
    e.code() == Some("NOGROUP")
}
