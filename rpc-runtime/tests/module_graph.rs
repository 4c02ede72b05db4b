//! The runtime's modules form layers without circles: no module imports
//! another that imports it back, directly or through others, and no module
//! imports one of a higher layer (the map at the top of `src/lib.rs`).
//!
//! The sources are parsed (`syn`), every `use` and every `crate::` /
//! `super::` / `self::` path is resolved to the module that *defines* what
//! it names (following re-exports, so `use crate::backend::Broker` counts
//! as a use of `backend/broker.rs`, not of `backend/mod.rs`), and the
//! graph of those uses is searched for strongly connected components.
//! Test code (`#[cfg(test)]`) is left out: a test may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use syn::visit::Visit;

/// The layers, lowest first: a module may import from its own layer and
/// those below. Each entry is a module path prefix; the longest match
/// places a module.
const LAYERS: &[&[&str]] = &[
    &[
        "crate::sync",
        "crate::bytes",
        "crate::error",
        "crate::telemetry::propagation",
    ],
    &["crate::call", "crate::context", "crate::periodic"],
    &["crate::backend"],
    &[
        "crate::clock",
        "crate::inspect",
        "crate::service",
        "crate::middleware",
        "crate::job_schemas",
    ],
    &["crate::client", "crate::telemetry"],
    &["crate::worker"],
    &["crate"],
];

/// One module's source: what it defines, declares and imports.
#[derive(Default, Debug)]
struct Module {
    /// Child modules declared with `mod x;` (or inline, not test-only).
    children: BTreeSet<String>,
    /// Names of items defined here.
    items: BTreeSet<String>,
    /// Names brought in by `use`, with the path they name.
    imports: BTreeMap<String, Vec<String>>,
    /// Glob imports (`use path::*`).
    globs: Vec<Vec<String>>,
    /// Every path that may name something of this crate.
    paths: Vec<Vec<String>>,
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.meta
                .require_list()
                .is_ok_and(|l| l.tokens.to_string().trim() == "test")
    })
}

fn flatten(tree: &syn::UseTree, prefix: &mut Vec<String>, module: &mut Module) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            flatten(&p.tree, prefix, module);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let name = n.ident.to_string();
            let mut path = prefix.clone();
            if name != "self" {
                path.push(name.clone());
            }
            let key = if name == "self" {
                prefix.last().cloned().unwrap_or_default()
            } else {
                name
            };
            module.paths.push(path.clone());
            module.imports.insert(key, path);
        }
        syn::UseTree::Rename(r) => {
            let mut path = prefix.clone();
            if r.ident != "self" {
                path.push(r.ident.to_string());
            }
            module.paths.push(path.clone());
            module.imports.insert(r.rename.to_string(), path);
        }
        syn::UseTree::Glob(_) => {
            module.paths.push(prefix.clone());
            module.globs.push(prefix.clone());
        }
        syn::UseTree::Group(g) => {
            for t in &g.items {
                flatten(t, prefix, module);
            }
        }
    }
}

/// Collects the paths in code (outside `use`) that start at this crate.
struct Paths<'a>(&'a mut Vec<Vec<String>>);

impl<'ast> Visit<'ast> for Paths<'_> {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if segments
            .first()
            .is_some_and(|s| matches!(s.as_str(), "crate" | "super" | "self"))
        {
            self.0.push(segments);
        }
        syn::visit::visit_path(self, path);
    }

    // `pub(crate)`, `pub(super)`: a visibility names no dependency.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if !is_test_only(&m.attrs) {
            syn::visit::visit_item_mod(self, m);
        }
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if !is_test_only(&f.attrs) {
            syn::visit::visit_item_fn(self, f);
        }
    }
}

fn read_items(items: &[syn::Item], module: &mut Module) {
    for item in items {
        let (attrs, name): (&[syn::Attribute], Option<String>) = match item {
            syn::Item::Struct(i) => (&i.attrs, Some(i.ident.to_string())),
            syn::Item::Enum(i) => (&i.attrs, Some(i.ident.to_string())),
            syn::Item::Fn(i) => (&i.attrs, Some(i.sig.ident.to_string())),
            syn::Item::Trait(i) => (&i.attrs, Some(i.ident.to_string())),
            syn::Item::Type(i) => (&i.attrs, Some(i.ident.to_string())),
            syn::Item::Const(i) => (&i.attrs, Some(i.ident.to_string())),
            syn::Item::Static(i) => (&i.attrs, Some(i.ident.to_string())),
            syn::Item::Union(i) => (&i.attrs, Some(i.ident.to_string())),
            syn::Item::Macro(i) => (&i.attrs, i.ident.as_ref().map(|i| i.to_string())),
            syn::Item::Use(u) => {
                if !is_test_only(&u.attrs) {
                    flatten(&u.tree, &mut Vec::new(), module);
                }
                continue;
            }
            syn::Item::Mod(m) => {
                if is_test_only(&m.attrs) {
                    continue;
                }
                module.children.insert(m.ident.to_string());
                continue;
            }
            _ => continue,
        };
        if !is_test_only(attrs) {
            if let Some(name) = name {
                module.items.insert(name);
            }
        }
    }
    let mut paths = Paths(&mut module.paths);
    for item in items {
        if !matches!(item, syn::Item::Use(_)) {
            paths.visit_item(item);
        }
    }
}

/// The crate's modules from the sources: `lib.rs`, `x.rs`, `x/mod.rs`.
fn parse_crate(files: &BTreeMap<String, String>) -> BTreeMap<String, Module> {
    let mut modules = BTreeMap::new();
    for (file, source) in files {
        let stem = file.trim_end_matches(".rs");
        let stem = stem.strip_suffix("/mod").unwrap_or(stem);
        let name = if stem == "lib" {
            "crate".to_owned()
        } else {
            format!("crate::{}", stem.replace('/', "::"))
        };
        let parsed = syn::parse_file(source).unwrap_or_else(|e| panic!("{file}: {e}"));
        let mut module = Module::default();
        read_items(&parsed.items, &mut module);
        modules.insert(name, module);
    }
    modules
}

fn parent(module: &str) -> String {
    module
        .rsplit_once("::")
        .map_or("crate".to_owned(), |(p, _)| p.to_owned())
}

struct Resolver<'a> {
    modules: &'a BTreeMap<String, Module>,
}

impl Resolver<'_> {
    /// The module that defines what `path` names, seen from `from`; `None`
    /// for another crate's item.
    fn resolve(&self, from: &str, path: &[String], depth: usize) -> Option<String> {
        if depth > 32 || path.is_empty() {
            return None;
        }
        let mut rest = path;
        let mut current = match path[0].as_str() {
            "crate" => {
                rest = &path[1..];
                "crate".to_owned()
            }
            "self" => {
                rest = &path[1..];
                from.to_owned()
            }
            "super" => {
                let mut m = from.to_owned();
                while rest.first().is_some_and(|s| s == "super") {
                    m = parent(&m);
                    rest = &rest[1..];
                }
                m
            }
            first => {
                let module = self.modules.get(from)?;
                if module.children.contains(first) {
                    from.to_owned()
                } else if let Some(target) = module.imports.get(first) {
                    if target.as_slice() == path {
                        return None; // `use tokio;` and the like
                    }
                    let mut full = target.clone();
                    full.extend(path[1..].iter().cloned());
                    return self.resolve(from, &full, depth + 1);
                } else {
                    return None;
                }
            }
        };
        while let Some(segment) = rest.first() {
            let module = self.modules.get(&current)?;
            if module.children.contains(segment) {
                current = format!("{current}::{segment}");
                rest = &rest[1..];
                continue;
            }
            if module.items.contains(segment) {
                return Some(current);
            }
            if let Some(target) = module.imports.get(segment) {
                let mut full = target.clone();
                full.extend(rest[1..].iter().cloned());
                return self.resolve(&current, &full, depth + 1);
            }
            for glob in &module.globs {
                let mut full = glob.clone();
                full.extend(rest.iter().cloned());
                if let Some(found) = self.resolve(&current, &full, depth + 1) {
                    return Some(found);
                }
            }
            // An enum variant, an associated item, a macro's output: the
            // module it was looked up in is as far as the path goes.
            return Some(current);
        }
        Some(current)
    }
}

/// Every module's imports, as edges to the modules that define them.
fn edges(modules: &BTreeMap<String, Module>) -> BTreeMap<String, BTreeSet<String>> {
    let resolver = Resolver { modules };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, module) in modules {
        let targets = edges.entry(name.clone()).or_default();
        for path in &module.paths {
            if let Some(target) = resolver.resolve(name, path, 0) {
                if &target != name {
                    targets.insert(target);
                }
            }
        }
    }
    edges
}

/// The strongly connected components with more than one module.
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.edges.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.found
}

fn layer(module: &str) -> usize {
    let mut best = (0, usize::MAX);
    for (i, prefixes) in LAYERS.iter().enumerate() {
        for prefix in *prefixes {
            let matches = module == *prefix || module.starts_with(&format!("{prefix}::"));
            if matches && prefix.len() > best.0 {
                best = (prefix.len(), i);
            }
        }
    }
    best.1
}

/// Imports that reach up a layer, as `from -> to`.
fn upward(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut found = Vec::new();
    for (from, targets) in edges {
        for to in targets {
            if layer(to) > layer(from) {
                found.push(format!("{from} -> {to}"));
            }
        }
    }
    found
}

fn sources(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let name = path.strip_prefix(root).expect("under src");
            let name = name.to_string_lossy().replace('\\', "/");
            out.insert(name, std::fs::read_to_string(&path).expect("read"));
        }
    }
}

#[test]
fn the_runtime_has_no_circles_and_no_upward_imports() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    sources(&root, &root, &mut files);
    let modules = parse_crate(&files);
    assert!(modules.len() > 60, "found only {} modules", modules.len());
    let edges = edges(&modules);
    let unplaced: Vec<&String> = modules.keys().filter(|m| layer(m) == usize::MAX).collect();
    assert!(unplaced.is_empty(), "modules in no layer: {unplaced:?}");
    if std::env::var_os("MODULE_GRAPH").is_some() {
        for (from, targets) in &edges {
            for to in targets {
                println!("{from} -> {to}");
            }
        }
    }
    assert_eq!(
        circles(&edges),
        Vec::<Vec<String>>::new(),
        "modules in a circle"
    );
    assert_eq!(
        upward(&edges),
        Vec::<String>::new(),
        "imports from a higher layer"
    );
}

#[test]
fn the_check_sees_a_circle_through_a_reexport_and_an_upward_import() {
    let files: BTreeMap<String, String> = [
        ("lib.rs", "mod backend; mod worker; mod sync;"),
        ("backend/mod.rs", "mod queue; pub use queue::Queue;"),
        (
            "backend/queue.rs",
            "use crate::worker::Job; pub struct Queue;",
        ),
        ("worker.rs", "use crate::backend::Queue; pub struct Job;"),
        ("sync.rs", "pub fn lock() { let _ = crate::worker::Job; }"),
    ]
    .into_iter()
    .map(|(f, s)| (f.to_owned(), s.to_owned()))
    .collect();
    let edges = edges(&parse_crate(&files));
    assert_eq!(
        circles(&edges),
        [vec![
            "crate::backend::queue".to_owned(),
            "crate::worker".to_owned()
        ]]
    );
    assert!(upward(&edges).contains(&"crate::sync -> crate::worker".to_owned()));
    assert!(upward(&edges).contains(&"crate::backend::queue -> crate::worker".to_owned()));
}
