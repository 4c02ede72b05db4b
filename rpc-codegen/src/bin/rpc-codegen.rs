//! `rpc-codegen`: check schemas, generate Rust, print JSON Schemas.
//!
//! A thin front end over [`rpc_codegen::Builder`]; diagnostics go to stderr
//! and the exit status is 1 when there are any (2 for usage errors, as clap
//! does).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            ExitCode::FAILURE
        }
    }
}
