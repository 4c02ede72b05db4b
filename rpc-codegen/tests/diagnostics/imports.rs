//! Imports: missing files, cycles, repeats and ambiguous names.

use super::assert_diagnostic;

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
