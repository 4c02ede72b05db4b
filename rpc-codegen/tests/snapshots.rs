//! Snapshot tests of the generated code: one snapshot per file in `schema/`
//! (its own module; imported modules have their own snapshot), plus the
//! job JSON Schemas of each file as `rpc-codegen json-schema` prints them
//! (the generated code embeds them packed, one line a type or a job).
//! Review changes with `INSTA_UPDATE=always cargo test -p rpc-codegen` and
//! `git diff`.

use std::path::{Path, PathBuf};

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema")
}

fn schema_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(schema_dir())
        .expect("schema/ exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rpc"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_schema_file_generates_code() {
    let files = schema_files();
    assert!(
        files.len() >= 3,
        "expected the schema/ examples, found {files:?}"
    );
    for path in files {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name");
        let generated = rpc_codegen::Builder::new()
            .file(&path)
            .generate()
            .unwrap_or_else(|d| panic!("{} does not compile:\n{d}", path.display()));
        let own = generated
            .iter()
            .find(|file| file.requested)
            .expect("the requested file is generated");
        assert_eq!(own.module, stem);
        insta::assert_snapshot!(format!("generated_{stem}"), own.code);
    }
}

/// The documents `rpc-codegen json-schema` prints (and `json_schemas()`
/// serves, packed in the generated code above), pretty, for review.
#[test]
fn json_schema_of_every_schema_file() {
    for path in schema_files() {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name");
        let value = rpc_codegen::Builder::new()
            .file(&path)
            .json_schema()
            .unwrap_or_else(|d| panic!("{} does not compile:\n{d}", path.display()));
        let text = serde_json::to_string_pretty(&value).expect("JSON");
        insta::assert_snapshot!(format!("json_schema_{stem}"), text);
    }
}

#[test]
fn imported_files_are_generated_as_sibling_modules() {
    let generated = rpc_codegen::Builder::new()
        .file(schema_dir().join("everything.rpc"))
        .generate()
        .expect("everything.rpc compiles");
    let names: Vec<(&str, bool)> = generated
        .iter()
        .map(|f| (f.file_name.as_str(), f.requested))
        .collect();
    assert_eq!(names, [("common.rs", false), ("everything.rs", true)]);
    let everything = &generated[1].code;
    assert!(everything.contains("super::common::Point"));
    assert!(everything.starts_with("// @generated"));
    assert_eq!(
        everything.matches("\npub mod ").count(),
        1,
        "exactly one item"
    );
}

#[test]
fn output_is_deterministic() {
    let path = schema_dir().join("everything.rpc");
    let a = rpc_codegen::Builder::new()
        .file(&path)
        .generate()
        .expect("compiles");
    let b = rpc_codegen::Builder::new()
        .file(&path)
        .generate()
        .expect("compiles");
    assert_eq!(a, b);
}
