//! One test per diagnostic: the exact rustc-style text, including the
//! `file:line:col` it points at. Schemas are handed in as text (imports of
//! in-memory files resolve in memory; a missing import is looked up on disk).
//!
//! Regenerate the expectations only after reading the new output: these texts
//! are the user interface of the schema compiler.

/// Compiles `files` (all as roots) and returns the rendered diagnostics.
fn errors(files: &[(&str, &str)]) -> String {
    let mut builder = rpc_codegen::Builder::new();
    for (path, text) in files {
        builder = builder.source(path, *text);
    }
    match builder.check() {
        Ok(()) => panic!("expected diagnostics, the schema compiled"),
        Err(diagnostics) => diagnostics.to_string(),
    }
}

/// The `file:line:col` of the first diagnostic.
fn location(rendered: &str) -> &str {
    rendered
        .lines()
        .find_map(|line| line.trim_start().strip_prefix("--> "))
        .unwrap_or("")
}

fn assert_diagnostic(files: &[(&str, &str)], expected_location: &str, expected: &str) {
    let actual = errors(files);
    assert_eq!(
        actual.trim_end(),
        expected.trim_end(),
        "\n--- actual ---\n{actual}"
    );
    assert_eq!(location(&actual), expected_location);
}

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
fn clash_between_client_methods() {
    assert_diagnostic(
        &[(
            "test.rpc",
            r#"service Calculator {
    fn add(a: i64) -> i64;
    fn send_add(a: i64) -> i64;
}
"#,
        )],
        "test.rpc:3:8",
        r#"error: the client method `send_add` would be generated twice for service `Calculator`
 --> test.rpc:3:8
  |
2 |     fn add(a: i64) -> i64;
  |        --- job `add` (its send method) also generates `send_add`
3 |     fn send_add(a: i64) -> i64;
  |        ^^^^^^^^ job `send_add` generates `send_add`
  |
  = help: rename one of the jobs; `#[rename]` keeps the old name on the wire

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

#[test]
fn import_missing_file() {
    assert_diagnostic(
        &[(
            "dir/a.rpc",
            r#"import "missing.rpc";
"#,
        )],
        "dir/a.rpc:1:8",
        r#"error: cannot read imported file `missing.rpc`
 --> dir/a.rpc:1:8
  |
1 | import "missing.rpc";
  |        ^^^^^^^^^^^^^ No such file or directory (os error 2)
  |
  = note: looked for `dir/missing.rpc`
  = help: import paths are relative to the file that contains the import

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn import_cycle() {
    assert_diagnostic(
        &[
            (
                "dir/a.rpc",
                r#"import "b.rpc";
"#,
            ),
            (
                "dir/b.rpc",
                r#"import "a.rpc";
"#,
            ),
        ],
        "dir/b.rpc:1:8",
        r#"error: import cycle: dir/a.rpc -> dir/b.rpc -> dir/a.rpc
 --> dir/b.rpc:1:8
  |
1 | import "a.rpc";
  |        ^^^^^^^ this import closes the cycle
  |
  = help: move the shared types into a file that both can import

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn import_self() {
    assert_diagnostic(
        &[(
            "dir/a.rpc",
            r#"import "a.rpc";
"#,
        )],
        "dir/a.rpc:1:8",
        r#"error: import cycle: dir/a.rpc -> dir/a.rpc
 --> dir/a.rpc:1:8
  |
1 | import "a.rpc";
  |        ^^^^^^^ this import closes the cycle
  |
  = help: move the shared types into a file that both can import

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn import_twice() {
    assert_diagnostic(
        &[
            (
                "dir/a.rpc",
                r#"import "b.rpc";
import "./b.rpc";
"#,
            ),
            (
                "dir/b.rpc",
                r#"struct B {}
"#,
            ),
        ],
        "dir/a.rpc:2:8",
        r#"error: `./b.rpc` is imported more than once
 --> dir/a.rpc:2:8
  |
1 | import "b.rpc";
  |        ------- first imported here
2 | import "./b.rpc";
  |        ^^^^^^^^^ imported again here

error: aborting due to 1 previous error"#,
    );
}

#[test]
fn import_ambiguous() {
    assert_diagnostic(
        &[
            (
                "dir/a.rpc",
                r#"import "b.rpc";
import "c.rpc";
struct A {
    p: Point,
}
"#,
            ),
            (
                "dir/b.rpc",
                r#"struct Point {}
"#,
            ),
            (
                "dir/c.rpc",
                r#"struct Point {}
"#,
            ),
        ],
        "dir/a.rpc:4:8",
        r#"error: `Point` is ambiguous
 --> dir/a.rpc:4:8
  |
4 |     p: Point,
  |        ^^^^^ more than one imported file declares this name
  |
  = note: declared in `dir/b.rpc` and `dir/c.rpc`

error: aborting due to 1 previous error"#,
    );
}

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
