//! Generates the Reports module from `tenants.rpc`.
fn main() {
    rpc_codegen::Builder::new()
        .file("tenants.rpc")
        .compile_or_exit();
}
