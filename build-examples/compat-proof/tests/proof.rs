//! The checker is proved right: for every v1/v2 schema pair that
//! `rpc-codegen breaking` is tested on, both versions' generated types carry
//! real calls over a private Redis, old client against new worker, new
//! client against old worker, and jobs queued (and results kept) before the
//! deploy, and the directions that actually broke must be exactly the
//! directions the checker reported.
//!
//! Clients call through `Client::call_typed`/`send_typed`/`send_one_way`
//! with the version's own request, result and error types, as generated
//! clients do; workers decode parameters with the version's request type and
//! answer with values written through its result and error types, as
//! generated servers do. The values tried come from each version's JSON
//! Schemas (every variant, both ends of integer ranges, optional fields
//! absent and present, null), kept only when the writer's type can hold them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rpc_codegen::Direction;
use rpc_runtime::__private::RawValue;
use rpc_runtime::{BoxFuture, Client, Context, Inspector, JobInfo, Outcome, Service, Worker};
use rpc_testkit::RedisServer;
use serde_json::Value;

#[path = "support/glue.rs"]
mod glue;
#[path = "support/pairs.rs"]
mod pairs;

use glue::{Glue, Observed};
use pairs::pairs;

#[path = "support/candidates.rs"]
mod candidates;

/// One version of a pair: its jobs and its JSON Schemas.
struct Version {
    jobs: Vec<Glue>,
    schemas: Value,
}

impl Version {
    fn new(file: PathBuf, jobs: Vec<Glue>) -> Self {
        let schemas = rpc_codegen::Builder::new()
            .file(&file)
            .json_schema()
            .unwrap_or_else(|d| panic!("{} compiles:\n{d}", file.display()));
        Version { jobs, schemas }
    }

    fn schema_of(&self, glue: &Glue, part: &str) -> Option<&Value> {
        self.schemas
            .as_array()?
            .iter()
            .find(|s| s["service"] == glue.service && s["job"] == glue.job)?
            .get(part)
    }

    /// What `write` makes of the candidate values of `part` (`request`,
    /// `response`, `error`) of `glue`'s schema: those the type can hold.
    fn written<T>(&self, glue: &Glue, part: &str, write: fn(&Value) -> Option<T>) -> Vec<T> {
        self.schema_of(glue, part).map_or_else(Vec::new, |schema| {
            candidates::candidates(schema, schema)
                .iter()
                .filter_map(write)
                .collect()
        })
    }

    /// The parameters this version's client writes for `glue`.
    fn params(&self, glue: &Glue) -> Vec<Value> {
        self.written(glue, "request", glue.write_params)
    }

    /// The answers this version's worker gives for `glue`: results and
    /// application errors, interleaved.
    fn answers(&self, glue: &Glue) -> Vec<Outcome> {
        let oks = self.written(glue, "response", glue.write_ok);
        let errs = self.written(glue, "error", glue.write_err);
        let mut out = Vec::new();
        for i in 0..oks.len().max(errs.len()) {
            out.extend(oks.get(i).cloned());
            out.extend(errs.get(i).cloned());
        }
        if out.is_empty() {
            out.push(Outcome::Ok("null".into()));
        }
        out
    }

    fn find(&self, glue: &Glue) -> Option<&Glue> {
        self.jobs
            .iter()
            .find(|g| g.service == glue.service && g.job == glue.job)
    }
}

/// A worker's service for one version: reads parameters with the version's
/// request types, answers with its answers in turn, and logs every read.
struct ProofService {
    name: &'static str,
    jobs: &'static [JobInfo],
    glue: Vec<(Glue, Vec<Outcome>, AtomicUsize)>,
    log: Arc<Mutex<Vec<Observed>>>,
}

impl Service for ProofService {
    fn name(&self) -> &'static str {
        self.name
    }

    fn jobs(&self) -> &'static [JobInfo] {
        self.jobs
    }

    fn dispatch<'a>(
        &'a self,
        _ctx: Context,
        job: &'a str,
        params: &'a RawValue,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let log = |entry: Observed| self.log.lock().expect("log").push(entry);
            let Some((glue, answers, next)) = self.glue.iter().find(|(g, _, _)| g.job == job)
            else {
                log(Err(format!("unknown job `{}.{job}`", self.name)));
                return Outcome::unknown_job(job);
            };
            if let Err(outcome) = (glue.read_params)(params) {
                log(Err(format!(
                    "{}.{job} refused {}: {outcome:?}",
                    self.name,
                    params.get()
                )));
                return outcome;
            }
            log(Ok(()));
            if glue.one_way {
                return Outcome::Ok("null".into());
            }
            answers[next.fetch_add(1, Ordering::SeqCst) % answers.len()].clone()
        })
    }
}

/// A running worker for `version`, stopped (aborted) on drop.
struct RunningWorker {
    task: tokio::task::JoinHandle<()>,
    log: Arc<Mutex<Vec<Observed>>>,
    /// The services it serves, and a look at their queues.
    services: Vec<&'static str>,
    inspector: Inspector,
}

impl RunningWorker {
    /// Whether the queues of the services it serves are empty: every job
    /// it could take has been run (and logged first: a job leaves its
    /// queue when done).
    async fn drained(&self) -> bool {
        for service in &self.services {
            match self.inspector.service_stats(service).await {
                Ok(Some(stats)) if stats.stream_length > 0 => return false,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        true
    }
}

impl Drop for RunningWorker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start_worker(url: &str, prefix: &str, version: &Version) -> RunningWorker {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut by_service: BTreeMap<&'static str, Vec<Glue>> = BTreeMap::new();
    for glue in &version.jobs {
        by_service.entry(glue.service).or_default().push(*glue);
    }
    let services: Vec<&'static str> = by_service.keys().copied().collect();
    let mut builder = Worker::builder(url).prefix(prefix);
    for (name, jobs) in by_service {
        let infos: Vec<JobInfo> = jobs
            .iter()
            .map(|g| JobInfo {
                name: g.job,
                one_way: g.one_way,
                timeout_ms: None,
                max_attempts: None,
                deprecated: false,
                backoff: None,
                rate: None,
                group_limit: None,
                priority: None,
            })
            .collect();
        builder = builder.mount(ProofService {
            name,
            jobs: Box::leak(infos.into_boxed_slice()),
            glue: jobs
                .iter()
                .map(|g| (*g, version.answers(g), AtomicUsize::new(0)))
                .collect(),
            log: log.clone(),
        });
    }
    let worker = builder.build().await.expect("worker connects");
    let task = tokio::spawn(async move {
        let _ = worker.run_until(std::future::pending::<()>()).await;
    });
    let inspector = Inspector::connect(url, prefix)
        .await
        .expect("inspector connects");
    RunningWorker {
        task,
        log,
        services,
        inspector,
    }
}

async fn connect(url: &str, prefix: &str) -> Client {
    Client::builder(url)
        .prefix(prefix)
        .default_timeout(Duration::from_millis(1500))
        .connect()
        .await
        .expect("client connects")
}

/// Waits until the worker's log holds `count` entries, or until it has run
/// every job it can take (the rest wait on queues no worker of its version
/// reads: never served), for a minute at most; returns the entries.
async fn log_entries(worker: &RunningWorker, count: usize) -> Vec<Observed> {
    let give_up = Instant::now() + Duration::from_secs(60);
    while worker.log.lock().expect("log").len() < count
        && !worker.drained().await
        && Instant::now() < give_up
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.log.lock().expect("log").clone()
}

/// Live calls: `clients`' version calls `workers`' version. Returns what failed.
async fn live(url: &str, prefix: &str, clients: &Version, workers: &Version) -> Vec<String> {
    let worker = start_worker(url, prefix, workers).await;
    let client = connect(url, prefix).await;
    let mut failures = Vec::new();
    for glue in &clients.jobs {
        let params = clients.params(glue);
        assert!(
            !params.is_empty(),
            "no parameters to try for {}.{}",
            glue.service,
            glue.job
        );
        let answers = workers.find(glue).map_or(0, |g| workers.answers(g).len());
        for k in 0..params.len().max(answers) {
            let p = params[k % params.len()].clone();
            let outcome = if glue.one_way {
                let before = worker.log.lock().expect("log").len();
                match (glue.send)(client.clone(), glue.job_ref(), p.clone()).await {
                    Err(err) => Err(err),
                    Ok(_) => match log_entries(&worker, before + 1).await.get(before) {
                        Some(entry) => entry.clone(),
                        None => Err("never served".into()),
                    },
                }
            } else {
                (glue.call)(client.clone(), glue.job_ref(), p.clone()).await
            };
            if let Err(err) = outcome {
                failures.push(format!("{}.{} {p}: {err}", glue.service, glue.job));
            }
        }
    }
    failures
}

/// Jobs queued by old clients before any new worker runs, and results kept
/// by old workers read by new clients.
async fn queued(url: &str, prefix: &str, old: &Version, new: &Version) -> Vec<String> {
    let mut failures = Vec::new();
    let client = connect(url, prefix).await;
    let mut sent = 0;
    for glue in &old.jobs {
        for p in old.params(glue) {
            match (glue.send)(client.clone(), glue.job_ref(), p).await {
                Ok(_) => sent += 1,
                Err(err) => failures.push(format!("sending: {err}")),
            }
        }
    }
    let worker = start_worker(url, prefix, new).await;
    let entries = log_entries(&worker, sent).await;
    drop(worker);
    failures.extend(entries.iter().filter_map(|e| e.clone().err()));
    if entries.len() < sent {
        failures.push(format!("{} queued jobs never served", sent - entries.len()));
    }

    let kept_prefix = format!("{prefix}k");
    let _old_worker = start_worker(url, &kept_prefix, old).await;
    let client = connect(url, &kept_prefix).await;
    for glue in old.jobs.iter().filter(|g| !g.one_way) {
        let Some(reader) = new.find(glue).filter(|g| !g.one_way) else {
            continue; // No new client can ask for this result.
        };
        let answers = old.answers(glue).len();
        let params = old.params(glue);
        assert!(
            !params.is_empty(),
            "no parameters to try for {}.{}",
            glue.service,
            glue.job
        );
        for k in 0..params.len().max(answers) {
            let Ok(id) = (glue.send)(
                client.clone(),
                glue.job_ref(),
                params[k % params.len()].clone(),
            )
            .await
            else {
                continue;
            };
            if let Err(err) = (reader.fetch)(client.clone(), id).await {
                failures.push(format!(
                    "kept result of {}.{}: {err}",
                    glue.service, glue.job
                ));
            }
        }
    }
    failures
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rpc-codegen/tests/data/breaking")
}

fn short(dirs: &BTreeSet<Direction>) -> String {
    if dirs.is_empty() {
        return "-".into();
    }
    dirs.iter()
        .map(|d| match d {
            Direction::OldClientNewWorker => "old->new",
            Direction::NewClientOldWorker => "new->old",
            Direction::QueuedBeforeDeploy => "queued",
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checker_predicts_what_breaks_over_redis() {
    // Each pair, run both ways and across a deploy, breaks exactly where `breaking` said it would.
    let redis = RedisServer::start().expect("start redis-server");
    let url = redis.url();
    let mut rows = Vec::new();
    let mut wrong = Vec::new();
    for (index, (name, v1_jobs, v2_jobs)) in pairs().into_iter().enumerate() {
        let v1_file = data_dir().join(format!("{name}_v1.rpc"));
        let v2_file = data_dir().join(format!("{name}_v2.rpc"));
        let report = rpc_codegen::Builder::new()
            .file(&v1_file)
            .breaking_changes(&rpc_codegen::Builder::new().file(&v2_file))
            .unwrap_or_else(|d| panic!("{name} compiles:\n{d}"));
        let predicted: BTreeSet<Direction> =
            report.changes().iter().flat_map(|c| c.breaks()).collect();
        let rules: BTreeSet<&str> = report.changes().iter().map(|c| c.rule().code()).collect();
        let verdict = if report.is_breaking() {
            "breaking"
        } else if report.changes().is_empty() {
            "safe"
        } else {
            "warning"
        };

        let v1 = Version::new(v1_file, v1_jobs);
        let v2 = Version::new(v2_file, v2_jobs);
        let mut observed = BTreeSet::new();
        let mut notes = Vec::new();
        let runs = [
            (
                Direction::OldClientNewWorker,
                live(&url, &format!("p{index}a"), &v1, &v2).await,
            ),
            (
                Direction::NewClientOldWorker,
                live(&url, &format!("p{index}b"), &v2, &v1).await,
            ),
            (
                Direction::QueuedBeforeDeploy,
                queued(&url, &format!("p{index}c"), &v1, &v2).await,
            ),
        ];
        for (direction, failures) in runs {
            if let Some(first) = failures.first() {
                observed.insert(direction);
                notes.push(first.clone());
            }
        }
        let agree = predicted == observed;
        if !agree {
            wrong.push(format!(
                "{name}: predicted {predicted:?}, observed {observed:?}: {notes:?}"
            ));
        }
        rows.push(format!(
            "| {name} | {} | {verdict} | {} | {} | {} |",
            rules.into_iter().collect::<Vec<_>>().join(", "),
            short(&predicted),
            short(&observed),
            if agree { "yes" } else { "NO" }
        ));
    }
    println!("| pair | rules | verdict | checker: breaks | observed over Redis | agree |");
    println!("|---|---|---|---|---|---|");
    for row in &rows {
        println!("{row}");
    }
    assert!(
        wrong.is_empty(),
        "the checker was wrong:\n{}",
        wrong.join("\n")
    );
}
