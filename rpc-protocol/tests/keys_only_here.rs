//! Every Redis key is built by `rpc_protocol::keys` and nowhere else: no
//! source file of another crate spells a key fragment in its code. A key
//! written by hand elsewhere is one the next change of the key layout
//! (a second language, a Cluster spread, a rate limit) would miss.
//!
//! Tests may spell keys (they check the layout from outside, as another
//! implementation would); comments may name them.

use std::fs;
use std::path::{Path, PathBuf};

/// What only a key contains.
const FRAGMENTS: &[&str] = &[
    ":jobs",
    ":inbox:",
    ":dead",
    ":schedule",
    ":scheduled",
    ":cancelled",
    ":paused",
    ":once:",
    ":intake",
    ":moving",
    ":result:",
    ":periodic",
    ":stat:",
    ":workers",
    ":failures",
    ":worker:",
    ":progress:",
    ":rate",
    ":turns",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds rpc-protocol")
        .to_path_buf()
}

/// Every `.rs` file under a `src` directory of a crate other than this one.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if matches!(
                name.as_ref(),
                "target" | "tests" | "rpc-protocol" | ".git" | "node_modules"
            ) {
                continue;
            }
            sources(&path, out);
        } else if name.ends_with(".rs") && path.components().any(|c| c.as_os_str() == "src") {
            out.push(path);
        }
    }
}

/// The string literals of a line's code (a `//` comment left out).
fn literals(line: &str) -> Vec<&str> {
    let bytes = line.as_bytes();
    let mut found = Vec::new();
    let mut open = None;
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], open) {
            (b'\\', Some(_)) => i += 1,
            (b'"', Some(from)) => {
                found.push(&line[from..i]);
                open = None;
            }
            // A `'"'` character is not a string.
            (b'\'', None) if line[i..].starts_with("'\"'") => i += 2,
            (b'"', None) => open = Some(i + 1),
            (b'/', None) if bytes.get(i + 1) == Some(&b'/') => break,
            _ => {}
        }
        i += 1;
    }
    found
}

/// The lines of `text` whose string literals spell a key fragment,
/// outside unit test modules (`#[cfg(test)]` to the end of the file).
fn offending(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let spelled = literals(line)
            .iter()
            .any(|literal| FRAGMENTS.iter().any(|f| literal.contains(f)));
        if spelled {
            found.push((n + 1, line.trim().to_owned()));
        }
    }
    found
}

#[test]
fn no_source_outside_rpc_protocol_spells_a_key() {
    let mut files = Vec::new();
    sources(&workspace(), &mut files);
    assert!(
        files.len() > 100,
        "the walk found the workspace's sources ({} files)",
        files.len()
    );
    let mut found = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).expect("read a source file");
        for (line, code) in offending(&text) {
            found.push(format!("{}:{line}: {code}", file.display()));
        }
    }
    assert!(
        found.is_empty(),
        "keys spelled outside rpc_protocol::keys:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_sees_a_key_in_code_and_not_in_a_comment() {
    assert_eq!(offending("let k = format!(\"{p}:{{{s}}}:jobs\");").len(), 1);
    assert_eq!(offending("let k = keys.jobs(s); // P:{S}:jobs").len(), 0);
    assert_eq!(offending("//! `P:{S}:once:<key>`").len(), 0);
    assert_eq!(offending("let url = \"http://x//y:dead\";").len(), 1);
    assert_eq!(
        offending("use crate::backend::schedule::Schedule;").len(),
        0
    );
    assert_eq!(offending("if c == b'\"' { x(\":jobs\") }").len(), 1);
    assert_eq!(offending("let s = \"a \\\" b\"; // \":jobs\"").len(), 0);
    assert_eq!(
        offending("fn f() {}\n#[cfg(test)]\nmod tests { const K: &str = \"rpc:{S}:jobs\"; }").len(),
        0
    );
}
