//! One integration test binary: each file covers one feature of the `forge` CLI.

#![allow(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions unwrap too: a panic is the test's failure report"
)]

mod bench;
mod cache;
mod docs;
mod estimate;
mod examples;
mod gate;
mod keys;
mod malformed;
mod monitoring;
mod orphans;
mod preflight;
mod records;
mod remote;
mod services;
mod support;
mod travel;
