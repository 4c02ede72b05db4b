//! Per-key concurrency declared in the schema (`tenants.rpc`): the typed
//! client fills each call's group key from the parameter `#[group_by]`
//! names, and workers apply `#[group_limit]` (docs/PROTOCOL.md, "Per-key
//! concurrency"). The handler here counts what runs at once per key, so
//! the tests can hold the limit against it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpc_runtime::{Context, HandlerError};

rpc_runtime::include_schema!("tenants");

pub use self::tenants::{Reports, ReportsClient, ReportsServer};

/// Calls running now per key, and the most ever.
#[derive(Debug, Default)]
pub struct Running {
    now: HashMap<String, u32>,
    most: HashMap<String, u32>,
}

impl Running {
    /// The most calls of `key` that ever ran at once.
    pub fn most(&self, key: &str) -> u32 {
        self.most.get(key).copied().unwrap_or(0)
    }
}

/// The handler: each call holds its key's count for a few ms.
#[derive(Debug, Default, Clone)]
pub struct Builder {
    pub running: Arc<Mutex<Running>>,
}

impl Builder {
    async fn hold(&self, key: String, ms: u64) {
        {
            let mut running = self.running.lock().unwrap();
            let now = running.now.entry(key.clone()).or_default();
            *now += 1;
            let now = *now;
            let most = running.most.entry(key.clone()).or_default();
            *most = (*most).max(now);
        }
        tokio::time::sleep(Duration::from_millis(ms)).await;
        *self.running.lock().unwrap().now.get_mut(&key).unwrap() -= 1;
    }
}

impl Reports for Builder {
    async fn build(&self, _ctx: Context, tenant: String, pages: u32) -> Result<u32, HandlerError> {
        self.hold(tenant, 20).await;
        Ok(pages)
    }

    async fn touch(&self, _ctx: Context, account: u64) -> Result<(), HandlerError> {
        self.hold(account.to_string(), 5).await;
        Ok(())
    }
}
