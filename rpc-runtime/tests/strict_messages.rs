//! The wire format is strict, checked with a real worker and a real client
//! on a private redis-server, the messages written with `redis-cli` as
//! another program would write them: serde's derive reads a struct from a
//! JSON array of its fields, and would read numbers past the documented
//! ranges, so a job message or a reply in array form, or with a number out
//! of range, must be refused (dead-lettered with the reason), never run or
//! taken as an answer.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc_protocol::reply::ReplyMessage;
use rpc_runtime::backend::DeadLetter;
use rpc_runtime::{Client, DynamicService, ErrorKind, Worker};
use rpc_testkit::RedisServer;
use serde_json::json;

const JOBS: &str = "rpc:{Strict}:jobs";
const DEAD: &str = "rpc:{Strict}:dead";

/// A private redis-server, a worker serving `Strict.run` (counts its runs)
/// and a client. Dropping it stops the worker.
struct Rig {
    server: RedisServer,
    client: Client,
    runs: Arc<AtomicU32>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn rig() -> Rig {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let url = server.url();
    let runs = Arc::new(AtomicU32::new(0));
    let counted = runs.clone();
    let service = DynamicService::new("Strict").job("run", move |req| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move { req.respond(json!("ran")) }
    });
    let worker = Worker::builder(&url)
        .mount(service)
        .build()
        .await
        .expect("worker");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(worker.run_until(async move {
        let _ = stopped.await;
    }));
    let client = Client::builder(&url)
        .default_timeout(Duration::from_secs(10))
        .connect()
        .await
        .expect("client");
    Rig {
        server,
        client,
        runs,
        _stop: stop,
    }
}

impl Rig {
    /// Adds a job message to the `Strict` queue as any program could.
    fn xadd(&self, payload: &str) {
        let id = self.server.cli(["XADD", JOBS, "*", "m", payload]);
        assert!(id.contains('-'), "XADD: {id}");
    }

    /// Waits until the queue holds `n` dead letters, and returns them.
    async fn dead_letters(&self, n: usize) -> Vec<DeadLetter> {
        let t0 = Instant::now();
        loop {
            let dead = self.client.dead_letters("Strict", 100).await.expect("list");
            if dead.len() >= n || t0.elapsed() > Duration::from_secs(10) {
                return dead;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// An ordinary call: the worker is still serving, and (its queue read in
    /// order) has dealt with everything added before.
    async fn still_serving(&self) {
        let r = self
            .client
            .call_and_wait("Strict.run", json!({}))
            .await
            .expect("an ordinary call is answered");
        assert_eq!(r.data, json!("ran"));
    }

    /// No job left unacked or undeleted on the queue.
    fn queue_is_empty(&self) {
        assert_eq!(self.server.cli(["XLEN", JOBS]).trim(), "0");
        let pending = self.server.cli(["XPENDING", JOBS, "workers"]);
        assert_eq!(
            pending.lines().next().map(str::trim),
            Some("0"),
            "{pending}"
        );
    }
}

/// Reproduces a job message in array form, `[v, id, job, params, reply_to]`,
/// which serde's derive reads as the struct: the worker must not run it or
/// answer to the inbox it names, but dead-letter it saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_message_in_array_form_is_dead_lettered_not_run_or_answered() {
    let rig = rig().await;
    let array = r#"[1,"arr-1","Strict.run",{},"rpc:inbox:{x}"]"#;
    rig.xadd(array);

    let dead = rig.dead_letters(1).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].payload, array.as_bytes());
    assert!(dead[0].reason.contains("JSON object"), "{}", dead[0].reason);

    rig.still_serving().await;
    assert_eq!(
        rig.runs.load(Ordering::SeqCst),
        1,
        "only the ordinary call ran"
    );
    assert_eq!(rig.server.cli(["EXISTS", "rpc:inbox:{x}"]).trim(), "0");
    assert_eq!(
        rig.server.cli(["XLEN", DEAD]).trim(),
        "1",
        "dead-lettered once"
    );
    rig.queue_is_empty();
}

/// Reproduces a reply in array form, `[v, id, ok]`, pushed into a waiting
/// client's inbox with the call's own id: it must not be taken as the
/// answer; the real reply that follows is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_in_array_form_is_not_taken_as_the_answer() {
    let rig = rig().await;
    // A queue no worker serves: this test answers by hand.
    let pending = rig
        .client
        .call("Nobody.job", json!({}))
        .send()
        .await
        .expect("sent");
    let id = pending.id().to_string();
    let listed = rig.server.cli(["XRANGE", "rpc:{Nobody}:jobs", "-", "+"]);
    let message: serde_json::Value = listed
        .lines()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("no job message in {listed}"));
    assert_eq!(message["id"], json!(id));
    let inbox = message["reply_to"].as_str().expect("reply_to").to_owned();

    let array = format!(r#"[1,"{id}","from the array"]"#);
    rig.server.cli(["RPUSH", &inbox, &array]);
    let waiting = tokio::spawn(pending.wait());
    // Read (the inbox is empty again), and not taken as the answer: the
    // answer is the object pushed after it.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while rig.server.cli(["LLEN", &inbox]).trim() != "0" {
        assert!(
            std::time::Instant::now() < deadline,
            "the client never read its inbox"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let reply = format!(r#"{{"v":1,"id":"{id}","ok":"from the object"}}"#);
    rig.server.cli(["RPUSH", &inbox, &reply]);
    let answer = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("answered in time")
        .expect("the call did not panic");
    assert_eq!(answer.expect("the real reply"), json!("from the object"));
    assert_eq!(rig.client.in_flight(), 0);
}

/// Reproduces numbers past the documented ranges that serde reads fine:
/// `result_ttl_ms` of u64::MAX (an expiry Redis refuses, so the completion
/// that keeps the result could never be written) and `attempt` 0. Each is
/// answered `bad_request` and dead-lettered, once, and never run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_numbers_are_answered_bad_request_and_dead_lettered_once() {
    let rig = rig().await;
    let inbox = "rpc:inbox:{strict-range}";
    let cases = [
        (
            "huge-ttl",
            r#""result_ttl_ms":18446744073709551615"#,
            "result_ttl_ms",
        ),
        ("attempt-zero", r#""attempt":0"#, "attempt"),
    ];
    for (id, field, _) in cases {
        rig.xadd(&format!(
            r#"{{"v":1,"id":"{id}","job":"Strict.run","params":{{}},"reply_to":"{inbox}",{field}}}"#
        ));
    }

    let dead = rig.dead_letters(cases.len()).await;
    assert_eq!(dead.len(), cases.len(), "{dead:?}");
    let mut reader = rig.client.backend().open_reader().await.expect("reader");
    let mut replies = Vec::new();
    let t0 = Instant::now();
    while replies.len() < cases.len() && t0.elapsed() < Duration::from_secs(10) {
        let popped = reader
            .pop_replies(inbox, 10, Duration::from_millis(200))
            .await
            .expect("pop");
        replies.extend(popped);
    }
    for (id, _, named) in cases {
        let letter = dead
            .iter()
            .find(|d| String::from_utf8_lossy(&d.payload).contains(id))
            .unwrap_or_else(|| panic!("no dead letter for {id}: {dead:?}"));
        assert!(letter.reason.contains(named), "{}", letter.reason);
        let reply = replies
            .iter()
            .map(|body| ReplyMessage::decode(body).expect("a reply object"))
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("no reply for {id}"));
        let error = reply.error.expect("an error reply");
        assert_eq!(error.kind, ErrorKind::BadRequest);
        assert!(error.message.contains(named), "{}", error.message);
        let kept = format!("rpc:result:{{{id}}}");
        assert_eq!(rig.server.cli(["EXISTS", &kept]).trim(), "0");
    }
    assert_eq!(replies.len(), cases.len(), "one reply each");

    // Once: nothing more turns up after the worker has moved on.
    rig.still_serving().await;
    assert_eq!(
        rig.runs.load(Ordering::SeqCst),
        1,
        "only the ordinary call ran"
    );
    let dead_now = rig.server.cli(["XLEN", DEAD]);
    assert_eq!(
        dead_now.trim(),
        cases.len().to_string(),
        "dead-lettered once each"
    );
    assert_eq!(rig.server.cli(["LLEN", inbox]).trim(), "0");
    rig.queue_is_empty();
}
