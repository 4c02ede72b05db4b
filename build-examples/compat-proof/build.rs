//! Generates a module for each schema of every v1/v2 pair in
//! `rpc-codegen/tests/data/breaking/` (`<pair>_v1.rpc`, `<pair>_v2.rpc`).

fn main() {
    let dir = std::path::Path::new("../../rpc-codegen/tests/data/breaking");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "rpc"))
            .collect(),
        Err(err) => {
            eprintln!("cannot read {}: {err}", dir.display());
            std::process::exit(1);
        }
    };
    files.sort();
    for file in files {
        rpc_codegen::Builder::new().file(file).compile_or_exit();
    }
}
