//! Attributes: unknown ones, in the wrong place, repeated, or with a bad
//! value.

use super::assert_diagnostic;

#[test]
fn unknown_attribute_did_you_mean() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"service S {
    #[timeout = 100]
    fn run();
}
"#,
        )],
        "test.rpc:2:7",
        r#"error: unknown attribute `timeout`
 --> test.rpc:2:7
  |
2 |     #[timeout = 100]
  |       ^^^^^^^ not an attribute of the schema language
  |
  = help: did you mean `timeout_ms`?

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn unknown_attribute() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"struct A {
    #[serde(default)]
    a: i64,
}
"#,
        )],
        "test.rpc:2:7",
        r#"error: unknown attribute `serde`
 --> test.rpc:2:7
  |
2 |     #[serde(default)]
  |       ^^^^^ not an attribute of the schema language
  |
  = note: attributes allowed on a field: `deprecated`, `rename`

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn attribute_on_wrong_item() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"struct A {
    #[timeout_ms = 100]
    a: i64,
}
"#,
        )],
        "test.rpc:2:7",
        r#"error: attribute `timeout_ms` is not allowed on a field
 --> test.rpc:2:7
  |
2 |     #[timeout_ms = 100]
  |       ^^^^^^^^^^ not allowed here
  |
  = help: `timeout_ms` goes on a job

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn attribute_bad_value_zero() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"service S {
    #[attempts = 0]
    fn run();
}
"#,
        )],
        "test.rpc:2:18",
        r#"error: bad value for attribute `attempts`
 --> test.rpc:2:18
  |
2 |     #[attempts = 0]
  |                  ^ at least one attempt is needed
  |
  = help: write it as `#[attempts = 3]` (at least 1)

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn attribute_bad_value_type() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"service S {
    #[timeout_ms = "2s"]
    fn run();
}
"#,
        )],
        "test.rpc:2:20",
        r#"error: bad value for attribute `timeout_ms`
 --> test.rpc:2:20
  |
2 |     #[timeout_ms = "2s"]
  |                    ^^^^ expected a whole number of milliseconds
  |
  = help: write it as `#[timeout_ms = 2000]` (milliseconds, at least 1)

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn attribute_bad_value_overflow() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"service S {
    #[attempts = 99999999999]
    fn run();
}
"#,
        )],
        "test.rpc:2:18",
        r#"error: bad value for attribute `attempts`
 --> test.rpc:2:18
  |
2 |     #[attempts = 99999999999]
  |                  ^^^^^^^^^^^ too large for a u32
  |
  = help: write it as `#[attempts = 3]` (at least 1)

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn attribute_empty_rename() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"struct A {
    #[rename = ""]
    a: i64,
}
"#,
        )],
        "test.rpc:2:16",
        r#"error: bad value for attribute `rename`
 --> test.rpc:2:16
  |
2 |     #[rename = ""]
  |                ^^ the wire name cannot be empty
  |
  = help: write it as `#[rename = "wireName"]`

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn attribute_repeated() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"service S {
    #[attempts = 2]
    #[attempts = 3]
    fn run();
}
"#,
        )],
        "test.rpc:3:7",
        r#"error: attribute `attempts` is given more than once
 --> test.rpc:3:7
  |
2 |     #[attempts = 2]
  |       -------- first given here
3 |     #[attempts = 3]
  |       ^^^^^^^^ given again here

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn attribute_list_form() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"struct A {
    #[deprecated(note = "old")]
    a: i64,
}
"#,
        )],
        "test.rpc:2:7",
        r#"error: bad value for attribute `deprecated`
 --> test.rpc:2:7
  |
2 |     #[deprecated(note = "old")]
  |       ^^^^^^^^^^^^^^^^^^^^^^^^ expected a string
  |
  = help: write it as `#[deprecated]` or `#[deprecated = "reason"]`

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn shards_out_of_range() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"#[shards = 300]
service S {
    fn run();
}
"#,
        )],
        "test.rpc:1:12",
        r#"error: bad value for attribute `shards`
 --> test.rpc:1:12
  |
1 | #[shards = 300]
  |            ^^^ a service has 1 to 256 shards
  |
  = help: write it as `#[shards = 8]` (1 to 256)

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn shards_on_a_job() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"service S {
    #[shards = 4]
    fn run();
}
"#,
        )],
        "test.rpc:2:7",
        r#"error: attribute `shards` is not allowed on a job
 --> test.rpc:2:7
  |
2 |     #[shards = 4]
  |       ^^^^^^ not allowed here
  |
  = help: `shards` goes on a service

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn priority_out_of_range() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"service S {
    #[priority = 6]
    fn run();
}
"#,
        )],
        "test.rpc:2:18",
        r#"error: bad value for attribute `priority`
 --> test.rpc:2:18
  |
2 |     #[priority = 6]
  |                  ^ a priority is 1 (taken first) to 5 (last); 3 is the default
  |
  = help: write it as `#[priority = 1]` (1, taken first, to 5; default 3)

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn rate_malformed() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"service S {
    #[rate = "50/fortnight"]
    fn run();
}
"#,
        )],
        "test.rpc:2:14",
        r#"error: bad value for attribute `rate`
 --> test.rpc:2:14
  |
2 |     #[rate = "50/fortnight"]
  |              ^^^^^^^^^^^^^^ unknown period unit "fortnight"
  |
  = help: write it as `"<count>/<period>"` with an optional `burst <n>`: `"50/s"`, `"1000/m"`, `"10/500ms"`, `"100/s burst 20"` (periods: ms, s, m, h, or a number before one, up to 24h)

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn rate_on_a_parameter() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"service S {
    fn run(#[rate = "5/s"] n: i64);
}
"#,
        )],
        "test.rpc:2:14",
        r#"error: attribute `rate` is not allowed on a parameter
 --> test.rpc:2:14
  |
2 |     fn run(#[rate = "5/s"] n: i64);
  |              ^^^^ not allowed here
  |
  = help: `rate` goes on a job or a service

error: aborting due to 1 previous error"#,
    );
}
