//! Finding, reading and parsing schema files, following `import`s.
//!
//! An import path is relative to the file that contains it. Each file is read
//! and parsed once however many files import it; files are identified by
//! canonical path. The result lists files so that every file comes after the
//! files it imports, which is the order the model lowers them in. Import
//! cycles, missing files and two files that would generate the same module are
//! reported here, at the `import` that causes them.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use crate::diagnostic::{Diagnostic, Sink};
use crate::git::GitRev;
use crate::naming;
use crate::parse;
use crate::source::{FileId, SourceMap, Span};

/// One parsed file and the files it imports.
pub struct LoadedFile {
    pub id: FileId,
    pub ast: parse::File,
    /// Indexes into [`Loaded::files`] of the direct imports.
    pub imports: Vec<usize>,
    /// The Rust module name (snake_case file stem).
    pub module: naming::RustName,
    /// File name stem used for the output `<stem>.rs`.
    pub out_stem: String,
}

/// Every file of one compilation, dependencies first.
pub struct Loaded {
    pub files: Vec<LoadedFile>,
    /// Indexes into `files` of the files asked for.
    pub roots: Vec<usize>,
    /// Files read from disk, for `cargo:rerun-if-changed`.
    pub read_from_disk: Vec<PathBuf>,
}

/// Where a file to load comes from.
#[derive(Clone, Debug)]
pub enum Input {
    Path(PathBuf),
    /// In-memory text with the path it pretends to live at.
    Text {
        path: PathBuf,
        text: String,
    },
}

enum State {
    Loading,
    Done(usize),
    Failed,
}

struct Loader<'a> {
    sources: &'a mut SourceMap,
    /// Read files at this revision instead of from the file system.
    git: Option<&'a GitRev>,
    sink: &'a mut Sink,
    memory: HashMap<PathBuf, String>,
    state: HashMap<PathBuf, State>,
    /// Canonical paths of the files currently being loaded, outermost first.
    chain: Vec<(PathBuf, PathBuf)>,
    files: Vec<LoadedFile>,
    modules: HashMap<String, (PathBuf, Option<Span>)>,
    read_from_disk: Vec<PathBuf>,
}

/// Loads every input and everything it imports (from the file system, or at
/// a git revision). Returns `None` when any diagnostic was reported.
pub fn load(
    inputs: Vec<Input>,
    git: Option<&GitRev>,
    sources: &mut SourceMap,
    sink: &mut Sink,
) -> Option<Loaded> {
    let mut memory = HashMap::new();
    let mut roots_to_load = Vec::new();
    for input in inputs {
        match input {
            Input::Path(path) => roots_to_load.push(path),
            Input::Text { path, text } => {
                memory.insert(absolute(&path), text);
                roots_to_load.push(path);
            }
        }
    }
    let mut loader = Loader {
        sources,
        git,
        sink,
        memory,
        state: HashMap::new(),
        chain: Vec::new(),
        files: Vec::new(),
        modules: HashMap::new(),
        read_from_disk: Vec::new(),
    };
    let mut roots = Vec::new();
    for path in roots_to_load {
        if let Some(index) = loader.load(&path, None) {
            if !roots.contains(&index) {
                roots.push(index);
            }
        }
    }
    if loader.sink.has_errors() {
        return None;
    }
    Some(Loaded {
        files: loader.files,
        roots,
        read_from_disk: loader.read_from_disk,
    })
}

/// `path` made absolute against the current directory and cleaned of `.`/`..`.
fn absolute(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    normalize(&joined)
}

/// Removes `.` and resolves `..` lexically.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            // `..` cancels a preceding normal component; at the start of a
            // relative path (or after other `..`s) it must stay.
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) => {}
                _ => out.push(".."),
            },
            other => out.push(other.as_os_str()),
        }
    }
    out
}

impl Loader<'_> {
    /// Loads `display` (and its imports). `from` is the import statement's span
    /// for errors, `None` for a root file.
    fn load(&mut self, display: &Path, import: Option<(Span, &str)>) -> Option<usize> {
        let from = import.map(|(span, _)| span);
        let lexical = absolute(display);
        let (canonical, text) = if let Some(text) = self.memory.get(&lexical) {
            (lexical.clone(), Ok(text.clone()))
        } else if let Some(git) = self.git {
            (lexical.clone(), git.read(&lexical))
        } else {
            match std::fs::canonicalize(&lexical) {
                Ok(canonical) => {
                    let text = std::fs::read_to_string(&canonical);
                    (canonical, text)
                }
                Err(err) => (lexical.clone(), Err(err)),
            }
        };

        match self.state.get(&canonical) {
            Some(State::Done(index)) => return Some(*index),
            Some(State::Failed) => return None,
            Some(State::Loading) => {
                let start = self
                    .chain
                    .iter()
                    .position(|(c, _)| *c == canonical)
                    .unwrap_or(0);
                let mut names: Vec<String> = self.chain[start..]
                    .iter()
                    .map(|(_, d)| d.display().to_string())
                    .collect();
                names.push(display.display().to_string());
                let message = format!("import cycle: {}", names.join(" -> "));
                let diagnostic = match from {
                    Some(span) => Diagnostic::error(message, span, "this import closes the cycle")
                        .with_help("move the shared types into a file that both can import"),
                    None => Diagnostic::bare(message),
                };
                self.sink.push(diagnostic);
                return None;
            }
            None => {}
        }

        let text = match text {
            Ok(text) => text,
            Err(err) => {
                let diagnostic = match import {
                    Some((span, written)) => Diagnostic::error(
                        format!("cannot read imported file `{written}`"),
                        span,
                        err.to_string(),
                    )
                    .with_note(format!("looked for `{}`", display.display()))
                    .with_help("import paths are relative to the file that contains the import"),
                    None => Diagnostic::bare(format!("cannot read `{}`: {err}", display.display())),
                };
                self.sink.push(diagnostic);
                self.state.insert(canonical, State::Failed);
                return None;
            }
        };
        if !self.memory.contains_key(&lexical) && self.git.is_none() {
            self.read_from_disk.push(display.to_path_buf());
        }

        let stem = display
            .file_stem()
            .map(|s| s.to_string_lossy().replace(['-', '.', ' '], "_"))
            .unwrap_or_default();
        let module = naming::RustName::derived(&naming::snake_case(&stem));
        let shown = match self.git {
            Some(git) => PathBuf::from(git.display(display)),
            None => display.to_path_buf(),
        };
        let id = self.sources.add(shown, text);
        let Some(module) = module else {
            let message = format!(
                "the file name `{}` cannot become a Rust module name",
                display.display()
            );
            let diagnostic = match from {
                Some(span) => Diagnostic::error(message, span, "imported here"),
                None => Diagnostic::bare(message),
            };
            self.sink.push(
                diagnostic.with_help("name schema files like Rust modules: `my_service.rpc`"),
            );
            self.state.insert(canonical, State::Failed);
            return None;
        };
        let out_stem = module.unraw().to_string();
        if let Some((other, other_span)) = self.modules.get(&out_stem) {
            let message = format!(
                "`{}` and `{}` would both generate the module `{out_stem}`",
                other.display(),
                display.display()
            );
            let mut diagnostic = match from {
                Some(span) => Diagnostic::error(message, span, "imported here"),
                None => Diagnostic::bare(message),
            };
            if let Some(other_span) = other_span {
                diagnostic = diagnostic.with_label(*other_span, "the other one is imported here");
            }
            self.sink.push(
                diagnostic.with_help("rename one of the files; modules are named after files"),
            );
            self.state.insert(canonical, State::Failed);
            return None;
        }
        self.modules
            .insert(out_stem.clone(), (display.to_path_buf(), from));

        let text = self.sources.get(id).text.clone();
        let ast = match parse::parse_file(id, &text) {
            Ok(ast) => ast,
            Err(diagnostics) => {
                for d in diagnostics {
                    self.sink.push(d);
                }
                self.state.insert(canonical, State::Failed);
                return None;
            }
        };

        self.state.insert(canonical.clone(), State::Loading);
        self.chain.push((canonical.clone(), display.to_path_buf()));
        let base = display.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut imports = Vec::new();
        let mut seen: Vec<(PathBuf, Span)> = Vec::new();
        let mut failed = false;
        for item in &ast.items {
            let parse::Item::Import(import) = item else {
                continue;
            };
            let span = Span::from_proc_macro(id, import.path.span());
            let target = normalize(&base.join(import.path.value()));
            if let Some((_, first)) = seen.iter().find(|(p, _)| absolute(p) == absolute(&target)) {
                self.sink.push(
                    Diagnostic::error(
                        format!("`{}` is imported more than once", import.path.value()),
                        span,
                        "imported again here",
                    )
                    .with_label(*first, "first imported here"),
                );
                failed = true;
                continue;
            }
            seen.push((target.clone(), span));
            match self.load(&target, Some((span, &import.path.value()))) {
                Some(index) => imports.push(index),
                None => failed = true,
            }
        }
        self.chain.pop();
        if failed {
            self.state.insert(canonical, State::Failed);
            return None;
        }
        self.files.push(LoadedFile {
            id,
            ast,
            imports,
            module,
            out_stem,
        });
        let index = self.files.len() - 1;
        self.state.insert(canonical, State::Done(index));
        Some(index)
    }
}
