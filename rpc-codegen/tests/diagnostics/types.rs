//! Types: unknown names (with hints), built-in generics used wrongly,
//! `Result` outside a return type, and types that can never be built.

use super::assert_diagnostic;

#[test]
fn unknown_type_did_you_mean() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"service Logger {
    fn log(line: Strin);
}
"#,
        )],
        "test.rpc:2:18",
        r#"error: unknown type `Strin`
 --> test.rpc:2:18
  |
2 |     fn log(line: Strin);
  |                  ^^^^^ not a built-in type or a type declared in or imported by this file
  |
  = help: did you mean `String`?

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn unknown_type_case() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"struct A {
    name: string,
}
"#,
        )],
        "test.rpc:2:11",
        r#"error: unknown type `string`
 --> test.rpc:2:11
  |
2 |     name: string,
  |           ^^^^^^ not a built-in type or a type declared in or imported by this file
  |
  = help: did you mean `String`?

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn unknown_type_familiar_name() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"struct A {
    size: usize,
}
"#,
        )],
        "test.rpc:2:11",
        r#"error: unknown type `usize`
 --> test.rpc:2:11
  |
2 |     size: usize,
  |           ^^^^^ not a built-in type or a type declared in or imported by this file
  |
  = help: use `u64`: sizes differ between machines, the wire has none

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn unknown_type_in_file_not_imported() {
    assert_diagnostic(
        &[
            (
                "dir/a.rpc",
                r#"struct A {
    p: Point,
}
"#,
            ),
            (
                "dir/b.rpc",
                r#"struct Point { x: f64 }
"#,
            ),
        ],
        "dir/a.rpc:2:8",
        r#"error: unknown type `Point`
 --> dir/a.rpc:2:8
  |
2 |     p: Point,
  |        ^^^^^ not a built-in type or a type declared in or imported by this file
  |
  = help: `Point` is declared in `dir/b.rpc`; import that file

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn map_key_not_string() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"struct Index {
    by_id: Map<u64, String>,
}
"#,
        )],
        "test.rpc:2:16",
        r#"error: map keys must be `String`
 --> test.rpc:2:16
  |
2 |     by_id: Map<u64, String>,
  |                ^^^ JSON object keys are strings
  |
  = help: use `Map<String, T>`, or a `Vec` of key-value structs for other keys

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn map_wrong_arity() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"struct Index {
    by_id: Map<String>,
}
"#,
        )],
        "test.rpc:2:12",
        r#"error: `Map` takes two type arguments: `Map<String, T>`
 --> test.rpc:2:12
  |
2 |     by_id: Map<String>,
  |            ^^^^^^^^^^^ 1 given

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn type_arguments_on_plain_type() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"struct A {}
struct B {
    a: A<i64>,
    n: i64<String>,
}
"#,
        )],
        "test.rpc:3:8",
        r#"error: `A` takes no type arguments
 --> test.rpc:3:8
  |
3 |     a: A<i64>,
  |        ^^^^^^ schema structs and enums are not generic

error: `i64` takes no type arguments
 --> test.rpc:4:8
  |
4 |     n: i64<String>,
  |        ^^^^^^^^^^^ remove the `<...>`

error: aborting due to 2 previous errors"#,
    );
}

#[test]
fn option_of_option() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"struct A {
    x: Option<Option<i64>>,
}
"#,
        )],
        "test.rpc:2:8",
        r#"error: `Option<Option<T>>` cannot be told apart from `Option<T>` on the wire
 --> test.rpc:2:8
  |
2 |     x: Option<Option<i64>>,
  |        ^^^^^^^^^^^^^^^^^^^ both `None` and `Some(None)` are sent as a missing value
  |
  = help: use a single `Option`, or an enum that names each case

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn result_error_is_a_struct() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"struct Oops { why: String }
service S {
    fn run() -> Result<i64, Oops>;
}
"#,
        )],
        "test.rpc:3:29",
        r#"error: the error type of `Result` must be an enum declared in a schema
 --> test.rpc:3:29
  |
3 |     fn run() -> Result<i64, Oops>;
  |                             ^^^^ `Oops` is a struct
  |
  = help: declare `enum SomethingError { ... }` listing what can go wrong, and use it here

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn result_error_is_a_builtin() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"service S {
    fn run() -> Result<i64, String>;
}
"#,
        )],
        "test.rpc:2:29",
        r#"error: the error type of `Result` must be an enum declared in a schema
 --> test.rpc:2:29
  |
2 |     fn run() -> Result<i64, String>;
  |                             ^^^^^^ `String` is not a schema enum
  |
  = help: declare `enum SomethingError { ... }` listing what can go wrong, and use it here

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn result_outside_return() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"enum E { Bad }
struct A {
    r: Result<i64, E>,
}
"#,
        )],
        "test.rpc:3:8",
        r#"error: `Result` is only allowed as the return type of a job
 --> test.rpc:3:8
  |
3 |     r: Result<i64, E>,
  |        ^^^^^^^^^^^^^^ only allowed as a job's return type
  |
  = help: fields carry plain data; a job can return `Result<T, E>`

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn never_built_mutual() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"struct A {
    b: B,
}

struct B {
    a: A,
}
"#,
        )],
        "test.rpc:1:8",
        r#"error: type `A` can never be built: it contains itself with no way to stop (A -> B -> A)
 --> test.rpc:1:8
  |
1 | struct A {
  |        ^ every value of this type would be infinitely large
2 |     b: B,
  |     - needs `B`
...
6 |     a: A,
  |     - needs `A`
  |
  = help: make one of these fields an `Option<...>`, a `Vec<...>` or a `Map<String, ...>`

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn never_built_self() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"struct Node {
    value: i64,
    next: Node,
}
"#,
        )],
        "test.rpc:1:8",
        r#"error: type `Node` can never be built: it contains itself with no way to stop (Node -> Node)
 --> test.rpc:1:8
  |
1 | struct Node {
  |        ^^^^ every value of this type would be infinitely large
...
3 |     next: Node,
  |     ---- needs `Node`
  |
  = help: make one of these fields an `Option<...>`, a `Vec<...>` or a `Map<String, ...>`

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn never_built_enum() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"enum Expr {
    Neg(Expr),
    Add { left: Expr, right: Expr },
}
"#,
        )],
        "test.rpc:1:6",
        r#"error: type `Expr` can never be built: it contains itself with no way to stop (Expr -> Expr)
 --> test.rpc:1:6
  |
1 | enum Expr {
  |      ^^^^ every value of this type would be infinitely large
2 |     Neg(Expr),
  |     --- needs `Expr`
  |
  = help: make one of these fields an `Option<...>`, a `Vec<...>` or a `Map<String, ...>`

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn empty_enum() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"enum Nothing {}
"#,
        )],
        "test.rpc:1:6",
        r#"error: enum `Nothing` has no variants, so it can never be built
 --> test.rpc:1:6
  |
1 | enum Nothing {}
  |      ^^^^^^^ no value of this enum can exist
  |
  = help: add a variant

error: aborting due to 1 previous error"#,
    );
}
