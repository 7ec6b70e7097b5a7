//! systemd socket activation: listening sockets handed over in `LISTEN_FDS` (from fd 3),
//! named by `LISTEN_FDNAMES`.

use std::os::fd::{FromRawFd, OwnedFd};

/// Which of a daemon's sockets an inherited fd is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ReadWrite,
    ReadOnly,
    Admin,
}

/// Takes the sockets systemd passed to this process (empty when not socket-activated).
/// Call it first thing in `main`, before anything else opens files, so fds from 3 on are
/// still systemd's. The variables are removed so that children (shims, QEMU) do not see
/// them.
pub fn take() -> Vec<(Kind, OwnedFd)> {
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    let n: i32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    // Called at start-up, before any other thread reads the environment.
    for v in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(v);
    }
    if !pid_ok || !(1..=16).contains(&n) {
        return Vec::new();
    }
    let names: Vec<&str> = names.split(':').collect();
    (0..n)
        .filter(|i| is_socket(3 + i))
        .map(|i| {
            let fd = 3 + i;
            // SAFETY: inherited-fd passing: systemd passed fds 3..3+n to this process (checked
            // above to be open sockets), and each is taken once.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            // Keep it from leaking into children.
            let _ = rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC);
            (kind_of(names.get(i as usize).copied().unwrap_or("")), owned)
        })
        .collect()
}

/// Only real sockets are taken: a wrong LISTEN_FDS must not make us close something else.
fn is_socket(fd: i32) -> bool {
    use std::os::unix::fs::FileTypeExt;
    // The fd's own inode, through procfs: a number that is not open just fails.
    std::fs::metadata(format!("/proc/self/fd/{fd}")).is_ok_and(|m| m.file_type().is_socket())
}

/// `vireo-qemud-ro.socket` → read-only, `…-admin.socket` → admin, else read-write.
pub fn kind_of(name: &str) -> Kind {
    if name.contains("-admin") {
        Kind::Admin
    } else if name.contains("-ro") {
        Kind::ReadOnly
    } else {
        Kind::ReadWrite
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(kind_of("vireo-qemud.socket"), Kind::ReadWrite);
        assert_eq!(kind_of("vireo-qemud-ro.socket"), Kind::ReadOnly);
        assert_eq!(kind_of("vireo-qemud-admin.socket"), Kind::Admin);
        assert_eq!(kind_of(""), Kind::ReadWrite);
    }
}
