//! Building the fuzzer's messages: valid job messages and replies, then
//! mutated field by field and byte by byte.

use proptest::sample::Index;

use super::*;

/// A message as the fuzzer builds it: fields as JSON text in order, the
/// shape they are put in, then edits of the bytes.
#[derive(Debug, Clone)]
pub(super) struct Recipe {
    pub(super) fields: Vec<(String, String)>,
    pub(super) shape: Shape,
    pub(super) edits: Vec<ByteEdit>,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Shape {
    /// `{"k":v,...}`, the documented form.
    Object,
    /// The object after white space.
    Padded,
    /// `[v,...]`: what serde's derive would also read as the struct.
    Array,
    /// `[{...}]`
    Listed,
    /// `{"message":{...}}`
    Wrapped,
    /// The object's text as a JSON string.
    Quoted,
}

#[derive(Debug, Clone)]
pub(super) enum ByteEdit {
    Flip(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    Truncate(Index),
}

#[derive(Debug, Clone)]
pub(super) enum FieldEdit {
    Remove(Index),
    Replace(Index, String),
    /// The same key again, with another value.
    Duplicate(Index, String),
    Add(String, String),
}

impl Recipe {
    /// The message's bytes, with `slot` replaced by `value`.
    pub(super) fn bytes(&self, slot: &str, value: &str) -> Vec<u8> {
        let quote = |s: &str| serde_json::to_string(s).expect("a str serializes");
        let object = || {
            let fields: Vec<String> = self
                .fields
                .iter()
                .map(|(k, v)| format!("{}:{v}", quote(k)))
                .collect();
            format!("{{{}}}", fields.join(","))
        };
        let text = match self.shape {
            Shape::Object => object(),
            Shape::Padded => format!(" \n\t{}", object()),
            Shape::Array => {
                let values: Vec<&str> = self.fields.iter().map(|(_, v)| v.as_str()).collect();
                format!("[{}]", values.join(","))
            }
            Shape::Listed => format!("[{}]", object()),
            Shape::Wrapped => format!("{{\"message\":{}}}", object()),
            Shape::Quoted => quote(&object()),
        };
        let mut bytes = text.replace(slot, value).into_bytes();
        for edit in &self.edits {
            edit.apply(&mut bytes);
        }
        bytes
    }
}

impl ByteEdit {
    pub(super) fn apply(&self, bytes: &mut Vec<u8>) {
        let len = bytes.len();
        match self {
            ByteEdit::Flip(at, bit) if len > 0 => bytes[at.index(len)] ^= 1 << (bit % 8),
            ByteEdit::Insert(at, b) => bytes.insert(at.index(len + 1), *b),
            ByteEdit::Delete(at) if len > 0 => {
                bytes.remove(at.index(len));
            }
            ByteEdit::Truncate(at) => bytes.truncate(at.index(len + 1)),
            _ => {}
        }
    }
}

impl FieldEdit {
    pub(super) fn apply(&self, fields: &mut Vec<(String, String)>) {
        let len = fields.len();
        match self {
            FieldEdit::Remove(at) if len > 0 => {
                fields.remove(at.index(len));
            }
            FieldEdit::Replace(at, raw) if len > 0 => fields[at.index(len)].1 = raw.clone(),
            FieldEdit::Duplicate(at, raw) if len > 0 => {
                let key = fields[at.index(len)].0.clone();
                fields.push((key, raw.clone()));
            }
            FieldEdit::Add(key, raw) => fields.push((key.clone(), raw.clone())),
            _ => {}
        }
    }
}

/// `|`-separated choices, `""` among them meaning "the field is absent".
pub(super) fn one_of(list: &'static str) -> impl Strategy<Value = Option<String>> {
    let choices: Vec<&str> = list.split('|').collect();
    prop::sample::select(choices).prop_map(|v| (!v.is_empty()).then(|| v.to_owned()))
}

/// A field that mostly holds one of `valid`, sometimes one of `invalid`
/// (values out of range, or where the field is missing: `""`).
pub(super) fn field(
    valid: &'static str,
    invalid: &'static str,
) -> impl Strategy<Value = Option<String>> {
    prop_oneof![31 => one_of(valid), 1 => one_of(invalid)]
}

/// JSON text that does not fit where it is put: other types, numbers past
/// every integer type, invalid JSON, other keys.
pub(super) fn raw_value() -> impl Strategy<Value = String> {
    let tricky = one_of(concat!(
        r#"null|true|false|0|-1|1|-0|1.5|1e400|-1e400|4294967295|4294967296|"#,
        r#"18446744073709551615|18446744073709551616|-9223372036854775809|NaN|"#,
        r#"""|"x"|[]|[1,"a"]|{}|{"a":{}}|"@INBOX@"|"rpc:inbox:{x}"|"inbox:"|"\u0000"|"\ud800""#,
    ));
    prop_oneof![
        3 => tricky.prop_map(Option::unwrap_or_default),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(|f| format!("{f:?}")),
        1 => ".{0,12}".prop_map(|s| serde_json::to_string(&s).expect("a String serializes")),
    ]
}

pub(super) fn field_edit() -> impl Strategy<Value = FieldEdit> {
    let key = one_of(concat!(
        "v|id|job|params|reply_to|attempt|max_attempts|result_ttl_ms|timeout_ms|",
        "deadline_ms|meta|handoffs|ok|error|x|",
    ));
    prop_oneof![
        any::<Index>().prop_map(FieldEdit::Remove),
        (any::<Index>(), raw_value()).prop_map(|(at, raw)| FieldEdit::Replace(at, raw)),
        (any::<Index>(), raw_value()).prop_map(|(at, raw)| FieldEdit::Duplicate(at, raw)),
        (key, raw_value()).prop_map(|(key, raw)| FieldEdit::Add(key.unwrap_or_default(), raw)),
    ]
}

pub(super) fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(at, bit)| ByteEdit::Flip(at, bit)),
        (any::<Index>(), any::<u8>()).prop_map(|(at, b)| ByteEdit::Insert(at, b)),
        any::<Index>().prop_map(ByteEdit::Delete),
        any::<Index>().prop_map(ByteEdit::Truncate),
    ]
}

pub(super) fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        20 => Just(Shape::Object),
        1 => Just(Shape::Padded),
        1 => Just(Shape::Array),
        1 => Just(Shape::Listed),
        1 => Just(Shape::Wrapped),
        1 => Just(Shape::Quoted),
    ]
}

/// Fields in order, then edits of the fields, a shape, edits of the bytes.
pub(super) fn mutated(
    fields: impl Strategy<Value = Vec<(String, String)>>,
) -> impl Strategy<Value = Recipe> {
    let byte_edits = prop_oneof![
        6 => Just(Vec::new()),
        1 => prop::collection::vec(byte_edit(), 1..4),
    ];
    let field_edits = prop_oneof![
        3 => Just(Vec::new()),
        1 => prop::collection::vec(field_edit(), 1..3),
    ];
    (fields, field_edits, shape(), byte_edits).prop_map(
        |(mut fields, field_edits, shape, edits)| {
            for edit in &field_edits {
                edit.apply(&mut fields);
            }
            Recipe {
                fields,
                shape,
                edits,
            }
        },
    )
}

pub(super) fn present(fields: Vec<(&str, Option<String>)>) -> Vec<(String, String)> {
    fields
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
        .collect()
}

/// A job message, valid or near it, then mutated.
pub(super) fn job_message() -> impl Strategy<Value = Recipe> {
    let id = prop_oneof![
        24 => "[a-z0-9-]{1,16}".prop_map(|s| format!("\"{s}\"")),
        1 => Just("\"\"".to_owned()),
        1 => Just(r#""a\"b\\c""#.to_owned()),
        1 => Just(format!("\"{}\"", "i".repeat(300))),
        1 => Just("\"\u{e9}\u{1F600}\"".to_owned()),
    ];
    let fields = (
        one_of("1|1|1|1|1|1|2|3|0"),
        id.prop_map(Some),
        one_of(r#""Fuzz.echo"|"Fuzz.echo"|"Fuzz.fail"|"Fuzz.nope"|"Other.echo"|"Fuzz"|"""#),
        field(r#"{"n":1}|{}|{"deep":[[[{}]]]}|[1,2]|null|"s""#, ""),
        prop_oneof![
            5 => one_of(r#""@INBOX@"|"@INBOX@"|"@INBOX@"|null|"#),
            1 => one_of(r#""rpc:inbox:{x}"|"Fuzz"|"inbox:"|"inbox:a b"|"inbox:{x}"|"result:x""#),
        ],
        (
            field("||1|253402300799999", "0|253402300800000"),
            field("||60000|31622400000", "0|1|31622400001|-1"),
            field("||1|1|2|3|4|1000", "1001|0|4294967296"),
            field("||1|5|1000", "1001|0"),
            field("||1000|31622400000", "31622400001|18446744073709551615"),
            field(r#"||{"t":"x"}"#, r#"{"t":1}|[]"#),
            field("||||||0|31|32", "33|4294967296"),
            field(
                "||||1|1765000000000|253402300799999",
                "253402300800000|-1|1e3",
            ),
        ),
    )
        .prop_map(|(v, id, job, params, reply_to, more)| {
            let (
                deadline_ms,
                timeout_ms,
                attempt,
                max_attempts,
                result_ttl_ms,
                meta,
                handoffs,
                sent_ms,
            ) = more;
            // A job of the service that the worker does not know is handed
            // back on the schedule, 32 times over at least 1.6 s, before it
            // is answered (`worker/handoff.rs`): from 31, one hand-back then
            // the answer, so the case still goes through a hand-back and
            // its answer without a wait of seconds.
            let handoffs = match (job.as_deref(), handoffs.as_deref()) {
                (Some(r#""Fuzz.nope""#), None | Some("0")) => Some("31".to_owned()),
                _ => handoffs,
            };
            present(vec![
                ("v", v),
                ("id", id),
                ("job", job),
                ("params", params),
                ("reply_to", reply_to),
                ("deadline_ms", deadline_ms),
                ("timeout_ms", timeout_ms),
                ("attempt", attempt),
                ("max_attempts", max_attempts),
                ("result_ttl_ms", result_ttl_ms),
                ("meta", meta),
                ("handoffs", handoffs),
                ("sent_ms", sent_ms),
            ])
        });
    mutated(fields)
}

/// A reply to another call, then mutated.
pub(super) fn reply_message() -> impl Strategy<Value = Recipe> {
    let outcome = prop_oneof![
        raw_value().prop_map(|raw| ("ok", raw)),
        one_of(concat!(
            r#"{"kind":"app","message":"m","data":1}|{"kind":"from_the_future","message":"m"}|"#,
            r#"{"kind":1,"message":[]}|["app","m"]|null"#,
        ))
        .prop_map(|raw| ("error", raw.unwrap_or_default())),
    ];
    let fields = (
        one_of("1|1|2"),
        "other-[a-z0-9]{1,8}".prop_map(|s| Some(format!("\"{s}\""))),
        outcome,
    )
        .prop_map(|(v, id, (key, raw))| present(vec![("v", v), ("id", id), (key, Some(raw))]));
    mutated(fields)
}

/// The waiting call's own id and a result, in a form that is not a reply.
pub(super) fn own_id_not_a_reply() -> impl Strategy<Value = Recipe> {
    prop_oneof![
        Just(Shape::Array),
        Just(Shape::Listed),
        Just(Shape::Wrapped),
        Just(Shape::Quoted),
    ]
    .prop_map(|shape| Recipe {
        fields: present(vec![
            ("v", Some("1".to_owned())),
            ("id", Some(format!("\"{ID_SLOT}\""))),
            ("ok", Some("\"not the answer\"".to_owned())),
        ]),
        shape,
        edits: Vec::new(),
    })
}
