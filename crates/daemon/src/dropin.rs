//! Drop-in socket paths: with `libvirt_socket_paths = 1` in the daemon's .conf (or
//! `--libvirt-paths`), the daemon's sockets also appear under libvirt's names in libvirt's
//! runtime directory (`/run/libvirt` as root, `$XDG_RUNTIME_DIR/libvirt` otherwise), as
//! symbolic links to ours. Clients that know only libvirt's places — `virsh` without `-c`,
//! virt-manager's default connection, anything opening `qemu:///system` — then reach
//! Vireo unchanged, whichever of libvirt's layouts they look for: the monolithic
//! `libvirt-sock` or a driver daemon's `virtqemud-sock`, `virtnetworkd-sock` …
//!
//! A path that exists and is not a link into this daemon's own runtime directory belongs
//! to someone else (a libvirtd of the machine's own): it is left alone and the daemon
//! refuses to start, saying so.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use vireo_proto::family::Family;

use crate::paths::Paths;
use crate::role::Role;

/// libvirt's runtime directory for this instance.
/// (Under `--root` as root too: the system instance's place is what clients look at;
/// tests give the daemon a mount namespace of its own.)
pub fn libvirt_dir(paths: &Paths) -> PathBuf {
    if paths.privileged {
        return PathBuf::from("/run/libvirt");
    }
    match std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        Some(runtime) => runtime.join("libvirt"),
        None => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp"))
            .join(".cache/libvirt"),
    }
}

/// The libvirt daemons whose sockets this role stands in for.
fn libvirt_names(role: Role) -> Vec<&'static str> {
    let driver = |f: Family| match f {
        Family::Hypervisor => "virtqemud",
        Family::Network => "virtnetworkd",
        Family::NwFilter => "virtnwfilterd",
        Family::Storage => "virtstoraged",
        Family::Secret => "virtsecretd",
        Family::NodeDev => "virtnodedevd",
        Family::Interface => "virtinterfaced",
    };
    match role {
        // virtproxyd and libvirtd both answer on libvirt-sock.
        Role::Proxy => vec!["libvirt"],
        Role::Driver(f) => vec![driver(f)],
        Role::Monolithic => {
            let mut v = vec!["libvirt"];
            v.extend(
                [
                    Family::Hypervisor,
                    Family::Network,
                    Family::NwFilter,
                    Family::Storage,
                    Family::Secret,
                    Family::NodeDev,
                    Family::Interface,
                ]
                .into_iter()
                .map(driver),
            );
            v
        }
    }
}

/// The links made, removed again by [`Links::remove`].
pub struct Links {
    made: Vec<(PathBuf, PathBuf)>,
}

/// Links libvirt's socket names for `role` to our read-write, read-only and admin sockets.
pub fn link(
    paths: &Paths,
    role: Role,
    rw: &Path,
    ro: &Path,
    admin: &Path,
) -> anyhow::Result<Links> {
    let dir = libvirt_dir(paths);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut links = Links { made: Vec::new() };
    for base in libvirt_names(role) {
        for (suffix, target) in [("-sock", rw), ("-sock-ro", ro), ("-admin-sock", admin)] {
            let at = dir.join(format!("{base}{suffix}"));
            if let Err(e) = place(&at, target, &paths.run_dir) {
                links.remove();
                return Err(e);
            }
            links.made.push((at, target.to_path_buf()));
        }
    }
    Ok(links)
}

/// Makes `at` a link to `target`, replacing only a link of ours (left by a daemon that
/// was killed).
fn place(at: &Path, target: &Path, ours: &Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(at) {
        Ok(m) => {
            let mine = m.file_type().is_symlink()
                && std::fs::read_link(at).is_ok_and(|t| t.starts_with(ours));
            if !mine {
                bail!(
                    "{} exists and is not this daemon's: another libvirt (or Vireo) daemon \
                     serves it (stop it, or turn libvirt_socket_paths off)",
                    at.display()
                );
            }
            std::fs::remove_file(at).with_context(|| format!("cannot replace {}", at.display()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot look at {}", at.display())),
    }
    std::os::unix::fs::symlink(target, at)
        .with_context(|| format!("cannot link {} to {}", at.display(), target.display()))
}

impl Links {
    /// Removes the links that still point where we put them.
    pub fn remove(&self) {
        for (at, target) in &self.made {
            if std::fs::read_link(at).is_ok_and(|t| t == *target) {
                let _ = std::fs::remove_file(at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_per_role() {
        assert_eq!(libvirt_names(Role::Proxy), ["libvirt"]);
        assert_eq!(
            libvirt_names(Role::Driver(Family::Hypervisor)),
            ["virtqemud"]
        );
        let all = libvirt_names(Role::Monolithic);
        assert!(
            all.contains(&"libvirt") && all.contains(&"virtnetworkd"),
            "{all:?}"
        );
        assert_eq!(all.len(), 8);
    }

    #[test]
    fn links_replace_only_ours() {
        let t = tempfile::tempdir().unwrap();
        let ours = t.path().join("run");
        std::fs::create_dir_all(&ours).unwrap();
        let target = ours.join("vireod-sock");
        let at = t.path().join("libvirt-sock");
        place(&at, &target, &ours).unwrap();
        assert_eq!(std::fs::read_link(&at).unwrap(), target);
        // A stale link of ours is replaced.
        place(&at, &target, &ours).unwrap();
        // Someone else's file is not.
        std::fs::remove_file(&at).unwrap();
        std::fs::write(&at, b"").unwrap();
        let e = place(&at, &target, &ours).unwrap_err().to_string();
        assert!(e.contains("is not this daemon's"), "{e}");
        let links = Links {
            made: vec![(t.path().join("l"), target.clone())],
        };
        std::os::unix::fs::symlink(&target, t.path().join("l")).unwrap();
        links.remove();
        assert!(std::fs::symlink_metadata(t.path().join("l")).is_err());
    }
}
