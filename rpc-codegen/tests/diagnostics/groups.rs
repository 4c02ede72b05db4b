//! `#[group_by]` and `#[group_limit]`: the parameter must exist and hold a
//! string or an integer, the limit must be 1 to 10000, and a limit needs
//! a key to limit.

use super::assert_diagnostic;

#[test]
fn group_by_a_parameter_the_job_does_not_have() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"service S {
    #[group_by = "tenant"]
    fn run(tenant_id: String, n: i64);
}
"#,
        )],
        "test.rpc:2:18",
        r#"error: `group_by` names no parameter of the job: `tenant`
 --> test.rpc:2:18
  |
2 |     #[group_by = "tenant"]
  |                  ^^^^^^^^ no such parameter
  |
  = help: did you mean `tenant_id`?

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn group_by_a_parameter_that_is_not_a_string_or_an_integer() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"service S {
    #[group_by = "ratio"]
    fn run(ratio: f64);
}
"#,
        )],
        "test.rpc:2:18",
        r#"error: `group_by` parameter `ratio` is not a string or an integer
 --> test.rpc:2:18
  |
2 |     #[group_by = "ratio"]
  |                  ^^^^^^^ a group key is the parameter's value as text
3 |     fn run(ratio: f64);
  |            ----- declared here
  |
  = help: group by a `String` or integer parameter (a tenant id, say)

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn a_group_limit_out_of_range() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"service S {
    #[group_by = "tenant"]
    #[group_limit = 0]
    fn run(tenant: u64);
}
"#,
        )],
        "test.rpc:3:21",
        r#"error: bad value for attribute `group_limit`
 --> test.rpc:3:21
  |
3 |     #[group_limit = 0]
  |                     ^ a per-key limit is 1 to 10000
  |
  = help: write it as `#[group_limit = 4]` (1 to 10000)

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn a_group_limit_without_a_group_key() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"service S {
    #[group_limit = 4]
    fn run(tenant: String);
}
"#,
        )],
        "test.rpc:2:21",
        r#"error: attribute `group_limit` without `group_by`
 --> test.rpc:2:21
  |
2 |     #[group_limit = 4]
  |                     ^ limits calls per group key, but the job's calls have none
  |
  = help: name the parameter that holds the key: `#[group_by = "tenant_id"]`

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn a_keyed_job_compiles() {
    rpc_codegen::Builder::new()
        .source(
            "test.rpc",
            r#"service S {
    #[group_by = "tenant"]
    #[group_limit = 10000]
    fn run(tenant: String, n: i64);
    #[group_by = "account"]
    fn other(account: u32);
}
"#,
        )
        .check()
        .expect("compiles");
}
