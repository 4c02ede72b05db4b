//! docker-compose.yml and the Dockerfile, checked without a container
//! engine (none runs where the tests run).
//!
//! The compose file must be valid by the Compose Specification's JSON
//! Schema (vendored in `tests/data/compose-spec/`, with its licence), after
//! YAML anchors and `<<` merge keys are resolved as compose resolves them.
//! And it must be what an operator needs: a worker healthcheck that asks
//! the port the worker serves `/healthz` on, a stop grace period longer
//! than the worker's drain, a dashboard whose token comes from the
//! environment, and only binaries the image carries.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("rpc-cli sits in the workspace root")
        .to_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A compose file as compose sees it: YAML with its anchors and merge keys
/// resolved, as JSON.
fn compose_value(yaml: &str) -> Result<Value, String> {
    let mut value: serde_norway::Value =
        serde_norway::from_str(yaml).map_err(|e| format!("not YAML: {e}"))?;
    value
        .apply_merge()
        .map_err(|e| format!("bad merge key: {e}"))?;
    serde_json::to_value(value).map_err(|e| format!("not JSON-shaped: {e}"))
}

/// The Compose Specification's verdict on `yaml`: every violation, one per
/// line, with where it is.
fn compose_spec_errors(yaml: &str) -> Vec<String> {
    let schema_path = repo_root().join("rpc-cli/tests/data/compose-spec/compose-spec.json");
    let schema: Value =
        serde_json::from_str(&read(&schema_path)).expect("the vendored schema is JSON");
    let validator = jsonschema::draft7::new(&schema).expect("the vendored schema compiles");
    let instance = match compose_value(yaml) {
        Ok(v) => v,
        Err(e) => return vec![e],
    };
    validator
        .iter_errors(&instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn compose_file() -> String {
    read(&repo_root().join("docker-compose.yml"))
}

fn compose() -> Value {
    compose_value(&compose_file()).expect("docker-compose.yml reads")
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("a list of strings: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap_or_else(|| panic!("a string: {s}")))
        .collect()
}

/// The value after `flag` in a command line.
fn after<'a>(command: &[&'a str], flag: &str) -> Option<&'a str> {
    let at = command.iter().position(|a| *a == flag)?;
    command.get(at + 1).copied()
}

#[test]
fn docker_compose_yml_follows_the_compose_specification() {
    let errors = compose_spec_errors(&compose_file());
    assert!(
        errors.is_empty(),
        "docker-compose.yml breaks the Compose Specification:\n{}",
        errors.join("\n")
    );
}

/// The check has teeth: a misspelt key, a healthcheck of the wrong type, a
/// condition compose does not know and broken YAML are each refused.
#[test]
fn a_broken_compose_file_is_refused() {
    let good = compose_file();
    let breakages = [
        ("stop_grace_period:", "stop_grace_periode:"),
        (
            "test: [\"CMD\", \"worker\", \"--probe\", \"127.0.0.1:9464\"]",
            "test: 9464",
        ),
        ("condition: service_healthy", "condition: service_happy"),
        ("services:", "services: ["),
    ];
    for (from, to) in breakages {
        assert!(good.contains(from), "docker-compose.yml has no `{from}`");
        let broken = good.replacen(from, to, 1);
        assert!(
            !compose_spec_errors(&broken).is_empty(),
            "`{from}` changed to `{to}` passed"
        );
    }
}

#[test]
fn workers_have_a_healthcheck_on_their_healthz_and_time_to_drain() {
    let compose = compose();
    let worker = &compose["services"]["worker"];
    let command = strings(&worker["command"]);
    assert_eq!(command[0], "worker");
    let served = after(&command, "--metrics-addr").expect("the worker serves /healthz");
    let served_port = served.rsplit_once(':').expect("host:port").1;

    // The probe is the worker binary itself, asking the port it serves.
    let test = strings(&worker["healthcheck"]["test"]);
    assert_eq!(&test[..3], ["CMD", "worker", "--probe"], "{test:?}");
    let probed = test[3].rsplit_once(':').expect("host:port");
    assert_eq!(probed, ("127.0.0.1", served_port), "{test:?}");

    // Docker's SIGKILL must come after the worker's drain, with room for
    // the taker to notice and the last completions to be written.
    let grace = worker["stop_grace_period"]
        .as_str()
        .expect("the worker sets stop_grace_period");
    let grace = humantime::parse_duration(grace).expect("a duration");
    let drain = rpc_runtime::WorkerSettings::default().shutdown_grace;
    assert!(
        grace >= drain + Duration::from_secs(10),
        "stop_grace_period {grace:?} leaves no room after the {drain:?} drain"
    );
    if let Some(signal) = worker["stop_signal"].as_str() {
        assert_eq!(signal, "SIGTERM", "the worker drains on SIGTERM");
    }
}

#[test]
fn the_dashboard_runs_with_its_token_from_the_environment() {
    let compose = compose();
    let dashboard = &compose["services"]["dashboard"];
    let command = strings(&dashboard["command"]);
    assert_eq!(&command[..2], ["rpc", "dashboard"], "{command:?}");
    let listen = after(&command, "--listen").expect("--listen");
    let port = listen.rsplit_once(':').expect("host:port").1;
    // Published: reachable from the host on the port it listens on.
    let ports = strings(&dashboard["ports"]);
    assert!(
        ports.iter().any(|p| p.ends_with(&format!(":{port}"))),
        "{ports:?}"
    );
    // The token: from the environment, never written in the file, and
    // required (compose refuses to start without it).
    let token = dashboard["environment"]["RPC_DASHBOARD_TOKEN"]
        .as_str()
        .expect("RPC_DASHBOARD_TOKEN is set for the dashboard");
    assert!(token.starts_with("${RPC_DASHBOARD_TOKEN:?"), "{token}");
    assert!(
        dashboard["environment"]["REDIS_URL"].is_string(),
        "the dashboard reaches the same Redis"
    );
    // Its schemas are in the image: COPY schema/ to where --schema looks.
    let dockerfile = read(&repo_root().join("Dockerfile"));
    let schema = after(&command, "--schema").expect("--schema");
    let file = schema
        .strip_prefix("/usr/share/rpc/schema/")
        .unwrap_or_else(|| panic!("{schema} is not under /usr/share/rpc/schema/"));
    assert!(repo_root().join("schema").join(file).is_file(), "{schema}");
    assert!(dockerfile.contains("COPY schema/ /usr/share/rpc/schema/"));
}

/// What the image's binaries are: the files the build stage copies out.
fn image_binaries(dockerfile: &str) -> BTreeSet<String> {
    let copy = dockerfile
        .split("&& cp ")
        .nth(1)
        .expect("the build stage copies binaries out with `&& cp`");
    let copy = &copy[..copy.find("/out/").expect("into /out/")];
    copy.split_whitespace()
        .filter_map(|word| word.strip_prefix("target/release/"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_service_of_the_image_runs_a_binary_the_image_carries() {
    let dockerfile = read(&repo_root().join("Dockerfile"));
    let binaries = image_binaries(&dockerfile);
    for needed in ["worker", "rpc", "client", "demo"] {
        assert!(binaries.contains(needed), "{needed} not in {binaries:?}");
    }
    let compose = compose();
    let services = compose["services"].as_object().expect("services");
    let mut built = 0;
    for (name, service) in services {
        if service["image"] != "rpc-calculator:latest" {
            continue;
        }
        built += 1;
        let command = strings(&service["command"]);
        assert!(
            binaries.contains(command[0]),
            "{name} runs {}, which the image does not carry",
            command[0]
        );
        if let Some(test) = service["healthcheck"]["test"].as_array() {
            let program = test[1].as_str().expect("a program");
            assert!(binaries.contains(program), "{name}'s healthcheck {test:?}");
        }
    }
    assert!(built >= 3, "worker, dashboard and client use the image");
}

/// The runtime stage installs only what the binaries use: they link libc
/// alone (TLS is rustls), and read the system's trust store.
#[test]
fn the_image_installs_nothing_it_does_not_use() {
    let dockerfile = read(&repo_root().join("Dockerfile"));
    let run_stage = dockerfile.rsplit("\nFROM ").next().expect("a last stage");
    let installed: Vec<&str> = run_stage
        .split("apt-get install")
        .skip(1)
        .flat_map(|rest| {
            rest.split("&&")
                .next()
                .unwrap_or("")
                .split_whitespace()
                .filter(|w| !w.starts_with('-') && *w != "\\")
        })
        .collect();
    assert_eq!(installed, ["ca-certificates"], "{run_stage}");
}
