//! `--shards N [--cluster M]`: what spreading a service over N shards
//! costs Redis (issue 23 point 5).
//!
//! On a 2-core machine a 3-master Cluster cannot show wall-clock scaling
//! (every master, the worker and the client share the same two cores), so
//! this mode measures what decides it: Redis's CPU time per call, summed
//! over every node, with the service on 1 shard and on N shards (sharding
//! must add no more than 10%), and the share of commands and of CPU each
//! master carries.
//!
//! The typed `Bench` service ([`crate::typed`]) is driven at 64 calls in
//! flight, closed loop ([`crate::measure::closed_loop`]), by one client and
//! one worker process (the hidden `worker --kind typed`). Configurations of
//! 1 and of N shards alternate, five rounds of 1.5 s of each (each round
//! both counts back to back, which first alternating); every
//! configuration starts from an empty Redis (`FLUSHALL` on every node: a
//! service's `seen` shard count never goes down, so a 1-shard
//! configuration after an N-shard one would still be read on N queues),
//! with the shard count set (`P:{Bench}:shards`) before a fresh worker
//! process starts (it reads the shards `max(schema, count, seen)` names at
//! start) and a fresh client. The warm-up lasts until every shard's stream
//! has had entries (`XINFO STREAM` `entries-added`, asked of the node that
//! holds it): the client reads the count in the background after its
//! first call, so its first calls all go to shard 0. The client's inbox
//! is on shard 0's node in every configuration (a client is connected
//! again until its random id lands there): one client's inbox carries
//! about as much of the work as the queue, so where it is decides the
//! shares (`--inbox-apart`: on another master, so that a call on 1 shard
//! touches two masters, not one). Then `INFO cpu` and
//! `INFO commandstats` are read on every node before and after the
//! measured slice ([`crate::redis_stats`]), and how often each
//! redis-server was put on a CPU (`/proc/<pid>/task/*/schedstat`): a
//! Cluster's extra CPU per call goes to event-loop turns on more masters.
//!
//! The report ([`crate::shards_report`]) gives per configuration the calls
//! per second, Redis CPU per call (all nodes), commands per call, each
//! master's share of commands and CPU, and the calls one Redis core could
//! carry at that cost (on a Cluster: bound by the busiest master). The
//! target is judged on the median of the rounds' ratios (N over 1, each
//! pair measured back to back): on a shared 2-core machine Redis's CPU per
//! call rises by a third in a round that other work crowds, and the pooled
//! ratio moves with whichever configuration that round hit; both are
//! reported.

use super::*;
use crate::measure::closed_loop;
use crate::redis_stats::{CostPool, RedisCost, RedisStats};
use crate::shards_report::{Configuration, Master, RoundFigure, ShardsReport};
use rpc_runtime::backend::ShardOp;
use rpc_runtime::protocol::{shards, Keys};
use rpc_testkit::RedisCluster;

/// The service the bench calls (its schema has one shard).
const SERVICE: &str = "Bench";
/// Calls in flight.
pub const IN_FLIGHT: usize = 64;
/// How much more Redis CPU per call N shards may cost than 1.
pub const TARGET_RATIO: f64 = 1.10;
/// Clients connected at most to find one whose inbox is on the chosen
/// node (each has a chance of one in the masters).
const INBOX_TRIES: usize = 200;
/// How long the warm-up may take to see every shard written.
const PLACEMENT_LIMIT: Duration = Duration::from_secs(30);

/// How much a `--shards` run measures.
#[derive(Debug, Clone, Copy)]
pub struct ShardsPlan {
    /// The shard count compared with 1.
    pub shards: u32,
    /// Masters of the Cluster; `None`: one redis-server.
    pub masters: Option<usize>,
    /// Configurations of each shard count (alternating).
    pub rounds: usize,
    /// Closed-loop calls before each measured slice (repeated until every
    /// shard has been written).
    pub warmup: Duration,
    /// The measured slice of each configuration.
    pub slice: Duration,
    /// How long the nodes' CPU is read with nothing running, before the
    /// first configuration: what a node costs per second whatever the
    /// load (its cron; on a Cluster, the cluster bus).
    pub idle: Duration,
    /// The client's inbox on another master than shard 0's (the next
    /// node), not on the same: then a call on 1 shard touches two
    /// masters, not one.
    pub inbox_apart: bool,
}

impl ShardsPlan {
    pub fn new(shards: u32, masters: Option<usize>, quick: bool, seconds: Option<f64>) -> Self {
        let mut plan = if quick {
            ShardsPlan {
                shards,
                masters,
                rounds: 2,
                warmup: Duration::from_millis(200),
                slice: Duration::from_millis(250),
                idle: Duration::from_millis(250),
                inbox_apart: false,
            }
        } else {
            ShardsPlan {
                shards,
                masters,
                rounds: 5,
                warmup: Duration::from_millis(500),
                slice: Duration::from_millis(1500),
                idle: Duration::from_secs(2),
                inbox_apart: false,
            }
        };
        if let Some(s) = seconds {
            plan.slice = Duration::from_secs_f64(s.max(0.05));
        }
        plan
    }
}

/// The Redis the run measures: one server, or a Cluster of masters.
enum Redis {
    One(Box<RedisServer>),
    Cluster(RedisCluster),
}

impl Redis {
    fn start(masters: Option<usize>) -> Result<Redis, String> {
        match masters {
            None => RedisServer::start()
                .map(|server| Redis::One(Box::new(server)))
                .map_err(|e| format!("cannot start redis-server: {e}")),
            Some(m) => RedisCluster::start(m)
                .map(Redis::Cluster)
                .map_err(|e| format!("cannot start a {m}-master Redis Cluster: {e}")),
        }
    }

    /// The URL clients and workers connect with.
    fn url(&self) -> String {
        match self {
            Redis::One(server) => server.url(),
            Redis::Cluster(cluster) => cluster.cluster_url(),
        }
    }

    /// Every node's own URL and process id.
    fn nodes(&self) -> Vec<(String, u32)> {
        match self {
            Redis::One(server) => vec![(server.url(), server.pid())],
            Redis::Cluster(cluster) => cluster
                .nodes()
                .iter()
                .map(|node| (node.url(), node.pid()))
                .collect(),
        }
    }
}

/// A connection to one node of its own (not through a Cluster client):
/// `INFO`, `FLUSHALL` and `XINFO` are asked of that node.
struct Node {
    url: String,
    /// The redis-server process, for how often it was put on a CPU.
    pid: u32,
    con: redis::aio::MultiplexedConnection,
}

impl Node {
    async fn connect(url: String, pid: u32) -> Result<Node, String> {
        let con = floor::blocking_connection(&url)
            .await
            .map_err(|e| format!("connecting to {url}: {e}"))?;
        Ok(Node { url, pid, con })
    }

    /// Times the node's threads have been put on a CPU so far.
    fn wakeups(&self) -> u64 {
        measure::sched_stats(self.pid).1
    }

    async fn flush(&mut self) -> Result<(), String> {
        redis::cmd("FLUSHALL")
            .arg("SYNC")
            .query_async::<()>(&mut self.con)
            .await
            .map_err(|e| format!("FLUSHALL on {}: {e}", self.url))
    }

    /// How many entries the stream `key` has ever had, if this node holds
    /// it (`Some(0)` for a missing key of one of its slots); `None` when
    /// the key's slot is another node's (`MOVED`).
    async fn entries_added(&mut self, key: &str) -> Result<Option<u64>, String> {
        let answer: Result<redis::Value, _> = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(key)
            .query_async(&mut self.con)
            .await;
        match answer {
            Ok(info) => field_u64(&info, "entries-added")
                .map(Some)
                .ok_or_else(|| format!("XINFO STREAM {key} on {}: no entries-added", self.url)),
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::Moved) => {
                Ok(None)
            }
            Err(e) if e.to_string().contains("no such key") => Ok(Some(0)),
            Err(e) => Err(format!("XINFO STREAM {key} on {}: {e}", self.url)),
        }
    }
}

impl Node {
    /// Whether this node holds `key`'s slot (a keyed `TYPE` is redirected
    /// by any other node).
    async fn holds(&mut self, key: &str) -> Result<bool, String> {
        let answer: Result<redis::Value, _> =
            redis::cmd("TYPE").arg(key).query_async(&mut self.con).await;
        match answer {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::Moved) => {
                Ok(false)
            }
            Err(e) => Err(format!("TYPE {key} on {}: {e}", self.url)),
        }
    }
}

/// The node that holds `key`.
async fn holder(nodes: &mut [Node], key: &str) -> Result<usize, String> {
    for (i, node) in nodes.iter_mut().enumerate() {
        if node.holds(key).await? {
            return Ok(i);
        }
    }
    Err(format!("no node holds {key}"))
}

/// A non-negative integer field of a map reply (RESP3) or of a flat array
/// of name/value pairs (RESP2).
fn field_u64(reply: &redis::Value, name: &str) -> Option<u64> {
    use redis::Value;
    let text = |v: &Value| match v {
        Value::BulkString(b) => std::str::from_utf8(b).ok().map(str::to_owned),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let pairs: Vec<(&Value, &Value)> = match reply {
        Value::Map(m) => m.iter().map(|(k, v)| (k, v)).collect(),
        Value::Array(items) => items.chunks_exact(2).map(|c| (&c[0], &c[1])).collect(),
        _ => return None,
    };
    pairs
        .into_iter()
        .find(|(k, _)| text(k).as_deref() == Some(name))
        .and_then(|(_, v)| match v {
            Value::Int(n) => u64::try_from(*n).ok(),
            other => text(other)?.parse().ok(),
        })
}

/// What one configuration measured.
struct Slice {
    /// Calls completed within the slice.
    counted: u64,
    /// The same, per second.
    calls_per_s: f64,
    /// Calls made during the stats window (the divisor of `nodes`).
    calls: u64,
    /// Redis's work per call on each node.
    nodes: Vec<RedisCost>,
    /// Times per call each node's threads were put on a CPU (woken): a
    /// node does its work for the calls in as many event-loop turns.
    wakeups: Vec<f64>,
    /// Which node holds each shard's queue.
    holders: Vec<usize>,
    /// Which node holds the client's inbox (where every reply goes).
    inbox: usize,
}

async fn read_all(nodes: &mut [Node]) -> Result<Vec<RedisStats>, String> {
    let mut out = Vec::with_capacity(nodes.len());
    for node in nodes.iter_mut() {
        out.push(RedisStats::read(&mut node.con).await?);
    }
    Ok(out)
}

/// Each shard's holder and its stream's `entries-added`.
async fn shard_entries(nodes: &mut [Node], count: u32) -> Result<Vec<(usize, u64)>, String> {
    let keys = Keys::new("rpc");
    let mut out = Vec::with_capacity(count as usize);
    for k in 0..count {
        let key = keys.jobs(&shards::queue(SERVICE, k));
        let mut found = None;
        for (i, node) in nodes.iter_mut().enumerate() {
            if let Some(n) = node.entries_added(&key).await? {
                found = Some((i, n));
                break;
            }
        }
        out.push(found.ok_or_else(|| format!("no node holds {key}"))?);
    }
    Ok(out)
}

/// One configuration: an empty Redis, the count set, a fresh worker
/// process and client, a warm-up until every shard was written, then the
/// measured slice.
///
/// The client is connected again until its inbox (a random id's slot) is
/// on `home`: with one client, its inbox is a hot spot of its own (every
/// reply is pushed there and popped from there, about as much of Redis's
/// work as the queue's side), and the nodes' shares pooled over rounds
/// would mix wherever each round's client happened to land.
async fn configuration(
    redis: &Redis,
    nodes: &mut [Node],
    count: u32,
    home: usize,
    plan: &ShardsPlan,
) -> Result<Slice, String> {
    for node in nodes.iter_mut() {
        node.flush().await?;
    }
    let url = redis.url();
    let mut tries = 0;
    let client = loop {
        let client = Client::builder(url.clone())
            .connect()
            .await
            .map_err(|e| format!("client: {e}"))?;
        if holder(nodes, &client.inbox()).await? == home {
            break client;
        }
        tries += 1;
        if tries >= INBOX_TRIES {
            return Err(format!(
                "none of {INBOX_TRIES} clients had its inbox on {}",
                nodes[home].url
            ));
        }
    };
    client
        .backend()
        .shard_count(SERVICE, ShardOp::Set(count))
        .await
        .map_err(|e| format!("setting {SERVICE}'s shard count to {count}: {e}"))?;
    let worker = spawn_worker(&url, Kind::Typed)?;
    let typed = BenchClient::new(client);
    let mut callers = typed_callers(&typed, IN_FLIGHT);
    let limit = Instant::now() + PLACEMENT_LIMIT;
    let placed = loop {
        let (_, _, back) = closed_loop(callers, Duration::ZERO, plan.warmup).await?;
        callers = back;
        let placed = shard_entries(nodes, count).await?;
        if placed.iter().all(|&(_, n)| n > 0) {
            break placed;
        }
        if Instant::now() > limit {
            return Err(format!(
                "{count} shards: after {PLACEMENT_LIMIT:?} of warm-up not every shard has calls \
                 (entries added per shard: {:?})",
                placed.iter().map(|p| p.1).collect::<Vec<_>>()
            ));
        }
    };
    let before = read_all(nodes).await?;
    let woken: Vec<u64> = nodes.iter().map(Node::wakeups).collect();
    let (counted, calls, back) = closed_loop(callers, Duration::ZERO, plan.slice).await?;
    let wakeups = nodes
        .iter()
        .zip(&woken)
        .map(|(node, &before)| node.wakeups().saturating_sub(before) as f64 / calls.max(1) as f64)
        .collect();
    let after = read_all(nodes).await?;
    // Every call is answered when the loop returns: nothing of the slice's
    // work is left for the next reading.
    drop(back);
    drop(typed);
    drop(worker);
    let costs = before
        .iter()
        .zip(&after)
        .map(|(b, a)| b.per(a, calls))
        .collect();
    let spread = shard_entries(nodes, count).await?;
    let per_shard: Vec<u64> = spread
        .iter()
        .zip(&placed)
        .map(|(a, b)| a.1.saturating_sub(b.1))
        .collect();
    if count > 1 {
        say(&format!(
            "{count} shards: calls per shard in the slice {:?}",
            per_shard
        ));
    }
    Ok(Slice {
        counted,
        calls_per_s: counted as f64 / plan.slice.as_secs_f64(),
        calls,
        nodes: costs,
        wakeups,
        holders: placed.iter().map(|&(i, _)| i).collect(),
        inbox: home,
    })
}

/// Pools one shard count's configurations.
struct Pooled {
    count: u32,
    calls: u64,
    secs: f64,
    nodes: Vec<CostPool>,
    total: CostPool,
    rounds: Vec<RoundFigure>,
    holders: Vec<usize>,
    inbox: usize,
    /// Per node: wake-ups per call times calls, and the calls.
    wakeups: Vec<f64>,
    wakeup_calls: u64,
}

impl Pooled {
    fn new(count: u32, nodes: usize) -> Pooled {
        Pooled {
            count,
            calls: 0,
            secs: 0.0,
            nodes: (0..nodes).map(|_| CostPool::default()).collect(),
            total: CostPool::default(),
            rounds: Vec::new(),
            holders: Vec::new(),
            inbox: 0,
            wakeups: vec![0.0; nodes],
            wakeup_calls: 0,
        }
    }

    fn add(&mut self, slice: Slice, secs: f64) {
        let total = RedisCost::sum(&slice.nodes);
        self.rounds.push(RoundFigure {
            calls_per_s: slice.calls_per_s,
            redis_cpu_us: total.cpu_us,
            commands: total.total_commands(),
            wakeups: slice.wakeups.iter().sum(),
        });
        self.calls += slice.counted;
        self.secs += secs;
        self.total.add(&total, slice.calls);
        for (pool, cost) in self.nodes.iter_mut().zip(&slice.nodes) {
            pool.add(cost, slice.calls);
        }
        for (sum, w) in self.wakeups.iter_mut().zip(&slice.wakeups) {
            *sum += w * slice.calls as f64;
        }
        self.wakeup_calls += slice.calls;
        self.holders = slice.holders;
        self.inbox = slice.inbox;
    }

    fn configuration(&self, urls: &[String]) -> Configuration {
        let total = self.total.cost();
        let calls = self.wakeup_calls.max(1) as f64;
        let masters: Vec<Master> = self
            .nodes
            .iter()
            .zip(urls)
            .enumerate()
            .map(|(i, (pool, url))| {
                let redis = pool.cost();
                Master {
                    node: url.clone(),
                    shards_held: self.holders.iter().filter(|&&h| h == i).count() as u32,
                    holds_inbox: self.inbox == i,
                    wakeups: self.wakeups[i] / calls,
                    command_share: share(redis.total_commands(), total.total_commands()),
                    cpu_share: share(redis.cpu_us, total.cpu_us),
                    redis,
                }
            })
            .collect();
        let busiest = masters.iter().map(|m| m.redis.cpu_us).fold(0.0, f64::max);
        Configuration {
            shards: self.count,
            calls_per_s: self.calls as f64 / self.secs.max(f64::EPSILON),
            redis_cpu_us: total.cpu_us,
            commands: total.total_commands(),
            wakeups: self.wakeups.iter().sum::<f64>() / calls,
            calls_per_redis_core: 1e6 / total.cpu_us.max(f64::EPSILON),
            calls_per_busiest_core: 1e6 / busiest.max(f64::EPSILON),
            redis: total,
            masters,
            rounds: self.rounds.clone(),
        }
    }
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// `part` of `whole` in % (0 for nothing: an empty sum of `f64` is -0).
fn share(part: f64, whole: f64) -> f64 {
    if whole > 0.0 && part > 0.0 {
        part / whole * 100.0
    } else {
        0.0
    }
}

/// Runs the `--shards` mode and prints (and with `json`, writes) its report.
pub async fn run(
    plan: ShardsPlan,
    json: Option<&std::path::Path>,
    machine: Machine,
    command: String,
) -> Result<(), String> {
    let redis = Redis::start(plan.masters)?;
    let (urls, pids): (Vec<String>, Vec<u32>) = redis.nodes().into_iter().unzip();
    say(&format!(
        "{}: {}",
        if plan.masters.is_some() {
            "Redis Cluster"
        } else {
            "redis-server"
        },
        urls.join(", ")
    ));
    let mut nodes = Vec::with_capacity(urls.len());
    for (url, &pid) in urls.iter().zip(&pids) {
        nodes.push(Node::connect(url.clone(), pid).await?);
    }
    // Nothing but the bench's own connections: what the nodes cost idle.
    let before = read_all(&mut nodes).await?;
    let started = Instant::now();
    tokio::time::sleep(plan.idle).await;
    let after = read_all(&mut nodes).await?;
    let secs = started.elapsed().as_secs_f64();
    let idle: Vec<f64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| (a.cpu_s - b.cpu_s).max(0.0) * 1e6 / secs)
        .collect();
    say(&format!("idle CPU per node, µs per second: {idle:.0?}"));
    // Every round's client has its inbox on the node of shard 0 (the
    // service's own keys): with 1 shard, one node does all of a call's
    // work, as an unsharded service with one client does.
    // (`--inbox-apart`: on the next node instead, so a call on 1 shard
    // touches two masters.)
    let mut home = holder(&mut nodes, &Keys::new("rpc").jobs(SERVICE)).await?;
    if plan.inbox_apart {
        home = (home + 1) % nodes.len();
    }
    let mut pooled = [
        Pooled::new(1, nodes.len()),
        Pooled::new(plan.shards, nodes.len()),
    ];
    // Each round measures both counts back to back, in turn first (1, N,
    // N, 1, ...), so a drift in the machine's load favours neither.
    let mut round_ratios = Vec::with_capacity(plan.rounds);
    for round in 0..plan.rounds {
        let mut cpu = [0.0f64; 2];
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let p = &mut pooled[i];
            let slice = configuration(&redis, &mut nodes, p.count, home, &plan).await?;
            let total = RedisCost::sum(&slice.nodes);
            say(&format!(
                "round {} of {}, {} shard(s): {:.0} calls/s, Redis CPU {:.1} µs, {:.2} commands and {:.2} wake-ups per call",
                round + 1,
                plan.rounds,
                p.count,
                slice.calls_per_s,
                total.cpu_us,
                total.total_commands(),
                slice.wakeups.iter().sum::<f64>()
            ));
            cpu[i] = total.cpu_us;
            p.add(slice, plan.slice.as_secs_f64());
        }
        round_ratios.push(cpu[1] / cpu[0]);
    }
    let [one, many] = pooled.map(|p| p.configuration(&urls));
    let ratio = many.redis_cpu_us / one.redis_cpu_us;
    let median = median(&round_ratios);
    let target = Target {
        what: format!(
            "Redis CPU per call (all nodes), {} shards over 1 shard <= {TARGET_RATIO:.2} \
             (median of the rounds' pairs)",
            plan.shards
        ),
        measured: format!(
            "{median:.2}x (rounds: {}; pooled {ratio:.2}x)",
            round_ratios
                .iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        pass: median <= TARGET_RATIO,
    };
    let report = ShardsReport {
        machine,
        command,
        shards: plan.shards,
        masters: plan.masters.unwrap_or(1),
        cluster: plan.masters.is_some(),
        inbox_apart: plan.inbox_apart,
        in_flight: IN_FLIGHT,
        rounds: plan.rounds,
        slice_s: plan.slice.as_secs_f64(),
        idle_cpu_us_per_s: idle,
        configurations: vec![one, many],
        cpu_ratio: ratio,
        round_ratios,
        cpu_ratio_median: median,
        targets: vec![target],
    };
    println!("{}", report.markdown());
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
        say(&format!("wrote {}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    #[test]
    fn reads_entries_added_from_either_protocol_and_refuses_garbage() {
        let resp2 = Value::Array(vec![
            Value::BulkString(b"length".to_vec()),
            Value::Int(0),
            Value::BulkString(b"entries-added".to_vec()),
            Value::Int(42),
        ]);
        assert_eq!(field_u64(&resp2, "entries-added"), Some(42));
        let resp3 = Value::Map(vec![(
            Value::SimpleString("entries-added".into()),
            Value::Int(7),
        )]);
        assert_eq!(field_u64(&resp3, "entries-added"), Some(7));
        let negative = Value::Array(vec![
            Value::BulkString(b"entries-added".to_vec()),
            Value::Int(-1),
        ]);
        assert_eq!(field_u64(&negative, "entries-added"), None);
        assert_eq!(field_u64(&Value::Nil, "entries-added"), None);
        let odd = Value::Array(vec![Value::BulkString(b"entries-added".to_vec())]);
        assert_eq!(field_u64(&odd, "entries-added"), None);
    }
}
