//! The operator's view of periodic jobs (`rpc periodic`): what each
//! service enqueues on a schedule, when it last did, when it will next.
//!
//! It reads the two hashes workers keep per service (`P:{S}:periodic`,
//! name -> definition JSON with the next tick; `P:{S}:periodic:last`, name
//! -> last tick enqueued; docs/PROTOCOL.md, "Periodic jobs") with `SCAN`,
//! `TYPE` and `HGETALL` only. Values written there by hand list as
//! unreadable rows rather than failing the listing.

use super::Inspector;
use crate::error::Error;
use crate::periodic::{read_states, PeriodicState};

impl Inspector {
    /// The services with periodic jobs under this prefix, sorted: `SCAN
    /// MATCH P:{*}:periodic TYPE hash` (on every master of a Cluster).
    pub async fn periodic_services(&self) -> Result<Vec<String>, Error> {
        let keys = self
            .scan_masters(&self.keys.periodic_pattern(), "hash")
            .await
            .map_err(|e| self.broker(e))?;
        let mut services: Vec<String> = keys
            .iter()
            .filter_map(|key| self.keys.service_of_periodic(key))
            .map(str::to_owned)
            .collect();
        services.sort();
        services.dedup();
        Ok(services)
    }

    /// The periodic jobs of `service`, sorted by name; `Ok(None)` when the
    /// service is unknown (it has neither periodic jobs nor a jobs
    /// stream), `Ok(Some(empty))` for a service without periodic jobs. A
    /// key of another type than a hash is an error that names it.
    pub async fn periodic(&self, service: &str) -> Result<Option<Vec<PeriodicState>>, Error> {
        let definitions_key = self.keys.periodic(service);
        let last_key = self.keys.periodic_last(service);
        let mut found = false;
        let mut contents = Vec::with_capacity(2);
        for key in [&definitions_key, &last_key] {
            let kind: String = self.query(redis::cmd("TYPE").arg(key)).await?;
            match kind.as_str() {
                "none" => contents.push(Vec::new()),
                "hash" => {
                    found = true;
                    contents.push(self.query(redis::cmd("HGETALL").arg(key)).await?);
                }
                other => {
                    return Err(Error::Broker(format!(
                        "{}: {key} holds a {other}, not the hash workers write \
                         (docs/PROTOCOL.md, \"Periodic jobs\")",
                        self.url_for_errors
                    )))
                }
            }
        }
        if !found && !self.exists(&self.keys.jobs(service)).await? {
            return Ok(None);
        }
        let lasts = contents.pop().unwrap_or_default();
        let definitions = contents.pop().unwrap_or_default();
        Ok(Some(read_states(service, definitions, lasts)))
    }

    /// Redis's clock, ms since the Unix epoch: what the listing's last and
    /// next ticks are measured against.
    pub async fn broker_time_ms(&self) -> Result<u64, Error> {
        self.server_time_ms().await
    }
}
