//! The retry-policy grammar is read twice: by rpc-codegen for the schema's
//! `#[backoff = "..."]` (which emits an `rpc_runtime::Backoff`), and by
//! rpc-runtime's `impl FromStr for Backoff` (codegen must not depend on the
//! runtime, so it cannot share the parser). These tests hold the two to one
//! grammar: the same example tables in both unit tests, and the same verdict
//! and the same value on texts made to sit near the grammar's edges.

use std::path::Path;

use proptest::prelude::*;
use rpc_runtime::Backoff;

/// What the schema compiler makes of `text`: the `Backoff` expression it
/// emits (whitespace removed), or `None` when it refuses the text.
fn codegen_reads(text: &str) -> Option<String> {
    let schema = format!(
        "service S {{\n    #[attempts = 2]\n    #[backoff = {text:?}]\n    fn run();\n}}\n"
    );
    let files = rpc_codegen::Builder::new()
        .source("test.rpc", schema)
        .generate()
        .ok()?;
    let code: String = files[0].code.split_whitespace().collect();
    let start = code.find("backoff:Some(")? + "backoff:Some(".len();
    let end = start + code[start..].find(")")?;
    Some(code[start..end].replace(",}", "}"))
}

/// The expression codegen should emit for `backoff`, in the same shape.
fn expression(backoff: Backoff) -> String {
    match backoff {
        Backoff::None => "::rpc_runtime::Backoff::None".into(),
        Backoff::Fixed { delay_ms } => {
            format!("::rpc_runtime::Backoff::Fixed{{delay_ms:{delay_ms}}}")
        }
        Backoff::Exponential { base_ms, max_ms } => {
            format!("::rpc_runtime::Backoff::Exponential{{base_ms:{base_ms},max_ms:{max_ms}}}")
        }
    }
}

fn assert_same_reading(text: &str) {
    let runtime = text.parse::<Backoff>().ok().map(expression);
    assert_eq!(
        codegen_reads(text),
        runtime,
        "the parsers disagree on {text:?}"
    );
}

/// The example tables (`ACCEPTED` and `REFUSED`) of a parser's unit tests.
fn example_tables(path: &str) -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let text = std::fs::read_to_string(&file).expect("the parser's source");
    let start = text.find("const ACCEPTED").expect("an ACCEPTED table");
    let end = start
        + text[start..]
            .find("\n    ];\n\n")
            .expect("the end of ACCEPTED");
    let end = end
        + 1
        + text[end + 1..]
            .find("\n    ];\n")
            .expect("the end of REFUSED");
    text[start..end].to_owned()
}

#[test]
fn both_parsers_are_tested_on_the_same_examples() {
    // Change an example in one parser's tests, change it in the other's.
    assert_eq!(
        example_tables("src/model/backoff.rs"),
        example_tables("../rpc-runtime/src/backoff.rs"),
    );
}

#[test]
fn both_parsers_read_the_documented_forms_alike() {
    for text in [
        "none",
        "fixed(500ms)",
        "exponential(100ms, 30s)",
        " exponential ( 1s ,1s ) ",
        "fixed(24h)",
        "fixed(25h)",
        "fixed(0s)",
        "exponential(30s, 100ms)",
        "fixed(1s",
        "",
    ] {
        assert_same_reading(text);
    }
}

/// Numbers at the edges: zero, one, and both sides of the 24 h cap in
/// every unit, and of u64.
const EDGES: [u64; 11] = [
    0,
    1,
    24,
    25,
    1_440,
    1_441,
    86_400,
    86_401,
    86_400_000,
    86_400_001,
    u64::MAX,
];

/// Units right and wrong.
const UNITS: [&str; 8] = ["ms", "s", "m", "h", "", "d", " s", "MS"];

#[test]
fn both_parsers_agree_at_the_edges() {
    for n in EDGES {
        for unit in UNITS {
            let d = format!("{n}{unit}");
            assert_same_reading(&format!("fixed({d})"));
            assert_same_reading(&format!("exponential(1ms, {d})"));
            assert_same_reading(&format!("exponential({d}, 24h)"));
        }
    }
}

/// A duration as written, right or wrong.
fn duration_text() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        prop::sample::select(EDGES.to_vec()),
        1..100u64,
        any::<u64>()
    ];
    (number, prop::sample::select(UNITS.to_vec())).prop_map(|(n, unit)| format!("{n}{unit}"))
}

/// Texts close to the grammar: known and unknown names, zero to three
/// arguments, with or without parentheses, spaces or tabs around tokens.
fn near_policy() -> impl Strategy<Value = String> {
    let name = prop::sample::select(vec!["none", "fixed", "exponential", "linear", "Fixed", ""]);
    let args = prop::option::of(prop::collection::vec(duration_text(), 0..4));
    let space = prop::sample::select(vec!["", " ", "\t", "  "]);
    (name, args, space).prop_map(|(name, args, ws)| match args {
        None => format!("{ws}{name}{ws}"),
        Some(args) => format!(
            "{ws}{name}{ws}({ws}{}{ws}){ws}",
            args.join(&format!("{ws},{ws}"))
        ),
    })
}

proptest! {
    #[test]
    fn both_parsers_agree_near_the_grammar(text in near_policy()) {
        assert_same_reading(&text);
    }

    #[test]
    fn both_parsers_agree_on_anything(text in "\\PC{0,30}") {
        assert_same_reading(&text);
    }
}
