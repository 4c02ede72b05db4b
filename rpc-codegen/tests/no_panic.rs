//! The schema compiler never panics, whatever it is fed: arbitrary text,
//! text made of the language's own tokens, and valid schemas with random
//! damage. Each input either compiles (and then code is emitted) or yields
//! diagnostics that render.

use std::path::PathBuf;

use proptest::prelude::*;

const CALCULATOR: &str = include_str!("../../schema/calculator.rpc");
const EVERYTHING: &str = include_str!("../../schema/everything.rpc");

/// Inputs pretend to live in `schema/`, so `import "common.rpc";` resolves.
fn fuzz_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schema/fuzz_input.rpc")
}

fn compile(text: &str) {
    match rpc_codegen::Builder::new()
        .source(fuzz_path(), text)
        .generate()
    {
        Ok(files) => assert!(files.iter().all(|f| f.code.contains("pub mod"))),
        Err(diagnostics) => {
            assert!(!diagnostics.is_empty());
            let rendered = diagnostics.to_string();
            assert!(rendered.contains("error"), "{rendered}");
        }
    }
}

/// Pieces the lexer and parser care about, to get past the first token.
fn token() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "struct",
        "enum",
        "service",
        "import",
        "fn",
        "->",
        "<",
        ">",
        "{",
        "}",
        "(",
        ")",
        "[",
        "]",
        ",",
        ";",
        ":",
        "#",
        "!",
        "=",
        "\"common.rpc\"",
        "\"x\"",
        "///",
        "//!",
        "\n",
        " ",
        "A",
        "b",
        "i64",
        "String",
        "Vec",
        "Option",
        "Map",
        "Result",
        "Json",
        "Bytes",
        "type",
        "self",
        "r#type",
        "0",
        "99999999999999999999999",
        "timeout_ms",
        "attempts",
        "deprecated",
        "rename",
        "/*",
        "*/",
        "'",
        "'a",
        "\\",
        "é",
        "\u{0}",
        "\u{feff}",
        "1.5e3",
        "b\"x\"",
        "r\"x\"",
    ])
}

/// A damaged copy of `base`: a few random edits (delete, duplicate, insert).
fn mutated(base: &'static str) -> impl Strategy<Value = String> {
    let len = base.len();
    prop::collection::vec((0..len, 0..len, 0u8..4, token()), 1..6).prop_map(move |edits| {
        let mut text = base.to_string();
        for (a, b, kind, token) in edits {
            let (mut a, mut b) = (a.min(b), a.max(b).min(a.min(b) + 40));
            a = a.min(text.len());
            b = b.min(text.len());
            while !text.is_char_boundary(a) {
                a -= 1;
            }
            while !text.is_char_boundary(b) {
                b -= 1;
            }
            match kind {
                0 => text.replace_range(a..b, ""),
                1 => {
                    let piece = text[a..b].to_string();
                    text.insert_str(b, &piece);
                }
                2 => text.insert_str(a, token),
                _ => text.replace_range(a..b, token),
            }
        }
        text
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn arbitrary_text(text in any::<String>()) {
        compile(&text);
    }

    #[test]
    fn arbitrary_tokens(tokens in prop::collection::vec(token(), 0..60)) {
        compile(&tokens.join(" "));
        compile(&tokens.concat());
    }

    #[test]
    fn mutated_calculator(text in mutated(CALCULATOR)) {
        compile(&text);
    }

    #[test]
    fn mutated_everything(text in mutated(EVERYTHING)) {
        compile(&text);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep_type = format!(
        "struct A {{ a: {}i64{} }}",
        "Vec<".repeat(10_000),
        ">".repeat(10_000)
    );
    compile(&deep_type);
    let deep_groups = format!("{}{}", "(".repeat(100_000), ")".repeat(100_000));
    compile(&deep_groups);
    let deep_attr = format!(
        "#[a = {}1{}] struct A {{}}",
        "(".repeat(5_000),
        ")".repeat(5_000)
    );
    compile(&deep_attr);
}

#[test]
fn empty_and_whitespace_files_are_fine() {
    for text in [
        "",
        " ",
        "\n\n",
        "//! only docs\n",
        "// only a comment",
        "\u{feff}",
    ] {
        rpc_codegen::Builder::new()
            .source(fuzz_path(), text)
            .generate()
            .unwrap_or_else(|d| panic!("{text:?}: {d}"));
    }
}
