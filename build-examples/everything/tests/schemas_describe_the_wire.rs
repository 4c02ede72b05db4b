//! The JSON Schemas a compiled service serves describe what its generated
//! types really write and accept.
//!
//! `json_schemas()` returns the documents rpc-codegen computed from the
//! schema (the same `rpc-codegen json-schema` prints, the backlog check and
//! the dashboard validate with); nothing derives them from the Rust types, so
//! nothing else ties them to serde. These tests do: every value serde writes
//! for a job's request, response and application error (each job, each
//! variant, the recursive and renamed types) validates against the job's
//! schema, and values serde refuses (out of range, misspelt, Rust names
//! instead of wire names, unknown variants, missing fields, deep inside
//! recursion) the schema refuses too.
//!
//! Two known differences stay, and the tools allow for them: serde also
//! reads a struct from an array (the runtime refuses that for parameters
//! before serde sees them), and JSON Schema's `integer` takes `1.0`, which
//! serde refuses (`rpc backlog-check` adds a keyword for that).

use std::collections::BTreeMap;

use everything::common::{CommonError, Page, Point};
#[allow(deprecated)] // `paint` takes the deprecated `OldShape`.
use everything::everything::OldShape;
use everything::everything::{
    Binding, Color, Containers, DrawError, DrawingCentroidRequest, DrawingDrawRequest,
    DrawingEchoRequest, DrawingEvaluateRequest, DrawingFindRequest, DrawingHeaderValueRequest,
    DrawingLogRequest, DrawingLookupRequest, DrawingPaintRequest, DrawingRawRequest,
    DrawingReverseRequest, DrawingRotateRequest, DrawingTypeRequest, DrawingWalkRequest, Expr,
    HttpHeader, Keywords, Node, Person, Pet, Scalars, Shape, Tree,
};
use rpc_runtime::{Bytes, JobSchema};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

fn value<T: Serialize>(v: T) -> Value {
    serde_json::to_value(v).expect("generated types serialize")
}

fn p(x: f64, y: f64) -> Point {
    Point { x, y }
}

/// Every variant of `Shape`, as serde writes them.
fn shapes() -> Vec<Shape> {
    #[allow(deprecated)] // `Triangle` is deprecated, and still on the wire.
    let triangle = Shape::Triangle(vec![p(0.0, 0.0), p(1.0, 0.0), p(0.0, 1.0)]);
    vec![
        Shape::Empty,
        Shape::Circle {
            center: p(1.0, 2.0),
            radius: 3.5,
        },
        Shape::Polygon(vec![p(0.0, 0.0), p(2.0, 2.0)]),
        Shape::Rectangle {
            corner: p(-1.0, -1.0),
            width: 2.0,
            height: 4.0,
        },
        triangle,
    ]
}

fn scalars() -> Scalars {
    Scalars {
        flag: true,
        tiny: i8::MIN,
        small: i16::MAX,
        medium: i32::MIN,
        large: i64::MIN,
        byte: u8::MAX,
        word: u16::MAX,
        dword: u32::MAX,
        qword: u64::MAX,
        single: 1.5,
        double: -2.25,
        text: "héllo \"#".to_owned(),
        blob: Bytes(vec![0, 1, 2, 254, 255]),
        extra: json!({"any": ["json", 1, null]}),
    }
}

fn containers(full: bool) -> Containers {
    Containers {
        numbers: vec![1, -2],
        maybe: full.then(|| "yes".to_owned()),
        by_name: BTreeMap::from([("a".to_owned(), 1)]),
        matrix: vec![vec![1.0, 2.5], vec![]],
        groups: BTreeMap::from([("g".to_owned(), vec![p(1.0, 1.0)])]),
        maybe_list: full.then(|| vec![Some(1), None]),
        maybe_map: full.then(|| BTreeMap::from([("k".to_owned(), json!(null))])),
        blobs: vec![Bytes(vec![9]), Bytes(vec![])],
    }
}

fn expr() -> Expr {
    Expr::Add {
        left: Box::new(Expr::Negate(Box::new(Expr::Number(1.0)))),
        right: Box::new(Expr::Call {
            name: "max".to_owned(),
            args: vec![Expr::Let(Box::new(Binding {
                name: "x".to_owned(),
                value: Box::new(Expr::Number(2.0)),
            }))],
        }),
    }
}

fn tree() -> Tree {
    let leaf = |label: &str| Tree {
        label: label.to_owned(),
        children: vec![],
        by_key: BTreeMap::new(),
    };
    Tree {
        label: "root".to_owned(),
        children: vec![leaf("a")],
        by_key: BTreeMap::from([("b".to_owned(), leaf("b"))]),
    }
}

fn node() -> Node {
    Node {
        value: 1,
        next: Some(Box::new(Node {
            value: 2,
            next: None,
        })),
    }
}

fn keywords() -> Keywords {
    Keywords {
        r#type: "t".to_owned(),
        r#match: true,
        self_: -1,
        r#async: Some(7),
    }
}

#[allow(deprecated)] // The deprecated fields are still on the wire.
fn header() -> HttpHeader {
    HttpHeader {
        label_text: "Accept".to_owned(),
        value: "json".to_owned(),
        legacy: Some("old".to_owned()),
        old_value: None,
    }
}

fn person() -> Person {
    Person {
        name: "Ann".to_owned(),
        pet: Some(Box::new(Pet {
            name: "Rex".to_owned(),
            owner: Some(Box::new(Person {
                name: "Bob".to_owned(),
                pet: None,
            })),
        })),
    }
}

fn draw_errors() -> Vec<Value> {
    vec![
        value(DrawError::CanvasFull { capacity: 2 }),
        value(DrawError::UnknownShape("blob".to_owned())),
        value(DrawError::Timeout),
    ]
}

/// What serde writes for one job: requests, responses, application errors.
#[derive(Default)]
struct Written {
    requests: Vec<Value>,
    responses: Vec<Value>,
    errors: Vec<Value>,
}

fn written(requests: Vec<Value>, responses: Vec<Value>, errors: Vec<Value>) -> Written {
    Written {
        requests,
        responses,
        errors,
    }
}

/// Values serde writes, for every job of `everything.rpc` and `common.rpc`.
#[allow(deprecated)] // `paint` and `OldShape` are deprecated, and still served.
fn written_by_serde() -> BTreeMap<&'static str, Written> {
    let none = Vec::new;
    let shape_requests = |color: Color| {
        shapes()
            .into_iter()
            .map(|shape| {
                value(DrawingDrawRequest {
                    shape,
                    color: color.clone(),
                })
            })
            .collect::<Vec<_>>()
    };
    BTreeMap::from([
        (
            "Health.ping",
            written(vec![json!({})], vec![value("pong")], none()),
        ),
        (
            "Drawing.count",
            written(vec![json!({})], vec![value(0u64), value(u64::MAX)], none()),
        ),
        (
            "Drawing.clear",
            written(vec![json!({})], vec![value(())], none()),
        ),
        (
            "Drawing.draw",
            written(
                [shape_requests(Color::Red), shape_requests(Color::Blue)].concat(),
                vec![value(1u64)],
                draw_errors(),
            ),
        ),
        (
            "Drawing.find",
            written(
                vec![value(DrawingFindRequest { id: u64::MAX })],
                shapes().into_iter().map(value).collect(),
                vec![
                    value(CommonError::NotFound {
                        what: "shape".to_owned(),
                    }),
                    value(CommonError::Forbidden),
                    value(CommonError::Internal("disk".to_owned())),
                ],
            ),
        ),
        (
            "Drawing.centroid",
            written(
                vec![
                    value(DrawingCentroidRequest {
                        points: vec![p(1.0, 2.0)],
                        page: Some(Page {
                            offset: 10,
                            limit: 20,
                        }),
                    }),
                    value(DrawingCentroidRequest {
                        points: vec![],
                        page: None,
                    }),
                ],
                vec![value(p(0.5, 0.5))],
                none(),
            ),
        ),
        (
            "Drawing.log",
            written(
                vec![
                    value(DrawingLogRequest {
                        line: "hi".to_owned(),
                        level: Some(u8::MAX),
                    }),
                    value(DrawingLogRequest {
                        line: String::new(),
                        level: None,
                    }),
                ],
                vec![value(())],
                none(),
            ),
        ),
        (
            "Drawing.evaluate",
            written(
                vec![value(DrawingEvaluateRequest {
                    expr: expr(),
                    env: BTreeMap::from([("x".to_owned(), 1.5)]),
                })],
                vec![value(-2.0)],
                draw_errors(),
            ),
        ),
        (
            "Drawing.walk",
            written(
                vec![value(DrawingWalkRequest { tree: tree() })],
                vec![value(vec!["root", "a"])],
                none(),
            ),
        ),
        (
            "Drawing.reverse",
            written(
                vec![value(DrawingReverseRequest { list: node() })],
                vec![value(node())],
                none(),
            ),
        ),
        (
            "Drawing.lookup",
            written(
                vec![value(DrawingLookupRequest {
                    name: "Ann".to_owned(),
                })],
                vec![value(Some(person())), value(None::<Person>)],
                none(),
            ),
        ),
        (
            "Drawing.echo",
            written(
                vec![
                    value(DrawingEchoRequest {
                        scalars: scalars(),
                        containers: containers(true),
                    }),
                    value(DrawingEchoRequest {
                        scalars: scalars(),
                        containers: containers(false),
                    }),
                ],
                vec![value(scalars())],
                none(),
            ),
        ),
        (
            "Drawing.raw",
            written(
                vec![value(DrawingRawRequest {
                    blob: Bytes(vec![1, 2]),
                    doc: json!([null, {"a": 1}]),
                })],
                vec![json!(null), json!("text"), json!({"any": [1]})],
                none(),
            ),
        ),
        (
            "Drawing.type",
            written(
                vec![value(DrawingTypeRequest {
                    self_: "me".to_owned(),
                    r#match: keywords(),
                })],
                vec![value(keywords())],
                none(),
            ),
        ),
        (
            "Drawing.headerValue",
            written(
                vec![value(DrawingHeaderValueRequest { header: header() })],
                vec![value("json")],
                none(),
            ),
        ),
        (
            "Drawing.shape.rotate",
            written(
                shapes()
                    .into_iter()
                    .map(|shape| {
                        value(DrawingRotateRequest {
                            shape,
                            degrees: 90.0,
                        })
                    })
                    .collect(),
                shapes().into_iter().map(value).collect(),
                none(),
            ),
        ),
        (
            "Drawing.paint",
            written(
                vec![value(DrawingPaintRequest {
                    shape: OldShape { sides: 3 },
                })],
                vec![value(())],
                none(),
            ),
        ),
        (
            "Admin.reset",
            written(vec![json!({})], vec![value(true)], none()),
        ),
        (
            "Admin.stats",
            written(
                vec![json!({})],
                vec![value(BTreeMap::from([("calls", u64::MAX)]))],
                none(),
            ),
        ),
    ])
}

/// Every job's schemas, by `Service.job`, as the compiled service serves them.
fn served() -> BTreeMap<String, JobSchema> {
    everything::everything::json_schemas()
        .into_iter()
        .chain(everything::common::json_schemas())
        .map(|schema| (format!("{}.{}", schema.service, schema.job), schema))
        .collect()
}

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::validator_for(schema)
        .unwrap_or_else(|e| panic!("not a valid schema ({e}): {schema}"))
}

fn refusals(schema: &Value, instance: &Value) -> Vec<String> {
    validator(schema)
        .iter_errors(instance)
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn every_value_serde_writes_is_valid_against_its_jobs_schema() {
    let served = served();
    let written = written_by_serde();
    // Every job served has values written here: a new job must add some.
    let served_jobs: Vec<&String> = served.keys().collect();
    let written_jobs: Vec<String> = written.keys().map(|k| k.to_string()).collect();
    assert_eq!(served_jobs, written_jobs.iter().collect::<Vec<_>>());

    for (job, values) in &written {
        let schema = &served[*job];
        let parts = [
            ("request", Some(&schema.request), &values.requests),
            ("response", Some(&schema.response), &values.responses),
            ("error", schema.error.as_ref(), &values.errors),
        ];
        for (part, schema, instances) in parts {
            let Some(schema) = schema else {
                assert!(instances.is_empty(), "{job} has no {part} schema");
                continue;
            };
            assert!(!instances.is_empty(), "{job}: write some {part}s");
            for instance in instances {
                let why = refusals(schema, instance);
                assert!(
                    why.is_empty(),
                    "{job} {part} written by serde is refused by its schema: {instance}\n{why:?}\nschema: {schema}"
                );
            }
        }
    }
}

/// `instance` is refused by serde as `T` and by `schema`.
fn both_refuse<T: DeserializeOwned + std::fmt::Debug>(schema: &Value, instance: Value) {
    if let Ok(read) = serde_json::from_value::<T>(instance.clone()) {
        panic!("serde read {instance} as {read:?}: not a refusal to compare");
    }
    assert!(
        !refusals(schema, &instance).is_empty(),
        "serde refuses {instance}, its schema accepts it: {schema}"
    );
}

#[test]
fn what_serde_refuses_the_schema_refuses() {
    let served = served();
    let request = |job: &str| served[job].request.clone();
    let response = |job: &str| served[job].response.clone();
    let error = |job: &str| served[job].error.clone().expect("an error schema");

    let echo = request("Drawing.echo");
    let echo_with = |field: &str, bad: Value| {
        let mut doc = value(DrawingEchoRequest {
            scalars: scalars(),
            containers: containers(true),
        });
        doc["scalars"][field] = bad;
        doc
    };
    for (field, bad) in [
        ("tiny", json!(128)),
        ("tiny", json!(-129)),
        ("byte", json!(-1)),
        ("word", json!(65536)),
        ("medium", json!(2_147_483_648i64)),
        ("dword", json!(4_294_967_296u64)),
        ("large", json!(9_223_372_036_854_775_808u64)),
        ("qword", json!(-1)),
        ("flag", json!("true")),
        ("text", json!(null)),
        ("blob", json!(5)),
    ] {
        both_refuse::<DrawingEchoRequest>(&echo, echo_with(field, bad));
    }
    let mut missing = echo_with("tiny", json!(0));
    missing["containers"]
        .as_object_mut()
        .expect("an object")
        .remove("numbers");
    both_refuse::<DrawingEchoRequest>(&echo, missing);

    // Enums: unknown and renamed-away variants, a variant missing a field.
    let draw = request("Drawing.draw");
    for bad in [
        json!({"shape": "Empty", "color": "Purple"}),
        json!({"shape": "Empty"}),
        json!({"shape": {"Rectangle": {"corner": {"x": 0, "y": 0}, "width": 1, "height": 1}}, "color": "Red"}),
        json!({"shape": {"Circle": {"center": {"x": 0, "y": 0}}}, "color": "Red"}),
        json!({"shape": {"Circle": {"center": {"x": 0, "y": 0}, "radius": 1}, "Empty": null}, "color": "Red"}),
    ] {
        both_refuse::<DrawingDrawRequest>(&draw, bad);
    }
    both_refuse::<DrawError>(&error("Drawing.draw"), json!({"CanvasFull": {}}));
    both_refuse::<CommonError>(&error("Drawing.find"), json!("NotFound"));

    // Wire names, not Rust names.
    both_refuse::<DrawingHeaderValueRequest>(
        &request("Drawing.headerValue"),
        json!({"header": {"label_text": "a", "Value": "b"}}),
    );
    both_refuse::<DrawingRotateRequest>(
        &request("Drawing.shape.rotate"),
        json!({"shape": "Empty", "degrees": 90}),
    );
    both_refuse::<DrawingTypeRequest>(
        &request("Drawing.type"),
        json!({"self_": "me", "match": {"type": "t", "match": true, "self": 1}}),
    );

    // Deep inside recursive types.
    both_refuse::<DrawingReverseRequest>(
        &request("Drawing.reverse"),
        json!({"list": {"value": 1, "next": {"value": 2, "next": {"value": "3"}}}}),
    );
    both_refuse::<Node>(
        &response("Drawing.reverse"),
        json!({"value": 1, "next": {}}),
    );
    both_refuse::<DrawingEvaluateRequest>(
        &request("Drawing.evaluate"),
        json!({"expr": {"Let": {"name": "x", "value": {"Negate": "1"}}}, "env": {}}),
    );
    both_refuse::<Option<Person>>(
        &response("Drawing.lookup"),
        json!({"name": "Ann", "pet": {"name": "Rex", "owner": {"pet": null}}}),
    );
}
