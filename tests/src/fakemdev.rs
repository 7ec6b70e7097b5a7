//! A synthetic sysfs tree with a graphics device that offers mediated device types, and a
//! stand-in for the kernel's mdev core over it, so that mediated devices are made and
//! removed for real against files: a thread watches the tree (inotify, no polling) and
//! does what the kernel does when a UUID is written into a type's `create` (the device's
//! directory under its parent with its `mdev_type`, `iommu_group` (a new group), `driver`
//! and `remove`, its VFIO group's node under `dev/vfio`, one instance fewer available, and
//! last its link in `/sys/bus/mdev/devices`) and when `1` is written into a device's
//! `remove` (all of it undone).
//!
//! The machine it shows: `0000:00:02.0`, an Intel graphics device (`i915`, in IOMMU
//! group 1) offering `i915-GVTg_V5_4` (one instance) and `i915-GVTg_V5_8` (two). Each
//! device made has two attribute files, `assign_adapter` and `assign_domain` (as a
//! vfio-ap device has). It can share a root with [`crate::fakepci::FakePci`]: their
//! devices and files differ.

use std::collections::HashMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::JoinHandle;

use inotify::{Inotify, WatchDescriptor, WatchMask, Watches};

/// The parent's address, directory under `sys/devices`, and node device name.
pub const PARENT: &str = "0000:00:02.0";
const PARENT_DIR: &str = "sys/devices/pci0000:00/0000:00:02.0";
pub const PARENT_NAME: &str = "pci_0000_00_02_0";
/// The types it offers: id, name, instances.
pub const TYPES: [(&str, &str, u32); 2] = [
    ("i915-GVTg_V5_4", "GVTg_V5_4", 1),
    ("i915-GVTg_V5_8", "GVTg_V5_8", 2),
];
/// The attribute files of each device made.
pub const ATTRS: [&str; 2] = ["assign_adapter", "assign_domain"];
/// The first IOMMU group given to a device made.
const FIRST_GROUP: u32 = 20;
/// Where the test and the thread talk (outside `sys`: nothing lists it).
const CONTROL: &str = ".fakemdev";

/// Writes `text` at `root/rel`, making the directories.
fn put(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

/// A link at `root/rel` to `target`, making the directories.
fn link(root: &Path, rel: &str, target: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    symlink(target, p).expect("symlink");
}

/// The synthetic machine under `root`, and its kernel, until dropped.
pub struct FakeMdev {
    root: PathBuf,
    synced: Mutex<std::sync::mpsc::Receiver<()>>,
    thread: Option<JoinHandle<()>>,
}

/// What a watched directory is.
enum Watch {
    Control,
    /// A type's directory (its `create`).
    Type(String),
    /// A device made (its `remove`).
    Device(String),
}

impl FakeMdev {
    /// Builds the tree under `root` (which must exist) and starts its kernel.
    pub fn start(root: &Path) -> FakeMdev {
        put(root, &format!("{PARENT_DIR}/class"), "0x030000\n");
        put(root, &format!("{PARENT_DIR}/vendor"), "0x8086\n");
        put(root, &format!("{PARENT_DIR}/device"), "0x5917\n");
        link(
            root,
            &format!("{PARENT_DIR}/driver"),
            "/sys/bus/pci/drivers/i915",
        );
        link(
            root,
            &format!("{PARENT_DIR}/iommu_group"),
            "/sys/kernel/iommu_groups/1",
        );
        link(
            root,
            &format!("sys/kernel/iommu_groups/1/devices/{PARENT}"),
            &format!("/{PARENT_DIR}"),
        );
        link(
            root,
            &format!("sys/bus/pci/devices/{PARENT}"),
            &format!("/{PARENT_DIR}"),
        );
        for dir in [
            "sys/bus/pci/drivers/i915",
            "sys/bus/mdev/devices",
            "sys/bus/mdev/drivers/vfio_mdev",
            "dev/vfio",
            CONTROL,
        ] {
            std::fs::create_dir_all(root.join(dir)).expect("mkdir");
        }
        for (id, name, n) in TYPES {
            let t = format!("{PARENT_DIR}/mdev_supported_types/{id}");
            put(root, &format!("{t}/name"), &format!("{name}\n"));
            put(root, &format!("{t}/device_api"), "vfio-pci\n");
            put(root, &format!("{t}/available_instances"), &format!("{n}\n"));
            put(root, &format!("{t}/create"), "");
            std::fs::create_dir_all(root.join(format!("{t}/devices"))).expect("mkdir");
        }
        let mut ino = Inotify::init().expect("inotify");
        let watches = ino.watches();
        let mut watched: HashMap<WatchDescriptor, Watch> = HashMap::new();
        let mut watch = |ws: &mut Watches, path: PathBuf, w: Watch| {
            let wd = ws
                .add(&path, WatchMask::CLOSE_WRITE)
                .expect("inotify watch");
            watched.insert(wd, w);
        };
        let mut ws = watches.clone();
        watch(&mut ws, root.join(CONTROL), Watch::Control);
        for (id, ..) in TYPES {
            watch(
                &mut ws,
                root.join(format!("{PARENT_DIR}/mdev_supported_types/{id}")),
                Watch::Type(id.to_string()),
            );
        }
        let mut kernel = Kernel {
            root: root.to_path_buf(),
            watches,
            next_group: FIRST_GROUP,
            groups: HashMap::new(),
        };
        let (synced_tx, synced) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let Ok(events) = ino.read_events_blocking(&mut buf) else {
                    return;
                };
                let events: Vec<(WatchDescriptor, String)> = events
                    .filter_map(|ev| Some((ev.wd.clone(), ev.name?.to_str()?.to_string())))
                    .collect();
                for (wd, name) in events {
                    match (watched.get(&wd), name.as_str()) {
                        (Some(Watch::Control), ".stop") => return,
                        (Some(Watch::Control), ".sync") => {
                            let _ = synced_tx.send(());
                        }
                        (Some(Watch::Type(t)), "create") => {
                            let t = t.clone();
                            if let Some((wd, uuid)) = kernel.create(&t) {
                                watched.insert(wd, Watch::Device(uuid));
                            }
                        }
                        (Some(Watch::Device(u)), "remove") => {
                            let u = u.clone();
                            kernel.remove(&u);
                            watched.remove(&wd);
                        }
                        _ => {}
                    }
                }
            }
        });
        FakeMdev {
            root: root.to_path_buf(),
            synced: Mutex::new(synced),
            thread: Some(thread),
        }
    }

    /// Returns once the kernel has done everything written to the tree before.
    pub fn settle(&self) {
        let synced = self.synced.lock().unwrap_or_else(|p| p.into_inner());
        put(&self.root, &format!("{CONTROL}/.sync"), "");
        synced
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the fake kernel answers");
    }

    /// The UUIDs of the mediated devices of its parent there now, sorted (another tree in
    /// the same root may have its own).
    pub fn devices(&self) -> Vec<String> {
        let ours = format!("/{PARENT_DIR}/");
        let mut v: Vec<String> = std::fs::read_dir(self.root.join("sys/bus/mdev/devices"))
            .map(|rd| {
                rd.flatten()
                    .filter(|e| {
                        std::fs::read_link(e.path())
                            .is_ok_and(|t| t.to_string_lossy().starts_with(&ours))
                    })
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// How many more devices of type `id` may be made.
    pub fn available(&self, id: &str) -> u32 {
        std::fs::read_to_string(self.root.join(format!(
            "{PARENT_DIR}/mdev_supported_types/{id}/available_instances"
        )))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
    }

    /// The value last written into attribute `name` of device `uuid`.
    pub fn attr(&self, uuid: &str, name: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(format!("{PARENT_DIR}/{uuid}/{name}"))).ok()
    }

    /// The IOMMU group of device `uuid`, when it is there.
    pub fn group(&self, uuid: &str) -> Option<u32> {
        let t =
            std::fs::read_link(self.root.join(format!("{PARENT_DIR}/{uuid}/iommu_group"))).ok()?;
        t.file_name()?.to_str()?.parse().ok()
    }

    /// The VFIO group's node for group `n`.
    pub fn vfio_node(&self, n: u32) -> PathBuf {
        self.root.join(format!("dev/vfio/{n}"))
    }
}

impl Drop for FakeMdev {
    fn drop(&mut self) {
        put(&self.root, &format!("{CONTROL}/.stop"), "");
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The kernel's side of the tree.
struct Kernel {
    root: PathBuf,
    watches: Watches,
    next_group: u32,
    /// Each device's group, by UUID.
    groups: HashMap<String, u32>,
}

impl Kernel {
    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root.join(rel))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    fn type_dir(id: &str) -> String {
        format!("{PARENT_DIR}/mdev_supported_types/{id}")
    }

    /// A UUID written into type `id`'s `create`: the device made, unless the UUID is
    /// malformed or taken or no instance is left (the kernel's write fails then).
    /// Returns the watch on the new device's directory and its UUID.
    fn create(&mut self, id: &str) -> Option<(WatchDescriptor, String)> {
        let t = Self::type_dir(id);
        let uuid = self.read(&format!("{t}/create")).to_ascii_lowercase();
        let well_formed = uuid.len() == 36
            && uuid
                .bytes()
                .enumerate()
                .all(|(i, b)| matches!(i, 8 | 13 | 18 | 23) == (b == b'-'))
            && uuid.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit());
        let left: u32 = self
            .read(&format!("{t}/available_instances"))
            .parse()
            .unwrap_or(0);
        let bus_link = format!("sys/bus/mdev/devices/{uuid}");
        if !well_formed || left == 0 || self.root.join(&bus_link).symlink_metadata().is_ok() {
            return None;
        }
        let group = self.next_group;
        self.next_group += 1;
        let dir = format!("{PARENT_DIR}/{uuid}");
        put(
            &self.root,
            &format!("{dir}/uevent"),
            &format!("DRIVER=vfio_mdev\nMDEV_TYPE={id}\n"),
        );
        put(&self.root, &format!("{dir}/remove"), "");
        for a in ATTRS {
            put(&self.root, &format!("{dir}/{a}"), "");
        }
        link(&self.root, &format!("{dir}/mdev_type"), &format!("/{t}"));
        link(
            &self.root,
            &format!("{dir}/iommu_group"),
            &format!("/sys/kernel/iommu_groups/{group}"),
        );
        link(
            &self.root,
            &format!("{dir}/driver"),
            "/sys/bus/mdev/drivers/vfio_mdev",
        );
        link(
            &self.root,
            &format!("sys/kernel/iommu_groups/{group}/devices/{uuid}"),
            &format!("/{dir}"),
        );
        link(
            &self.root,
            &format!("{t}/devices/{uuid}"),
            &format!("/{dir}"),
        );
        put(&self.root, &format!("dev/vfio/{group}"), "");
        put(
            &self.root,
            &format!("{t}/available_instances"),
            &format!("{}\n", left - 1),
        );
        let wd = self
            .watches
            .add(self.root.join(&dir), WatchMask::CLOSE_WRITE)
            .ok()?;
        self.groups.insert(uuid.clone(), group);
        // Last: the device is listed once it is whole.
        link(&self.root, &bus_link, &format!("/{dir}"));
        Some((wd, uuid))
    }

    /// `1` written into device `uuid`'s `remove`: everything `create` made, undone.
    fn remove(&mut self, uuid: &str) {
        let dir = format!("{PARENT_DIR}/{uuid}");
        if self.read(&format!("{dir}/remove")) != "1" {
            return;
        }
        let id = std::fs::read_link(self.root.join(format!("{dir}/mdev_type")))
            .ok()
            .and_then(|t| t.file_name()?.to_str().map(str::to_string));
        if let Some(id) = id {
            let t = Self::type_dir(&id);
            let _ = std::fs::remove_file(self.root.join(format!("{t}/devices/{uuid}")));
            let left: u32 = self
                .read(&format!("{t}/available_instances"))
                .parse()
                .unwrap_or(0);
            put(
                &self.root,
                &format!("{t}/available_instances"),
                &format!("{}\n", left + 1),
            );
        }
        if let Some(g) = self.groups.remove(uuid) {
            let _ = std::fs::remove_dir_all(self.root.join(format!("sys/kernel/iommu_groups/{g}")));
            let _ = std::fs::remove_file(self.root.join(format!("dev/vfio/{g}")));
        }
        let _ = std::fs::remove_dir_all(self.root.join(&dir));
        // Last: the device is unlisted once it is gone.
        let _ = std::fs::remove_file(self.root.join(format!("sys/bus/mdev/devices/{uuid}")));
    }
}
