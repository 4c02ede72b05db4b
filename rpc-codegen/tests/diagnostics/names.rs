//! Names: duplicates, and clashes after conversion to Rust names, with
//! generated names, the prelude and other wire names.

use super::assert_diagnostic;

#[test]
fn duplicate_type() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"struct Point { x: f64 }

enum Point { A }
"#,
        )],
        "test.rpc:3:6",
        r#"error: the name `Point` is defined more than once
 --> test.rpc:3:6
  |
1 | struct Point { x: f64 }
  |        ----- first definition of `Point`
...
3 | enum Point { A }
  |      ^^^^^ `Point` defined again here

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn duplicate_type_and_service() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"struct Calculator {}
service Calculator {}
"#,
        )],
        "test.rpc:2:9",
        r#"error: the name `Calculator` is defined more than once
 --> test.rpc:2:9
  |
1 | struct Calculator {}
  |        ---------- first definition of `Calculator`
2 | service Calculator {}
  |         ^^^^^^^^^^ `Calculator` defined again here

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn duplicate_field() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"struct Point {
    x: f64,
    y: f64,
    x: i64,
}
"#,
        )],
        "test.rpc:4:5",
        r#"error: field `x` is declared more than once in struct `Point`
 --> test.rpc:4:5
  |
2 |     x: f64,
  |     - first declared here
...
4 |     x: i64,
  |     ^ declared again here

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn duplicate_variant() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"enum Color {
    Red,
    Green,
    Red { shade: u8 },
}
"#,
        )],
        "test.rpc:4:5",
        r#"error: variant `Red` is declared more than once in enum `Color`
 --> test.rpc:4:5
  |
2 |     Red,
  |     --- first declared here
...
4 |     Red { shade: u8 },
  |     ^^^ declared again here

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn duplicate_job() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"service Calculator {
    fn add(a: i64) -> i64;
    fn add(a: f64) -> f64;
}
"#,
        )],
        "test.rpc:3:8",
        r#"error: job `add` is declared more than once in service `Calculator`
 --> test.rpc:3:8
  |
2 |     fn add(a: i64) -> i64;
  |        --- first declared here
3 |     fn add(a: f64) -> f64;
  |        ^^^ declared again here

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn duplicate_parameter() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"service Calculator {
    fn add(a: i64, a: i64) -> i64;
}
"#,
        )],
        "test.rpc:2:20",
        r#"error: parameter `a` is declared more than once in job `Calculator.add`
 --> test.rpc:2:20
  |
2 |     fn add(a: i64, a: i64) -> i64;
  |            - first declared here
  |                    ^ declared again here

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn case_clash_types() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"struct foo_bar {}
struct FooBar {}
"#,
        )],
        "test.rpc:2:8",
        r#"error: `FooBar` would be defined twice in the generated Rust
 --> test.rpc:2:8
  |
1 | struct foo_bar {}
  |        ------- struct `foo_bar` is also `FooBar`
2 | struct FooBar {}
  |        ^^^^^^ struct `FooBar` becomes `FooBar`
  |
  = help: rename one of them

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn case_clash_fields() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"struct A {
    fooBar: i64,
    foo_bar: i64,
}
"#,
        )],
        "test.rpc:3:5",
        r#"error: fields `fooBar` and `foo_bar` of struct `A` both become `foo_bar` in Rust
 --> test.rpc:3:5
  |
2 |     fooBar: i64,
  |     ------ also becomes `foo_bar`
3 |     foo_bar: i64,
  |     ^^^^^^^ becomes `foo_bar`
  |
  = help: rename one of them; `#[rename = "foo_bar"]` keeps a name on the wire

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn case_clash_variants() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"enum E {
    dark_red,
    DarkRed,
}
"#,
        )],
        "test.rpc:3:5",
        r#"error: variants `dark_red` and `DarkRed` of enum `E` both become `DarkRed` in Rust
 --> test.rpc:3:5
  |
2 |     dark_red,
  |     -------- also becomes `DarkRed`
3 |     DarkRed,
  |     ^^^^^^^ becomes `DarkRed`
  |
  = help: rename one of them; `#[rename = "DarkRed"]` keeps a name on the wire

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn clash_with_generated_client() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"struct CalculatorClient {}

service Calculator {
    fn add(a: i64) -> i64;
}
"#,
        )],
        "test.rpc:3:9",
        r#"error: `CalculatorClient` would be defined twice in the generated Rust
 --> test.rpc:3:9
  |
1 | struct CalculatorClient {}
  |        ---------------- struct `CalculatorClient` is also `CalculatorClient`
...
3 | service Calculator {
  |         ^^^^^^^^^^ the client of service `Calculator` becomes `CalculatorClient`
  |
  = help: rename one of them

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn clash_with_generated_request() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"service Calculator {
    fn add(a: i64) -> i64;
}

struct CalculatorAddRequest {}
"#,
        )],
        "test.rpc:5:8",
        r#"error: `CalculatorAddRequest` would be defined twice in the generated Rust
 --> test.rpc:5:8
  |
2 |     fn add(a: i64) -> i64;
  |        --- the request struct of job `Calculator.add` is also `CalculatorAddRequest`
...
5 | struct CalculatorAddRequest {}
  |        ^^^^^^^^^^^^^^^^^^^^ struct `CalculatorAddRequest` becomes `CalculatorAddRequest`
  |
  = help: rename one of them

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn clash_with_client_constructor() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"service Calculator {
    fn new() -> i64;
}
"#,
        )],
        "test.rpc:2:8",
        r#"error: job `new` would generate the client method `new`, which `CalculatorClient` already has
 --> test.rpc:2:8
  |
2 |     fn new() -> i64;
  |        ^^^ generates `new`
  |
  = help: give the job another name; `#[rename = "new"]` keeps `new` on the wire

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn clash_with_client_accessor() {
    // One method per job: `send_add` is a job like any other now, and
    // only the client's own methods are taken.
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"service Calculator {
    fn add(a: i64) -> i64;
    fn send_add(a: i64) -> i64;
    fn client() -> i64;
}
"#,
        )],
        "test.rpc:4:8",
        r#"error: job `client` would generate the client method `client`, which `CalculatorClient` already has
 --> test.rpc:4:8
  |
4 |     fn client() -> i64;
  |        ^^^^^^ generates `client`
  |
  = help: give the job another name; `#[rename = "client"]` keeps `client` on the wire

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn clash_with_prelude() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"struct Box {
    width: f64,
}
"#,
        )],
        "test.rpc:1:8",
        r#"error: `Box` would shadow the Rust prelude's `Box`, which generated code uses
 --> test.rpc:1:8
  |
1 | struct Box {
  |        ^^^ struct `Box` becomes `Box`
  |
  = help: choose another name

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn builtin_redefined() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"struct String {
    bytes: Bytes,
}
"#,
        )],
        "test.rpc:1:8",
        r#"error: `String` is a built-in type and cannot be redefined
 --> test.rpc:1:8
  |
1 | struct String {
  |        ^^^^^^ this struct would hide the built-in `String`
  |
  = help: choose another name

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn wire_name_clash() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"struct A {
    #[rename = "b"]
    a: i64,
    b: i64,
}
"#,
        )],
        "test.rpc:4:5",
        r#"error: fields `a` and `b` of struct `A` both have the wire name `b`
 --> test.rpc:4:5
  |
3 |     a: i64,
  |     - also sent as `b`
4 |     b: i64,
  |     ^ sent as `b`

error: aborting due to 1 previous error"#,
    );
}
