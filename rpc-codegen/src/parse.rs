//! Syntax of `.rpc` files: text in, syntax tree out, nothing resolved.
//!
//! The schema language borrows Rust's lexical structure, so the file is
//! tokenized by `proc_macro2` (which turns `///` into `#[doc]` attributes and
//! keeps line/column spans) and parsed with `syn`, with `service` and `import`
//! as custom keywords. This module knows nothing about what names mean or what
//! code will be generated: unknown types, duplicate names and bad attribute
//! values are the model's business (see `model`). It must never panic, whatever
//! the input: every failure becomes a [`Diagnostic`].
//!
//! ```text
//! file    = inner-doc* item*
//! item    = attr* ( "import" STRING ";"
//!                 | "struct" NAME "{" (field ","?)* "}"
//!                 | "enum" NAME "{" (variant ","?)* "}"
//!                 | "service" NAME "{" job* "}" )
//! field   = attr* NAME ":" type
//! variant = attr* NAME ( "{" (field ","?)* "}" | "(" type ")" )?
//! job     = attr* "fn" NAME "(" (field ","?)* ")" ( "->" type )? ";"
//! type    = NAME ( "<" type ("," type)* ","? ">" )?
//! ```

use proc_macro2::{Span as PmSpan, TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{braced, parenthesized, Attribute, Ident, LitStr, Token};

use crate::diagnostic::Diagnostic;
use crate::source::{FileId, Pos, Span};

mod kw {
    syn::custom_keyword!(service);
    syn::custom_keyword!(import);
}

/// How deeply token groups and type arguments may nest. Real schemas nest a
/// handful of levels; the limit keeps hostile input from exhausting the stack.
const MAX_NESTING: usize = 48;

/// A whole schema file.
pub struct File {
    /// `//!` docs (and any other inner attribute, rejected later).
    pub inner_attrs: Vec<Attribute>,
    pub items: Vec<Item>,
}

pub enum Item {
    Import(Import),
    Struct(StructDef),
    Enum(EnumDef),
    Service(ServiceDef),
}

/// `import "common.rpc";`
pub struct Import {
    pub attrs: Vec<Attribute>,
    pub path: LitStr,
}

pub struct StructDef {
    pub attrs: Vec<Attribute>,
    pub name: Ident,
    pub fields: Vec<FieldDef>,
}

/// A struct field, a struct-variant field or a job parameter.
pub struct FieldDef {
    pub attrs: Vec<Attribute>,
    pub name: Ident,
    pub ty: TypeExpr,
}

pub struct EnumDef {
    pub attrs: Vec<Attribute>,
    pub name: Ident,
    pub variants: Vec<VariantDef>,
}

pub struct VariantDef {
    pub attrs: Vec<Attribute>,
    pub name: Ident,
    pub shape: VariantShape,
}

pub enum VariantShape {
    Unit,
    Struct(Vec<FieldDef>),
    Newtype(TypeExpr),
}

pub struct ServiceDef {
    pub attrs: Vec<Attribute>,
    pub name: Ident,
    pub jobs: Vec<JobDef>,
}

pub struct JobDef {
    pub attrs: Vec<Attribute>,
    pub name: Ident,
    pub params: Vec<FieldDef>,
    pub returns: Option<TypeExpr>,
}

/// `Name` or `Name<Arg, ...>`, unresolved.
pub struct TypeExpr {
    pub name: Ident,
    pub args: Vec<TypeExpr>,
    /// The closing `>` when there are arguments, else the name's span.
    pub end: PmSpan,
}

impl TypeExpr {
    /// The span of the whole type expression.
    pub fn span(&self, file: FileId) -> Span {
        Span::from_proc_macro(file, self.name.span()).to(Span::from_proc_macro(file, self.end))
    }
}

/// Parses one file's text. `file` tags the spans of the diagnostics.
pub fn parse_file(file: FileId, text: &str) -> Result<File, Vec<Diagnostic>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let tokens: TokenStream = match text.parse() {
        Ok(tokens) => tokens,
        Err(err) => return Err(vec![lex_error(file, text, err)]),
    };
    if let Some(span) = too_deep(&tokens) {
        return Err(vec![Diagnostic::error(
            "this file nests brackets too deeply",
            Span::from_proc_macro(file, span),
            format!("more than {MAX_NESTING} levels deep"),
        )]);
    }
    syn::parse2::<File>(tokens).map_err(|err| {
        err.into_iter()
            .map(|e| {
                let span = Span::from_proc_macro(file, e.span());
                Diagnostic::error(e.to_string(), span, "")
            })
            .collect()
    })
}

/// Finds a group nested deeper than [`MAX_NESTING`], iteratively (a recursive
/// walk is exactly what deep nesting would break).
fn too_deep(tokens: &TokenStream) -> Option<PmSpan> {
    let mut stack: Vec<(proc_macro2::token_stream::IntoIter, usize)> =
        vec![(tokens.clone().into_iter(), 0)];
    while let Some((mut iter, depth)) = stack.pop() {
        if let Some(tree) = iter.next() {
            stack.push((iter, depth));
            if let TokenTree::Group(group) = tree {
                if depth + 1 > MAX_NESTING {
                    return Some(group.span_open());
                }
                stack.push((group.stream().into_iter(), depth + 1));
            }
        }
    }
    None
}

impl Parse for File {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let inner_attrs = input.call(Attribute::parse_inner)?;
        let mut items = Vec::new();
        while !input.is_empty() {
            items.push(input.parse()?);
        }
        Ok(File { inner_attrs, items })
    }
}

impl Parse for Item {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.peek(Token![#]) && input.peek2(Token![!]) {
            return Err(input.error(
                "inner doc comments (`//!`) and inner attributes must come before every item",
            ));
        }
        let attrs = input.call(Attribute::parse_outer)?;
        let lookahead = input.lookahead1();
        if lookahead.peek(kw::import) {
            input.parse::<kw::import>()?;
            let path: LitStr = input.parse()?;
            input.parse::<Token![;]>()?;
            Ok(Item::Import(Import { attrs, path }))
        } else if lookahead.peek(Token![struct]) {
            input.parse::<Token![struct]>()?;
            let name = input.call(Ident::parse_any)?;
            let body;
            braced!(body in input);
            let fields = parse_fields(&body)?;
            Ok(Item::Struct(StructDef {
                attrs,
                name,
                fields,
            }))
        } else if lookahead.peek(Token![enum]) {
            input.parse::<Token![enum]>()?;
            let name = input.call(Ident::parse_any)?;
            let body;
            braced!(body in input);
            let variants = Punctuated::<VariantDef, Token![,]>::parse_terminated(&body)?
                .into_iter()
                .collect();
            Ok(Item::Enum(EnumDef {
                attrs,
                name,
                variants,
            }))
        } else if lookahead.peek(kw::service) {
            input.parse::<kw::service>()?;
            let name = input.call(Ident::parse_any)?;
            let body;
            braced!(body in input);
            let mut jobs = Vec::new();
            while !body.is_empty() {
                jobs.push(body.parse()?);
            }
            Ok(Item::Service(ServiceDef { attrs, name, jobs }))
        } else {
            Err(lookahead.error())
        }
    }
}

fn parse_fields(input: ParseStream) -> syn::Result<Vec<FieldDef>> {
    Ok(Punctuated::<FieldDef, Token![,]>::parse_terminated(input)?
        .into_iter()
        .collect())
}

impl Parse for FieldDef {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let name = input.call(Ident::parse_any)?;
        input.parse::<Token![:]>()?;
        let ty = parse_type(input, 0)?;
        Ok(FieldDef { attrs, name, ty })
    }
}

impl Parse for VariantDef {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let name = input.call(Ident::parse_any)?;
        let shape = if input.peek(syn::token::Brace) {
            let body;
            braced!(body in input);
            VariantShape::Struct(parse_fields(&body)?)
        } else if input.peek(syn::token::Paren) {
            let body;
            let paren = parenthesized!(body in input);
            let types = Punctuated::<TypeExpr, Token![,]>::parse_terminated(&body)?;
            if types.len() != 1 {
                return Err(syn::Error::new(
                    paren.span.join(),
                    "a newtype variant holds exactly one type: `Name(Type)`",
                ));
            }
            match types.into_iter().next() {
                Some(ty) => VariantShape::Newtype(ty),
                None => return Err(syn::Error::new(paren.span.join(), "expected a type")),
            }
        } else {
            VariantShape::Unit
        };
        Ok(VariantDef { attrs, name, shape })
    }
}

impl Parse for JobDef {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        if !input.peek(Token![fn]) {
            return Err(
                input.error("expected `fn`: jobs are written `fn name(param: Type) -> Type;`")
            );
        }
        input.parse::<Token![fn]>()?;
        let name = input.call(Ident::parse_any)?;
        let body;
        parenthesized!(body in input);
        let params = parse_fields(&body)?;
        let returns = if input.peek(Token![->]) {
            input.parse::<Token![->]>()?;
            Some(parse_type(input, 0)?)
        } else {
            None
        };
        input.parse::<Token![;]>()?;
        Ok(JobDef {
            attrs,
            name,
            params,
            returns,
        })
    }
}

impl Parse for TypeExpr {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        parse_type(input, 0)
    }
}

fn parse_type(input: ParseStream, depth: usize) -> syn::Result<TypeExpr> {
    if depth > MAX_NESTING {
        return Err(input.error("type nested too deeply"));
    }
    if !input.peek(Ident::peek_any) {
        return Err(input.error("expected a type, such as `String`, `Vec<i64>` or a struct name"));
    }
    let name = input.call(Ident::parse_any)?;
    let mut args = Vec::new();
    let mut end = name.span();
    if input.peek(Token![<]) {
        input.parse::<Token![<]>()?;
        loop {
            if input.peek(Token![>]) {
                break;
            }
            args.push(parse_type(input, depth + 1)?);
            if input.peek(Token![,]) {
                input.parse::<Token![,]>()?;
            } else {
                break;
            }
        }
        end = input.parse::<Token![>]>()?.span;
    }
    Ok(TypeExpr { name, args, end })
}

/// Turns a lexer failure into a diagnostic. `proc_macro2` only says where it
/// stopped, so the common causes (an unclosed or stray bracket, an
/// unterminated string or comment) are found by a small scan of our own.
fn lex_error(file: FileId, text: &str, err: proc_macro2::LexError) -> Diagnostic {
    if let Some(diagnostic) = explain_lex_error(file, text) {
        return diagnostic;
    }
    let span = Span::from_proc_macro(file, err.span());
    Diagnostic::error(
        "unrecognised token",
        span,
        "the schema language cannot read this",
    )
}

fn explain_lex_error(file: FileId, text: &str) -> Option<Diagnostic> {
    let chars: Vec<char> = text.chars().collect();
    let mut stack: Vec<(char, Pos)> = Vec::new();
    let (mut line, mut col) = (1usize, 0usize);
    let mut i = 0;
    let at = |line: usize, col: usize, len: usize| Span {
        file,
        start: Pos { line, col },
        end: Pos {
            line,
            col: col + len,
        },
    };
    // Advances over one char, tracking line and column.
    macro_rules! bump {
        () => {{
            if chars[i] == '\n' {
                line += 1;
                col = 0;
            } else {
                col += 1;
            }
            i += 1;
        }};
    }
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '/' if next == Some('/') => {
                while i < chars.len() && chars[i] != '\n' {
                    bump!();
                }
            }
            '/' if next == Some('*') => {
                let (start_line, start_col) = (line, col);
                let mut depth = 0usize;
                loop {
                    if i >= chars.len() {
                        return Some(Diagnostic::error(
                            "unterminated block comment",
                            at(start_line, start_col, 2),
                            "this comment is never closed with `*/`",
                        ));
                    }
                    if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                        depth += 1;
                        bump!();
                        bump!();
                    } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        bump!();
                        bump!();
                        if depth == 0 {
                            break;
                        }
                    } else {
                        bump!();
                    }
                }
            }
            '"' => {
                let (start_line, start_col) = (line, col);
                bump!();
                loop {
                    if i >= chars.len() {
                        return Some(Diagnostic::error(
                            "unterminated double quote string",
                            at(start_line, start_col, 1),
                            "this string is never closed",
                        ));
                    }
                    match chars[i] {
                        '\\' => {
                            bump!();
                            if i < chars.len() {
                                bump!();
                            }
                        }
                        '"' => {
                            bump!();
                            break;
                        }
                        _ => bump!(),
                    }
                }
            }
            '(' | '[' | '{' => {
                stack.push((c, Pos { line, col }));
                bump!();
            }
            ')' | ']' | '}' => {
                let open = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                match stack.pop() {
                    Some((o, _)) if o == open => {}
                    Some((o, pos)) => {
                        return Some(
                            Diagnostic::error(
                                format!("mismatched closing delimiter: `{c}`"),
                                at(line, col, 1),
                                "mismatched closing delimiter",
                            )
                            .with_label(
                                at(pos.line, pos.col, 1),
                                format!("unclosed delimiter `{o}`"),
                            ),
                        );
                    }
                    None => {
                        return Some(Diagnostic::error(
                            format!("unexpected closing delimiter: `{c}`"),
                            at(line, col, 1),
                            "unexpected closing delimiter",
                        ));
                    }
                }
                bump!();
            }
            _ => bump!(),
        }
    }
    stack.pop().map(|(o, pos)| {
        Diagnostic::error(
            "this file contains an unclosed delimiter",
            at(pos.line, pos.col, 1),
            format!("unclosed delimiter `{o}`"),
        )
    })
}
