//! The typed client rejects arguments of the wrong type.
include!("../generated/calculator.rs");

async fn call(client: calculator::CalculatorClient) {
    let _ = client.add("two", 2).await;
}

fn main() {
    let _ = call;
}
