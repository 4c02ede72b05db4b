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

/// `git` in `dir`, failing the test if it fails.
fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
}

#[test]
fn breaking_exits_1_on_a_breaking_change_and_0_on_warnings() {
    // CI gates on the exit status: 1 for breaking, 0 when only warnings (or nothing) changed.
    let dir = scratch("breaking_exit");
    std::fs::write(dir.join("v1.rpc"), "service A {\n    fn x(a: i64);\n}\n").expect("write");
    std::fs::write(dir.join("v2.rpc"), "service A {\n    fn x(a: i32);\n}\n").expect("write");
    std::fs::write(
        dir.join("v3.rpc"),
        "service A {\n    #[timeout_ms = 5]\n    fn x(a: i64, b: Option<i64>);\n}\n",
    )
    .expect("write");
    let run_in = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_rpc-codegen"))
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("runs")
    };
    let out = run_in(&["breaking", "v1.rpc", "v2.rpc"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("error[changed-type]: the type of parameter `a` of job `A.x` changed from `i64` to `i32`\n --> v2.rpc:2:10\n"), "{stderr}");
    assert!(stderr.contains(" ::: v1.rpc:2:10\n"), "{stderr}");
    assert!(stderr.ends_with("error: 1 breaking change\n"), "{stderr}");

    let out = run_in(&["breaking", "v1.rpc", "v3.rpc"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).starts_with("warning[changed-timeout]"));
    assert!(text(&out.stderr).ends_with("no breaking changes (1 warning)\n"));

    let out = run_in(&["breaking", "v1.rpc", "v1.rpc"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stderr), "no breaking changes\n");
}

#[test]
fn breaking_json_lists_rule_positions_and_directions() {
    // The JSON form carries everything the text form does, for CI annotations.
    let dir = scratch("breaking_json");
    std::fs::write(
        dir.join("v1.rpc"),
        "enum E { A }\nservice S { fn x() -> E; }\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("v2.rpc"),
        "enum E { A, B }\nservice S { fn x() -> E; }\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_rpc-codegen"))
        .args(["breaking", "v1.rpc", "v2.rpc", "--format", "json"])
        .current_dir(&dir)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        value,
        serde_json::json!({
            "breaking": true,
            "changes": [{
                "rule": "new-variant",
                "severity": "breaking",
                "message": "new variant `B` in `E`",
                "old": {"file": "v1.rpc", "line": 1, "column": 6},
                "new": {"file": "v2.rpc", "line": 1, "column": 13},
                "breaks": ["old-client-new-worker"],
                "hint": "old readers refuse it: update every reader of `E` before anyone sends it"
            }]
        })
    );
}

#[test]
fn breaking_against_git_reads_the_file_and_its_imports_at_the_revision() {
    // `--against-git REF NEW` compares with `git show REF:NEW`, imports included.
    let dir = scratch("breaking_git");
    git(&dir, &["init", "-q"]);
    std::fs::create_dir_all(dir.join("schema")).expect("mkdir");
    std::fs::write(dir.join("schema/common.rpc"), "struct P { x: f64 }\n").expect("write");
    std::fs::write(
        dir.join("schema/api.rpc"),
        "import \"common.rpc\";\nservice S { fn x(p: P); }\n",
    )
    .expect("write");
    git(&dir, &["add", "."]);
    git(&dir, &["commit", "-qm", "v1"]);
    let check = || {
        Command::new(env!("CARGO_BIN_EXE_rpc-codegen"))
            .args(["breaking", "--against-git", "HEAD", "schema/api.rpc"])
            .current_dir(&dir)
            .output()
            .expect("runs")
    };
    let out = check();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // A change in the imported file, not yet committed, is seen against HEAD's.
    std::fs::write(dir.join("schema/common.rpc"), "struct P { y: f64 }\n").expect("write");
    let out = check();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("error[renamed-field]: field `x` of struct `P` is renamed to `y` on the wire\n --> schema/common.rpc:1:12\n"), "{stderr}");
    assert!(
        stderr.contains(" ::: HEAD:schema/common.rpc:1:12\n"),
        "{stderr}"
    );

    // A revision without the file is an error, not a crash, and exits 2
    // ("could not compare"), never 1 ("breaking change found").
    let out = Command::new(env!("CARGO_BIN_EXE_rpc-codegen"))
        .args(["breaking", "--against-git", "nope", "schema/api.rpc"])
        .current_dir(&dir)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("error: cannot read `nope:schema/api.rpc`")
            || text(&out.stderr).contains("git show nope"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn breaking_usage_errors_exit_2() {
    // One file without --against-git, or two with it, is a usage error.
    assert_eq!(run(&["breaking", "a.rpc"]).status.code(), Some(2));
    assert_eq!(
        run(&["breaking", "--against-git", "HEAD", "a.rpc", "b.rpc"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn asyncapi_prints_the_document() {
    // The CLI prints what `Builder::asyncapi` builds, with the version asked for.
    let calculator = schema("calculator.rpc");
    let out = run(&[
        "asyncapi",
        calculator.to_str().expect("utf-8"),
        "--api-version",
        "2.1.0",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(value["asyncapi"], "3.0.0");
    assert_eq!(value["info"]["version"], "2.1.0");
    assert_eq!(
        value,
        rpc_codegen::Builder::new()
            .file(&calculator)
            .asyncapi("2.1.0")
            .expect("compiles")
    );
}
