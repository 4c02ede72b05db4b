//! A one-way job's call has no `.send()` (nothing answers) and `.await`
//! gives only the job's id.
include!("../generated/calculator.rs");

async fn call(client: calculator::CalculatorClient) {
    let _ = client.log("line").send().await;
    let _: Result<(), rpc_runtime::Error> = client.log("line").await;
}

fn main() {
    let _ = call;
}
