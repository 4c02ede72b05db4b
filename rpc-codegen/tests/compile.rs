//! Compile tests (trybuild): generated code builds, typed clients and handler
//! traits can be used, and misuse fails to compile with a clear error.
//!
//! The schemas in `schema/` are generated into `tests/ui/generated/` first
//! (ignored by git; rewritten only when they change), together with the
//! model-derived JSON Schemas the pass cases compare schemars' output to.
//! After a change to the emitter, refresh the expected errors with
//! `TRYBUILD=overwrite cargo test -p rpc-codegen --test compile` and review
//! the diff of `tests/ui/fail/*.stderr`.

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

#[test]
fn generated_code_compiles_and_misuse_does_not() {
    generate();
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
