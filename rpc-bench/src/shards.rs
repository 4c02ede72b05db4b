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
//!
//! Then both configurations again, paced to one rate (90% of the slower
//! one's, [`crate::measure::paced_loop`]), with the same rounds and target:
//! what a call costs Redis falls as its batches grow, and they grow with
//! the rate, so at full speed the slower configuration (on this machine,
//! N shards on a Cluster: three masters, the worker and the client share
//! two cores) also pays for its smaller batches. At one rate, what is left
//! between the two is what sharding itself costs.

use super::*;
use crate::measure::paced_loop;
use crate::redis_stats::{CostPool, RedisCost};
use crate::shards_nodes::{holder, read_all, shard_entries, Node, Redis};
use crate::shards_report::{Comparison, Configuration, Master, RoundFigure, ShardsReport};
use rpc_runtime::backend::ShardOp;
use rpc_runtime::protocol::Keys;

/// The service the bench calls (its schema has one shard).
const SERVICE: &str = "Bench";
/// Calls in flight.
pub const IN_FLIGHT: usize = 64;
/// How much more Redis CPU per call N shards may cost than 1.
pub const TARGET_RATIO: f64 = 1.10;
/// The rate of the paced comparison, as a share of the slower
/// configuration's rate at full speed (so that both sustain it).
const PACE_SHARE: f64 = 0.9;
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
    pace: Option<f64>,
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
        let (_, _, back) = paced_loop(callers, Duration::ZERO, plan.warmup, pace).await?;
        callers = back;
        let placed = shard_entries(nodes, SERVICE, count).await?;
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
    let (counted, calls, back) = paced_loop(callers, Duration::ZERO, plan.slice, pace).await?;
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
    let spread = shard_entries(nodes, SERVICE, count).await?;
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
    let saturated = compare(&redis, &mut nodes, home, &plan, &urls, None).await?;
    // What a call costs Redis falls as its batches grow, and batches grow
    // with the rate: at full speed the slower configuration (on a 2-core
    // machine, N shards: three masters, the worker and the client share
    // the cores) also has the smaller batches. Both again at one rate that
    // both sustain, so what is left between them is what sharding costs.
    let slower = saturated
        .configurations
        .iter()
        .map(|c| c.calls_per_s)
        .fold(f64::INFINITY, f64::min);
    let rate = (slower * PACE_SHARE).max(1.0);
    say(&format!(
        "both again at {rate:.0} calls/s ({:.0}% of the slower one's rate)",
        PACE_SHARE * 100.0
    ));
    let paced = compare(&redis, &mut nodes, home, &plan, &urls, Some(rate)).await?;
    let targets = [&saturated, &paced]
        .into_iter()
        .map(|c| Target {
            what: format!(
                "Redis CPU per call (all nodes), {} shards over 1 shard <= {TARGET_RATIO:.2} \
                 (median of the rounds' pairs), {}",
                plan.shards,
                match c.rate {
                    None => "each as fast as it goes".to_owned(),
                    Some(r) => format!("both at {r:.0} calls/s"),
                }
            ),
            measured: format!(
                "{:.2}x (rounds: {}; pooled {:.2}x)",
                c.cpu_ratio_median,
                c.round_ratios
                    .iter()
                    .map(|r| format!("{r:.2}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                c.cpu_ratio
            ),
            pass: c.cpu_ratio_median <= TARGET_RATIO,
        })
        .collect();
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
        saturated,
        paced,
        targets,
    };
    crate::report::publish(&report.markdown(), &report, json)
}

/// 1 shard against N: `plan.rounds` rounds, each measuring both counts
/// back to back, in turn first (1, N, N, 1, ...), so a drift in the
/// machine's load favours neither; with `pace`, every call's start paced
/// to that many per second.
async fn compare(
    redis: &Redis,
    nodes: &mut [Node],
    home: usize,
    plan: &ShardsPlan,
    urls: &[String],
    pace: Option<f64>,
) -> Result<Comparison, String> {
    let mut pooled = [
        Pooled::new(1, nodes.len()),
        Pooled::new(plan.shards, nodes.len()),
    ];
    let mut round_ratios = Vec::with_capacity(plan.rounds);
    for round in 0..plan.rounds {
        let mut cpu = [0.0f64; 2];
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let p = &mut pooled[i];
            let slice = configuration(redis, nodes, p.count, home, plan, pace).await?;
            let total = RedisCost::sum(&slice.nodes);
            say(&format!(
                "round {} of {}, {} shard(s){}: {:.0} calls/s, Redis CPU {:.1} µs, {:.2} commands and {:.2} wake-ups per call",
                round + 1,
                plan.rounds,
                p.count,
                if pace.is_some() { ", paced" } else { "" },
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
    let [one, many] = pooled.map(|p| p.configuration(urls));
    Ok(Comparison {
        rate: pace,
        cpu_ratio: many.redis_cpu_us / one.redis_cpu_us,
        cpu_ratio_median: median(&round_ratios),
        round_ratios,
        configurations: vec![one, many],
    })
}
