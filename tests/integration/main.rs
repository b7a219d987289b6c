//! One integration test binary: each file covers one feature of the `forge` CLI.

mod bench;
mod cache;
mod examples;
mod gate;
mod keys;
mod malformed;
mod orphans;
mod records;
mod services;
mod support;
