//! Compile tests (trybuild): generated code builds, typed clients and handler
//! traits can be used, and misuse fails to compile with a clear error.
//!
//! The schemas in `schema/` are generated into `tests/ui/generated/` first
//! (ignored by git; rewritten only when they change), together with what
//! `rpc-codegen json-schema` prints for each, which the pass cases compare
//! with what the compiled modules' `json_schemas()` serve.
//! After a change to the emitter, refresh the expected errors with
//! `TRYBUILD=overwrite cargo test -p rpc-codegen --test compile` and review
//! the diff of `tests/ui/fail/*.stderr`.
//!
//! trybuild builds the cases' dependencies (rpc-runtime's whole tree) in a
//! target of its own, so this is the suite's slowest test on a clean
//! checkout. Three things keep that cost down: the dev-dependencies no case
//! uses are left out of trybuild's project (`cfg(not(trybuild))` in
//! Cargo.toml), every dependency is compiled once, not twice (see
//! [`one_set_of_rustflags`]), and without debug info ([`no_debug_info`]).

use std::path::Path;

fn write_if_changed(path: &Path, contents: &str) {
    if std::fs::read_to_string(path).ok().as_deref() != Some(contents) {
        std::fs::write(path, contents).expect("write generated file");
    }
}

fn generate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = root.join("tests/ui/generated");
    std::fs::create_dir_all(&out).expect("generated dir");
    for schema in ["calculator.rpc", "everything.rpc"] {
        let builder = rpc_codegen::Builder::new().file(root.join("../schema").join(schema));
        let files = builder.generate().unwrap_or_else(|d| panic!("{d}"));
        for file in files {
            write_if_changed(&out.join(&file.file_name), &file.code);
        }
    }
    for schema in ["calculator", "everything", "common"] {
        let json = rpc_codegen::Builder::new()
            .file(root.join("../schema").join(format!("{schema}.rpc")))
            .json_schema()
            .unwrap_or_else(|d| panic!("{d}"));
        let text = serde_json::to_string_pretty(&json).expect("json");
        write_if_changed(&out.join(format!("{schema}.json")), &text);
    }
}

/// The rustflags trybuild gives cargo (trybuild 1.0's `rustflags.rs`), with
/// the `--diagnostic-width=140` it adds when it builds the cases.
const TRYBUILD_RUSTFLAGS: [&str; 6] = [
    "--cfg",
    "trybuild",
    "--verbose",
    "-A",
    "dead_code",
    "--diagnostic-width=140",
];

/// trybuild first builds the dependencies with its rustflags, then builds
/// the cases with one flag more (`--diagnostic-width=140`), and runs the
/// passing ones with one flag fewer; cargo keeps artifacts apart by their
/// rustflags, so every dependency was compiled twice. `CARGO_ENCODED_RUSTFLAGS`
/// outranks the `--config build.rustflags` trybuild passes, so giving cargo
/// the full set through it makes every step build with the same flags and
/// reuse the first build. Left alone when the caller set rustflags (e.g. for
/// coverage): then trybuild handles them as it always does.
fn one_set_of_rustflags() {
    if std::env::var_os("RUSTFLAGS").is_some()
        || std::env::var_os("CARGO_ENCODED_RUSTFLAGS").is_some()
    {
        return;
    }
    // The only test in this binary, so no other thread reads the environment.
    std::env::set_var("CARGO_ENCODED_RUSTFLAGS", TRYBUILD_RUSTFLAGS.join("\x1f"));
}

/// trybuild's project has no `[profile]` of its own (it copies none from
/// the workspace), so it would build rpc-runtime's whole tree with full
/// debug info, which nothing here reads: cases are judged by their
/// diagnostics, or by running to the end.
fn no_debug_info() {
    if std::env::var_os("CARGO_PROFILE_DEV_DEBUG").is_none() {
        std::env::set_var("CARGO_PROFILE_DEV_DEBUG", "false");
    }
}

#[test]
fn generated_code_compiles_and_misuse_does_not() {
    generate();
    one_set_of_rustflags();
    no_debug_info();
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
