//! Step kinds: `command`, `service` and the built-in kinds.
pub mod charts;
pub mod cost;
pub mod io;
pub mod report;
