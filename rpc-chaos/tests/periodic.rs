//! Periodic jobs with real worker processes on one private redis-server:
//! three `chaos-worker`s given the same job run each tick exactly once
//! with none missing; and after every worker was stopped for several
//! intervals, a restarted one runs the missed ticks once (`run-once`) or
//! not at all (`skip`).
//!
//! The periodic job is `Chaos.sleep {"ms": 0}`, which prints `start ID
//! ATTEMPT`: the ids (`periodic:beat:<tick ms>`) say which ticks ran, in
//! which process, how often. Times are read from Redis's clock (`TIME`),
//! the clock the ticks are computed on.
//!
//! The tests wait on those lines (and the last tick Redis records), each
//! with a generous deadline, never for a time and then look: a worker that
//! wakes late is allowed. The clock is read only to know which ticks were
//! missed while no worker ran.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// How long any waited-for event may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `check` every 20 ms until it holds; panics with `what` after
/// [`PATIENCE`].
fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spec(every_ms: u64) -> String {
    format!(r#"beat=every:{every_ms}ms:Chaos.sleep:{{"ms":0}}"#)
}

/// Stops a worker with SIGTERM and waits for its graceful exit.
fn stop(worker: &mut WorkerProcess) {
    worker.child.sigterm().unwrap();
    worker
        .wait_for(PATIENCE, |e| matches!(e, Event::Stats(_)))
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

/// Three workers until eight ticks have run: each tick ran once, on the
/// interval's grid, after the first start, and none is missing between
/// the first and the last. (The issue's promise was for a 200 ms interval;
/// a tick is skipped by design when every worker wakes a whole interval
/// late, so the interval is a second, and the no-gap check holds on a
/// loaded machine too.)
#[test]
fn three_worker_processes_run_each_tick_exactly_once() {
    const EVERY: u64 = 1_000;
    serial(|| {
        rpc_testkit::require_redis_server();
        let redis = RedisServer::start().expect("redis");
        let url = redis.url();
        let spec = spec(EVERY);
        let args = ["--periodic", spec.as_str()];
        let started = broker_ms(&redis);
        let mut workers: Vec<WorkerProcess> = (0..3)
            .map(|_| WorkerProcess::start(bin(), &url, &args).expect("worker"))
            .collect();
        let all_up = broker_ms(&redis);
        wait_until("eight ticks ran", || {
            count(workers.iter_mut().flat_map(ticks_of)).len() >= 8
        });
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
        assert!(ticks.iter().all(|t| t % EVERY == 0), "{ticks:?}");
        // The first worker's job was new: nothing before it started.
        assert!(ticks[0] > started, "{ticks:?} before {started}");
        let (first, last) = (ticks[0], ticks[ticks.len() - 1]);
        assert_eq!(
            ticks.len() as u64,
            (last - first) / EVERY + 1,
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

/// The last tick Redis records as enqueued for `beat`.
fn last_enqueued(redis: &RedisServer) -> u64 {
    let last = redis.cli(["HGET", "rpc:{Chaos}:periodic:last", "beat"]);
    last.trim()
        .parse()
        .unwrap_or_else(|_| panic!("no last tick recorded: {last:?}"))
}

/// One worker with `policy` runs the job until two ticks ran, and stops;
/// no worker runs until three more ticks have passed; then one starts and
/// runs until two ticks after the stop ran. Returns the ticks run (by
/// count), the last tick enqueued before the stop (as Redis records it, so
/// a tick enqueued at the stop but not yet run counts as before), Redis's
/// clock just before the restart and just after the first run after it.
fn down_and_up(policy: &str, every: u64) -> (BTreeMap<u64, usize>, u64, u64, u64) {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let spec = spec(every);
    let args = ["--periodic", spec.as_str(), "--periodic-missed", policy];
    let mut first = WorkerProcess::start(bin(), &url, &args).expect("worker");
    wait_until("two ticks before the stop", || {
        ticks_of(&mut first).len() >= 2
    });
    stop(&mut first);
    let before = ticks_of(&mut first);
    let last_before = last_enqueued(&redis);
    assert!(before.iter().all(|&t| t <= last_before), "{before:?}");
    wait_until("three ticks missed", || {
        broker_ms(&redis) >= last_before + 3 * every + every / 4
    });
    let restart = broker_ms(&redis);
    let mut second = WorkerProcess::start(bin(), &url, &args).expect("worker");
    let after =
        |w: &mut WorkerProcess| ticks_of(w).into_iter().filter(|&t| t > last_before).count();
    wait_until("a run after the restart", || after(&mut second) >= 1);
    let first_run = broker_ms(&redis);
    wait_until("two runs after the restart", || after(&mut second) >= 2);
    stop(&mut second);
    let runs = count(before.into_iter().chain(ticks_of(&mut second)));
    let twice: Vec<_> = runs.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "ticks run more than once: {twice:?}");
    (runs, last_before, restart, first_run)
}

/// `run-once`: the ticks missed while no worker ran get exactly one run
/// when a worker starts, under the latest missed tick's id (not a burst
/// from the first one missed); then on as usual.
#[test]
fn a_restarted_worker_runs_the_missed_ticks_once() {
    const EVERY: u64 = 1_000;
    serial(|| {
        // A run, after the restart, of a tick at or before the restart can
        // only be the catch-up. If the first run after it is of a later
        // tick, the catch-up is missing, unless a tick passed while the
        // worker started (the catch-up's tick is the latest at or before
        // the worker's start): then the run is tried again.
        for attempt in 1..=3 {
            let (runs, last_before, restart, first_run) = down_and_up("run-once", EVERY);
            let after: Vec<u64> = runs.range(last_before + 1..).map(|(t, _)| *t).collect();
            let latest_missed = restart / EVERY * EVERY;
            assert!(
                after[0] >= latest_missed,
                "a run for an earlier missed tick: {after:?}, restart at {restart}, {runs:?}"
            );
            if after[0] <= restart {
                assert_eq!(after[0], latest_missed, "{after:?}, {runs:?}");
                assert!(after[1] > restart, "two runs for the gap: {after:?}");
                return;
            }
            assert_ne!(
                first_run / EVERY,
                restart / EVERY,
                "no catch-up run for the gap: {after:?}, restart at {restart}, {runs:?}"
            );
            eprintln!("attempt {attempt}: a tick passed while the worker started; again");
        }
        panic!(
            "no catch-up run seen in three restarts; each time a tick passed while \
             the worker started, so either there is none or the machine is too slow"
        );
    });
}

/// `skip`: no run for the ticks missed while no worker ran; the job goes on
/// with the ticks after the start.
#[test]
fn a_restarted_worker_skips_the_missed_ticks_with_skip() {
    serial(|| {
        let (runs, last_before, restart, _) = down_and_up("skip", 500);
        let gap: Vec<u64> = runs
            .range(last_before + 1..=restart)
            .map(|(t, _)| *t)
            .collect();
        assert!(
            gap.is_empty(),
            "ran for the gap after {last_before}: {gap:?} in {runs:?}"
        );
        assert!(
            runs.range(restart + 1..).count() >= 2,
            "did not go on after the restart: {runs:?}"
        );
    });
}
