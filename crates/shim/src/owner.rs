//! qemu.conf's `dynamic_ownership`: while the VM runs, the files QEMU opens by path — its
//! disk images and their backing files, the kernel, initrd and device tree it boots, its
//! NVRAM — belong to QEMU's user, and afterwards go back to the owners they had, as
//! libvirt does. Files QEMU gets as descriptors (taps, devices, secrets) need none of it.
//!
//! Who owned each file before is remembered in the run directory's owner records
//! ([`vireo_qemu::owners`]), with this shim among its holders: a file two VMs use goes back
//! when the last one ends, and what a shim killed outright held is given back by the
//! daemon.

use std::path::{Path, PathBuf};

use vireo_qemu::owners::{Holder, Store};
use vireo_qemu::QemuUser;
use vireo_xml::{Disk, DiskType, Domain, Os};

/// The files this shim gives to QEMU's user: the owner records, and this shim as their
/// holder (None: dynamic ownership is off). A file given twice is held once.
#[derive(Default)]
pub struct Owners {
    store: Option<(Store, Holder)>,
}

/// The files of `def` QEMU opens by path.
pub(crate) fn files_of(def: &Domain) -> Vec<PathBuf> {
    let mut out = disk_files(&def.devices.disks);
    out.extend(boot_files(&def.os));
    out
}

/// The images of `disks` (each with its backing chain).
pub(crate) fn disk_files(disks: &[Disk]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for d in disks {
        let Some(src) = &d.source else { continue };
        let path = match d.disk_type {
            DiskType::File => src.file.as_deref(),
            DiskType::Block => src.dev.as_deref(),
            _ => None,
        };
        let Some(path) = path else { continue };
        let format = d
            .driver
            .as_ref()
            .and_then(|d| d.format.as_deref())
            .unwrap_or("raw");
        match vireo_storagefile::chain(Path::new(path), format) {
            Ok(layers) => out.extend(layers.into_iter().map(|l| l.path)),
            Err(_) => out.push(PathBuf::from(path)),
        }
    }
    out
}

/// The kernel, initrd, device tree and NVRAM the VM boots with.
pub(crate) fn boot_files(os: &Os) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = [&os.kernel, &os.initrd, &os.dtb]
        .into_iter()
        .flatten()
        .map(PathBuf::from)
        .collect();
    if let Some(p) = os.nvram.as_ref().and_then(|n| n.path.as_deref()) {
        out.push(PathBuf::from(p));
    }
    out
}

impl Owners {
    /// Owners recorded in the store of `run_dir`, held by this shim for the VM `uuid`.
    pub fn new(run_dir: &Path, uuid: &str) -> Owners {
        Owners {
            store: Some((Store::new(run_dir), Holder::me(uuid))),
        }
    }

    /// Gives the files of `def` to `user`.
    pub fn take(mut self, def: &Domain, user: &QemuUser) -> Owners {
        for p in files_of(def) {
            self.give(&p, user);
        }
        self
    }

    /// Gives one file (a disk plugged in) to `user`; a file that is not there is left
    /// alone (QEMU says so when it opens it).
    pub fn give(&mut self, path: &Path, user: &QemuUser) {
        let Some((store, me)) = &self.store else {
            return;
        };
        if let Err(e) = crate::confine::privileged(|| store.give(path, user.uid, user.gid, me)) {
            eprintln!("cannot give {} to QEMU's user: {e}", path.display());
        }
    }

    /// Gives one file (a disk unplugged, a medium ejected) back to its owner, unless another
    /// VM still holds it.
    pub fn give_back(&mut self, path: &Path) {
        let Some((store, me)) = &self.store else {
            return;
        };
        if let Err(e) = crate::confine::privileged(|| store.release_file(path, me)) {
            eprintln!("cannot give {} back: {e}", path.display());
        }
    }

    /// Gives every file this shim holds back to its owner (unless another VM still holds
    /// it): those it gave, and those the daemon made for its QEMU (overlays, copies).
    pub fn restore(&mut self) {
        let Some((store, me)) = &self.store else {
            return;
        };
        if let Err(e) = crate::confine::privileged(|| store.release(me)) {
            eprintln!("cannot give QEMU's files back: {e}");
        }
    }
}

impl Drop for Owners {
    fn drop(&mut self) {
        self.restore();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_qemu_opens_by_path() {
        let xml = "<domain type='qemu'><name>a</name><memory>65536</memory>\
            <os><type>hvm</type><kernel>/k</kernel><initrd>/i</initrd>\
            <nvram>/n.fd</nvram></os><devices>\
            <disk type='file' device='disk'><driver name='qemu' type='raw'/>\
            <source file='/nonexistent/a.img'/><target dev='vda'/></disk>\
            <disk type='network' device='disk'><source protocol='nbd' name='x'>\
            <host name='h'/></source><target dev='vdb'/></disk>\
            </devices></domain>";
        let def = Domain::parse(xml).expect("xml");
        let got: Vec<String> = files_of(&def)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(got, ["/nonexistent/a.img", "/k", "/i", "/n.fd"]);
    }

    #[test]
    fn a_file_is_given_and_given_back() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("disk");
        std::fs::write(&f, b"x").expect("write");
        let m = std::fs::metadata(&f).expect("stat");
        // As ourselves (no privilege needed): the file is already ours, nothing recorded.
        let me = QemuUser {
            uid: m.uid(),
            gid: m.gid(),
            groups: Vec::new(),
        };
        let mut o = Owners::new(dir.path(), "vm");
        o.give(&f, &me);
        let records = || {
            std::fs::read_dir(dir.path().join("owners"))
                .expect("records")
                .count()
        };
        assert_eq!(records(), 1, "only the lock");
        if rustix::process::geteuid().is_root() {
            let other = QemuUser {
                uid: 65534,
                gid: 65534,
                groups: Vec::new(),
            };
            o.give(&f, &other);
            o.give(&f, &other);
            assert_eq!(std::fs::metadata(&f).expect("stat").uid(), 65534);
            assert_eq!(records(), 2, "one record, held once");
            drop(o);
            assert_eq!(std::fs::metadata(&f).expect("stat").uid(), m.uid());
        }
    }
}
