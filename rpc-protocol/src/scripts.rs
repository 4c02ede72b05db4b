//! The protocol's Lua scripts, each one operation, in `scripts/*.lua`: every
//! implementation runs these very files (loaded once with `SCRIPT LOAD`,
//! called by hash with `EVALSHA`, loaded again on `NOSCRIPT`). Each file
//! opens with a header listing its KEYS and ARGV; docs/PROTOCOL.md says when
//! each runs and what its answer means.
//!
//! ```
//! use rpc_protocol::scripts;
//! assert!(scripts::COMPLETE.source.contains("KEYS"));
//! assert_eq!(scripts::COMPLETE.sha1().len(), 40);
//! ```

/// One script: its file name, its source, and its SHA-1 (what `EVALSHA`
/// names it by).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Script {
    /// The file name, e.g. `complete.lua`.
    pub name: &'static str,
    /// The Lua source, exactly as Redis must hash it.
    pub source: &'static str,
}

impl Script {
    /// The SHA-1 of the source, lowercase hex: the script's name for
    /// `EVALSHA` once loaded.
    pub fn sha1(&self) -> String {
        sha1_smol::Sha1::from(self.source).digest().to_string()
    }
}

macro_rules! script {
    ($(#[$doc:meta])* $name:ident, $file:literal) => {
        $(#[$doc])*
        pub const $name: Script = Script {
            name: $file,
            source: include_str!(concat!("../scripts/", $file)),
        };
    };
}

script!(
    /// Ends one job: reply, keep, retry or schedule, dead-letter, ack, each
    /// write checked before the next.
    COMPLETE,
    "complete.lua"
);
script!(
    /// The common completion, a reply then the ack, cheaper for Redis.
    REPLY_AND_ACK,
    "reply_and_ack.lua"
);
script!(
    /// The common completions of a worker's batch on one queue: replies,
    /// one ack, the acked entries trimmed.
    COMPLETE_BATCH,
    "complete_batch.lua"
);
script!(
    /// A worker's batch of ack-only completions, acked by a plain `XACK`:
    /// the acked entries trimmed from the stream.
    TRIM_ACKED,
    "trim_acked.lua"
);
script!(
    /// A worker's regular look at a service: moves due scheduled jobs,
    /// reports pauses and cancellations, dead-letters garbage.
    POLL,
    "poll.lua"
);
script!(
    /// Moves a service's intake onto its stream, applying cancellation
    /// requests.
    INTAKE,
    "intake.lua"
);
script!(
    /// Cancels one call (an operator's cancel).
    CANCEL,
    "cancel.lua"
);
script!(
    /// Offers one tick of a periodic job.
    TICK,
    "tick.lua"
);
script!(
    /// Reads stream entries with their fields cut to a window (read-only).
    EXCERPT_ENTRIES,
    "excerpt_entries.lua"
);
script!(
    /// Reads scheduled jobs with their messages cut to a window (read-only).
    EXCERPT_SCHEDULE,
    "excerpt_schedule.lua"
);
script!(
    /// Reads a window of a string value (read-only).
    EXCERPT_VALUE,
    "excerpt_value.lua"
);
script!(
    /// Finds the entries of a stream holding a call id, newest first, a
    /// bounded page at a time (read-only).
    FIND_CALL,
    "find_call.lua"
);
script!(
    /// A stream's length and entries ever added, without its entries
    /// (read-only).
    STREAM_FIGURES,
    "stream_figures.lua"
);

script!(
    /// Forgets a consumer of a jobs stream only if it still holds no lease
    /// and is still idle (a janitor's check and delete in one step).
    FORGET_CONSUMER,
    "forget_consumer.lua"
);

script!(
    /// Reads a service's shard count; records what a worker serves or an
    /// operator sets.
    SHARDS,
    "shards.lua"
);

script!(
    /// Whether a call may start under its rate limits, or when its turn is.
    RATE_LIMIT,
    "rate_limit.lua"
);

script!(
    /// A keyed call takes a slot of its group key, or is parked on the
    /// key's waiting list.
    GROUP_ADMIT,
    "group_admit.lua"
);

script!(
    /// A keyed call gives its slot back; waiting messages of the key move
    /// onto the stream while slots are free.
    GROUP_RELEASE,
    "group_release.lua"
);

/// Every script of the protocol.
pub const ALL: [Script; 18] = [
    COMPLETE,
    REPLY_AND_ACK,
    COMPLETE_BATCH,
    TRIM_ACKED,
    POLL,
    INTAKE,
    CANCEL,
    TICK,
    EXCERPT_ENTRIES,
    EXCERPT_SCHEDULE,
    EXCERPT_VALUE,
    FIND_CALL,
    STREAM_FIGURES,
    SHARDS,
    FORGET_CONSUMER,
    RATE_LIMIT,
    GROUP_ADMIT,
    GROUP_RELEASE,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_names_its_keys_and_arguments_in_its_header() {
        for script in ALL {
            let header: String = script
                .source
                .lines()
                .skip_while(|l| l.starts_with("#!"))
                .take_while(|l| l.starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n");
            assert!(
                header.starts_with(&format!("-- {}:", script.name)),
                "{}: the header names the script",
                script.name
            );
            for part in used_arguments(script.source) {
                assert!(
                    header.contains(&part),
                    "{}: uses {part} without saying what it is",
                    script.name
                );
            }
        }
    }

    #[test]
    fn the_schedule_step_dead_letters_with_the_documented_reason() {
        assert!(COMPLETE
            .source
            .contains(&format!("'{}'", crate::stream::ALREADY_SCHEDULED)));
    }

    /// Every `KEYS[n]` and `ARGV[n]` a source names (`n` a number).
    fn used_arguments(source: &str) -> Vec<String> {
        let mut used = Vec::new();
        for table in ["KEYS[", "ARGV["] {
            for (at, _) in source.match_indices(table) {
                let rest = &source[at + table.len()..];
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                if !digits.is_empty() && rest[digits.len()..].starts_with(']') {
                    used.push(format!("{table}{digits}]"));
                }
            }
        }
        used.sort();
        used.dedup();
        used
    }

    #[test]
    fn the_header_check_sees_every_argument_a_script_names() {
        let used = used_arguments("redis.call('GET', KEYS[1], ARGV[12], KEYS[i], ARGV[2])");
        assert_eq!(used, ["ARGV[12]", "ARGV[2]", "KEYS[1]"]);
    }
}
