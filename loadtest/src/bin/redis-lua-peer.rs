//! `redis-lua-peer`: being built.
fn main() {}
