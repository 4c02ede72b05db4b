//! Generates the Calculator module from `schema/calculator.rpc`.
fn main() {
    rpc_codegen::Builder::new()
        .file("../../schema/calculator.rpc")
        .compile_or_exit();
}
