//! `rpc-codegen`: check schemas, generate Rust or Python, print JSON Schemas, compare
//! two versions of a schema for wire compatibility.
//!
//! A thin front end over [`rpc_codegen::Builder`]; diagnostics go to stderr.
//! Exit status, by the rule every binary of the workspace follows: 0 done;
//! 1 the answer is "no" (`check`/`gen` found errors in a schema, `breaking`
//! found a breaking change); 2 could not run (usage errors, as clap does;
//! for `breaking`, a schema that does not load or a git revision that
//! cannot be read, so CI never mistakes "could not compare" for "breaks").
//! A reader that closes the pipe early ends the output quietly.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "rpc-codegen",
    version,
    about = "Schema compiler for typed RPC over Redis queues",
    after_help = "Exit status: 0 done; 1 errors in a schema (check, gen) or a breaking change \
                  (breaking); 2 could not run (bad arguments; for breaking, a schema that does \
                  not load or a git revision that cannot be read)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and validate schema files; print diagnostics, exit 1 on error.
    Check {
        /// Schema files (`.rpc`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Generate Rust (`<module>.rs`) or Python (`<module>.py`) modules, one per file and import, into DIR.
    Gen {
        /// Schema file (`.rpc`).
        file: PathBuf,
        /// Output directory (created if missing).
        #[arg(short, long, value_name = "DIR")]
        out: PathBuf,
        /// The language generated. Python also writes DIR/__init__.py when missing.
        #[arg(long, value_enum, default_value_t = Lang::Rust)]
        lang: Lang,
    },
    /// Print the JSON Schemas of every job's request, response and error.
    JsonSchema {
        /// Schema file (`.rpc`).
        file: PathBuf,
    },
    /// Print the AsyncAPI 3.0 document of the schema's services.
    Asyncapi {
        /// Schema file (`.rpc`).
        file: PathBuf,
        /// `info.version` of the document.
        #[arg(long, value_name = "VERSION", default_value = "1.0.0")]
        api_version: String,
    },
    /// Report changes from OLD to NEW that break wire compatibility; exit 1 if any do, 2 if it cannot compare.
    ///
    /// `breaking OLD NEW` compares two files; `breaking --against-git REF NEW`
    /// compares NEW with the same file (and its imports) at git revision REF.
    Breaking {
        /// OLD and NEW schema files, or only NEW with `--against-git`.
        #[arg(required = true, num_args = 1..=2, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Compare with the file as it is at this git revision (`HEAD`, `main`, a tag).
        #[arg(long, value_name = "REF")]
        against_git: Option<String>,
        /// `human` (rustc-style, on stderr) or `json` (on stdout, for CI).
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Lang {
    Rust,
    Python,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Human,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Breaking {
        files,
        against_git,
        format,
    } = cli.command
    {
        return breaking(files, against_git, format);
    }
    let result = match cli.command {
        Command::Check { files } => rpc_codegen::Builder::new().files(files).check(),
        Command::Gen {
            file,
            out,
            lang: Lang::Rust,
        } => rpc_codegen::Builder::new()
            .file(file)
            .out_dir(out)
            .rerun_if_changed(false)
            .compile(),
        Command::Gen {
            file,
            out,
            lang: Lang::Python,
        } => rpc_codegen::Builder::new()
            .file(file)
            .write_python(out)
            .map(|_| ()),
        Command::JsonSchema { file } => rpc_codegen::Builder::new()
            .file(file)
            .json_schema()
            .map(|value| print_json(&value)),
        Command::Asyncapi { file, api_version } => rpc_codegen::Builder::new()
            .file(file)
            .asyncapi(&api_version)
            .map(|value| print_json(&value)),
        Command::Breaking { .. } => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            ExitCode::FAILURE
        }
    }
}

/// Prints `value` on stdout; a closed pipe ends the process quietly (0),
/// any other write error with status 2.
fn print_json(value: &serde_json::Value) {
    let text = match serde_json::to_string_pretty(value) {
        Ok(text) => text,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::exit(2);
        }
    };
    if let Err(err) = writeln!(std::io::stdout().lock(), "{text}") {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: could not write to stdout: {err}");
        std::process::exit(2);
    }
}

/// `breaking`: 0 when nothing breaks (warnings allowed), 1 when something
/// does, 2 when it cannot compare (a schema that does not load, a git
/// revision that cannot be read).
fn breaking(files: Vec<PathBuf>, against_git: Option<String>, format: Format) -> ExitCode {
    let (old, new) = match (files.as_slice(), against_git) {
        ([old, new], None) => (rpc_codegen::Builder::new().file(old), new),
        ([new], Some(rev)) => (
            rpc_codegen::Builder::new().file(new).at_git_revision(rev),
            new,
        ),
        ([_], None) => Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "give OLD and NEW, or NEW with --against-git REF",
            )
            .exit(),
        _ => Cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "--against-git takes one FILE (NEW): OLD is that file at REF",
            )
            .exit(),
    };
    let report = match old.breaking_changes(&rpc_codegen::Builder::new().file(new)) {
        Ok(report) => report,
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            return ExitCode::from(2);
        }
    };
    match format {
        Format::Human => eprint!("{}", report.render()),
        Format::Json => print_json(&report.to_json()),
    }
    if report.is_breaking() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
