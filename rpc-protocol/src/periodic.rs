//! Periodic jobs on the wire: a tick's call id, the definition a worker
//! stores beside each tick, the last tick's form, and the vocabulary of
//! `tick.lua` (its modes and outcomes). docs/PROTOCOL.md, "Periodic jobs",
//! is the normative description.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The call id of a tick: `periodic:<name>:<tick ms>`.
pub fn tick_id(name: &str, tick_ms: u64) -> String {
    format!("periodic:{name}:{tick_ms}")
}

/// A last-tick value: 1 to 15 decimal digits (what workers write; the tick
/// script reads no other form, and Lua's numbers are exact up to there).
pub fn parse_last(raw: &[u8]) -> Option<u64> {
    if !(1..=15).contains(&raw.len()) || !raw.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(raw).ok()?.parse().ok()
}

/// What a worker does, when it starts, about ticks that passed while no
/// worker of the job was running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissedTicks {
    /// Run once for all of them, at once (like systemd's `Persistent=true`
    /// or anacron): the run has the id of the latest missed tick. Only a
    /// job that has run before can have missed ticks; a new one starts
    /// with the first tick after a worker starts. The default.
    #[default]
    RunOnce,
    /// Run none of them: the job goes on with the first tick after the
    /// worker's start.
    Skip,
}

/// The definition JSON a worker stores under the job's name (the `next_ms`
/// it carries is the tick after the one enqueued with it).
#[derive(Debug, Serialize)]
pub struct Definition<'a> {
    pub v: u32,
    pub name: &'a str,
    pub service: &'a str,
    /// The full job name, `Service.job`.
    pub job: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cron: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub every_ms: Option<u64>,
    pub params: &'a RawValue,
    pub timeout_ms: u64,
    pub missed: MissedTicks,
    /// The next tick after this write, ms since the epoch (broker clock).
    pub next_ms: Option<u64>,
}

/// A stored definition as a reader takes it: every field optional and
/// unknown ones ignored, so a newer worker's definition still lists.
#[derive(Debug, Deserialize)]
pub struct StoredDefinition {
    pub job: Option<String>,
    pub cron: Option<String>,
    pub every_ms: Option<u64>,
    pub params: Option<serde_json::Value>,
    pub timeout_ms: Option<u64>,
    pub missed: Option<String>,
    pub next_ms: Option<u64>,
}

/// Why a tick is offered (`tick.lua`'s ARGV[3]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickMode {
    /// The tick came due while the worker was running: enqueue it unless
    /// it (or a later one) already was.
    OnTime,
    /// A starting worker's one run for ticks missed while no worker ran
    /// (`MissedTicks::RunOnce`): enqueue it only if the job has run before
    /// (a new job has missed nothing); otherwise just store the definition.
    CatchUp,
    /// Only store the definition (a starting worker with
    /// `MissedTicks::Skip`), so it lists before its first tick.
    Register,
}

impl TickMode {
    /// The mode as the tick script reads it.
    pub fn as_str(self) -> &'static str {
        match self {
            TickMode::OnTime => "on_time",
            TickMode::CatchUp => "catch_up",
            TickMode::Register => "register",
        }
    }
}

/// What the tick script did with a tick (its answer's first element).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickOutcome {
    /// This call enqueued it.
    Enqueued,
    /// It, or a later tick, was enqueued already (by another worker).
    AlreadyEnqueued,
    /// The definition was stored and nothing enqueued (`Register`, or a
    /// `CatchUp` of a job that never ran).
    Registered,
    /// The tick lies in the broker's future: offer it again then.
    Early,
}

impl TickOutcome {
    /// The outcome the script's answer names, if it is one.
    pub fn parse(word: &[u8]) -> Option<TickOutcome> {
        Some(match word {
            b"enqueued" => TickOutcome::Enqueued,
            b"done" => TickOutcome::AlreadyEnqueued,
            b"registered" => TickOutcome::Registered,
            b"early" => TickOutcome::Early,
            _ => return None,
        })
    }
}
