//! spliced: an L4 TCP proxy built on pipepool.
fn main() {}
