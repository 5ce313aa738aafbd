//! Criterion benchmarks of the token engine (filled in below).
fn main() {}
