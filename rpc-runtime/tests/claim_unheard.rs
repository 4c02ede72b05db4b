//! A keyed call whose claim reached Redis but whose answer was lost.
//!
//! A worker claims a call's idempotency key with `SET ... NX GET` before it
//! runs the call. When the connection fails after Redis ran that `SET` but
//! before its answer arrived, the key holds the call's own id, and the
//! worker cannot tell from Redis alone whether that claim is its own or a
//! second copy's. Put back on the schedule, the call would come back as a
//! fresh entry, take itself for a copy, and never run (its caller would
//! time out). These tests make the connection fail exactly there, through
//! a proxy between the worker and a private redis-server that drops the
//! connection carrying a claim once Redis has answered it, and check that
//! the call runs, once, and its caller gets the answer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rpc_runtime::{Client, DynamicService, Worker};
use rpc_testkit::RedisServer;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy to `upstream` that, `kills` times, lets a claim of an
/// idempotency key through to Redis and then drops its connection instead
/// of passing Redis's answer back. Returns its address and the count of
/// claims it dropped.
async fn claim_dropping_proxy(upstream: String, kills: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let address = listener.local_addr().expect("proxy address").to_string();
    let left = Arc::new(AtomicUsize::new(kills));
    let dropped = Arc::new(AtomicUsize::new(0));
    let seen = dropped.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(&upstream).await else {
                continue;
            };
            tokio::spawn(relay(client, server, left.clone(), seen.clone()));
        }
    });
    (address, dropped)
}

/// Relays one connection both ways, dropping it after Redis answered a
/// claim while `left` allows.
async fn relay(
    mut client: TcpStream,
    mut server: TcpStream,
    left: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
) {
    let (mut up, mut down) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let mut armed = false;
    loop {
        tokio::select! {
            read = client.read(&mut up) => {
                let Ok(n @ 1..) = read else { return };
                let chunk = &up[..n];
                if server.write_all(chunk).await.is_err() {
                    return;
                }
                if is_claim(chunk)
                    && left
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| l.checked_sub(1))
                        .is_ok()
                {
                    armed = true;
                }
            }
            read = server.read(&mut down) => {
                let Ok(n @ 1..) = read else { return };
                if armed {
                    // Redis has run the claim: its answer goes nowhere.
                    dropped.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                if client.write_all(&down[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Whether a chunk the worker wrote carries a `SET` of an idempotency key.
fn is_claim(chunk: &[u8]) -> bool {
    let has = |needle: &[u8]| chunk.windows(needle.len()).any(|w| w == needle);
    has(b"SET\r\n") && has(b":once:") && has(b"NX\r\n")
}

/// Runs one keyed call through a worker whose first `kills` claims are
/// dropped after Redis ran them; returns the answer, how many times the
/// handler ran, and how many claims the proxy dropped.
async fn keyed_call_with_claims_dropped(kills: usize) -> (serde_json::Value, usize, usize) {
    rpc_testkit::require_redis_server();
    let server = RedisServer::start().expect("redis-server");
    let upstream = format!("{}:{}", server.host(), server.port());
    let (proxy, dropped) = claim_dropping_proxy(upstream, kills).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let service = DynamicService::new("Claim").job("square", move |req| {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            let n = req.data["n"].as_i64().unwrap_or(0);
            req.respond(json!(n * n))
        }
    });
    let worker = Worker::builder(format!("redis://{proxy}/"))
        .mount(service)
        .build()
        .await
        .expect("worker");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async move {
        let _ = stopped.await;
    }));
    // The client talks to Redis directly: only the worker's claim is hit.
    let client = Client::connect(&server.url()).await.expect("client");
    let answer = client
        .call("Claim.square", json!({ "n": 7 }))
        .idempotency_key("order-7")
        .timeout(Duration::from_secs(30))
        .await
        .expect("the keyed call is answered");
    let _ = stop.send(());
    running.await.expect("worker task").expect("worker stops");
    (
        answer,
        runs.load(Ordering::SeqCst),
        dropped.load(Ordering::SeqCst),
    )
}

/// The claim and the worker's immediate second try both lose their
/// answers: the worker tries again in the same delivery, finds the key
/// under its own call's id, and runs the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_answers_were_lost_still_runs_its_call_once() {
    let (answer, runs, dropped) = keyed_call_with_claims_dropped(2).await;
    assert_eq!(dropped, 2, "the proxy dropped two claims' answers");
    assert_eq!(answer, json!(49));
    assert_eq!(runs, 1, "the call ran exactly once");
}

/// One lost answer: the connection's own second try reads the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_first_answer_was_lost_runs_its_call_once() {
    let (answer, runs, dropped) = keyed_call_with_claims_dropped(1).await;
    assert_eq!(dropped, 1, "the proxy dropped one claim's answer");
    assert_eq!(answer, json!(49));
    assert_eq!(runs, 1, "the call ran exactly once");
}
