//! Step kinds: `command`, `service` and the built-in kinds.
pub mod bench;
pub mod io;
