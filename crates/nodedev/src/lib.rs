//! The node device driver's read side (`vireo-nodedevd`, and `vireod`): the host's
//! devices as libvirt's udev backend shows them, read from sysfs under a root directory
//! (`/` on a host, a synthetic tree in tests).
//!
//! The devices: `computer` (capability `system`, from DMI); every PCI device (`pci`, from
//! `/sys/bus/pci/devices`, with the mediated device types it offers); USB devices and
//! their interfaces (`usb_device`, `usb`, from `/sys/bus/usb/devices`); network interfaces
//! (`net`, from `/sys/class/net`); SCSI hosts, targets and devices (`scsi_host`,
//! `scsi_target`, `scsi`, from `/sys/bus/scsi/devices`); disks (`storage`, from
//! `/sys/class/block`); SCSI generic devices (`scsi_generic`); DRM nodes (`drm`); mediated
//! devices (`mdev`, from `/sys/bus/mdev/devices`). What udev adds (a disk's serial number
//! and kind) is read from udev's database when the host has one. A device's parent is the
//! nearest listed device above it in `/sys/devices`, else `computer`. Nothing is cached:
//! every call reads sysfs again, so a device that comes or goes is seen at once; the
//! kernel's events about them are followed by [`DeviceMonitor`].
//!
//! Names are libvirt's: the subsystem, the kernel's name and (for an interface its MAC
//! address, for a disk its serial number, for a mediated device its parent's address),
//! every character but a letter or digit made `_` (`pci_0000_00_1f_2`,
//! `net_eth0_52_54_00_12_34_56`, `usb_1_1`, `scsi_host0`, `block_sda_QEMU_HARDDISK_1`).

mod block;
mod drm;
mod error;
mod lease;
mod mdev;
mod mediated;
mod monitor;
mod pci;
mod props;
mod scsi;
mod sysfs;
mod uevent;
mod usb;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use vireo_xml::{
    parse_uuid, Hex, MacAddr, NodeDevCapType, NodeDevCapability, NodeDevDevnode,
    NodeDevDevnodeType, NodeDevDriverName, NodeDevDrmType, NodeDevFirmware, NodeDevHardware,
    NodeDevIdName, NodeDevIommuGroup, NodeDevLink, NodeDevLinkState, NodeDevNetCap, NodeDevPciCap,
    NodeDevScsiGenericCap, NodeDevSubCap, NodeDevSystemCap, NodeDeviceDef, PciAddress,
};

pub use error::{NodeDevError, Result};
pub use lease::{Grant, Lease};
pub use monitor::DeviceMonitor;
use props::Props;
use sysfs::Sysfs;

/// The device every other one descends from.
const COMPUTER: &str = "computer";
/// One link per PCI device, to its directory under `/sys/devices`.
const PCI_DEVICES: &str = "/sys/bus/pci/devices";
/// One link per network interface.
const NET_CLASS: &str = "/sys/class/net";
/// One link per SCSI generic device.
const SCSI_GENERIC_CLASS: &str = "/sys/class/scsi_generic";
/// Where devices are listed, and the subsystem of those listed there.
const SOURCES: [(&str, &str); 8] = [
    (PCI_DEVICES, "pci"),
    (usb::USB_DEVICES, "usb"),
    (NET_CLASS, "net"),
    (scsi::SCSI_DEVICES, "scsi"),
    (block::BLOCK_CLASS, "block"),
    (SCSI_GENERIC_CLASS, "scsi_generic"),
    (drm::DRM_CLASS, "drm"),
    (mdev::MDEV_DEVICES, "mdev"),
];
/// The host's DMI data (a link to `/sys/devices/virtual/dmi/id`).
const DMI: &str = "/sys/class/dmi/id";

/// A PCI address, as sysfs names the device (`0000:00:1f.2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct PciAddr {
    domain: u32,
    bus: u32,
    slot: u32,
    function: u32,
}

impl PciAddr {
    /// Reads `DDDD:BB:SS.F` (hexadecimal); `None` for anything else.
    fn parse(s: &str) -> Option<PciAddr> {
        let (domain, rest) = s.split_once(':')?;
        let (bus, rest) = rest.split_once(':')?;
        let (slot, function) = rest.split_once('.')?;
        Some(PciAddr {
            domain: hex(domain)?,
            bus: hex(bus)?,
            slot: hex(slot)?,
            function: hex(function)?,
        })
    }

    /// `<address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>`.
    fn to_xml(self) -> PciAddress {
        PciAddress {
            addr_type: None,
            domain: Hex(self.domain),
            bus: Hex(self.bus),
            slot: Hex(self.slot),
            function: Hex(self.function),
        }
    }
}

/// A hexadecimal number with or without `0x` (`0x8086`, `1f`).
fn hex(s: &str) -> Option<u32> {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

/// libvirt's name for a device: `subsystem_sysname[_extra]`, every byte but an ASCII
/// letter or digit made `_`.
fn device_name(subsystem: &str, sysname: &str, extra: Option<&str>) -> String {
    let mut raw = format!("{subsystem}_{sysname}");
    if let Some(x) = extra {
        raw.push('_');
        raw.push_str(x);
    }
    raw.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b)
            } else {
                '_'
            }
        })
        .collect()
}

/// What a device is, with what was read to know it.
enum Kind {
    System,
    Pci(PciAddr),
    Net {
        ifname: String,
    },
    UsbDevice,
    UsbInterface,
    /// Its number (`host0`).
    ScsiHost(u32),
    ScsiTarget,
    /// Host, bus, target and LUN.
    Scsi([u32; 4]),
    Storage(block::Disk),
    ScsiGeneric {
        devnode: String,
    },
    Drm(NodeDevDrmType),
    Mdev(mdev::Mdev),
    /// A mediated device defined and not made now (listed as inactive).
    Defined(mediated::MdevConfig),
}

impl Kind {
    fn cap(&self) -> NodeDevCapType {
        match self {
            Kind::System => NodeDevCapType::System,
            Kind::Pci(_) => NodeDevCapType::Pci,
            Kind::Net { .. } => NodeDevCapType::Net,
            Kind::UsbDevice => NodeDevCapType::UsbDevice,
            Kind::UsbInterface => NodeDevCapType::Usb,
            Kind::ScsiHost(_) => NodeDevCapType::ScsiHost,
            Kind::ScsiTarget => NodeDevCapType::ScsiTarget,
            Kind::Scsi(_) => NodeDevCapType::Scsi,
            Kind::Storage(_) => NodeDevCapType::Storage,
            Kind::ScsiGeneric { .. } => NodeDevCapType::ScsiGeneric,
            Kind::Drm(_) => NodeDevCapType::Drm,
            Kind::Mdev(_) | Kind::Defined(_) => NodeDevCapType::Mdev,
        }
    }

    /// The kernel's subsystem of such a device (none for `computer`).
    fn subsystem(&self) -> &'static str {
        match self {
            Kind::System => "",
            Kind::Pci(_) => "pci",
            Kind::Net { .. } => "net",
            Kind::UsbDevice | Kind::UsbInterface => "usb",
            Kind::ScsiHost(_) | Kind::ScsiTarget | Kind::Scsi(_) => "scsi",
            Kind::Storage(_) => "block",
            Kind::ScsiGeneric { .. } => "scsi_generic",
            Kind::Drm(_) => "drm",
            Kind::Mdev(_) | Kind::Defined(_) => "mdev",
        }
    }
}

/// One device found on the host.
struct Device {
    name: String,
    /// Its directory under `/sys/devices`, as seen inside the root (none for `computer`).
    path: Option<PathBuf>,
    kind: Kind,
}

/// Every device of the host at one moment.
struct Host {
    /// Sorted: `computer` first, then by name.
    devices: Vec<Device>,
    /// Devices by directory: the parents a device may have.
    by_path: HashMap<PathBuf, String>,
}

impl Host {
    fn find(&self, name: &str) -> Result<&Device> {
        self.devices
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| NodeDevError::no_device(name))
    }

    /// The nearest listed device above `dev` in `/sys/devices`, else `computer`; none for
    /// `computer` itself. A defined mediated device not made now: its parent's, when
    /// that is there.
    fn parent(&self, dev: &Device) -> Option<String> {
        if let Kind::Defined(cfg) = &dev.kind {
            let parent = self.devices.iter().find(|d| {
                d.path
                    .as_deref()
                    .and_then(Path::file_name)
                    .is_some_and(|n| n == cfg.parent_addr.as_str())
            });
            return Some(parent.map_or_else(|| COMPUTER.to_string(), |d| d.name.clone()));
        }
        let path = dev.path.as_deref()?;
        let above = path.ancestors().skip(1).find_map(|a| self.by_path.get(a));
        Some(above.map_or_else(|| COMPUTER.to_string(), String::clone))
    }
}

/// The node device driver over the sysfs tree under `root`.
pub struct NodeDevDriver {
    sysfs: Sysfs,
    /// Which domain holds which device.
    leases: std::sync::Mutex<lease::Leases>,
    /// Mediated devices defined, and made here.
    mdevs: mediated::Mdevs,
}

impl NodeDevDriver {
    /// The driver for the devices under `root` (`/` for the host's own), keeping no
    /// leases (a reading tool's). Nothing is read until a call asks.
    pub fn open(root: impl Into<PathBuf>) -> NodeDevDriver {
        NodeDevDriver {
            sysfs: Sysfs::new(root.into()),
            leases: Default::default(),
            mdevs: Default::default(),
        }
    }

    /// The daemon's driver: as [`NodeDevDriver::open`], with the leases kept in
    /// `state_dir` (read now: a lease file that cannot be read is an error).
    pub fn open_with_leases(root: impl Into<PathBuf>, state_dir: &Path) -> Result<NodeDevDriver> {
        let leases = lease::Leases::load(state_dir.join("leases"))?;
        Ok(NodeDevDriver {
            sysfs: Sysfs::new(root.into()),
            leases: std::sync::Mutex::new(leases),
            mdevs: Default::default(),
        })
    }

    /// Names of the devices that have capability `cap` (all with `None`), `computer`
    /// first, then by name. A capability this driver does not report (`ccw`) has no
    /// devices, as in libvirt.
    pub fn names(&self, cap: Option<&str>) -> Result<Vec<String>> {
        let host = self.scan()?;
        Ok(host
            .devices
            .iter()
            .filter(|d| cap.is_none_or(|c| self.caps_of(d).iter().any(|x| x == c)))
            .map(|d| d.name.clone())
            .collect())
    }

    /// Every device with its capability names, in the order of [`NodeDevDriver::names`]
    /// (for `CONNECT_LIST_ALL_NODE_DEVICES`).
    pub fn all(&self) -> Result<Vec<(String, Vec<String>)>> {
        let host = self.scan()?;
        Ok(host
            .devices
            .iter()
            .map(|d| (d.name.clone(), self.caps_of(d)))
            .collect())
    }

    /// The device's XML, libvirt's format.
    pub fn xml(&self, name: &str) -> Result<String> {
        let host = self.scan()?;
        let dev = host.find(name)?;
        Ok(self.def(&host, dev).format())
    }

    /// Its parent's name (`None` for `computer`).
    pub fn parent(&self, name: &str) -> Result<Option<String>> {
        let host = self.scan()?;
        let dev = host.find(name)?;
        Ok(host.parent(dev))
    }

    /// Its capability names (`["pci"]`, `["pci", "mdev_types"]`, `["scsi_host",
    /// "fc_host"]`), as `virNodeDeviceListCaps` gives them.
    pub fn caps(&self, name: &str) -> Result<Vec<String>> {
        let host = self.scan()?;
        Ok(self.caps_of(host.find(name)?))
    }

    /// The SCSI host whose Fibre Channel port has these world wide node and port names
    /// (`NODE_DEVICE_LOOKUP_SCSI_HOST_BY_WWN`).
    pub fn scsi_host_by_wwn(&self, wwnn: &str, wwpn: &str) -> Result<String> {
        let host = self.scan()?;
        host.devices
            .iter()
            .find(|d| match d.kind {
                Kind::ScsiHost(n) => scsi::fc_host(&self.sysfs, n)
                    .is_some_and(|fc| fc.wwnn == wwnn && fc.wwpn == wwpn),
                _ => false,
            })
            .map(|d| d.name.clone())
            .ok_or_else(|| {
                NodeDevError::NoDevice(format!(
                    "no node device with matching wwnn '{wwnn}' and wwpn '{wwpn}'"
                ))
            })
    }

    /// Whether this driver reads the host's own sysfs (`/`), about which the kernel sends
    /// events; a test's synthetic tree has none.
    fn reads_host(&self) -> bool {
        self.sysfs.host(Path::new("/")) == Path::new("/")
    }

    /// Every device listed now but `computer`, by its directory: what the device
    /// monitor starts from.
    fn listed_paths(&self) -> Result<HashMap<PathBuf, String>> {
        Ok(self.scan()?.by_path)
    }

    /// The name of the device of `subsystem` in directory `path` (inside the root), when
    /// it is one this driver lists.
    fn listed_at(&self, subsystem: &str, path: &Path) -> Option<String> {
        self.classify(subsystem, path).map(|(name, _)| name)
    }

    /// A device's capability names: its type's, and those of what it has inside (a PCI
    /// device's mediated device types, a SCSI host's Fibre Channel port and virtual ports).
    fn caps_of(&self, dev: &Device) -> Vec<String> {
        let mut caps = vec![dev.kind.cap().as_str().to_string()];
        match (&dev.kind, dev.path.as_deref()) {
            (Kind::Pci(_), Some(p)) if !mdev::types(&self.sysfs, p).is_empty() => {
                caps.push("mdev_types".into());
            }
            (Kind::ScsiHost(n), _) => {
                caps.extend(
                    scsi::host_extra_caps(&self.sysfs, *n)
                        .into_iter()
                        .map(String::from),
                );
            }
            _ => {}
        }
        caps
    }

    /// Reads which devices the host has now. A device that cannot be read (gone while
    /// being listed, a broken link) is left out; only a listing that fails is an error.
    fn scan(&self) -> Result<Host> {
        let mut devices = vec![Device {
            name: COMPUTER.to_string(),
            path: None,
            kind: Kind::System,
        }];
        for (list, subsystem) in SOURCES {
            for entry in self.sysfs.list(Path::new(list))? {
                // Not every entry is a device (bonding's `bonding_masters`, DRM's
                // `version`).
                let Some(path) = self.device_dir(list, &entry) else {
                    continue;
                };
                let Some((name, kind)) = self.classify(subsystem, &path) else {
                    log::debug!("{list}/{entry}: not a device libvirt lists, skipped");
                    continue;
                };
                devices.push(Device {
                    name,
                    path: Some(path),
                    kind,
                });
            }
        }
        // Defined mediated devices not made now, under the name they will have.
        for cfg in self.mdevs.defined() {
            let name = cfg.name();
            if !devices.iter().any(|d| d.name == name) {
                devices.push(Device {
                    name,
                    path: None,
                    kind: Kind::Defined(cfg),
                });
            }
        }
        devices.sort_by(|a, b| (a.name != COMPUTER, &a.name).cmp(&(b.name != COMPUTER, &b.name)));
        let by_path = devices
            .iter()
            .filter_map(|d| Some((d.path.clone()?, d.name.clone())))
            .collect();
        Ok(Host { devices, by_path })
    }

    /// The device of `subsystem` in directory `path` (inside the root), when it is one
    /// libvirt lists: its name and what it is.
    fn classify(&self, subsystem: &str, path: &Path) -> Option<(String, Kind)> {
        let sysname = path.file_name()?.to_str()?;
        let props = || Props::read(&self.sysfs, path, subsystem);
        let kind = match subsystem {
            "pci" => Kind::Pci(PciAddr::parse(sysname)?),
            "net" => {
                let mac = self.sysfs.attr(path, "address");
                let name = device_name("net", sysname, mac.as_deref());
                let ifname = sysname.to_string();
                return Some((name, Kind::Net { ifname }));
            }
            "usb" => match props().devtype()? {
                usb::DEVICE => Kind::UsbDevice,
                usb::INTERFACE => Kind::UsbInterface,
                _ => return None,
            },
            "scsi" => match props().devtype()? {
                scsi::HOST => Kind::ScsiHost(scsi::host_number(sysname)?),
                scsi::TARGET => Kind::ScsiTarget,
                scsi::DEVICE => Kind::Scsi(scsi::device_address(sysname)?),
                _ => return None,
            },
            "block" => {
                let p = props();
                if p.devtype() != Some(block::DISK) {
                    return None;
                }
                let disk = block::disk(&self.sysfs, path, &p)?;
                let name = device_name("block", sysname, disk.serial.as_deref());
                return Some((name, Kind::Storage(disk)));
            }
            "scsi_generic" => Kind::ScsiGeneric {
                devnode: props().devnode()?,
            },
            "drm" => {
                let p = props();
                if p.devtype() != Some(drm::MINOR) {
                    return None;
                }
                Kind::Drm(drm::node_type(&p)?)
            }
            "mdev" => {
                let m = mdev::device(&self.sysfs, path)?;
                let name = device_name("mdev", &m.uuid, Some(&m.parent_addr));
                return Some((name, Kind::Mdev(m)));
            }
            _ => return None,
        };
        Some((device_name(subsystem, sysname, None), kind))
    }

    /// The directory `entry` of `list` leads to, when it is one.
    fn device_dir(&self, list: &str, entry: &str) -> Option<PathBuf> {
        let link = Path::new(list).join(entry);
        match self.sysfs.resolve(&link) {
            Ok(p) if self.sysfs.host(&p).is_dir() => Some(p),
            Ok(_) => None,
            Err(e) => {
                log::debug!("{}: {e}, skipped", link.display());
                None
            }
        }
    }

    /// The device's definition, as libvirt writes it: its node and the other names of
    /// it, its parent, its driver, its capability.
    fn def(&self, host: &Host, dev: &Device) -> NodeDeviceDef {
        if let Kind::Defined(cfg) = &dev.kind {
            return mediated::defined_def(host, dev, cfg);
        }
        let Some(path) = dev.path.as_deref() else {
            return NodeDeviceDef {
                name: dev.name.clone(),
                path: None,
                devnode: Vec::new(),
                parent: None,
                driver: None,
                capability: vec![NodeDevCapability::System(self.system_cap())],
            };
        };
        let props = Props::read(&self.sysfs, path, dev.kind.subsystem());
        let mut devnode: Vec<NodeDevDevnode> = props
            .devnode()
            .map(|p| NodeDevDevnode {
                node_type: NodeDevDevnodeType::Dev,
                path: p,
            })
            .into_iter()
            .collect();
        devnode.extend(props.devlinks().into_iter().map(|p| NodeDevDevnode {
            node_type: NodeDevDevnodeType::Link,
            path: p,
        }));
        let sysname = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let cap = match &dev.kind {
            Kind::System => NodeDevCapability::System(self.system_cap()),
            Kind::Pci(addr) => NodeDevCapability::Pci(self.pci_cap(*addr, path)),
            Kind::Net { ifname } => NodeDevCapability::Net(self.net_cap(ifname, path)),
            Kind::UsbDevice => {
                NodeDevCapability::UsbDevice(usb::device_cap(&self.sysfs, path, &props))
            }
            Kind::UsbInterface => NodeDevCapability::Usb(usb::interface_cap(&self.sysfs, path)),
            Kind::ScsiHost(n) => NodeDevCapability::ScsiHost(scsi::host_cap(&self.sysfs, *n)),
            Kind::ScsiTarget => {
                NodeDevCapability::ScsiTarget(scsi::target_cap(&self.sysfs, path, &sysname))
            }
            Kind::Scsi(addr) => NodeDevCapability::Scsi(scsi::device_cap(&self.sysfs, path, *addr)),
            Kind::Storage(disk) => {
                NodeDevCapability::Storage(block::cap(&self.sysfs, path, &props, disk))
            }
            Kind::ScsiGeneric { devnode } => {
                NodeDevCapability::ScsiGeneric(NodeDevScsiGenericCap {
                    cap_type: NodeDevCapType::ScsiGeneric,
                    char_dev: devnode.clone(),
                })
            }
            Kind::Drm(t) => NodeDevCapability::Drm(drm::cap(*t)),
            Kind::Mdev(m) => {
                let mut cap = mdev::cap(m);
                cap.attrs = self.mdevs.attrs_of(&dev.name);
                NodeDevCapability::Mdev(cap)
            }
            // Handled above.
            Kind::Defined(cfg) => return mediated::defined_def(host, dev, cfg),
        };
        NodeDeviceDef {
            name: dev.name.clone(),
            path: Some(path.display().to_string()),
            devnode,
            parent: host.parent(dev),
            driver: self
                .sysfs
                .link_name(path, "driver")
                .map(|name| NodeDevDriverName { name }),
            capability: vec![cap],
        }
    }

    /// `computer`: the product, hardware and firmware DMI describes. What DMI does not
    /// say is left out, but for the UUID (zero), which libvirt always writes.
    fn system_cap(&self) -> NodeDevSystemCap {
        let dmi = self.sysfs.resolve(Path::new(DMI)).ok();
        let get = |file: &str| dmi.as_deref().and_then(|d| self.sysfs.attr(d, file));
        NodeDevSystemCap {
            cap_type: NodeDevCapType::System,
            product: get("product_name").map(|name| NodeDevIdName {
                id: None,
                name: Some(name),
            }),
            hardware: Some(NodeDevHardware {
                vendor: get("sys_vendor"),
                version: get("product_version"),
                serial: get("product_serial"),
                uuid: get("product_uuid")
                    .and_then(|u| parse_uuid(&u))
                    .unwrap_or_default(),
            }),
            firmware: Some(NodeDevFirmware {
                vendor: get("bios_vendor"),
                version: get("bios_version"),
                release_date: get("bios_date"),
            }),
        }
    }

    /// A PCI device: its address, class and ids (an unreadable id is 0, as in libvirt;
    /// no names, there is no pci.ids here), the mediated device types it offers, and its
    /// IOMMU group.
    fn pci_cap(&self, addr: PciAddr, path: &Path) -> NodeDevPciCap {
        let read_hex = |file: &str| self.sysfs.attr(path, file).and_then(|s| hex(&s));
        let id = |file: &str| NodeDevIdName {
            id: Some(Hex(read_hex(file).unwrap_or(0))),
            name: None,
        };
        let types = mdev::types(&self.sysfs, path);
        NodeDevPciCap {
            cap_type: NodeDevCapType::Pci,
            class: read_hex("class").filter(|c| *c <= 0xff_ffff).map(Hex),
            domain: addr.domain,
            bus: addr.bus,
            slot: addr.slot,
            function: addr.function,
            product: id("device"),
            vendor: id("vendor"),
            sub_caps: if types.is_empty() {
                Vec::new()
            } else {
                vec![mdev::types_cap(types)]
            },
            iommu_group: self.iommu_group(path),
        }
    }

    /// The device's IOMMU group and the addresses of its members, when it has one.
    fn iommu_group(&self, path: &Path) -> Option<NodeDevIommuGroup> {
        let number = self.sysfs.link_name(path, "iommu_group")?.parse().ok()?;
        let group = self.sysfs.link(path, "iommu_group")?;
        let members = match self.sysfs.list(&group.join("devices")) {
            Ok(m) => m,
            Err(e) => {
                log::debug!("{e}");
                return None;
            }
        };
        let mut addrs: Vec<PciAddr> = members.iter().filter_map(|m| PciAddr::parse(m)).collect();
        addrs.sort();
        (!addrs.is_empty()).then(|| NodeDevIommuGroup {
            number,
            address: addrs.into_iter().map(PciAddr::to_xml).collect(),
        })
    }

    /// A network interface: its name, MAC address, link and kind (802.11 for a wireless
    /// one, else 802.3).
    fn net_cap(&self, ifname: &str, path: &Path) -> NodeDevNetCap {
        let attr = |file: &str| self.sysfs.attr(path, file);
        let state: Option<NodeDevLinkState> = attr("operstate").and_then(|s| s.parse().ok());
        // Drivers report nonsense speeds for a link that is not up; libvirt shows none.
        let speed = attr("speed")
            .filter(|_| state == Some(NodeDevLinkState::Up))
            .and_then(|s| s.parse::<u32>().ok())
            .filter(|n| *n > 0 && *n != u32::MAX);
        let wireless = attr("uevent").is_some_and(|u| u.lines().any(|l| l == "DEVTYPE=wlan"));
        NodeDevNetCap {
            cap_type: NodeDevCapType::Net,
            interface: ifname.to_string(),
            // Only an Ethernet-style address fits the element (not InfiniBand's 20 bytes).
            address: attr("address").and_then(|a| a.parse::<MacAddr>().ok()),
            link: (state.is_some() || speed.is_some()).then_some(NodeDevLink { speed, state }),
            sub_caps: vec![NodeDevSubCap {
                cap_type: if wireless { "80211" } else { "80203" }.to_string(),
            }],
        }
    }
}

#[cfg(test)]
mod tests;
