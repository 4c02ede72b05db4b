//! How each schema type looks in JSON, pinned on the generated types
//! themselves (serde_json, no Redis): every statement of the section "How
//! schema types map to JSON" in docs/PROTOCOL.md has a test here, so the page
//! cannot drift from what a Rust client or worker accepts and sends.

use std::collections::BTreeMap;

use everything::common::Point;
use everything::everything::{
    Color, Containers, DrawingCentroidRequest, DrawingRotateRequest, HttpHeader, Keywords, Scalars,
    Shape,
};
use rpc_runtime::Bytes;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// The error serde_json gives when `value` does not read as `T`, or a panic
/// saying it was accepted.
fn refused<T: DeserializeOwned + std::fmt::Debug>(value: Value) -> String {
    match serde_json::from_value::<T>(value.clone()) {
        Ok(read) => panic!("{value} was accepted as {read:?}"),
        Err(err) => err.to_string(),
    }
}

fn read<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value.clone()).unwrap_or_else(|err| panic!("{value} refused: {err}"))
}

fn scalars_json() -> Value {
    json!({
        "flag": true, "tiny": -128, "small": -32768, "medium": -2147483648,
        "large": -9223372036854775807i64 - 1, "byte": 255, "word": 65535,
        "dword": 4294967295u32, "qword": 18446744073709551615u64,
        "single": 1.5, "double": -2.25, "text": "héllo", "blob": "AAEC/w==",
        "extra": {"any": [1, null]}
    })
}

/// `scalars_json()` with one field replaced.
fn scalars_with(field: &str, value: Value) -> Value {
    let mut doc = scalars_json();
    doc[field] = value;
    doc
}

#[test]
fn integers_are_json_numbers_checked_against_their_range() {
    // Every integer type at both ends of its range reads, and writes back the same.
    let scalars: Scalars = read(scalars_json());
    assert_eq!(scalars.qword, u64::MAX);
    assert_eq!(scalars.large, i64::MIN);
    let written = serde_json::to_value(&scalars).expect("serializes");
    assert_eq!(written["qword"], json!(18446744073709551615u64));
    assert_eq!(written["tiny"], json!(-128));

    // One past either end is refused, never wrapped or clamped.
    for (field, value) in [
        ("tiny", json!(128)),
        ("tiny", json!(-129)),
        ("small", json!(32768)),
        ("medium", json!(2147483648u64)),
        ("large", json!(9223372036854775808u64)),
        ("byte", json!(256)),
        ("byte", json!(-1)),
        ("word", json!(65536)),
        ("dword", json!(4294967296u64)),
        ("qword", json!(-1)),
    ] {
        let err = refused::<Scalars>(scalars_with(field, value.clone()));
        assert!(err.contains("invalid value"), "{field} = {value}: {err}");
    }
}

#[test]
fn an_integer_is_refused_when_written_with_a_fraction_or_as_a_string() {
    // `1.0` is a float in JSON: an integer field refuses it even though it is whole.
    let err = refused::<Scalars>(scalars_with("medium", json!(1.0)));
    assert!(
        err.contains("invalid type: floating point `1.0`, expected i32"),
        "{err}"
    );
    let exponent: Value = serde_json::from_str("1e3").expect("a JSON number");
    let err = refused::<Scalars>(scalars_with("medium", exponent));
    assert!(
        err.contains("invalid type: floating point `1000.0`, expected i32"),
        "{err}"
    );
    let err = refused::<Scalars>(scalars_with("qword", json!("5")));
    assert!(err.contains("invalid type: string \"5\""), "{err}");
}

#[test]
fn floats_accept_whole_numbers_and_write_the_shortest_text() {
    // A float field reads `3` as 3.0; an f32 writes `1.1`, not its f64 widening.
    let mut doc = scalars_with("single", json!(3));
    doc["double"] = json!(-7);
    let scalars: Scalars = read(doc);
    assert_eq!((scalars.single, scalars.double), (3.0, -7.0));
    let mut scalars = scalars;
    scalars.single = 1.1;
    let text = serde_json::to_string(&scalars).expect("serializes");
    assert!(text.contains("\"single\":1.1,"), "{text}");
    assert!(text.contains("\"double\":-7.0,"), "{text}");
}

#[test]
fn a_float_that_is_not_finite_is_written_as_null_and_then_refused() {
    // JSON has no NaN or infinity: serde_json writes them as `null`, which no float field reads.
    let mut scalars: Scalars = read(scalars_json());
    scalars.double = f64::NAN;
    scalars.single = f32::INFINITY;
    let written = serde_json::to_value(&scalars).expect("serializes");
    assert_eq!(written["double"], Value::Null);
    assert_eq!(written["single"], Value::Null);
    let err = refused::<Scalars>(written);
    assert!(err.contains("invalid type: null, expected f"), "{err}");
}

#[test]
fn booleans_and_strings_are_strict() {
    // No truthy numbers, no numbers for strings; strings are any UTF-8, escapes decoded.
    assert!(refused::<Scalars>(scalars_with("flag", json!(1))).contains("expected a boolean"));
    assert!(refused::<Scalars>(scalars_with("flag", json!("true"))).contains("expected a boolean"));
    assert!(refused::<Scalars>(scalars_with("text", json!(5))).contains("expected a string"));
    let scalars: Scalars = serde_json::from_str(
        &serde_json::to_string(&scalars_with("text", json!("tab\t\u{1F600}"))).expect("text"),
    )
    .expect("reads");
    assert_eq!(scalars.text, "tab\t\u{1F600}");
}

#[test]
fn bytes_are_standard_padded_base64() {
    // RFC 4648 standard alphabet (`+/`) with `=` padding, both ways; no URL-safe alphabet, no missing padding.
    let bytes = Bytes(vec![0, 1, 2, 0xfb, 0xff]);
    assert_eq!(
        serde_json::to_value(&bytes).expect("serializes"),
        json!("AAEC+/8=")
    );
    assert_eq!(read::<Bytes>(json!("AAEC+/8=")), bytes);
    assert_eq!(read::<Bytes>(json!("")), Bytes(Vec::new()));
    for bad in [
        json!("AAEC-_8="),
        json!("AAEC+/8"),
        json!("AA EC+/8="),
        json!([0, 1]),
    ] {
        let err = match serde_json::from_value::<Bytes>(bad.clone()) {
            Ok(read) => panic!("{bad} was accepted as {read:?}"),
            Err(err) => err.to_string(),
        };
        assert!(
            err.contains("invalid base64") || err.contains("invalid type"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn json_fields_take_any_value_including_null() {
    // `Json` is any JSON value, kept as it came; `null` is a value, not an absence.
    for value in [
        json!(null),
        json!(1),
        json!("s"),
        json!([1, {"a": null}]),
        json!({}),
    ] {
        let scalars: Scalars = read(scalars_with("extra", value.clone()));
        assert_eq!(scalars.extra, value);
    }
    let mut doc = scalars_json();
    doc.as_object_mut().expect("object").remove("extra");
    assert!(refused::<Scalars>(doc).contains("missing field `extra`"));
}

fn containers_json() -> Value {
    json!({
        "numbers": [1, 2], "by_name": {"b": 2, "a": 1}, "matrix": [[1.5], []],
        "groups": {"g": [{"x": 1.0, "y": 2.0}]}, "blobs": ["AQ=="]
    })
}

#[test]
fn option_reads_absent_and_null_the_same_and_writes_absent() {
    // An absent optional field and an explicit `null` both read as None; None is written by leaving the field out.
    let absent: Containers = read(containers_json());
    let mut doc = containers_json();
    doc["maybe"] = Value::Null;
    doc["maybe_list"] = Value::Null;
    doc["maybe_map"] = Value::Null;
    let null: Containers = read(doc);
    assert_eq!(absent, null);
    assert_eq!(absent.maybe, None);
    let written = serde_json::to_value(&absent).expect("serializes");
    assert!(written.get("maybe").is_none(), "{written}");
    assert!(written.get("maybe_list").is_none(), "{written}");

    // Inside a list, `null` is the element's None (and is written as `null`).
    let mut doc = containers_json();
    doc["maybe_list"] = json!([1, null]);
    let read_back: Containers = read(doc);
    assert_eq!(read_back.maybe_list, Some(vec![Some(1), None]));
    let written = serde_json::to_value(&read_back).expect("serializes");
    assert_eq!(written["maybe_list"], json!([1, null]));
    // Where there is no key to leave out (an optional job result), None is `null`.
    assert_eq!(
        serde_json::to_value(None::<Point>).expect("serializes"),
        Value::Null
    );
}

#[test]
fn a_required_field_refuses_null_and_absence() {
    // Only `Option` fields may be missing; `null` for a required field is a type error.
    let mut doc = containers_json();
    doc.as_object_mut().expect("object").remove("numbers");
    assert!(refused::<Containers>(doc).contains("missing field `numbers`"));
    let mut doc = containers_json();
    doc["numbers"] = Value::Null;
    assert!(refused::<Containers>(doc).contains("invalid type: null, expected a sequence"));
}

#[test]
fn vec_is_an_array_and_map_an_object_with_sorted_keys() {
    // `Vec<T>` is a JSON array (in order); `Map<String, T>` an object, written with keys sorted.
    let containers: Containers = read(containers_json());
    assert_eq!(containers.numbers, [1, 2]);
    assert_eq!(
        containers.by_name,
        BTreeMap::from([("a".to_owned(), 1), ("b".to_owned(), 2)])
    );
    let text = serde_json::to_string(&containers).expect("serializes");
    assert!(text.contains("\"by_name\":{\"a\":1,\"b\":2}"), "{text}");
    let mut doc = containers_json();
    doc["by_name"] = json!([["a", 1]]);
    assert!(refused::<Containers>(doc).contains("expected a map"));
    let mut doc = containers_json();
    doc["numbers"] = json!({"0": 1});
    assert!(refused::<Containers>(doc).contains("expected a sequence"));
}

#[test]
fn a_map_with_a_repeated_key_keeps_the_last_value() {
    // JSON allows a key twice; the reader keeps the last one, silently.
    let text = r#"{"numbers":[],"by_name":{"a":1,"a":2},"matrix":[],"groups":{},"blobs":[]}"#;
    let containers: Containers = serde_json::from_str(text).expect("reads");
    assert_eq!(containers.by_name["a"], 2);
    // A struct's field given twice is refused.
    let err = serde_json::from_str::<Point>(r#"{"x":1.0,"y":2.0,"x":3.0}"#)
        .expect_err("a repeated field is refused");
    assert!(err.to_string().contains("duplicate field `x`"), "{err}");
}

#[test]
fn structs_are_objects_keyed_by_wire_name_and_ignore_unknown_fields() {
    // Field names are the schema's spelling (or its `#[rename]`), keywords included; unknown keys are ignored.
    let header: HttpHeader = read(json!({"labelText": "A", "Value": "b", "later": 1}));
    assert_eq!(
        (header.label_text.as_str(), header.value.as_str()),
        ("A", "b")
    );
    let written = serde_json::to_value(&header).expect("serializes");
    assert_eq!(written, json!({"labelText": "A", "Value": "b"}));
    assert!(
        refused::<HttpHeader>(json!({"label_text": "A", "Value": "b"}))
            .contains("missing field `labelText`")
    );
    let keywords: Keywords = read(json!({"type": "t", "match": true, "self": 1}));
    assert_eq!(
        serde_json::to_value(&keywords).expect("serializes"),
        json!({"type": "t", "match": true, "self": 1})
    );
}

#[test]
fn a_struct_given_as_an_array_is_still_read_positionally() {
    // serde's derive also reads a struct from an array of its fields in order; the
    // protocol says "object", and this pins the gap rather than endorsing it.
    let point: Point = read(json!([1.0, 2.0]));
    assert_eq!(point, Point { x: 1.0, y: 2.0 });
    let request: DrawingCentroidRequest = read(json!([[{"x": 1.0, "y": 2.0}]]));
    assert_eq!(request.points.len(), 1);
}

#[test]
fn params_are_one_object_keyed_by_parameter_wire_name() {
    // Extra parameters are ignored, a missing required one is refused, a missing optional one is None.
    let request: DrawingCentroidRequest = read(json!({"points": [], "zoom": 2}));
    assert!(request.page.is_none());
    assert!(
        refused::<DrawingCentroidRequest>(json!({"page": null})).contains("missing field `points`")
    );
    // `#[rename = "deg"] degrees: f64`: the wire key is `deg`.
    let rotate: DrawingRotateRequest = read(json!({"shape": "Empty", "deg": 90}));
    assert_eq!(rotate.degrees, 90.0);
    assert!(
        refused::<DrawingRotateRequest>(json!({"shape": "Empty", "degrees": 90}))
            .contains("missing field `deg`")
    );
}

#[test]
fn enums_are_externally_tagged() {
    // Unit variant: a string. Struct variant: {"Tag": {fields}}. Newtype: {"Tag": value}.
    let p = |x, y| Point { x, y };
    let cases = [
        (Shape::Empty, json!("Empty")),
        (
            Shape::Circle {
                center: p(0.0, 1.0),
                radius: 2.0,
            },
            json!({"Circle": {"center": {"x": 0.0, "y": 1.0}, "radius": 2.0}}),
        ),
        (
            Shape::Polygon(vec![p(1.0, 1.0)]),
            json!({"Polygon": [{"x": 1.0, "y": 1.0}]}),
        ),
        (
            Shape::Rectangle {
                corner: p(0.0, 0.0),
                width: 1.0,
                height: 2.0,
            },
            json!({"rect": {"corner": {"x": 0.0, "y": 0.0}, "width": 1.0, "height": 2.0}}),
        ),
    ];
    for (shape, wire) in cases {
        assert_eq!(serde_json::to_value(&shape).expect("serializes"), wire);
        assert_eq!(read::<Shape>(wire), shape);
    }
    assert_eq!(read::<Color>(json!("Green")), Color::Green);
    // A unit variant is also read from {"Tag": null}; it is always written as a string.
    assert_eq!(read::<Shape>(json!({"Empty": null})), Shape::Empty);
}

#[test]
fn unknown_variants_and_malformed_tags_are_refused() {
    // A variant the reader does not know, a renamed variant's schema name, or two tags at once.
    assert!(refused::<Color>(json!("Purple")).contains("unknown variant `Purple`"));
    assert!(refused::<Shape>(json!({"Rectangle": {}})).contains("unknown variant `Rectangle`"));
    assert!(refused::<Color>(json!("red")).contains("unknown variant `red`"));
    let err = refused::<Shape>(json!({"Empty": null, "Polygon": []}));
    assert!(
        err.contains("expected value") || err.contains("invalid"),
        "{err}"
    );
    assert!(refused::<Shape>(json!({"Circle": {"radius": 1.0}})).contains("missing field `center`"));
    assert!(refused::<Shape>(json!("Circle")).contains("invalid type: unit variant"));
}
