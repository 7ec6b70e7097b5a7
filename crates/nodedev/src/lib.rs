//! The node device driver's read side (`vireo-nodedevd`, and `vireod`): the host's
//! devices as libvirt's udev backend shows them, read from sysfs under a root directory
//! (`/` on a host, a synthetic tree in tests).
//!
//! Three kinds of device: `computer` (capability `system`, from DMI), every PCI device
//! (`pci`, from `/sys/bus/pci/devices`) and every network interface (`net`, from
//! `/sys/class/net`). A device's parent is the nearest PCI device above it in
//! `/sys/devices`, else `computer`. Nothing is cached: every call reads sysfs again, so
//! a device that comes or goes is seen at once.
//!
//! Names are libvirt's: the subsystem, the kernel's name and (for an interface) its MAC
//! address, every character but a letter or digit made `_` (`pci_0000_00_1f_2`,
//! `net_eth0_52_54_00_12_34_56`).

mod error;
mod lease;
mod pci;
mod sysfs;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use vireo_xml::{
    parse_uuid, Hex, MacAddr, NodeDevCapType, NodeDevCapability, NodeDevDriverName,
    NodeDevFirmware, NodeDevHardware, NodeDevIdName, NodeDevIommuGroup, NodeDevLink,
    NodeDevLinkState, NodeDevSubCap, NodeDeviceDef, PciAddress,
};

pub use error::{NodeDevError, Result};
pub use lease::{Grant, Lease};
use sysfs::Sysfs;

/// The device every other one descends from.
const COMPUTER: &str = "computer";
/// One link per PCI device, to its directory under `/sys/devices`.
const PCI_DEVICES: &str = "/sys/bus/pci/devices";
/// One link per network interface.
const NET_CLASS: &str = "/sys/class/net";
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

/// What a device is.
enum Kind {
    System,
    Pci(PciAddr),
    Net { ifname: String },
}

impl Kind {
    fn cap(&self) -> NodeDevCapType {
        match self {
            Kind::System => NodeDevCapType::System,
            Kind::Pci(_) => NodeDevCapType::Pci,
            Kind::Net { .. } => NodeDevCapType::Net,
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

impl Device {
    /// Its capability names, as `virNodeDeviceListCaps` gives them.
    fn caps(&self) -> Vec<String> {
        vec![self.kind.cap().as_str().to_string()]
    }
}

/// Every device of the host at one moment.
struct Host {
    /// Sorted: `computer` first, then by name.
    devices: Vec<Device>,
    /// PCI devices by directory: the parents a device may have.
    pci_by_path: HashMap<PathBuf, String>,
}

impl Host {
    fn find(&self, name: &str) -> Result<&Device> {
        self.devices
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| NodeDevError::no_device(name))
    }

    /// The nearest PCI device above `dev` in `/sys/devices`, else `computer`; none for
    /// `computer` itself.
    fn parent(&self, dev: &Device) -> Option<String> {
        let path = dev.path.as_deref()?;
        let pci = path
            .ancestors()
            .skip(1)
            .find_map(|a| self.pci_by_path.get(a));
        Some(pci.map_or_else(|| COMPUTER.to_string(), String::clone))
    }
}

/// The node device driver over the sysfs tree under `root`.
pub struct NodeDevDriver {
    sysfs: Sysfs,
    /// Which domain holds which device.
    leases: std::sync::Mutex<lease::Leases>,
}

impl NodeDevDriver {
    /// The driver for the devices under `root` (`/` for the host's own), keeping no
    /// leases (a reading tool's). Nothing is read until a call asks.
    pub fn open(root: impl Into<PathBuf>) -> NodeDevDriver {
        NodeDevDriver {
            sysfs: Sysfs::new(root.into()),
            leases: Default::default(),
        }
    }

    /// The daemon's driver: as [`NodeDevDriver::open`], with the leases kept in
    /// `state_dir` (read now: a lease file that cannot be read is an error).
    pub fn open_with_leases(root: impl Into<PathBuf>, state_dir: &Path) -> Result<NodeDevDriver> {
        let leases = lease::Leases::load(state_dir.join("leases"))?;
        Ok(NodeDevDriver {
            sysfs: Sysfs::new(root.into()),
            leases: std::sync::Mutex::new(leases),
        })
    }

    /// Names of the devices that have capability `cap` (all with `None`), `computer`
    /// first, then by name. A capability this driver does not report (`usb`) has no
    /// devices, as in libvirt.
    pub fn names(&self, cap: Option<&str>) -> Result<Vec<String>> {
        Ok(self
            .scan()?
            .devices
            .into_iter()
            .filter(|d| cap.is_none() || cap == Some(d.kind.cap().as_str()))
            .map(|d| d.name)
            .collect())
    }

    /// Every device with its capability names, in the order of [`NodeDevDriver::names`]
    /// (for `CONNECT_LIST_ALL_NODE_DEVICES`).
    pub fn all(&self) -> Result<Vec<(String, Vec<String>)>> {
        Ok(self
            .scan()?
            .devices
            .into_iter()
            .map(|d| {
                let caps = d.caps();
                (d.name, caps)
            })
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

    /// Its capability names (`["pci"]`, `["net"]`, `["system"]`).
    pub fn caps(&self, name: &str) -> Result<Vec<String>> {
        Ok(self.scan()?.find(name)?.caps())
    }

    /// Reads which devices the host has now. A device that cannot be read (gone while
    /// being listed, a broken link) is left out; only a listing that fails is an error.
    fn scan(&self) -> Result<Host> {
        let mut devices = vec![Device {
            name: COMPUTER.to_string(),
            path: None,
            kind: Kind::System,
        }];
        let mut pci_by_path = HashMap::new();
        for entry in self.sysfs.list(Path::new(PCI_DEVICES))? {
            let Some(addr) = PciAddr::parse(&entry) else {
                log::debug!("{PCI_DEVICES}/{entry}: not a PCI address, skipped");
                continue;
            };
            let Some(path) = self.device_dir(PCI_DEVICES, &entry) else {
                continue;
            };
            let name = device_name("pci", &entry, None);
            pci_by_path.insert(path.clone(), name.clone());
            devices.push(Device {
                name,
                path: Some(path),
                kind: Kind::Pci(addr),
            });
        }
        for ifname in self.sysfs.list(Path::new(NET_CLASS))? {
            // Not every entry is an interface (bonding's `bonding_masters` file).
            let Some(path) = self.device_dir(NET_CLASS, &ifname) else {
                continue;
            };
            let mac = self.sysfs.attr(&path, "address");
            devices.push(Device {
                name: device_name("net", &ifname, mac.as_deref()),
                path: Some(path),
                kind: Kind::Net { ifname },
            });
        }
        devices.sort_by(|a, b| (a.name != COMPUTER, &a.name).cmp(&(b.name != COMPUTER, &b.name)));
        Ok(Host {
            devices,
            pci_by_path,
        })
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

    /// The device's definition, as libvirt writes it.
    fn def(&self, host: &Host, dev: &Device) -> NodeDeviceDef {
        let mut driver = None;
        let cap = match (&dev.kind, dev.path.as_deref()) {
            (Kind::Pci(addr), Some(path)) => {
                driver = self
                    .sysfs
                    .link_name(path, "driver")
                    .map(|name| NodeDevDriverName { name });
                self.pci_cap(*addr, path)
            }
            (Kind::Net { ifname }, Some(path)) => self.net_cap(ifname, path),
            _ => self.system_cap(),
        };
        NodeDeviceDef {
            name: dev.name.clone(),
            path: dev.path.as_ref().map(|p| p.display().to_string()),
            parent: host.parent(dev),
            driver,
            capability: vec![cap],
        }
    }

    /// `computer`: the product, hardware and firmware DMI describes. What DMI does not
    /// say is left out, but for the UUID (zero), which libvirt always writes.
    fn system_cap(&self) -> NodeDevCapability {
        let dmi = self.sysfs.resolve(Path::new(DMI)).ok();
        let get = |file: &str| dmi.as_deref().and_then(|d| self.sysfs.attr(d, file));
        let mut cap = NodeDevCapability::new(NodeDevCapType::System);
        cap.product = get("product_name").map(|name| NodeDevIdName {
            id: None,
            name: Some(name),
        });
        cap.hardware = Some(NodeDevHardware {
            vendor: get("sys_vendor"),
            version: get("product_version"),
            serial: get("product_serial"),
            uuid: get("product_uuid")
                .and_then(|u| parse_uuid(&u))
                .unwrap_or_default(),
        });
        cap.firmware = Some(NodeDevFirmware {
            vendor: get("bios_vendor"),
            version: get("bios_version"),
            release_date: get("bios_date"),
        });
        cap
    }

    /// A PCI device: its address, class and ids (an unreadable id is 0, as in libvirt;
    /// no names, there is no pci.ids here), and its IOMMU group.
    fn pci_cap(&self, addr: PciAddr, path: &Path) -> NodeDevCapability {
        let read_hex = |file: &str| self.sysfs.attr(path, file).and_then(|s| hex(&s));
        let id = |file: &str| NodeDevIdName {
            id: Some(Hex(read_hex(file).unwrap_or(0))),
            name: None,
        };
        let mut cap = NodeDevCapability::new(NodeDevCapType::Pci);
        cap.class = read_hex("class").filter(|c| *c <= 0xff_ffff).map(Hex);
        cap.domain = Some(addr.domain);
        cap.bus = Some(addr.bus);
        cap.slot = Some(addr.slot);
        cap.function = Some(addr.function);
        cap.product = Some(id("device"));
        cap.vendor = Some(id("vendor"));
        cap.iommu_group = self.iommu_group(path);
        cap
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
    fn net_cap(&self, ifname: &str, path: &Path) -> NodeDevCapability {
        let attr = |file: &str| self.sysfs.attr(path, file);
        let state: Option<NodeDevLinkState> = attr("operstate").and_then(|s| s.parse().ok());
        // Drivers report nonsense speeds for a link that is not up; libvirt shows none.
        let speed = attr("speed")
            .filter(|_| state == Some(NodeDevLinkState::Up))
            .and_then(|s| s.parse::<u32>().ok())
            .filter(|n| *n > 0 && *n != u32::MAX);
        let wireless = attr("uevent").is_some_and(|u| u.lines().any(|l| l == "DEVTYPE=wlan"));
        let mut cap = NodeDevCapability::new(NodeDevCapType::Net);
        cap.interface = Some(ifname.to_string());
        // Only an Ethernet-style address fits the element (not InfiniBand's 20 bytes).
        cap.address = attr("address").and_then(|a| a.parse::<MacAddr>().ok());
        cap.link = (state.is_some() || speed.is_some()).then_some(NodeDevLink { speed, state });
        cap.sub_caps = vec![NodeDevSubCap {
            cap_type: if wireless { "80211" } else { "80203" }.to_string(),
        }];
        cap
    }
}

#[cfg(test)]
mod tests;
