//! Periodic jobs with real worker processes on one private redis-server:
//! three `chaos-worker`s given the same 200 ms job for 3 s run each tick
//! exactly once with none missing; and after every worker was stopped for
//! several intervals, a restarted one runs the missed ticks once
//! (`run-once`) or not at all (`skip`).
//!
//! The periodic job is `Chaos.sleep {"ms": 0}`, which prints `start ID
//! ATTEMPT`: the ids (`periodic:beat:<tick ms>`) say which ticks ran, in
//! which process, how often. Times are read from Redis's clock (`TIME`),
//! the clock the ticks are computed on.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rpc_chaos::{jobs_key, Event, WorkerProcess};
use rpc_testkit::RedisServer;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_chaos-worker"))
}

/// One test at a time: on a 2-core machine two would measure each other.
fn serial(body: impl FnOnce()) {
    static TURN: Mutex<()> = Mutex::new(());
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    body();
}

/// Redis's clock, in ms.
fn broker_ms(redis: &RedisServer) -> u64 {
    let time = redis.cli(["TIME"]);
    let mut parts = time.lines().map(|l| l.trim().parse::<u64>().unwrap());
    let (secs, micros) = (parts.next().unwrap(), parts.next().unwrap());
    secs * 1000 + micros / 1000
}

fn spec(every_ms: u64) -> String {
    format!(r#"beat=every:{every_ms}ms:Chaos.sleep:{{"ms":0}}"#)
}

/// Stops a worker with SIGTERM and waits for its graceful exit.
fn stop(worker: &mut WorkerProcess) {
    worker.child.sigterm().unwrap();
    worker
        .wait_for(Duration::from_secs(20), |e| matches!(e, Event::Stats(_)))
        .expect("a graceful exit");
}

/// The ticks a worker ran, from its `start periodic:beat:<tick>` lines.
fn ticks_of(worker: &mut WorkerProcess) -> Vec<u64> {
    worker
        .drain()
        .iter()
        .filter_map(|e| match e {
            Event::Start(id, attempt) => {
                assert_eq!(*attempt, 1, "{id} ran on attempt {attempt}");
                let tick = id.strip_prefix("periodic:beat:")?;
                Some(tick.parse().expect("a tick in ms"))
            }
            _ => None,
        })
        .collect()
}

/// Counts per tick across workers.
fn count(all: impl IntoIterator<Item = u64>) -> BTreeMap<u64, usize> {
    let mut runs = BTreeMap::new();
    for tick in all {
        *runs.entry(tick).or_default() += 1;
    }
    runs
}

/// The issue's promise: three workers, a 200 ms interval, 3 s: each tick
/// runs once, and every tick between the first worker's start and the
/// stop is there.
#[test]
fn three_worker_processes_run_each_200ms_tick_exactly_once_over_3s() {
    serial(|| {
        rpc_testkit::require_redis_server();
        let redis = RedisServer::start().expect("redis");
        let url = redis.url();
        let spec = spec(200);
        let args = ["--periodic", spec.as_str()];
        let started = broker_ms(&redis);
        let mut workers: Vec<WorkerProcess> = (0..3)
            .map(|_| WorkerProcess::start(bin(), &url, &args).expect("worker"))
            .collect();
        let all_up = broker_ms(&redis);
        std::thread::sleep(Duration::from_secs(3));
        let stopping = broker_ms(&redis);
        for w in &mut workers {
            stop(w);
        }
        let per_worker: Vec<Vec<u64>> = workers.iter_mut().map(ticks_of).collect();
        let runs = count(per_worker.iter().flatten().copied());
        eprintln!(
            "ticks run per worker: {:?}; all up {} ms after the first start",
            per_worker.iter().map(Vec::len).collect::<Vec<_>>(),
            all_up - started
        );
        let twice: Vec<_> = runs.iter().filter(|(_, &n)| n > 1).collect();
        assert!(twice.is_empty(), "ticks run more than once: {twice:?}");
        let ticks: Vec<u64> = runs.keys().copied().collect();
        assert!(ticks.iter().all(|t| t % 200 == 0), "{ticks:?}");
        // The first worker's job was new: nothing before it started.
        assert!(ticks[0] > started, "{ticks:?} before {started}");
        // Every tick well inside the window ran (the first and last may be
        // partial: a tick at the stop may be enqueued and not yet run).
        let window: Vec<u64> = ((started + 200) / 200 + 1..=(stopping - 200) / 200)
            .map(|k| k * 200)
            .collect();
        assert!(window.len() >= 12, "{window:?}");
        let missing: Vec<_> = window.iter().filter(|t| !runs.contains_key(t)).collect();
        assert!(
            missing.is_empty(),
            "ticks missing: {missing:?} of {ticks:?}"
        );
        let (first, last) = (ticks[0], ticks[ticks.len() - 1]);
        assert_eq!(
            ticks.len() as u64,
            (last - first) / 200 + 1,
            "a gap in {ticks:?}"
        );
        // Redis agrees: each enqueued entry was run, or still waits (a
        // tick enqueued as the workers stopped), never one added twice.
        let added: u64 = stream_info(&redis, "entries-added");
        let waiting: u64 = redis.cli(["XLEN", &jobs_key()]).trim().parse().unwrap();
        assert_eq!(
            added,
            ticks.len() as u64 + waiting,
            "{ticks:?}, {waiting} waiting"
        );
    });
}

/// A field of `XINFO STREAM rpc:{Chaos}:jobs`.
fn stream_info(redis: &RedisServer, field: &str) -> u64 {
    let info = redis.cli(["XINFO", "STREAM", &jobs_key()]);
    let lines: Vec<&str> = info.lines().map(str::trim).collect();
    let at = lines.iter().position(|l| *l == field).expect(field);
    lines[at + 1].parse().unwrap()
}

/// Sleeps until Redis's clock is `at` (0..1) of the way into an interval of
/// `every` ms, so that a start is well away from a tick.
fn into_interval(redis: &RedisServer, every: u64, at: f64) -> u64 {
    let offset = (every as f64 * at) as u64;
    let now = broker_ms(redis);
    let phase = now % every;
    let wait = if phase < offset {
        offset - phase
    } else {
        every - phase + offset
    };
    std::thread::sleep(Duration::from_millis(wait));
    broker_ms(redis)
}

/// One worker with `policy` runs the job for two ticks and stops; after
/// four intervals with no worker, one starts mid-interval and runs two
/// more. Returns the ticks run (by count), the last before the stop, and
/// the interval the restart fell in (its start).
fn down_and_up(policy: &str) -> (BTreeMap<u64, usize>, u64, u64) {
    const EVERY: u64 = 500;
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let spec = spec(EVERY);
    let args = ["--periodic", spec.as_str(), "--periodic-missed", policy];
    into_interval(&redis, EVERY, 0.3);
    let mut first = WorkerProcess::start(bin(), &url, &args).expect("worker");
    std::thread::sleep(Duration::from_millis(2 * EVERY + 100));
    stop(&mut first);
    let before = ticks_of(&mut first);
    let last_before = *before.iter().max().expect("ran before the stop");
    std::thread::sleep(Duration::from_millis(4 * EVERY));
    let spawned = into_interval(&redis, EVERY, 0.2);
    let mut second = WorkerProcess::start(bin(), &url, &args).expect("worker");
    let ready = broker_ms(&redis);
    assert_eq!(
        spawned / EVERY,
        ready / EVERY,
        "the worker took {} ms to start, past a tick: the test cannot tell a catch-up",
        ready - spawned
    );
    std::thread::sleep(Duration::from_millis(2 * EVERY + 100));
    stop(&mut second);
    let runs = count(before.into_iter().chain(ticks_of(&mut second)));
    let twice: Vec<_> = runs.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "ticks run more than once: {twice:?}");
    (runs, last_before, ready / EVERY * EVERY)
}

/// `run-once`: the ticks missed while no worker ran get exactly one run
/// when a worker starts, under the latest missed tick's id; then on as
/// usual.
#[test]
fn a_restarted_worker_runs_the_missed_ticks_once() {
    serial(|| {
        let (runs, last_before, restarted) = down_and_up("run-once");
        let gap: Vec<u64> = runs
            .range(last_before + 1..=restarted)
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(
            gap,
            [restarted],
            "one run for the gap after {last_before}: {runs:?}"
        );
        assert!(runs.contains_key(&(restarted + 500)), "{runs:?}");
    });
}

/// `skip`: no run for the ticks missed while no worker ran; the job goes on
/// with the first tick after the start.
#[test]
fn a_restarted_worker_skips_the_missed_ticks_with_skip() {
    serial(|| {
        let (runs, last_before, restarted) = down_and_up("skip");
        let gap: Vec<u64> = runs
            .range(last_before + 1..=restarted)
            .map(|(t, _)| *t)
            .collect();
        assert!(
            gap.is_empty(),
            "ran for the gap after {last_before}: {gap:?} in {runs:?}"
        );
        assert!(runs.contains_key(&(restarted + 500)), "{runs:?}");
    });
}
