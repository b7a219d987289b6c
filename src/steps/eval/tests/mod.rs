//! Tests of the eval and retention kinds that span several files.

mod real_server;
mod retention_math;
mod run_step;

use crate::steps::io::Provenance;
use crate::steps::metadata::HostFacts;

/// Host facts fixed so snapshots are stable.
pub(super) fn fixed_host() -> HostFacts {
    HostFacts {
        date: "2026-11-28T12:00:00Z".into(),
        host: "test-host".into(),
        cpu: "Test CPU".into(),
        gpu: None,
    }
}

pub(super) fn provenance() -> Provenance {
    Provenance {
        profile: "m1-rehearsal".into(),
        manifest_digest: "manifest-digest".into(),
        profile_digest: "profile-digest".into(),
        forge_version: "0.1.0".into(),
    }
}
