//! A sharded service: one service spread over N queues, each under its own
//! hash tag, so a Redis Cluster puts them on different masters.
//!
//! Shard 0 of service `S` is the queue `S` itself, with the keys an
//! unsharded service has always had (`P:{S}:jobs`, ...): a service of one
//! shard is exactly an unsharded one, and giving a service more shards
//! leaves its first queue where it was. Shard `k >= 1` is the queue `S~k`
//! (`P:{S~k}:jobs`, ...). What is per service lives once, in shard 0's
//! slot: the pause flag, the periodic definitions, the worker set and the
//! shard count (`P:{S}:shards`, a hash of `count` and `seen`).
//!
//! A client places a call on a shard: by its idempotency key when it has
//! one ([`shard_of_key`], so every duplicate meets the same claim), else
//! spread evenly (round robin from a random start). The call id then ends
//! in `~k` ([`with_shard`]), so cancelling or fetching it goes straight to
//! its shard ([`shard_of_id`]). docs/PROTOCOL.md, "Sharded services", is
//! the normative text.
//!
//! ```
//! use rpc_protocol::shards;
//! assert_eq!(shards::queue("Calculator", 0), "Calculator");
//! assert_eq!(shards::queue("Calculator", 3), "Calculator~3");
//! assert_eq!(shards::split_queue("Calculator~3"), ("Calculator", 3));
//! assert_eq!(shards::split_queue("Calculator"), ("Calculator", 0));
//! assert_eq!(shards::shard_of_id("c1-9f2e~3"), Some(3));
//! assert_eq!(shards::shard_of_id("c1-9f2e"), None);
//! assert_eq!(shards::shard_of_key("order-42", 8), shards::shard_of_key("order-42", 8));
//! ```

use std::borrow::Cow;

/// The most shards a service may have. A Cluster has 16,384 slots; more
/// shards than masters times a few buy nothing but reads.
pub const MAX_SHARDS: u32 = 256;

/// What separates a service's name from its shard number in a queue name
/// and a call id. Not a character of a schema identifier, and needs no
/// escaping in URLs, ACL patterns or `SCAN` patterns.
pub const SEPARATOR: char = '~';

/// The hash field of `P:{S}:shards` that holds the shard count clients
/// place calls on.
pub const FIELD_COUNT: &str = "count";
/// The hash field of `P:{S}:shards` that holds the most shards the service
/// has ever had (set or served): workers read every one of them, so
/// lowering the count loses nothing.
pub const FIELD_SEEN: &str = "seen";

/// The queue of shard `shard` of `service`: the service itself for shard
/// 0, `service~shard` after.
pub fn queue(service: &str, shard: u32) -> Cow<'_, str> {
    if shard == 0 {
        Cow::Borrowed(service)
    } else {
        Cow::Owned(format!("{service}{SEPARATOR}{shard}"))
    }
}

/// The service and shard of a queue name: `("S", k)` for `S~k` with `k` in
/// `1..MAX_SHARDS`, else the name itself as shard 0.
pub fn split_queue(queue: &str) -> (&str, u32) {
    // A lane of a shard (`S~k^p`) is that shard.
    let queue = crate::priority::split_lane(queue).0;
    match queue.rsplit_once(SEPARATOR) {
        Some((service, shard)) if !service.is_empty() => match parse_shard(shard) {
            Some(k) if k > 0 => (service, k),
            _ => (queue, 0),
        },
        _ => (queue, 0),
    }
}

/// The service a queue belongs to.
pub fn service_of_queue(queue: &str) -> &str {
    split_queue(queue).0
}

/// `id` marked with the shard its call goes to: `id~shard`.
pub fn with_shard(id: &str, shard: u32) -> String {
    format!("{id}{SEPARATOR}{shard}")
}

/// The shard a call id names (`...~k`), if it names one in range. An id
/// without the mark (an unsharded service's, or another client's) names
/// none: look in every shard.
pub fn shard_of_id(id: &str) -> Option<u32> {
    let (_, shard) = id.rsplit_once(SEPARATOR)?;
    parse_shard(shard)
}

/// The shard of an idempotency key among `count`: 64-bit FNV-1a of the
/// key's UTF-8 bytes, modulo `count` (0 when `count` is 0 or 1).
pub fn shard_of_key(key: &str, count: u32) -> u32 {
    if count <= 1 {
        return 0;
    }
    (fnv1a64(key.as_bytes()) % u64::from(count)) as u32
}

/// Whether `count` is a valid shard count.
pub fn is_count(count: u32) -> bool {
    (1..=MAX_SHARDS).contains(&count)
}

/// 64-bit FNV-1a (offset basis 0xcbf29ce484222325, prime 0x100000001b3).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A shard number as written: decimal digits, no sign or leading zero
/// (but `0` itself), below [`MAX_SHARDS`].
fn parse_shard(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse::<u32>().ok().filter(|&k| k < MAX_SHARDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_round_trip() {
        for k in [0, 1, 7, MAX_SHARDS - 1] {
            assert_eq!(split_queue(&queue("Svc", k)), ("Svc", k));
        }
    }

    #[test]
    fn what_is_not_a_shard_mark_is_part_of_the_name() {
        for name in [
            "S~", "S~0", "S~01", "S~-1", "S~+1", "S~256", "S~x", "~3", "S~1000",
        ] {
            assert_eq!(split_queue(name), (name, 0), "{name}");
        }
        assert_eq!(split_queue("a~b~2"), ("a~b", 2));
    }

    #[test]
    fn ids_name_their_shard() {
        assert_eq!(shard_of_id(&with_shard("abc", 0)), Some(0));
        assert_eq!(shard_of_id(&with_shard("abc", 5)), Some(5));
        for id in ["abc", "abc~", "abc~07", "abc~999", "abc~-1"] {
            assert_eq!(shard_of_id(id), None, "{id}");
        }
    }

    #[test]
    fn fnv1a_matches_the_published_vectors() {
        // From the FNV reference test suite.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn keys_spread_over_shards() {
        let mut counts = [0u32; 8];
        for i in 0..8_000 {
            counts[shard_of_key(&format!("order-{i}"), 8) as usize] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "{counts:?}");
        }
        assert_eq!(shard_of_key("anything", 1), 0);
    }
}
