//! What a client does with a call id: re-attach to the call, or fetch its
//! kept result, from any process.

use std::marker::PhantomData;

use super::handle::Client;
use super::pending::Pending;
use super::reply::JobLabel;
use super::untyped::untyped_error;

use crate::call::JobId;
use crate::error::Error;

impl Client {
    /// Re-attaches to a call sent earlier, possibly by another process, by its
    /// id: awaiting the handle polls the kept result until the client's
    /// default timeout.
    ///
    /// ```no_run
    /// # async fn f(client: rpc_runtime::Client, id: rpc_runtime::JobId) -> Result<(), Box<dyn std::error::Error>> {
    /// let pending: rpc_runtime::Pending<i64> = client.attach(id);
    /// let sum = pending.await?;
    /// # Ok(()) }
    /// ```
    pub fn attach<T, E>(&self, id: JobId) -> Pending<T, E> {
        let timeout = self.inner.config.default_timeout;
        Pending {
            client: self.clone(),
            id,
            job: JobLabel::default(),
            rx: None,
            failures: None,
            timeout,
            deadline: tokio::time::Instant::now() + timeout,
            _types: PhantomData,
        }
    }

    /// Reads a kept result by call id without waiting: `None` while it is not
    /// there (not done yet, or expired).
    pub async fn fetch_result(
        &self,
        id: &JobId,
    ) -> Result<Option<Result<serde_json::Value, Error>>, Error> {
        let pending = self.attach::<serde_json::Value, serde_json::Value>(id.clone());
        Ok(pending
            .try_fetch()
            .await?
            .map(|r| r.map_err(|e| untyped_error("", e))))
    }
}
