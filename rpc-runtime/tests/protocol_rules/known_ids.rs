//! What a message under a call id or an idempotency key someone else
//! chose may do (issue 19, security round 2), followed by hand as another
//! implementation would: a scheduled call is never replaced under its id,
//! whichever way a message reaches the schedule; a second copy of a keyed
//! call's message does not run; a key Redis refuses to claim ends the call
//! instead of looping; a key with braces is refused.

use super::*;

const SCHEDULE: &str = "rpc:{Rules}:schedule";
const SCHEDULED: &str = "rpc:{Rules}:scheduled";

/// Waits up to 10 s for `check` to hold.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !check() {
        assert!(t0.elapsed() < Duration::from_secs(10), "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the jobs stream holds no entry: every message sent was
/// taken and completed (acked and deleted).
async fn drained(rig: &Rig) {
    eventually("every entry is completed", || {
        rig.redis.cli(["XLEN", JOBS]).trim() == "0"
    })
    .await;
}

/// complete.lua step `S` wrote `HSET`/`ZADD` under token = call id
/// whatever was there, so a message sent under a scheduled call's id
/// rewrote it: as a delayed call taken early, as a hand-back (a job the
/// worker does not know) or as a retry. Now the scheduled call stays as
/// it was; the same message again (a resend) is only acked, another is
/// dead-lettered with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_call_is_never_replaced_under_its_id() {
    let rig = rig().await;
    let run_at = rig.now_ms() + 120_000;
    let mut victim = job("s-1", "echo", json!({"n": 1}), "rpc:inbox:{s}");
    victim["v"] = json!(2);
    victim["run_at_ms"] = json!(run_at);
    let victim = victim.to_string();
    rig.send_raw(&victim);
    eventually("the call is on the schedule", || {
        !rig.redis.cli(["ZSCORE", SCHEDULE, "s-1"]).trim().is_empty()
    })
    .await;
    let intact = |rig: &Rig| {
        assert_eq!(
            rig.redis
                .cli(["HGET", SCHEDULED, "s-1"])
                .trim_end_matches('\n'),
            victim,
            "the scheduled message was rewritten"
        );
        assert_eq!(
            rig.redis.cli(["ZSCORE", SCHEDULE, "s-1"]).trim(),
            run_at.to_string(),
            "the scheduled call was moved"
        );
    };
    intact(&rig);

    // The same message again (a sender unsure its first send landed):
    // acked, nothing dead-lettered.
    rig.send_raw(&victim);
    drained(&rig).await;
    intact(&rig);
    assert!(rig.dead_letters(0).await.is_empty());

    // Another delayed call under the id, due in 300 days.
    let mut later = job("s-1", "echo", json!({"n": 1000}), "rpc:inbox:{a}");
    later["v"] = json!(2);
    later["run_at_ms"] = json!(run_at + 300 * 24 * 3_600_000);
    rig.send(later);
    // A job the worker does not know: handed back through the schedule.
    rig.send(job("s-1", "nope", json!({}), "rpc:inbox:{a}"));
    // A job that asks to be retried: retried through the schedule.
    rig.send(job("s-1", "slow", json!({}), "rpc:inbox:{a}"));
    let dead = rig.dead_letters(3).await;
    assert_eq!(dead.len(), 3, "{dead:?}");
    for (reason, m) in &dead {
        assert_eq!(reason, rpc_protocol::stream::ALREADY_SCHEDULED, "{m}");
        assert!(m.contains("\"s-1\""), "{m}");
    }
    drained(&rig).await;
    intact(&rig);
    rig.no_reply("rpc:inbox:{s}");
}

/// A keyed call whose message arrives twice (its sender sent again when
/// it could not tell whether the first send landed) ran twice: the second
/// copy found the key held by its own id and took itself for a
/// redelivery. Now a retry of the call still runs under its claim, and a
/// fresh copy does not run: it is answered with a holder answer naming
/// the call itself (its caller then reads the call's kept result), and
/// nothing is kept over that result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_call_retries_under_its_claim_and_a_second_copy_does_not_run() {
    let rig = rig().await;
    let mut message = job("c-1", "flaky", json!({"n": 1}), "rpc:inbox:{c}");
    message["v"] = json!(2);
    message["idempotency_key"] = json!("copied");
    let fingerprint = rpc_protocol::fingerprint::fingerprint("Rules.flaky", r#"{"n":1}"#).unwrap();
    rig.send(message.clone());
    // `flaky` fails its first two attempts: the retries run (attempt > 1
    // is the call that claimed the key).
    let answer = rig.reply("rpc:inbox:{c}");
    assert_eq!(answer["ok"], json!("third time"), "{answer}");
    assert_eq!(answer["fingerprint"], json!(fingerprint), "{answer}");
    assert_eq!(*rig.attempts.lock().unwrap(), vec![1, 2, 3]);
    let kept = rig.redis.cli(["GET", "rpc:result:{c-1}"]);

    rig.send(message);
    let copy = rig.reply("rpc:inbox:{c}");
    assert_eq!(
        copy,
        json!({"v": 1, "id": "c-1", "fingerprint": fingerprint, "holder": "c-1"})
    );
    drained(&rig).await;
    assert_eq!(*rig.attempts.lock().unwrap(), vec![1, 2, 3], "it ran again");
    assert_eq!(rig.redis.cli(["GET", "rpc:result:{c-1}"]), kept);
}

/// A claim Redis refuses for good (`WRONGTYPE`: something planted a list
/// at the key) put the call back on the schedule every second, for ever,
/// its deadline sliding with each new entry. Now it is dead-lettered with
/// the reason and its caller told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_redis_refuses_to_claim_ends_the_call_instead_of_looping() {
    let rig = rig().await;
    rig.redis
        .cli(["RPUSH", "rpc:{Rules}:once:planted", "not a claim"]);
    let mut message = job("w-1", "echo", json!({}), "rpc:inbox:{w}");
    message["v"] = json!(2);
    message["idempotency_key"] = json!("planted");
    rig.send(message);
    let reply = rig.reply("rpc:inbox:{w}");
    assert_eq!(reply["error"]["kind"], "dead_lettered", "{reply}");
    let said = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(
        said.contains("cannot be claimed") && said.contains("WRONGTYPE"),
        "{reply}"
    );
    let dead = rig.dead_letters(1).await;
    assert!(dead[0].0.contains("WRONGTYPE"), "{dead:?}");
    drained(&rig).await;
    assert_eq!(rig.redis.cli(["ZCARD", SCHEDULE]).trim(), "0");
}

/// An idempotency key ends a Redis key, and ACL patterns match `}` with
/// `*`: `x}:intake` would make the key one the client role may write. Keys
/// with braces are refused: dead-lettered and answered `bad_request`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_with_braces_is_refused() {
    let rig = rig().await;
    let mut message = job("b-1", "echo", json!({}), "rpc:inbox:{b}");
    message["v"] = json!(2);
    message["idempotency_key"] = json!("x}:intake");
    rig.send(message);
    let reply = rig.reply("rpc:inbox:{b}");
    assert_eq!(reply["error"]["kind"], "bad_request", "{reply}");
    assert!(reply.to_string().contains("braces"), "{reply}");
    assert_eq!(rig.dead_letters(1).await.len(), 1);
    assert_eq!(
        rig.redis
            .cli(["EXISTS", "rpc:{Rules}:once:x}:intake"])
            .trim(),
        "0"
    );
}
