//! Stream entry ids, which the pages use as tokens: checked before they
//! reach Redis, and read for when the entry was added (an id starts with
//! the milliseconds since the epoch at which Redis added it). A token of
//! shard `k >= 1` of a sharded service carries its shard, `<id>~k`
//! (`rpc_runtime::inspect::shards::mark_token`).

use std::time::{Duration, SystemTime};

/// Whether `s` is a stream entry id (`1700000000000-0`), or one marked
/// with its shard (`1700000000000-0~3`).
pub fn is_entry_id(s: &str) -> bool {
    let s = match (rpc_protocol::shards::shard_of_id(s), s.rsplit_once('~')) {
        (Some(_), Some((bare, _))) => bare,
        _ => s,
    };
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    matches!(s.split_once('-'), Some((ms, seq)) if digits(ms) && digits(seq))
}

/// When the entry with this id was added.
pub fn added_at(id: &str) -> Option<SystemTime> {
    let ms = id.split('-').next()?.parse::<u64>().ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stream_ids_pass_as_tokens() {
        assert!(is_entry_id("1700000000000-0"));
        assert!(is_entry_id("1700000000000-0~3"));
        assert!(!is_entry_id("1700000000000-0~999"));
        assert!(!is_entry_id("x~3"));
        for bad in [
            "",
            "-",
            "1-",
            "-1",
            "1",
            "1-2-3",
            "+",
            "1700000000000-0 extra",
            "x-1",
        ] {
            assert!(!is_entry_id(bad), "{bad:?}");
        }
        assert_eq!(
            added_at("1500-7"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1500))
        );
    }
}
