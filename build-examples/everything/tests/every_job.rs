//! Every job of `schema/everything.rpc` (and `common.rpc`) called over a
//! private redis-server: typed calls for each shape of job, untyped calls
//! that pin the wire names (keywords, renames, camelCase), and the JSON
//! Schemas reachable at run time.

use std::collections::BTreeMap;
use std::time::Duration;

use everything::common::{CommonError, HealthClient, HealthServer, Page, Point};
use everything::everything::{
    AdminClient, AdminServer, Containers, DrawError, Expr, HttpHeader, Keywords, Node, Scalars,
    Shape, Tree,
};
use everything::{Canvas, Color, DrawingClient, DrawingServer, Healthy};
use rpc_runtime::{Bytes, CallError, Client, Worker};
use rpc_testkit::RedisServer;
use serde_json::json;

fn scalars() -> Scalars {
    Scalars {
        flag: true,
        tiny: -8,
        small: -16,
        medium: -32,
        large: i64::MIN,
        byte: 255,
        word: 65535,
        dword: u32::MAX,
        qword: u64::MAX,
        single: 1.5,
        double: -2.25,
        text: "héllo".to_owned(),
        blob: Bytes(vec![0, 1, 2, 254, 255]),
        extra: json!({"any": ["json", 1, null]}),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_over_redis() {
    let redis = RedisServer::start().expect("start redis-server");
    let url = redis.url();
    let canvas = Canvas::with_capacity(2);
    let worker = Worker::builder(&url)
        .mount(DrawingServer::new(canvas.clone()))
        .mount(AdminServer::new(canvas))
        .mount(HealthServer::new(Healthy))
        .build()
        .await
        .expect("worker connects");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async {
        let _ = stopped.await;
    }));
    let client = Client::builder(&url)
        .default_timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap();
    let drawing = DrawingClient::new(client.clone());
    let admin = AdminClient::new(client.clone());
    let health = HealthClient::new(client.clone());

    // Imported service, zero parameters.
    assert_eq!(health.ping().await.unwrap(), "pong");
    assert_eq!(drawing.count().await.unwrap(), 0);

    // Result<T, E> with E from this file; attempts and timeout attributes.
    let p = |x, y| Point { x, y };
    assert_eq!(
        drawing
            .draw(Shape::Polygon(vec![p(0.0, 0.0)]), Color::Red)
            .await
            .unwrap(),
        1
    );
    let rect = Shape::Rectangle {
        corner: p(1.0, 1.0),
        width: 2.0,
        height: 3.0,
    };
    assert_eq!(drawing.draw(rect.clone(), Color::Blue).await.unwrap(), 2);
    match drawing.draw(rect.clone(), Color::Green).await {
        Err(CallError::App(DrawError::CanvasFull { capacity: 2 })) => {}
        other => panic!("expected CanvasFull, got {other:?}"),
    }
    match drawing.draw(Shape::Empty, Color::Green).await {
        Err(CallError::App(DrawError::UnknownShape(s))) => assert_eq!(s, "Empty"),
        other => panic!("expected UnknownShape, got {other:?}"),
    }

    // Result<T, E> with E from the imported file.
    assert!(matches!(drawing.find(0).await, Ok(Shape::Circle { .. })));
    assert!(matches!(
        drawing.find(1).await,
        Err(CallError::App(CommonError::Forbidden))
    ));
    match drawing.find(9).await {
        Err(CallError::App(CommonError::NotFound { what })) => assert_eq!(what, "shape 9"),
        other => panic!("expected NotFound, got {other:?}"),
    }

    // Imported types in and out, Option parameters.
    let pts = vec![p(0.0, 0.0), p(2.0, 2.0), p(4.0, 4.0)];
    assert_eq!(
        drawing.centroid(pts.clone(), None).await.unwrap(),
        p(2.0, 2.0)
    );
    let page = Page {
        offset: 1,
        limit: 1,
    };
    assert_eq!(
        drawing.centroid(pts, Some(page)).await.unwrap(),
        p(2.0, 2.0)
    );

    // One-way jobs with and without parameters.
    drawing.log("hello", Some(3)).await.unwrap();
    drawing.clear().await.unwrap();

    // Recursive types.
    let expr = Expr::Add {
        left: Box::new(Expr::Negate(Box::new(Expr::Number(2.0)))),
        right: Box::new(Expr::Call {
            name: "max".to_owned(),
            args: vec![Expr::Number(1.0), Expr::Number(10.0)],
        }),
    };
    assert_eq!(drawing.evaluate(expr, BTreeMap::new()).await.unwrap(), 8.0);
    let bad = Expr::Call {
        name: "sqrt".to_owned(),
        args: vec![],
    };
    assert!(matches!(
        drawing.evaluate(bad, BTreeMap::new()).await,
        Err(CallError::App(DrawError::UnknownShape(_)))
    ));
    let leaf = |l: &str| Tree {
        label: l.to_owned(),
        children: vec![],
        by_key: BTreeMap::new(),
    };
    let tree = Tree {
        label: "root".to_owned(),
        children: vec![leaf("a")],
        by_key: BTreeMap::from([("k".to_owned(), leaf("b"))]),
    };
    assert_eq!(drawing.walk(tree).await.unwrap(), ["root", "a", "b"]);
    let list = Node {
        value: 1,
        next: Some(Box::new(Node {
            value: 2,
            next: None,
        })),
    };
    let reversed = drawing.reverse(list).await.unwrap();
    assert_eq!(
        (reversed.value, reversed.next.map(|n| n.value)),
        (2, Some(1))
    );

    // Option results.
    assert_eq!(
        drawing
            .lookup("ada".to_owned())
            .await
            .unwrap()
            .unwrap()
            .pet
            .unwrap()
            .name,
        "rex"
    );
    assert!(drawing.lookup("bob".to_owned()).await.unwrap().is_none());

    // Every built-in type, containers, Bytes, Json.
    let containers = Containers {
        numbers: vec![1, 2, 3],
        maybe: None,
        by_name: BTreeMap::from([("x".to_owned(), 1)]),
        matrix: vec![vec![1.0, 2.0], vec![]],
        groups: BTreeMap::from([("g".to_owned(), vec![p(1.0, 2.0)])]),
        maybe_list: Some(vec![Some(1), None]),
        maybe_map: Some(BTreeMap::from([("j".to_owned(), json!([1, "two"]))])),
        blobs: vec![Bytes(vec![9; 3])],
    };
    let echoed = drawing.echo(scalars(), containers).await.unwrap();
    assert_eq!(
        echoed,
        Scalars {
            text: "héllo (3 numbers)".to_owned(),
            ..scalars()
        }
    );
    let raw = drawing
        .raw(Bytes(vec![1, 2, 3]), json!({"k": [true]}))
        .await
        .unwrap();
    assert_eq!(raw, json!({"len": 3, "doc": {"k": [true]}}));

    // Keywords as names, renames, camelCase.
    let kw = Keywords {
        r#type: "ignored".to_owned(),
        r#match: true,
        self_: 7,
        r#async: Some(1),
    };
    let got = drawing.r#type("from self".to_owned(), kw).await.unwrap();
    assert_eq!(
        (got.r#type.as_str(), got.r#match, got.self_),
        ("from self", true, 7)
    );
    #[allow(deprecated)] // constructing sets every field, deprecated ones too
    let header = HttpHeader {
        label_text: "Accept".to_owned(),
        value: "json".to_owned(),
        legacy: None,
        old_value: None,
    };
    assert_eq!(drawing.header_value(header).await.unwrap(), "Accept: json");
    let turned = drawing
        .rotate(Shape::Polygon(vec![p(1.0, 0.0)]), 90.0)
        .await
        .unwrap();
    let Shape::Polygon(turned) = turned else {
        panic!("still a polygon")
    };
    assert!((turned[0].x).abs() < 1e-9 && (turned[0].y - 1.0).abs() < 1e-9);
    #[allow(deprecated)]
    drawing
        .paint(everything::everything::OldShape { sides: 3 })
        .await
        .unwrap();

    // A second service in the same file; deprecated job still callable.
    #[allow(deprecated)]
    let was_drawn = admin.reset().await.unwrap();
    assert!(!was_drawn, "cleared above");
    assert_eq!(admin.stats().await.unwrap()["capacity"], 2);

    // The wire names, as another language would use them.
    let r = client
        .call_and_wait(
            "Drawing.type",
            json!({"self": "s", "match": {"type": "t", "match": false, "self": 1}}),
        )
        .await
        .unwrap();
    assert_eq!(r.data, json!({"type": "s", "match": false, "self": 1}));
    let r = client
        .call_and_wait(
            "Drawing.headerValue",
            json!({"header": {"labelText": "A", "Value": "b"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.data, json!("A: b"));
    let r = client
        .call_and_wait(
            "Drawing.shape.rotate",
            json!({"shape": {"rect": {"corner": {"x": 0.0, "y": 0.0}, "width": 1.0, "height": 1.0}}, "deg": 0.0}),
        )
        .await
        .unwrap();
    assert_eq!(r.data["rect"]["width"], json!(1.0));
    let r = client
        .call_and_wait("Drawing.raw", json!({"blob": "AQID", "doc": null}))
        .await
        .unwrap();
    assert_eq!(r.data, json!({"len": 3, "doc": null}));

    let _ = stop.send(());
    running.await.unwrap().unwrap();
}

#[test]
fn json_schemas_cover_every_job() {
    let schemas = everything::everything::json_schemas();
    let names: Vec<String> = schemas
        .iter()
        .map(|s| format!("{}.{}", s.service, s.job))
        .collect();
    for job in [
        "Drawing.count",
        "Drawing.type",
        "Drawing.headerValue",
        "Drawing.shape.rotate",
        "Admin.stats",
    ] {
        assert!(
            names.contains(&job.to_owned()),
            "{job} missing from {names:?}"
        );
    }
    let draw = schemas.iter().find(|s| s.job == "draw").unwrap();
    assert!(draw.error.is_some(), "draw declares an application error");
    let request = serde_json::to_string(&draw.request).unwrap();
    assert!(
        request.contains("\"shape\"") && request.contains("\"color\""),
        "{request}"
    );
    let rotate = schemas.iter().find(|s| s.job == "shape.rotate").unwrap();
    assert!(serde_json::to_string(&rotate.request)
        .unwrap()
        .contains("\"deg\""));
    assert_eq!(everything::common::json_schemas().len(), 1);
}
