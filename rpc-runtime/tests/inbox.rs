//! Who reads a client's inbox, against a private redis-server: a lone call
//! leads (sends its job with the read, and reads its own reply), others
//! wait for theirs to be routed. These tests break the leader on purpose:
//! it times out, is cancelled, loses its connection, or has its job
//! refused; no other call may lose its reply, and no caller may wait past
//! its deadline.
//!
//! Orderings are waited for, not slept for: a call is known to lead when a
//! connection is blocked on the inbox (`CLIENT LIST`), and calls to be
//! running when the worker holds their leases (`XPENDING`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rpc_runtime::{CallOptions, Client, DynamicService, Error, ErrorKind, Worker};
use rpc_testkit::RedisServer;
use serde_json::json;

/// A private redis-server, a worker on it and a client. Dropping it stops
/// the worker.
struct Rig {
    server: RedisServer,
    client: Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Starts a rig whose worker serves `Inbox.sleep {ms}` (answers after
/// `ms`) and `Inbox.echo` (answers at once).
async fn rig() -> Rig {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let url = server.url();
    let service = DynamicService::new("Inbox")
        .job("sleep", |req| async move {
            let ms = req.data["ms"].as_u64().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            req.respond(json!({ "slept": ms }))
        })
        .job("echo", |req| async move {
            let data = req.data.clone();
            req.respond(data)
        })
        .job("held", |req| async move {
            while !RELEASED.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            req.respond(req.data.clone())
        });
    let worker = Worker::builder(&url)
        .mount(service)
        .concurrency(64)
        .build()
        .await
        .expect("worker");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(worker.run_until(async move {
        let _ = stopped.await;
    }));
    let client = Client::connect(&url).await.unwrap();
    Rig {
        server,
        client,
        _stop: stop,
    }
}

/// Lets every `Inbox.held` job answer (only one test uses them).
static RELEASED: AtomicBool = AtomicBool::new(false);

/// Waits until a connection of `server` is blocked reading an inbox: a
/// call is leading, its read in flight.
async fn a_read_in_flight(server: &RedisServer) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = server.cli(["CLIENT", "LIST"]);
        if list
            .lines()
            .any(|l| l.contains("cmd=blmpop") || l.contains("cmd=blpop"))
        {
            return;
        }
        assert!(Instant::now() < deadline, "no read in flight: {list}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn within(ms: u64) -> CallOptions {
    CallOptions::timeout(Duration::from_millis(ms))
}

/// Fast calls started while the leading call waits for a slow reply, all
/// in flight at once, from several tasks.
async fn echo_calls(client: &Client, n: usize) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let r = client
                    .call("Inbox.echo", json!({ "i": i }))
                    .options(within(10_000))
                    .response()
                    .await
                    .expect("echo answered");
                assert_eq!(r.data, json!({ "i": i }));
            })
        })
        .collect()
}

/// The leader gives up at its deadline while its read is in flight; the
/// calls queued behind it are still answered, and the client reads on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_times_out_strands_nobody() {
    let Rig { server, client, .. } = &rig().await;

    let leader = {
        let client = client.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            let r = client
                .call("Inbox.sleep", json!({ "ms": 20_000 }))
                .options(within(300))
                .response()
                .await;
            (r, t.elapsed())
        })
    };
    a_read_in_flight(server).await;
    let others = echo_calls(client, 50).await;
    let (r, took) = leader.await.unwrap();
    // The worker cancels the job at the same deadline and says so; which of
    // the two the caller sees first is a race, and either is right.
    assert!(
        matches!(
            r,
            Err(Error::Timeout { .. })
                | Err(Error::Remote {
                    kind: ErrorKind::DeadlineExceeded,
                    ..
                })
        ),
        "expected a timeout, got {r:?}"
    );
    // At its deadline, not when the 20 s job ends (a far bound, for a
    // loaded machine).
    assert!(
        took >= Duration::from_millis(299) && took < Duration::from_secs(10),
        "timed out after {took:?}"
    );
    for call in others {
        call.await.unwrap();
    }
    assert_eq!(client.in_flight(), 0);
    // And the client keeps working, leading again.
    let r = client
        .call("Inbox.echo", json!("again"))
        .options(within(5_000))
        .response()
        .await
        .unwrap();
    assert_eq!(r.data, json!("again"));
}

/// The leading call's future is dropped mid-read (a `select!` elsewhere
/// won); the read it started is finished for it and the waiting calls get
/// their replies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_leader_strands_nobody() {
    let Rig { server, client, .. } = &rig().await;

    let leader = {
        let client = client.clone();
        tokio::spawn(async move {
            let options = within(10_000);
            tokio::select! {
                _ = client.call("Inbox.sleep", json!({ "ms": 20_000 })).options(options.clone()).response() => {
                    panic!("the sleep cannot answer before the select gives up");
                }
                _ = tokio::time::sleep(Duration::from_millis(150)) => {}
            }
        })
    };
    a_read_in_flight(server).await;
    let others = echo_calls(client, 50).await;
    leader.await.unwrap();
    for call in others {
        call.await.unwrap();
    }
    assert_eq!(client.in_flight(), 0);
}

/// The reader's connection is killed while the leader waits: its job is
/// already queued, so it waits for its reply to be routed instead, and
/// gets it over a new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_connection_dies_still_gets_its_reply() {
    let Rig { server, client, .. } = &rig().await;
    let call = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .call("Inbox.sleep", json!({ "ms": 700 }))
                .options(within(10_000))
                .response()
                .await
        })
    };
    // Find the connection blocked on this client's inbox, and kill it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let killed = loop {
        let list = server.cli(["CLIENT", "LIST"]);
        let blocked: Vec<&str> = list
            .lines()
            .filter(|l| l.contains("cmd=blmpop") || l.contains("cmd=blpop"))
            .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
            .collect();
        if let [id] = blocked[..] {
            server.cli(["CLIENT", "KILL", "ID", id]);
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(killed, "no blocked reader found to kill");
    let r = call.await.unwrap().expect("answered over a new connection");
    assert_eq!(r.data, json!({ "slept": 700 }));
    assert_eq!(client.in_flight(), 0);
}

/// Redis refuses the job (its queue key holds a string): the caller gets
/// the broker's error promptly, not a timeout at its deadline, and a call
/// waiting meanwhile is unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_job_is_an_error_not_a_timeout() {
    let Rig { server, client, .. } = &rig().await;
    server.cli(["SET", "rpc:{Broken}:jobs", "not a stream"]);
    for _ in 0..3 {
        let t = Instant::now();
        let r = client
            .call("Broken.job", json!({}))
            .options(within(20_000))
            .response()
            .await;
        let took = t.elapsed();
        match r {
            Err(Error::Broker(m)) => assert!(m.contains("WRONGTYPE"), "{m}"),
            other => panic!("expected a broker error, got {other:?}"),
        }
        // Well before the 20 s deadline, generous for a loaded machine.
        assert!(took < Duration::from_secs(10), "reported after {took:?}");
    }
    assert_eq!(client.in_flight(), 0);
    let r = client
        .call("Inbox.echo", json!(1))
        .options(within(5_000))
        .response()
        .await
        .unwrap();
    assert_eq!(r.data, json!(1));
}

/// Issue 10, point 6: something overwrote a client's inbox with a string;
/// 56 of 60 calls timed out, and each reply refreshed the string's TTL so
/// it never went away. Now the client notices (`WRONGTYPE` on its read)
/// and moves to a fresh inbox: calls in flight are answered through their
/// kept results, later calls as usual, and the string is left as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clobbered_inbox_moves_the_client_to_a_fresh_one() {
    let Rig { server, client, .. } = &rig().await;
    let old = client.inbox();
    let in_flight: Vec<_> = (0..20)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .call("Inbox.held", json!({ "slept": 300 + i }))
                    .options(within(60_000))
                    .response()
                    .await
            })
        })
        .collect();
    // All 20 running (leased by the worker), none answered: then the inbox
    // is clobbered, and only then are the replies let go.
    let deadline = Instant::now() + Duration::from_secs(60);
    while server
        .cli(["XPENDING", "rpc:{Inbox}:jobs", "workers"])
        .lines()
        .next()
        .map(str::trim)
        != Some("20")
    {
        assert!(Instant::now() < deadline, "the 20 calls never all ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.cli(["SET", &old, "clobbered"]);
    RELEASED.store(true, Ordering::SeqCst);
    for (i, call) in in_flight.into_iter().enumerate() {
        let r = call
            .await
            .unwrap()
            .expect("answered through the kept result");
        assert_eq!(r.data, json!({ "slept": 300 + i }));
    }
    let t = Instant::now();
    for i in 0..40 {
        let r = client
            .call("Inbox.echo", json!(i))
            .options(within(5_000))
            .response()
            .await
            .expect("later calls are answered");
        assert_eq!(r.data, json!(i));
    }
    // Each answered at once, not after a read's timeout (a far bound).
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert_ne!(client.inbox(), old, "the client moved");
    assert_eq!(server.cli(["GET", &old]).trim(), "clobbered");
    assert_eq!(
        server.cli(["PTTL", &old]).trim(),
        "-1",
        "a reply gave it a TTL"
    );
}

/// Issue 19, point 9: a reply that is not whole JSON, for a call in flight,
/// used to fail that call with a codec error. Now it is dropped: the call
/// waits on, and is answered by the worker's real reply. (No worker serves
/// `Nobody`: the test writes both replies into the inbox itself.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_reply_does_not_end_the_call_it_names() {
    let rig = rig().await;
    let pending = rig
        .client
        .call("Nobody.answer", json!({}))
        .options(within(10_000))
        .send()
        .await
        .unwrap();
    let id = pending.id().to_string();
    let inbox = rig.client.inbox();
    let waiting = tokio::spawn(pending.wait());
    for reply in [
        format!(r#"{{"v":1,"id":"{id}","ok":"#),
        format!(r#"{{"v":1,"id":"{id}","ok":1}}garbage"#),
        format!(r#"{{"v":1,"id":"{id}","ok":42}}"#),
    ] {
        rig.server.cli(["RPUSH", &inbox, &reply]);
    }
    let answer = waiting.await.unwrap();
    assert_eq!(answer.unwrap(), json!(42));
}
