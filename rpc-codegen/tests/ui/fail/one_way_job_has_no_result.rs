//! A one-way job has no send/pending methods and returns only a job id.
include!("../generated/calculator.rs");

async fn call(client: calculator::CalculatorClient) {
    let _ = client.send_log("line".into()).await;
    let _: Result<(), rpc_runtime::Error> = client.log("line".into()).await;
}

fn main() {
    let _ = call;
}
