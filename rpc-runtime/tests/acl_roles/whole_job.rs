//! Each role does its whole job with an empty `ACL LOG`: the client calls
//! (through the intake), sends one-way, delays, cancels and keeps results;
//! the worker serves, retries, schedules, ticks and dead-letters; the
//! operator inspects, replays, pauses and cancels.

use rpc_runtime::{Cancelled, ErrorKind};

use super::*;

/// Every role does all it is for: the worker serves, retries and
/// dead-letters; the client calls, sends one-way, keeps and fetches
/// results; the operator lists and replays dead letters. Redis denies none
/// of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_does_its_whole_job_with_an_empty_acl_log() {
    let (redis, _dir) = redis_with_roles();
    let running = worker(&redis).await;
    let client = Client::connect(&url(&redis, CLIENT)).await.unwrap();
    for i in 0..5 {
        let r = client
            .call("Acl.echo", json!({ "i": i }))
            .options(opts())
            .response()
            .await
            .expect("a call as the client role");
        assert_eq!(r.data, json!({ "i": i }));
    }
    let r = client
        .call("Acl.flaky", json!({}))
        .options(opts())
        .response()
        .await
        .expect("retried once by the worker role");
    assert_eq!(r.data, json!("second time lucky"));
    client.send("Acl.echo", json!("one way")).await.unwrap();
    let pending = client.call("Acl.echo", json!("kept")).send().await.unwrap();
    let id = pending.id().clone();
    pending.wait().await.unwrap();
    let other = Client::connect(&url(&redis, CLIENT)).await.unwrap();
    let kept = other.fetch_result(&id).await.unwrap().expect("kept");
    assert_eq!(kept.unwrap(), json!("kept"));

    // The job lifecycle as the client role: a delayed call (moved by the
    // worker role), an idempotent one sent twice, a cancellation of a
    // scheduled call, a look at the pause flag.
    let later =
        CallOptions::delay(Duration::from_millis(200)).with_timeout(Duration::from_secs(10));
    let r = client
        .call("Acl.echo", json!("later"))
        .options(later.clone())
        .response()
        .await
        .expect("a delayed call as the client role");
    assert_eq!(r.data, json!("later"));
    let once = CallOptions::idempotency_key("acl-once").with_timeout(Duration::from_secs(10));
    let first = client
        .call("Acl.echo", json!(1))
        .options(once.clone())
        .response()
        .await
        .unwrap();
    let again = client
        .call("Acl.echo", json!(1))
        .options(once.clone())
        .response()
        .await
        .unwrap();
    assert_eq!(first.id, again.id, "the duplicate is answered as the first");
    // Calls with one group key (limit 1) as the client role: the worker
    // role takes their slots, parks those that find none and hands them on.
    let keyed = (0..4).map(|_| {
        client
            .call("Acl.hold", json!({"ms": 50}))
            .options(opts())
            .group("acl-tenant")
            .response()
    });
    for answer in futures_util::future::join_all(keyed).await {
        answer.expect("a keyed call as the client role");
    }
    assert_eq!(
        redis
            .cli(["EXISTS", "rpc:{Acl}:group:hold:acl-tenant:waiting"])
            .trim(),
        "0",
        "every parked call was handed on"
    );
    let scheduled = client
        .call("Acl.echo", json!("never"))
        .options(CallOptions::delay(Duration::from_secs(60)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        scheduled
            .cancel()
            .await
            .expect("a cancel as the client role"),
        Cancelled::Requested,
        "the client role asks the workers through the intake"
    );
    let err = scheduled.wait().await.unwrap_err();
    assert_eq!(err.remote_kind(), Some(ErrorKind::Cancelled), "{err}");
    assert!(!client.is_paused("Acl").await.unwrap());

    // An unreadable job: the worker dead-letters it; the operator lists it,
    // and replays a readable dead letter.
    redis.cli(["XADD", "rpc:{Acl}:jobs", "*", "m", "garbage"]);
    let operator = Client::connect(&url(&redis, OPERATOR)).await.unwrap();
    wait_for_dead_letters(&operator, 1).await;
    let readable =
        r#"{"v":1,"id":"replayed-1","job":"Acl.echo","params":{"x":1},"result_ttl_ms":60000}"#;
    redis.cli([
        "XADD",
        "rpc:{Acl}:dead",
        "*",
        "reason",
        "test",
        "m",
        readable,
    ]);
    let dead = operator.dead_letters("Acl", 10).await.unwrap();
    let to_replay = dead
        .iter()
        .find(|d| d.payload == readable.as_bytes())
        .unwrap();
    operator.replay_dead_letter("Acl", to_replay).await.unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(result) = operator.fetch_result(&"replayed-1".into()).await.unwrap() {
            assert_eq!(result.unwrap(), json!({"x": 1}));
            break;
        }
        assert!(Instant::now() < deadline, "the replayed job never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The operator pauses and resumes, and cancels.
    assert!(operator
        .pause("Acl")
        .await
        .expect("a pause as the operator"));
    assert!(operator
        .resume("Acl")
        .await
        .expect("a resume as the operator"));
    operator
        .cancel_in("Acl", &"another-call".into())
        .await
        .expect("a cancel as the operator");

    // The operator's inspection (`rpc stats`, `rpc top`, `rpc ping`).
    let inspector = rpc_runtime::Inspector::connect(&url(&redis, OPERATOR), "rpc")
        .await
        .unwrap();
    inspector.ping().await.expect("ping as the operator");
    assert!(inspector
        .services()
        .await
        .unwrap()
        .contains(&"Acl".to_owned()));
    let stats = inspector.service_stats("Acl").await.unwrap().expect("Acl");
    assert!(stats.dead_letters >= 1, "{stats:?}");
    inspector.inboxes().await.expect("inboxes as the operator");
    // `rpc periodic`: the worker role ran the tick script, the operator
    // reads its hashes.
    assert_eq!(inspector.periodic_services().await.unwrap(), ["Acl"]);
    let deadline = Instant::now() + PATIENCE;
    let periodic = loop {
        let periodic = inspector
            .periodic("Acl")
            .await
            .expect("periodic jobs as the operator")
            .expect("Acl");
        assert_eq!(periodic.len(), 1, "{periodic:?}");
        if periodic[0].last_ms.is_some() {
            break periodic;
        }
        assert!(
            Instant::now() < deadline,
            "acl-beat never ran: {periodic:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(periodic[0].unreadable, None);
    // A job held past three times the visibility timeout (300 ms): the
    // janitor renews its lease (XPENDING, XCLAIM) meanwhile, as the worker
    // role (the ACL log below shows none of it was refused), so the job is
    // never taken over: it answers its first attempt. The operator watches
    // the lease until it has seen three renewals (its idle time dropping
    // back), and only then lets the handler end.
    let held = client
        .call("Acl.held", json!({}))
        .options(CallOptions::timeout(PATIENCE))
        .send()
        .await
        .unwrap();
    let held_id = held.id().to_string();
    let deadline = Instant::now() + PATIENCE;
    let (mut renewals, mut last_idle, mut leased_since) = (0, None, None);
    while renewals < 3 || leased_since.is_none_or(|t: Instant| t.elapsed() < 3 * VISIBILITY) {
        assert!(
            Instant::now() < deadline,
            "the janitor renewed the held job's lease {renewals} times"
        );
        let leased = inspector
            .leased("Acl", 100)
            .await
            .expect("leases as the operator")
            .unwrap_or_default();
        let lease = leased.iter().find(|l| {
            l.payload
                .as_deref()
                .is_some_and(|p| String::from_utf8_lossy(p).contains(&held_id))
        });
        if let Some(lease) = lease {
            assert_eq!(
                lease.deliveries, 1,
                "the held job was taken over after {renewals} renewals (idle {:?})",
                lease.idle
            );
            leased_since.get_or_insert_with(Instant::now);
            if last_idle.is_some_and(|idle| lease.idle < idle) {
                renewals += 1;
            }
            last_idle = Some(lease.idle);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    RELEASE.notify_one();
    assert_eq!(
        held.wait().await.unwrap(),
        json!(1),
        "the held job's attempt"
    );
    stop(running).await;
    // The worker added its jobs to today's counts (its last flush runs
    // when it stops), which its role may write.
    let now = inspector.broker_time_ms().await.unwrap();
    let days = rpc_runtime::inspect::last_days(now, 1);
    let today = inspector.daily_counts("Acl", &days).await.unwrap();
    assert!(
        today[0].processed >= 3 && today[0].failed >= 1,
        "today's counts: {today:?}"
    );
    // And recorded the flaky job's failed first attempt, which its role
    // may add (and the operator's read).
    let failures = inspector.recent_failures("Acl", None, 100).await.unwrap();
    assert!(
        failures
            .iter()
            .any(|f| f.failure.job == "Acl.flaky" && f.failure.retried && f.failure.attempt == 1),
        "recent failures: {failures:?}"
    );
    assert_acl_log_empty(&redis);
}

/// Issue 10, point 1: with only the client role's rights, messages whose
/// `reply_to` names the jobs stream, a hash, a string, another prefix's
/// inbox, or `""` used to make the worker `RPUSH` and `PEXPIRE` those keys
/// (the jobs stream expired 60 s later with its jobs). Now each message
/// (pushed raw onto the intake, all the client role may write) is
/// dead-lettered once with the reason, every one of those keys keeps its
/// type, content and TTL, and the worker goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_cannot_make_a_worker_touch_a_key_that_is_not_an_inbox() {
    let (redis, _dir) = redis_with_roles();
    let running = worker(&redis).await;
    let client = Client::connect(&url(&redis, CLIENT)).await.unwrap();
    // Make the stream and let the worker settle.
    client
        .call("Acl.echo", json!(0))
        .options(opts())
        .response()
        .await
        .unwrap();
    redis.cli(["HSET", "app:profile", "name", "ada"]);
    redis.cli(["SET", "app:token", "s3cret"]);
    redis.cli(["RPUSH", "other:inbox:{x}", "theirs"]);
    let watched = [
        "rpc:{Acl}:jobs",
        "app:profile",
        "app:token",
        "other:inbox:{x}",
    ];
    let state = |key: &str| {
        let kind = redis.cli(["TYPE", key]).trim().to_owned();
        let content = match kind.as_str() {
            "hash" => redis.cli(["HGETALL", key]),
            "string" => redis.cli(["GET", key]),
            "list" => redis.cli(["LRANGE", key, "0", "-1"]),
            _ => String::new(),
        };
        let ttl = redis.cli(["PTTL", key]).trim().to_owned();
        (kind, content, ttl)
    };
    let before: Vec<_> = watched.iter().map(|k| state(k)).collect();

    let targets = [
        "rpc:{Acl}:jobs",
        "app:profile",
        "app:token",
        "other:inbox:{x}",
        "",
    ];
    for (i, target) in targets.iter().enumerate() {
        let message = json!({
            "v": 1, "id": format!("hostile-{i}"), "job": "Acl.echo",
            "params": {"i": i}, "reply_to": target, "result_ttl_ms": 0
        })
        .to_string();
        let out = cli_as(&redis, CLIENT, &["RPUSH", "rpc:{Acl}:intake", &message]);
        assert!(!out.contains("NOPERM"), "{out}");
    }
    let operator = Client::connect(&url(&redis, OPERATOR)).await.unwrap();
    let dead = wait_for_dead_letters(&operator, targets.len()).await;
    // Once each, with the reason.
    for (i, target) in targets.iter().enumerate() {
        let id = format!("\"hostile-{i}\"");
        let hits: Vec<_> = dead
            .iter()
            .filter(|d| String::from_utf8_lossy(&d.payload).contains(&id))
            .collect();
        assert_eq!(hits.len(), 1, "{target:?}: {dead:?}");
        assert!(hits[0].reason.contains("reply_to"), "{}", hits[0].reason);
    }
    // The worker keeps serving, and nothing it was pointed at changed.
    let r = client
        .call("Acl.echo", json!("still here"))
        .options(opts())
        .response()
        .await
        .unwrap();
    assert_eq!(r.data, json!("still here"));
    let after: Vec<_> = watched.iter().map(|k| state(k)).collect();
    for ((key, b), a) in watched.iter().zip(&before).zip(&after) {
        if *key == "rpc:{Acl}:jobs" {
            // Its entries come and go; its type and (absent) TTL must not.
            assert_eq!((&b.0, &b.2), (&a.0, &a.2), "{key} changed");
        } else {
            assert_eq!(b, a, "{key} changed");
        }
    }
    assert_eq!(
        redis.cli(["EXISTS", ""]).trim(),
        "0",
        "a key named \"\" appeared"
    );
    stop(running).await;
    assert_acl_log_empty(&redis);
}

/// A client that is not told how it may add jobs (`Enqueue::Auto`) finds
/// out from one refused `XADD`, then sends through the intake: its calls
/// are answered, and the ACL log shows that one refusal and no other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_left_on_auto_turns_to_the_intake_after_one_refusal() {
    let (redis, _dir) = redis_with_roles();
    let running = worker(&redis).await;
    let client = Client::connect(&redis.url_as(CLIENT.0, CLIENT.1))
        .await
        .unwrap();
    for i in 0..3 {
        let r = client
            .call("Acl.echo", json!(i))
            .options(opts())
            .response()
            .await
            .unwrap();
        assert_eq!(r.data, json!(i));
    }
    stop(running).await;
    let log = redis.cli(["ACL", "LOG"]);
    let lines: Vec<&str> = log.lines().map(str::trim).collect();
    let entries = lines.iter().filter(|l| **l == "age-seconds").count();
    let count = lines
        .iter()
        .position(|l| *l == "count")
        .map(|i| lines[i + 1]);
    assert_eq!((entries, count), (1, Some("1")), "{log}");
    assert!(log.contains("xadd"), "{log}");
}

/// A worker's batched completions (`complete_batch.lua`: replies, one ack,
/// the acked entries trimmed), as the worker role: every step allowed, the
/// stream left empty, nothing in the ACL log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_completions_runs_as_the_worker_role() {
    use rpc_runtime::backend::{connect, BrokerConfig, Completion, Delivery};
    let (redis, _dir) = redis_with_roles();
    let backend = connect(&BrokerConfig::new(url(&redis, WORKER)))
        .await
        .expect("connect as the worker role");
    let queues = vec!["Acl".to_owned()];
    backend.prepare_queues(&queues).await.unwrap();
    for i in 0..12 {
        redis.cli(["XADD", "rpc:{Acl}:jobs", "*", "m", &format!("job {i}")]);
    }
    let mut reader = backend.open_reader().await.unwrap();
    let mut taken: Vec<Delivery> = Vec::new();
    while taken.len() < 12 {
        let more = reader
            .take_jobs(&queues, "c1", 12, Duration::from_secs(1))
            .await
            .unwrap();
        assert!(!more.is_empty());
        taken.extend(more);
    }
    let done: Vec<(Delivery, Completion)> = taken
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let completion = if i % 2 == 0 {
                Completion {
                    reply: Some(b"{}".to_vec()),
                    reply_to: Some("rpc:inbox:{someone}".to_owned()),
                    ..Completion::default()
                }
            } else {
                Completion::default()
            };
            (d, completion)
        })
        .collect();
    let out = reader
        .complete_and_take(&done, &queues, "c1", 1, Duration::from_millis(10))
        .await;
    assert!(out.not_completed.is_empty(), "{:?}", out.not_completed);
    assert_eq!(redis.cli(["XLEN", "rpc:{Acl}:jobs"]).trim(), "0");
    assert_eq!(redis.cli(["LLEN", "rpc:inbox:{someone}"]).trim(), "6");
    let stats = redis.cli(["INFO", "commandstats"]);
    assert!(stats.contains("cmdstat_xtrim:"), "trimmed: {stats}");
    assert_acl_log_empty(&redis);
}
