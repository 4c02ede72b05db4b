//! `json_schemas()`: the JSON Schema of every job's request, response and
//! error in the module, embedded as the JSON text [`crate::json_schema`]
//! computes from the model: the same documents `rpc-codegen json-schema`
//! prints, the backlog check and the dashboard read, so the compiled service
//! and the tools cannot disagree.
//!
//! The text is pretty-printed inside a raw string literal, so the generated
//! file stays readable and its snapshot shows every schema change.

use proc_macro2::{Literal, TokenStream};
use quote::quote;

use crate::json_schema::module_jobs;
use crate::model::{ModuleId, Schema};

pub(crate) fn json_schemas(schema: &Schema, id: ModuleId) -> TokenStream {
    let jobs = serde_json::Value::Array(module_jobs(schema, id));
    // Serializing a `Value` cannot fail (its map keys are strings).
    let text = serde_json::to_string_pretty(&jobs).unwrap_or_default();
    let literal = raw_string(&text);
    quote! {
        /// JSON Schemas of every job's request, response and error in this module.
        pub fn json_schemas() -> Vec<::rpc_runtime::JobSchema> {
            ::rpc_runtime::__private::job_schemas(#literal)
        }
    }
}

/// `text` as a raw string literal, with as many `#` as it needs to hold any
/// `"#...` inside it (`"$ref": "#"` is common); an escaped string literal if
/// the raw one does not lex (it always does: JSON text has no bare `\r`).
fn raw_string(text: &str) -> Literal {
    let hashes = "#".repeat(longest_hash_run_after_quote(text) + 1);
    format!("r{hashes}\"{text}\"{hashes}")
        .parse()
        .unwrap_or_else(|_| Literal::string(text))
}

/// The longest run of `#` right after a `"` in `text` (0 if none).
fn longest_hash_run_after_quote(text: &str) -> usize {
    text.split('"')
        .skip(1)
        .map(|after| after.bytes().take_while(|&b| b == b'#').count())
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A raw string must end at its own closing delimiter, not at a `"#`
    /// inside the JSON it holds.
    #[test]
    fn raw_strings_hold_quotes_followed_by_hashes() {
        for text in ["", "plain", r##"{"$ref": "#"}"##, r###"a "## b "# c"###] {
            let literal = raw_string(text).to_string();
            let parsed: syn::LitStr = syn::parse_str(&literal).expect("a string literal");
            assert_eq!(parsed.value(), text, "{literal}");
            assert!(literal.starts_with('r'), "{literal}");
        }
    }
}
