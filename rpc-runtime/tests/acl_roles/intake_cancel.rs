//! A cancellation that waits in the intake with the call it cancels (the
//! third security round): a client-role user sends a call and then
//! cancels it while no worker runs, so the job message and `cancel <id>`
//! sit together on the intake. The worker that starts moved both in one
//! `intake.lua` call, queueing the job unflagged, and took it before its
//! next lifecycle poll learned of the cancellation: the cancelled call
//! ran (3 of 3 trials). Now the script flags the job cancelled as it
//! moves it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rpc_runtime::{Cancelled, ErrorKind};

use super::*;

/// A call cancelled while it and its cancellation wait in the intake is
/// answered `cancelled`, and its handler never runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_cancelled_while_it_waits_in_the_intake_never_runs() {
    let (redis, _dir) = redis_with_roles();
    let client = Client::connect(&url(&redis, CLIENT)).await.unwrap();
    let pending = client
        .call("Acl.count", json!({}))
        .options(opts())
        .send()
        .await
        .unwrap();
    assert_eq!(pending.cancel().await.unwrap(), Cancelled::Requested);
    assert_eq!(
        redis.cli(["LLEN", "rpc:{Acl}:intake"]).trim(),
        "2",
        "the call and its cancellation wait in the intake"
    );

    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let service = DynamicService::new("Acl").job("count", move |_req| {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(json!("ran"))
        }
    });
    let worker = Worker::builder(url(&redis, WORKER))
        .mount(service)
        .build()
        .await
        .expect("worker as the worker role");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(worker.run_until(async move {
        let _ = rx.await;
    }));
    let answer = pending.wait().await;
    stop((tx, task)).await;
    let err = answer.expect_err("a cancelled call is not answered with a result");
    assert_eq!(err.remote_kind(), Some(ErrorKind::Cancelled), "{err}");
    assert_eq!(runs.load(Ordering::SeqCst), 0, "the cancelled call ran");
    assert_acl_log_empty(&redis);
}
