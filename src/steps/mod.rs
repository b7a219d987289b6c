//! Step kinds: `command`, `service` and the built-in kinds.
pub mod eval;
pub mod io;
