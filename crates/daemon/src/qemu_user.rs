//! Whom QEMU runs as: qemu.conf's `user` and `group` (a name or `+N`), resolved once at
//! the daemon's start.
//!
//! The system daemon's default is the user `vireo-qemu` (made by `scripts/install`, in the
//! `kvm` group), and where there is no such user QEMU runs as the daemon (root) with a
//! line in the log. Under `--root` (tests, embedding) the default is the daemon's own
//! user: nothing of the host's is assumed there. A session daemon runs QEMU as itself
//! whatever the file says, as libvirt's does.

use std::ffi::CString;

use anyhow::{bail, Context};
use nix::unistd::{Gid, Group, Uid, User};
use vireo_conf::{principal, Principal, QemuConf};
use vireo_qemu::QemuUser;

use crate::paths::Paths;

/// The system daemon's default user for QEMU.
pub const DEFAULT_USER: &str = "vireo-qemu";

/// QEMU's user from `conf`; `None` when it runs as the daemon does.
pub fn resolve(conf: &QemuConf, paths: &Paths) -> anyhow::Result<Option<QemuUser>> {
    if !paths.privileged {
        if conf.user.is_some() || conf.group.is_some() {
            eprintln!("qemu.conf: user and group are for the system daemon; ignored");
        }
        return Ok(None);
    }
    let user = match conf.user.as_deref() {
        Some(u) => Some(u),
        None if paths.embedded => None,
        None => match User::from_name(DEFAULT_USER) {
            Ok(Some(_)) => Some(DEFAULT_USER),
            _ => {
                eprintln!(
                    "qemu.conf: no user '{DEFAULT_USER}' on this host: QEMU runs as root \
                     (scripts/install makes the user, or set user in qemu.conf)"
                );
                None
            }
        },
    };
    let (uid, primary, name) = match user.map(principal) {
        None => (Uid::effective(), Gid::effective(), None),
        Some(None) => bail!("qemu.conf: user: not a name or '+' and a number"),
        Some(Some(Principal::Id(n))) => {
            let entry = User::from_uid(Uid::from_raw(n)).ok().flatten();
            let gid = entry.as_ref().map(|u| u.gid).unwrap_or(Gid::from_raw(n));
            (Uid::from_raw(n), gid, entry.map(|u| u.name))
        }
        Some(Some(Principal::Name(n))) => {
            let u = User::from_name(n)
                .ok()
                .flatten()
                .with_context(|| format!("qemu.conf: user: no user named '{n}'"))?;
            (u.uid, u.gid, Some(u.name))
        }
    };
    let gid = match conf.group.as_deref().map(principal) {
        None => primary,
        Some(None) => bail!("qemu.conf: group: not a name or '+' and a number"),
        Some(Some(Principal::Id(n))) => Gid::from_raw(n),
        Some(Some(Principal::Name(n))) => {
            Group::from_name(n)
                .ok()
                .flatten()
                .with_context(|| format!("qemu.conf: group: no group named '{n}'"))?
                .gid
        }
    };
    if uid == Uid::effective() && gid == Gid::effective() {
        return Ok(None);
    }
    // The user's own groups (e.g. kvm, for /dev/kvm), as a login would have them.
    let mut groups: Vec<u32> = match name.and_then(|n| CString::new(n).ok()) {
        Some(n) => nix::unistd::getgrouplist(&n, gid)
            .map(|g| g.into_iter().map(Gid::as_raw).collect())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    groups.retain(|g| *g != gid.as_raw());
    Ok(Some(QemuUser {
        uid: uid.as_raw(),
        gid: gid.as_raw(),
        groups,
    }))
}
