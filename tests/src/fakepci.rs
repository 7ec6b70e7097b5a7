//! A synthetic sysfs tree of PCI devices and a stand-in for the kernel's PCI driver core
//! over it, so that detach, reattach, reset and leases run for real against files: a
//! thread watches the tree (inotify, no polling) and does what the kernel does when
//! `unbind`, `drivers_probe` and `reset` are written (the `driver` link removed or made,
//! honouring `driver_override`; the VFIO group's node made under `dev/vfio`).
//!
//! The machine it shows:
//! - `0000:00:1c.0`, a PCIe root port (`pcieport`, IOMMU group 6);
//! - `0000:01:00.0`, a network card behind it (`e1000e`, group 7) with `eth1`, down;
//! - `0000:02:00.0` and `0000:02:00.1`, a graphics card and its sound function, both in
//!   group 8, the sound function in the host's use (`snd_hda_intel`);
//! - `0000:03:00.0`, a network card (`e1000e`, group 9) whose `eth3` is up;
//! - a mediated device of the graphics card ([`MDEV_UUID`], IOMMU group 12);
//! - a USB tablet (`0627:0001`, bus 1 device 2, `usb_1_1`).

use std::collections::HashMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use inotify::{Inotify, WatchMask};

/// The devices: address, parent directory under `sys/devices`, class, IOMMU group, the
/// driver the host binds.
const DEVICES: [(&str, &str, &str, u32, &str); 5] = [
    ("0000:00:1c.0", "pci0000:00", "0x060400", 6, "pcieport"),
    (
        "0000:01:00.0",
        "pci0000:00/0000:00:1c.0",
        "0x020000",
        7,
        "e1000e",
    ),
    ("0000:02:00.0", "pci0000:00", "0x030000", 8, "amdgpu"),
    ("0000:02:00.1", "pci0000:00", "0x040300", 8, "snd_hda_intel"),
    ("0000:03:00.0", "pci0000:00", "0x020000", 9, "e1000e"),
];

/// The UUID of the tree's mediated device.
pub const MDEV_UUID: &str = "4b20d080-1b54-4048-85b3-a6a62d165c01";

/// The drivers the tree has.
const DRIVERS: [&str; 5] = ["pcieport", "e1000e", "amdgpu", "snd_hda_intel", "vfio-pci"];

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
pub struct FakePci {
    root: PathBuf,
    resets: Arc<Mutex<HashMap<String, usize>>>,
    synced: Mutex<std::sync::mpsc::Receiver<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakePci {
    /// Builds the tree under `root` (which must exist) and starts its kernel.
    pub fn start(root: &Path) -> FakePci {
        for d in DRIVERS {
            put(root, &format!("sys/bus/pci/drivers/{d}/unbind"), "");
            put(root, &format!("sys/bus/pci/drivers/{d}/bind"), "");
        }
        put(root, "sys/bus/pci/drivers_probe", "");
        put(root, "proc/mounts", "/dev/vda1 / ext4 rw 0 0\n");
        for (addr, parent, class, group, driver) in DEVICES {
            let dev = format!("sys/devices/{parent}/{addr}");
            put(root, &format!("{dev}/class"), &format!("{class}\n"));
            put(root, &format!("{dev}/vendor"), "0x8086\n");
            put(root, &format!("{dev}/device"), "0x10d3\n");
            put(root, &format!("{dev}/driver_override"), "(null)\n");
            put(root, &format!("{dev}/reset"), "");
            link(
                root,
                &format!("{dev}/driver"),
                &format!("/sys/bus/pci/drivers/{driver}"),
            );
            link(
                root,
                &format!("{dev}/iommu_group"),
                &format!("/sys/kernel/iommu_groups/{group}"),
            );
            link(
                root,
                &format!("sys/kernel/iommu_groups/{group}/devices/{addr}"),
                &format!("/{dev}"),
            );
            link(
                root,
                &format!("sys/bus/pci/devices/{addr}"),
                &format!("/{dev}"),
            );
        }
        for (ifname, addr, parent, flags) in [
            ("eth1", "0000:01:00.0", "pci0000:00/0000:00:1c.0", "0x1002"),
            ("eth3", "0000:03:00.0", "pci0000:00", "0x1003"),
        ] {
            let dir = format!("sys/devices/{parent}/{addr}/net/{ifname}");
            put(root, &format!("{dir}/address"), "52:54:00:00:00:01\n");
            put(root, &format!("{dir}/flags"), &format!("{flags}\n"));
            put(root, &format!("{dir}/operstate"), "down\n");
            link(root, &format!("sys/class/net/{ifname}"), &format!("/{dir}"));
        }
        // A USB tablet on bus 1 (its node a plain file here).
        let tablet = "sys/devices/pci0000:00/0000:00:14.0/usb1/1-1";
        put(
            root,
            &format!("{tablet}/uevent"),
            "DEVNAME=bus/usb/001/002\nDEVTYPE=usb_device\nBUSNUM=001\nDEVNUM=002\n",
        );
        put(root, &format!("{tablet}/idVendor"), "0627\n");
        put(root, &format!("{tablet}/idProduct"), "0001\n");
        link(root, "sys/bus/usb/devices/1-1", &format!("/{tablet}"));
        put(root, "dev/bus/usb/001/002", "");
        // A mediated device of the graphics card, in IOMMU group 12.
        let mdev = format!("sys/devices/pci0000:00/0000:02:00.0/{MDEV_UUID}");
        put(root, &format!("{mdev}/uevent"), "MDEV_TYPE=nvidia-63\n");
        link(
            root,
            &format!("{mdev}/mdev_type"),
            "/sys/devices/pci0000:00/0000:02:00.0/mdev_supported_types/nvidia-63",
        );
        link(
            root,
            &format!("{mdev}/iommu_group"),
            "/sys/kernel/iommu_groups/12",
        );
        link(
            root,
            &format!("sys/bus/mdev/devices/{MDEV_UUID}"),
            &format!("/{mdev}"),
        );
        put(root, "dev/vfio/12", "");
        std::fs::create_dir_all(root.join("dev/vfio")).expect("dev/vfio");
        let mut ino = Inotify::init().expect("inotify");
        let mut watched: HashMap<inotify::WatchDescriptor, Watch> = HashMap::new();
        let mut watch = |path: PathBuf, w: Watch| {
            let wd = ino
                .watches()
                .add(&path, WatchMask::CLOSE_WRITE)
                .expect("inotify watch");
            watched.insert(wd, w);
        };
        watch(root.join("sys/bus/pci"), Watch::Bus);
        for d in DRIVERS {
            watch(
                root.join(format!("sys/bus/pci/drivers/{d}")),
                Watch::Driver(d.to_string()),
            );
        }
        for (addr, parent, ..) in DEVICES {
            watch(
                root.join(format!("sys/devices/{parent}/{addr}")),
                Watch::Device(addr.to_string()),
            );
        }
        let resets = Arc::new(Mutex::new(HashMap::new()));
        let kernel = Kernel {
            root: root.to_path_buf(),
            resets: Arc::clone(&resets),
        };
        let (synced_tx, synced) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let Ok(events) = ino.read_events_blocking(&mut buf) else {
                    return;
                };
                for ev in events {
                    let Some(name) = ev.name.and_then(|n| n.to_str()) else {
                        continue;
                    };
                    match (watched.get(&ev.wd), name) {
                        (Some(Watch::Bus), ".stop") => return,
                        (Some(Watch::Bus), ".sync") => {
                            let _ = synced_tx.send(());
                        }
                        (Some(Watch::Bus), "drivers_probe") => kernel.probe(),
                        (Some(Watch::Driver(d)), "unbind") => kernel.unbind(d),
                        (Some(Watch::Device(a)), "reset") => kernel.reset(a),
                        _ => {}
                    }
                }
            }
        });
        FakePci {
            root: root.to_path_buf(),
            resets,
            synced: Mutex::new(synced),
            thread: Some(thread),
        }
    }

    /// Returns once the kernel has done everything written to the tree before.
    pub fn settle(&self) {
        let synced = self.synced.lock().unwrap_or_else(|p| p.into_inner());
        put(&self.root, "sys/bus/pci/.sync", "");
        synced
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the fake kernel answers");
    }

    /// The driver bound to the device at `addr` now.
    pub fn driver(&self, addr: &str) -> Option<String> {
        // The tree's links are absolute, as seen inside it: followed by hand.
        let dev = std::fs::read_link(self.root.join(format!("sys/bus/pci/devices/{addr}"))).ok()?;
        let dev = self.root.join(dev.strip_prefix("/").ok()?);
        let target = std::fs::read_link(dev.join("driver")).ok()?;
        target.file_name()?.to_str().map(str::to_string)
    }

    /// How many times the device at `addr` was reset.
    pub fn resets(&self, addr: &str) -> usize {
        let r = self.resets.lock().unwrap_or_else(|p| p.into_inner());
        r.get(addr).copied().unwrap_or(0)
    }

    /// The VFIO group's node for group `n`, if the kernel made it.
    pub fn vfio_node(&self, n: u32) -> PathBuf {
        self.root.join(format!("dev/vfio/{n}"))
    }
}

impl Drop for FakePci {
    fn drop(&mut self) {
        put(&self.root, "sys/bus/pci/.stop", "");
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a watched directory is.
enum Watch {
    Bus,
    Driver(String),
    Device(String),
}

/// The kernel's side of the tree.
struct Kernel {
    root: PathBuf,
    resets: Arc<Mutex<HashMap<String, usize>>>,
}

impl Kernel {
    /// A path inside the tree, as sysfs links name it.
    fn inside(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }

    /// The device directory of `addr`.
    fn device(&self, addr: &str) -> Option<PathBuf> {
        let target =
            std::fs::read_link(self.inside(&format!("sys/bus/pci/devices/{addr}"))).ok()?;
        Some(self.inside(target.to_str()?))
    }

    fn read(&self, p: &Path) -> String {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    fn group(&self, dev: &Path) -> Option<String> {
        let t = std::fs::read_link(dev.join("iommu_group")).ok()?;
        t.file_name()?.to_str().map(str::to_string)
    }

    /// `echo ADDR > drivers/D/unbind`.
    fn unbind(&self, driver: &str) {
        let addr = self.read(&self.inside(&format!("sys/bus/pci/drivers/{driver}/unbind")));
        let Some(dev) = self.device(&addr) else {
            return;
        };
        let bound = std::fs::read_link(dev.join("driver")).ok();
        if bound.as_deref().and_then(Path::file_name) != Some(std::ffi::OsStr::new(driver)) {
            return;
        }
        let _ = std::fs::remove_file(dev.join("driver"));
        if driver == "vfio-pci" {
            if let Some(g) = self.group(&dev) {
                let _ = std::fs::remove_file(self.inside(&format!("dev/vfio/{g}")));
            }
        }
    }

    /// `echo ADDR > drivers_probe`: the override's driver, else the device's own. Two
    /// writes read as one event carry only the last address, so every device without a
    /// driver is probed.
    fn probe(&self) {
        for (addr, ..) in DEVICES {
            self.probe_one(addr);
        }
    }

    fn probe_one(&self, addr: &str) {
        let Some(dev) = self.device(addr) else {
            return;
        };
        if dev.join("driver").symlink_metadata().is_ok() {
            return;
        }
        let over = self.read(&dev.join("driver_override"));
        let driver = if over.is_empty() || over == "(null)" {
            match DEVICES.iter().find(|d| d.0 == addr) {
                Some(d) => d.4,
                None => return,
            }
        } else {
            over.as_str()
        };
        if !self
            .inside(&format!("sys/bus/pci/drivers/{driver}"))
            .is_dir()
        {
            return;
        }
        if driver == "vfio-pci" {
            if let Some(g) = self.group(&dev) {
                put(&self.root, &format!("dev/vfio/{g}"), "");
            }
        }
        let _ = symlink(format!("/sys/bus/pci/drivers/{driver}"), dev.join("driver"));
    }

    fn reset(&self, addr: &str) {
        let mut r = self.resets.lock().unwrap_or_else(|p| p.into_inner());
        *r.entry(addr.to_string()).or_default() += 1;
    }
}
