//! A call that is neither awaited nor sent does nothing: the compiler says so.
#![deny(unused_must_use)]

include!("../generated/calculator.rs");

fn call(client: calculator::CalculatorClient) {
    client.add(1, 2);
}

fn main() {
    let _ = call;
}
