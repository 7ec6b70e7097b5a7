//! The programs of the host that Vireo, its tests and its bench run, and where they come
//! from. A missing one is reported with the Debian package that carries it and the script
//! that installs every package (`scripts/install-deps`), never as a bare "No such file".

use std::fmt;
use std::path::{Path, PathBuf};

/// Program → the Debian 12 package that carries it. Keep in step with `scripts/install-deps`.
const PACKAGES: &[(&str, &str)] = &[
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("qemu-img", "qemu-utils"),
    ("virsh", "libvirt-clients"),
    ("virt-xml-validate", "libvirt-clients"),
    ("virt-admin", "libvirt-clients"),
    ("xmllint", "libxml2-utils"),
    ("libvirtd", "libvirt-daemon"),
    ("tini", "tini"),
    ("getfacl", "acl"),
    ("setfacl", "acl"),
    ("timeout", "coreutils"),
    ("setpriv", "util-linux"),
    ("setsid", "util-linux"),
    ("blkid", "util-linux"),
    ("losetup", "mount"),
    ("mount", "mount"),
    ("umount", "mount"),
    ("mkfs.ext2", "e2fsprogs"),
    ("mkfs.ext3", "e2fsprogs"),
    ("mkfs.ext4", "e2fsprogs"),
    ("mkfs.xfs", "xfsprogs"),
    ("mkfs.vfat", "dosfstools"),
    ("mkfs.btrfs", "btrfs-progs"),
    ("scrub", "scrub"),
    ("virt-install", "virtinst"),
    ("pvcreate", "lvm2"),
    ("pvremove", "lvm2"),
    ("pvs", "lvm2"),
    ("vgcreate", "lvm2"),
    ("vgchange", "lvm2"),
    ("vgremove", "lvm2"),
    ("vgs", "lvm2"),
    ("lvcreate", "lvm2"),
    ("lvremove", "lvm2"),
    ("lvresize", "lvm2"),
    ("lvs", "lvm2"),
    ("ip", "iproute2"),
    ("dnsmasq", "dnsmasq-base"),
    ("nft", "nftables"),
    ("tc", "iproute2"),
    ("busybox", "busybox"),
    // bench/compare's network rows: namespaces (unshare), and libvirtd's NAT rules.
    ("unshare", "util-linux"),
    ("iptables", "iptables"),
    ("ip6tables", "iptables"),
    // The emulated TPM of a domain.
    ("swtpm", "swtpm"),
    // polkit on the UNIX sockets (auth_unix_rw = "polkit"): the daemons ask with pkcheck;
    // the tests run a private polkitd on a private bus.
    ("pkcheck", "polkitd"),
    ("polkitd", "polkitd"),
    ("dbus-daemon", "dbus-daemon"),
];

/// The Debian package that carries `program`, if it is one we know.
pub fn package_of(program: &str) -> Option<&'static str> {
    let name = Path::new(program).file_name()?.to_str()?;
    PACKAGES
        .iter()
        .find(|(p, _)| *p == name)
        .map(|(_, pkg)| *pkg)
}

/// A program that is not installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub program: String,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match package_of(&self.program) {
            Some(pkg) => write!(
                f,
                "{} is not installed (Debian package {pkg}; scripts/install-deps installs it)",
                self.program
            ),
            None => write!(f, "{} is not installed", self.program),
        }
    }
}

impl std::error::Error for Missing {}

/// Where `program` is: itself when it names a path, else the first executable of that
/// name on `PATH` (then in /usr/sbin and /sbin).
pub fn find(program: &str) -> Result<PathBuf, Missing> {
    let missing = || Missing {
        program: program.to_string(),
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        return if is_executable(&p) {
            Ok(p)
        } else {
            Err(missing())
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    // The sbin directories too: a user's PATH often lacks them, and mkfs, mount and blkid
    // live there.
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
        .ok_or_else(missing)
}

/// For tests and tools: `find`, or a panic whose message says what to install.
#[track_caller]
pub fn require(program: &str) -> PathBuf {
    find(program).unwrap_or_else(|e| panic!("{e}"))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_program_on_path_and_by_path() {
        let sh = find("sh").expect("sh is on PATH");
        assert!(sh.ends_with("sh"));
        assert_eq!(find(sh.to_str().unwrap()).unwrap(), sh);
    }

    #[test]
    fn a_missing_program_names_its_package_and_the_script() {
        let e = find("/nonexistent/qemu-img").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("qemu-img"), "{msg}");
        assert!(msg.contains("qemu-utils"), "{msg}");
        assert!(msg.contains("scripts/install-deps"), "{msg}");
        let e = find("vireo-no-such-program").unwrap_err();
        assert_eq!(e.to_string(), "vireo-no-such-program is not installed");
    }

    #[test]
    #[should_panic(expected = "Debian package qemu-system-x86")]
    fn require_panics_with_what_to_install() {
        require("/nonexistent/qemu-system-x86_64");
    }
}
