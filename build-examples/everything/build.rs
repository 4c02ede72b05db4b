//! Generates `everything` (and the `common` module it imports).
fn main() {
    rpc_codegen::Builder::new()
        .file("../../schema/everything.rpc")
        .compile_or_exit();
}
