//! End-to-end tests of the `rpc-codegen` binary: real processes, real files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn schema(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../schema")
        .join(name)
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rpc-codegen"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// A fresh directory under cargo's per-test scratch space.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("cli")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_accepts_valid_files() {
    let calculator = schema("calculator.rpc");
    let everything = schema("everything.rpc");
    let out = run(&[
        "check",
        calculator.to_str().expect("utf-8"),
        everything.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn check_reports_diagnostics_and_exits_1() {
    let dir = scratch("check_bad");
    std::fs::write(dir.join("bad.rpc"), "struct A {\n    name: Strng,\n}\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_rpc-codegen"))
        .args(["check", "bad.rpc"])
        .current_dir(&dir)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: unknown type `Strng`\n --> bad.rpc:2:11\n  |\n2 |     name: Strng,\n  |           ^^^^^ not a built-in type or a type declared in or imported by this file\n  |\n  = help: did you mean `String`?\n\nerror: aborting due to 1 previous error\n"
    );
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn check_reports_a_missing_file() {
    let out = run(&["check", "/nonexistent/nope.rpc"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("error: cannot read `/nonexistent/nope.rpc`"));
}

#[test]
fn gen_writes_the_module_and_its_imports() {
    let dir = scratch("gen");
    let everything = schema("everything.rpc");
    let out = run(&[
        "gen",
        everything.to_str().expect("utf-8"),
        "-o",
        dir.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let expected = rpc_codegen::Builder::new()
        .file(&everything)
        .generate()
        .expect("compiles");
    for file in expected {
        let written = std::fs::read_to_string(dir.join(&file.file_name)).expect("written");
        assert_eq!(written, file.code, "{}", file.file_name);
    }
    // No cargo chatter from the CLI.
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn gen_writes_nothing_on_error() {
    let dir = scratch("gen_bad");
    std::fs::write(dir.join("bad.rpc"), "struct A { a: A }\n").expect("write");
    let out_dir = dir.join("out");
    let out = Command::new(env!("CARGO_BIN_EXE_rpc-codegen"))
        .args(["gen", "bad.rpc", "-o", "out"])
        .current_dir(&dir)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("can never be built"));
    assert!(!out_dir.exists());
}

#[test]
fn json_schema_prints_every_job() {
    let calculator = schema("calculator.rpc");
    let out = run(&["json-schema", calculator.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let jobs: Vec<(&str, &str)> = value
        .as_array()
        .expect("an array")
        .iter()
        .map(|job| {
            (
                job["service"].as_str().expect("service"),
                job["job"].as_str().expect("job"),
            )
        })
        .collect();
    assert_eq!(
        jobs,
        [
            ("Calculator", "add"),
            ("Calculator", "divide"),
            ("Calculator", "log"),
            ("Calculator", "sum")
        ]
    );
    let divide = &value[1];
    assert_eq!(divide["request"]["required"], serde_json::json!(["a", "b"]));
    assert_eq!(divide["error"]["title"], "MathError");
    assert_eq!(value[2]["response"]["type"], "null");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&[]).status.code(), Some(2));
    assert_eq!(run(&["check"]).status.code(), Some(2));
    assert_eq!(run(&["gen", "x.rpc"]).status.code(), Some(2));
    let help = run(&["--help"]);
    assert!(help.status.success());
    assert!(text(&help.stdout).contains("json-schema"));
}
