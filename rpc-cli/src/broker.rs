//! How `rpc` opens the broker: a client or an inspector, refusing a broker
//! that only this process could see. `rpc` runs in a process of its own,
//! so a `memory://` broker it opened would hold none of the application's
//! queues, and every answer would be an empty one.

use rpc_runtime::{Client, Error, Inspector};

/// A client of the broker at `url`, under `prefix`.
pub async fn client(url: &str, prefix: &str) -> Result<Client, Error> {
    let client = Client::builder(url).prefix(prefix).connect().await?;
    shared(url, client.backend().is_shared())?;
    Ok(client)
}

/// A read-only view of the broker at `url`, under `prefix`.
pub async fn inspector(url: &str, prefix: &str) -> Result<Inspector, Error> {
    let inspector = Inspector::connect(url, prefix).await?;
    shared(url, inspector.is_shared())?;
    Ok(inspector)
}

fn shared(url: &str, is_shared: bool) -> Result<(), Error> {
    if is_shared {
        return Ok(());
    }
    Err(Error::InvalidUrl {
        url: url.to_owned(),
        reason: "this broker lives inside one process and `rpc` runs in its own, so it would \
                 see only empty queues: point it at the application's Redis (redis://...)"
            .to_owned(),
    })
}
