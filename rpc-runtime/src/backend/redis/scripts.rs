//! The protocol's Lua scripts (`rpc_protocol::scripts`) as the redis crate
//! runs them: each compiled once into a `redis::Script` (which knows its
//! hash, runs with `EVALSHA` and loads itself on `NOSCRIPT`), and the set a
//! worker loads up front so the first completions riding on its reads find
//! them.

use std::sync::OnceLock;

use redis::Script;
use rpc_protocol::scripts::{self, Script as Source};

/// The `redis::Script` of `source`, made once. Looked up by position in
/// [`scripts::ALL`] (a handful, names compared by address first): every
/// completion asks, and a hash of the name cost more than the search.
pub(super) fn compiled(source: &Source) -> &'static Script {
    static ALL: OnceLock<Vec<Script>> = OnceLock::new();
    let all = ALL.get_or_init(|| scripts::ALL.iter().map(|s| Script::new(s.source)).collect());
    let at = scripts::ALL
        .iter()
        .position(|s| std::ptr::eq(s.name, source.name) || s.name == source.name)
        .expect("every script is in scripts::ALL");
    &all[at]
}

/// What a worker loads when it starts: the scripts on its hot path.
pub(super) const LOADED_AT_START: [Source; 6] = [
    scripts::COMPLETE,
    scripts::REPLY_AND_ACK,
    scripts::COMPLETE_BATCH,
    scripts::TRIM_ACKED,
    scripts::POLL,
    scripts::INTAKE,
];
