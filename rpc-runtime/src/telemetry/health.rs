//! Whether a worker is alive and ready, for `/healthz` and `/readyz`.
//!
//! The taker and the janitor beat on every turn of their loops, and every
//! answer from the broker is noted. *Alive* (`/healthz`): a loop turned and
//! the broker answered within the staleness window, so a worker whose loop
//! hung or whose Redis went away is restarted by its orchestrator. *Ready*
//! (`/readyz`): alive, serving, and not shutting down, so it is taken out
//! of rotation while it drains. Everything is an atomic store on the hot
//! path.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A worker's liveness marks.
#[derive(Debug)]
pub(crate) struct Health {
    origin: Instant,
    /// Ms since `origin` of the last turn of the taker or janitor loop.
    loop_beat_ms: AtomicU64,
    /// Ms since `origin` of the broker's last answer.
    broker_ok_ms: AtomicU64,
    serving: AtomicBool,
    stopping: AtomicBool,
    /// Marks older than this make the worker unhealthy.
    stale_after: Duration,
}

/// The answer to a health check: pass or not, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub(crate) ok: bool,
    pub(crate) reason: String,
}

impl Health {
    /// `stale_after` should exceed the longest gap between loop turns
    /// (the janitor's period) and between broker answers.
    pub(crate) fn new(stale_after: Duration) -> Health {
        Health {
            origin: Instant::now(),
            loop_beat_ms: AtomicU64::new(0),
            broker_ok_ms: AtomicU64::new(0),
            serving: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            stale_after,
        }
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    pub(crate) fn loop_turned(&self) {
        self.loop_beat_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    pub(crate) fn broker_answered(&self) {
        self.broker_ok_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    pub(crate) fn serving(&self) {
        self.serving.store(true, Ordering::Relaxed);
    }

    pub(crate) fn stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// `/healthz`: the loops turn and the broker answers.
    pub(crate) fn alive(&self) -> Verdict {
        let now = self.now_ms();
        let stale = self.stale_after.as_millis() as u64;
        let loop_age = now.saturating_sub(self.loop_beat_ms.load(Ordering::Relaxed));
        let broker_age = now.saturating_sub(self.broker_ok_ms.load(Ordering::Relaxed));
        if loop_age > stale {
            return fail(format!("the worker loop has not turned for {loop_age} ms"));
        }
        if broker_age > stale {
            return fail(format!("the broker has not answered for {broker_age} ms"));
        }
        Verdict {
            ok: true,
            reason: "ok".to_owned(),
        }
    }

    /// `/readyz`: alive, serving and not shutting down.
    pub(crate) fn ready(&self) -> Verdict {
        if self.stopping.load(Ordering::Relaxed) {
            return fail("shutting down".to_owned());
        }
        if !self.serving.load(Ordering::Relaxed) {
            return fail("not serving yet".to_owned());
        }
        self.alive()
    }
}

fn fail(reason: String) -> Verdict {
    Verdict { ok: false, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_is_unhealthy_once_its_marks_go_stale_and_unready_while_stopping() {
        let health = Health::new(Duration::from_millis(50));
        health.loop_turned();
        health.broker_answered();
        assert!(health.alive().ok);
        assert!(!health.ready().ok, "not serving yet");
        health.serving();
        assert!(health.ready().ok);
        std::thread::sleep(Duration::from_millis(80));
        health.loop_turned();
        let verdict = health.alive();
        assert!(
            !verdict.ok && verdict.reason.contains("broker"),
            "{verdict:?}"
        );
        health.broker_answered();
        assert!(health.ready().ok);
        health.stopping();
        assert!(!health.ready().ok && health.alive().ok);
    }
}
