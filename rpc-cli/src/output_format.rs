//! `--format table|json`: one flag for every listing of `rpc`, so a script
//! asks every command for JSON the same way. `table` is for people
//! (durations as `2h05m`, times as `in 20h33m`); `json` is for scripts and
//! stable: its shapes are listed in the README ("Machine-readable output"),
//! durations are whole milliseconds and moments milliseconds since the Unix
//! epoch (on Redis's clock).
//!
//! `--json`, which some listings took before `--format`, still works and is
//! hidden from the help: scripts written against it keep running.

use clap::{Args, ValueEnum};

/// How a listing prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    #[default]
    #[value(alias = "human")]
    Table,
    /// Machine-readable JSON (shapes in the README, "Machine-readable output").
    Json,
}

/// The `--format` flag of a listing, with the old `--json` as an alias.
#[derive(Args, Debug, Clone, Copy)]
pub struct FormatArg {
    /// Output format: `table` for people, `json` for scripts (stable; see the
    /// README, "Machine-readable output").
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// The same as `--format json` (kept for older scripts).
    #[arg(long, hide = true, conflicts_with = "format")]
    json: bool,
}

impl FormatArg {
    /// The format asked for.
    pub fn get(&self) -> Format {
        if self.json {
            Format::Json
        } else {
            self.format
        }
    }

    /// Whether JSON was asked for.
    pub fn is_json(&self) -> bool {
        self.get() == Format::Json
    }
}
