//! The schema the README shows under "The schema" is `schema/calculator.rpc`
//! as it is, so the first thing a reader sees cannot drift from the file
//! the example builds.

#[test]
fn the_readme_shows_the_calculator_schema_as_it_is() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README.md");
    let schema =
        std::fs::read_to_string(format!("{root}/schema/calculator.rpc")).expect("calculator.rpc");
    let section = &readme[readme.find("\n## The schema\n").expect("a schema section")..];
    let start = section.find("```rust\n").expect("a rust block") + "```rust\n".len();
    let block = &section[start..];
    let block = &block[..block.find("```\n").expect("the block ends")];
    assert_eq!(
        block, schema,
        "README's schema block differs from schema/calculator.rpc"
    );
}
