//! `rpc-codegen`: check schemas, generate Rust, print JSON Schemas, compare
//! two versions of a schema for wire compatibility.
//!
//! A thin front end over [`rpc_codegen::Builder`]; diagnostics go to stderr
//! and the exit status is 1 when there are any, or when `breaking` finds a
//! breaking change (2 for usage errors, as clap does).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "rpc-codegen",
    version,
    about = "Schema compiler for typed RPC over Redis queues"
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
    /// Generate Rust modules (`<module>.rs`, one per file and import) into DIR.
    Gen {
        /// Schema file (`.rpc`).
        file: PathBuf,
        /// Output directory (created if missing).
        #[arg(short, long, value_name = "DIR")]
        out: PathBuf,
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
    /// Report changes from OLD to NEW that break wire compatibility; exit 1 if any do.
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
    let result =
        match cli.command {
            Command::Check { files } => rpc_codegen::Builder::new().files(files).check(),
            Command::Gen { file, out } => rpc_codegen::Builder::new()
                .file(file)
                .out_dir(out)
                .rerun_if_changed(false)
                .compile(),
            Command::JsonSchema { file } => rpc_codegen::Builder::new()
                .file(file)
                .json_schema()
                .map(|value| match serde_json::to_string_pretty(&value) {
                    Ok(text) => println!("{text}"),
                    Err(err) => eprintln!("error: {err}"),
                }),
            Command::Asyncapi { file, api_version } => rpc_codegen::Builder::new()
                .file(file)
                .asyncapi(&api_version)
                .map(|value| match serde_json::to_string_pretty(&value) {
                    Ok(text) => println!("{text}"),
                    Err(err) => eprintln!("error: {err}"),
                }),
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

/// `breaking`: 0 when nothing breaks (warnings allowed), 1 when something
/// does or a schema is invalid.
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
            return ExitCode::FAILURE;
        }
    };
    match format {
        Format::Human => eprint!("{}", report.render()),
        Format::Json => match serde_json::to_string_pretty(&report.to_json()) {
            Ok(text) => println!("{text}"),
            Err(err) => {
                eprintln!("error: {err}");
                return ExitCode::FAILURE;
            }
        },
    }
    if report.is_breaking() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
