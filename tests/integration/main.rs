//! One integration test binary; a module per feature.
mod bench;
