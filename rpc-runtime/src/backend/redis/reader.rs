//! The blocking reader: a connection of its own that takes jobs
//! (`XREADGROUP ... BLOCK`) for a worker, moves a service's intake onto its
//! stream (`BLMOVE` + `intake.lua`) for a worker's mover, and pops replies
//! (`BLPOP` / `BLMPOP`) for a client.
//!
//! A queue whose stream Redis refuses to read is found and left out of the
//! worker's reads for a while, so the other queues are still served
//! (`reader/unreadable_keys.rs`).

use rpc_protocol::Keys;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, RedisError, Value};

use super::cluster_completion::{push_replies, settle_shared};
use super::cluster_reader::ClusterTaker;
use super::commands::{create_group, is_nogroup, Commands};
use super::connect::{ReaderSource, CLUSTER_TURN, CONNECT_TIMEOUT};
use super::doorbell::Doorbell;
use super::inbox_pop::{parse_popped, pop_cmd};
use super::intake::{push_cmd_to, push_key, EnqueueMode};
use super::resp::RespConnection;
use super::unreadable_queues::UnreadableQueues;
use rpc_protocol::stream::GROUP;

use crate::backend::{CompletedAndTaken, Completion, Delivery, PushedAndPopped, Reader};
use crate::error::Error;

mod completing_read;
mod housekeeping;
mod intake_move;
mod owed_trims;
mod unreadable_keys;

use owed_trims::OwedTrims;

/// Why a blocking read failed.
pub(super) enum ReadFailure {
    /// Redis answered with an error or the connection failed.
    Redis(RedisError),
    /// No answer long after the block time: a half-open connection.
    Stalled,
}

impl From<ReadFailure> for Error {
    fn from(f: ReadFailure) -> Self {
        match f {
            ReadFailure::Redis(e) => e.into(),
            ReadFailure::Stalled => {
                Error::Broker("blocking read timed out; reconnecting".to_owned())
            }
        }
    }
}

/// The connection the reader's housekeeping goes over.
#[derive(Clone, Copy)]
enum Via {
    /// Its own reading connection.
    Reading,
    /// The backend's shared connection.
    Shared,
}

/// A connection that may block.
pub(super) enum BlockingConnection {
    /// The reader's own RESP2 connection (plain TCP or Unix socket).
    Direct(RespConnection),
    /// Over TLS: the `redis` crate's connection.
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

/// A dedicated connection for blocking reads, opened lazily and dropped on
/// error so the next read reconnects.
pub(super) struct RedisReader {
    source: ReaderSource,
    con: Option<BlockingConnection>,
    keys: Keys,
    commands: Commands,
    /// Whether jobs are added to streams or through intakes.
    enqueue: EnqueueMode,
    /// Which queue gets the blocking turn next (Cluster, several queues).
    turn: usize,
    /// The keys single queues' jobs are pushed to (their stream, or their
    /// intake), by queue and way: made once, not on every call.
    push_keys: Vec<(String, bool, Arc<str>)>,
    queue_keys: Option<(Vec<String>, Arc<[String]>)>,
    /// On a Cluster over plain TCP, what reads several queues
    /// (`cluster_reader.rs`), made on the first such read.
    cluster_taker: Option<ClusterTaker>,
    /// Rings queues' doorbells on a Cluster (`doorbell.rs`).
    doorbell: Doorbell,
    /// Acked entries a batch's trim left on their stream, by jobs stream:
    /// deleted (`XDEL`) with the next read
    /// (`CompleteBatch::left_on_stream`).
    left: Vec<(String, Vec<String>)>,
    /// Acked entries of larger ack-only batches, trimmed a few hundred at
    /// a time (`reader/owed_trims.rs`).
    owed: OwedTrims,
    /// Queues left out of the reads for now: Redis refused to read them
    /// (`unreadable_queues.rs`).
    unreadable: UnreadableQueues,
}

impl RedisReader {
    pub(super) fn new(
        source: ReaderSource,
        keys: Keys,
        commands: Commands,
        enqueue: EnqueueMode,
        doorbell: Doorbell,
    ) -> Self {
        RedisReader {
            source,
            con: None,
            keys,
            commands,
            enqueue,
            turn: 0,
            push_keys: Vec::new(),
            queue_keys: None,
            cluster_taker: None,
            doorbell,
            left: Vec::new(),
            owed: OwedTrims::default(),
            unreadable: UnreadableQueues::default(),
        }
    }

    /// The command that pushes `payload` to `queue` (its stream, or its
    /// intake when this client may not add to streams).
    fn push_cmd(&mut self, queue: &str, payload: &[u8]) -> redis::Cmd {
        let intake = self.enqueue.via_intake();
        let key = match self
            .push_keys
            .iter()
            .find(|(q, i, _)| q == queue && *i == intake)
        {
            Some((_, _, key)) => key.clone(),
            None => {
                let key: Arc<str> = push_key(intake, &self.keys, queue).into();
                self.push_keys.push((queue.to_owned(), intake, key.clone()));
                key
            }
        };
        push_cmd_to(intake, &key, payload)
    }

    /// The stream keys of `queues`, in order.
    fn jobs_keys(&mut self, queues: &[String]) -> Arc<[String]> {
        match &self.queue_keys {
            Some((q, keys)) if q[..] == *queues => keys.clone(),
            _ => {
                let keys: Arc<[String]> = queues.iter().map(|q| self.keys.jobs(q)).collect();
                self.queue_keys = Some((queues.to_vec(), keys.clone()));
                keys
            }
        }
    }

    async fn connection(&mut self) -> Result<&mut BlockingConnection, RedisError> {
        if self.con.is_none() {
            let con = match &self.source {
                ReaderSource::Single(client)
                    if RespConnection::handles(client.get_connection_info()) =>
                {
                    BlockingConnection::Direct(
                        RespConnection::connect(client.get_connection_info(), CONNECT_TIMEOUT)
                            .await?,
                    )
                }
                ReaderSource::Single(client) => {
                    let config = AsyncConnectionConfig::new()
                        .set_connection_timeout(Some(CONNECT_TIMEOUT))
                        .set_response_timeout(None);
                    BlockingConnection::Single(
                        client
                            .get_multiplexed_async_connection_with_config(&config)
                            .await?,
                    )
                }
                ReaderSource::Cluster(client, _) => {
                    // The crate's cluster connect can hang when a node is
                    // down (redis-rs#1953): bounded, so a failover does not
                    // leave this reader stuck for good.
                    let connecting =
                        tokio::time::timeout(CONNECT_TIMEOUT * 2, client.get_async_connection());
                    match connecting.await {
                        Ok(con) => BlockingConnection::Cluster(con?),
                        Err(_) => {
                            return Err(RedisError::from(std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                "connecting to the Redis Cluster timed out",
                            )))
                        }
                    }
                }
            };
            self.con = Some(con);
        }
        match self.con.as_mut() {
            Some(con) => Ok(con),
            None => Err(RedisError::from(std::io::Error::other(
                "reader connection missing",
            ))),
        }
    }

    async fn run(&mut self, cmd: &redis::Cmd, wait: Duration) -> Result<Value, ReadFailure> {
        let con = self.connection().await.map_err(ReadFailure::Redis)?;
        let query = async {
            match con {
                BlockingConnection::Direct(c) => c.query(cmd).await,
                BlockingConnection::Single(c) => cmd.query_async::<Value>(c).await,
                BlockingConnection::Cluster(c) => cmd.query_async::<Value>(c).await,
            }
        };
        let answer = tokio::time::timeout(stall_guard(wait), query).await;
        self.settle(answer)
    }

    /// Runs a pipeline whose last command may block for up to `wait`, with
    /// every command's reply kept, errors included: one reply per command,
    /// in order, or an error. Single Redis only: on a Cluster a pipeline's
    /// keys may live on several nodes.
    async fn run_pipeline(
        &mut self,
        pipe: &redis::Pipeline,
        wait: Duration,
    ) -> Result<Vec<Value>, ReadFailure> {
        let con = self.connection().await.map_err(ReadFailure::Redis)?;
        let query = async {
            match con {
                BlockingConnection::Direct(c) => c.query_pipeline(pipe).await,
                BlockingConnection::Single(c) => pipe.query_async::<Vec<Value>>(c).await,
                BlockingConnection::Cluster(c) => pipe.query_async::<Vec<Value>>(c).await,
            }
        };
        let answer = tokio::time::timeout(stall_guard(wait), query).await;
        let replies = self.settle(answer)?;
        if replies.len() != pipe.len() {
            // Out of step with the connection: start over on a new one.
            self.drop_connection();
            return Err(ReadFailure::Redis(RedisError::from(std::io::Error::other(
                format!(
                    "pipeline of {} commands answered {} replies",
                    pipe.len(),
                    replies.len()
                ),
            ))));
        }
        Ok(replies)
    }

    /// Keeps the connection after a server error (NOGROUP, NOPERM, ...),
    /// which leaves it usable, and drops it after anything else, so the
    /// next read reconnects.
    fn settle<T>(
        &mut self,
        answer: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, ReadFailure> {
        match answer {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if e.code().is_none() {
                    self.drop_connection();
                }
                Err(ReadFailure::Redis(e))
            }
            Err(_) => {
                self.drop_connection();
                Err(ReadFailure::Stalled)
            }
        }
    }

    /// The `XREADGROUP` that leases up to `max` new jobs of `keys`.
    fn read_group_cmd(
        keys: &[String],
        consumer: &str,
        max: usize,
        block: Option<Duration>,
    ) -> redis::Cmd {
        // Sized once: grown argument by argument, it was reallocated about
        // a dozen times on every read (callgrind).
        let bytes = 64 + consumer.len() + keys.iter().map(|k| k.len() + 1).sum::<usize>();
        let mut cmd = redis::Cmd::with_capacity(10 + 2 * keys.len(), bytes);
        cmd.arg("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(max);
        if let Some(wait) = block {
            cmd.arg("BLOCK").arg(wait.as_millis().max(1) as u64);
        }
        cmd.arg("STREAMS").arg(keys);
        for _ in keys {
            cmd.arg(">");
        }
        cmd
    }

    /// Recreates the consumer groups of `keys` after Redis said NOGROUP: it
    /// restarted without persistence, or someone deleted the stream.
    async fn recreate_groups(&self, keys: &[String]) -> Result<(), RedisError> {
        tracing::warn!("consumer group missing; recreating it");
        for key in keys {
            create_group(&self.commands, key).await?;
        }
        Ok(())
    }

    async fn read_group(
        &mut self,
        keys: &[String],
        consumer: &str,
        max: usize,
        block: Option<Duration>,
    ) -> Result<Value, ReadFailure> {
        let cmd = Self::read_group_cmd(keys, consumer, max, block);
        match self.run(&cmd, block.unwrap_or(Duration::ZERO)).await {
            Err(ReadFailure::Redis(e)) if is_nogroup(&e) => {
                self.recreate_groups(keys)
                    .await
                    .map_err(ReadFailure::Redis)?;
                Ok(Value::Nil)
            }
            other => other,
        }
    }
}

/// The reader's [`ClusterTaker`] (made on first use) when a read of
/// `queues` goes through it: on a Cluster over plain TCP (a seed to reach
/// each master by), several queues (in different slots), a read that may
/// wait.
fn sweeping_taker<'t>(
    taker: &'t mut Option<ClusterTaker>,
    source: &ReaderSource,
    commands: &Commands,
    keys: &Keys,
    queues: &[String],
    wait: Duration,
) -> Option<&'t mut ClusterTaker> {
    let ReaderSource::Cluster(_, Some(seed)) = source else {
        return None;
    };
    if queues.len() < 2 || wait.is_zero() {
        return None;
    }
    Some(
        taker
            .get_or_insert_with(|| ClusterTaker::new(seed.clone(), commands.clone(), keys.clone())),
    )
}

/// How long a blocking read may go unanswered before its connection counts
/// as half-open: it never legitimately takes much longer than its own timeout.
pub(super) fn stall_guard(wait: Duration) -> Duration {
    wait + Duration::from_secs(5)
}

#[async_trait]
impl Reader for RedisReader {
    async fn pop_replies(
        &mut self,
        inbox: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Vec<u8>>, Error> {
        let v = self.run(&pop_cmd(inbox, max, wait), wait).await?;
        Ok(parse_popped(v))
    }

    async fn take_jobs(
        &mut self,
        queues: &[String],
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, Error> {
        let cluster = matches!(self.source, ReaderSource::Cluster(..));
        // What the reader owes its streams (a Cluster's batches leave
        // nothing), on the reading connection, before a read that may wait.
        if !cluster {
            self.housekeep(Via::Reading).await;
        }
        let taker = sweeping_taker(
            &mut self.cluster_taker,
            &self.source,
            &self.commands,
            &self.keys,
            queues,
            wait,
        );
        if let Some(taker) = taker {
            // Queues in different slots: sweeps per master and a wait on
            // their doorbells.
            return taker
                .take(queues, consumer, max, wait, &mut self.unreadable)
                .await;
        }
        // Without the queues set aside (`unreadable_keys.rs`).
        let (keys, queues) = self.readable(queues);
        if wait.is_zero() {
            // A look without waiting (the taker's priority lanes,
            // `lane_take.rs`): no `BLOCK`; on a Cluster one stream at a
            // time, as the streams of several queues live on several
            // masters.
            if cluster {
                return self.read_each(&keys, &queues, consumer, max).await;
            }
            return self.take_from(&keys, &queues, consumer, max, None).await;
        }
        if cluster && keys.len() > 1 {
            // Over TLS: keys of different services hash to different slots,
            // and one command may only touch one slot: look at every queue
            // without blocking, then block briefly on one of them in turn.
            let mut out = self.read_each(&keys, &queues, consumer, max).await?;
            if out.is_empty() {
                self.turn = (self.turn + 1) % keys.len();
                let i = self.turn;
                let turn = Some(wait.min(CLUSTER_TURN));
                out = self
                    .take_from(&keys[i..=i], &queues[i..=i], consumer, max, turn)
                    .await?;
            }
            return Ok(out);
        }
        self.take_from(&keys, &queues, consumer, max, Some(wait))
            .await
    }

    async fn complete_and_take(
        &mut self,
        done: &[(Delivery, Completion)],
        queues: &[String],
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> CompletedAndTaken {
        if matches!(self.source, ReaderSource::Cluster(..)) {
            // A completion spans slots, and so nodes: the replies over the
            // shared connection first.
            let replied = push_replies(&self.commands, &self.keys, done).await;
            let taker = sweeping_taker(
                &mut self.cluster_taker,
                &self.source,
                &self.commands,
                &self.keys,
                queues,
                wait,
            );
            if let Some(taker) = taker {
                // The acks with the next sweep of their masters.
                let (not_completed, taken) = taker
                    .settle_and_take(replied, queues, consumer, max, wait, &mut self.unreadable)
                    .await;
                return CompletedAndTaken {
                    not_completed,
                    taken,
                };
            }
            let not_completed = settle_shared(&self.commands, &self.keys, replied).await;
            let taken = self.take_jobs(queues, consumer, max, wait).await;
            return CompletedAndTaken {
                not_completed,
                taken,
            };
        }
        self.complete_then_read(done, queues, consumer, max, wait)
            .await
    }

    async fn push_and_pop(
        &mut self,
        queue: &str,
        payload: &[u8],
        inbox: &str,
        max: usize,
        wait: Duration,
    ) -> PushedAndPopped {
        let push = self.push_cmd(queue, payload);
        if matches!(self.source, ReaderSource::Cluster(..)) {
            // The queue and the inbox live in different slots, maybe on
            // different nodes: push (and ring the queue's doorbell) over
            // the shared connection, then read.
            let pushed = self.doorbell.push_and_ring(queue, push).await;
            if let Err(e) = &pushed {
                self.enqueue.turn_to_intake_after(e);
            }
            return PushedAndPopped {
                pushed: pushed.map(drop).map_err(Error::from),
                popped: self.pop_replies(inbox, max, wait).await,
            };
        }
        // Redis runs the two in order: the job is queued before the read
        // blocks, and a refused push does not stop the read.
        let mut pipe = redis::pipe();
        pipe.add_command(push)
            .add_command(pop_cmd(inbox, max, wait))
            .ignore_errors();
        match self.run_pipeline(&pipe, wait).await {
            Ok(replies) => {
                let mut replies = replies.into_iter();
                let mut next = || match replies.next() {
                    Some(Value::ServerError(e)) => Err(RedisError::from(e)),
                    Some(v) => Ok(v),
                    None => Err(RedisError::from(std::io::Error::other(
                        "a command got no answer",
                    ))),
                };
                let pushed = next().map(drop);
                if let Err(e) = &pushed {
                    // Refused for want of XADD rights: sent again (by the
                    // caller) through the intake.
                    self.enqueue.turn_to_intake_after(e);
                }
                PushedAndPopped {
                    pushed: pushed.map_err(Error::from),
                    popped: next().map(parse_popped).map_err(Error::from),
                }
            }
            Err(e) => {
                let e = Error::from(e);
                PushedAndPopped {
                    popped: Err(Error::Broker(format!("reading replies: {e}"))),
                    pushed: Err(e),
                }
            }
        }
    }

    async fn settle(&mut self) {
        self.housekeep(Via::Shared).await;
    }

    fn queues_set_aside(&mut self) -> usize {
        self.unreadable.take_count()
    }

    async fn move_intake(
        &mut self,
        queue: &str,
        wait: Duration,
        max_message_bytes: usize,
    ) -> Result<usize, Error> {
        self.move_intake_once(queue, wait, max_message_bytes).await
    }
}
