//! Which master of a Redis Cluster owns which key: the key's hash slot
//! (CRC16 of its hash tag, mod 16384, as Redis computes it) and the slot
//! map Redis reports (`CLUSTER SLOTS`).
//!
//! The cluster reader (`cluster_reader.rs`) groups a worker's queues by
//! master with it, so that it reads every queue of one master in one round
//! trip and waits on one subscriber connection per master. The map is only
//! a guess about where keys live: a stale one shows as `MOVED` / `ASK`
//! answers or a dead connection, and the reader asks again.
//!
//! What `CLUSTER SLOTS` answers is hostile like every reply: a range out of
//! bounds, a port that is not one, or an address that is not text is
//! skipped, never trusted.

use redis::Value;

use super::values::{as_int, as_string};

/// The number of hash slots of a Redis Cluster.
pub(super) const SLOTS: u16 = 16_384;

/// The hash slot of `key`: CRC16 (XMODEM) of its hash tag (the text
/// between the first `{` and the next `}`, when not empty), or of the
/// whole key, mod 16384.
pub(super) fn key_slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16_xmodem(hashed) % SLOTS
}

fn crc16_xmodem(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// A master's address, as the cluster reports it.
pub(super) type Master = (String, u16);

/// Slot ranges and the master serving each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct SlotMap {
    ranges: Vec<(u16, u16, Master)>,
}

impl SlotMap {
    /// The master serving `slot`, if the map has one.
    pub(super) fn master_of(&self, slot: u16) -> Option<&Master> {
        self.ranges
            .iter()
            .find(|(start, end, _)| (*start..=*end).contains(&slot))
            .map(|(_, _, m)| m)
    }

    /// Reads a `CLUSTER SLOTS` reply: `[[start, end, [host, port, id, ..],
    /// replicas..], ..]`. Ranges that do not make sense are left out; a
    /// reply that is not a list at all is `None`.
    pub(super) fn parse(reply: &Value) -> Option<SlotMap> {
        let Value::Array(ranges) = reply else {
            return None;
        };
        let mut map = SlotMap::default();
        for range in ranges {
            let Value::Array(parts) = range else { continue };
            let slot = |i: usize| {
                let n = as_int(parts.get(i)?)?;
                u16::try_from(n).ok().filter(|s| *s < SLOTS)
            };
            let (Some(start), Some(end)) = (slot(0), slot(1)) else {
                continue;
            };
            let Some(Value::Array(node)) = parts.get(2) else {
                continue;
            };
            let host = node.first().and_then(as_string);
            let port = node
                .get(1)
                .and_then(as_int)
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0);
            match (host, port) {
                (Some(host), Some(port)) if start <= end && valid_host(&host) => {
                    map.ranges.push((start, end, (host, port)))
                }
                _ => continue,
            }
        }
        Some(map)
    }
}

/// A host name or address Redis may report: short, printable, no spaces.
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'@')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_the_ones_redis_computes() {
        // From the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16_xmodem(b"123456789"), 0x31c3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_eq!(key_slot(b"{}x"), crc16_xmodem(b"{}x") % SLOTS);
        assert_eq!(key_slot(b"a{b"), crc16_xmodem(b"a{b") % SLOTS);
    }

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"id".to_vec()),
        ])
    }

    #[test]
    fn a_slot_map_is_read_and_garbage_in_it_is_skipped() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("10.0.0.1", 7000),
            ]),
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(16383),
                node("10.0.0.2", 7001),
                node("10.0.0.3", 7002),
            ]),
            Value::Array(vec![Value::Int(9), Value::Int(99_999), node("x", 1)]),
            Value::Array(vec![Value::Int(7), Value::Int(3), node("y", 1)]),
            Value::Array(vec![Value::Int(1), Value::Int(2), node("z", 70_000)]),
            Value::Array(vec![Value::Int(1), Value::Int(2), node("a b", 1)]),
            Value::Int(4),
        ]);
        let map = SlotMap::parse(&reply).expect("a map");
        assert_eq!(map.ranges.len(), 2);
        assert_eq!(map.master_of(0), Some(&("10.0.0.1".to_owned(), 7000)));
        assert_eq!(map.master_of(5461), Some(&("10.0.0.2".to_owned(), 7001)));
        assert_eq!(map.master_of(16383), Some(&("10.0.0.2".to_owned(), 7001)));
        assert_eq!(SlotMap::parse(&Value::Nil), None);
        assert_eq!(
            SlotMap::parse(&Value::Array(vec![])),
            Some(SlotMap::default())
        );
    }
}
