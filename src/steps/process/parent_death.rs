//! A killed Forge (even by SIGKILL) does not leave a step's processes running: the system signals
//! them when Forge is gone. Linux has a kernel call for it (`PR_SET_PDEATHSIG`: SIGTERM to the
//! group leader); macOS has none, so there a small watcher process, forked before the leader's
//! `exec`, waits on a kqueue (`EVFILT_PROC`, `NOTE_EXIT`) for Forge's exit and then sends SIGTERM
//! to the whole group, as Forge's own stop does.

use tokio::process::Command;

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
compile_error!("Forge's process layer supports Linux and macOS");

/// Arranges for the command's process group to get SIGTERM when Forge dies.
#[cfg(target_os = "linux")]
pub fn arrange(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to signal the child when
    // Forge dies, so a killed Forge does not leave the group leader running.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
}

/// Arranges for the command's process group to get SIGTERM when Forge dies.
#[cfg(target_os = "macos")]
pub fn arrange(command: &mut Command) {
    // SAFETY: the closure runs in the forked child before `exec` and makes only async-signal-safe
    // system calls (getpid, getppid, fork, waitpid, and in the watcher: setpgid, sigaction,
    // close, kqueue, kevent, killpg, _exit); it allocates nothing.
    unsafe {
        command.pre_exec(|| macos::start_watcher());
    }
}

#[cfg(target_os = "macos")]
mod macos {
    use std::io;

    /// Runs in the child (the future group leader, already in its own group): forks a watcher
    /// through an intermediate process that exits at once, so the watcher is adopted by launchd
    /// and the step's program never sees an extra child of its own.
    pub(super) unsafe fn start_watcher() -> io::Result<()> {
        let forge = unsafe { libc::getppid() };
        let leader = unsafe { libc::getpid() };
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => unsafe {
                if libc::fork() == 0 {
                    watch(forge, leader);
                }
                libc::_exit(0)
            },
            middle => {
                let mut status = 0;
                while unsafe { libc::waitpid(middle, &mut status, 0) } == -1
                    && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
                {
                }
                Ok(())
            }
        }
    }

    /// The watcher: leaves the step's group (so it never counts as a member still running),
    /// drops every inherited descriptor (it must not hold Forge's pipes open), then waits for
    /// Forge or the leader to exit. Forge first: SIGTERM to the group. Never returns.
    unsafe fn watch(forge: libc::pid_t, leader: libc::pid_t) -> ! {
        unsafe {
            libc::setpgid(0, 0);
            for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGPIPE] {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &action, std::ptr::null_mut());
            }
            let mut limit: libc::rlimit = std::mem::zeroed();
            let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
                limit.rlim_cur.min(65_536) as libc::c_int
            } else {
                1024
            };
            for fd in 0..max {
                libc::close(fd);
            }
            if forge == 1 {
                // Forge died before the child got here; launchd adopted it.
                libc::killpg(leader, libc::SIGTERM);
                libc::_exit(0);
            }
            let kq = libc::kqueue();
            if kq < 0 {
                libc::_exit(1);
            }
            let mut changes = [exit_event(forge), exit_event(leader)];
            let mut receipts: [libc::kevent; 2] = std::mem::zeroed();
            let n = libc::kevent(
                kq,
                changes.as_mut_ptr(),
                2,
                receipts.as_mut_ptr(),
                2,
                std::ptr::null(),
            );
            // With EV_RECEIPT each change comes back with EV_ERROR set and `data` = errno (0 when
            // registered); ESRCH means the process is already gone.
            for receipt in receipts.iter().take(n.max(0) as usize) {
                if receipt.data != 0 {
                    if receipt.ident == forge as libc::uintptr_t {
                        libc::killpg(leader, libc::SIGTERM);
                    }
                    libc::_exit(0);
                }
            }
            loop {
                let mut event: libc::kevent = std::mem::zeroed();
                let n = libc::kevent(kq, std::ptr::null(), 0, &mut event, 1, std::ptr::null());
                if n == 1 {
                    if event.ident == forge as libc::uintptr_t {
                        libc::killpg(leader, libc::SIGTERM);
                    }
                    libc::_exit(0);
                }
                if n < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    libc::_exit(1);
                }
            }
        }
    }

    /// A one-shot registration for `pid`'s exit.
    fn exit_event(pid: libc::pid_t) -> libc::kevent {
        libc::kevent {
            ident: pid as libc::uintptr_t,
            filter: libc::EVFILT_PROC,
            flags: libc::EV_ADD | libc::EV_RECEIPT | libc::EV_ONESHOT,
            fflags: libc::NOTE_EXIT,
            data: 0,
            udata: std::ptr::null_mut(),
        }
    }
}
