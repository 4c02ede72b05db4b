//! Codegen benchmark (not a timed test): builds a schema of 200 types and 200
//! jobs in memory, then times the whole pipeline (parse, validate, emit,
//! prettyplease) and the front half alone (parse + validate).
//!
//! ```text
//! cargo run --release -p rpc-codegen --example bench_codegen [RUNS]
//! ```
//!
//! Prints the median and fastest run in milliseconds. Target: under 100 ms.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

const TYPES: usize = 200;
const JOBS: usize = 200;
const SERVICES: usize = 4;

/// A schema with `TYPES` types (half structs, half enums, some recursive)
/// and `JOBS` jobs spread over `SERVICES` services.
fn schema_text() -> String {
    let mut s = String::from("//! Generated benchmark schema.\n\n");
    let scalars = ["i64", "String", "f64", "bool", "u32", "Bytes", "Json"];
    for i in 0..TYPES / 2 {
        let _ = writeln!(s, "/// Struct number {i}.\nstruct S{i} {{");
        for f in 0..6 {
            let ty = match (f, i) {
                (0, _) => scalars[i % scalars.len()].to_string(),
                (1, i) if i > 0 => format!("Vec<S{}>", i - 1),
                (2, i) if i > 1 => format!("Option<S{}>", i - 2),
                (3, _) => format!("Option<S{i}>"),
                (4, i) if i > 0 => format!("Map<String, E{}>", i - 1),
                _ => format!("Option<Vec<{}>>", scalars[(i + f) % scalars.len()]),
            };
            let _ = writeln!(s, "    /// Field {f}.\n    field_{f}: {ty},");
        }
        s.push_str("}\n\n");
    }
    for i in 0..TYPES / 2 {
        let _ = writeln!(
            s,
            "/// Enum number {i}.\nenum E{i} {{\n    Empty,\n    /// A struct variant.\n    \
             Full {{ code: u16, detail: Option<String> }},\n    Wrapped(S{i}),\n    \
             #[rename = \"nested_{i}\"]\n    Nested(Vec<E{i}>),\n}}\n"
        );
    }
    for service in 0..SERVICES {
        let _ = writeln!(
            s,
            "/// Service number {service}.\nservice Service{service} {{"
        );
        for j in 0..JOBS / SERVICES {
            let n = service * (JOBS / SERVICES) + j;
            let t = n % (TYPES / 2);
            let attrs = if n.is_multiple_of(3) {
                "    #[timeout_ms = 1500]\n    #[attempts = 4]\n"
            } else {
                ""
            };
            let ret = match n % 4 {
                0 => format!(" -> S{t}"),
                1 => format!(" -> Result<Vec<S{t}>, E{t}>"),
                2 => String::new(),
                _ => " -> Option<i64>".to_string(),
            };
            let _ = writeln!(
                s,
                "    /// Job number {n}.\n{attrs}    fn job_{n}(id: u64, item: S{t}, tags: Vec<String>){ret};"
            );
        }
        s.push_str("}\n\n");
    }
    s
}

fn median(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (ms(samples[samples.len() / 2]), ms(samples[0]))
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(21);
    let text = schema_text();
    let builder = rpc_codegen::Builder::new().source("bench.rpc", text.clone());

    // Warm up, and make sure the schema is valid.
    let files = match builder.generate() {
        Ok(files) => files,
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            std::process::exit(1);
        }
    };
    let lines: usize = files.iter().map(|f| f.code.lines().count()).sum();

    let mut full = Vec::with_capacity(runs);
    let mut front = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let _ = builder.generate();
        full.push(start.elapsed());
        let start = Instant::now();
        let _ = builder.check();
        front.push(start.elapsed());
    }
    let (full_median, full_min) = median(full);
    let (front_median, front_min) = median(front);
    println!(
        "schema: {TYPES} types, {JOBS} jobs, {} lines in; {lines} lines of Rust out",
        text.lines().count()
    );
    println!("parse + validate + emit + prettyplease: median {full_median:.1} ms, fastest {full_min:.1} ms ({runs} runs)");
    println!("parse + validate only:                  median {front_median:.1} ms, fastest {front_min:.1} ms");
}
