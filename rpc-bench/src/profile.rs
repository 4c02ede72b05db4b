//! `--profile floor|typed`: one side's calls alone (sequential, or
//! `--in-flight N` at once), with the pids printed for a profiler, and
//! where each process's CPU time went per call. Under `valgrind
//! --tool=callgrind` it gives instructions per call, which a loaded
//! machine does not move: the way to compare two builds' plain call path
//! (see RESULTS.md). `--sends` makes fire-and-forget sends instead of
//! calls (the floor's `LPUSH`, the runtime's one-way `XADD`). Each run
//! also prints Redis's CPU time and the commands it ran per call (`INFO`),
//! which a profiler of the client cannot see: an added round trip costs
//! no client instructions but a whole wait. `--bulk` sends one-way jobs in
//! bulk instead, with no worker (what `--jobs`' bulk row measures). `--drain` sends a backlog in
//! bulk and has one worker process drain it (what `--jobs`' drain rows
//! measure), then asks the worker to stop, so a profiler of the worker
//! writes its figures.

use super::*;
use crate::measure::{FloorSender, TypedSender};
use crate::redis_stats::RedisStats;

/// Calls of one side alone, for a profiler attached to the processes it
/// names (`--profile floor|typed`): `calls` in all, by `in_flight`
/// callers at once; prints where the CPU time of each process went, per
/// call.
pub(super) async fn profile(
    server: &RedisServer,
    kind: Kind,
    calls: usize,
    in_flight: usize,
    sends: bool,
) -> Result<(), String> {
    let url = server.url();
    let in_flight = in_flight.max(1);
    let mut worker = spawn_worker(&url, kind)?;
    say(&format!(
        "profiling {}: client pid {}, worker pid {}, redis pid {}",
        kind.as_arg(),
        std::process::id(),
        worker.pid(),
        server.pid()
    ));
    let procs = [std::process::id(), worker.pid(), server.pid()];
    let profiled = match kind {
        Kind::Floor => {
            let mut callers = Vec::with_capacity(in_flight);
            for i in 0..in_flight {
                callers.push(
                    FloorCaller::connect(&url, i)
                        .await
                        .map_err(|e| format!("floor connection: {e}"))?,
                );
            }
            if sends {
                let senders = callers.into_iter().map(FloorSender).collect();
                profile_calls(&url, senders, calls, procs).await
            } else {
                profile_calls(&url, callers, calls, procs).await
            }
        }
        Kind::Blocking if sends => Err("--profile blocking: calls only".to_owned()),
        Kind::Blocking if in_flight > 1 => {
            Err("--profile blocking: one caller only (it blocks its thread)".to_owned())
        }
        Kind::Blocking => {
            let caller = BlockingCaller::connect(&url, 0)
                .map_err(|e| format!("blocking floor connection: {e}"))?;
            profile_calls(&url, vec![caller], calls, procs).await
        }
        Kind::Scheduled | Kind::JobsFloor => {
            Err("--profile scheduled|jobs-floor: that worker answers no calls".to_owned())
        }
        Kind::Typed => {
            let typed = typed_client(&url).await?;
            if sends {
                let senders = (0..in_flight).map(|_| TypedSender(typed.clone()));
                profile_calls(&url, senders.collect(), calls, procs).await
            } else {
                let callers = (0..in_flight).map(|_| TypedCaller(typed.clone()));
                profile_calls(&url, callers.collect(), calls, procs).await
            }
        }
    };
    // Asked to stop, not killed: a profiler writes its figures at exit.
    let _ = worker.sigterm();
    let _ = worker.wait_timeout(Duration::from_secs(30));
    profiled
}

async fn profile_calls<C: Caller>(
    url: &str,
    callers: Vec<C>,
    calls: usize,
    procs: [u32; 3],
) -> Result<(), String> {
    let in_flight = callers.len();
    let mut stats = floor::blocking_connection(url)
        .await
        .map_err(|e| format!("stats connection: {e}"))?;
    let (_, callers) = measure::fixed_count(callers, calls as u64 / 10).await?;
    let before = procs.map(measure::cpu_split);
    let redis_before = RedisStats::read(&mut stats).await?;
    let (took, _) = measure::fixed_count(callers, calls as u64).await?;
    let after = procs.map(measure::cpu_split);
    let redis = redis_before.per(&RedisStats::read(&mut stats).await?, calls as u64);
    say(&format!(
        "{calls} calls, {in_flight} in flight, {:.1} µs each",
        took.as_secs_f64() * 1e6 / calls.max(1) as f64
    ));
    say_costs(
        "call",
        calls as u64,
        &["client", "worker", "Redis"],
        &before,
        &after,
        &redis,
    );
    Ok(())
}

/// `--profile floor|typed --bulk`: `jobs` one-way jobs sent in bulk, no
/// worker running, after a tenth as many to warm up; prints the client's
/// and Redis's CPU per job.
pub(super) async fn profile_bulk(
    server: &RedisServer,
    kind: Kind,
    jobs: usize,
) -> Result<(), String> {
    let url = server.url();
    let procs = [std::process::id(), server.pid()];
    say(&format!(
        "profiling {} bulk sends: client pid {}, redis pid {}",
        kind.as_arg(),
        procs[0],
        procs[1]
    ));
    let mut stats = floor::blocking_connection(&url)
        .await
        .map_err(|e| format!("stats connection: {e}"))?;
    let jobs = jobs as u64;
    let ((cpu_before, redis_before), elapsed) = match kind {
        Kind::Floor => {
            let mut floor = crate::jobs_floor::FloorEnqueuer::connect(&url, 0).await?;
            floor.enqueue_bulk(0, jobs / 10).await?;
            let before = (
                procs.map(measure::cpu_split),
                RedisStats::read(&mut stats).await?,
            );
            let started = Instant::now();
            floor.enqueue_bulk(0, jobs).await?;
            (before, started.elapsed())
        }
        Kind::Typed => {
            let typed = typed_client(&url).await?;
            let send = |n: u64| {
                let batch: rpc_runtime::OneWayBatch = (0..n).map(|i| typed.note(i)).collect();
                async move {
                    batch
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("bulk send: {e}"))
                }
            };
            send(jobs / 10).await?;
            let before = (
                procs.map(measure::cpu_split),
                RedisStats::read(&mut stats).await?,
            );
            let started = Instant::now();
            send(jobs).await?;
            (before, started.elapsed())
        }
        _ => return Err("--profile --bulk: floor or typed".to_owned()),
    };
    say(&format!(
        "  {:.0} jobs/s",
        jobs as f64 / elapsed.as_secs_f64()
    ));
    let after = procs.map(measure::cpu_split);
    let redis = redis_before.per(&RedisStats::read(&mut stats).await?, jobs);
    say_costs(
        "job",
        jobs,
        &["client", "Redis"],
        &cpu_before,
        &after,
        &redis,
    );
    Ok(())
}

/// `--profile floor|typed --drain`: `jobs` one-way jobs sent in bulk, then
/// drained by one worker process taking `concurrency` at once; prints the
/// worker's and Redis's CPU per job over the drain, and asks the worker to
/// stop (a profiler writes its figures at exit).
pub(super) async fn profile_drain(
    server: &RedisServer,
    kind: Kind,
    jobs: usize,
    concurrency: usize,
) -> Result<(), String> {
    use crate::jobs_floor;

    let url = server.url();
    let jobs = jobs as u64;
    let mut stats = floor::blocking_connection(&url)
        .await
        .map_err(|e| format!("stats connection: {e}"))?;
    let (worker_kind, key) = match kind {
        Kind::Floor => {
            let mut floor = jobs_floor::FloorEnqueuer::connect(&url, 0).await?;
            jobs_floor::create_group(&mut floor.0).await?;
            floor.enqueue_bulk(0, jobs).await?;
            (Kind::JobsFloor, jobs_floor::STREAM.to_owned())
        }
        Kind::Typed => {
            let typed = typed_client(&url).await?;
            let batch: rpc_runtime::OneWayBatch = (0..jobs).map(|i| typed.note(i)).collect();
            batch.await.map_err(|e| format!("bulk send: {e}"))?;
            (Kind::Typed, typed::jobs_key())
        }
        _ => return Err("--profile --drain: floor or typed".to_owned()),
    };
    let mut worker = spawn_worker_with(&url, worker_kind, concurrency.max(1))?;
    let procs = [worker.pid(), server.pid()];
    say(&format!(
        "profiling the drain of {jobs} {} jobs at {concurrency} at once: worker pid {}, redis pid {}",
        kind.as_arg(),
        procs[0],
        procs[1]
    ));
    let cpu_before = procs.map(measure::cpu_split);
    let redis_before = RedisStats::read(&mut stats).await?;
    let started = Instant::now();
    loop {
        let done = match kind {
            Kind::Floor => jobs_floor::drained(&mut stats, jobs).await?,
            _ => {
                let left: u64 = redis::cmd("XLEN")
                    .arg(&key)
                    .query_async(&mut stats)
                    .await
                    .map_err(|e| format!("XLEN: {e}"))?;
                left == 0
            }
        };
        if done {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err(format!("{key}: not drained after 600 s"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    let after = procs.map(measure::cpu_split);
    let redis = redis_before.per(&RedisStats::read(&mut stats).await?, jobs);
    say(&format!(
        "{jobs} jobs drained in {:.2} s: {:.0} jobs/s",
        took.as_secs_f64(),
        jobs as f64 / took.as_secs_f64()
    ));
    say_costs(
        "job",
        jobs,
        &["worker", "Redis"],
        &cpu_before,
        &after,
        &redis,
    );
    // Asked to stop, not killed: a profiler writes its figures at exit.
    let _ = worker.sigterm();
    let _ = worker.wait_timeout(Duration::from_secs(30));
    Ok(())
}

/// Prints each process's user and system CPU per `unit` between `before`
/// and `after` (`measure::cpu_split` of the processes `who` names, in
/// order), then Redis's own CPU and commands per `unit`.
fn say_costs(
    unit: &str,
    count: u64,
    who: &[&str],
    before: &[(f64, f64)],
    after: &[(f64, f64)],
    redis: &crate::redis_stats::RedisCost,
) {
    let per = |secs: f64| secs * 1e6 / count.max(1) as f64;
    for (i, who) in who.iter().enumerate() {
        say(&format!(
            "  {who}: user {:.2} µs + system {:.2} µs per {unit}",
            per(after[i].0 - before[i].0),
            per(after[i].1 - before[i].1),
        ));
    }
    say(&format!(
        "  Redis (INFO): {:.2} µs of CPU, {:.3} reads and {:.2} commands per {unit}: {}",
        redis.cpu_us,
        redis.reads,
        redis.total_commands(),
        redis.describe()
    ));
}

/// The typed bench client, connected to `url`.
async fn typed_client(url: &str) -> Result<BenchClient, String> {
    let client = Client::builder(url)
        .connect()
        .await
        .map_err(|e| format!("client: {e}"))?;
    Ok(BenchClient::new(client))
}
