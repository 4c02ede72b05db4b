//! A periodic job as the broker keeps it, for operators: the definition a
//! worker writes next to each tick it enqueues (`P:{S}:periodic`, name ->
//! JSON) and the last tick enqueued (`P:{S}:periodic:last`, name -> ms),
//! read back into a [`PeriodicState`] for `rpc periodic` and the memory
//! backend's listing.
//!
//! Anything can be written into those hashes by hand, so reading never
//! fails: a value that is not what a worker writes becomes a row marked
//! `unreadable`, with the reason, and the other rows are unaffected.

use std::collections::BTreeMap;

use rpc_protocol::periodic::{parse_last, StoredDefinition};
use serde::Serialize;

use super::schedule::interval_text;

/// One periodic job as the broker knows it: what runs, when it last ran,
/// when it runs next. Fields are `None` where the stored values do not say
/// (and then `unreadable` says why).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeriodicState {
    /// The service (queue) its job belongs to.
    pub service: String,
    /// The periodic job's name, unique in its service.
    pub name: String,
    /// The job it enqueues, `Service.job`.
    pub job: Option<String>,
    /// `every 200ms` or `cron 0 */5 * * * *` (cron in UTC).
    pub schedule: Option<String>,
    /// What happens to ticks missed while no worker ran: `run_once` or
    /// `skip` (or a policy a newer worker wrote).
    pub missed: Option<String>,
    /// The parameters each run gets.
    pub params: Option<serde_json::Value>,
    /// Each run's timeout, in ms.
    pub timeout_ms: Option<u64>,
    /// The last tick enqueued, ms since the Unix epoch (the broker's clock).
    pub last_ms: Option<u64>,
    /// The next tick, as the worker that last wrote the definition computed
    /// it; in the past when no worker has enqueued it (none is running).
    pub next_ms: Option<u64>,
    /// Why (part of) the stored values could not be read.
    pub unreadable: Option<String>,
}

impl PeriodicState {
    fn empty(service: &str, name: String) -> PeriodicState {
        PeriodicState {
            service: service.to_owned(),
            name,
            job: None,
            schedule: None,
            missed: None,
            params: None,
            timeout_ms: None,
            last_ms: None,
            next_ms: None,
            unreadable: None,
        }
    }

    fn note(&mut self, why: String) {
        self.unreadable = Some(match self.unreadable.take() {
            Some(before) => format!("{before}; {why}"),
            None => why,
        });
    }

    fn read_definition(&mut self, raw: &[u8]) {
        // (serde's derive would also read the struct from an array)
        if !rpc_protocol::job::is_json_object(raw) {
            return self.note("the definition is not a JSON object".to_owned());
        }
        let definition: StoredDefinition = match serde_json::from_slice(raw) {
            Ok(d) => d,
            Err(e) => return self.note(format!("the definition is not readable JSON: {e}")),
        };
        self.schedule = match (&definition.cron, definition.every_ms) {
            (Some(cron), None) => Some(format!("cron {cron}")),
            (None, Some(ms)) if ms > 0 => Some(format!("every {}", interval_text(ms))),
            _ => {
                self.note("the definition has no schedule (`cron` or `every_ms`)".to_owned());
                None
            }
        };
        if definition.job.is_none() {
            self.note("the definition names no `job`".to_owned());
        }
        self.job = definition.job;
        self.missed = definition.missed;
        self.params = definition.params;
        self.timeout_ms = definition.timeout_ms;
        self.next_ms = definition.next_ms;
    }
}

/// The states of one service's periodic jobs, by name, from the two
/// hashes' contents (field, value pairs as Redis returns them).
pub(crate) fn read_states(
    service: &str,
    definitions: Vec<(Vec<u8>, Vec<u8>)>,
    lasts: Vec<(Vec<u8>, Vec<u8>)>,
) -> Vec<PeriodicState> {
    let mut states: BTreeMap<String, PeriodicState> = BTreeMap::new();
    for (name, raw) in definitions {
        let name = String::from_utf8_lossy(&name).into_owned();
        let state = states
            .entry(name.clone())
            .or_insert_with(|| PeriodicState::empty(service, name));
        state.read_definition(&raw);
    }
    for (name, raw) in lasts {
        let name = String::from_utf8_lossy(&name).into_owned();
        let state = states
            .entry(name.clone())
            .or_insert_with(|| PeriodicState::empty(service, name));
        match parse_last(&raw) {
            Some(ms) => state.last_ms = Some(ms),
            None => state.note(format!(
                "the last tick `{}` is not a number of milliseconds",
                String::from_utf8_lossy(&raw)
            )),
        }
    }
    for state in states.values_mut() {
        if state.job.is_none() && state.schedule.is_none() && state.unreadable.is_none() {
            state.note("no definition is stored".to_owned());
        }
    }
    states.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(a: &str, b: &str) -> (Vec<u8>, Vec<u8>) {
        (a.as_bytes().to_vec(), b.as_bytes().to_vec())
    }

    #[test]
    fn garbage_in_the_hashes_becomes_an_unreadable_row_not_an_error() {
        let good = r#"{"v":1,"name":"beat","service":"S","job":"S.tick","every_ms":200,
            "params":{},"timeout_ms":30000,"missed":"run_once","next_ms":1400}"#;
        let states = read_states(
            "S",
            vec![
                pair("beat", good),
                pair("junk", "not json"),
                pair("list", "[1,2]"),
                pair("half", r#"{"job":"S.x"}"#),
            ],
            vec![
                pair("beat", "1200"),
                pair("orphan", "5"),
                pair("half", "12x"),
            ],
        );
        let names: Vec<&str> = states.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["beat", "half", "junk", "list", "orphan"]);
        let beat = &states[0];
        assert_eq!(beat.schedule.as_deref(), Some("every 200ms"));
        assert_eq!(beat.job.as_deref(), Some("S.tick"));
        assert_eq!((beat.last_ms, beat.next_ms), (Some(1200), Some(1400)));
        assert_eq!(beat.unreadable, None);
        let half = &states[1];
        assert_eq!(half.job.as_deref(), Some("S.x"));
        let why = half.unreadable.as_deref().unwrap();
        assert!(
            why.contains("no schedule") && why.contains("`12x`"),
            "{why}"
        );
        assert!(states[2]
            .unreadable
            .as_deref()
            .unwrap()
            .contains("JSON object"));
        assert!(states[3].unreadable.as_deref().unwrap().contains("object"));
        assert_eq!(states[4].last_ms, Some(5));
        assert!(states[4]
            .unreadable
            .as_deref()
            .unwrap()
            .contains("no definition"));
    }

    #[test]
    fn a_last_tick_is_decimal_digits_only() {
        assert_eq!(parse_last(b"1767225600000"), Some(1_767_225_600_000));
        for bad in [
            &b""[..],
            b"-1",
            b"1e3",
            b"0x10",
            b" 12",
            b"1000000000000000",
        ] {
            assert_eq!(parse_last(bad), None, "{bad:?}");
        }
    }
}
