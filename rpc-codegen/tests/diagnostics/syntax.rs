//! Syntax errors: what the parser expected, and unbalanced brackets,
//! strings and comments found by the lexer's own scan.

use super::assert_diagnostic;

#[test]
fn syntax_error_missing_comma() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"struct Point {
    x: f64
    y: f64,
}
"#,
        )],
        "test.rpc:3:5",
        r#"error: expected `,`
 --> test.rpc:3:5
  |
3 |     y: f64,
  |     ^

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn syntax_error_job_without_fn() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"service Calculator {
    add(a: i64, b: i64) -> i64;
}
"#,
        )],
        "test.rpc:2:5",
        r#"error: expected `fn`: jobs are written `fn name(param: Type) -> Type;`
 --> test.rpc:2:5
  |
2 |     add(a: i64, b: i64) -> i64;
  |     ^^^

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn syntax_error_unknown_item() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"struct A {}
trait B {}
"#,
        )],
        "test.rpc:2:1",
        r#"error: expected one of: `import`, `struct`, `enum`, `service`
 --> test.rpc:2:1
  |
2 | trait B {}
  | ^^^^^

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn syntax_error_unclosed_delimiter() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"struct Point {
    x: f64,
    y: f64,
"#,
        )],
        "test.rpc:1:14",
        r#"error: this file contains an unclosed delimiter
 --> test.rpc:1:14
  |
1 | struct Point {
  |              ^ unclosed delimiter `{`

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn syntax_error_stray_delimiter() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"struct Point {
    x: f64,
}}
"#,
        )],
        "test.rpc:3:2",
        r#"error: unexpected closing delimiter: `}`
 --> test.rpc:3:2
  |
3 | }}
  |  ^ unexpected closing delimiter

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn syntax_error_unterminated_string() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"import "common.rpc;
struct A {}
"#,
        )],
        "test.rpc:1:8",
        r#"error: unterminated double quote string
 --> test.rpc:1:8
  |
1 | import "common.rpc;
  |        ^ this string is never closed

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn syntax_error_inner_doc_after_items() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"struct A {}
//! Late module docs.
"#,
        )],
        "test.rpc:2:1",
        r#"error: inner doc comments (`//!`) and inner attributes must come before every item
 --> test.rpc:2:1
  |
2 | //! Late module docs.
  | ^^^^^^^^^^^^^^^^^^^^^

error: aborting due to 1 previous error"#,
    );
}
