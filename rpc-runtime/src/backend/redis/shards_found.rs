//! The shards of a service that hold work, found by looking at their keys
//! rather than read from the shard count (`P:{S}:shards`), which may be
//! lost: a worker serves them too (`worker/shard_discovery.rs`).
//!
//! A shard `k` of `S` holds work in its jobs stream `P:{S~k}:jobs` (or a
//! priority lane's, `P:{S~k}:jobs:<p>`), its schedule `P:{S~k}:schedule`,
//! its intake `P:{S~k}:intake` or its mover's list `P:{S~k}:moving`. Each
//! shard is asked with commands the worker's ACL role has on those keys
//! (`TYPE` of the streams, `ZRANGE 0 0` of the schedule, `LRANGE 0 0` of
//! the lists), as one pipeline (one slot, so one master), a window of
//! [`LOOK_AHEAD`] shards at a time, until a window holds none: a walk of
//! the keyspace (`SCAN`) would find gaps too, but the worker role may not
//! `SCAN` (docs/SECURITY.md), and placement fills the shards in turn, so
//! shards with work are next to each other. Past [`MAX_SHARDS`] nothing
//! is asked.

use redis::Value;
use rpc_protocol::priority::OTHER_LANES;
use rpc_protocol::shards::{self, MAX_SHARDS};
use rpc_protocol::Keys;

use super::commands::Commands;

/// How many shards past the last that holds work are asked before the
/// look stops.
const LOOK_AHEAD: u32 = 8;

/// The commands that say whether shard `queue` holds work, in one slot.
fn probe(keys: &Keys, queue: &str) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.cmd("TYPE").arg(keys.jobs(queue));
    for p in OTHER_LANES {
        pipe.cmd("TYPE").arg(keys.jobs_at(queue, p));
    }
    pipe.cmd("ZRANGE").arg(keys.schedule(queue)).arg(0).arg(0);
    pipe.cmd("LRANGE").arg(keys.intake(queue)).arg(0).arg(0);
    pipe.cmd("LRANGE").arg(keys.moving(queue)).arg(0).arg(0);
    pipe
}

/// Whether a probe's answers show work: a stream that exists, or a
/// schedule or list with an element.
fn holds_work(answers: &[Value]) -> bool {
    answers.iter().any(|a| match a {
        Value::SimpleString(t) => t != "none",
        Value::BulkString(t) => t.as_slice() != b"none",
        Value::Array(items) | Value::Set(items) => !items.is_empty(),
        _ => false,
    })
}

/// The shards `k >= from` of `service` that hold work, in order, looking
/// [`LOOK_AHEAD`] shards past the last found.
pub(super) async fn shards_with_work(
    con: &Commands,
    keys: &Keys,
    service: &str,
    from: u32,
) -> redis::RedisResult<Vec<u32>> {
    let mut found = Vec::new();
    let mut next = from.max(1);
    while next < MAX_SHARDS {
        let window: Vec<u32> = (next..next.saturating_add(LOOK_AHEAD).min(MAX_SHARDS)).collect();
        let answers = futures_util::future::join_all(window.iter().map(|&k| {
            let queue = shards::queue(service, k).into_owned();
            let pipe = probe(keys, &queue);
            async move { con.query_pipeline(&pipe).await }
        }))
        .await;
        let mut last = None;
        for (&k, answer) in window.iter().zip(answers) {
            if holds_work(&answer?) {
                found.push(k);
                last = Some(k);
            }
        }
        match last {
            Some(k) => next = k + 1,
            None => break,
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_holds_work_when_a_stream_exists_or_a_list_has_an_element() {
        let none = || Value::SimpleString("none".into());
        let empty = || Value::Array(Vec::new());
        let idle = [
            none(),
            none(),
            none(),
            none(),
            none(),
            empty(),
            empty(),
            empty(),
        ];
        assert!(!holds_work(&idle));
        let mut stream = idle.clone();
        stream[0] = Value::SimpleString("stream".into());
        assert!(holds_work(&stream));
        let mut scheduled = idle.clone();
        scheduled[5] = Value::Array(vec![Value::BulkString(b"c1".to_vec())]);
        assert!(holds_work(&scheduled));
        // A key of another type where a stream goes is something there:
        // serving it is how a worker says so (its group cannot be made).
        let mut odd = idle;
        odd[0] = Value::SimpleString("string".into());
        assert!(holds_work(&odd));
    }

    #[test]
    fn a_probe_asks_every_key_of_one_shard_in_its_slot() {
        let keys = Keys::new("rpc");
        let pipe = probe(&keys, "S~3");
        let packed = String::from_utf8_lossy(&pipe.get_packed_pipeline()).into_owned();
        for key in [
            keys.jobs("S~3"),
            keys.jobs_at("S~3", 1),
            keys.jobs_at("S~3", 5),
            keys.schedule("S~3"),
            keys.intake("S~3"),
            keys.moving("S~3"),
        ] {
            assert!(packed.contains(&key), "{key} in {packed}");
        }
        assert_eq!(packed.matches("{S~3}").count(), 8, "{packed}");
    }
}
