//! The shards that hold work, found by walking the keyspace rather than
//! read from the shard count (`P:{S}:shards`), which may be lost: a worker
//! serves them too (`worker/shard_discovery.rs`).
//!
//! A shard `k >= 1` of `S` holds work in `P:{S~k}:jobs` (and its lanes'
//! `P:{S~k}:jobs:<p>`), `P:{S~k}:schedule`, `P:{S~k}:intake` or
//! `P:{S~k}:moving`. One `SCAN` (on each master of a Cluster,
//! `scan.rs`, as the inspector finds services) looks for them all at once:
//! `P:{*~*}:[jsim]*` keeps the reply to a few keys per shard (it leaves out
//! idempotency claims, group keys and the like, of which a shard may hold
//! millions); the exact names are then picked here. The key names come
//! from the broker, so anyone able to write a key is heard: a number that
//! is not a shard (`S~99999`, `S~03`, `S~x`) names none.

use rpc_protocol::keys::glob_escape;
use rpc_protocol::shards;
use rpc_protocol::Keys;

use super::commands::Commands;
use super::scan::scan_all_at_most;

/// The keys of a shard that say it holds work, after `P:{S~k}:`.
const WORK_KEYS: [&str; 4] = ["jobs", "schedule", "intake", "moving"];

/// `SCAN MATCH` pattern of the keys of every shard `k >= 1` (a hash tag
/// with the separator) whose name after the tag starts like one of
/// [`WORK_KEYS`]: a superset of them, narrowed by [`shard_of_key`].
fn pattern(keys: &Keys) -> String {
    format!(
        "{}:{{*{}*}}:[jsim]*",
        glob_escape(keys.prefix()),
        shards::SEPARATOR
    )
}

/// The service and shard (`k >= 1`) whose work key `key` is, if it is one.
fn shard_of_key<'k>(keys: &Keys, key: &'k str) -> Option<(&'k str, u32)> {
    let inner = key.strip_prefix(keys.prefix())?.strip_prefix(":{")?;
    let (queue, what) = inner.split_once("}:")?;
    let is_work = WORK_KEYS.contains(&what)
        || what
            .strip_prefix("jobs:")
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !is_work {
        return None;
    }
    // The tag of a shard's key is exactly `S~k` (a lane's key is in its
    // queue's slot): anything else, `S~3^1` say, is no shard's.
    let (service, shard) = shards::split_queue(queue);
    (shard > 0 && shards::queue(service, shard) == queue).then_some((service, shard))
}

/// Every `(service, shard)` with a work key, sorted, once each.
pub(super) async fn shards_with_keys(
    con: &Commands,
    keys: &Keys,
) -> redis::RedisResult<Vec<(String, u32)>> {
    let found = scan_all_at_most(con, &pattern(keys), None, usize::MAX).await?;
    let mut shards: Vec<(String, u32)> = found
        .iter()
        .filter_map(|k| shard_of_key(keys, k))
        .map(|(service, shard)| (service.to_owned(), shard))
        .collect();
    shards.sort_unstable();
    shards.dedup();
    Ok(shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_escapes_the_prefix_and_asks_for_shards_only() {
        assert_eq!(pattern(&Keys::new("rpc")), "rpc:{*~*}:[jsim]*");
        assert_eq!(pattern(&Keys::new("a*b")), "a\\*b:{*~*}:[jsim]*");
    }

    #[test]
    fn only_a_shards_work_keys_name_it() {
        let keys = Keys::new("rpc");
        for (key, shard) in [
            ("rpc:{S~1}:jobs", Some(("S", 1))),
            ("rpc:{S~3}:jobs:7", Some(("S", 3))),
            ("rpc:{S~255}:schedule", Some(("S", 255))),
            ("rpc:{S~12}:intake", Some(("S", 12))),
            ("rpc:{S~2}:moving", Some(("S", 2))),
            // Not a work key, or not a shard.
            ("rpc:{S~2}:scheduled", None),
            ("rpc:{S~2}:jobs:", None),
            ("rpc:{S~2}:jobs:x", None),
            ("rpc:{S~2}:once:jobs", None),
            ("rpc:{S}:jobs", None),
            ("rpc:{S~0}:jobs", None),
            // Out of range or malformed marks are no shard's.
            ("rpc:{S~256}:jobs", None),
            ("rpc:{S~99999}:jobs", None),
            ("rpc:{S~03}:jobs", None),
            ("rpc:{S~-1}:jobs", None),
            ("rpc:{S~}:jobs", None),
            ("rpc:{~3}:jobs", None),
            ("rpc:{S~3^1}:jobs", None),
            ("other:{S~1}:jobs", None),
        ] {
            assert_eq!(shard_of_key(&keys, key), shard, "{key}");
        }
    }
}
