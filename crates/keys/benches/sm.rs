//! Security module throughput (written in the next step).

fn main() {}
