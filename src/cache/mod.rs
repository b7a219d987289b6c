//! Skipping unchanged work: content digests with a stat cache, typed cache keys, step records,
//! and the staging and commit that write a step's outputs and record.
pub mod commit;
pub mod input;
pub mod key;
pub mod stat;
pub mod store;
pub mod travel;

pub use commit::{CommitError, Ran};
pub use input::InputDigest;
pub use key::KeyParts;
pub use stat::{Digest, StatCache};
pub use store::{
    CompleteRun, GatePassed, GateSkipped, LockFile, Record, StoreError, WorkspaceLock,
};
