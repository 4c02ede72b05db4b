//! Single pushes that are sent at the same time go out as one pipeline.
//!
//! Many tasks each sending one job over the shared connection reach Redis
//! in as many writes as the `redis` crate's connection task happens to
//! make: it writes whenever its queue is empty, and the runtime's sends,
//! which do more than a bare `XADD` before they queue it, leave it empty
//! more often than a hand-written sender does. Each write costs Redis one
//! pass of its event loop (`epoll_wait`, `read`, `write`), about 10 µs on
//! a small VM, more than the `XADD` itself: with 64 sends in flight Redis
//! read 6 jobs a pass against the floor's 9, and its CPU per job followed
//! (`rpc-bench --jobs`, the "64 in flight" row).
//!
//! Here a push joins a list; the push that finds the list empty spawns
//! its flush, which first yields once, so that every task woken by the
//! same batch of answers adds its push before anything is written. The
//! list then goes out as pipelines of at most [`MOST_COMMANDS`] commands
//! or about [`MOST_BYTES`], each push answered on its own (a refusal, such
//! as `NOPERM` for a client that must use the intake, is that push's
//! alone). A lone push goes as the single command it always was. The
//! flush is a task of its own, on the runtime the connection was made on,
//! so a caller that gives up (its deadline), or a caller on a runtime of
//! its own that stops or sits idle, never takes another's push with it;
//! what it sent is sent all the same, as a single command already was.
//!
//! A single Redis only: on a Cluster a pipeline does not follow `MOVED`
//! (`doorbell.rs`), so each push stays a command of its own there.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use redis::aio::ConnectionManager;
use redis::{Cmd, RedisError, RedisResult, Value};
use tokio::sync::oneshot;

use super::commands::retry_once;

/// Commands per pipeline at most.
const MOST_COMMANDS: usize = 256;
/// Bytes of messages per pipeline at most (a pipeline goes past it by one
/// message at most, and holds one whatever its size).
const MOST_BYTES: usize = 1024 * 1024;

/// A push waiting for its flush: the command, its message's size, and
/// where its answer goes.
type Waiting = (Cmd, usize, oneshot::Sender<RedisResult<Value>>);

/// Gathers the pushes sent at the same time over one connection.
#[derive(Clone)]
pub(crate) struct Coalescer {
    con: ConnectionManager,
    waiting: Arc<Mutex<Vec<Waiting>>>,
    /// Pushes sent and not yet answered.
    in_flight: Arc<AtomicUsize>,
    /// The runtime the connection was made on, which flushes: a push made
    /// from another runtime (a short-lived one, or one left idle) must not
    /// take the flush of everyone's pushes with it.
    runtime: Option<tokio::runtime::Handle>,
}

/// A flush not yet begun: if its task is dropped first (its runtime shut
/// down), what waits is dropped with it, so its pushes fail at once and the
/// next push starts a new list instead of joining one nobody will send.
struct Unflushed(Option<Coalescer>);

impl Drop for Unflushed {
    fn drop(&mut self) {
        if let Some(coalescer) = self.0.take() {
            let lost =
                std::mem::take(&mut *coalescer.waiting.lock().unwrap_or_else(|e| e.into_inner()));
            drop(lost);
        }
    }
}

/// Counts a push in flight until it is answered or given up.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Coalescer {
    pub(super) fn new(con: ConnectionManager) -> Self {
        Coalescer {
            con,
            waiting: Arc::default(),
            in_flight: Arc::default(),
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }

    /// Sends `push` (carrying a message of `bytes` bytes) with the other
    /// pushes sent now; what Redis answered to it. A push sent while no
    /// other is in flight (one sender awaiting each send) goes at once, as
    /// a command of its own: there is nothing to gather it with, and the
    /// flush's task and yield cost a lone sender about half again its
    /// client instructions per send (callgrind, `rpc-bench --profile typed
    /// --sends`).
    pub(super) async fn push(&self, push: Cmd, bytes: usize) -> RedisResult<Value> {
        let alone = self.in_flight.fetch_add(1, Ordering::AcqRel) == 0;
        let _counted = InFlight(&self.in_flight);
        if alone {
            return retry_once(|| async { push.query_async(&mut self.con.clone()).await }).await;
        }
        let (tx, rx) = oneshot::channel();
        let first = {
            let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            waiting.push((push, bytes, tx));
            waiting.len() == 1
        };
        if first {
            let mut unflushed = Unflushed(Some(self.clone()));
            let flush = async move {
                // The tasks woken with this one add their pushes first.
                tokio::task::yield_now().await;
                if let Some(this) = unflushed.0.take() {
                    this.flush().await;
                }
            };
            match &self.runtime {
                Some(runtime) => drop(runtime.spawn(flush)),
                None => drop(tokio::spawn(flush)),
            }
        }
        rx.await.unwrap_or_else(|_| {
            Err(RedisError::from(std::io::Error::other(
                "the pipeline carrying this push was dropped",
            )))
        })
    }

    /// Sends everything waiting, as pipelines side by side.
    async fn flush(&self) {
        let all = std::mem::take(&mut *self.waiting.lock().unwrap_or_else(|e| e.into_inner()));
        let mut pipelines: Vec<Vec<Waiting>> = Vec::new();
        let mut bytes = 0;
        for push in all {
            match pipelines.last_mut() {
                Some(last) if last.len() < MOST_COMMANDS && bytes < MOST_BYTES => {
                    bytes += push.1;
                    last.push(push);
                }
                _ => {
                    bytes = push.1;
                    pipelines.push(vec![push]);
                }
            }
        }
        futures_util::future::join_all(pipelines.into_iter().map(|p| self.send(p))).await;
    }

    /// Sends one pipeline's pushes and hands each its answer.
    async fn send(&self, pushes: Vec<Waiting>) {
        let (cmds, answers): (Vec<Cmd>, Vec<_>) =
            pushes.into_iter().map(|(cmd, _, tx)| (cmd, tx)).unzip();
        if let [cmd] = cmds.as_slice() {
            let answer =
                retry_once(|| async { cmd.query_async(&mut self.con.clone()).await }).await;
            for tx in answers {
                let _ = tx.send(answer.clone());
            }
            return;
        }
        let mut pipe = redis::pipe();
        for cmd in cmds {
            pipe.add_command(cmd);
        }
        pipe.ignore_errors();
        // Sent again whole if the connection failed: a duplicate is
        // harmless under at-least-once delivery, as for a single send.
        let answered: RedisResult<Vec<RedisResult<Value>>> =
            retry_once(|| async { pipe.query_async(&mut self.con.clone()).await }).await;
        match answered {
            Ok(each) if each.len() == answers.len() => {
                for (tx, answer) in answers.into_iter().zip(each) {
                    let _ = tx.send(answer);
                }
            }
            Ok(each) => {
                let e = RedisError::from(std::io::Error::other(format!(
                    "{} answers to a pipeline of {} pushes",
                    each.len(),
                    answers.len()
                )));
                for tx in answers {
                    let _ = tx.send(Err(e.clone()));
                }
            }
            Err(e) => {
                for tx in answers {
                    let _ = tx.send(Err(e.clone()));
                }
            }
        }
    }
}
