//! Contention scenarios: being built.
fn main() {}
