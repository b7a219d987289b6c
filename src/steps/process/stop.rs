//! Stopping a process group: SIGTERM to every member, a grace period, then SIGKILL.

use std::time::{Duration, Instant};

use super::Group;

/// How often a stop looks whether the group is gone.
const POLL: Duration = Duration::from_millis(50);

/// True while any process of the group is alive.
pub fn group_alive(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::killpg(pgid, 0) == 0 }
}

pub(super) fn signal(pgid: i32, sig: i32) {
    // SAFETY: sending a signal to a process group we created.
    unsafe {
        libc::killpg(pgid, sig);
    }
}

/// Stops the whole group: SIGTERM, up to `grace` for every member to exit, then SIGKILL.
/// Returns the child's exit status if it was collected.
pub async fn terminate(group: &mut Group, grace: Duration) -> Option<std::process::ExitStatus> {
    signal(group.pgid, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    let mut status = None;
    while Instant::now() < deadline {
        if status.is_none() {
            status = group.child.try_wait().ok().flatten();
        }
        if status.is_some() && !group_alive(group.pgid) {
            return status;
        }
        tokio::time::sleep(POLL).await;
    }
    signal(group.pgid, libc::SIGKILL);
    match status {
        Some(s) => Some(s),
        None => group.child.wait().await.ok(),
    }
}

/// Kills whatever is left of a group whose leader already exited (background children).
pub async fn reap_leftovers(pgid: i32, grace: Duration) {
    if !group_alive(pgid) {
        return;
    }
    signal(pgid, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && group_alive(pgid) {
        tokio::time::sleep(POLL).await;
    }
    signal(pgid, libc::SIGKILL);
}
