//! Progress under the roles: the worker role writes a call's progress
//! (`SET P:progress:{call}`), a client reads it (`GETRANGE`, read-only)
//! with nothing refused, and a client cannot write or remove any call's
//! progress, nor a tenant read another tenant's.

use super::*;

/// Lets one `AclProgress.report` job end.
static DONE: tokio::sync::Notify = tokio::sync::Notify::const_new();

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_role_writes_progress_and_a_client_reads_but_cannot_write_it() {
    let (redis, _dir) = redis_with_roles();
    let service = DynamicService::new("AclProgress").job("report", |req| async move {
        req.context
            .progress((2, 4), "half")
            .map_err(|e| HandlerError::fatal(e.to_string()))?;
        DONE.notified().await;
        Ok(json!("reported"))
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
    let tenant = |role: (&str, &str), name: &str| {
        Client::builder(url(&redis, role))
            .client_id_prefix(name)
            .connect()
    };
    let a = tenant(TENANT_A, "a").await.unwrap();
    let pending = a
        .call("AclProgress.report", json!({}))
        .options(opts())
        .send()
        .await
        .unwrap();
    let id = pending.id().clone();
    let mut watch = pending.progress();
    let seen = tokio::time::timeout(PATIENCE, watch.next())
        .await
        .expect("progress within the patience")
        .expect("a value")
        .expect("a value the tenant may read");
    assert_eq!(
        seen.progress,
        rpc_runtime::Progress::Steps { done: 2, total: 4 }
    );
    // The plain client role reads it too, by id.
    let client = Client::connect(&url(&redis, CLIENT)).await.unwrap();
    let read = client.read_progress(&id).await.unwrap().expect("the value");
    assert_eq!(read.message, "half");
    assert_acl_log_empty(&redis);

    let key = format!("rpc:progress:{{{id}}}");
    let forged = r#"{"seq":99,"at_ms":1,"fraction":1.0,"message":"forged"}"#;
    for role in [CLIENT, TENANT_A, TENANT_B] {
        denied(&redis, role, &["SET", &key, forged]);
        denied(&redis, role, &["DEL", &key]);
        denied(&redis, role, &["PEXPIRE", &key, "1"]);
    }
    // Tenant b may not read tenant a's call's progress.
    denied(&redis, TENANT_B, &["GETRANGE", &key, "0", "100"]);
    denied(&redis, TENANT_B, &["GET", &key]);
    // What the worker wrote is still there.
    assert_eq!(
        client.read_progress(&id).await.unwrap().map(|p| p.message),
        Some("half".to_owned())
    );

    // The attacks are logged; what follows must not be.
    redis.cli(["ACL", "LOG", "RESET"]);
    DONE.notify_one();
    assert_eq!(pending.await.unwrap(), json!("reported"));
    let _ = tx.send(());
    task.await.unwrap().unwrap();
    assert_acl_log_empty(&redis);
}
