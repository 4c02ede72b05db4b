//! Unit tests of `completion_batch.rs`: how completions are gathered per
//! queue, which form each batch takes, and what the answers say.

use super::*;
use std::time::Duration;

fn packed(cmd: &redis::Cmd) -> String {
    String::from_utf8_lossy(&cmd.get_packed_command()).into_owned()
}

fn delivery(queue: &str, token: &str) -> Delivery {
    Delivery {
        queue: queue.to_owned(),
        token: token.to_owned(),
        payload: b"{}".to_vec(),
        deliveries: 1,
        enqueued_ms: None,
        cancelled: false,
    }
}

fn answer(to: &str, ttl: u64) -> Completion {
    Completion {
        reply: Some(b"{\"ok\":1}".to_vec()),
        reply_to: Some(to.to_owned()),
        inbox_ttl: Some(Duration::from_millis(ttl)),
        ..Completion::default()
    }
}

#[test]
fn entry_ids_are_read_only_as_redis_writes_them() {
    assert_eq!(entry_id("1700000000000-12"), Some((1_700_000_000_000, 12)));
    assert_eq!(entry_id("0-0"), Some((0, 0)));
    assert_eq!(entry_id("18446744073709551615-0"), Some((u64::MAX, 0)));
    for not in [
        "11",
        "011-0",
        "11-01",
        "+11-0",
        "11-+0",
        "-1-0",
        "1-",
        "-1",
        " 1-0",
        "1-0 ",
        "18446744073709551616-0",
        "1-0-0",
        "",
    ] {
        assert_eq!(entry_id(not), None, "{not:?}");
    }
}

#[test]
fn only_replies_and_acks_are_batched() {
    assert!(batches(&Completion::default()));
    assert!(batches(&answer("inbox", 10)));
    for not in [
        Completion {
            keep_result: Some(("id".to_owned(), Duration::from_secs(1))),
            ..answer("inbox", 10)
        },
        Completion {
            requeue: Some(b"{}".to_vec()),
            ..Completion::default()
        },
        Completion {
            dead_letter: Some("why".to_owned()),
            ..Completion::default()
        },
    ] {
        assert!(!batches(&not), "{not:?}");
    }
}

#[test]
fn a_batch_per_queue_with_replies_grouped_per_inbox() {
    let keys = Keys::new("rpc");
    let done = vec![
        (delivery("A", "1-0"), answer("in1", 10)),
        (delivery("B", "2-0"), Completion::default()),
        (delivery("A", "3-0"), Completion::default()),
        (delivery("A", "14-0"), answer("in2", 10)),
        (delivery("A", "5-0"), answer("in1", 30)),
        (
            delivery("A", "6-0"),
            Completion {
                dead_letter: Some("no".to_owned()),
                ..Completion::default()
            },
        ),
    ];
    let batches = CompleteBatch::gather(&keys, &done);
    assert_eq!(batches.len(), 2);
    let a = &batches[0];
    // in1's replies, in2's, then the acks alone, each oldest first
    // (ids compared as numbers).
    assert_eq!(a.indices().collect::<Vec<_>>(), vec![0, 4, 3, 2]);
    assert_eq!(a.inboxes[0].ttl_ms, 30, "the longest TTL asked");
    let [cmd] = a.commands().try_into().expect("one script call");
    let cmd = packed(&cmd);
    assert!(cmd.contains(complete_batch_script().get_hash()));
    for part in [
        keys.jobs("A").as_str(),
        "in1",
        "in2",
        GROUP,
        "1-0",
        "5-0",
        "14-0",
        "3-0",
    ] {
        assert!(cmd.contains(part), "{part} in {cmd}");
    }
    assert!(!cmd.contains("6-0") && !cmd.contains("2-0"));
    // B's lone ack: a plain XACK, its XDEL with the next read once
    // XACK counted it.
    let b = &batches[1];
    assert_eq!(b.indices().collect::<Vec<_>>(), vec![1]);
    let [ack] = b.commands().try_into().expect("one command");
    assert!(packed(&ack).contains("XACK"));
    assert!(b.outcome(&[Value::Int(1)]).is_empty());
    assert_eq!(b.left_on_stream(&[Value::Int(1)]), ["2-0"]);
    assert!(b.left_on_stream(&[Value::Int(0)]).is_empty());
    // A lone reply: reply_and_ack.lua.
    let one = [(delivery("A", "1-0"), answer("in1", 10))];
    let [cmd] = CompleteBatch::gather(&keys, &one)[0]
        .commands()
        .try_into()
        .expect("one call");
    assert!(packed(&cmd).contains(reply_and_ack_script().get_hash()));
}

#[test]
fn a_lone_reply_beside_other_replying_queues_joins_their_script_call() {
    let keys = Keys::new("rpc");
    let two = vec![
        (delivery("A", "1-0"), answer("in1", 10)),
        (delivery("B", "2-0"), answer("in1", 10)),
        (delivery("C", "3-0"), Completion::default()),
    ];
    let batches = CompleteBatch::gather(&keys, &two);
    let scripted: Vec<bool> = batches.iter().map(CompleteBatch::is_scripted).collect();
    assert_eq!(scripted, [true, true, false], "A and B in one script call");
    let one = &two[..1];
    let [cmd] = CompleteBatch::gather(&keys, one)[0]
        .commands()
        .try_into()
        .expect("one call");
    assert!(packed(&cmd).contains(reply_and_ack_script().get_hash()));
}

#[test]
fn ids_go_oldest_first() {
    let keys = Keys::new("rpc");
    let done = vec![
        (delivery("A", "10-1"), answer("in1", 10)),
        (delivery("A", "9-5"), answer("in1", 10)),
        (delivery("A", "10-0"), answer("in1", 10)),
        (delivery("A", "100-0"), Completion::default()),
        (delivery("A", "20-0"), Completion::default()),
    ];
    let batch = &CompleteBatch::gather(&keys, &done)[0];
    assert_eq!(batch.indices().collect::<Vec<_>>(), vec![1, 2, 0, 4, 3]);
}

#[test]
fn a_queue_past_what_one_call_takes_is_split() {
    let keys = Keys::new("rpc");
    let done: Vec<_> = (0..MOST_PER_CALL + 5)
        .map(|i| (delivery("A", &format!("{i}-0")), Completion::default()))
        .collect();
    let batches = CompleteBatch::gather(&keys, &done);
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].acks.len(), MOST_PER_CALL);
    assert_eq!(batches[1].acks.len(), 5);
}

#[test]
fn refusals_name_their_jobs() {
    let keys = Keys::new("rpc");
    let done = vec![
        (delivery("A", "1-0"), answer("in1", 10)),
        (delivery("A", "2-0"), answer("in2", 10)),
        (delivery("A", "3-0"), Completion::default()),
    ];
    let batch = &CompleteBatch::gather(&keys, &done)[0];
    let outcome = |reply: &Value| batch.outcome(std::slice::from_ref(reply));
    assert!(outcome(&Value::Array(vec![])).is_empty());
    let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
    // The second job's reply refused for good.
    let failed = outcome(&Value::Array(vec![
        Value::Int(2),
        bulk("R"),
        bulk("WRONGTYPE Operation against a key holding the wrong kind of value"),
    ]));
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, 1);
    assert!(matches!(
        &failed[0].1,
        CompleteError::Refused { step: Some(CompletionStep::Reply), reason } if reason.starts_with("WRONGTYPE")
    ));
    // Out of memory on the first reply, then the others' acks refused.
    let failed = outcome(&Value::Array(vec![
        Value::Int(1),
        bulk("R"),
        bulk("OOM command not allowed"),
        Value::Int(2),
        bulk("A"),
        bulk("NOPERM no"),
        Value::Int(3),
        bulk("A"),
        bulk("NOPERM no"),
    ]));
    assert_eq!(failed.len(), 3);
    assert!(matches!(failed[0], (0, CompleteError::Transient(_))));
    assert!(failed[1..].iter().all(|(i, e)| *i != 0
        && matches!(
            e,
            CompleteError::Refused {
                step: Some(CompletionStep::Ack),
                ..
            }
        )));
    // Removing the acked entries refused: the jobs are completed.
    assert!(outcome(&Value::Array(vec![
        Value::Int(-1),
        bulk("X"),
        bulk("NOPERM no xtrim"),
    ]))
    .is_empty());
    // A refusal of the whole call is every job's.
    let noscript = redis::parse_redis_value(b"-NOSCRIPT No matching script\r\n").unwrap();
    assert!(matches!(noscript, Value::ServerError(_)));
    let failed = outcome(&noscript);
    assert_eq!(failed.len(), 3);
    assert!(failed
        .iter()
        .all(|(_, e)| matches!(e, CompleteError::Transient(_))));
    // Garbage is no success.
    assert_eq!(outcome(&Value::Int(7)).len(), 3);
    assert_eq!(outcome(&Value::Array(vec![Value::Int(1)])).len(), 3);
    assert_eq!(
        batch.outcome(&[]).len(),
        3,
        "missing answers are no success"
    );
}
