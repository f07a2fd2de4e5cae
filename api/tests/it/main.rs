//! End-to-end tests: real sled in temporary dirs, real HTTP over loopback, and (in
//! `crash`) the real `firstcome` binary. One test binary, as svix-server's tests/it.

// A test crate: helpers outside `#[test]` functions panic with their message too, and
// modules share them with `pub`.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod bad_input;
mod cli;
mod codes;
mod connections;
mod crash;
mod damage;
mod export;
mod fail_stop;
mod formats;
mod handlers;
mod helpers;
mod idempotency;
mod issuance;
mod issue_batch;
mod lifecycle;
mod live;
mod live_browser;
mod logs;
mod mail;
mod mail_crash;
mod mail_schedule;
mod management;
mod openapi;
mod ops_files;
mod restart;
mod smtp;
mod soak;
