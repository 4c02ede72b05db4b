//! `rpc-bench`: latency, throughput and memory of `rpc-runtime` measured in
//! one run, side by side with a hand-written raw-Redis floor (issue 5).
//!
//! ```text
//! cargo run --release -p rpc-bench                 # default run, ~1 minute
//! cargo run --release -p rpc-bench -- --json out.json
//! cargo run --release -p rpc-bench -- --long       # 1,000,000 calls for the memory figures
//! cargo run --release -p rpc-bench -- --quick      # a few hundred calls: checks the harness only
//! cargo run --release -p rpc-bench -- --schedule-lateness  # only how late delayed jobs start, ~10 s
//! cargo run --release -p rpc-bench -- --jobs       # background jobs against a stream floor, ~2 min
//! cargo run --release -p rpc-bench -- --jobs-group # what a group key costs a job, ~30 s
//! cargo run --release -p rpc-bench -- --shards 8    # Redis CPU per call, 1 shard against 8, ~40 s
//! cargo run --release -p rpc-bench -- --shards 8 --cluster 3  # the same on a 3-master Cluster
//! RPC_BENCH_RATE_LIMITS="Bench.note=1000000/s" cargo run --release -p rpc-bench -- --jobs  # the jobs asking a rate limit that never bites
//! ```
//!
//! The bench starts its own `redis-server` on a free port (rpc-testkit) and
//! its worker processes by re-executing itself with the hidden `worker`
//! subcommand (`--kind floor` or `--kind typed`), so client, workers and Redis
//! are separate processes as in production. Floor and runtime are measured
//! alternately in the same run against the same Redis, and every figure is
//! reported with its ratio to the floor: on a shared, noisy machine the ratio
//! is what means something, not the absolute number. The sequential figures
//! are pooled over several rounds (`--seq-rounds`, default 5), each with a
//! fresh pair of worker processes, and each round's p50 ratio is printed as
//! it goes: the spread between rounds is part of the result.
//!
//! What the floor is exactly is written in [`floor`]; how calls are driven in
//! [`measure`]; the fire-and-forget figure, in alternating rounds, in
//! [`fire_and_forget`]; the typed service (as codegen would emit it) in [`typed`];
//! the schedule-lateness mode, which has no floor, in [`lateness`]; the
//! background-jobs mode in [`jobs`], against the stream floor of
//! [`jobs_floor`]; the sharded-service mode (`--shards N [--cluster M]`:
//! Redis CPU per call and each master's share, 1 shard against N, each as
//! fast as it goes and both at one rate, no floor) in [`shards`].
//!
//! `--telemetry` turns spans and metrics on in the bench and its typed
//! workers (a subscriber that records spans but exports nothing, client
//! metrics in a registry, workers serving metrics on a free port), to
//! measure what observability costs against the same run without it.
//! `--telemetry-compare` measures it off and on in alternating rounds of
//! one run instead ([`compare`]): on a noisy machine, the way to see it.
//!
//! `RPC_BENCH_THREADS=n` sets the async runtime's worker threads of the bench
//! and its worker processes (default: one per CPU), to see how much of a
//! figure is thread hand-offs rather than work.

mod compare;
mod fire_and_forget;
mod floor;
mod groups;
mod jobs;
mod jobs_floor;
mod lateness;
mod measure;
mod memory;
mod profile;
mod redis_stats;
mod report;
mod shards;
mod shards_nodes;
mod shards_report;
mod typed;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use rpc_runtime::Client;
use rpc_testkit::{ChildGuard, RedisServer};

use floor::{BlockingCaller, FloorCaller};
use measure::{Caller, SequentialSamples, TypedCaller};
use report::{Better, Machine, MemRow, Report, Target};
use typed::BenchClient;

/// Calls in flight for the throughput figures.
const IN_FLIGHT: [usize; 4] = [1, 16, 64, 256];
/// Jobs a worker process runs at once (floor: tasks with their own connection).
const WORKER_CONCURRENCY: usize = 256;

#[derive(Parser)]
#[command(
    name = "rpc-bench",
    version,
    about = "Benchmark rpc-runtime against a hand-written raw-Redis floor, in one run"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// 1,000,000 calls for the memory figures (default 100,000).
    #[arg(long, conflicts_with = "quick")]
    long: bool,
    /// A few hundred calls per figure: checks that the harness works, the
    /// figures mean nothing.
    #[arg(long)]
    quick: bool,
    /// Seconds measured per throughput figure (default 1.5).
    #[arg(long)]
    seconds: Option<f64>,
    /// Sequential calls for the latency figures (default 10,000).
    #[arg(long)]
    seq_calls: Option<usize>,
    /// Rounds the sequential calls are split into, each with freshly
    /// started worker processes (default 5).
    #[arg(long)]
    seq_rounds: Option<usize>,
    /// Only the sequential figures (for profiling the hot path).
    #[arg(long, hide = true)]
    only_sequential: bool,
    /// Only calls of this side, `--seq-calls` of them, with its process
    /// ids printed: for `perf`, `strace` or callgrind on one side alone.
    #[arg(long, hide = true, value_enum)]
    profile: Option<Kind>,
    /// With `--profile`: this many callers at once (default 1, sequential).
    #[arg(long, hide = true, requires = "profile", default_value_t = 1)]
    in_flight: usize,
    /// With `--profile`: fire-and-forget sends instead of calls.
    #[arg(long, hide = true, requires = "profile")]
    sends: bool,
    /// With `--profile floor|typed`: `--seq-calls` one-way jobs sent in
    /// bulk (the floor's pipelined `XADD`s, the runtime's `OneWayBatch`),
    /// no worker running.
    #[arg(long, hide = true, requires = "profile", conflicts_with = "sends")]
    bulk: bool,
    /// With `--profile floor|typed`: a backlog of `--seq-calls` one-way
    /// jobs, sent in bulk, drained by one worker process at `--in-flight`
    /// jobs at once (what `--jobs`' drain rows measure).
    #[arg(long, hide = true, requires = "profile", conflicts_with_all = ["sends", "bulk"])]
    drain: bool,
    /// Instead of the comparison with the floor: how late delayed jobs
    /// start, 5,000 due at 1,000 per second on two worker processes
    /// (with `--quick`, 500 over 0.5 s).
    #[arg(long, conflicts_with_all = ["long", "profile", "only_sequential"])]
    schedule_lateness: bool,
    /// Spans and metrics on (no exporter): a recording `tracing`
    /// subscriber, client metrics, and the typed workers' metrics listener.
    #[arg(long)]
    telemetry: bool,
    /// Telemetry off and on in alternating rounds (`--seq-rounds` of each,
    /// fresh workers each), sequential p50 and 64-in-flight throughput
    /// against the floor, then the medians side by side.
    #[arg(long, conflicts_with_all = ["telemetry", "profile", "only_sequential"])]
    telemetry_compare: bool,
    /// Instead of the comparison of calls: background jobs against a
    /// hand-written stream floor (`XADD` / `XREADGROUP` / `XACK`):
    /// enqueue one at a time, with 64 in flight and in bulk; a backlog
    /// drained by one worker process at concurrency 1, 16 and 100; Redis
    /// CPU and commands per job for each (~2 minutes; with `--quick`, 500
    /// jobs a backlog).
    #[arg(long, conflicts_with_all = ["long", "profile", "only_sequential", "telemetry_compare", "schedule_lateness"])]
    jobs: bool,
    /// Instead of the comparison of calls: what a group key costs a
    /// background job (plain, keyed, keyed and parked), ~30 s.
    #[arg(long, conflicts_with_all = ["long", "profile", "only_sequential", "jobs"])]
    jobs_group: bool,
    /// With `--jobs`: jobs per backlog (default 100,000).
    #[arg(long, requires = "jobs")]
    jobs_backlog: Option<u64>,
    /// With `--jobs`: the floor's messages padded to this many bytes, or
    /// `same`: the size of the runtime's message for the same job (default:
    /// unpadded, about 13 bytes).
    #[arg(long, requires = "jobs")]
    jobs_floor_bytes: Option<String>,
    /// Instead of the comparison of calls: the typed service at 64 in
    /// flight on 1 shard and on this many, alternately (5 rounds of 1.5 s
    /// each, `--seconds` per round), every node's Redis CPU and commands
    /// per call and each master's share (~40 s; with `--quick`, 2 rounds
    /// of 0.25 s).
    #[arg(
        long,
        value_parser = clap::value_parser!(u32).range(2..=i64::from(rpc_runtime::protocol::shards::MAX_SHARDS)),
        conflicts_with_all = ["long", "profile", "only_sequential", "telemetry_compare", "schedule_lateness", "jobs", "telemetry"]
    )]
    shards: Option<u32>,
    /// With `--shards`: on a Redis Cluster of this many masters (at least
    /// 3) instead of one redis-server.
    #[arg(long, requires = "shards", value_parser = clap::value_parser!(u16).range(3..=16))]
    cluster: Option<u16>,
    /// With `--cluster`: the client's inbox on another master than the
    /// service's shard 0 (by default on the same one).
    #[arg(long, requires = "cluster")]
    inbox_apart: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs as a worker process of the bench (started by the bench itself).
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        url: String,
        #[arg(long, value_enum)]
        kind: Kind,
        #[arg(long, default_value_t = WORKER_CONCURRENCY)]
        concurrency: usize,
        #[arg(long)]
        telemetry: bool,
    },
}

/// Whether `--telemetry` is on (worker processes are started with it too).
static TELEMETRY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Records spans (the `tracing` registry stores each one) and exports nothing.
fn record_spans() {
    let _ = tracing_subscriber::util::SubscriberInitExt::try_init(tracing_subscriber::registry());
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Floor,
    /// The blocking floor (the `redis` crate's synchronous connection).
    Blocking,
    Typed,
    /// The schedule-lateness worker: records when each job starts.
    Scheduled,
    /// The jobs floor's drain worker (`XREADGROUP` / `XACK` by hand).
    JobsFloor,
}

impl Kind {
    fn as_arg(self) -> &'static str {
        match self {
            Kind::Floor => "floor",
            Kind::Blocking => "blocking",
            Kind::Typed => "typed",
            Kind::Scheduled => "scheduled",
            Kind::JobsFloor => "jobs-floor",
        }
    }
}

/// How much of everything one run does.
struct Plan {
    mode: &'static str,
    seq_warmup: usize,
    seq_calls: usize,
    seq_rounds: usize,
    tp_warmup: Duration,
    tp_measure: Duration,
    ff_sends: u64,
    mem_warmup: u64,
    mem_calls: u64,
}

impl Plan {
    fn new(cli: &Cli) -> Plan {
        let mut plan = if cli.quick {
            Plan {
                mode: "quick",
                seq_warmup: 20,
                seq_calls: 200,
                seq_rounds: 2,
                tp_warmup: Duration::from_millis(20),
                tp_measure: Duration::from_millis(150),
                ff_sends: 200,
                mem_warmup: 50,
                mem_calls: 200,
            }
        } else {
            Plan {
                mode: "default",
                seq_warmup: 200,
                seq_calls: 10_000,
                seq_rounds: 5,
                tp_warmup: Duration::from_millis(150),
                tp_measure: Duration::from_millis(1500),
                ff_sends: 20_000,
                mem_warmup: 20_000,
                mem_calls: 100_000,
            }
        };
        if cli.long {
            plan.mode = "long";
            plan.mem_calls = 1_000_000;
        }
        if let Some(n) = cli.seq_calls {
            plan.seq_calls = n.max(1);
        }
        if let Some(r) = cli.seq_rounds {
            plan.seq_rounds = r.max(1);
        }
        if let Some(s) = cli.seconds {
            plan.tp_measure = Duration::from_secs_f64(s.max(0.05));
        }
        plan
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("RPC_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        builder.worker_threads(n.max(1));
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rpc-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Some(Cmd::Worker {
            ref url,
            kind,
            concurrency,
            telemetry,
        }) => {
            if telemetry {
                record_spans();
                TELEMETRY.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            rt.block_on(run_worker(url, kind, concurrency))
        }
        // The bench runs as a task on the runtime's worker threads, as
        // application code does, not on the thread that blocks on it.
        None => rt.block_on(async move {
            tokio::spawn(async move { bench(&cli).await })
                .await
                .unwrap_or_else(|e| Err(format!("the bench task failed: {e}")))
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rpc-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_worker(url: &str, kind: Kind, concurrency: usize) -> Result<(), String> {
    match kind {
        Kind::Floor => floor::run_worker(url, concurrency)
            .await
            .map_err(|e| format!("floor worker: {e}")),
        // Sequential calls only: a few threads are plenty.
        Kind::Blocking => tokio::task::block_in_place(|| floor::run_blocking_worker(url, 4))
            .map_err(|e| format!("blocking floor worker: {e}")),
        Kind::Typed => {
            let telemetry = TELEMETRY.load(std::sync::atomic::Ordering::Relaxed);
            typed::run_worker(url, concurrency, telemetry).await
        }
        Kind::Scheduled => lateness::run_worker(url, concurrency).await,
        Kind::JobsFloor => jobs_floor::run_worker(url, concurrency).await,
    }
}

/// Starts a worker process (this binary, `worker` subcommand) and waits until it is ready.
fn spawn_worker(url: &str, kind: Kind) -> Result<ChildGuard, String> {
    spawn_worker_with(url, kind, WORKER_CONCURRENCY)
}

/// [`spawn_worker`] with the worker's concurrency given.
fn spawn_worker_with(url: &str, kind: Kind, concurrency: usize) -> Result<ChildGuard, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find my own binary: {e}"))?;
    let mut child = ChildGuard::spawn(
        Command::new(exe)
            .args(["worker", "--url", url, "--kind", kind.as_arg()])
            .args(["--concurrency", &concurrency.to_string()])
            .args(
                TELEMETRY
                    .load(std::sync::atomic::Ordering::Relaxed)
                    .then_some("--telemetry"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    )
    .map_err(|e| format!("cannot start a worker process: {e}"))?;
    let stdout = child
        .child_mut()
        .stdout
        .take()
        .ok_or("worker stdout is not piped")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| format!("reading from a worker process: {e}"))?;
    if line.trim() != "ready" {
        return Err(format!(
            "{} worker process did not start (said {line:?})",
            kind.as_arg()
        ));
    }
    Ok(child)
}

async fn floor_callers(url: &str, n: usize) -> Result<Vec<FloorCaller>, String> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(
            FloorCaller::connect(url, i)
                .await
                .map_err(|e| format!("floor connection: {e}"))?,
        );
    }
    Ok(out)
}

fn typed_callers(client: &BenchClient, n: usize) -> Vec<TypedCaller> {
    (0..n).map(|_| TypedCaller(client.clone())).collect()
}

fn say(what: &str) {
    eprintln!("rpc-bench: {what}");
}

/// The bench's client builder: with metrics under `--telemetry`.
fn client_builder(url: &str) -> rpc_runtime::ClientBuilder {
    let builder = Client::builder(url);
    if !TELEMETRY.load(std::sync::atomic::Ordering::Relaxed) {
        return builder;
    }
    let mut registry = rpc_runtime::telemetry::prometheus_client::registry::Registry::default();
    builder.metrics(rpc_runtime::telemetry::ClientMetrics::register(
        &mut registry,
    ))
}

/// How this run was started, for the report.
fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        "cargo run --release -p rpc-bench".to_owned()
    } else {
        format!("cargo run --release -p rpc-bench -- {}", args.join(" "))
    }
}

async fn bench(cli: &Cli) -> Result<(), String> {
    if cli.telemetry {
        record_spans();
        TELEMETRY.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let plan = Plan::new(cli);
    if let Some(n) = cli.shards {
        let masters = cli.cluster.map(usize::from);
        let mut plan = shards::ShardsPlan::new(n, masters, cli.quick, cli.seconds);
        plan.inbox_apart = cli.inbox_apart;
        let json = cli.json.as_deref();
        return shards::run(plan, json, Machine::detect(), command_line()).await;
    }
    let server = RedisServer::start().map_err(|e| format!("cannot start redis-server: {e}"))?;
    let url = server.url();
    let mut report = Report {
        machine: Machine::detect(),
        mode: plan.mode.to_owned(),
        command: command_line(),
        rows: Vec::new(),
        memory_calls: plan.mem_calls,
        memory: Vec::new(),
        targets: Vec::new(),
    };
    say(&format!("redis-server on {url}"));
    if let Some(kind) = cli.profile {
        if cli.bulk {
            return profile::profile_bulk(&server, kind, plan.seq_calls).await;
        }
        if cli.drain {
            return profile::profile_drain(&server, kind, plan.seq_calls, cli.in_flight).await;
        }
        return profile::profile(&server, kind, plan.seq_calls, cli.in_flight, cli.sends).await;
    }
    if cli.telemetry_compare {
        return compare::run(&server, &plan).await;
    }
    if cli.jobs_group {
        return groups::run(&server, cli.quick).await;
    }
    if cli.jobs {
        let mut plan = jobs::JobsPlan::new(cli.quick, cli.jobs_backlog);
        plan.floor_bytes = jobs::FloorBytes::parse(cli.jobs_floor_bytes.as_deref())?;
        let json = cli.json.as_deref();
        return jobs::run(&server, plan, json, report.machine, report.command).await;
    }
    if cli.schedule_lateness {
        let spawn = || spawn_worker(&url, Kind::Scheduled);
        let json = cli.json.as_deref();
        return lateness::run(&url, cli.quick, json, report.machine, report.command, spawn).await;
    }
    let client = client_builder(&url)
        .connect()
        .await
        .map_err(|e| format!("client: {e}"))?;
    let typed = BenchClient::new(client);

    // Sequential latency, in rounds. Each round starts its own pair of
    // worker processes and the samples of all rounds are pooled: on this
    // 2-core VM the ratio differs from one pair of processes to the next
    // (1.17x to 1.54x between the rounds of one run was seen), so a figure
    // from one pair says as much about that start as about the code.
    let mut fc = FloorCaller::connect(&url, 0)
        .await
        .map_err(|e| format!("floor connection: {e}"))?;
    let mut tc = TypedCaller(typed.clone());
    let mut samples = SequentialSamples::default();
    let mut round_ratios = Vec::with_capacity(plan.seq_rounds);
    for round in 0..plan.seq_rounds {
        say(&format!(
            "sequential latency, round {} of {}",
            round + 1,
            plan.seq_rounds
        ));
        let from = samples.count();
        let calls = plan.seq_calls / plan.seq_rounds
            + usize::from(round < plan.seq_calls % plan.seq_rounds);
        sequential_round(
            &server,
            (Kind::Floor, &mut fc),
            &mut tc,
            plan.seq_warmup,
            calls,
            &mut samples,
        )
        .await?;
        let (f, t) = samples.p50_since(from);
        round_ratios.push(t / f);
        say(&format!(
            "round {}: p50 floor {f:.1} µs, rpc-runtime {t:.1} µs, {:.2}x",
            round + 1,
            t / f
        ));
    }
    let (fl, tl) = samples.latencies();

    // For reference, not a target: the same sequential calls against the
    // blocking floor, one more round of fresh worker processes.
    say("sequential latency against the blocking floor, for reference");
    let reference = {
        let mut bc = BlockingCaller::connect(&url, 0)
            .map_err(|e| format!("blocking floor connection: {e}"))?;
        let mut reference = SequentialSamples::default();
        sequential_round(
            &server,
            (Kind::Blocking, &mut bc),
            &mut tc,
            plan.seq_warmup,
            (plan.seq_calls / 2).max(1),
            &mut reference,
        )
        .await?;
        reference.latencies()
    };
    say("starting worker processes");
    let mut floor_workers = vec![spawn_worker(&url, Kind::Floor)?];
    let mut typed_workers = vec![spawn_worker(&url, Kind::Typed)?];
    let seq = format!(
        "sequential call-and-wait, {} calls in {} rounds",
        plan.seq_calls, plan.seq_rounds
    );
    report.row(
        format!("{seq}: p50"),
        "µs",
        fl.p50_us,
        tl.p50_us,
        Better::Lower,
    );
    report.row(
        format!("{seq}: p99"),
        "µs",
        fl.p99_us,
        tl.p99_us,
        Better::Lower,
    );
    report.row(
        format!("{seq}: p999"),
        "µs",
        fl.p999_us,
        tl.p999_us,
        Better::Lower,
    );
    report.row(
        format!("{seq}: mean"),
        "µs",
        fl.mean_us,
        tl.mean_us,
        Better::Lower,
    );
    for (i, who) in ["client", "worker", "Redis"].into_iter().enumerate() {
        report.row(
            format!("CPU time per sequential call: {who}"),
            "µs",
            fl.cpu_us[i],
            tl.cpu_us[i],
            Better::Lower,
        );
    }
    for (i, who) in ["client", "worker", "Redis"].into_iter().enumerate() {
        report.row(
            format!("threads put on a CPU per sequential call: {who}"),
            "runs",
            fl.runs[i],
            tl.runs[i],
            Better::Lower,
        );
    }
    let blocking = format!(
        "sequential call-and-wait against the blocking floor (redis::Connection, a thread per caller), {} calls",
        reference.0.calls
    );
    report.row(
        format!("{blocking}: p50"),
        "µs",
        reference.0.p50_us,
        reference.1.p50_us,
        Better::Lower,
    );
    report.row(
        format!("{blocking}: p99"),
        "µs",
        reference.0.p99_us,
        reference.1.p99_us,
        Better::Lower,
    );
    let p50_ratio = tl.p50_us / fl.p50_us;
    let (lowest, highest) = round_ratios
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), &r| {
            (lo.min(r), hi.max(r))
        });
    report.targets.push(Target {
        what: "sequential p50 <= 1.3x the floor".to_owned(),
        measured: format!(
            "{p50_ratio:.2}x (its {} rounds: {lowest:.2}x to {highest:.2}x)",
            round_ratios.len()
        ),
        pass: p50_ratio <= 1.3,
    });

    let mut tp64 = Vec::new();
    let mut redis_per_call_64 = None;
    let mut stats = floor::blocking_connection(&url)
        .await
        .map_err(|e| format!("stats connection: {e}"))?;
    let worker_counts: &[usize] = if cli.only_sequential { &[] } else { &[1, 2] };
    for &workers in worker_counts {
        if workers == 2 {
            floor_workers.push(spawn_worker(&url, Kind::Floor)?);
            typed_workers.push(spawn_worker(&url, Kind::Typed)?);
        }
        for in_flight in IN_FLIGHT {
            say(&format!(
                "throughput, {in_flight} in flight, {workers} worker process(es)"
            ));
            let stats = (in_flight == 64).then_some(&mut stats);
            let (f, t, redis) = measure::throughput_pair_with(
                floor_callers(&url, in_flight).await?,
                typed_callers(&typed, in_flight),
                plan.tp_warmup,
                plan.tp_measure,
                3,
                stats,
            )
            .await?;
            let label = format!(
                "{in_flight} in flight, {workers} worker{}",
                if workers == 1 { "" } else { "s" }
            );
            report.row(
                format!("throughput, {label}"),
                "calls/s",
                f,
                t,
                Better::Higher,
            );
            if let Some([floor_redis, rpc_redis]) = redis {
                report.row(
                    format!("Redis CPU per call (INFO), {label}"),
                    "µs",
                    floor_redis.cpu_us,
                    rpc_redis.cpu_us,
                    Better::Lower,
                );
                if workers == 1 {
                    redis_per_call_64 = Some(rpc_redis.cpu_us);
                }
                say(&format!(
                    "Redis commands per call, {label}: floor {}; rpc-runtime {}",
                    floor_redis.describe(),
                    rpc_redis.describe()
                ));
            }
            if in_flight == 64 {
                tp64.push((workers, t / f));
            }
        }
        if workers == 1 {
            fire_and_forget::run(&url, &plan, &typed, &mut report).await?;
            memory::memory(&server, &plan, &typed, typed_workers[0].pid(), &mut report).await?;
        }
    }
    for (workers, ratio) in tp64 {
        report.targets.push(Target {
            what: format!("throughput at 64 in flight, {workers} worker(s) >= 0.8x the floor"),
            measured: format!("{ratio:.2}x"),
            pass: ratio >= 0.8,
        });
    }
    if let Some(us) = redis_per_call_64 {
        report.targets.push(Target {
            what: "Redis CPU per call at 64 in flight, 1 worker <= 10 µs".to_owned(),
            measured: format!("{us:.1} µs"),
            pass: us <= 10.0,
        });
    }
    drop(floor_workers);
    drop(typed_workers);

    report::publish(&report.markdown(), &report, cli.json.as_deref())
}

/// One round of sequential calls, a floor of `kind` against the runtime,
/// each with a worker process started for the round, in blocks of 250
/// calls; adds `calls` samples per side to `into`.
async fn sequential_round<F: Caller>(
    server: &RedisServer,
    (kind, floor): (Kind, &mut F),
    typed: &mut TypedCaller,
    warmup: usize,
    calls: usize,
    into: &mut SequentialSamples,
) -> Result<(), String> {
    let url = server.url();
    let floor_worker = spawn_worker(&url, kind)?;
    let typed_worker = spawn_worker(&url, Kind::Typed)?;
    let me = std::process::id();
    let procs = [
        [me, floor_worker.pid(), server.pid()],
        [me, typed_worker.pid(), server.pid()],
    ];
    measure::sequential_pair(floor, typed, warmup, calls, 250, procs, into).await
}
