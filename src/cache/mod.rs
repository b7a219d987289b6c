//! Skipping unchanged work: content digests with a stat cache, typed cache keys, step records.
pub mod input;
pub mod key;
pub mod stat;
pub mod store;
pub mod travel;

pub use input::InputDigest;
pub use key::KeyParts;
pub use stat::{Digest, StatCache};
pub use store::{
    CompleteRun, GatePassed, GateSkipped, LockFile, Record, StoreError, WorkspaceLock,
};
