//! One test per compatibility rule of `rpc-codegen breaking`: a v1/v2 pair
//! of schemas, the rule that must fire (or must not), and the directions it
//! breaks. The table in the README is the summary of these tests.

use rpc_codegen::{Builder, CompatReport, Direction, Rule, Severity};

use Direction::QueuedBeforeDeploy as Queued;
use Direction::{NewClientOldWorker as NewClient, OldClientNewWorker as OldClient};

fn compare(v1: &str, v2: &str) -> CompatReport {
    Builder::new()
        .source("v1.rpc", v1)
        .breaking_changes(&Builder::new().source("v2.rpc", v2))
        .unwrap_or_else(|d| panic!("both versions are valid:\n{d}"))
}

/// The one change of `rule` (panics, showing the report, if there is not exactly one).
fn only(report: &CompatReport, rule: Rule) -> (Severity, Vec<Direction>, String) {
    let found: Vec<_> = report
        .changes()
        .iter()
        .filter(|c| c.rule() == rule)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {rule:?}:\n{}",
        report.render()
    );
    let change = found[0];
    (
        change.severity(),
        change.breaks().collect(),
        change.message().to_string(),
    )
}

/// Asserts `v1 -> v2` gives exactly the rules listed, `rule` breaking `dirs`.
fn breaks(v1: &str, v2: &str, rule: Rule, dirs: &[Direction]) -> String {
    let report = compare(v1, v2);
    let (severity, found, message) = only(&report, rule);
    assert_eq!(severity, Severity::Breaking, "{}", report.render());
    assert_eq!(found, dirs, "{}", report.render());
    assert!(report.is_breaking());
    message
}

fn safe(v1: &str, v2: &str) {
    let report = compare(v1, v2);
    assert!(report.changes().is_empty(), "{}", report.render());
}

#[test]
fn an_unchanged_schema_has_no_changes() {
    // Comparing a real schema with itself reports nothing.
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schema/calculator.rpc"
    ))
    .expect("calculator.rpc");
    safe(&text, &text);
}

#[test]
fn a_removed_service_breaks_old_clients_and_queued_jobs() {
    // Nobody reads the old queue any more.
    breaks(
        "service A { fn x(); } service B { fn y(); }",
        "service A { fn x(); }",
        Rule::RemovedService,
        &[OldClient, Queued],
    );
}

#[test]
fn a_renamed_service_breaks_every_direction() {
    // The service name is the queue: a rename moves every job to another stream.
    let message = breaks(
        "service Calc { fn add(a: i64) -> i64; }",
        "service Calculator { fn add(a: i64) -> i64; }",
        Rule::RenamedService,
        &[OldClient, NewClient, Queued],
    );
    assert_eq!(message, "service `Calc` is renamed to `Calculator`");
}

#[test]
fn a_new_service_is_safe() {
    // Nobody old calls it.
    safe(
        "service A { fn x(); }",
        "service A { fn x(); } service B { fn y(); }",
    );
}

#[test]
fn a_removed_job_breaks_old_clients_and_queued_jobs() {
    // New workers answer `unknown_job`.
    breaks(
        "service A { fn x(); fn y(); }",
        "service A { fn x(); }",
        Rule::RemovedJob,
        &[OldClient, Queued],
    );
}

#[test]
fn a_renamed_job_without_rename_breaks_and_with_rename_is_safe() {
    // The job name is on the wire; `#[rename]` keeps the old one.
    let report = compare(
        "service A { fn add(a: i64) -> i64; }",
        "service A { fn plus(a: i64) -> i64; }",
    );
    let (_, dirs, _) = only(&report, Rule::RenamedJob);
    assert_eq!(dirs, [OldClient, NewClient, Queued]);
    assert!(report
        .render()
        .contains("help: keep the wire name: `#[rename = \"add\"] fn plus(..)`"));
    safe(
        "service A { fn add(a: i64) -> i64; }",
        "service A { #[rename = \"add\"] fn plus(a: i64) -> i64; }",
    );
}

#[test]
fn a_new_job_warns_that_old_workers_do_not_know_it() {
    // Safe for old clients; new clients calling it reach old workers first.
    let report = compare("service A { fn x(); }", "service A { fn x(); fn y(); }");
    let (severity, dirs, _) = only(&report, Rule::NewJob);
    assert_eq!(severity, Severity::Warning);
    assert_eq!(dirs, [NewClient]);
    assert!(!report.is_breaking());
}

#[test]
fn a_new_required_parameter_breaks_old_senders() {
    // Old clients (and queued jobs) do not send it; old workers ignore it.
    breaks(
        "service A { fn x(a: i64); }",
        "service A { fn x(a: i64, b: i64); }",
        Rule::NewRequiredField,
        &[OldClient, Queued],
    );
}

#[test]
fn a_new_optional_parameter_is_safe() {
    // Missing reads as None; old workers ignore an extra key.
    safe(
        "service A { fn x(a: i64); }",
        "service A { fn x(a: i64, b: Option<i64>); }",
    );
}

#[test]
fn a_removed_parameter_breaks_old_workers() {
    // New clients stop sending it; old workers still require it.
    breaks(
        "service A { fn x(a: i64, b: i64); }",
        "service A { fn x(a: i64); }",
        Rule::RemovedField,
        &[NewClient],
    );
}

#[test]
fn a_removed_optional_field_is_only_a_warning() {
    // Old readers see it as absent, which they accept.
    let report = compare(
        "struct T { a: i64, b: Option<i64> } service A { fn x() -> T; }",
        "struct T { a: i64 } service A { fn x() -> T; }",
    );
    let (severity, dirs, _) = only(&report, Rule::RemovedField);
    assert_eq!((severity, dirs), (Severity::Warning, vec![]));
    assert!(!report.is_breaking());
}

#[test]
fn a_removed_result_field_breaks_old_clients() {
    // A new worker's result lacks a field old clients require.
    breaks(
        "struct T { a: i64, b: i64 } service A { fn x() -> T; }",
        "struct T { a: i64 } service A { fn x() -> T; }",
        Rule::RemovedField,
        &[OldClient],
    );
}

#[test]
fn a_renamed_field_without_rename_breaks_and_with_rename_is_safe() {
    // Field names are wire keys; renaming the type itself is invisible.
    breaks(
        "struct T { a: i64 } service A { fn x(t: T); }",
        "struct T { b: i64 } service A { fn x(t: T); }",
        Rule::RenamedField,
        &[OldClient, NewClient, Queued],
    );
    safe(
        "struct T { a: i64 } service A { fn x(t: T); }",
        "struct Renamed { #[rename = \"a\"] b: i64 } service A { fn x(t: Renamed); }",
    );
}

#[test]
fn optional_to_required_breaks_old_senders() {
    // Old clients may leave it out or send null.
    breaks(
        "service A { fn x(a: Option<i64>); }",
        "service A { fn x(a: i64); }",
        Rule::OptionalToRequired,
        &[OldClient, Queued],
    );
}

#[test]
fn required_to_optional_breaks_old_workers() {
    // New clients may leave it out; old workers require it.
    breaks(
        "service A { fn x(a: i64); }",
        "service A { fn x(a: Option<i64>); }",
        Rule::RequiredToOptional,
        &[NewClient],
    );
}

#[test]
fn a_widened_parameter_breaks_only_old_workers() {
    // i32 -> i64: a new worker reads every old value; an old worker not every new one.
    breaks(
        "service A { fn x(a: i32); }",
        "service A { fn x(a: i64); }",
        Rule::ChangedType,
        &[NewClient],
    );
}

#[test]
fn a_widened_result_breaks_only_old_clients() {
    // i32 -> i64 for a result: old clients read what new workers write, not the reverse.
    breaks(
        "service A { fn x() -> i32; }",
        "service A { fn x() -> i64; }",
        Rule::ChangedType,
        &[OldClient],
    );
}

#[test]
fn a_changed_type_breaks_both_ways() {
    // String and i64 read nothing of each other.
    let message = breaks(
        "service A { fn x(a: String) -> bool; }",
        "service A { fn x(a: i64) -> bool; }",
        Rule::ChangedType,
        &[OldClient, NewClient, Queued],
    );
    assert_eq!(
        message,
        "the type of parameter `a` of job `A.x` changed from `String` to `i64`"
    );
}

#[test]
fn integers_widen_to_floats_only_while_exact() {
    // i32 -> f64 loses nothing; i64 -> f64 rounds above 2^53, so it breaks.
    breaks(
        "service A { fn x(a: i32); }",
        "service A { fn x(a: f64); }",
        Rule::ChangedType,
        &[NewClient],
    );
    breaks(
        "service A { fn x(a: i64); }",
        "service A { fn x(a: f64); }",
        Rule::ChangedType,
        &[OldClient, NewClient, Queued],
    );
}

#[test]
fn json_reads_anything() {
    // A reader of `Json` takes whatever the other side writes.
    breaks(
        "service A { fn x(a: i64); }",
        "service A { fn x(a: Json); }",
        Rule::ChangedType,
        &[NewClient],
    );
}

#[test]
fn a_new_variant_breaks_old_readers_of_that_type() {
    // In a parameter, old workers read it; in a result, old clients do.
    breaks(
        "enum E { A } service S { fn x(e: E); }",
        "enum E { A, B } service S { fn x(e: E); }",
        Rule::NewVariant,
        &[NewClient],
    );
    breaks(
        "enum E { A } service S { fn x() -> E; }",
        "enum E { A, B } service S { fn x() -> E; }",
        Rule::NewVariant,
        &[OldClient],
    );
}

#[test]
fn a_removed_variant_breaks_new_readers() {
    // Old clients and queued jobs may still send it.
    breaks(
        "enum E { A, B { n: i64 } } service S { fn x(e: E); }",
        "enum E { A } service S { fn x(e: E); }",
        Rule::RemovedVariant,
        &[OldClient, Queued],
    );
}

#[test]
fn a_renamed_variant_without_rename_breaks_and_with_rename_is_safe() {
    // Variant names are the wire tags.
    breaks(
        "enum E { A, B(i64) } service S { fn x(e: E); }",
        "enum E { A, C(i64) } service S { fn x(e: E); }",
        Rule::RenamedVariant,
        &[OldClient, NewClient, Queued],
    );
    safe(
        "enum E { A, B(i64) } service S { fn x(e: E); }",
        "enum E { A, #[rename = \"B\"] C(i64) } service S { fn x(e: E); }",
    );
}

#[test]
fn a_changed_variant_shape_breaks() {
    // `"A"` is not `{"A": {...}}`.
    breaks(
        "enum E { A } service S { fn x(e: E); }",
        "enum E { A { n: i64 } } service S { fn x(e: E); }",
        Rule::ChangedType,
        &[OldClient, NewClient, Queued],
    );
}

#[test]
fn a_job_that_became_one_way_breaks_old_clients() {
    // Old clients wait for a value and get `null`.
    breaks(
        "service S { fn x() -> i64; }",
        "service S { fn x(); }",
        Rule::ReplyToOneWay,
        &[OldClient],
    );
}

#[test]
fn a_one_way_job_that_now_answers_breaks_new_clients() {
    // Old workers answer `null`, which a new client cannot read as the value.
    breaks(
        "service S { fn x(); }",
        "service S { fn x() -> i64; }",
        Rule::OneWayToReply,
        &[NewClient],
    );
}

#[test]
fn a_changed_error_type_breaks() {
    // An added error type: old clients cannot read it; a removed one: new clients cannot.
    breaks(
        "enum E { A } service S { fn x() -> i64; }",
        "enum E { A } service S { fn x() -> Result<i64, E>; }",
        Rule::ChangedErrorType,
        &[OldClient],
    );
    breaks(
        "enum E { A } service S { fn x() -> Result<i64, E>; }",
        "enum E { A } service S { fn x() -> i64; }",
        Rule::ChangedErrorType,
        &[NewClient, Queued],
    );
    // A new variant in the error type is a new variant old clients cannot read.
    breaks(
        "enum E { A } service S { fn x() -> Result<i64, E>; }",
        "enum E { A, B } service S { fn x() -> Result<i64, E>; }",
        Rule::NewVariant,
        &[OldClient],
    );
}

#[test]
fn changed_defaults_are_warnings() {
    // Timeouts and attempts are defaults of the caller; nothing on the wire stops being readable.
    let report = compare(
        "service S { #[timeout_ms = 100] fn x(); fn y(); }",
        "service S { #[timeout_ms = 200] fn x(); #[attempts = 5] fn y(); }",
    );
    assert!(!report.is_breaking(), "{}", report.render());
    for rule in [Rule::ChangedTimeout, Rule::ChangedAttempts] {
        let (severity, dirs, _) = only(&report, rule);
        assert_eq!((severity, dirs), (Severity::Warning, vec![]));
    }
}

#[test]
fn recursive_types_are_compared_once() {
    // A self-referencing type ends the walk instead of looping.
    breaks(
        "struct N { v: i64, next: Option<N> } service S { fn x(n: N); }",
        "struct N { v: i32, next: Option<N> } service S { fn x(n: N); }",
        Rule::ChangedType,
        &[OldClient, Queued],
    );
}

#[test]
fn a_type_used_in_several_places_is_reported_once_with_every_direction() {
    // The same field change seen from a parameter and a result is one finding.
    let report = compare(
        "enum E { A } service S { fn x(e: E) -> E; }",
        "enum E { A, B } service S { fn x(e: E) -> E; }",
    );
    let (_, dirs, _) = only(&report, Rule::NewVariant);
    assert_eq!(dirs, [OldClient, NewClient]);
}

#[test]
fn the_report_points_at_both_files() {
    // rustc style: the new position first, the old one under `:::`, then the directions and a hint.
    let report = compare(
        "service A {\n    fn x(a: i64);\n}\n",
        "service A {\n    fn x(a: i64, b: i64);\n}\n",
    );
    assert_eq!(
        report.render(),
        "error[new-required-field]: new required parameter `b` in job `A.x`\n \
         --> v2.rpc:2:18\n  |\n2 |     fn x(a: i64, b: i64);\n  |                  ^ required, but old senders do not send it\n \
         ::: v1.rpc:2:8\n  |\n2 |     fn x(a: i64);\n  |        - no `b` here\n  |\n  \
         = note: breaks old client -> new worker; messages queued before the deploy\n  \
         = help: make it optional: `b: Option<i64>`\n\nerror: 1 breaking change\n"
    );
}

#[test]
fn any_two_schemas_compare_without_panicking_and_each_equals_itself() {
    // Every schema of the repository and of the rule pairs against every other: a report, never a
    // panic; and a schema against itself has no changes (recursive types included).
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in [root.join("../schema"), root.join("tests/data/breaking")] {
        for entry in std::fs::read_dir(&dir).expect("a schema directory") {
            let path = entry.expect("an entry").path();
            if path.extension().is_some_and(|e| e == "rpc") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(files.len() > 60, "{}", files.len());
    for old in &files {
        for new in &files {
            let report = Builder::new()
                .file(old)
                .breaking_changes(&Builder::new().file(new))
                .unwrap_or_else(|d| panic!("{d}"));
            let _ = (report.render(), report.to_json());
            if old == new {
                assert!(report.changes().is_empty(), "{}", report.render());
            }
        }
    }
}
