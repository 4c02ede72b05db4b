//! Metrics by the conventions (issue 21, point 3), on real processes: a
//! worker's `/metrics` and `rpc exporter`'s pass `promtool check metrics`,
//! carry no `job` or `instance` label, one outcome vocabulary, units in the
//! names, queue-wait buckets that reach a day; the queue gauges come from
//! the exporter only (with the pause and the schedule read from Redis),
//! `rpc_build_info` and `process_*` from both. The recording rules of
//! deploy/prometheus/rules.yml pass `promtool check rules`, and every
//! metric they and the Grafana dashboard query exists in what was scraped.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rpc_runtime::telemetry::prometheus_client::encoding::text::encode;
use rpc_runtime::telemetry::prometheus_client::registry::Registry;
use rpc_runtime::telemetry::{exposition, ClientMetrics};
use rpc_runtime::{CallOptions, Client, DynamicService, HandlerError, Worker};
use rpc_testkit::{ChildGuard, RedisServer};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support;

const PATIENCE: Duration = Duration::from_secs(30);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("rpc-cli sits in the workspace root")
        .to_owned()
}

/// `GET path` with an optional `Accept`: (content type, body).
async fn get(addr: &str, path: &str, accept: Option<&str>) -> (String, String) {
    let mut stream = tokio::time::timeout(PATIENCE, tokio::net::TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut response))
        .await
        .expect("an answer in time")
        .unwrap();
    let response = String::from_utf8(response).expect("utf-8");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    (content_type, body.to_owned())
}

/// Runs `promtool ARGS` with `stdin`; fails the test on a complaint.
/// Without promtool the check is skipped, except in CI.
fn promtool(args: &[&str], stdin: &str) {
    let child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("promtool must be installed in CI (.ci/run installs `prometheus`): {e}")
        }
        Err(e) => return eprintln!("promtool not found ({e}); skipped `promtool {args:?}`"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // `check metrics` exits 0 with nothing to say, or 3 with lint findings.
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{said}\n{stdin}"
    );
    if args.contains(&"metrics") {
        assert!(said.trim().is_empty(), "promtool {args:?}:\n{said}");
    }
}

/// The sample and family names of a classic exposition.
fn names(text: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    for line in text.lines() {
        let name = match line.strip_prefix("# TYPE ") {
            Some(rest) => rest.split(' ').next(),
            None if line.starts_with('#') || line.is_empty() => None,
            None => line.split(['{', ' ']).next(),
        };
        out.extend(name.map(str::to_owned));
    }
    out
}

/// The label names of every sample of a classic exposition.
fn label_names(text: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((_, labels)) = line.split_once('{') else {
            continue;
        };
        let labels = labels.rsplit_once('}').map_or(labels, |(l, _)| l);
        for pair in labels.split("\",") {
            if let Some((name, _)) = pair.split_once('=') {
                out.insert(name.trim().to_owned());
            }
        }
    }
    out
}

/// The metric names a PromQL expression selects: identifiers that are not
/// functions, keywords, label names or strings.
fn promql_metrics(expr: &str) -> Vec<String> {
    const KEYWORDS: [&str; 10] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "bool",
    ];
    let mut stripped = String::new();
    let mut depth_braces = 0;
    let mut in_string = false;
    let mut in_range = false;
    for c in expr.chars() {
        match c {
            '"' => in_string = !in_string,
            _ if in_string => {}
            '{' => depth_braces += 1,
            '}' => depth_braces -= 1,
            '[' => in_range = true,
            ']' => in_range = false,
            _ if depth_braces > 0 || in_range => {}
            _ => stripped.push(c),
        }
    }
    // `by (a, b)` and `without (...)` name labels, not metrics.
    for kw in ["by", "without", "on", "ignoring"] {
        while let Some(at) = find_word(&stripped, kw) {
            let rest = &stripped[at + kw.len()..];
            let open = rest.find('(').expect("a label list");
            let close = rest.find(')').expect("a closed label list");
            stripped = format!("{} {}", &stripped[..at], &rest[close + 1..]);
            let _ = open;
        }
    }
    let mut out = Vec::new();
    let chars: Vec<char> = stripped.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i])) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            if next != Some(&'(') && !KEYWORDS.contains(&word.as_str()) {
                out.push(word);
            }
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out
}

fn find_word(text: &str, word: &str) -> Option<usize> {
    text.match_indices(word).map(|(at, _)| at).find(|&at| {
        let before = text[..at].chars().last();
        let after = text[at + word.len()..].chars().find(|c| !c.is_whitespace());
        before.is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_') && after == Some('(')
    })
}

/// Starts `rpc exporter --listen 127.0.0.1:0` and returns it with the
/// address it says it serves.
fn start_exporter(url: &str) -> (ChildGuard, String) {
    let mut child = ChildGuard::spawn(
        Command::new(env!("CARGO_BIN_EXE_rpc"))
            .args(["--url", url, "exporter", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )
    .expect("start rpc exporter");
    let stderr = child.child_mut().stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx
        .recv_timeout(PATIENCE)
        .expect("the exporter says where it serves");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    (child, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_and_exporter_metrics_pass_promtool_and_the_rules_and_dashboard_query_them() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let worker = Worker::builder(&url)
        .mount(
            DynamicService::new("Conv")
                .job("echo", |req| async move { Ok(req.data) })
                .job("fail", |_| async move {
                    Err::<serde_json::Value, _>(HandlerError::fatal("no"))
                }),
        )
        .metrics_addr("127.0.0.1:0".parse().unwrap())
        .build()
        .await
        .expect("worker");
    let worker_addr = worker.metrics_addr().expect("listener").to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async {
        let _ = stopped.await;
    }));
    let mut client_registry = Registry::default();
    let client = Client::builder(&url)
        .metrics(ClientMetrics::register(&mut client_registry))
        .connect()
        .await
        .unwrap();
    client.call_and_wait("Conv.echo", json!(1)).await.unwrap();
    client
        .call_and_wait("Conv.fail", json!({}))
        .await
        .unwrap_err();
    // One call waits on the schedule; a second service is paused.
    let later = CallOptions {
        delay: Some(Duration::from_secs(3600)),
        ..CallOptions::default()
    };
    client
        .send("Conv.echo", json!(2))
        .options(later)
        .await
        .unwrap();
    client.pause("Conv").await.unwrap();

    // The worker: the classic format for promtool, OpenMetrics on request.
    let (content_type, worker_text) = get(&worker_addr, "/metrics", None).await;
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    promtool(&["check", "metrics"], &worker_text);
    let (om_type, om) = get(
        &worker_addr,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
    )
    .await;
    assert!(
        om_type.starts_with("application/openmetrics-text"),
        "{om_type}"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    for line in [
        r#"rpc_worker_jobs_total{rpc_service="Conv",rpc_method="echo",outcome="succeeded"} 1"#,
        r#"rpc_worker_jobs_total{rpc_service="Conv",rpc_method="fail",outcome="failed"} 1"#,
        r#"rpc_worker_queue_wait_seconds_bucket{le="86400.0",rpc_service="Conv",rpc_method="echo"} 1"#,
        r#"rpc_worker_handler_duration_seconds_bucket{le="3600.0",rpc_service="Conv",rpc_method="echo"} 1"#,
        "rpc_worker_jobs_in_flight 0",
    ] {
        assert!(
            worker_text.lines().any(|l| l == line),
            "no {line:?} in\n{worker_text}"
        );
    }
    let worker_names = names(&worker_text);
    for name in [
        "rpc_build_info",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(worker_names.contains(name), "no {name} in\n{worker_text}");
    }
    assert!(
        worker_names.iter().all(|n| !n.starts_with("rpc_queue_")),
        "a worker exports no queue gauges:\n{worker_text}"
    );

    // The exporter: every queue once, read from Redis.
    let (_exporter, exporter_addr) = start_exporter(&url);
    let (_, exporter_text) = get(&exporter_addr, "/metrics", None).await;
    promtool(&["check", "metrics"], &exporter_text);
    for line in [
        "rpc_broker_up 1",
        r#"rpc_queue_paused{rpc_service="Conv"} 1.0"#,
        r#"rpc_queue_scheduled{rpc_service="Conv"} 1.0"#,
        r#"rpc_queue_depth{rpc_service="Conv"} 0.0"#,
        r#"rpc_queue_leased{rpc_service="Conv"} 0.0"#,
        r#"rpc_queue_dead_letters{rpc_service="Conv"} 0.0"#,
        r#"rpc_queue_consumers{rpc_service="Conv"} 1.0"#,
    ] {
        assert!(
            exporter_text.lines().any(|l| l == line),
            "no {line:?} in\n{exporter_text}"
        );
    }
    let exporter_names = names(&exporter_text);
    for name in [
        "rpc_build_info",
        "process_cpu_seconds_total",
        "rpc_queue_enqueued_total",
    ] {
        assert!(
            exporter_names.contains(name),
            "no {name} in\n{exporter_text}"
        );
    }
    assert!(exporter_names.iter().all(|n| !n.starts_with("rpc_worker_")));
    let (_, ready) = get(&exporter_addr, "/readyz", None).await;
    assert_eq!(ready.trim(), "ok");

    let _ = stop.send(());
    let _ = running.await;

    // A client's registry, as an application would serve it.
    let mut om = String::new();
    encode(&mut om, &client_registry).unwrap();
    let client_text = exposition::classic(&om);
    promtool(&["check", "metrics"], &client_text);
    for line in [
        r#"rpc_client_calls_total{rpc_service="Conv",rpc_method="echo",outcome="succeeded"} 1"#,
        r#"rpc_client_calls_total{rpc_service="Conv",rpc_method="fail",outcome="failed"} 1"#,
    ] {
        assert!(
            client_text.lines().any(|l| l == line),
            "no {line:?} in\n{client_text}"
        );
    }

    // No label Prometheus itself sets on every scraped series.
    for text in [&worker_text, &exporter_text, &client_text] {
        let labels = label_names(text);
        assert!(
            !labels.contains("job") && !labels.contains("instance"),
            "{labels:?}"
        );
    }

    // Rules and dashboard query only what exists.
    let mut known: HashSet<String> = worker_names;
    known.extend(exporter_names);
    known.extend(names(&client_text));
    let rules_path = repo_root().join("deploy/prometheus/rules.yml");
    let rules = std::fs::read_to_string(&rules_path).unwrap();
    promtool(&["check", "rules", rules_path.to_str().unwrap()], "");
    let mut recorded = HashSet::new();
    let mut lines = rules.lines().peekable();
    while let Some(line) = lines.next() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("- record: ") {
            recorded.insert(name.trim().to_owned());
            // The expression: one line, or a block after `expr: |`.
            let expr_line = lines.next().unwrap().trim().to_owned();
            let mut expr = expr_line.strip_prefix("expr:").unwrap().trim().to_owned();
            if expr == "|" {
                expr.clear();
                while lines.peek().is_some_and(|l| {
                    !l.trim().starts_with('-') && !l.trim().starts_with('#') && !l.trim().is_empty()
                }) {
                    expr.push_str(lines.next().unwrap());
                    expr.push('\n');
                }
            }
            for metric in promql_metrics(&expr) {
                assert!(
                    known.contains(&metric),
                    "rule {name} queries {metric}, which nothing exports"
                );
            }
        }
    }
    assert!(recorded.len() >= 10, "{recorded:?}");
    known.extend(recorded);

    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("deploy/grafana/rpc-overview.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut queried = 0;
    for panel in panels {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("a PromQL expression");
            let metrics = promql_metrics(expr);
            assert!(!metrics.is_empty(), "{expr}");
            for metric in metrics {
                assert!(
                    known.contains(&metric),
                    "panel {:?} queries {metric}, which nothing exports or records",
                    panel["title"]
                );
                queried += 1;
            }
        }
    }
    assert!(queried >= panels.len());
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["definition"].as_str() {
            let metric = query
                .strip_prefix("label_values(")
                .and_then(|q| q.split(',').next())
                .expect("label_values(METRIC, LABEL)");
            assert!(known.contains(metric.trim()), "{query}");
        }
    }
}

/// Issue 24 point 5: the exporter has a series per rate limit and metric
/// (`rpc_method` the job, empty for the service's own limit), never one
/// per call, and they pass promtool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exporter_has_one_series_per_rate_limit() {
    let redis = RedisServer::start().expect("redis");
    let url = redis.url();
    let mail = support::limited_mail(&url).await;
    let (_exporter, addr) = start_exporter(&url);
    let (_, text) = get(&addr, "/metrics", None).await;
    promtool(&["check", "metrics"], &text);
    for line in [
        r#"rpc_rate_limit_waiting{rpc_service="Mail",rpc_method="send"} 1"#,
        r#"rpc_rate_limit_waiting{rpc_service="Mail",rpc_method=""} 0"#,
        r#"rpc_rate_limit_allowed_total{rpc_service="Mail",rpc_method="send"} 1"#,
        r#"rpc_rate_limit_allowed_total{rpc_service="Mail",rpc_method=""} 1"#,
        r#"rpc_rate_limit_waited_total{rpc_service="Mail",rpc_method="send"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    let series = |name: &str| {
        text.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")))
            .count()
    };
    for name in [
        "rpc_rate_limit_waiting",
        "rpc_rate_limit_starts_last_second",
        "rpc_rate_limit_allowed_total",
        "rpc_rate_limit_waited_total",
    ] {
        assert_eq!(series(name), 2, "{name}: one per limit in\n{text}");
    }
    let _ = mail.stop.send(());
    let _ = mail.running.await;
}

/// Issue 24 point 5: the exporter has one series per service and
/// priority lane (adding up to `rpc_queue_depth`, an unreadable lane 0),
/// and group keys only as per-service counts: no series names a key, as
/// no label value comes from a message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exporter_has_lane_series_and_group_counts_per_service_never_per_key() {
    let redis = RedisServer::start().expect("redis");
    support::prio_with_lanes_and_group_keys(&redis);
    let (_exporter, addr) = start_exporter(&redis.url());
    let (_, text) = get(&addr, "/metrics", None).await;
    promtool(&["check", "metrics"], &text);
    for line in [
        r#"rpc_queue_depth{rpc_service="Prio"} 3.0"#,
        r#"rpc_queue_lane_depth{rpc_service="Prio",priority="1"} 2.0"#,
        r#"rpc_queue_lane_depth{rpc_service="Prio",priority="2"} 0.0"#,
        r#"rpc_queue_lane_depth{rpc_service="Prio",priority="3"} 1.0"#,
        r#"rpc_queue_lane_depth{rpc_service="Prio",priority="5"} 0.0"#,
        r#"rpc_group_calls_running{rpc_service="Prio"} 2"#,
        r#"rpc_group_calls_waiting{rpc_service="Prio"} 1"#,
        r#"rpc_group_keys_at_limit{rpc_service="Prio"} 1"#,
        r#"rpc_group_keys_look_capped{rpc_service="Prio"} 0"#,
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    let lanes = text
        .lines()
        .filter(|l| l.starts_with("rpc_queue_lane_depth{"))
        .count();
    assert_eq!(lanes, 5, "one per lane in\n{text}");
    assert!(
        !text.contains("t1") && !text.contains("junk"),
        "no key in a series:\n{text}"
    );
}

#[test]
fn promql_metric_names_are_found_and_labels_functions_and_ranges_are_not() {
    let expr = r#"histogram_quantile(0.95, sum by (rpc_service, le) (rate(a_bucket{x="y"}[5m]))) / on (rpc_service) b:rec"#;
    assert_eq!(promql_metrics(expr), ["a_bucket", "b:rec"]);
    assert_eq!(
        promql_metrics("time() - process_start_time_seconds"),
        ["process_start_time_seconds"]
    );
}
