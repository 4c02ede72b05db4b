//! `deploy/prometheus.yml`, the config docker-compose.yml hands Prometheus:
//! valid for `promtool`, and scraping the port the workers are told to serve
//! their metrics on.

use std::path::{Path, PathBuf};
use std::process::Command;

use rpc_testkit::Tool;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("rpc-cli sits in the workspace root")
        .to_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The digits after `marker` in `text`.
fn port_after<'a>(text: &'a str, marker: &str) -> &'a str {
    let rest =
        &text[text.find(marker).unwrap_or_else(|| panic!("no `{marker}`"))..][marker.len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    &rest[..end]
}

#[test]
fn the_compose_prometheus_config_is_valid_and_scrapes_the_workers_metrics_port() {
    // A Prometheus that starts but scrapes nothing is the failure this
    // guards: a config typo, or a port that drifted from the workers'.
    let root = repo_root();
    let config = root.join("deploy/prometheus.yml");
    let compose = read(&root.join("docker-compose.yml"));
    assert!(
        compose.contains("./deploy/prometheus.yml:/etc/prometheus/prometheus.yml"),
        "docker-compose.yml mounts deploy/prometheus.yml into the prometheus service"
    );
    let served = port_after(&compose, r#""--metrics-addr", "0.0.0.0:"#);
    let prometheus = read(&config);
    let scraped = port_after(&prometheus, "port: ");
    assert_eq!(
        served, scraped,
        "Prometheus scrapes the workers' metrics port"
    );

    // Skipped without promtool, unless the run requires every tool
    // (scripts/test, CI): then it fails.
    let Some(promtool) = Tool::Promtool.or_skip("`promtool check config`") else {
        return;
    };
    let out = Command::new(promtool)
        .args(["check", "config"])
        .arg(&config)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool check config failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
