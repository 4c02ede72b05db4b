//! The read-only scripts an operator's view runs: each reads a window of
//! values that may be any size (messages, tokens, kept results) so that
//! only the window leaves Redis, or looks for a call id inside Redis so
//! that no message does (`scripts/excerpt_*.lua`, `scripts/find_call.lua`),
//! or counts a stream without its entries (`scripts/stream_figures.lua`).
//!
//! They run with `EVALSHA_RO` (Redis 7.0+), not `EVALSHA`: Redis then
//! refuses any write they might attempt, and a key they name needs read
//! access only. Under `EVALSHA` a script's keys need read *and* write
//! access in one ACL pattern, which the operator role does not have for the
//! dead-letter streams (`%R~P:*` plus `%W~P:{*}:dead`), and a read-only
//! operator has for nothing. So an operator user needs `+evalsha_ro
//! +script|load`, and the read commands the scripts run: `XRANGE`,
//! `XREVRANGE` (`find_call.lua` goes newest first), `XINFO STREAM`,
//! `EXISTS`, `ZRANGE`, `ZSCORE`
//! (`excerpt_schedule.lua` finds a call on the schedule by id), `HMGET`,
//! `GET`. Commands a script runs are checked against the user's ACL.

use redis::{ErrorKind, RedisResult, Script, ServerErrorKind, Value};

use super::commands::Commands;

/// The read-only scripts, each loaded once and called by hash.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ReadOnlyScript {
    /// Stream entries with their fields cut to a window.
    ExcerptEntries,
    /// Jobs on a schedule with their tokens and messages cut to a window.
    ExcerptSchedule,
    /// A window of a string value.
    ExcerptValue,
    /// Entries of a stream whose message holds a text, newest first.
    FindCall,
    /// A stream's length and entries added, without its entries.
    StreamFigures,
}

impl ReadOnlyScript {
    fn script(self) -> &'static Script {
        use rpc_protocol::scripts;
        super::scripts::compiled(match self {
            ReadOnlyScript::ExcerptEntries => &scripts::EXCERPT_ENTRIES,
            ReadOnlyScript::ExcerptSchedule => &scripts::EXCERPT_SCHEDULE,
            ReadOnlyScript::ExcerptValue => &scripts::EXCERPT_VALUE,
            ReadOnlyScript::FindCall => &scripts::FIND_CALL,
            ReadOnlyScript::StreamFigures => &scripts::STREAM_FIGURES,
        })
    }
}

impl Commands {
    /// Runs a read-only script by hash (`EVALSHA_RO`), loading it first if
    /// Redis does not have it (a restart empties the script cache).
    pub(crate) async fn invoke_read_only(
        &self,
        which: ReadOnlyScript,
        keys: &[&str],
        args: &[&[u8]],
    ) -> RedisResult<Value> {
        let script = which.script();
        let mut cmd = redis::cmd("EVALSHA_RO");
        cmd.arg(script.get_hash()).arg(keys.len()).arg(keys);
        for arg in args {
            cmd.arg(*arg);
        }
        match self.query_once(&cmd).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.load(script).await?;
                self.query_once(&cmd).await
            }
            other => other,
        }
    }

    async fn query_once(&self, cmd: &redis::Cmd) -> RedisResult<Value> {
        match self {
            Commands::Single(con) => cmd.query_async(&mut con.clone()).await,
            Commands::Cluster(con) => cmd.query_async(&mut con.clone()).await,
        }
    }

    async fn load(&self, script: &Script) -> RedisResult<String> {
        match self {
            Commands::Single(con) => script.load_async(&mut con.clone()).await,
            Commands::Cluster(con) => script.load_async(&mut con.clone()).await,
        }
    }
}
