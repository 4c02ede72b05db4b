//! A worker that dies says nothing more: its beat expires, so within its
//! TTL it is listed as gone (issue 21, point 1), and the janitor of a live
//! worker forgets its consumer. Real `chaos-worker` processes, one killed
//! with SIGKILL, and a private redis-server.

use std::path::Path;
use std::time::{Duration, Instant};

use rpc_chaos::WorkerProcess;
use rpc_runtime::inspect::Liveness;
use rpc_runtime::Inspector;
use rpc_testkit::RedisServer;

/// How long any waited-for event may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_chaos-worker"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_is_gone_within_its_beat_ttl_and_its_consumer_forgotten() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let beats = ["--beat-every-ms", "200", "--beat-ttl-ms", "2000"];
    let victim = WorkerProcess::start(bin(), &url, &beats).expect("victim");
    // One job, so the victim's consumer exists (Redis makes it at the
    // first delivery); the survivor starts after.
    let client = rpc_runtime::Client::connect(&url).await.unwrap();
    let square = client
        .call("Chaos.square", serde_json::json!({"n": 3}))
        .options(rpc_chaos::timeout(PATIENCE.as_millis() as u64));
    assert_eq!(square.await.unwrap(), serde_json::json!(9));
    let survivor = WorkerProcess::start(bin(), &url, &beats).expect("survivor");
    let inspector = Inspector::connect(&url, "rpc").await.unwrap();
    let pid_of = |w: &rpc_runtime::inspect::WorkerInfo| w.beat.as_ref().map(|b| b.pid);
    let deadline = Instant::now() + PATIENCE;
    let victim_id = loop {
        let workers = inspector.workers(Some("Chaos")).await.unwrap();
        let live = |pid| {
            workers
                .iter()
                .find(|w| w.liveness == Liveness::Live && pid_of(w) == Some(pid))
        };
        if let (Some(v), Some(_)) = (live(victim.child.pid()), live(survivor.child.pid())) {
            break v.id.clone();
        }
        assert!(Instant::now() < deadline, "not both listed: {workers:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let consumers = || redis.cli(["XINFO", "CONSUMERS", "rpc:{Chaos}:jobs", "workers"]);
    assert!(consumers().contains(&victim_id), "{}", consumers());
    victim.child.sigkill().expect("kill -9");
    // Redis holds the bound: the beat's key expires within the TTL of the
    // last beat written, whatever this machine's load.
    let ttl: i64 = redis
        .cli(["PTTL", &format!("rpc:worker:{{{victim_id}}}")])
        .trim()
        .parse()
        .unwrap();
    assert!((-2..=2000).contains(&ttl), "{ttl}");
    loop {
        let workers = inspector.workers(Some("Chaos")).await.unwrap();
        let victim = workers.iter().find(|w| w.id == victim_id).expect("listed");
        if victim.liveness == Liveness::Gone {
            assert!(victim.beat.is_none());
            break;
        }
        assert!(Instant::now() < deadline, "never gone: {victim:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let survivor_live = inspector
        .workers(Some("Chaos"))
        .await
        .unwrap()
        .into_iter()
        .any(|w| w.liveness == Liveness::Live && pid_of(&w) == Some(survivor.child.pid()));
    assert!(survivor_live);
    // The survivor's janitor forgets the victim's consumer (no lease held).
    while consumers().contains(&victim_id) {
        assert!(
            Instant::now() < deadline,
            "never forgotten: {}",
            consumers()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(survivor);
}
