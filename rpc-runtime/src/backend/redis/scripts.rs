//! The protocol's Lua scripts (`rpc_protocol::scripts`) as the redis crate
//! runs them: each compiled once into a `redis::Script` (which knows its
//! hash, runs with `EVALSHA` and loads itself on `NOSCRIPT`), and the set a
//! worker loads up front so the first completions riding on its reads find
//! them.

use std::collections::HashMap;
use std::sync::OnceLock;

use redis::Script;
use rpc_protocol::scripts::{self, Script as Source};

/// The `redis::Script` of `source`, made once.
pub(super) fn compiled(source: &Source) -> &'static Script {
    static ALL: OnceLock<HashMap<&'static str, Script>> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        scripts::ALL
            .iter()
            .map(|s| (s.name, Script::new(s.source)))
            .collect()
    });
    &all[source.name]
}

/// What a worker loads when it starts: the scripts on its hot path.
pub(super) const LOADED_AT_START: [Source; 4] = [
    scripts::COMPLETE,
    scripts::REPLY_AND_ACK,
    scripts::POLL,
    scripts::INTAKE,
];
