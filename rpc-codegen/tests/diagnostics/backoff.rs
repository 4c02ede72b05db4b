//! `#[backoff = "..."]`: a text that is not a policy, a policy out of
//! bounds, and a policy that could never be used. The value's diagnostic
//! points at the string and the help states the grammar.

use super::assert_diagnostic;

const HELP: &str = "  = help: write it as `#[backoff = \"exponential(100ms, 30s)\"]`: `none`, `fixed(<delay>)` or `exponential(<base>, <max>)` with base <= max, each duration a whole number followed by `ms`, `s`, `m` or `h`, from 1ms to 24h";

/// A one-job schema with `attr` on the job.
fn job_with(attr: &str) -> String {
    format!("service S {{\n    {attr}\n    fn run();\n}}\n")
}

#[test]
fn backoff_not_in_the_grammar() {
    assert_diagnostic(
        &[("test.rpc", &job_with(r#"#[backoff = "linear(1s)"]"#))],
        "test.rpc:2:17",
        &format!(
            r#"error: bad value for attribute `backoff`
 --> test.rpc:2:17
  |
2 |     #[backoff = "linear(1s)"]
  |                 ^^^^^^^^^^^^ expected `none`, `fixed(<delay>)` or `exponential(<base>, <max>)`, found `linear(1s)`
  |
{HELP}

error: aborting due to 1 previous error"#
        ),
    );
}

#[test]
fn backoff_duration_without_unit() {
    assert_diagnostic(
        &[("test.rpc", &job_with(r#"#[backoff = "fixed(500)"]"#))],
        "test.rpc:2:17",
        &format!(
            r#"error: bad value for attribute `backoff`
 --> test.rpc:2:17
  |
2 |     #[backoff = "fixed(500)"]
  |                 ^^^^^^^^^^^^ expected a duration such as `100ms`, `30s`, `5m` or `1h` (a whole number, then `ms`, `s`, `m` or `h`), found `500`
  |
{HELP}

error: aborting due to 1 previous error"#
        ),
    );
}

#[test]
fn backoff_base_above_max() {
    assert_diagnostic(
        &[(
            "test.rpc",
            &job_with(r#"#[backoff = "exponential(30s, 100ms)"]"#),
        )],
        "test.rpc:2:17",
        &format!(
            r#"error: bad value for attribute `backoff`
 --> test.rpc:2:17
  |
2 |     #[backoff = "exponential(30s, 100ms)"]
  |                 ^^^^^^^^^^^^^^^^^^^^^^^^^ expected `exponential(<base>, <max>)` with base <= max, found base 30s > max 100ms
  |
{HELP}

error: aborting due to 1 previous error"#
        ),
    );
}

#[test]
fn backoff_zero_delay() {
    assert_diagnostic(
        &[("test.rpc", &job_with(r#"#[backoff = "fixed(0ms)"]"#))],
        "test.rpc:2:17",
        &format!(
            r#"error: bad value for attribute `backoff`
 --> test.rpc:2:17
  |
2 |     #[backoff = "fixed(0ms)"]
  |                 ^^^^^^^^^^^^ expected a duration above zero (`none` retries at once), found `0ms`
  |
{HELP}

error: aborting due to 1 previous error"#
        ),
    );
}

#[test]
fn backoff_longer_than_a_day() {
    assert_diagnostic(
        &[(
            "test.rpc",
            &job_with(r#"#[backoff = "exponential(1s, 48h)"]"#),
        )],
        "test.rpc:2:17",
        &format!(
            r#"error: bad value for attribute `backoff`
 --> test.rpc:2:17
  |
2 |     #[backoff = "exponential(1s, 48h)"]
  |                 ^^^^^^^^^^^^^^^^^^^^^^ expected a duration of at most 24h, found `48h`
  |
{HELP}

error: aborting due to 1 previous error"#
        ),
    );
}

#[test]
fn backoff_not_a_string() {
    assert_diagnostic(
        &[("test.rpc", &job_with("#[backoff = 100]"))],
        "test.rpc:2:17",
        &format!(
            r#"error: bad value for attribute `backoff`
 --> test.rpc:2:17
  |
2 |     #[backoff = 100]
  |                 ^^^ expected a string
  |
{HELP}

error: aborting due to 1 previous error"#
        ),
    );
}

#[test]
fn backoff_repeated() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"service S {
    #[backoff = "none"]
    #[backoff = "fixed(1s)"]
    fn run();
}
"#,
        )],
        "test.rpc:3:7",
        r#"error: attribute `backoff` is given more than once
 --> test.rpc:3:7
  |
2 |     #[backoff = "none"]
  |       ------- first given here
3 |     #[backoff = "fixed(1s)"]
  |       ^^^^^^^ given again here

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn backoff_on_a_job_with_one_attempt() {
    // The job is never retried, so the policy could never act: an error,
    // like every attribute the compiler would otherwise ignore.
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"service S {
    #[attempts = 1]
    #[backoff = "fixed(1s)"]
    fn run();
}
"#,
        )],
        "test.rpc:3:7",
        r#"error: attribute `backoff` on a job that is never retried
 --> test.rpc:3:7
  |
2 |     #[attempts = 1]
  |       -------- one attempt only
3 |     #[backoff = "fixed(1s)"]
  |       ^^^^^^^ this policy would never be used
  |
  = help: allow retries with `#[attempts = N]` (N > 1), or remove `#[backoff]`

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn backoff_on_a_field() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"struct A {
    #[backoff = "none"]
    a: i64,
}
"#,
        )],
        "test.rpc:2:7",
        r#"error: attribute `backoff` is not allowed on a field
 --> test.rpc:2:7
  |
2 |     #[backoff = "none"]
  |       ^^^^^^^ not allowed here
  |
  = help: `backoff` goes on a job

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn backoff_misspelt() {
    assert_diagnostic(
        &[("test.rpc", &job_with(r#"#[backof = "none"]"#))],
        "test.rpc:2:7",
        r#"error: unknown attribute `backof`
 --> test.rpc:2:7
  |
2 |     #[backof = "none"]
  |       ^^^^^^ not an attribute of the schema language
  |
  = help: did you mean `backoff`?

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn backoff_with_retries_compiles() {
    // The counterpart of the errors above: every form, with or without
    // `#[attempts]` (above one), is accepted.
    let schema = r#"service S {
    #[backoff = "none"]
    fn a();
    #[attempts = 2]
    #[backoff = "fixed(2s)"]
    fn b();
    #[backoff = " exponential( 100ms , 30s ) "]
    #[attempts = 10]
    fn c();
}
"#;
    let checked = rpc_codegen::Builder::new()
        .source("test.rpc", schema)
        .check();
    assert!(checked.is_ok(), "{:?}", checked.err());
}
