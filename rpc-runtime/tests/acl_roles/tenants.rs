//! Tenants that share a prefix (one set of services) but must not read each
//! other's answers: each tenant's client user may read only inboxes and
//! kept results whose ids start with its tenant name
//! (`ClientBuilder::client_id_prefix`), so one tenant can neither pop
//! another's replies (the victim timed out) nor read its kept results.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_read_another_tenant_s_inbox_or_kept_results() {
    let (redis, _dir) = redis_with_roles();
    let running = worker(&redis).await;
    let tenant = |role: (&str, &str), name: &str| {
        Client::builder(url(&redis, role))
            .client_id_prefix(name)
            .connect()
    };
    let a = tenant(TENANT_A, "a").await.unwrap();
    let b = tenant(TENANT_B, "b").await.unwrap();
    // Each tenant does its whole job, kept results included.
    let pending = a.call("Acl.square", json!({"n": 5})).send().await.unwrap();
    let kept = pending.id().clone();
    assert!(kept.as_str().starts_with("a-"), "{kept}");
    assert_eq!(pending.wait().await.unwrap(), json!(25));
    assert_eq!(
        a.fetch_result(&kept).await.unwrap().map(Result::unwrap),
        Some(json!(25))
    );
    let r = b
        .call("Acl.square", json!({"n": 6}))
        .options(opts())
        .response()
        .await
        .unwrap();
    assert_eq!(r.data, json!(36));
    // Tenant b against tenant a's inbox and kept result.
    denied(&redis, TENANT_B, &["BLPOP", &a.inbox(), "0.1"]);
    denied(
        &redis,
        TENANT_B,
        &["BLMPOP", "0.1", "1", &a.inbox(), "LEFT"],
    );
    let result_key = format!("rpc:result:{{{kept}}}");
    denied(&redis, TENANT_B, &["GET", &result_key]);
    let err = b.fetch_result(&kept).await.unwrap_err();
    assert!(
        err.to_string().contains("NOPERM") || err.to_string().contains("NoPerm"),
        "{err}"
    );
    // Nor any other way in.
    denied(&redis, TENANT_B, &["SCAN", "0"]);
    denied(&redis, TENANT_B, &["RPUSH", &a.inbox(), "forged"]);
    stop(running).await;
    assert_eq!(
        redis.cli(["ACL", "LOG"]).matches("rpc-client-a").count(),
        0,
        "tenant a was refused something it needs"
    );
}
