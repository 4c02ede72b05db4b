//! Every command that names a service checks it first: a typo
//! (`Calculater`) must fail at once with the services there are, not look
//! like an idle queue, pause nothing, or queue a call nobody will ever
//! take. A service is known when it has a queue, calls waiting on its
//! schedule or intake (sent before its first worker started), periodic
//! jobs, or dead letters.

use rpc_runtime::Inspector;

use crate::failure::Failure;

/// Fails (exit 2) unless `service` is known under the prefix.
pub async fn check(inspector: &Inspector, prefix: &str, service: &str) -> Result<(), Failure> {
    if inspector.has_service(service).await?
        || inspector.periodic(service).await?.is_some()
        || inspector.dead_letter_count(service).await? > 0
    {
        return Ok(());
    }
    Err(unknown(service, prefix, &known(inspector).await?))
}

/// Every known service, sorted: those with a queue and those with
/// periodic jobs.
pub async fn known(inspector: &Inspector) -> Result<Vec<String>, Failure> {
    let mut known = inspector.services().await?;
    known.extend(inspector.periodic_services().await?);
    known.sort();
    known.dedup();
    Ok(known)
}

/// The error for `service`, unknown under `prefix`, naming the `known` ones.
pub fn unknown(service: &str, prefix: &str, known: &[String]) -> Failure {
    let known = if known.is_empty() {
        "there are none".to_owned()
    } else {
        format!("known services: {}", known.join(", "))
    };
    Failure::cannot(
        format!("find the service `{service}`"),
        format!(
            "no such service under the prefix `{prefix}` (no queue, schedule, periodic job \
             or dead letter; {known}; is --prefix right?)"
        ),
    )
}
