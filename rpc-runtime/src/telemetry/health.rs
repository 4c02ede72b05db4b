//! Whether a worker is alive and ready, for `/healthz` and `/readyz`.
//!
//! The two answer different questions, for different readers:
//!
//! * *Alive* (`/healthz`) is what an orchestrator restarts the process on,
//!   so it fails only for what a restart can fix: the worker's own loops
//!   (the taker and the janitor) stopped turning within the liveness window
//!   (a deadlock, a wedged runtime). It does **not** depend on the broker:
//!   restarting every worker does not bring Redis back, and a fleet that
//!   restarts whenever Redis blinks only makes the outage longer (the
//!   Kubernetes guidance: liveness must not check external dependencies,
//!   readiness may). The loops mark progress between their broker calls,
//!   which are all bounded by timeouts, so a broker that does not answer
//!   does not make them look stuck.
//! * *Ready* (`/readyz`) says whether the worker gets work done right now,
//!   for rollouts, dashboards and alerts. It is false, with the reason:
//!   while shutting down; while not alive; when the broker cannot be reached
//!   (a probe or the janitor's clock sample failed, and nothing answered
//!   since) or has not answered within the readiness window (a broker that
//!   stopped answering, e.g. a frozen process: the probe in
//!   `worker/probe.rs` keeps a healthy broker's last answer within it);
//!   before the taker's first read of the queues, and while reading them
//!   fails; and while completions are refused for a reason that is the
//!   worker's, not one message's (no permission, a script that cannot be
//!   loaded), until a completion goes through again.
//!
//! A worker that is not ready keeps working: it is how it notices that the
//! broker is back or that its permissions were fixed.
//!
//! The marks on the hot path (a read, a completion) are relaxed atomic
//! loads and stores; the reasons, written only when something fails, live
//! behind a mutex that a check reads.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sync::lock;

/// The taker has not finished a read of the queues yet.
const NOT_YET: u8 = 0;
/// The taker's last read of the queues succeeded.
const TAKING: u8 = 1;
/// The taker's last read of the queues failed.
const TAKE_FAILED: u8 = 2;

/// A reason shown in a check's body is cut to this many characters (it
/// may carry text from the broker).
const REASON_CHARS: usize = 300;

/// A worker's liveness and readiness marks.
#[derive(Debug)]
pub(crate) struct Health {
    origin: Instant,
    /// Ms since `origin` of the last sign of progress of the taker or the
    /// janitor.
    loop_beat_ms: AtomicU64,
    /// Ms since `origin` (plus one; 0: never) of the broker's last answer.
    broker_ok_ms: AtomicU64,
    /// Ms since `origin` (plus one; 0: never) of the last failure to reach
    /// the broker.
    broker_failed_ms: AtomicU64,
    /// `NOT_YET`, `TAKING` or `TAKE_FAILED`.
    taking: AtomicU8,
    /// A completion was refused for the worker's own reason, and none went
    /// through since.
    refused: AtomicBool,
    stopping: AtomicBool,
    /// Why the marks above say what they say.
    why: Mutex<Why>,
    /// No sign of progress for longer than this: not alive.
    live_window: Duration,
    /// No answer from the broker for longer than this: not ready.
    ready_window: Duration,
}

#[derive(Debug, Default)]
struct Why {
    broker: String,
    taking: String,
    refused: String,
}

/// The answer to a health check: pass or not, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub(crate) ok: bool,
    pub(crate) reason: String,
}

impl Health {
    /// `live_window` must exceed the longest gap between two signs of
    /// progress of a healthy worker (the janitor's period, plus one broker
    /// call that runs into its timeout); `ready_window` the longest gap
    /// between two answers of a healthy broker (see `worker/probe.rs`).
    pub(crate) fn new(live_window: Duration, ready_window: Duration) -> Health {
        Health {
            origin: Instant::now(),
            loop_beat_ms: AtomicU64::new(0),
            broker_ok_ms: AtomicU64::new(0),
            broker_failed_ms: AtomicU64::new(0),
            taking: AtomicU8::new(NOT_YET),
            refused: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            why: Mutex::default(),
            live_window,
            ready_window,
        }
    }

    /// Ms since `origin`, plus one, so that a mark is never 0 ("never").
    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64 + 1
    }

    /// The taker or the janitor made progress (a turn, or a broker call
    /// returned).
    pub(crate) fn loop_turned(&self) {
        self.loop_beat_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// The broker answered.
    pub(crate) fn broker_answered(&self) {
        self.broker_ok_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// The broker could not be reached (or did not answer in time): not
    /// ready until it answers again.
    pub(crate) fn broker_failed(&self, why: impl std::fmt::Display) {
        lock(&self.why).broker = one_line(&why.to_string());
        self.broker_failed_ms
            .store(self.now_ms(), Ordering::Relaxed);
    }

    /// Whether the broker should be asked: its last answer is older than
    /// `age`, or a failure came after it.
    pub(crate) fn needs_probe(&self, age: Duration) -> bool {
        let ok = self.broker_ok_ms.load(Ordering::Relaxed);
        self.broker_failed_ms.load(Ordering::Relaxed) > ok
            || self.now_ms().saturating_sub(ok) >= age.as_millis() as u64
    }

    /// The taker's read of the queues succeeded (the broker answered).
    pub(crate) fn took(&self) {
        self.broker_answered();
        if self.taking.load(Ordering::Relaxed) != TAKING {
            self.taking.store(TAKING, Ordering::Relaxed);
        }
    }

    /// The taker's read of the queues failed.
    pub(crate) fn take_failed(&self, why: impl std::fmt::Display) {
        lock(&self.why).taking = one_line(&why.to_string());
        self.taking.store(TAKE_FAILED, Ordering::Relaxed);
    }

    /// A completion was refused for a reason that will refuse the next ones
    /// too (`why` names it): not ready until one goes through.
    pub(crate) fn completions_refused(&self, why: impl std::fmt::Display) {
        lock(&self.why).refused = one_line(&why.to_string());
        self.refused.store(true, Ordering::Relaxed);
    }

    /// A completion went through as the job asked (not a fallback).
    pub(crate) fn completed(&self) {
        if self.refused.load(Ordering::Relaxed) {
            self.refused.store(false, Ordering::Relaxed);
        }
    }

    pub(crate) fn stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// `/healthz`: the worker's loops make progress. The broker is not
    /// asked (see the module doc).
    pub(crate) fn alive(&self) -> Verdict {
        let age = self
            .now_ms()
            .saturating_sub(self.loop_beat_ms.load(Ordering::Relaxed));
        if age > self.live_window.as_millis() as u64 {
            return fail(format!("the worker's loops have not turned for {age} ms"));
        }
        pass()
    }

    /// `/readyz`: alive, not shutting down, the broker answers, the queues
    /// are read, and completions are not refused.
    pub(crate) fn ready(&self) -> Verdict {
        if self.stopping.load(Ordering::Relaxed) {
            return fail("shutting down".to_owned());
        }
        let alive = self.alive();
        if !alive.ok {
            return alive;
        }
        let ok = self.broker_ok_ms.load(Ordering::Relaxed);
        if self.broker_failed_ms.load(Ordering::Relaxed) > ok {
            let why = lock(&self.why).broker.clone();
            return fail(format!("the broker cannot be reached: {why}"));
        }
        let age = self.now_ms().saturating_sub(ok);
        if age > self.ready_window.as_millis() as u64 {
            return fail(format!("the broker has not answered for {age} ms"));
        }
        match self.taking.load(Ordering::Relaxed) {
            NOT_YET => return fail("starting: the queues have not been read yet".to_owned()),
            TAKE_FAILED => {
                let why = lock(&self.why).taking.clone();
                return fail(format!("reading the queues fails: {why}"));
            }
            _ => {}
        }
        if self.refused.load(Ordering::Relaxed) {
            let why = lock(&self.why).refused.clone();
            return fail(format!("completions refused: {why}"));
        }
        pass()
    }
}

pub(super) fn pass() -> Verdict {
    Verdict {
        ok: true,
        reason: "ok".to_owned(),
    }
}

pub(super) fn fail(reason: String) -> Verdict {
    Verdict { ok: false, reason }
}

/// `text` on one line of at most [`REASON_CHARS`] characters: a reason is
/// the body of a check, and may quote the broker.
fn one_line(text: &str) -> String {
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(REASON_CHARS)
        .collect();
    if text.chars().nth(REASON_CHARS).is_some() {
        line.push_str("...");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready_worker() -> Health {
        let health = Health::new(Duration::from_secs(60), Duration::from_secs(60));
        health.loop_turned();
        health.took();
        health
    }

    #[test]
    fn a_worker_is_not_alive_once_its_loops_stop_turning_whatever_the_broker_says() {
        let health = Health::new(Duration::from_millis(50), Duration::from_secs(60));
        health.loop_turned();
        health.took();
        health.broker_failed("connection refused");
        assert!(
            health.alive().ok,
            "a broker failure is not a liveness failure"
        );
        std::thread::sleep(Duration::from_millis(80));
        health.broker_answered();
        let verdict = health.alive();
        assert!(
            !verdict.ok && verdict.reason.contains("loops"),
            "{verdict:?}"
        );
        // Not ready either, for the same reason (read a moment later: the
        // milliseconds in the text may have moved on).
        let ready = health.ready();
        assert!(
            !ready.ok && ready.reason.contains("loops have not turned"),
            "{ready:?}"
        );
        health.loop_turned();
        assert!(health.alive().ok);
    }

    #[test]
    fn readiness_waits_for_the_first_read_and_ends_when_shutting_down() {
        let health = Health::new(Duration::from_secs(60), Duration::from_secs(60));
        health.loop_turned();
        health.broker_answered();
        let verdict = health.ready();
        assert!(
            !verdict.ok && verdict.reason.starts_with("starting"),
            "{verdict:?}"
        );
        health.took();
        assert!(health.ready().ok);
        health.stopping();
        assert_eq!(health.ready().reason, "shutting down");
        assert!(health.alive().ok, "draining is alive");
    }

    #[test]
    fn readiness_follows_the_latest_word_from_the_broker() {
        let health = ready_worker();
        // Marks are in ms: a failure in the same ms as an answer is no news.
        std::thread::sleep(Duration::from_millis(2));
        health.broker_failed("Connection refused\r\n(os error 111)");
        let verdict = health.ready();
        assert!(!verdict.ok, "{verdict:?}");
        assert_eq!(
            verdict.reason,
            "the broker cannot be reached: Connection refused  (os error 111)"
        );
        std::thread::sleep(Duration::from_millis(2));
        health.broker_answered();
        assert!(health.ready().ok);
    }

    #[test]
    fn a_broker_silent_past_the_readiness_window_makes_the_worker_unready() {
        let health = Health::new(Duration::from_secs(60), Duration::from_millis(50));
        health.loop_turned();
        health.took();
        assert!(health.ready().ok);
        std::thread::sleep(Duration::from_millis(80));
        health.loop_turned();
        let verdict = health.ready();
        assert!(
            !verdict.ok && verdict.reason.contains("has not answered"),
            "{verdict:?}"
        );
        health.broker_answered();
        assert!(health.ready().ok);
    }

    #[test]
    fn a_failed_read_of_the_queues_makes_the_worker_unready_until_one_succeeds() {
        let health = ready_worker();
        health.take_failed("NOPERM no permissions to run the 'xreadgroup' command");
        let verdict = health.ready();
        assert!(
            !verdict.ok && verdict.reason.contains("xreadgroup"),
            "{verdict:?}"
        );
        health.took();
        assert!(health.ready().ok);
    }

    #[test]
    fn refused_completions_make_the_worker_unready_until_one_goes_through() {
        let health = ready_worker();
        health.completed();
        assert!(health.ready().ok);
        health.completions_refused("NOPERM no permissions to run the 'evalsha' command");
        let verdict = health.ready();
        assert_eq!(
            verdict.reason,
            "completions refused: NOPERM no permissions to run the 'evalsha' command"
        );
        assert!(!verdict.ok && health.alive().ok);
        health.completed();
        assert!(health.ready().ok);
    }

    #[test]
    fn a_long_reason_is_cut() {
        let long = "x".repeat(REASON_CHARS * 2);
        let line = one_line(&long);
        assert_eq!(line.chars().count(), REASON_CHARS + 3);
        assert!(line.ends_with("..."));
    }
}
