//! Workers that say they are alive: the heartbeat a worker writes every few
//! seconds, and the control an operator writes to quiet or stop it.
//! docs/PROTOCOL.md, "Workers", is the normative description; another
//! implementation beats by writing [`WorkerBeat`] as JSON under
//! [`Keys::worker`](crate::Keys::worker) with a TTL and adding its id to
//! [`Keys::workers`](crate::Keys::workers) of every service it serves.
//!
//! A beat is read by operators' tools from a Redis any worker may write, so
//! [`WorkerBeat::decode`] checks every field's range and size: a hostile
//! value is refused with the reason, never a panic, and what a tool shows
//! of it stays small.
//!
//! ```
//! use rpc_protocol::worker::{WorkerBeat, WorkerState};
//! let beat = WorkerBeat {
//!     v: 1,
//!     id: "host-1-ab12".into(),
//!     host: "host".into(),
//!     pid: 1,
//!     version: "0.1.0".into(),
//!     services: vec!["Calculator".into()],
//!     concurrency: 8,
//!     in_flight: 0,
//!     started_ms: 1_700_000_000_000,
//!     beat_ms: 1_700_000_005_000,
//!     every_ms: 5_000,
//!     ttl_ms: 30_000,
//!     rss_bytes: None,
//!     state: WorkerState::Running,
//! };
//! let json = beat.encode();
//! assert_eq!(WorkerBeat::decode(&json).unwrap(), beat);
//! ```

use serde::{Deserialize, Serialize};

use crate::limits::is_client_id;

/// The version of the beat message this crate writes and reads.
pub const BEAT_VERSION: u32 = 1;

/// How often a worker beats unless configured: every 5 s.
pub const DEFAULT_BEAT_EVERY_MS: u64 = 5_000;

/// How long a beat lives unless configured: 30 s, six beats. A worker that
/// died (or lost Redis) is gone from every listing at most this long after
/// its last beat.
pub const DEFAULT_BEAT_TTL_MS: u64 = 30_000;

/// The shortest beat period a beat may state.
pub const MIN_BEAT_EVERY_MS: u64 = 100;
/// The longest beat period a beat may state.
pub const MAX_BEAT_EVERY_MS: u64 = 60_000;
/// The longest TTL a beat may state: a dead worker is gone within it.
pub const MAX_BEAT_TTL_MS: u64 = 10 * 60_000;

/// How long a worker's id stays in a service's registry after its last
/// beat: the "last seen" of a service whose workers are all gone. Older
/// entries are trimmed by every beat.
pub const REGISTRY_RETENTION_MS: u64 = 24 * 60 * 60 * 1000;

/// The most entries a tool reads from one service's registry.
pub const MAX_WORKERS_LISTED: usize = 1_000;

/// The largest beat message a reader accepts, in bytes.
pub const MAX_BEAT_BYTES: usize = 64 * 1024;
/// The most services one beat may name.
pub const MAX_BEAT_SERVICES: usize = 256;
/// The longest host name, version or service name in a beat, in bytes.
pub const MAX_BEAT_TEXT_BYTES: usize = 255;

/// How long an operator's control waits for its worker, unless read: a day.
pub const CONTROL_TTL_MS: u64 = 24 * 60 * 60 * 1000;

/// What a worker is doing, as it says in its beat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Taking and running jobs.
    Running,
    /// Asked to be quiet: takes no new jobs, finishes the ones it has.
    Quiet,
    /// Shutting down: takes no new jobs, drains, then exits.
    Stopping,
}

impl WorkerState {
    /// The word on the wire and in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Running => "running",
            WorkerState::Quiet => "quiet",
            WorkerState::Stopping => "stopping",
        }
    }
}

/// One worker's heartbeat: who it is and how it is doing, written as JSON
/// under `P:worker:{id}` with a TTL of `ttl_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerBeat {
    /// [`BEAT_VERSION`].
    pub v: u32,
    /// The worker's id, also its consumer name in every group it reads: a
    /// [client id](crate::limits::is_client_id) (1 to 128 of
    /// `A-Z a-z 0-9 _ - . :`), unique per process.
    pub id: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The version of the program (or runtime) it runs.
    pub version: String,
    /// The services it serves, sorted.
    pub services: Vec<String>,
    /// Jobs it runs at once at most.
    pub concurrency: u32,
    /// Jobs it runs now.
    pub in_flight: u32,
    /// When it started, ms since the epoch on Redis's clock (as the worker
    /// sees it).
    pub started_ms: u64,
    /// When it wrote this beat, ms since the epoch on Redis's clock.
    pub beat_ms: u64,
    /// How often it beats, ms.
    pub every_ms: u64,
    /// How long this beat lives, ms: past `beat_ms + ttl_ms` the worker
    /// is gone.
    pub ttl_ms: u64,
    /// Its resident memory, bytes, where the platform tells it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    /// What it is doing.
    pub state: WorkerState,
}

/// Why a beat was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable worker beat: {0}")]
pub struct BeatError(String);

impl WorkerBeat {
    /// The JSON written under the beat key.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a beat always serializes")
    }

    /// Reads a beat, checking every field (unknown fields are ignored, so
    /// a newer worker's beat still reads).
    pub fn decode(bytes: &[u8]) -> Result<WorkerBeat, BeatError> {
        if bytes.len() > MAX_BEAT_BYTES {
            return Err(BeatError(format!(
                "{} bytes, over the limit of {MAX_BEAT_BYTES}",
                bytes.len()
            )));
        }
        let beat: WorkerBeat =
            serde_json::from_slice(bytes).map_err(|e| BeatError(e.to_string()))?;
        beat.check()?;
        Ok(beat)
    }

    /// Whether every field is in its range.
    pub fn check(&self) -> Result<(), BeatError> {
        let bad = |what: String| Err(BeatError(what));
        if self.v != BEAT_VERSION {
            return bad(format!(
                "version {} (this reader knows {BEAT_VERSION})",
                self.v
            ));
        }
        if !is_worker_id(&self.id) {
            return bad("the id is not 1 to 128 of A-Z a-z 0-9 _ - . :".to_owned());
        }
        if !is_beat_text(&self.host) {
            return bad("the host is empty, too long or has control characters".to_owned());
        }
        if self.version.len() > MAX_BEAT_TEXT_BYTES || has_control(&self.version) {
            return bad("the version is too long or has control characters".to_owned());
        }
        if self.services.len() > MAX_BEAT_SERVICES {
            return bad(format!(
                "{} services, over {MAX_BEAT_SERVICES}",
                self.services.len()
            ));
        }
        if let Some(s) = self.services.iter().find(|s| !is_service_text(s)) {
            return bad(format!("the service name {s:?} cannot be a service"));
        }
        if !(MIN_BEAT_EVERY_MS..=MAX_BEAT_EVERY_MS).contains(&self.every_ms) {
            return bad(format!("every_ms {} out of range", self.every_ms));
        }
        if self.ttl_ms < self.every_ms || self.ttl_ms > MAX_BEAT_TTL_MS {
            return bad(format!("ttl_ms {} out of range", self.ttl_ms));
        }
        if self.started_ms > crate::limits::MAX_DEADLINE_MS
            || self.beat_ms > crate::limits::MAX_DEADLINE_MS
            || self.started_ms > self.beat_ms
        {
            return bad("its times are out of range".to_owned());
        }
        Ok(())
    }

    /// Whether the worker counts as alive at `now_ms` (Redis's clock): its
    /// beat is younger than its TTL. (A beat key that expired is not read
    /// at all; this also covers a reader whose key has not expired yet.)
    pub fn is_live_at(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.beat_ms) <= self.ttl_ms
    }
}

/// Whether `id` may be a worker id: the same rule as a client id (it ends a
/// Redis key, `P:worker:{id}`, and names a consumer).
pub fn is_worker_id(id: &str) -> bool {
    is_client_id(id)
}

fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

fn is_beat_text(text: &str) -> bool {
    (1..=MAX_BEAT_TEXT_BYTES).contains(&text.len()) && !has_control(text)
}

fn is_service_text(text: &str) -> bool {
    is_beat_text(text) && !text.contains(['{', '}'])
}

/// What an operator asks of a worker, read by the worker at every beat
/// from `P:worker:{id}:control`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerControl {
    /// Take no new jobs; finish the ones running; stay up (Sidekiq's TSTP).
    Quiet,
    /// Take no new jobs, finish the ones running, then exit (as on SIGTERM).
    Stop,
}

impl WorkerControl {
    /// The value written under the control key.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerControl::Quiet => "quiet",
            WorkerControl::Stop => "stop",
        }
    }

    /// Reads a control value; `None` for anything else (ignored, so a
    /// newer operator's word does not stop an older worker).
    pub fn parse(raw: &[u8]) -> Option<WorkerControl> {
        match raw {
            b"quiet" => Some(WorkerControl::Quiet),
            b"stop" => Some(WorkerControl::Stop),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat() -> WorkerBeat {
        WorkerBeat {
            v: 1,
            id: "h-1-abc".into(),
            host: "h".into(),
            pid: 7,
            version: "1.0".into(),
            services: vec!["A".into()],
            concurrency: 4,
            in_flight: 1,
            started_ms: 1_000,
            beat_ms: 2_000,
            every_ms: 5_000,
            ttl_ms: 30_000,
            rss_bytes: Some(1 << 20),
            state: WorkerState::Quiet,
        }
    }

    #[test]
    fn a_beat_reads_back_as_written_and_ignores_unknown_fields() {
        let b = beat();
        assert_eq!(WorkerBeat::decode(&b.encode()), Ok(b.clone()));
        let mut json: serde_json::Value = serde_json::from_slice(&b.encode()).unwrap();
        json["later"] = serde_json::json!(1);
        assert_eq!(WorkerBeat::decode(json.to_string().as_bytes()), Ok(b));
    }

    #[test]
    fn a_hostile_beat_is_refused_never_a_panic() {
        type Spoil = Box<dyn Fn(&mut WorkerBeat)>;
        let cases: Vec<Spoil> = vec![
            Box::new(|b| b.v = 9),
            Box::new(|b| b.id = "a}b".into()),
            Box::new(|b| b.id = String::new()),
            Box::new(|b| b.host = "x\u{1b}[31m".into()),
            Box::new(|b| b.host = "h".repeat(300)),
            Box::new(|b| b.services = vec!["x}:intake".into()]),
            Box::new(|b| b.services = vec!["s".into(); MAX_BEAT_SERVICES + 1]),
            Box::new(|b| b.every_ms = 0),
            Box::new(|b| b.ttl_ms = 10),
            Box::new(|b| b.ttl_ms = u64::MAX),
            Box::new(|b| b.started_ms = b.beat_ms + 1),
            Box::new(|b| b.beat_ms = u64::MAX),
        ];
        for (i, spoil) in cases.iter().enumerate() {
            let mut b = beat();
            spoil(&mut b);
            assert!(WorkerBeat::decode(&b.encode()).is_err(), "case {i}");
        }
        for junk in [&b""[..], b"{", b"[]", b"{\"v\":1}", &[0xff; 10]] {
            assert!(WorkerBeat::decode(junk).is_err());
        }
        assert!(WorkerBeat::decode(&vec![b' '; MAX_BEAT_BYTES + 1]).is_err());
    }

    #[test]
    fn a_beat_is_live_until_its_ttl_has_passed() {
        let b = beat();
        assert!(b.is_live_at(b.beat_ms + b.ttl_ms));
        assert!(!b.is_live_at(b.beat_ms + b.ttl_ms + 1));
        assert!(
            b.is_live_at(0),
            "a clock behind the beat is no reason to call it gone"
        );
    }

    #[test]
    fn only_the_two_control_words_are_read() {
        assert_eq!(WorkerControl::parse(b"quiet"), Some(WorkerControl::Quiet));
        assert_eq!(WorkerControl::parse(b"stop"), Some(WorkerControl::Stop));
        assert_eq!(WorkerControl::parse(b"STOP"), None);
        assert_eq!(WorkerControl::parse(b""), None);
    }
}
