//! The Redis backend: one stream per service, consumed through a consumer
//! group, plus one reply list per client. `docs/PROTOCOL.md` is the normative
//! description of the keys and commands; this module implements it.
//!
//! Why streams: a consumer group gives each job a lease (the pending entries
//! list) that survives the worker, so a job taken by a worker that dies is
//! still known to Redis and can be claimed by another once it has been idle
//! for the visibility timeout (`XPENDING` + `XCLAIM`). `XACK` + `XDEL` end a
//! job for good, so acked jobs take no memory.
//!
//! Keys (`P` is the configurable prefix; `{...}` are Cluster hash tags so all
//! keys of one queue, one inbox or one result live in one slot):
//!
//! | key                  | type   | what                                   |
//! |----------------------|--------|----------------------------------------|
//! | `P:{Service}:jobs`   | stream | jobs of a service, group `workers`     |
//! | `P:{Service}:intake`, `:moving` | list | calls of clients that may not `XADD` (`intake.rs`) |
//! | `P:{Service}:dead`   | stream | dead letters of a service (capped)     |
//! | `P:inbox:{client}`   | list   | replies to one client (expires)        |
//! | `P:result:{call}`    | string | a kept reply (expires)                 |
//! | `P:{Service}:schedule`, `:scheduled` | zset, hash | delayed jobs and retries (`schedule.rs`) |
//! | `P:{Service}:cancelled` | zset | cancelled calls (`cancel.rs`)           |
//! | `P:{Service}:paused` | string | the pause flag (`pause.rs`)              |
//! | `P:{Service}:once:<key>` | string | an idempotency key (`once.rs`)     |
//! | `P:{Service}:periodic` (`:last`) | hash | periodic jobs (`periodic.rs`)  |
//!
//! Connections. Ordinary commands go over one shared connection that
//! reconnects by itself: a `ConnectionManager` on a single Redis, a
//! `cluster_async::ClusterConnection` on a Cluster. Blocking reads get a
//! connection of their own per reader, because a blocking command would
//! stall every command queued behind it on a shared connection, and the
//! `redis` crate's default response timeout is shorter than a blocking read
//! (DESIGN.md, "Known pitfalls"). On a single Redis over plain TCP or a Unix
//! socket that connection is a `RespConnection`: the reader writes and
//! parses on it itself, with no driver task in between (the hot path of
//! every call; see `resp.rs` for why). Over TLS it is the `redis` crate's
//! multiplexed connection with the response timeout turned off, on a
//! Cluster a cluster connection.
//!
//! URLs: `redis://`, `rediss://` (TLS), `redis+unix://`, and for a Cluster
//! `redis+cluster://[user:pass@]host:port,host:port[/db]` (or
//! `rediss+cluster://`): the listed nodes are seeds, the slot map is learned
//! from them. A TLS URL may carry `?ca=/path/ca.pem` to trust a private CA,
//! and `client_cert=` / `client_key=` for mutual TLS.
//!
//! On a Cluster a completion touches keys in up to three slots (the queue,
//! the caller's inbox, the kept result), so it is sent as one pipeline per
//! slot, reply first and ack last: a crash in between redelivers the job
//! (at-least-once) rather than losing its reply.

mod cancel;
mod commands;
mod completion;
mod consumers;
mod dead_letters;
mod intake;
mod leases;
mod once;
mod pause;
mod periodic;
pub(crate) mod read_only;
mod reader;
pub(crate) mod scan;
mod schedule;
mod scripts;
mod url;
mod values;

use rpc_protocol::Keys;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::{RedisError, Value};

use self::commands::create_group;
pub(crate) use self::commands::Commands;
use self::completion::complete_on;
use self::intake::EnqueueMode;
use self::reader::RedisReader;
pub(crate) use self::scan::scan_all;
pub(crate) use self::url::{parse_target, redact};
use super::{
    Backend, Cancelled, CompleteError, Completion, DeadLetter, Delivery, Enqueue, LifecyclePoll,
    OnceClaim, Reader,
};
use super::{TickAnswer, TickRequest};
use crate::error::Error;

pub use rpc_protocol::stream::GROUP;
use rpc_protocol::stream::{CANCELLED as CANCELLED_FIELD, MESSAGE as FIELD};
/// Response timeout of ordinary (non-blocking) commands.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// Connection timeout of every connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// On a Cluster with several queues in different slots one `XREADGROUP`
/// cannot block on all of them; each queue then gets a short blocking turn.
const CLUSTER_TURN: Duration = Duration::from_millis(200);

/// How blocking readers connect. (One per backend, so the size difference
/// of the variants does not matter.)
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub(super) enum ReaderSource {
    Single(redis::Client),
    Cluster(ClusterClient),
}

/// Redis as a broker.
pub struct RedisBackend {
    source: ReaderSource,
    commands: Commands,
    keys: Keys,
    url_for_logs: String,
    /// Whether this client adds jobs to streams or through intakes.
    enqueue: EnqueueMode,
}

impl RedisBackend {
    /// Connects to `url` (`redis://[user:pass@]host:port/db`, `rediss://` for
    /// TLS, `redis+cluster://host:port,host:port` for a Cluster).
    pub async fn connect(url: &str, prefix: &str, enqueue: Enqueue) -> Result<Self, Error> {
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
            let commands_client = builder(Some(COMMAND_TIMEOUT)).map_err(invalid)?;
            // Readers block: their connections must have no response timeout.
            let reader_client = builder(None).map_err(invalid)?;
            let con = commands_client
                .get_async_connection()
                .await
                .map_err(cannot_connect)?;
            (ReaderSource::Cluster(reader_client), Commands::Cluster(con))
        } else {
            let node = target.nodes[0].as_str();
            let client = match &target.tls {
                Some(certs) => redis::Client::build_with_tls(node, certs.clone()),
                None => redis::Client::open(node),
            }
            .map_err(invalid)?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(COMMAND_TIMEOUT))
                .set_number_of_retries(2);
            let con = ConnectionManager::new_with_config(client.clone(), config)
                .await
                .map_err(cannot_connect)?;
            (ReaderSource::Single(client), Commands::Single(con))
        };
        Ok(RedisBackend {
            source,
            commands,
            keys: Keys::new(prefix),
            url_for_logs: redact(url),
            enqueue: EnqueueMode::new(target.enqueue.unwrap_or(enqueue)),
        })
    }

    fn jobs_key(&self, queue: &str) -> String {
        self.keys.jobs(queue)
    }

    fn dead_key(&self, queue: &str) -> String {
        self.keys.dead(queue)
    }

    async fn create_group(&self, queue: &str) -> Result<(), Error> {
        Ok(create_group(&self.commands, &self.jobs_key(queue)).await?)
    }
}

#[async_trait]
impl Backend for RedisBackend {
    fn describe(&self) -> String {
        self.url_for_logs.clone()
    }

    fn inbox_name(&self, client_id: &str) -> String {
        self.keys.inbox(client_id)
    }

    fn result_name(&self, call_id: &str) -> String {
        self.keys.result(call_id)
    }

    fn is_inbox(&self, key: &str) -> bool {
        self.keys.is_inbox(key)
    }

    async fn broker_time_ms(&self) -> Result<u64, Error> {
        let (secs, micros): (u64, u64) = self.commands.query(&redis::cmd("TIME")).await?;
        Ok(secs * 1000 + micros / 1000)
    }

    async fn open_reader(&self) -> Result<Box<dyn Reader>, Error> {
        Ok(Box::new(RedisReader::new(
            self.source.clone(),
            self.keys.clone(),
            self.commands.clone(),
            self.enqueue.clone(),
        )))
    }

    async fn push_job(&self, queue: &str, payload: &[u8]) -> Result<(), Error> {
        let push = self.enqueue.push_cmd(&self.keys, queue, payload);
        match self.commands.query::<Value>(&push).await {
            Ok(_) => Ok(()),
            Err(e) if self.enqueue.turn_to_intake_after(&e) => {
                let push = self.enqueue.push_cmd(&self.keys, queue, payload);
                self.commands.query::<Value>(&push).await?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn get_result(&self, call_id: &str) -> Result<Option<Vec<u8>>, Error> {
        let v: Option<Vec<u8>> = self
            .commands
            .query(redis::cmd("GET").arg(self.result_name(call_id)))
            .await?;
        Ok(v)
    }

    async fn prepare_queues(&self, queues: &[String]) -> Result<(), Error> {
        for q in queues {
            self.create_group(q).await?;
        }
        // Load the completion script up front, so the first completions,
        // which ride on the taker's read as `EVALSHA`, find it. (After a
        // restart that empties the script cache, the first one is refused
        // with NOSCRIPT, sent again the ordinary way, which loads it.)
        for script in scripts::LOADED_AT_START {
            let load = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(script.source)
                .to_owned();
            if let Err(e) = self.commands.query::<Value>(&load).await {
                tracing::warn!(error = %e, "could not load a completion script; it is loaded on first use");
            }
        }
        Ok(())
    }

    async fn reclaim(
        &self,
        queue: &str,
        consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<Delivery>, Error> {
        self.reclaim_idle(queue, consumer, min_idle, max).await
    }

    async fn extend(&self, queue: &str, consumer: &str, tokens: &[String]) -> Result<(), Error> {
        self.renew(queue, consumer, tokens).await
    }

    async fn complete(
        &self,
        delivery: &Delivery,
        completion: &Completion,
    ) -> Result<(), CompleteError> {
        complete_on(&self.commands, &self.keys, delivery, completion).await
    }

    async fn dead_letters(&self, queue: &str, max: usize) -> Result<Vec<DeadLetter>, Error> {
        self.list_dead_letters(queue, max).await
    }

    async fn remove_dead_letter(&self, queue: &str, token: &str) -> Result<bool, Error> {
        self.delete_dead_letter(queue, token).await
    }

    async fn forget_idle_consumers(&self, queue: &str, idle: Duration) -> Result<usize, Error> {
        self.forget_idle(queue, idle).await
    }

    async fn poll_lifecycle(
        &self,
        queue: &str,
        max_move: usize,
        cancelled_after_ms: u64,
        max_cancelled: usize,
        sweep: Option<&str>,
    ) -> Result<LifecyclePoll, Error> {
        self.poll(queue, max_move, cancelled_after_ms, max_cancelled, sweep)
            .await
    }

    async fn cancel_job(&self, queue: &str, id: &str) -> Result<Cancelled, Error> {
        self.cancel(queue, id).await
    }

    fn has_intake(&self) -> bool {
        true
    }

    async fn cancelled_at(&self, queue: &str, id: &str) -> Result<Option<u64>, Error> {
        self.cancelled_score(queue, id).await
    }

    async fn set_paused(&self, queue: &str, paused: bool) -> Result<bool, Error> {
        self.pause(queue, paused).await
    }

    async fn is_paused(&self, queue: &str) -> Result<bool, Error> {
        self.paused(queue).await
    }

    async fn claim_once(
        &self,
        queue: &str,
        key: &str,
        id: &str,
        fingerprint: &str,
        ttl: Duration,
    ) -> Result<OnceClaim, Error> {
        self.claim(queue, key, id, fingerprint, ttl).await
    }

    async fn queues(&self) -> Result<Vec<String>, Error> {
        self.services().await
    }

    // Periodic jobs

    async fn enqueue_tick(&self, queue: &str, tick: &TickRequest<'_>) -> Result<TickAnswer, Error> {
        self.offer_tick(queue, tick).await
    }

    async fn periodic_jobs(
        &self,
        queue: &str,
    ) -> Result<Vec<crate::periodic::PeriodicState>, Error> {
        self.list_periodic(queue).await
    }
}
