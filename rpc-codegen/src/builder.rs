//! The build.rs API: schema files in, `$OUT_DIR/<module>.rs` out.
//!
//! [`Builder`] runs the whole pipeline (load -> parse -> model -> emit) and is
//! also what the CLI and the tests drive, so there is exactly one way in.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::compat::CompatReport;
use crate::diagnostic::{Diagnostic, Diagnostics, Sink};
use crate::git::GitRev;
use crate::load::{self, Input};
use crate::model::{self, Schema};
use crate::source::SourceMap;

/// Compiles schema files into Rust modules.
///
/// In `build.rs`'s `main`:
///
/// ```no_run
/// rpc_codegen::Builder::new()
///     .file("../../schema/calculator.rpc")
///     .compile_or_exit();
/// ```
///
/// Then, in the crate: `rpc_runtime::include_schema!("calculator");`.
#[derive(Debug, Clone)]
pub struct Builder {
    inputs: Vec<Input>,
    out_dir: Option<PathBuf>,
    rerun_if_changed: bool,
    git: Option<GitRev>,
}

/// One generated Rust file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    /// `<module>.rs`.
    pub file_name: String,
    /// The module's name (what `include_schema!` takes).
    pub module: String,
    /// The formatted source.
    pub code: String,
    /// `true` for files that were asked for, `false` for ones only imported.
    pub requested: bool,
}

/// A checked schema, ready to emit. Holds everything later steps need.
pub(crate) struct Compiled {
    pub(crate) schema: Schema,
    pub(crate) sources: Arc<SourceMap>,
    pub(crate) read_from_disk: Vec<PathBuf>,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// A builder with no files, writing to `$OUT_DIR`.
    pub fn new() -> Self {
        Builder {
            inputs: Vec::new(),
            out_dir: None,
            rerun_if_changed: true,
            git: None,
        }
    }

    /// Adds a schema file. A relative path is relative to the current
    /// directory, which in a build script is the package root.
    pub fn file(mut self, path: impl AsRef<Path>) -> Self {
        self.inputs.push(Input::Path(path.as_ref().to_path_buf()));
        self
    }

    /// Adds several schema files.
    pub fn files<P: AsRef<Path>>(mut self, paths: impl IntoIterator<Item = P>) -> Self {
        for path in paths {
            self = self.file(path);
        }
        self
    }

    /// Adds a schema given as text, as if it were the file at `path` (its
    /// imports are looked up relative to `path`, in memory first, then on
    /// disk). Meant for tests and tools.
    pub fn source(mut self, path: impl AsRef<Path>, text: impl Into<String>) -> Self {
        self.inputs.push(Input::Text {
            path: path.as_ref().to_path_buf(),
            text: text.into(),
        });
        self
    }

    /// Writes into `dir` instead of `$OUT_DIR`.
    pub fn out_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.out_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Whether [`compile`](Self::compile) prints `cargo:rerun-if-changed=`
    /// lines for every schema and imported file (default: yes).
    pub fn rerun_if_changed(mut self, enabled: bool) -> Self {
        self.rerun_if_changed = enabled;
        self
    }

    /// Parses and validates, and reports problems without generating code.
    pub fn check(&self) -> Result<(), Diagnostics> {
        self.compiled().map(|_| ())
    }

    /// Generates the code of every requested file and every file they import.
    pub fn generate(&self) -> Result<Vec<GeneratedFile>, Diagnostics> {
        let compiled = self.compiled()?;
        generate(&compiled)
    }

    /// The JSON Schemas of every job of the requested files, in the shape of
    /// the generated `json_schemas()` (a list of
    /// `{service, job, request, response, error}`), computed from the schema
    /// without compiling any Rust.
    pub fn json_schema(&self) -> Result<serde_json::Value, Diagnostics> {
        let compiled = self.compiled()?;
        Ok(crate::json_schema::jobs(&compiled.schema))
    }

    /// Generates and writes `<module>.rs` files into the output directory,
    /// printing `cargo:rerun-if-changed` lines. Files whose content did not
    /// change are not rewritten, so dependents are not rebuilt for nothing.
    pub fn compile(&self) -> Result<(), Diagnostics> {
        let result = self.compiled();
        if self.rerun_if_changed {
            // Every file read (schemas and their imports) on success; on
            // failure at least the requested files (cargo reruns a failed
            // build script anyway).
            let paths: Vec<&Path> = match &result {
                Ok(compiled) => compiled
                    .read_from_disk
                    .iter()
                    .map(PathBuf::as_path)
                    .collect(),
                Err(_) => self
                    .inputs
                    .iter()
                    .filter_map(|input| match input {
                        Input::Path(path) => Some(path.as_path()),
                        Input::Text { .. } => None,
                    })
                    .collect(),
            };
            for path in paths {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
        let compiled = result?;
        let out_dir = match self
            .out_dir
            .clone()
            .or_else(|| std::env::var_os("OUT_DIR").map(PathBuf::from))
        {
            Some(dir) => dir,
            None => {
                return Err(bare(
                    "OUT_DIR is not set: run from a build script, or call `.out_dir(..)`",
                ))
            }
        };
        let files = generate(&compiled)?;
        if let Err(err) = std::fs::create_dir_all(&out_dir) {
            return Err(bare(format!(
                "cannot create the output directory `{}`: {err}",
                out_dir.display()
            )));
        }
        for file in files {
            let path = out_dir.join(&file.file_name);
            if std::fs::read_to_string(&path).ok().as_deref() == Some(file.code.as_str()) {
                continue;
            }
            if let Err(err) = std::fs::write(&path, &file.code) {
                return Err(bare(format!("cannot write `{}`: {err}", path.display())));
            }
        }
        Ok(())
    }

    /// [`compile`](Self::compile), and on failure print the diagnostics and
    /// exit with status 1: the way a build script should fail (no panic, no
    /// backtrace).
    pub fn compile_or_exit(&self) {
        if let Err(diagnostics) = self.compile() {
            eprintln!("{diagnostics}");
            std::process::exit(1);
        }
    }

    /// The AsyncAPI 3.0 document of the requested files' services: their
    /// jobs streams and the reply inboxes, every job's message and reply
    /// with JSON Schema payloads, a `send` and a `receive` operation per job.
    /// `api_version` becomes `info.version`.
    pub fn asyncapi(&self, api_version: &str) -> Result<serde_json::Value, Diagnostics> {
        let compiled = self.compiled()?;
        Ok(crate::asyncapi::document(&compiled.schema, api_version))
    }

    /// Reads the files (and their imports) as they are at git revision
    /// `rev` (`HEAD`, a branch, a tag, a commit) instead of from the disk.
    /// Messages name them `rev:path`. Paths are still given as on disk.
    pub fn at_git_revision(mut self, rev: impl Into<String>) -> Self {
        self.git = Some(GitRev::new(rev));
        self
    }

    /// Every change from this (old) schema to `new` that breaks wire
    /// compatibility between their clients and workers, and the changes
    /// that deserve a warning. See the crate README for the rules.
    ///
    /// ```
    /// let old = rpc_codegen::Builder::new()
    ///     .source("v1.rpc", "service S { fn add(a: i64, b: i64) -> i64; }");
    /// let new = rpc_codegen::Builder::new()
    ///     .source("v2.rpc", "service S { fn add(a: i64, b: i64, c: i64) -> i64; }");
    /// let report = old.breaking_changes(&new).expect("both schemas are valid");
    /// assert!(report.is_breaking());
    /// assert!(report.render().contains("new required parameter `c`"));
    /// ```
    pub fn breaking_changes(&self, new: &Builder) -> Result<CompatReport, Diagnostics> {
        let mut sources = SourceMap::default();
        let mut sink = Sink::default();
        let old_schema = self.compile_into(&mut sources, &mut sink);
        let new_schema = new.compile_into(&mut sources, &mut sink);
        let sources = Arc::new(sources);
        match (old_schema, new_schema) {
            (Some((_, old)), Some((_, new))) if !sink.has_errors() => {
                Ok(CompatReport::compare(&old, &new, sources))
            }
            _ => Err(Diagnostics::new(sink.items, sources)),
        }
    }

    pub(crate) fn compiled(&self) -> Result<Compiled, Diagnostics> {
        let mut sources = SourceMap::default();
        let mut sink = Sink::default();
        let compiled = self.compile_into(&mut sources, &mut sink);
        let sources = Arc::new(sources);
        match compiled {
            Some((loaded, schema)) if !sink.has_errors() => Ok(Compiled {
                schema,
                sources,
                read_from_disk: loaded.read_from_disk,
            }),
            _ => Err(Diagnostics::new(sink.items, sources)),
        }
    }

    /// Loads and validates the inputs, adding their files to `sources` (which
    /// may already hold another schema's) and their problems to `sink`.
    fn compile_into(
        &self,
        sources: &mut SourceMap,
        sink: &mut Sink,
    ) -> Option<(load::Loaded, Schema)> {
        if self.inputs.is_empty() {
            sink.push(Diagnostic::bare(
                "no schema files given: add one with `.file(\"path/to/schema.rpc\")`",
            ));
        }
        let loaded = load::load(self.inputs.clone(), self.git.as_ref(), sources, sink)?;
        let schema = model::build(&loaded, sources, sink)?;
        Some((loaded, schema))
    }
}

fn bare(message: impl Into<String>) -> Diagnostics {
    Diagnostics::new(
        vec![Diagnostic::bare(message)],
        Arc::new(SourceMap::default()),
    )
}

fn generate(compiled: &Compiled) -> Result<Vec<GeneratedFile>, Diagnostics> {
    let schema = &compiled.schema;
    let mut files = Vec::new();
    for (index, module) in schema.modules.iter().enumerate() {
        let id = model::ModuleId(index);
        let code = crate::emit::module_file(schema, &compiled.sources, id).map_err(bare)?;
        files.push(GeneratedFile {
            file_name: format!("{}.rs", module.out_stem),
            module: module.out_stem.clone(),
            code,
            requested: schema.roots.contains(&id),
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imported_files_are_build_dependencies() {
        let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema");
        let compiled = Builder::new()
            .file(schema.join("everything.rpc"))
            .compiled()
            .unwrap_or_else(|d| panic!("{d}"));
        let found: Vec<PathBuf> = compiled
            .read_from_disk
            .iter()
            .map(|p| std::fs::canonicalize(p).expect("exists"))
            .collect();
        let expected: Vec<PathBuf> = ["everything.rpc", "common.rpc"]
            .iter()
            .map(|f| std::fs::canonicalize(schema.join(f)).expect("exists"))
            .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn in_memory_sources_are_not_build_dependencies() {
        let compiled = Builder::new()
            .source("memory.rpc", "struct A {}")
            .compiled()
            .unwrap_or_else(|d| panic!("{d}"));
        assert!(compiled.read_from_disk.is_empty());
    }

    #[test]
    fn compile_writes_only_changed_files() {
        let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tmp/builder-test");
        let _ = std::fs::remove_dir_all(&out);
        let builder = Builder::new()
            .source("memory.rpc", "struct A {}")
            .out_dir(&out)
            .rerun_if_changed(false);
        builder.compile().unwrap_or_else(|d| panic!("{d}"));
        let path = out.join("memory.rs");
        let first = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        builder.compile().unwrap_or_else(|d| panic!("{d}"));
        let second = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        assert!(first.is_some());
        assert_eq!(first, second);
    }
}
