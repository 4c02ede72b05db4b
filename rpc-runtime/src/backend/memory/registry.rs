//! Memory brokers by name: a client and a worker that both connect to
//! `memory://default` meet in one [`MemoryBackend`]. The table holds weak
//! references, so a broker lives while something uses it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use tokio::sync::Notify;

use super::state::State;
use crate::backend::broker::Broker;

pub(super) struct Shared {
    pub(super) name: String,
    pub(super) state: Mutex<State>,
    pub(super) jobs_ready: Notify,
    pub(super) replies_ready: Notify,
}

/// An in-process broker.
#[derive(Clone)]
pub struct MemoryBackend {
    pub(super) shared: Arc<Shared>,
}

fn registry() -> &'static Mutex<HashMap<String, Weak<Shared>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Weak<Shared>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

impl MemoryBackend {
    /// The broker registered under `name` (empty means `default`), created on first use.
    pub fn named(name: &str) -> Arc<dyn Broker> {
        let name = match name.trim_end_matches('/') {
            "" => "default",
            n => n,
        };
        let mut table = registry().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(shared) = table.get(name).and_then(Weak::upgrade) {
            return Arc::new(MemoryBackend { shared });
        }
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            state: Mutex::default(),
            jobs_ready: Notify::new(),
            replies_ready: Notify::new(),
        });
        table.insert(name.to_owned(), Arc::downgrade(&shared));
        table.retain(|_, w| w.strong_count() > 0);
        Arc::new(MemoryBackend { shared })
    }

    pub(super) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the queues half-updated
        // in a way that matters more than losing the broker, so keep going.
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn push(&self, queue: &str, payload: Vec<u8>) {
        let mut state = self.state();
        state.enqueue(queue, payload, false);
        drop(state);
        self.shared.jobs_ready.notify_waiters();
    }
}
