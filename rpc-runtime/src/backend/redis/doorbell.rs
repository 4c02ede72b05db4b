//! The doorbell: how a worker reading many queues on a Redis Cluster
//! learns, without polling, that one of them got a job.
//!
//! One `XREADGROUP ... BLOCK` cannot wait on queues in different slots, so
//! on a Cluster whoever adds a job to queue `Q` (a client's `XADD` to its
//! stream or `RPUSH` to its intake) then sends `SPUBLISH P:{Q}:ready ""`:
//! the channel is in `Q`'s slot, so it goes to the same master. A worker rings too when its mover
//! or its schedule poll moved jobs onto the stream. A worker
//! subscribes (`SSUBSCRIBE`) to the ready channel of each of its queues,
//! one subscriber connection per master, and waits on those connections
//! when every queue is empty (`cluster_reader.rs`).
//!
//! The pushes onto one queue share rings (`shared_rings.rs`): a push needs
//! a ring sent after Redis took it, not one of its own; a task of the
//! queue's sends them.
//!
//! A ring is only a hint: it carries nothing, a lost one (a failover, a
//! reconnect) costs at most one wait, because the reader sweeps every
//! queue after subscribing and after each wait that ends unrung. On a
//! single Redis nothing rings: one multi-key `XREADGROUP BLOCK` covers
//! every queue there.
//!
//! The subscriber speaks RESP2 on a connection of its own
//! ([`RespConnection`]), where confirmations and messages are plain
//! arrays that may come in any order; every frame is checked before it
//! counts (a frame that is not one of ours is ignored).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::{ConnectionInfo, RedisError, RedisResult, Value};
use rpc_protocol::Keys;

use super::commands::Commands;
use super::resp::RespConnection;
use super::shared_rings::SharedRings;

/// `SPUBLISH P:{queue}:ready ""`: rings the doorbell of `queue`.
pub(super) fn ring_cmd(keys: &Keys, queue: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("SPUBLISH");
    cmd.arg(keys.ready(queue)).arg("");
    cmd
}

/// How long a client stops ringing a queue's doorbell after a ring that
/// nobody heard (`SPUBLISH` answered 0: no worker on that master waits on
/// it, as with a worker of one queue, which blocks in `XREADGROUP`
/// instead), at first: each further ring nobody heard doubles it, up to
/// [`SILENT_FOR`]. So a worker that starts listening soon after its
/// clients (a deploy, a test, a bench) is rung again within tens of
/// milliseconds, not a second later: meanwhile each unrung call waits for
/// the end of the worker's read (up to a second). Measured before the
/// doubling: `rpc-bench --shards 8 --cluster 3 --quick` took 200 to 350 ms
/// a call for the first second of every configuration.
const SILENT_FIRST: Duration = Duration::from_millis(10);
/// The longest a client stops ringing a doorbell nobody heard. A worker
/// that starts listening meanwhile misses rings for at most this long,
/// which costs each of those calls at most one wait; where nobody ever
/// listens it is about one ring per queue per second.
const SILENT_FOR: Duration = Duration::from_secs(1);

/// How long to stop ringing after a ring nobody heard, given how long the
/// last stop was (`None`: the last ring was heard, or there was none).
fn silence_after(last: Option<Duration>) -> Duration {
    last.map_or(SILENT_FIRST, |span| (span * 2).min(SILENT_FOR))
}

/// A doorbell nobody heard: not rung until `until`; `span` is how long
/// that is from the ring, which the next unheard ring doubles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Silence {
    until: Instant,
    span: Duration,
}

/// The silence after a ring nobody heard, given the one recorded. While
/// that one lasts, it stays as it is: the ring went out before it began
/// (the pushes of many callers may ring at once), and says nothing new. Counted, the unheard rings of 64 calls in flight
/// doubled a fresh client's first silence to a second, and its calls each
/// waited for the end of a worker's read meanwhile.
fn silence_on_unheard(last: Option<Silence>, now: Instant) -> Silence {
    match last {
        Some(silence) if now < silence.until => silence,
        last => {
            let span = silence_after(last.map(|s| s.span));
            Silence {
                until: now + span,
                span,
            }
        }
    }
}

/// Rings doorbells on a Cluster (nothing on a single Redis); shared by a
/// backend and its readers. It remembers which doorbells nobody heard
/// lately, and does not ring those for a while ([`SILENT_FIRST`], doubling
/// up to [`SILENT_FOR`]): on a Cluster where
/// every worker reads one queue, a ring per job would only cost Redis a
/// command (measured: +1 command and about +15% Redis CPU per call).
#[derive(Clone)]
pub(crate) struct Doorbell {
    commands: Commands,
    keys: Keys,
    /// Queue -> until when its doorbell is not rung.
    silent: Arc<Mutex<HashMap<String, Silence>>>,
    /// The rings on their way, shared by the pushes they cover.
    shared: Arc<SharedRings>,
}

impl Doorbell {
    pub(super) fn new(commands: Commands, keys: Keys) -> Self {
        Doorbell {
            commands,
            keys,
            silent: Arc::default(),
            shared: Arc::default(),
        }
    }

    fn cluster(&self) -> bool {
        matches!(self.commands, Commands::Cluster(_))
    }

    fn worth_ringing(&self, queue: &str) -> bool {
        let silent = self.silent.lock().unwrap_or_else(|e| e.into_inner());
        silent.get(queue).is_none_or(|s| Instant::now() >= s.until)
    }

    /// Rings `queue`'s doorbell (after jobs were added to its stream), or
    /// waits for the next ring another push sends, and remembers whether
    /// anyone heard it. Its failure is only logged.
    pub(super) async fn ring(&self, queue: &str) {
        if !self.cluster() || !self.worth_ringing(queue) {
            return;
        }
        // The ring function is made only when the queue's ringer starts.
        let ringer = || {
            let (bell, owned) = (self.clone(), queue.to_owned());
            move || {
                let (bell, queue) = (bell.clone(), owned.clone());
                async move { bell.ring_now(&queue).await }
            }
        };
        self.shared.ring(queue, ringer).await;
    }

    /// Sends one ring of `queue`'s doorbell.
    async fn ring_now(&self, queue: &str) {
        match self
            .commands
            .query::<Value>(&ring_cmd(&self.keys, queue))
            .await
        {
            Ok(heard_by) => self.heard(queue, &heard_by),
            Err(e) => tracing::debug!(queue, error = %e, "could not ring the doorbell"),
        }
    }

    /// Remembers whether anyone heard a ring of `queue` (`SPUBLISH`
    /// answered how many subscribers got it).
    fn heard(&self, queue: &str, heard_by: &Value) {
        let mut silent = self.silent.lock().unwrap_or_else(|e| e.into_inner());
        match heard_by {
            Value::Int(0) => {
                let silence = silence_on_unheard(silent.get(queue).copied(), Instant::now());
                silent.insert(queue.to_owned(), silence);
            }
            Value::Int(_) => {
                silent.remove(queue);
            }
            other => tracing::debug!(queue, answer = ?other, "could not ring the doorbell"),
        }
    }

    /// Sends `push`, which adds a job to `queue` (an `XADD` to its stream,
    /// an `RPUSH` to its intake), and on a Cluster rings `queue`'s
    /// doorbell after it. Answers what Redis said to the push.
    ///
    /// The ring goes after the push's answer, as a command of its own
    /// (shared with the other pushes onto the queue, `shared_rings.rs`),
    /// not in one pipeline with the push: the `redis` crate's cluster
    /// connection sends a whole pipeline again when any one answer in it is
    /// a redirect. During a slot migration the push goes to the target with
    /// `ASKING` and runs there, while the `SPUBLISH` after it (no `ASKING`
    /// for it) answers `MOVED` back to the source: the pipeline went again,
    /// and its caller was told `ASK` for a job that was queued (a caller
    /// that tries again runs it twice). A single command is redirected.
    ///
    /// A caller dropped while its push is on its way (a deadline, a
    /// `select!` that went the other way) may leave the job queued: the
    /// ring goes all the same ([`RingIfDropped`]).
    pub(super) async fn push_and_ring(&self, queue: &str, push: redis::Cmd) -> RedisResult<Value> {
        let guard = RingIfDropped::new(self, queue);
        let pushed = self.commands.query(&push).await;
        guard.disarm();
        let pushed = pushed?;
        self.ring(queue).await;
        Ok(pushed)
    }
}

/// Rings a queue's doorbell, from a task of its own, if dropped before
/// [`disarm`](Self::disarm): held across a push whose caller may be
/// dropped once the push is written and before its answer comes, which
/// leaves the job queued with no ring (an adversarial review found such
/// jobs taken only by the worker's next sweep, 200 ms to 1 s later: 1,709
/// jobs on 50 rings). A ring is only a hint: one for a push that never
/// went out costs a command. Nothing on a single Redis; once disarmed,
/// nothing at all.
pub(super) struct RingIfDropped<'a> {
    bell: &'a Doorbell,
    queue: &'a str,
    armed: bool,
}

impl<'a> RingIfDropped<'a> {
    pub(super) fn new(bell: &'a Doorbell, queue: &'a str) -> Self {
        RingIfDropped {
            bell,
            queue,
            armed: bell.cluster(),
        }
    }

    /// The push was answered: its caller rings (or knows it failed).
    pub(super) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for RingIfDropped<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (bell, queue) = (self.bell.clone(), self.queue.to_owned());
        runtime.spawn(async move { bell.ring(&queue).await });
    }
}

/// What a subscriber connection heard.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Heard {
    /// A message on a channel: a queue's doorbell rang.
    Rung(Vec<u8>),
    /// Redis ended the subscription by itself (the channel's slot moved
    /// away from this node): the slot map is stale.
    Dropped(Vec<u8>),
    /// A subscription confirmed.
    Confirmed,
    /// Redis refused a subscription (`MOVED`, `NOPERM`, ...).
    Refused(String),
    /// Anything else.
    Other,
}

/// Reads one frame of a RESP2 subscriber connection.
pub(super) fn hear(frame: &Value) -> Heard {
    let Value::Array(parts) = frame else {
        return match frame {
            Value::ServerError(e) => Heard::Refused(format!("{e:?}")),
            _ => Heard::Other,
        };
    };
    let kind = match parts.first() {
        Some(Value::BulkString(k)) => k.as_slice(),
        Some(Value::SimpleString(k)) => k.as_bytes(),
        _ => return Heard::Other,
    };
    let channel = match parts.get(1) {
        Some(Value::BulkString(c)) => c.clone(),
        _ => return Heard::Other,
    };
    if kind.eq_ignore_ascii_case(b"smessage") && parts.len() == 3 {
        Heard::Rung(channel)
    } else if kind.eq_ignore_ascii_case(b"ssubscribe") {
        Heard::Confirmed
    } else if kind.eq_ignore_ascii_case(b"sunsubscribe") {
        Heard::Dropped(channel)
    } else {
        Heard::Other
    }
}

/// A subscriber connection to one master, subscribed to the ready
/// channels of the queues that master holds.
pub(super) struct Bell {
    con: RespConnection,
}

impl Bell {
    /// Connects to the master `info` names and subscribes to `channels`
    /// (one `SSUBSCRIBE` each: a command may only name channels of one
    /// slot), returning once every one is confirmed. Rings heard on the
    /// way are dropped: the caller sweeps every queue after this anyway.
    pub(super) async fn open(
        info: &ConnectionInfo,
        channels: &[String],
        timeout: Duration,
    ) -> RedisResult<Bell> {
        let mut con = RespConnection::connect(info, timeout).await?;
        let mut pipe = redis::pipe();
        for channel in channels {
            pipe.cmd("SSUBSCRIBE").arg(channel);
        }
        let subscribing = async {
            con.send_pipeline(&pipe).await?;
            let mut confirmed = 0;
            while confirmed < channels.len() {
                match hear(&con.next_reply().await?) {
                    Heard::Confirmed => confirmed += 1,
                    Heard::Refused(e) => {
                        return Err(RedisError::from(std::io::Error::other(format!(
                            "SSUBSCRIBE refused: {e}"
                        ))))
                    }
                    Heard::Dropped(_) => {
                        return Err(RedisError::from(std::io::Error::other(
                            "a subscription was dropped while subscribing",
                        )))
                    }
                    Heard::Rung(_) | Heard::Other => {}
                }
            }
            Ok(())
        };
        match tokio::time::timeout(timeout, subscribing).await {
            Ok(Ok(())) => Ok(Bell { con }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "subscribing timed out",
            ))),
        }
    }

    /// The next thing heard. Cancel-safe (see
    /// [`RespConnection::next_reply`]).
    pub(super) async fn next(&mut self) -> RedisResult<Heard> {
        Ok(hear(&self.con.next_reply().await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn frames_are_heard_only_when_they_are_ours() {
        let ring = Value::Array(vec![bulk("smessage"), bulk("rpc:{S}:ready"), bulk("")]);
        assert_eq!(hear(&ring), Heard::Rung(b"rpc:{S}:ready".to_vec()));
        let ok = Value::Array(vec![bulk("ssubscribe"), bulk("c"), Value::Int(1)]);
        assert_eq!(hear(&ok), Heard::Confirmed);
        let gone = Value::Array(vec![bulk("sunsubscribe"), bulk("c"), Value::Int(0)]);
        assert_eq!(hear(&gone), Heard::Dropped(b"c".to_vec()));
        for junk in [
            Value::Nil,
            Value::Int(3),
            Value::Array(vec![]),
            Value::Array(vec![bulk("smessage")]),
            Value::Array(vec![bulk("smessage"), Value::Int(1), bulk("")]),
            Value::Array(vec![bulk("message"), bulk("c"), bulk("")]),
            Value::Array(vec![Value::Int(1), bulk("c"), bulk("")]),
        ] {
            assert_eq!(hear(&junk), Heard::Other, "{junk:?}");
        }
    }

    #[test]
    fn a_doorbell_nobody_heard_is_left_alone_longer_each_time_up_to_a_second() {
        let mut spans = Vec::new();
        let mut last = None;
        for _ in 0..9 {
            let span = silence_after(last);
            spans.push(span.as_millis());
            last = Some(span);
        }
        assert_eq!(spans, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        // A heard ring forgets the silence: the next unheard one starts over.
        assert_eq!(silence_after(None), SILENT_FIRST);
    }

    #[test]
    fn unheard_rings_sent_together_lengthen_the_silence_once() {
        let start = Instant::now();
        let first = silence_on_unheard(None, start);
        assert_eq!(first.span, SILENT_FIRST);
        // The other callers' rings, answered while it lasts.
        let mut now = start;
        for _ in 0..64 {
            now += Duration::from_micros(100);
            assert_eq!(silence_on_unheard(Some(first), now), first);
        }
        // A ring sent once it ended, unheard too: twice as long.
        let later = first.until + Duration::from_millis(1);
        let second = silence_on_unheard(Some(first), later);
        assert_eq!(second.span, SILENT_FIRST * 2);
        assert_eq!(second.until, later + SILENT_FIRST * 2);
    }

    #[test]
    fn a_ring_is_an_spublish_on_the_queues_ready_channel() {
        let keys = Keys::new("rpc");
        let cmd = ring_cmd(&keys, "Calc~3");
        let args: Vec<Vec<u8>> = cmd
            .args_iter()
            .map(|a| match a {
                redis::Arg::Simple(b) => b.to_vec(),
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(
            args,
            vec![
                b"SPUBLISH".to_vec(),
                keys.ready("Calc~3").into_bytes(),
                Vec::new()
            ]
        );
    }
}
