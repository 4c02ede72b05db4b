//! The shared connection of ordinary commands on a Redis Cluster, which
//! starts over when it stays in trouble.
//!
//! The redis crate's cluster connection follows `MOVED` and refreshes its
//! slot map, but after a master is killed and its replica takes over it
//! has been seen to stay on the old map: every command to those slots then
//! failed (`MOVED`, timeouts) for good, while a connection opened afresh
//! from the same client worked at once (issue 23's failover test: the
//! same client answered on 0 of 8 queues after the failover, a new one on
//! 8 of 8; the worker's replies to an inbox there kept getting `MOVED`).
//! It also wedged: after the failover every command on it, to healthy
//! masters too, hung until its timeout (10 s, and the driver's retries
//! after that).
//!
//! So every command is watched: when one fails with a connection or
//! cluster error (`MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`, I/O, timeout),
//! or is still unanswered after [`STUCK_AFTER`], and no command has been
//! answered for [`REBUILD_AFTER`] (so a loaded connection that works is
//! left alone), a new connection is opened from the client in the
//! background and replaces the old one for every later command (one at a
//! time). A command still waiting on the old connection when the new one
//! comes is sent again on the new one (the first answer wins): on a wedged
//! connection it would otherwise wait out its timeout, past its call's
//! deadline. Sent twice, a command may run twice, which at-least-once
//! delivery already allows (a job pushed twice has one call id; a reply
//! pushed twice is routed once).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redis::aio::ConnectionLike;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};

use crate::sync::lock;

/// How long no command must have been answered before the connection
/// starts over.
pub(super) const REBUILD_AFTER: Duration = Duration::from_secs(1);

/// How long a command may go unanswered before the connection is
/// suspected of being wedged (no command on it legitimately takes that
/// long: blocking reads have connections of their own).
pub(super) const STUCK_AFTER: Duration = Duration::from_secs(2);

/// A cluster connection that starts over when it stays in trouble (a
/// cheap clone: every clone shares it).
#[derive(Clone)]
pub(crate) struct ClusterCommands {
    inner: Arc<Inner>,
}

struct Inner {
    client: ClusterClient,
    /// How long opening a new connection may take.
    connect_timeout: Duration,
    con: RwLock<ClusterConnection>,
    /// When a command was last answered (or the connection opened).
    last_answer: Mutex<Instant>,
    rebuilding: AtomicBool,
    /// Told when a new connection replaced the old one.
    swapped: tokio::sync::Notify,
    /// How many times the connection was replaced.
    generation: AtomicU64,
}

impl ClusterCommands {
    pub(super) fn new(
        client: ClusterClient,
        con: ClusterConnection,
        connect_timeout: Duration,
    ) -> ClusterCommands {
        ClusterCommands {
            inner: Arc::new(Inner {
                client,
                connect_timeout,
                con: RwLock::new(con),
                last_answer: Mutex::new(Instant::now()),
                rebuilding: AtomicBool::new(false),
                swapped: tokio::sync::Notify::new(),
                generation: AtomicU64::new(0),
            }),
        }
    }

    /// The connection now (a handle to it).
    pub(super) fn connection(&self) -> ClusterConnection {
        self.inner
            .con
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Looks at an answer: an answer from Redis (a refusal too) says the
    /// connection works; a connection or cluster error, after nothing was
    /// answered for a while, starts a new connection.
    pub(super) fn settle<T>(&self, answer: &RedisResult<T>) {
        match answer {
            Err(e) if is_trouble(e) => {
                let quiet = lock(&self.inner.last_answer).elapsed();
                if quiet >= REBUILD_AFTER {
                    self.rebuild();
                }
            }
            _ => *lock(&self.inner.last_answer) = Instant::now(),
        }
    }

    /// A command sent at `sent` is still unanswered after [`STUCK_AFTER`]:
    /// if nothing was answered since it was sent, start a new connection.
    fn stuck(&self, sent: Instant) {
        if *lock(&self.inner.last_answer) < sent {
            self.rebuild();
        }
    }

    /// Runs `request` on the connection, watched: sent again on a new
    /// connection if one replaces this one before it is answered.
    async fn watched<T, F, Fut>(&self, request: F) -> RedisResult<T>
    where
        F: Fn(ClusterConnection) -> Fut,
        Fut: std::future::Future<Output = RedisResult<T>>,
    {
        let sent = Instant::now();
        let generation = self.inner.generation.load(Ordering::Acquire);
        let first = request(self.connection());
        tokio::pin!(first);
        let answer = tokio::select! {
            answer = &mut first => answer,
            _ = tokio::time::sleep(STUCK_AFTER) => {
                self.stuck(sent);
                let swapped = self.inner.swapped.notified();
                tokio::pin!(swapped);
                swapped.as_mut().enable();
                if self.inner.generation.load(Ordering::Acquire) != generation {
                    request(self.connection()).await
                } else {
                    tokio::select! {
                        answer = &mut first => answer,
                        _ = swapped => request(self.connection()).await,
                    }
                }
            }
        };
        self.settle(&answer);
        answer
    }

    /// Opens a new connection in the background and swaps it in.
    fn rebuild(&self) {
        if self.inner.rebuilding.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.inner.rebuilding.store(false, Ordering::Release);
            return;
        };
        let inner = self.inner.clone();
        rt.spawn(async move {
            tracing::warn!("commands keep failing on the cluster connection; opening a new one");
            let fresh = tokio::time::timeout(
                inner.connect_timeout * 2,
                inner.client.get_async_connection(),
            )
            .await;
            match fresh {
                Ok(Ok(con)) => {
                    *inner.con.write().unwrap_or_else(|e| e.into_inner()) = con;
                    *lock(&inner.last_answer) = Instant::now();
                    inner.generation.fetch_add(1, Ordering::AcqRel);
                    inner.swapped.notify_waiters();
                    tracing::info!("a new cluster connection replaced the one in trouble");
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot open a new cluster connection yet")
                }
                Err(_) => tracing::warn!("opening a new cluster connection timed out"),
            }
            inner.rebuilding.store(false, Ordering::Release);
        });
    }
}

/// An error that says the connection or the cluster's map is wrong, not
/// that Redis refused the command.
fn is_trouble(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_cluster_error()
}

impl ConnectionLike for ClusterCommands {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            self.watched(|mut con| async move { con.req_packed_command(cmd).await })
                .await
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            self.watched(
                |mut con| async move { con.req_packed_commands(pipeline, offset, count).await },
            )
            .await
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}
