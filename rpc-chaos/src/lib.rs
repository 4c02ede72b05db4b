//! Chaos and reliability tests of the Redis runtime.
//!
//! The runtime promises at-least-once delivery, deadlines, graceful shutdown
//! and recovery from a Redis restart (DESIGN.md, "Runtime semantics"). Those
//! promises are about processes dying, freezing and reconnecting, so they can
//! only be proven with real processes: this crate ships `chaos-worker`, a
//! worker binary built on [`rpc_runtime::DynamicService`] that tests crash
//! (`SIGKILL`), freeze (`SIGSTOP`/`SIGCONT`) and stop (`SIGTERM`), and the
//! helpers the tests in `tests/` use to run it.
//!
//! The worker reports what tests need to see on its standard output, one
//! line per event (see [`Event`]), so a test can tell which process ran a job
//! and how often jobs were redelivered even for a process that was killed.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rpc_runtime::{DynamicService, HandlerError};
use rpc_testkit::ChildGuard;
use serde_json::json;

/// The service name (and so the queue) the chaos worker serves.
pub const SERVICE: &str = "Chaos";
/// The service's jobs stream under the default prefix.
pub fn jobs_key() -> String {
    rpc_runtime::protocol::Keys::new("rpc").jobs(SERVICE)
}

/// Call options with only a timeout, in milliseconds.
pub fn timeout(ms: u64) -> rpc_runtime::CallOptions {
    rpc_runtime::CallOptions::timeout(Duration::from_millis(ms))
}

/// `XPENDING rpc:{Chaos}:jobs workers` summary: the number of leased,
/// unacked jobs.
pub fn pending_count(redis: &rpc_testkit::RedisServer) -> u64 {
    redis
        .cli(["XPENDING", &jobs_key(), "workers"])
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(u64::MAX)
}

static RUNNING: AtomicUsize = AtomicUsize::new(0);
static MAX_RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Counts a running job while alive, even when the job is cancelled.
struct RunningGuard;

impl RunningGuard {
    fn enter() -> Self {
        let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
        MAX_RUNNING.fetch_max(now, Ordering::SeqCst);
        RunningGuard
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Prints one event line and flushes it at once (a test may kill us next).
pub fn emit(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn int_param(data: &serde_json::Value, name: &str) -> Result<i64, HandlerError> {
    data[name]
        .as_i64()
        .ok_or_else(|| HandlerError::fatal(format!("`{name}` must be an integer")))
}

/// The jobs of the chaos worker:
///
/// * `Chaos.square {n}` -> `n * n`
/// * `Chaos.sleep {ms}` -> `{"pid", "attempt", "max_running"}` after sleeping
///   `ms` milliseconds (prints `start ID ATTEMPT` first)
/// * `Chaos.note {text}` -> `null` (prints `note TEXT`)
/// * `Chaos.context {}` -> what the handler sees: id, attempt, deadline
/// * `Chaos.record {ms}` -> `null` after sleeping `ms` milliseconds; prints
///   `ran ID ATTEMPT UNIX_US` first, the time (µs since the epoch, this
///   machine's clock) it started, for tests of when scheduled jobs run
/// * `Chaos.flaky {n}` -> the attempt that succeeded; prints `ran ID ATTEMPT
///   UNIX_US` as `record` does, then asks for a retry (with the job's
///   backoff) while the attempt is `n` or less, for tests of retries
/// * `Chaos.steps {n, ms}` -> `n` after reporting progress `i/n` (message
///   `step i`) for each `i` from 1 to `n`, sleeping `ms` milliseconds after
///   each report, for tests of progress watchers
///
/// Any job run on a later attempt prints `redelivered ID ATTEMPT`.
pub fn chaos_service() -> DynamicService {
    fn seen(req: &rpc_runtime::Request) {
        let ctx = &req.context;
        if ctx.attempt() > 1 {
            emit(&format!("redelivered {} {}", ctx.id(), ctx.attempt()));
        }
    }
    DynamicService::new(SERVICE)
        .job("square", |req| async move {
            seen(&req);
            let n = int_param(&req.data, "n")?;
            let sq = n
                .checked_mul(n)
                .ok_or_else(|| HandlerError::fatal("overflow"))?;
            Ok(json!(sq))
        })
        .job("sleep", |req| async move {
            seen(&req);
            let ms = int_param(&req.data, "ms")?.max(0) as u64;
            let _running = RunningGuard::enter();
            emit(&format!(
                "start {} {}",
                req.context.id(),
                req.context.attempt()
            ));
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(json!({
                "pid": std::process::id(),
                "attempt": req.context.attempt(),
                "max_running": MAX_RUNNING.load(Ordering::SeqCst),
            }))
        })
        .job("note", |req| async move {
            seen(&req);
            let text = req.data["text"].as_str().unwrap_or_default().to_owned();
            emit(&format!("note {text}"));
            Ok(serde_json::Value::Null)
        })
        .job("record", |req| async move {
            // Read first: the start as early as the handler can see it.
            let started = unix_us(SystemTime::now());
            seen(&req);
            let ctx = &req.context;
            emit(&format!("ran {} {} {started}", ctx.id(), ctx.attempt()));
            let ms = req.data["ms"].as_u64().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(serde_json::Value::Null)
        })
        .job("flaky", |req| async move {
            let started = unix_us(SystemTime::now());
            seen(&req);
            let ctx = &req.context;
            emit(&format!("ran {} {} {started}", ctx.id(), ctx.attempt()));
            let n = int_param(&req.data, "n")?;
            if i64::from(ctx.attempt()) <= n {
                return Err(HandlerError::retry(format!(
                    "flaky: attempt {} of the {n} that fail",
                    ctx.attempt()
                )));
            }
            Ok(json!(ctx.attempt()))
        })
        .job("steps", |req| async move {
            seen(&req);
            let n = int_param(&req.data, "n")?.max(1) as u64;
            let ms = int_param(&req.data, "ms")?.max(0) as u64;
            for i in 1..=n {
                req.context
                    .progress((i, n), format!("step {i}"))
                    .map_err(|e| HandlerError::fatal(e.to_string()))?;
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            Ok(json!(n))
        })
        .job("context", |req| async move {
            seen(&req);
            let ctx = &req.context;
            Ok(json!({
                "id": ctx.id().as_str(),
                "attempt": ctx.attempt(),
                "max_attempts": ctx.max_attempts(),
                "deadline_ms": ctx.deadline().map(unix_ms),
                "traceparent": ctx.traceparent(),
                "pid": std::process::id(),
            }))
        })
}

/// One line of the worker's standard output.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `ready CONSUMER`: the worker is connected and serving.
    Ready(String),
    /// `start ID ATTEMPT`: a `sleep` job began.
    Start(String, u32),
    /// `redelivered ID ATTEMPT`: a job ran on an attempt after the first.
    Redelivered(String, u32),
    /// `ran ID ATTEMPT UNIX_US`: a `record` job began at this time (µs
    /// since the epoch).
    Ran {
        /// The call id.
        id: String,
        /// Its attempt.
        attempt: u32,
        /// When it began, µs since the epoch on this machine's clock.
        at_us: u64,
    },
    /// `note TEXT`.
    Note(String),
    /// `stats JSON`: the final counters, printed on a graceful exit.
    Stats(serde_json::Value),
    /// Anything else.
    Other(String),
}

impl Event {
    fn parse(line: &str) -> Event {
        let mut parts = line.splitn(3, ' ');
        let (tag, a, b) = (parts.next(), parts.next(), parts.next());
        let attempt = |b: Option<&str>| b.and_then(|b| b.trim().parse().ok()).unwrap_or(0);
        match (tag, a) {
            (Some("ready"), Some(a)) => Event::Ready(a.to_owned()),
            (Some("start"), Some(a)) => Event::Start(a.to_owned(), attempt(b)),
            (Some("redelivered"), Some(a)) => Event::Redelivered(a.to_owned(), attempt(b)),
            (Some("ran"), Some(id)) => {
                let mut rest = b.unwrap_or_default().split(' ');
                match (
                    rest.next().and_then(|a| a.parse().ok()),
                    rest.next().and_then(|t| t.trim().parse().ok()),
                ) {
                    (Some(attempt), Some(at_us)) => Event::Ran {
                        id: id.to_owned(),
                        attempt,
                        at_us,
                    },
                    _ => Event::Other(line.to_owned()),
                }
            }
            (Some("note"), _) => Event::Note(line.get(5..).unwrap_or_default().to_owned()),
            (Some("stats"), _) => serde_json::from_str(line.get(6..).unwrap_or_default())
                .map(Event::Stats)
                .unwrap_or_else(|_| Event::Other(line.to_owned())),
            _ => Event::Other(line.to_owned()),
        }
    }
}

/// A running `chaos-worker` process whose output lines arrive as [`Event`]s.
/// Dropping it kills the process.
pub struct WorkerProcess {
    /// The guarded child (signal it to crash, freeze or stop it).
    pub child: ChildGuard,
    events: mpsc::Receiver<Event>,
    /// Every event received so far.
    pub seen: Vec<Event>,
}

impl WorkerProcess {
    /// Starts `bin` (the `chaos-worker` binary) for `url` with extra
    /// arguments, and waits until it says `ready`.
    pub fn start(bin: &Path, url: &str, args: &[&str]) -> std::io::Result<WorkerProcess> {
        let mut process = WorkerProcess::spawn(bin, url, args)?;
        process.wait_for(Duration::from_secs(30), |e| matches!(e, Event::Ready(_)))?;
        Ok(process)
    }

    /// Starts `n` processes of `bin` at once (they start up side by side),
    /// then waits until every one says `ready`.
    pub fn start_fleet(
        bin: &Path,
        url: &str,
        args: &[&str],
        n: usize,
    ) -> std::io::Result<Vec<WorkerProcess>> {
        let mut fleet = (0..n)
            .map(|_| WorkerProcess::spawn(bin, url, args))
            .collect::<std::io::Result<Vec<_>>>()?;
        for process in &mut fleet {
            process.wait_for(Duration::from_secs(30), |e| matches!(e, Event::Ready(_)))?;
        }
        Ok(fleet)
    }

    /// Starts `bin` without waiting for it to be ready.
    pub fn spawn(bin: &Path, url: &str, args: &[&str]) -> std::io::Result<WorkerProcess> {
        WorkerProcess::spawn_with_env(bin, url, args, &[])
    }

    /// Starts `bin` with extra environment variables (e.g. libfaketime's
    /// `LD_PRELOAD` and `FAKETIME`, for a process whose clock is shifted),
    /// and waits until it says `ready`.
    pub fn start_with_env(
        bin: &Path,
        url: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> std::io::Result<WorkerProcess> {
        let mut process = WorkerProcess::spawn_with_env(bin, url, args, env)?;
        process.wait_for(Duration::from_secs(30), |e| matches!(e, Event::Ready(_)))?;
        Ok(process)
    }

    /// Starts `bin` with extra environment variables, without waiting.
    pub fn spawn_with_env(
        bin: &Path,
        url: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> std::io::Result<WorkerProcess> {
        let mut command = Command::new(bin);
        command
            .arg("--url")
            .arg(url)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "error".into()),
            )
            // After the default, so a test can set RUST_LOG for one worker.
            .envs(env.iter().copied());
        let mut child = ChildGuard::spawn(&mut command)?;
        let stdout = child
            .child_mut()
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(Event::parse(&line)).is_err() {
                    break;
                }
            }
        });
        Ok(WorkerProcess {
            child,
            events: rx,
            seen: Vec::new(),
        })
    }

    /// Collects the events that have arrived so far.
    pub fn drain(&mut self) -> &[Event] {
        while let Ok(e) = self.events.try_recv() {
            self.seen.push(e);
        }
        &self.seen
    }

    /// Waits up to `timeout` for an event matching `pred` (also among those
    /// already seen) and returns it.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Event) -> bool,
    ) -> std::io::Result<Event> {
        if let Some(e) = self.seen.iter().find(|e| pred(e)) {
            return Ok(e.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(e) => {
                    self.seen.push(e.clone());
                    if pred(&e) {
                        return Ok(e);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no matching event in {timeout:?}; saw {:?}", self.seen),
                    ))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(std::io::Error::other(format!(
                        "the worker's output ended; saw {:?}",
                        self.seen
                    )))
                }
            }
        }
    }

    /// How many `redelivered` events have been seen.
    pub fn redeliveries(&mut self) -> usize {
        self.drain()
            .iter()
            .filter(|e| matches!(e, Event::Redelivered(..)))
            .count()
    }
}
