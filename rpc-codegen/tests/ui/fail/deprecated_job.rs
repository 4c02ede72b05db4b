//! Calling a job marked `#[deprecated]` in the schema warns (here: errors).
#![deny(deprecated)]

include!("../generated/common.rs");
include!("../generated/everything.rs");

async fn call(client: everything::DrawingClient) {
    let _ = client.paint(everything::OldShape { sides: 3 }).await;
}

fn main() {
    let _ = call;
}
