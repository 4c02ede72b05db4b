//! One test per diagnostic: the exact rustc-style text, including the
//! `file:line:col` it points at. Schemas are handed in as text (imports of
//! in-memory files resolve in memory; a missing import is looked up on disk).
//!
//! Regenerate the expectations only after reading the new output: these texts
//! are the user interface of the schema compiler.
//!
//! One file per kind of mistake; the helpers are here.

mod attributes;
mod backoff;
mod groups;
mod imports;
mod names;
mod syntax;
mod types;

/// Compiles `files` (all as roots) and returns the rendered diagnostics.
fn errors(files: &[(&str, &str)]) -> String {
    let mut builder = rpc_codegen::Builder::new();
    for (path, text) in files {
        builder = builder.source(path, *text);
    }
    match builder.check() {
        Ok(()) => panic!("expected diagnostics, the schema compiled"),
        Err(diagnostics) => diagnostics.to_string(),
    }
}

/// The `file:line:col` of the first diagnostic.
fn location(rendered: &str) -> &str {
    rendered
        .lines()
        .find_map(|line| line.trim_start().strip_prefix("--> "))
        .unwrap_or("")
}

fn assert_diagnostic(files: &[(&str, &str)], expected_location: &str, expected: &str) {
    let actual = errors(files);
    assert_eq!(
        actual.trim_end(),
        expected.trim_end(),
        "\n--- actual ---\n{actual}"
    );
    assert_eq!(location(&actual), expected_location);
}
