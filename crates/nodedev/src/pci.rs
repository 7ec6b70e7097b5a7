//! PCI devices for VMs and back, through sysfs as the kernel defines it: detach (bind to
//! `vfio-pci` with `driver_override`, unbind from the host's driver, probe), reattach (the
//! override cleared, the host's driver probed again), reset (the device's `reset` file), and
//! the checks before a detach: the device's IOMMU group must hold nothing else the host
//! uses, and none of its interfaces may be up or its disks mounted.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{NodeDevError, Result};
use crate::{Kind, NodeDevDriver, PciAddr};

/// The driver that hands devices to VMs.
pub(crate) const VFIO: &str = "vfio-pci";
/// Where PCI drivers are.
const DRIVERS: &str = "/sys/bus/pci/drivers";
/// Writing an address here makes the kernel look for a driver for that device.
const PROBE: &str = "/sys/bus/pci/drivers_probe";
/// Drivers through which the host does not use a device.
const STUBS: [&str; 2] = [VFIO, "pci-stub"];
/// How long a bind may take to show (a driver that probes asynchronously).
const BIND_WAIT: Duration = Duration::from_secs(2);
/// How deep below a device its disks are looked for (host, target, LUN, block).
const BLOCK_DEPTH: usize = 6;

/// A PCI device of the host, found by its node device name.
pub(crate) struct PciDev {
    pub(crate) name: String,
    pub(crate) addr: PciAddr,
    /// Its directory under `/sys/devices` (inside the root).
    pub(crate) path: PathBuf,
}

impl PciAddr {
    /// As sysfs and QEMU write it: `0000:01:00.0`.
    pub(crate) fn sysfs_name(self) -> String {
        format!(
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.slot, self.function
        )
    }
}

impl NodeDevDriver {
    /// The PCI device named `name` (`pci_0000_01_00_0`).
    pub(crate) fn pci_device(&self, name: &str) -> Result<PciDev> {
        let host = self.scan()?;
        let dev = host.find(name)?;
        match (&dev.kind, &dev.path) {
            (Kind::Pci(addr), Some(path)) => Ok(PciDev {
                name: dev.name.clone(),
                addr: *addr,
                path: path.clone(),
            }),
            _ => Err(NodeDevError::InvalidArg(format!(
                "device '{name}' is not a PCI device"
            ))),
        }
    }

    /// The driver bound to the device in directory `path`, if any.
    pub(crate) fn driver_of(&self, path: &Path) -> Option<String> {
        self.sysfs.link_name(path, "driver")
    }

    /// The device's IOMMU group: its number and its members (address, directory).
    pub(crate) fn group_of(&self, dev: &PciDev) -> Result<(u32, Vec<(PciAddr, PathBuf)>)> {
        let addr = dev.addr.sysfs_name();
        let no_group = || {
            NodeDevError::OperationInvalid(format!(
                "PCI device {addr} is in no IOMMU group: VFIO needs the IOMMU on \
                 (intel_iommu=on or amd_iommu=on on the kernel's command line)"
            ))
        };
        let number: u32 = self
            .sysfs
            .link_name(&dev.path, "iommu_group")
            .and_then(|n| n.parse().ok())
            .ok_or_else(no_group)?;
        let group = self
            .sysfs
            .link(&dev.path, "iommu_group")
            .ok_or_else(no_group)?;
        let devices = group.join("devices");
        let mut members = Vec::new();
        for m in self.sysfs.list(&devices)? {
            let Some(a) = PciAddr::parse(&m) else {
                continue;
            };
            if let Ok(p) = self.sysfs.resolve(&devices.join(&m)) {
                members.push((a, p));
            }
        }
        Ok((number, members))
    }

    /// Refuses a detach that would take from the host something it uses: another device
    /// of the group bound to a host driver (bridges aside, VFIO allows them), an interface
    /// of the device that is up, a disk of it that is mounted.
    pub(crate) fn check_host_use(&self, dev: &PciDev) -> Result<u32> {
        let addr = dev.addr.sysfs_name();
        let (group, members) = self.group_of(dev)?;
        for (a, path) in &members {
            if *a == dev.addr {
                continue;
            }
            let Some(driver) = self.driver_of(path) else {
                continue;
            };
            let bridge = self
                .sysfs
                .attr(path, "class")
                .and_then(|c| crate::hex(&c))
                .is_some_and(|c| c >> 8 == 0x0604);
            if !STUBS.contains(&driver.as_str()) && !bridge {
                return Err(NodeDevError::OperationInvalid(format!(
                    "PCI device {addr} shares IOMMU group {group} with {}, which the host \
                     uses (driver {driver}); detach that device first",
                    a.sysfs_name()
                )));
            }
        }
        for ifname in self.sysfs.list(&dev.path.join("net"))? {
            let flags = self
                .sysfs
                .attr(&dev.path.join("net").join(&ifname), "flags")
                .and_then(|f| crate::hex(&f))
                .unwrap_or(0);
            // IFF_UP: the host has the interface in use.
            if flags & 1 != 0 {
                return Err(NodeDevError::OperationInvalid(format!(
                    "PCI device {addr} has interface {ifname} up on the host; bring it \
                     down first"
                )));
            }
        }
        let disks = self.disks_under(&dev.path, BLOCK_DEPTH);
        if !disks.is_empty() {
            let mounts = std::fs::read_to_string(self.sysfs.host(Path::new("/proc/mounts")))
                .unwrap_or_default();
            for line in mounts.lines() {
                let (Some(src), Some(at)) = ({
                    let mut f = line.split_whitespace();
                    (f.next(), f.next())
                }) else {
                    continue;
                };
                if let Some(d) = disks.iter().find(|d| src == format!("/dev/{d}")) {
                    return Err(NodeDevError::OperationInvalid(format!(
                        "PCI device {addr} has disk {d} mounted on {at}; unmount it first"
                    )));
                }
            }
        }
        Ok(group)
    }

    /// Names of the block devices (and their partitions) below `dir`.
    fn disks_under(&self, dir: &Path, depth: usize) -> Vec<String> {
        let mut out = Vec::new();
        let Ok(entries) = self.sysfs.list(dir) else {
            return out;
        };
        for e in entries {
            let p = dir.join(&e);
            // Only real directories: links (driver, subsystem, iommu_group) lead out.
            if !std::fs::symlink_metadata(self.sysfs.host(&p)).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            if e == "block" {
                for disk in self.sysfs.list(&p).unwrap_or_default() {
                    for part in self.sysfs.list(&p.join(&disk)).unwrap_or_default() {
                        if self
                            .sysfs
                            .attr(&p.join(&disk).join(&part), "partition")
                            .is_some()
                        {
                            out.push(part);
                        }
                    }
                    out.push(disk);
                }
            } else if depth > 0 {
                out.extend(self.disks_under(&p, depth - 1));
            }
        }
        out
    }

    /// Binds the device to `vfio-pci` (loading it on a host that lacks it), after the
    /// host-use checks; nothing happens to a device already there.
    pub(crate) fn bind_vfio(&self, dev: &PciDev) -> Result<()> {
        let addr = dev.addr.sysfs_name();
        if self.driver_of(&dev.path).as_deref() == Some(VFIO) {
            return Ok(());
        }
        self.check_host_use(dev)?;
        self.ensure_vfio_driver()?;
        self.sysfs.write(&dev.path.join("driver_override"), VFIO)?;
        if let Some(driver) = self.driver_of(&dev.path) {
            let unbind = Path::new(DRIVERS).join(&driver).join("unbind");
            if let Err(e) = self.sysfs.write(&unbind, &addr) {
                let _ = self.sysfs.write(&dev.path.join("driver_override"), "\n");
                return Err(e);
            }
        }
        self.sysfs.write(Path::new(PROBE), &addr)?;
        if self.wait_driver(&dev.path, VFIO) {
            return Ok(());
        }
        // Back to the host as it was.
        let now = self.driver_of(&dev.path);
        let _ = self.unbind_vfio(dev);
        Err(NodeDevError::OperationFailed(format!(
            "PCI device {addr} did not bind to {VFIO} (its driver is now {})",
            now.as_deref().unwrap_or("none")
        )))
    }

    /// Gives the device back to the host: the override cleared, unbound from `vfio-pci`,
    /// and the kernel asked to find its driver.
    pub(crate) fn unbind_vfio(&self, dev: &PciDev) -> Result<()> {
        let addr = dev.addr.sysfs_name();
        self.sysfs.write(&dev.path.join("driver_override"), "\n")?;
        match self.driver_of(&dev.path) {
            Some(d) if STUBS.contains(&d.as_str()) => {
                let unbind = Path::new(DRIVERS).join(&d).join("unbind");
                self.sysfs.write(&unbind, &addr)?;
            }
            // The host has it already.
            Some(_) => return Ok(()),
            None => {}
        }
        self.sysfs.write(Path::new(PROBE), &addr)
    }

    /// Resets the device (its `reset` file: the kernel picks FLR, PM or bus reset). A
    /// device a host driver has is refused.
    pub(crate) fn reset_pci(&self, dev: &PciDev) -> Result<()> {
        let addr = dev.addr.sysfs_name();
        if let Some(d) = self.driver_of(&dev.path) {
            if !STUBS.contains(&d.as_str()) {
                return Err(NodeDevError::OperationInvalid(format!(
                    "PCI device {addr} is bound to the host's driver {d}; detach it first"
                )));
            }
        }
        let reset = dev.path.join("reset");
        if !self.sysfs.host(&reset).exists() {
            return Err(NodeDevError::OperationFailed(format!(
                "Unable to reset PCI device {addr}: no FLR, PM reset or bus reset available"
            )));
        }
        self.sysfs.write(&reset, "1")
    }

    /// `vfio-pci` must be there to bind to; on the host, it is loaded when missing.
    fn ensure_vfio_driver(&self) -> Result<()> {
        let dir = Path::new(DRIVERS).join(VFIO);
        if self.sysfs.host(&dir).is_dir() {
            return Ok(());
        }
        if self.sysfs.is_host() {
            if let Ok(modprobe) = vireo_hostprog::find("modprobe") {
                match std::process::Command::new(modprobe).arg(VFIO).output() {
                    Ok(o) if !o.status.success() => log::warn!(
                        "modprobe {VFIO}: {}",
                        String::from_utf8_lossy(&o.stderr).trim()
                    ),
                    Err(e) => log::warn!("cannot run modprobe: {e}"),
                    Ok(_) => {}
                }
            }
            if self.sysfs.host(&dir).is_dir() {
                return Ok(());
            }
        }
        Err(NodeDevError::OperationFailed(format!(
            "the {VFIO} driver is not loaded (modprobe {VFIO})"
        )))
    }

    /// Whether the device in `path` is (or within [`BIND_WAIT`] becomes) bound to
    /// `driver`. The kernel binds during the write to `drivers_probe`, but a driver that
    /// probes asynchronously shows a moment later.
    fn wait_driver(&self, path: &Path, driver: &str) -> bool {
        let deadline = Instant::now() + BIND_WAIT;
        let mut pause = Duration::from_millis(1);
        loop {
            if self.driver_of(path).as_deref() == Some(driver) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}
