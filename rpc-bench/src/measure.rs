//! Measuring: closed-loop callers, latency percentiles, process memory.
//!
//! Both sides (floor and runtime) are driven by the same code through the
//! [`Caller`] trait, so any cost of the harness lands on both equally.
//! Throughput is measured closed-loop: N tasks each make one call at a time,
//! so exactly N calls are in flight; calls finishing during the warm-up are
//! not counted.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use serde::Serialize;

use crate::floor::{BlockingCaller, FloorCaller};
use crate::redis_stats::{CostPool, RedisCost, RedisStats};
use crate::typed::BenchClient;

/// Something that makes one call and waits for its answer.
pub trait Caller: Send + 'static {
    fn call(&mut self, n: u64) -> impl Future<Output = Result<(), String>> + Send;
}

impl Caller for FloorCaller {
    async fn call(&mut self, n: u64) -> Result<(), String> {
        let a = n as i64;
        let got = self.add(a, 1).await?;
        check(got, a)
    }
}

impl Caller for BlockingCaller {
    async fn call(&mut self, n: u64) -> Result<(), String> {
        let a = n as i64;
        // The bench runs on a multi-threaded runtime: this thread blocks in
        // `recv` while the others go on.
        let got = tokio::task::block_in_place(|| self.add(a, 1))?;
        check(got, a)
    }
}

/// A typed caller: a clone of one shared client (one inbox, one reader).
pub struct TypedCaller(pub BenchClient);

impl Caller for TypedCaller {
    async fn call(&mut self, n: u64) -> Result<(), String> {
        let a = n as i64;
        let got = self.0.add(a, 1).await.map_err(|e| e.to_string())?;
        check(got, a)
    }
}

/// A fire-and-forget sender on the floor: `LPUSH floor:notes`, awaited.
pub struct FloorSender(pub FloorCaller);

impl Caller for FloorSender {
    async fn call(&mut self, n: u64) -> Result<(), String> {
        self.0.note(n as i64).await
    }
}

/// A fire-and-forget sender of the runtime: a one-way `note`, awaited
/// until it is enqueued.
pub struct TypedSender(pub BenchClient);

impl Caller for TypedSender {
    async fn call(&mut self, n: u64) -> Result<(), String> {
        self.0.note(n).await.map(drop).map_err(|e| e.to_string())
    }
}

fn check(got: i64, a: i64) -> Result<(), String> {
    if got == a.wrapping_add(1) {
        Ok(())
    } else {
        Err(format!("wrong answer: {a} + 1 = {got}"))
    }
}

/// Latency percentiles of one sequential run, in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    pub calls: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub mean_us: f64,
    /// CPU time per call of the client, the worker and Redis, in µs.
    pub cpu_us: [f64; 3],
    /// Times per call that a thread of the client, the worker and Redis was
    /// put on a CPU (woken): each is a context switch, which on a VM costs
    /// more than most of the work done in between.
    pub runs: [f64; 3],
}

/// The raw figures of sequential calls made by two callers (A and B).
#[derive(Debug, Default)]
pub struct SequentialSamples {
    sides: [Side; 2],
}

/// One caller's samples, and what its blocks cost the processes involved.
#[derive(Debug, Default)]
struct Side {
    samples: Vec<Duration>,
    /// CPU time charged to this side: client, worker, Redis, in ns.
    cpu: [u64; 3],
    /// Times a thread was put on a CPU, charged likewise.
    runs: [u64; 3],
}

impl Side {
    /// Makes `len` timed calls, numbered from `*n`, and charges the CPU
    /// time and wake-ups of `procs` (client, worker, Redis) meanwhile.
    async fn timed_block<C: Caller>(
        &mut self,
        caller: &mut C,
        len: usize,
        n: &mut u64,
        procs: [u32; 3],
    ) -> Result<(), String> {
        let before = procs.map(sched_stats);
        for _ in 0..len {
            *n += 1;
            let t = Instant::now();
            caller.call(*n).await?;
            self.samples.push(t.elapsed());
        }
        let after = procs.map(sched_stats);
        for i in 0..3 {
            self.cpu[i] += after[i].0.saturating_sub(before[i].0);
            self.runs[i] += after[i].1.saturating_sub(before[i].1);
        }
        Ok(())
    }

    fn latency(self) -> Latency {
        let calls = self.samples.len().max(1) as f64;
        let mut l = latency(self.samples);
        l.cpu_us = self.cpu.map(|ns| ns as f64 / 1e3 / calls);
        l.runs = self.runs.map(|n| n as f64 / calls);
        l
    }
}

impl SequentialSamples {
    /// Samples per side so far.
    pub fn count(&self) -> usize {
        self.sides[0].samples.len()
    }

    /// p50 of A and of B over the samples from index `from` on (one round).
    pub fn p50_since(&self, from: usize) -> (f64, f64) {
        let p50 = |s: &[Duration]| latency(s[from.min(s.len())..].to_vec()).p50_us;
        (p50(&self.sides[0].samples), p50(&self.sides[1].samples))
    }

    /// Percentiles over every sample so far, and CPU time per call.
    pub fn latencies(self) -> (Latency, Latency) {
        let [a, b] = self.sides;
        (a.latency(), b.latency())
    }
}

/// Sequential latency of two callers measured alternately, in blocks of
/// `block` calls, so that a burst of noise from other processes on the
/// machine hits both sides alike rather than whichever ran at the time.
/// Adds `calls` samples per side to `into`.
///
/// It also charges the CPU time each process spent during each side's blocks
/// to that side (`procs`: client, worker, Redis for A, then for B). CPU time
/// per call is much less sensitive to other load on the machine than
/// wall-clock latency, so it shows what an optimisation saved.
pub async fn sequential_pair<A: Caller, B: Caller>(
    a: &mut A,
    b: &mut B,
    warmup: usize,
    calls: usize,
    block: usize,
    procs: [[u32; 3]; 2],
    into: &mut SequentialSamples,
) -> Result<(), String> {
    for i in 0..warmup {
        a.call(i as u64).await?;
        b.call(i as u64).await?;
    }
    let [side_a, side_b] = &mut into.sides;
    let target = side_a.samples.len() + calls;
    let mut n = 0u64;
    while side_a.samples.len() < target {
        let len = block.min(target - side_a.samples.len());
        side_a.timed_block(a, len, &mut n, procs[0]).await?;
        side_b.timed_block(b, len, &mut n, procs[1]).await?;
    }
    Ok(())
}

/// CPU time (user + system) a process has used so far, in nanoseconds, and
/// how many times its threads were put on a CPU: the sums over its threads
/// of the first and third fields of `/proc/<pid>/task/<tid>/schedstat`.
pub fn sched_stats(pid: u32) -> (u64, u64) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| {
            let mut fields = s.split_whitespace();
            let cpu = fields.next()?.parse::<u64>().ok()?;
            let runs = fields.nth(1)?.parse::<u64>().ok()?;
            Some((cpu, runs))
        })
        .fold((0, 0), |(c, r), (cpu, runs)| (c + cpu, r + runs))
}

/// User and system CPU time a process has used so far, in seconds (fields
/// 14 and 15 of `/proc/<pid>/stat`, clock ticks of 10 ms: read them over
/// thousands of calls).
pub fn cpu_split(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces; count from after it.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) / 100.0, ticks(12) / 100.0)
}

fn latency(mut samples: Vec<Duration>) -> Latency {
    samples.sort_unstable();
    let pick = |q: f64| {
        let idx = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[idx].as_secs_f64() * 1e6
    };
    let mean = samples.iter().map(Duration::as_secs_f64).sum::<f64>() / samples.len() as f64;
    Latency {
        calls: samples.len(),
        p50_us: pick(0.50),
        p99_us: pick(0.99),
        p999_us: pick(0.999),
        mean_us: mean * 1e6,
        cpu_us: [0.0; 3],
        runs: [0.0; 3],
    }
}

/// Throughput of two sets of callers measured alternately in `rounds`
/// rounds (each: warm-up, then `measure / rounds` counted), so noise hits
/// both alike. Returns calls per second for each.
pub async fn throughput_pair<A: Caller, B: Caller>(
    a: Vec<A>,
    b: Vec<B>,
    warmup: Duration,
    measure: Duration,
    rounds: u32,
) -> Result<(f64, f64), String> {
    let (fa, fb, _) = throughput_pair_with(a, b, warmup, measure, rounds, None).await?;
    Ok((fa, fb))
}

/// [`throughput_pair`], and with `stats` (a connection to the same Redis)
/// what Redis did per call on each side (`INFO`, over each side's rounds,
/// warm-ups included).
pub async fn throughput_pair_with<A: Caller, B: Caller>(
    mut a: Vec<A>,
    mut b: Vec<B>,
    warmup: Duration,
    measure: Duration,
    rounds: u32,
    mut stats: Option<&mut MultiplexedConnection>,
) -> Result<(f64, f64, Option<[RedisCost; 2]>), String> {
    let slice = measure / rounds.max(1);
    let (mut ca, mut cb) = (0u64, 0u64);
    let mut redis = [CostPool::default(), CostPool::default()];
    for _ in 0..rounds.max(1) {
        let before = read_stats(&mut stats).await?;
        let (n, all, back) = closed_loop(a, warmup, slice).await?;
        pool(&mut redis[0], before, read_stats(&mut stats).await?, all);
        ca += n;
        a = back;
        let before = read_stats(&mut stats).await?;
        let (n, all, back) = closed_loop(b, warmup, slice).await?;
        pool(&mut redis[1], before, read_stats(&mut stats).await?, all);
        cb += n;
        b = back;
    }
    let secs = (slice * rounds.max(1)).as_secs_f64();
    let costs = stats.map(|_| redis.map(|p| p.cost()));
    Ok((ca as f64 / secs, cb as f64 / secs, costs))
}

fn pool(into: &mut CostPool, before: Option<RedisStats>, after: Option<RedisStats>, calls: u64) {
    if let (Some(before), Some(after)) = (before, after) {
        into.add(&before.per(&after, calls), calls);
    }
}

async fn read_stats(
    stats: &mut Option<&mut MultiplexedConnection>,
) -> Result<Option<RedisStats>, String> {
    match stats {
        Some(con) => RedisStats::read(con).await.map(Some),
        None => Ok(None),
    }
}

/// Runs one task per caller, each calling in a loop, for `warmup + measure`;
/// returns the calls completed during `measure`, all calls made, and the
/// callers.
pub async fn closed_loop<C: Caller>(
    callers: Vec<C>,
    warmup: Duration,
    measure: Duration,
) -> Result<(u64, u64, Vec<C>), String> {
    paced_loop(callers, warmup, measure, None).await
}

/// [`closed_loop`], with the calls' starts paced to at most `rate` per
/// second over all callers (`None`: as fast as they are answered). Each
/// call takes the next slot of one schedule (`k / rate` after the start)
/// and waits for it, so the callers keep their calls in flight but Redis
/// sees the same rate whatever it costs: what a call costs Redis falls as
/// its batches grow, so two setups compare fairly only at one rate.
pub async fn paced_loop<C: Caller>(
    callers: Vec<C>,
    warmup: Duration,
    measure: Duration,
    rate: Option<f64>,
) -> Result<(u64, u64, Vec<C>), String> {
    let origin = Instant::now();
    let start = origin + warmup;
    let end = start + measure;
    let slots = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(callers.len());
    for (i, mut caller) in callers.into_iter().enumerate() {
        let slots = slots.clone();
        tasks.push(tokio::spawn(async move {
            let mut counted = 0u64;
            let first = (i as u64) << 32;
            let mut n = first;
            loop {
                if let Some(rate) = rate {
                    let slot = slots.fetch_add(1, Ordering::Relaxed);
                    let at = origin + Duration::from_secs_f64(slot as f64 / rate);
                    tokio::time::sleep_until(at.into()).await;
                }
                caller.call(n).await?;
                n += 1;
                let now = Instant::now();
                if now >= end {
                    return Ok::<_, String>((counted, n - first, caller));
                }
                if now >= start {
                    counted += 1;
                }
            }
        }));
    }
    let (mut total, mut all) = (0, 0);
    let mut back = Vec::with_capacity(tasks.len());
    for t in tasks {
        let (n, made, caller) = t.await.map_err(|e| e.to_string())??;
        total += n;
        all += made;
        back.push(caller);
    }
    Ok((total, all, back))
}

/// Makes `total` calls with one task per caller; returns the elapsed time
/// and the callers.
pub async fn fixed_count<C: Caller>(
    callers: Vec<C>,
    total: u64,
) -> Result<(Duration, Vec<C>), String> {
    let left = Arc::new(AtomicU64::new(total));
    let t = Instant::now();
    let mut tasks = Vec::with_capacity(callers.len());
    for mut caller in callers {
        let left = left.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let n = left.fetch_sub(1, Ordering::Relaxed);
                if n == 0 || n > total {
                    return Ok::<C, String>(caller);
                }
                caller.call(n).await?;
            }
        }));
    }
    let mut back = Vec::with_capacity(tasks.len());
    for task in tasks {
        back.push(task.await.map_err(|e| e.to_string())??);
    }
    Ok((t.elapsed(), back))
}

/// Resident set size of a process in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
