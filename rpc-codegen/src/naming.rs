//! How schema names become Rust names.
//!
//! A schema may name things however it likes on the wire (`labelText`,
//! `type`, `foo_bar` for a struct); the generated Rust must still be warning
//! free. So types, services and variants become UpperCamelCase, fields,
//! parameters and jobs become snake_case, and Rust keywords are escaped with
//! `r#` (or, for the few that cannot be raw, suffixed with `_`). The wire keeps
//! the schema's spelling; the model adds `serde(rename)` where the two differ.
//! Names already in the right case are kept exactly as written.

use proc_macro2::{Ident, Span};
use syn::ext::IdentExt;

/// A valid Rust identifier, possibly raw (`r#type`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RustName(String);

impl RustName {
    /// The identifier as source text (`r#type` for a raw one).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name without any `r#`, as serde sees it.
    pub fn unraw(&self) -> &str {
        self.0.strip_prefix("r#").unwrap_or(&self.0)
    }

    /// The identifier token. Only names built by [`type_name`] and
    /// [`value_name`] exist, and those were checked to be valid.
    pub fn ident(&self) -> Ident {
        match self.0.strip_prefix("r#") {
            Some(raw) => Ident::new_raw(raw, Span::call_site()),
            None => Ident::new(&self.0, Span::call_site()),
        }
    }

    /// A unique stand-in for a name that could not be made; only ever used
    /// after an error was reported, so never emitted.
    pub(crate) fn placeholder(prefix: &str, n: usize) -> RustName {
        let prefix: String = prefix
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        RustName(format!("__rpc_{prefix}_{n}"))
    }

    /// A name with a prefix or suffix added (`send_` + `add`), re-escaped.
    pub fn derived(text: &str) -> Option<RustName> {
        escape(text.to_string())
    }
}

impl std::fmt::Display for RustName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

const KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

/// Keywords that cannot be raw identifiers.
const NOT_RAW: &[&str] = &["self", "Self", "super", "crate"];

/// Whether `s` is a Rust keyword (strict or reserved).
pub fn is_keyword(s: &str) -> bool {
    KEYWORDS.contains(&s)
}

/// The Rust type-like name (UpperCamelCase) for a schema name, or `None` when
/// none can be made (a name of only underscores and digits).
pub fn type_name(schema: &str) -> Option<RustName> {
    escape(upper_camel(schema))
}

/// The Rust value-like name (snake_case) for a schema name.
pub fn value_name(schema: &str) -> Option<RustName> {
    escape(snake_case(schema))
}

fn escape(text: String) -> Option<RustName> {
    if text.is_empty() || text == "_" {
        return None;
    }
    let text = if NOT_RAW.contains(&text.as_str()) {
        format!("{text}_")
    } else if is_keyword(&text) {
        format!("r#{text}")
    } else {
        text
    };
    // Plain ASCII names are checked here; anything else goes to the real
    // lexer, so `ident()` can never panic.
    let ascii_ok = text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && text
            .strip_prefix("r#")
            .unwrap_or(&text)
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ascii_ok {
        return Some(RustName(text));
    }
    let parsed = syn::parse::Parser::parse_str(Ident::parse_any, &text).ok()?;
    (parsed == text).then_some(RustName(text))
}

/// Splits a name into words at underscores, lower-to-upper changes and the end
/// of an acronym (`HTTPServer` -> `HTTP`, `Server`).
fn words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    for part in s.split('_').filter(|p| !p.is_empty()) {
        let chars: Vec<char> = part.chars().collect();
        let mut word = String::new();
        for (i, &c) in chars.iter().enumerate() {
            if i > 0 && c.is_uppercase() {
                let prev = chars[i - 1];
                let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
                if !prev.is_uppercase() || next_lower {
                    words.push(std::mem::take(&mut word));
                }
            }
            word.push(c);
        }
        if !word.is_empty() {
            words.push(word);
        }
    }
    words
}

/// `foo_bar` -> `FooBar`; `FooBar` and `HTTPServer` are kept as they are.
pub fn upper_camel(s: &str) -> String {
    let already = s.chars().next().is_some_and(|c| c.is_uppercase()) && !s.contains('_');
    if already {
        return s.to_string();
    }
    words(s)
        .iter()
        .map(|w| {
            let mut chars = w.chars();
            match chars.next() {
                Some(first) => first
                    .to_uppercase()
                    .chain(chars.flat_map(char::to_lowercase))
                    .collect(),
                None => String::new(),
            }
        })
        .collect()
}

/// `fooBar` -> `foo_bar`; `foo_bar` and `_private` are kept as they are.
pub fn snake_case(s: &str) -> String {
    if !s.chars().any(char::is_uppercase) {
        return s.to_string();
    }
    let leading = s.len() - s.trim_start_matches('_').len();
    let body = words(s)
        .iter()
        .map(|w| w.to_lowercase())
        .collect::<Vec<_>>()
        .join("_");
    format!("{}{}", "_".repeat(leading), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel() {
        assert_eq!(upper_camel("foo_bar"), "FooBar");
        assert_eq!(upper_camel("FooBar"), "FooBar");
        assert_eq!(upper_camel("HTTPServer"), "HTTPServer");
        assert_eq!(upper_camel("fooBar"), "FooBar");
        assert_eq!(upper_camel("add"), "Add");
        assert_eq!(upper_camel("get_HTTP_status"), "GetHttpStatus");
    }

    #[test]
    fn snake() {
        assert_eq!(snake_case("fooBar"), "foo_bar");
        assert_eq!(snake_case("foo_bar"), "foo_bar");
        assert_eq!(snake_case("HTTPServer"), "http_server");
        assert_eq!(snake_case("_Private"), "_private");
        assert_eq!(snake_case("Value2"), "value2");
    }

    #[test]
    fn escaping() {
        assert_eq!(value_name("type").map(|n| n.0), Some("r#type".into()));
        assert_eq!(value_name("self").map(|n| n.0), Some("self_".into()));
        assert_eq!(type_name("self").map(|n| n.0), Some("Self_".into()));
        assert_eq!(type_name("__"), None);
        assert_eq!(type_name("_1"), None);
        assert_eq!(value_name("_").map(|n| n.0), None);
    }
}
