//! The shard counts a client knows, by service: what the broker said
//! (`P:{S}:shards`), when, and the queue names of each shard, made once.
//! `shard_choice.rs` decides with them where each call goes.

use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::backend::ShardCount;
use crate::sync::lock;

/// The shard counts this client knows, by service.
#[derive(Default)]
pub(crate) struct ShardCache {
    /// A short list, looked up on every call: by the name's address
    /// first (a typed client's names are constants), no hashing.
    pub(super) services: Mutex<Vec<Known>>,
    /// The round robin over shards, from a random start.
    pub(super) next: AtomicU32,
}

pub(super) struct Known {
    pub(super) service: &'static str,
    /// The broker's counts; `None` until read.
    pub(super) broker: Option<ShardCount>,
    /// When the broker's count was last read (`None`: never yet).
    pub(super) read_at: Option<Instant>,
    /// A read is under way.
    pub(super) reading: Arc<AtomicBool>,
    /// The first read of this process, which a service's first calls wait
    /// for (`shard_choice.rs`, `Client::know_shards`); done once, whether
    /// it answered or not.
    pub(super) first_read: Arc<tokio::sync::OnceCell<()>>,
    /// Queue names by shard, made once.
    pub(super) queues: Vec<Arc<str>>,
}

impl Known {
    pub(super) fn new(service: &'static str) -> Known {
        Known {
            service,
            broker: None,
            read_at: None,
            reading: Arc::default(),
            first_read: Arc::default(),
            queues: vec![Arc::from(service)],
        }
    }
}

impl ShardCache {
    pub(crate) fn new() -> ShardCache {
        ShardCache {
            services: Mutex::default(),
            next: AtomicU32::new(uuid::Uuid::new_v4().as_u128() as u32),
        }
    }

    /// Records what the broker said of `service`'s shards.
    pub(super) fn learn(&self, service: &'static str, count: ShardCount) {
        let mut services = lock(&self.services);
        let known = entry(&mut services, service);
        known.broker = Some(count);
        known.read_at = Some(Instant::now());
    }
}

/// `service`'s entry in `list`, added if missing.
pub(super) fn entry<'l>(list: &'l mut Vec<Known>, service: &'static str) -> &'l mut Known {
    let at = list
        .iter()
        .position(|k| std::ptr::eq(k.service, service))
        .or_else(|| list.iter().position(|k| k.service == service));
    match at {
        Some(i) => &mut list[i],
        None => {
            list.push(Known::new(service));
            list.last_mut().expect("just pushed")
        }
    }
}
