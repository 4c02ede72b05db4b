//! Taking jobs from many queues on a Redis Cluster.
//!
//! On a single Redis one `XREADGROUP ... BLOCK` waits on every queue of a
//! worker. On a Cluster a command may only touch one slot, and a sharded
//! service puts its queues in different slots on purpose, so the
//! [`ClusterTaker`] reads them another way:
//!
//! - It groups the queues by the master that owns their slot
//!   (`cluster_slots.rs`) and keeps two plain connections to each such
//!   master: one for reads, one subscribed to the queues' doorbells
//!   (`doorbell.rs`).
//! - A sweep sends, per master, one pipeline of non-blocking
//!   `XREADGROUP ... COUNT n STREAMS <queue> >`, one per queue, to every
//!   master at once: one round trip however many queues there are. Every
//!   queue swept gets the same `COUNT` (the worker's share of its free
//!   slots per queue, as one multi-stream read gives on a single Redis),
//!   so every shard is served alike.
//! - A sweep also carries the acks and inbox TTLs the worker's last batch
//!   of completions left for that master (`cluster_reader/sweep.rs`), so a
//!   master is woken once per round of the worker, not once for the acks
//!   and again for the read.
//! - It only sweeps queues that may hold a job ("dirty"): all of them after
//!   (re)subscribing, one whose doorbell rang, one whose last read came
//!   back full. When none is, it waits on the subscriber connections for a
//!   ring, for at most the read's wait; a wait that ends unrung marks every
//!   queue dirty, so a ring that was lost (a failover, a job that arrived
//!   without one) costs at most one wait.
//! - The subscriptions are made before the first sweep, so a ring between
//!   a sweep and the wait is never missed: it is read from the socket.
//! - `MOVED` / `ASK` / `CLUSTERDOWN`, a dropped subscription or a dead
//!   connection make the slot map stale: it is fetched again (at most every
//!   [`REFRESH_EVERY`]), the links to masters that changed are rebuilt and
//!   resubscribed, and every queue swept. A master that cannot be reached
//!   leaves its queues unread until a replica takes over; the others go on.
//! - `NOGROUP` recreates the queue's group, as on a single Redis.
//! - Any other error of one queue's read (its stream replaced by a string:
//!   `WRONGTYPE`) sets that queue aside for a few seconds
//!   (`unreadable_queues.rs`); the sweep keeps what the other queues' reads
//!   leased, and the others go on being served.
//!
//! Plain TCP only (the connections are [`RespConnection`]s); over TLS the
//! reader keeps the older way (`reader.rs`: a sweep, then a short blocking
//! turn on one queue).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::future::{join_all, select_all};
use futures_util::FutureExt;
use redis::{ConnectionAddr, ConnectionInfo, RedisError, Value};
use rpc_protocol::Keys;

use super::cluster_completion::Replied;
use super::cluster_slots::{key_slot, Master, SlotMap};
use super::commands::Commands;
use super::doorbell::{Bell, Heard};
use super::resp::RespConnection;
use super::unreadable_queues::UnreadableQueues;
use crate::backend::Delivery;
use crate::error::Error;

mod sweep;

/// How long connecting (and subscribing) to one master may take: a master
/// that is down should not hold up the others for long.
const LINK_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a sweep (non-blocking reads) may go unanswered before its
/// connection counts as half-open.
const SWEEP_TIMEOUT: Duration = Duration::from_secs(5);
/// The most frames read off one subscriber connection without waiting.
const MAX_HEARD: usize = 4096;
/// How often a stale slot map is fetched again at most.
pub(super) const REFRESH_EVERY: Duration = Duration::from_millis(250);

/// The connections to one master, and the queues (indices) it holds.
struct Link {
    master: Master,
    queues: Vec<usize>,
    reads: RespConnection,
    bell: Bell,
}

/// Reads many queues on a Cluster; see the module's documentation.
pub(super) struct ClusterTaker {
    /// Connection settings (user, password) for every master; its address
    /// is replaced by each master's.
    seed: ConnectionInfo,
    commands: Commands,
    keys: Keys,
    queues: Vec<String>,
    jobs_keys: Vec<String>,
    /// A ready channel's name -> its queue.
    channels: HashMap<Vec<u8>, usize>,
    /// A queue's name -> its index.
    index: HashMap<String, usize>,
    /// The slot map last fetched.
    map: Option<SlotMap>,
    links: Vec<Link>,
    /// Queue -> the link that reads it, if any.
    link_of: Vec<Option<usize>>,
    dirty: Vec<bool>,
    stale: bool,
    refreshed_at: Option<Instant>,
    /// A warning about an unreachable master was logged (and not yet
    /// followed by a recovery).
    warned: bool,
}

impl ClusterTaker {
    pub(super) fn new(seed: ConnectionInfo, commands: Commands, keys: Keys) -> Self {
        ClusterTaker {
            seed,
            commands,
            keys,
            queues: Vec::new(),
            jobs_keys: Vec::new(),
            channels: HashMap::new(),
            index: HashMap::new(),
            map: None,
            links: Vec::new(),
            link_of: Vec::new(),
            dirty: Vec::new(),
            stale: true,
            refreshed_at: None,
            warned: false,
        }
    }

    /// Leases up to `max` jobs of each of `queues` (`COUNT` per stream, as
    /// a multi-stream `XREADGROUP`), waiting up to `wait` for one. Queues
    /// in `unreadable` are left out; one whose read fails is put there.
    pub(super) async fn take(
        &mut self,
        queues: &[String],
        consumer: &str,
        max: usize,
        wait: Duration,
        unreadable: &mut UnreadableQueues,
    ) -> Result<Vec<Delivery>, Error> {
        if self.queues[..] != *queues {
            self.reset(queues);
        }
        let deadline = Instant::now() + wait;
        loop {
            if self.stale && self.refresh_due() {
                self.refresh().await?;
            }
            self.hear_waiting();
            let (_, out) = self
                .sweep(consumer, max.max(1), unreadable, Replied::default())
                .await;
            if !out.is_empty() {
                return Ok(out);
            }
            if !unreadable.is_empty() && self.jobs_keys.iter().all(|k| unreadable.holds(k)) {
                // Nothing left to read: fail as a read of them all did.
                return Err(unreadable.none_readable());
            }
            self.hear_waiting();
            if self.sweepable(unreadable) {
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                // The safety net: whatever came without a ring is found
                // by the next call's sweep.
                self.dirty.fill(true);
                return Ok(Vec::new());
            }
            let mut until = deadline;
            if self.stale {
                let next = self.refreshed_at.map_or(now, |t| t + REFRESH_EVERY);
                until = until.min(next);
            }
            self.wait_for_ring(until).await;
        }
    }

    fn reset(&mut self, queues: &[String]) {
        self.queues = queues.to_vec();
        self.jobs_keys = queues.iter().map(|q| self.keys.jobs(q)).collect();
        self.channels = queues
            .iter()
            .enumerate()
            .map(|(i, q)| (self.keys.ready(q).into_bytes(), i))
            .collect();
        self.index = queues
            .iter()
            .enumerate()
            .map(|(i, q)| (q.clone(), i))
            .collect();
        self.links.clear();
        self.link_of = vec![None; queues.len()];
        self.dirty = vec![true; queues.len()];
        self.stale = true;
        self.refreshed_at = None;
    }

    fn refresh_due(&self) -> bool {
        self.refreshed_at
            .is_none_or(|at| at.elapsed() >= REFRESH_EVERY)
    }

    /// Whether a sweep now could read something.
    fn sweepable(&self, unreadable: &mut UnreadableQueues) -> bool {
        (0..self.queues.len()).any(|q| self.to_read(q, unreadable))
    }

    /// Whether the next sweep reads queue `q`: it may hold a job, its
    /// master is linked, and it is not set aside. (A queue set aside stays
    /// dirty, so it is read once its time is up.)
    fn to_read(&self, q: usize, unreadable: &mut UnreadableQueues) -> bool {
        self.dirty[q]
            && self.link_of[q].is_some()
            && (unreadable.is_empty() || !unreadable.holds(&self.jobs_keys[q]))
    }

    /// Fetches the slot map, keeps the links to masters whose queues did
    /// not change, builds (and subscribes) the others, and marks every
    /// queue dirty.
    async fn refresh(&mut self) -> Result<(), Error> {
        self.refreshed_at = Some(Instant::now());
        let map = match self.fetch_map().await {
            Ok(map) => map,
            Err(e) if self.links.is_empty() => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the cluster's slot map; reading the masters known");
                return Ok(());
            }
        };
        let mut wanted: Vec<(Master, Vec<usize>)> = Vec::new();
        let mut unmapped = 0;
        for (i, key) in self.jobs_keys.iter().enumerate() {
            match map.master_of(key_slot(key.as_bytes())) {
                Some(master) => match wanted.iter_mut().find(|(m, _)| m == master) {
                    Some((_, qs)) => qs.push(i),
                    None => wanted.push((master.clone(), vec![i])),
                },
                None => unmapped += 1,
            }
        }
        let mut old = std::mem::take(&mut self.links);
        self.link_of.fill(None);
        let mut kept = Vec::new();
        let mut to_open = Vec::new();
        for (master, qs) in wanted {
            match old
                .iter()
                .position(|l| l.master == master && l.queues == qs)
            {
                Some(pos) => kept.push(old.swap_remove(pos)),
                None => to_open.push((master, qs)),
            }
        }
        drop(old);
        let opening = to_open.into_iter().map(|(master, qs)| {
            let info = self
                .seed
                .clone()
                .set_addr(ConnectionAddr::Tcp(master.0.clone(), master.1));
            let channels: Vec<String> = qs
                .iter()
                .map(|&q| self.keys.ready(&self.queues[q]))
                .collect();
            async move {
                let opened = async {
                    // Subscribed first: a ring from now on is heard.
                    let bell = Bell::open(&info, &channels, LINK_TIMEOUT).await?;
                    let reads = RespConnection::connect(&info, LINK_TIMEOUT).await?;
                    Ok::<_, RedisError>((reads, bell))
                }
                .await;
                (master, qs, opened)
            }
        });
        let mut failed = Vec::new();
        for (master, queues, opened) in join_all(opening).await {
            match opened {
                Ok((reads, bell)) => kept.push(Link {
                    master,
                    queues,
                    reads,
                    bell,
                }),
                Err(e) => failed.push(format!("{}:{}: {e}", master.0, master.1)),
            }
        }
        self.links = kept;
        self.map = Some(map);
        self.relink();
        self.dirty.fill(true);
        self.stale = !failed.is_empty() || unmapped > 0;
        if self.stale {
            if !self.warned {
                tracing::warn!(
                    unreachable = ?failed,
                    unmapped,
                    "some queues' masters cannot be read now; retrying (a failover?)"
                );
                self.warned = true;
            }
        } else if std::mem::take(&mut self.warned) {
            tracing::info!("every queue's master is read again");
        }
        if self.links.is_empty() {
            return Err(Error::Broker(format!(
                "no master of the Redis Cluster can be read: {failed:?}"
            )));
        }
        Ok(())
    }

    /// `CLUSTER SLOTS`, asked of a master already linked, else over the
    /// shared connection.
    async fn fetch_map(&mut self) -> Result<SlotMap, Error> {
        let cmd = redis::cmd("CLUSTER").arg("SLOTS").to_owned();
        for link in &mut self.links {
            if let Ok(Ok(reply)) = tokio::time::timeout(LINK_TIMEOUT, link.reads.query(&cmd)).await
            {
                if let Some(map) = SlotMap::parse(&reply) {
                    return Ok(map);
                }
            }
        }
        let reply: Value = self.commands.query(&cmd).await?;
        SlotMap::parse(&reply)
            .ok_or_else(|| Error::Broker("unreadable answer to CLUSTER SLOTS".to_owned()))
    }

    fn relink(&mut self) {
        self.link_of.fill(None);
        for (li, link) in self.links.iter().enumerate() {
            for &q in &link.queues {
                self.link_of[q] = Some(li);
            }
        }
    }

    /// Drops the links of `lost` (indices), which failed.
    fn lose_links(&mut self, mut lost: Vec<usize>) {
        if lost.is_empty() {
            return;
        }
        lost.sort_unstable();
        lost.dedup();
        for li in lost.into_iter().rev() {
            let link = self.links.remove(li);
            tracing::debug!(master = ?link.master, "lost a master's connection; the slot map is fetched again");
        }
        self.relink();
        self.stale = true;
    }

    /// Applies what the subscriber connections already received, without
    /// waiting.
    fn hear_waiting(&mut self) {
        let mut heard = Vec::new();
        let mut lost = Vec::new();
        for (li, link) in self.links.iter_mut().enumerate() {
            // Bounded: a flood of rings (a client may ring) must not keep
            // the reader here; what is left is read next time.
            for _ in 0..MAX_HEARD {
                match link.bell.next().now_or_never() {
                    Some(Ok(h)) => heard.push((li, h)),
                    Some(Err(_)) => {
                        lost.push(li);
                        break;
                    }
                    None => break,
                }
            }
        }
        for (li, h) in heard {
            if let Some(li) = self.apply(li, h) {
                lost.push(li);
            }
        }
        self.lose_links(lost);
    }

    /// Marks a rung queue dirty; returns the link if what it heard means
    /// it lost a subscription.
    fn apply(&mut self, li: usize, heard: Heard) -> Option<usize> {
        match heard {
            Heard::Rung(channel) => {
                if let Some(&q) = self.channels.get(&channel) {
                    self.dirty[q] = true;
                }
                None
            }
            Heard::Dropped(_) => Some(li),
            Heard::Confirmed | Heard::Refused(_) | Heard::Other => None,
        }
    }

    /// Waits for a ring on any master until `until`.
    async fn wait_for_ring(&mut self, until: Instant) {
        if self.links.is_empty() {
            tokio::time::sleep_until(until.into()).await;
            return;
        }
        let listening = self
            .links
            .iter_mut()
            .enumerate()
            .map(|(li, link)| Box::pin(async move { (li, link.bell.next().await) }));
        let heard = match tokio::time::timeout_at(until.into(), select_all(listening)).await {
            Ok(((li, heard), _, rest)) => {
                drop(rest);
                Some((li, heard))
            }
            Err(_) => None,
        };
        match heard {
            Some((li, Ok(h))) => {
                if let Some(li) = self.apply(li, h) {
                    self.lose_links(vec![li]);
                }
            }
            Some((li, Err(_))) => self.lose_links(vec![li]),
            None => {}
        }
    }
}
