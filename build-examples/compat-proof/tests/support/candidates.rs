//! Values to try, from a JSON Schema (as `rpc-codegen json-schema` writes
//! them): every alternative of a `oneOf`/`anyOf`, both ends of each integer
//! format's range, optional properties absent and present, `null` where it is
//! allowed. Writers keep only the ones their Rust type can hold.

use serde_json::{json, Map, Value};

/// At most this many values per schema: enough to hit every case of the
/// small pair schemas, bounded for recursive types.
const LIMIT: usize = 24;

pub fn candidates(schema: &Value, root: &Value) -> Vec<Value> {
    let mut out = of(schema, root, 0);
    out.truncate(LIMIT);
    out
}

fn of(schema: &Value, root: &Value, depth: usize) -> Vec<Value> {
    if depth > 6 {
        return Vec::new();
    }
    let Value::Object(map) = schema else {
        // `true`: any JSON value.
        return vec![json!({"any": [1, "two"]}), json!(7), json!("text")];
    };
    if let Some(Value::String(target)) = map.get("$ref") {
        let resolved = if target == "#" {
            Some(root)
        } else {
            target
                .strip_prefix("#/$defs/")
                .and_then(|name| root.get("$defs")?.get(name))
        };
        return resolved.map_or_else(Vec::new, |s| of(s, root, depth + 1));
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(Value::Array(options)) = map.get(key) {
            return options
                .iter()
                .flat_map(|option| of(option, root, depth + 1))
                .collect();
        }
    }
    if let Some(Value::Array(values)) = map.get("enum") {
        return values.clone();
    }
    if let Some(value) = map.get("const") {
        return vec![value.clone()];
    }
    match map.get("type") {
        Some(Value::Array(types)) => types
            .iter()
            .flat_map(|t| {
                let mut one = map.clone();
                one.insert("type".into(), t.clone());
                of(&Value::Object(one), root, depth)
            })
            .collect(),
        Some(Value::String(t)) => typed(t, map, root, depth),
        // Annotations only (`description`, `deprecated`): any value.
        _ => vec![json!({"any": [1, "two"]}), json!(7), json!("text")],
    }
}

fn typed(t: &str, map: &Map<String, Value>, root: &Value, depth: usize) -> Vec<Value> {
    match t {
        "null" => vec![Value::Null],
        "boolean" => vec![json!(true), json!(false)],
        "integer" => match map.get("format").and_then(Value::as_str) {
            Some("int8") => vec![json!(i8::MIN), json!(i8::MAX)],
            Some("int16") => vec![json!(i16::MIN), json!(i16::MAX)],
            Some("int32") => vec![json!(i32::MIN), json!(i32::MAX)],
            Some("int64") => vec![json!(i64::MIN), json!(i64::MAX)],
            Some("uint8") => vec![json!(0), json!(u8::MAX)],
            Some("uint16") => vec![json!(0), json!(u16::MAX)],
            Some("uint32") => vec![json!(0), json!(u32::MAX)],
            Some("uint64") => vec![json!(0), json!(u64::MAX)],
            _ => vec![json!(0)],
        },
        "number" => vec![json!(1.5), json!(-2.0)],
        "string" if map.get("contentEncoding").is_some() => vec![json!("AAEC+/8=")],
        "string" => vec![json!("text")],
        "array" => {
            let items = map
                .get("items")
                .map_or_else(Vec::new, |s| of(s, root, depth + 1));
            let mut out = vec![json!([])];
            out.extend(items.into_iter().map(|item| json!([item])));
            out
        }
        "object" => object(map, root, depth),
        _ => Vec::new(),
    }
}

/// A base object with every required property at its first value, then one
/// object per other value of each property (optional ones included).
fn object(map: &Map<String, Value>, root: &Value, depth: usize) -> Vec<Value> {
    let empty = Map::new();
    let properties = map
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let required: Vec<&str> = map
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if properties.is_empty() {
        if let Some(values) = map
            .get("additionalProperties")
            .filter(|v| v.is_object() || **v == json!(true))
        {
            let mut out = vec![json!({})];
            out.extend(
                of(values, root, depth + 1)
                    .into_iter()
                    .map(|v| json!({"k": v})),
            );
            return out;
        }
        return vec![json!({})];
    }
    let mut values: Vec<(&String, Vec<Value>)> = Vec::new();
    let mut base = Map::new();
    for (name, schema) in properties {
        let list = of(schema, root, depth + 1);
        if required.contains(&name.as_str()) {
            match list.first() {
                Some(first) => {
                    base.insert(name.clone(), first.clone());
                }
                None => return Vec::new(),
            }
        }
        values.push((name, list));
    }
    let mut out = vec![Value::Object(base.clone())];
    for (name, list) in values {
        let skip = usize::from(required.contains(&name.as_str()));
        for value in list.into_iter().skip(skip) {
            let mut one = base.clone();
            one.insert(name.clone(), value);
            out.push(Value::Object(one));
        }
    }
    out
}
