//! Fuzzing the two places where bytes from the network are read: job
//! messages fed to a real worker loop, and replies pushed into a real
//! client's inbox, both on the in-process backend (`memory://`), which has
//! Redis's lease / ack / dead-letter semantics at microseconds a message.
//!
//! A job message must end exactly as `worker/job.rs` says (see [`fate`]):
//! dead-lettered once, answered once, both (an unreadable message whose
//! caller's inbox can still be read, a message past its attempts), or
//! neither (a one-way job that ran). Whatever arrives, the worker keeps
//! serving, and a client's waiting call gets its own reply or times out at
//! its deadline.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rpc_protocol::job::JobMessage;
use rpc_protocol::reply::ReplyMessage;
use rpc_runtime::backend::{self, Broker, BrokerConfig, Completion};
use rpc_runtime::{
    CallError, CallOptions, Client, DynamicService, Error, HandlerError, StatsSnapshot, Worker,
};
use serde_json::json;

/// The service (and queue) under test.
const QUEUE: &str = "Fuzz";
/// The worker's message size limit here: small, so oversized messages are cheap.
const MAX_MESSAGE_BYTES: usize = 4096;
/// The worker's attempt limit when the message sets none (the default).
const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Stands for the case's own (valid) inbox in a generated job message.
const INBOX_SLOT: &str = "@INBOX@";
/// Stands for the waiting call's id in a generated reply.
const ID_SLOT: &str = "@ID@";

/// Numbers the cases of every property, so each gets inboxes of its own.
static CASE: AtomicU64 = AtomicU64::new(0);

fn next_case() -> u64 {
    CASE.fetch_add(1, Ordering::Relaxed)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs `test` on `cases` values of `strategy` (`FUZZ_CASES=N` in the
/// environment for a longer run); no regression files are written into the
/// source tree.
fn check<S>(cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: Debug,
{
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_time: 30_000,
        ..Config::default()
    });
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}

// ----- the worker side -----

/// A worker serving `Fuzz.echo` (answers its parameters) and `Fuzz.fail`
/// (fails for good), with a client for the calls that show it still serves.
struct WorkerRig {
    backend: Arc<dyn Broker>,
    client: Client,
    dead_letters_seen: AtomicU64,
    /// Messages put on the queue so far, ordinary calls included.
    fed: AtomicU64,
    /// The worker's counters, while it runs.
    stats: Box<dyn Fn() -> StatsSnapshot + Send + Sync>,
    /// Which (dead-lettered, answered) ends the cases had.
    fates_seen: std::sync::Mutex<std::collections::BTreeSet<(bool, bool)>>,
    stop: tokio::sync::oneshot::Sender<()>,
    running: tokio::task::JoinHandle<Result<StatsSnapshot, Error>>,
}

async fn start_worker(name: &str) -> WorkerRig {
    let url = format!("memory://{name}-{}", std::process::id());
    let service = DynamicService::new(QUEUE)
        .job("echo", |req| async move {
            let data = req.data.clone();
            req.respond(data)
        })
        .job("fail", |_req| async move {
            Err::<serde_json::Value, _>(HandlerError::fatal("this job always fails"))
        });
    let worker = Worker::builder(&url)
        .mount(service)
        .max_message_bytes(MAX_MESSAGE_BYTES)
        .build()
        .await
        .expect("worker");
    let stats = Box::new(worker.stats_handle());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async move {
        let _ = stopped.await;
    }));
    WorkerRig {
        backend: backend::connect(&BrokerConfig::new(&url))
            .await
            .expect("memory backend"),
        client: Client::connect(&url).await.expect("client"),
        dead_letters_seen: AtomicU64::new(0),
        fed: AtomicU64::new(0),
        stats,
        fates_seen: Default::default(),
        stop,
        running,
    }
}

impl WorkerRig {
    /// Stops the worker; its count of dead letters must match what the
    /// cases saw.
    async fn finish(self) {
        let _ = self.stop.send(());
        let stats = self
            .running
            .await
            .expect("the worker task did not panic")
            .expect("the worker stopped cleanly");
        assert_eq!(
            stats.dead_lettered,
            self.dead_letters_seen.load(Ordering::Relaxed),
            "{stats:?}"
        );
        assert_eq!(ended(&stats), self.fed.load(Ordering::Relaxed), "{stats:?}");
    }

    /// Waits (up to a minute) until the worker has ended `fed` messages, and
    /// returns how many it has ended. A minute is much longer than the 1.6
    /// to 2.5 s a job the worker does not know takes to be answered, when
    /// an edit took away the `handoffs` the generator gives it.
    async fn ended(&self, fed: u64) -> u64 {
        let t0 = Instant::now();
        loop {
            let ended = ended(&(self.stats)());
            if ended >= fed || t0.elapsed() > Duration::from_secs(60) {
                return ended;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// How a job message must end, by `worker/job.rs`.
#[derive(Debug, PartialEq)]
struct Fate {
    dead_letter: bool,
    /// The reply's call id and the inbox it goes to.
    reply: Option<(String, String)>,
}

impl Fate {
    fn dead_letter(reply: Option<(String, String)>) -> Fate {
        Fate {
            dead_letter: true,
            reply,
        }
    }
}

fn fate(payload: &[u8], backend: &dyn Broker) -> Fate {
    if payload.len() > MAX_MESSAGE_BYTES {
        // Not parsed at all: dead-lettered, nobody told.
        return Fate::dead_letter(None);
    }
    let Ok(msg) = JobMessage::decode(payload) else {
        // Unreadable: dead-lettered, and answered `bad_request` when enough
        // of it parses to name a client inbox.
        return Fate::dead_letter(caller(payload).filter(|(_, to)| backend.is_inbox(to)));
    };
    let reply_to = msg.reply_to.as_deref();
    if reply_to.is_some_and(|to| !backend.is_inbox(to)) {
        // Not a client inbox: dead-lettered, nothing written there.
        return Fate::dead_letter(None);
    }
    // A version this worker does not speak: dead-lettered (kept for a
    // worker that does) and answered `bad_request`. Past its attempts (first
    // delivery): dead-lettered and answered `dead_lettered`. Anything else
    // naming an inbox is answered there once (a result, an error, a missed
    // deadline); a one-way job ends silently.
    let max_attempts = msg.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
    Fate {
        dead_letter: !(rpc_protocol::job::PROTOCOL_VERSION..=rpc_protocol::job::NEWEST_VERSION)
            .contains(&msg.v)
            || msg.attempt > max_attempts,
        reply: reply_to.map(|to| (msg.id.to_string(), to.to_owned())),
    }
}

/// The call id and inbox of a message that is not a job message, read as
/// the worker reads them: only an id a call can have is answered.
fn caller(payload: &[u8]) -> Option<(String, String)> {
    #[derive(serde::Deserialize)]
    struct Header {
        id: String,
        reply_to: Option<String>,
    }
    if !rpc_protocol::job::is_json_object(payload) {
        return None;
    }
    let header: Header = serde_json::from_slice(payload).ok()?;
    // An id no call can have is not echoed back (it may be a megabyte).
    if !(1..=rpc_protocol::limits::MAX_ID_BYTES).contains(&header.id.len()) {
        return None;
    }
    Some((header.id, header.reply_to?))
}

/// The `reply_to` a message names, valid or not, if it has one.
fn named_reply_to(payload: &[u8]) -> Option<String> {
    let message: serde_json::Value = serde_json::from_slice(payload).ok()?;
    message.get("reply_to")?.as_str().map(str::to_owned)
}

/// How many messages a worker has ended: each is counted once, when it
/// ends (answered, failed, dead-lettered or expired); a retry or a hand-back
/// to the queue is not an end.
fn ended(stats: &StatsSnapshot) -> u64 {
    stats.succeeded + stats.failed + stats.dead_lettered + stats.expired
}

/// Queues `payload` for the worker, then checks that it ends, once, as
/// [`fate`] says, and that an ordinary call is still answered.
async fn feed(
    rig: &WorkerRig,
    case: u64,
    inbox: &str,
    payload: Vec<u8>,
) -> Result<(), TestCaseError> {
    let expected = fate(&payload, &*rig.backend);
    rig.fates_seen
        .lock()
        .expect("fates lock")
        .insert((expected.dead_letter, expected.reply.is_some()));
    rig.backend.push_job(QUEUE, &payload).await?;
    let fed = rig.fed.fetch_add(1, Ordering::Relaxed) + 1;
    let ended = rig.ended(fed).await;
    prop_assert_eq!(ended, fed, "messages ended, of those queued");
    // Handlers here finish without waiting, so the worker writes
    // completions in the order it ended the jobs: this answer also says the
    // message's end has been written.
    rig.fed.fetch_add(1, Ordering::Relaxed);
    let answer = rig
        .client
        .call("Fuzz.echo", json!({ "case": case }))
        .options(CallOptions::timeout(Duration::from_secs(30)))
        .response()
        .await;
    prop_assert!(
        matches!(&answer, Ok(r) if r.data == json!({ "case": case })),
        "the worker stopped serving after the message: {:?}",
        answer
    );

    let dead = rig.backend.dead_letters(QUEUE, 100).await?;
    for d in &dead {
        rig.backend.remove_dead_letter(QUEUE, &d.token).await?;
    }
    rig.dead_letters_seen
        .fetch_add(dead.len() as u64, Ordering::Relaxed);
    let listed: Vec<_> = dead
        .iter()
        .map(|d| (&d.reason, String::from_utf8_lossy(&d.payload)))
        .collect();
    prop_assert_eq!(
        dead.len(),
        usize::from(expected.dead_letter),
        "{:?}",
        listed
    );
    if let Some(d) = dead.first() {
        prop_assert_eq!(&d.payload, &payload);
        prop_assert!(!d.reason.is_empty());
    }

    // Look wherever a reply could have gone: the expected inbox, the case's
    // own, and whatever key the message names (a valid inbox or not).
    let mut keys = std::collections::BTreeSet::from([inbox.to_owned()]);
    keys.extend(expected.reply.iter().map(|(_, to)| to.clone()));
    keys.extend(named_reply_to(&payload));
    let mut reader = rig.backend.open_reader().await?;
    let mut replies = Vec::new();
    for key in &keys {
        for body in reader.pop_replies(key, 100, Duration::ZERO).await? {
            replies.push((key.clone(), body));
        }
    }
    let in_place =
        |(key, _): &(String, Vec<u8>)| expected.reply.as_ref().is_some_and(|(_, to)| to == key);
    prop_assert!(
        replies.len() == usize::from(expected.reply.is_some()) && replies.iter().all(in_place),
        "expected {:?}, got replies {:?}",
        expected,
        replies
    );
    if let (Some((id, _)), Some((_, body))) = (&expected.reply, replies.first()) {
        let reply = ReplyMessage::decode(body)
            .map_err(|e| TestCaseError::fail(format!("the worker's reply does not decode: {e}")))?;
        prop_assert_eq!(&*reply.id, id.as_str());
        if expected.dead_letter {
            prop_assert!(
                reply.error.is_some(),
                "a dead letter answered with a result"
            );
        }
    }
    Ok(())
}

/// Reproduces garbage on a queue stopping the worker, or being lost or
/// answered twice: raw bytes, JSON-ish soup and oversized messages.
#[test]
fn arbitrary_bytes_never_stop_the_worker_and_each_ends_as_its_fate_says() {
    let rt = runtime();
    let rig = rt.block_on(start_worker("fuzz-bytes"));
    let bytes = prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..300),
        4 => "[{}\\[\\]\":,0-9a-z_ .-]{0,80}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), MAX_MESSAGE_BYTES..MAX_MESSAGE_BYTES + 64),
    ];
    check(128, bytes, |payload| {
        let case = next_case();
        let inbox = rig.backend.inbox_name(&format!("case-{case}"));
        rt.block_on(feed(&rig, case, &inbox, payload))
    });
    rt.block_on(rig.finish());
}

/// Reproduces a malformed job message (fields of the wrong type, numbers out
/// of range, arrays for objects, `reply_to` naming any key, missing fields,
/// flipped bytes) stopping the worker, being lost, or ending twice.
#[test]
fn no_message_panics_the_worker_and_each_ends_as_one_reply_or_dead_letter() {
    let rt = runtime();
    let rig = rt.block_on(start_worker("fuzz-jobs"));
    check(128, job_message(), |recipe| {
        let case = next_case();
        let inbox = rig.backend.inbox_name(&format!("case-{case}"));
        let payload = recipe.bytes(INBOX_SLOT, &inbox);
        rt.block_on(feed(&rig, case, &inbox, payload))
    });
    // The generator reaches every end: neither, answered, dead-lettered, both.
    let seen = rig.fates_seen.lock().expect("fates lock").len();
    assert_eq!(seen, 4, "{:?}", rig.fates_seen);
    rt.block_on(rig.finish());
}

// ----- the client side -----

/// A mutation of what is pushed into a waiting client's inbox.
#[derive(Debug, Clone)]
enum Garbage {
    Bytes(Vec<u8>),
    /// A reply to another call, mutated.
    OtherCall(Recipe),
    /// The waiting call's own id in something that is not a reply object
    /// (an array, a string, a wrapper).
    OwnIdNotAReply(Recipe),
}

#[derive(Debug, Clone)]
struct InboxCase {
    garbage: Vec<Garbage>,
    /// The call reads its own reply (leads) rather than waiting for the router.
    lead: bool,
    /// Whether its real reply comes at all.
    answered: bool,
}

fn inbox_case() -> impl Strategy<Value = InboxCase> {
    let garbage = prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..200).prop_map(Garbage::Bytes),
        2 => reply_message().prop_map(Garbage::OtherCall),
        1 => own_id_not_a_reply().prop_map(Garbage::OwnIdNotAReply),
    ];
    (
        prop::collection::vec(garbage, 1..6),
        any::<bool>(),
        prop::bool::weighted(0.85),
    )
        .prop_map(|(garbage, lead, answered)| InboxCase {
            garbage,
            lead,
            answered,
        })
}

/// The timeout of a call whose reply never comes.
const UNANSWERED_TIMEOUT: Duration = Duration::from_millis(150);

/// Plays the worker by hand: takes the call's job, pushes the garbage into
/// its inbox, then (if `answered`) its real reply; the call must get that
/// reply, or time out (an error of kind timeout), not before its deadline.
/// How long past its deadline an unanswered call gave up is pushed onto
/// `late`: one case on a loaded machine can be late for any reason, so the
/// bound is checked on all of them together, outside the property.
async fn garbage_then_reply(
    client: &Client,
    case: u64,
    input: InboxCase,
    late: &std::sync::Mutex<Vec<Duration>>,
) -> Result<(), TestCaseError> {
    let backend = client.backend().clone();
    // An answered call's reply is pushed at once: its timeout is only a
    // backstop, generous so that a slow machine does not turn it into a
    // timeout.
    let timeout = if input.answered {
        Duration::from_secs(30)
    } else {
        UNANSWERED_TIMEOUT
    };
    let options = CallOptions::timeout(timeout);
    let caller = client.clone();
    let started = Instant::now();
    let call = tokio::spawn(async move {
        let data = json!({ "case": case });
        if input.lead {
            caller
                .call("Fuzz.echo", data)
                .options(options.clone())
                .response()
                .await
                .map(|r| r.data)
        } else {
            let pending = caller
                .call("Fuzz.echo", data)
                .options(options.clone())
                .send()
                .await?;
            pending.wait().await.map_err(|e| match e {
                CallError::Rpc(e) => e,
                CallError::App(v) => panic!("an application error out of nowhere: {v}"),
            })
        }
    });

    let mut reader = backend.open_reader().await?;
    let taken = reader
        .take_jobs(&[QUEUE.to_owned()], "hand", 1, Duration::from_secs(30))
        .await?;
    prop_assert_eq!(taken.len(), 1);
    let job = &taken[0];
    let msg = JobMessage::decode(&job.payload)
        .map_err(|e| TestCaseError::fail(format!("the client's own message: {e}")))?;
    let id = msg.id.to_string();
    let inbox = msg.reply_to.as_deref().unwrap_or_default().to_owned();
    let push = |body: Vec<u8>| Completion {
        reply: Some(body),
        reply_to: Some(inbox.clone()),
        ..Completion::default()
    };
    for g in &input.garbage {
        let body = match g {
            Garbage::Bytes(b) => b.clone(),
            Garbage::OtherCall(r) | Garbage::OwnIdNotAReply(r) => r.bytes(ID_SLOT, &id),
        };
        backend.complete(job, &push(body)).await?;
        tokio::task::yield_now().await;
    }
    let real = json!({ "real": case });
    if input.answered {
        let body = rpc_protocol::reply::encode_ok_reply(&id, &real.to_string());
        backend.complete(job, &push(body)).await?;
    }

    let got = call
        .await
        .map_err(|e| TestCaseError::fail(format!("the call panicked: {e}")))?;
    let took = started.elapsed();
    if input.answered {
        prop_assert!(
            matches!(&got, Ok(data) if *data == real),
            "the call did not get its reply: {:?}",
            got
        );
    } else {
        prop_assert!(matches!(got, Err(Error::Timeout { .. })), "{:?}", got);
        // A leading call stops reading with under a millisecond left.
        let early = timeout - Duration::from_millis(1);
        prop_assert!(took >= early, "gave up early, after {:?}", took);
        late.lock().unwrap().push(took.saturating_sub(timeout));
    }
    prop_assert_eq!(client.in_flight(), 0, "a waiter was left behind");
    Ok(())
}

/// Reproduces a malformed reply (garbage, another call's mangled reply, the
/// call's own id in an array) crashing a client's reply routing, being taken
/// as the answer, or holding a call past its deadline.
#[test]
fn garbage_in_an_inbox_never_panics_and_the_waiting_call_gets_its_own_reply() {
    let rt = runtime();
    let client = rt.block_on(async {
        let url = format!("memory://fuzz-inbox-{}", std::process::id());
        let client = Client::connect(&url).await.expect("client");
        // The hand that plays the worker takes jobs as a worker does.
        let queues = [QUEUE.to_owned()];
        client
            .backend()
            .prepare_queues(&queues)
            .await
            .expect("queue");
        client
    });
    let late = std::sync::Mutex::new(Vec::new());
    check(96, inbox_case(), |input| {
        let case = next_case();
        rt.block_on(garbage_then_reply(&client, case, input, &late))
    });
    // A call that waits past its deadline for a read's poll interval (1 s)
    // is late by most of a second every time; a loaded machine makes some
    // cases late, not the typical one. So the median of all unanswered
    // cases (about 14 in 96) must be well under that interval.
    let mut late = late.into_inner().unwrap();
    late.sort();
    if late.len() < 3 {
        // Only with a small FUZZ_CASES: 96 cases give about 14.
        eprintln!("too few unanswered cases to judge their lateness: {late:?}");
        return;
    }
    let median = late[late.len() / 2];
    assert!(
        median < Duration::from_millis(500),
        "unanswered calls gave up late past their {UNANSWERED_TIMEOUT:?} deadline: {late:?}"
    );
}

#[path = "fuzz_messages/generate.rs"]
mod generate;
use generate::*;
