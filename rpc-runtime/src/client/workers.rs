//! The operator's levers on one worker: ask it to be quiet (take no new
//! jobs, finish the running ones) or to stop (drain and exit). The worker
//! reads the request with its next heartbeat (`worker/heartbeat.rs`); the
//! request waits a day for it. Writing it needs the operator's ACL role.

use rpc_protocol::worker::{is_worker_id, WorkerControl};

use super::handle::Client;

use crate::error::Error;

impl Client {
    /// Asks worker `id` (as `rpc workers` lists it) to be quiet or stop.
    /// It acts within one beat period (5 s by default); an id no worker
    /// has is accepted and never read.
    pub async fn control_worker(&self, id: &str, control: WorkerControl) -> Result<(), Error> {
        if !is_worker_id(id) {
            return Err(Error::config(format_args!(
                "{id:?} is not a worker id (1 to 128 of A-Z a-z 0-9 _ - . :)"
            )));
        }
        self.inner.backend.set_control(id, control).await
    }
}
