//! Who holds which device: leases of host devices to domains, kept durably (a file written
//! atomically under the driver's state directory) so that a restart of this daemon loses
//! none, and the node device calls that must respect them (`nodedev-detach`, `-reattach`,
//! `-reset` of a leased device are refused).
//!
//! A lease is asked for by the QEMU driver for a domain's `<hostdev>`, and the device's
//! node is returned open:
//! - a PCI function: checked free (no other domain's lease on it or on its IOMMU group,
//!   nothing of the host using it), bound to `vfio-pci` when the hostdev is managed; its
//!   VFIO group's node is made the asking daemon's (QEMU runs as that user and opens it);
//!   at the end a managed device goes back to the host's driver;
//! - a mediated device: its VFIO group's node, made the asking daemon's the same way;
//! - a USB device: its node (`/dev/bus/usb/BBB/DDD`), which QEMU then uses through the
//!   descriptor alone.
//!
//! File format, one lease per line, tab-separated: device name, owner UUID, the lessee's
//! uid, managed (0/1), detached by the lease (0/1), the group node (`-` for none), its
//! owner before (`-`), and last the owner's name with `\`, tab and newline escaped.

use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::MutexGuard;

use crate::error::{NodeDevError, Result};
use crate::pci::{PciDev, VFIO};
use crate::NodeDevDriver;

/// The first line of the lease file.
const HEADER: &str = "# vireo node device leases 1";

/// One device held by one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The node device's name (`pci_0000_01_00_0`).
    pub device: String,
    /// The domain holding it.
    pub owner: [u8; 16],
    pub owner_name: String,
    /// The uid of the daemon that asked (its QEMU opens the device).
    pub uid: u32,
    /// Detached for the lease and reattached at its end (`managed='yes'`).
    pub managed: bool,
    /// Whether the lease bound it to `vfio-pci` (so its end gives it back).
    pub detached: bool,
    /// The VFIO group's node (`/dev/vfio/7`, inside the root).
    pub node: Option<String>,
    /// The node's owner before the lease made it the lessee's.
    pub node_uid: Option<u32>,
}

/// What a lease gives: the device's host address and its node, open.
#[derive(Debug)]
pub struct Grant {
    pub device: String,
    /// Where the device is: a PCI address as QEMU's `host=` takes it (`0000:01:00.0`), a
    /// mediated device's UUID, a USB device's bus and device numbers (`001/005`).
    pub address: String,
    /// The device's node: a VFIO group's (`/dev/vfio/7`), a USB device's.
    pub node: String,
    pub fd: OwnedFd,
}

/// What can be leased, as found on the host.
enum Leasable {
    Pci(PciDev),
    Mdev {
        name: String,
        uuid: String,
        group: u32,
    },
    Usb {
        name: String,
        bus: u32,
        device: u32,
    },
}

impl Leasable {
    fn name(&self) -> &str {
        match self {
            Leasable::Pci(d) => &d.name,
            Leasable::Mdev { name, .. } | Leasable::Usb { name, .. } => name,
        }
    }

    /// As libvirt's messages name the device.
    fn what(&self) -> String {
        match self {
            Leasable::Pci(d) => format!("PCI device {}", d.addr.sysfs_name()),
            Leasable::Mdev { uuid, .. } => format!("mediated device {uuid}"),
            Leasable::Usb { bus, device, .. } => format!("USB device {bus:03}:{device:03}"),
        }
    }
}

/// Every lease, and where they are kept (nowhere for a driver opened without a state
/// directory: a reading tool's).
#[derive(Default)]
pub(crate) struct Leases {
    file: Option<PathBuf>,
    list: Vec<Lease>,
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some(o) => out.push(o),
            None => {}
        }
    }
    out
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".into(), T::to_string)
}

impl Lease {
    fn line(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            self.device,
            vireo_xml::format_uuid(&self.owner),
            self.uid,
            u8::from(self.managed),
            u8::from(self.detached),
            opt(&self.node),
            opt(&self.node_uid),
            escape(&self.owner_name)
        )
    }

    fn parse(line: &str) -> Option<Lease> {
        let f: Vec<&str> = line.splitn(8, '\t').collect();
        let [device, owner, uid, managed, detached, node, node_uid, name] = f[..] else {
            return None;
        };
        let flag = |s: &str| match s {
            "0" => Some(false),
            "1" => Some(true),
            _ => None,
        };
        Some(Lease {
            device: device.to_string(),
            owner: vireo_xml::parse_uuid(owner)?,
            uid: uid.parse().ok()?,
            managed: flag(managed)?,
            detached: flag(detached)?,
            node: (node != "-").then(|| node.to_string()),
            node_uid: match node_uid {
                "-" => None,
                n => Some(n.parse().ok()?),
            },
            owner_name: unescape(name),
        })
    }
}

impl Leases {
    /// The leases kept in `file` (none when it is not there yet). A file that cannot be
    /// read whole is an error: leases are never dropped without a word.
    pub(crate) fn load(file: PathBuf) -> Result<Leases> {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(NodeDevError::io(
                    format!("cannot read '{}'", file.display()),
                    e,
                ))
            }
        };
        let mut list = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            list.push(Lease::parse(line).ok_or_else(|| {
                NodeDevError::Internal(format!(
                    "'{}' line {}: not a lease; fix or remove the line",
                    file.display(),
                    n + 1
                ))
            })?);
        }
        Ok(Leases {
            file: Some(file),
            list,
        })
    }

    fn save(&self) -> Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let mut text = format!("{HEADER}\n");
        for l in &self.list {
            text.push_str(&l.line());
            text.push('\n');
        }
        vireo_driver::store::write_atomic(file, text.as_bytes())
            .map_err(|e| NodeDevError::OperationFailed(e.to_string()))
    }

    fn holder(&self, device: &str) -> Option<&Lease> {
        self.list.iter().find(|l| l.device == device)
    }
}

/// libvirt's words for a device a domain has (`what`: `PCI device 0000:01:00.0`).
fn in_use(what: &str, l: &Lease) -> NodeDevError {
    NodeDevError::OperationInvalid(format!(
        "{what} is in use by driver QEMU, domain {}",
        l.owner_name
    ))
}

impl NodeDevDriver {
    fn leases_lock(&self) -> MutexGuard<'_, Leases> {
        self.leases.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refuses a change to a device some domain holds.
    fn not_leased(&self, st: &Leases, dev: &PciDev) -> Result<()> {
        match st.holder(&dev.name) {
            Some(l) => Err(in_use(&format!("PCI device {}", dev.addr.sysfs_name()), l)),
            None => Ok(()),
        }
    }

    /// `nodedev-detach`: binds the PCI device to `vfio-pci` (`driver`: `vfio` or none;
    /// libvirt's others, `kvm` and `xen`, are not this host's).
    pub fn detach(&self, name: &str, driver: Option<&str>) -> Result<()> {
        match driver {
            None | Some("") | Some("vfio") => {}
            Some(d) => {
                return Err(NodeDevError::InvalidArg(format!(
                    "unsupported driver name '{d}' (vfio is)"
                )))
            }
        }
        let st = self.leases_lock();
        let dev = self.pci_device(name)?;
        self.not_leased(&st, &dev)?;
        self.bind_vfio(&dev)
    }

    /// `nodedev-reattach`: gives the PCI device back to the host's driver.
    pub fn reattach(&self, name: &str) -> Result<()> {
        let st = self.leases_lock();
        let dev = self.pci_device(name)?;
        self.not_leased(&st, &dev)?;
        self.unbind_vfio(&dev)
    }

    /// `nodedev-reset`.
    pub fn reset(&self, name: &str) -> Result<()> {
        let st = self.leases_lock();
        let dev = self.pci_device(name)?;
        self.not_leased(&st, &dev)?;
        self.reset_pci(&dev)
    }

    /// What device `name` is, if it can be leased.
    fn leasable(&self, name: &str) -> Result<Leasable> {
        let host = self.scan()?;
        let dev = host.find(name)?;
        match (&dev.kind, &dev.path) {
            (crate::Kind::Pci(addr), Some(path)) => Ok(Leasable::Pci(PciDev {
                name: dev.name.clone(),
                addr: *addr,
                path: path.clone(),
            })),
            (crate::Kind::Mdev(m), _) => Ok(Leasable::Mdev {
                name: dev.name.clone(),
                uuid: m.uuid.clone(),
                group: m.iommu_group,
            }),
            (crate::Kind::UsbDevice, Some(path)) => {
                let props = crate::props::Props::read(&self.sysfs, path, "usb");
                match (props.num("BUSNUM", 10), props.num("DEVNUM", 10)) {
                    (Some(bus), Some(device)) => Ok(Leasable::Usb {
                        name: dev.name.clone(),
                        bus,
                        device,
                    }),
                    _ => Err(NodeDevError::OperationFailed(format!(
                        "USB device '{name}' has no bus and device numbers"
                    ))),
                }
            }
            (crate::Kind::Defined(_), _) => Err(NodeDevError::OperationInvalid(format!(
                "mediated device '{name}' is defined but not active; start it first \
                 (nodedev-start)"
            ))),
            _ => Err(NodeDevError::InvalidArg(format!(
                "device '{name}' is not a PCI, mediated or USB device"
            ))),
        }
    }

    /// Leases device `name` to domain `owner` for the daemon running as `uid` (a PCI
    /// function detached first when `managed`). Asked again by the same domain (a daemon
    /// that restarted), the lease stands and its node is opened again.
    pub fn lease(
        &self,
        name: &str,
        owner: [u8; 16],
        owner_name: &str,
        uid: u32,
        managed: bool,
    ) -> Result<Grant> {
        let mut st = self.leases_lock();
        let dev = self.leasable(name)?;
        let (address, node) = match &dev {
            Leasable::Pci(p) => (p.addr.sysfs_name(), String::new()),
            Leasable::Mdev { uuid, group, .. } => (uuid.clone(), format!("/dev/vfio/{group}")),
            Leasable::Usb { bus, device, .. } => (
                format!("{bus:03}/{device:03}"),
                format!("/dev/bus/usb/{bus:03}/{device:03}"),
            ),
        };
        if let Some(l) = st.holder(dev.name()) {
            if l.owner != owner {
                return Err(in_use(&dev.what(), l));
            }
            let node = l.node.clone().unwrap_or(node);
            let fd = self.open_node(&node)?;
            return Ok(Grant {
                device: dev.name().to_string(),
                address,
                node,
                fd,
            });
        }
        // Whether this lease bound it to vfio-pci (so its end gives it back).
        let (node, detached) = match &dev {
            Leasable::Pci(p) => {
                let (group, detached) = self.prepare_pci(&st, p, owner, managed)?;
                (format!("/dev/vfio/{group}"), detached)
            }
            _ => (node, false),
        };
        let undo = |e: NodeDevError| {
            if let (true, Leasable::Pci(p)) = (detached, &dev) {
                if let Err(u) = self.unbind_vfio(p) {
                    log::warn!("cannot give {address} back to the host: {u}");
                }
            }
            e
        };
        let fd = self.open_node(&node).map_err(undo)?;
        // A USB device's node goes to QEMU as this descriptor; a VFIO group QEMU opens.
        let node_uid = match dev {
            Leasable::Usb { .. } => None,
            _ => self.give_node(&node, uid).map_err(undo)?,
        };
        st.list.push(Lease {
            device: dev.name().to_string(),
            owner,
            owner_name: owner_name.to_string(),
            uid,
            managed,
            detached,
            node: Some(node.clone()),
            node_uid,
        });
        if let Err(e) = st.save() {
            st.list.pop();
            self.restore_node(&node, node_uid);
            return Err(undo(e));
        }
        Ok(Grant {
            device: dev.name().to_string(),
            address,
            node,
            fd,
        })
    }

    /// Makes PCI function `dev` ready for a lease to `owner`: its IOMMU group shared with
    /// no other domain, bound to `vfio-pci` (by this call when `managed`), nothing of the
    /// host using it. Returns the group's number, and whether this call bound it.
    fn prepare_pci(
        &self,
        st: &Leases,
        dev: &PciDev,
        owner: [u8; 16],
        managed: bool,
    ) -> Result<(u32, bool)> {
        let address = dev.addr.sysfs_name();
        let (group, members) = self.group_of(dev)?;
        for (a, _) in &members {
            let member = crate::device_name("pci", &a.sysfs_name(), None);
            if let Some(l) = st.holder(&member).filter(|l| l.owner != owner) {
                return Err(NodeDevError::OperationInvalid(format!(
                    "PCI device {address} shares IOMMU group {group} with {}, which domain {} \
                     has",
                    a.sysfs_name(),
                    l.owner_name
                )));
            }
        }
        let bound = self.driver_of(&dev.path);
        if bound.as_deref() == Some(VFIO) {
            self.check_host_use(dev)?;
            return Ok((group, false));
        }
        if !managed {
            return Err(NodeDevError::OperationInvalid(format!(
                "PCI device {address} is not bound to {VFIO} (its driver is {}): detach it \
                 first (nodedev-detach) or make the hostdev managed='yes'",
                bound.as_deref().unwrap_or("none")
            )));
        }
        self.bind_vfio(dev)?;
        Ok((group, true))
    }

    /// Ends the leases of domain `owner` (only that of `device`, if named); managed
    /// devices go back to the host. Returns the devices released.
    pub fn release(&self, owner: [u8; 16], device: Option<&str>) -> Result<Vec<String>> {
        let mut st = self.leases_lock();
        let before = st.list.clone();
        let (gone, mut kept): (Vec<Lease>, Vec<Lease>) = std::mem::take(&mut st.list)
            .into_iter()
            .partition(|l| l.owner == owner && device.is_none_or(|d| d == l.device));
        // A group's node shared with a lease that stays (two functions of one group) keeps
        // its owner from before with that lease, to be given back at its end.
        let mut restore = Vec::new();
        for l in &gone {
            let (Some(node), Some(was)) = (&l.node, l.node_uid) else {
                continue;
            };
            match kept.iter_mut().find(|o| o.node.as_ref() == Some(node)) {
                Some(o) => o.node_uid = o.node_uid.or(Some(was)),
                None => restore.push((node.clone(), was)),
            }
        }
        st.list = kept;
        if let Err(e) = st.save() {
            st.list = before;
            return Err(e);
        }
        for (node, was) in restore {
            self.restore_node(&node, Some(was));
        }
        for l in &gone {
            if l.managed && l.detached {
                match self.pci_device(&l.device) {
                    Ok(dev) => {
                        if let Err(e) = self.unbind_vfio(&dev) {
                            log::warn!("cannot give {} back to the host: {e}", l.device);
                        }
                    }
                    Err(e) => log::warn!("{}: {e}", l.device),
                }
            }
        }
        Ok(gone.into_iter().map(|l| l.device).collect())
    }

    /// The leases held for daemons running as `uid` (every lease with `None`).
    pub fn leases(&self, uid: Option<u32>) -> Vec<Lease> {
        self.leases_lock()
            .list
            .iter()
            .filter(|l| uid.is_none_or(|u| u == l.uid))
            .cloned()
            .collect()
    }

    /// The node (inside the root), opened read-write.
    fn open_node(&self, node: &str) -> Result<OwnedFd> {
        let host = self.sysfs.host(Path::new(node));
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&host)
            .map(OwnedFd::from)
            .map_err(|e| NodeDevError::io(format!("cannot open '{node}'"), e))
    }

    /// Makes the node `uid`'s (QEMU opens it as that user); returns its owner before,
    /// when it changed.
    fn give_node(&self, node: &str, uid: u32) -> Result<Option<u32>> {
        let host = self.sysfs.host(Path::new(node));
        let was = std::fs::metadata(&host)
            .map_err(|e| NodeDevError::io(format!("cannot stat '{node}'"), e))?
            .uid();
        if was == uid {
            return Ok(None);
        }
        std::os::unix::fs::chown(&host, Some(uid), None)
            .map_err(|e| NodeDevError::io(format!("cannot give '{node}' to uid {uid}"), e))?;
        Ok(Some(was))
    }

    fn restore_node(&self, node: &str, was: Option<u32>) {
        let Some(was) = was else { return };
        let host = self.sysfs.host(Path::new(node));
        if let Err(e) = std::os::unix::fs::chown(&host, Some(was), None) {
            log::warn!("cannot give '{node}' back to uid {was}: {e}");
        }
    }
}

impl NodeDevDriver {
    /// The name of the domain that holds device `name`, if one does (a change that
    /// would take the device from it is refused naming the domain).
    pub(crate) fn holder_of(&self, name: &str) -> Option<String> {
        self.leases_lock()
            .holder(name)
            .map(|l| l.owner_name.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{symlink, MetadataExt};
    use std::path::Path;

    use super::*;

    fn put(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn link(root: &Path, rel: &str, target: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        symlink(target, p).unwrap();
    }

    /// Two functions of one card, both in IOMMU group 5 and bound to vfio-pci already.
    fn machine(root: &Path) {
        for addr in ["0000:05:00.0", "0000:05:00.1"] {
            let dev = format!("sys/devices/pci0000:00/{addr}");
            put(root, &format!("{dev}/class"), "0x030000\n");
            link(
                root,
                &format!("{dev}/driver"),
                "/sys/bus/pci/drivers/vfio-pci",
            );
            link(
                root,
                &format!("{dev}/iommu_group"),
                "/sys/kernel/iommu_groups/5",
            );
            link(
                root,
                &format!("sys/kernel/iommu_groups/5/devices/{addr}"),
                &format!("/{dev}"),
            );
            link(
                root,
                &format!("sys/bus/pci/devices/{addr}"),
                &format!("/{dev}"),
            );
        }
        put(root, "dev/vfio/5", "");
    }

    #[test]
    fn lines_round_trip() {
        let l = Lease {
            device: "pci_0000_05_00_0".into(),
            owner: [7; 16],
            owner_name: "a\tb\\c\nd".into(),
            uid: 107,
            managed: true,
            detached: false,
            node: Some("/dev/vfio/5".into()),
            node_uid: None,
        };
        assert_eq!(Lease::parse(&l.line()), Some(l));
        assert_eq!(Lease::parse("pci_0000_05_00_0\tnot-a-uuid"), None);
    }

    #[test]
    fn a_shared_group_node_goes_back_with_the_last_lease() {
        // Giving the node to another user needs root (as CI runs).
        if std::fs::metadata("/proc/self").map_or(true, |m| m.uid() != 0) {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let (root, state) = (t.path().join("m"), t.path().join("state"));
        machine(&root);
        let d = NodeDevDriver::open_with_leases(&root, &state).unwrap();
        let node = root.join("dev/vfio/5");
        let owner = |p: &Path| std::fs::metadata(p).unwrap().uid();
        d.lease("pci_0000_05_00_0", [1; 16], "vm", 4321, false)
            .unwrap();
        d.lease("pci_0000_05_00_1", [1; 16], "vm", 4321, false)
            .unwrap();
        assert_eq!(owner(&node), 4321);
        // Another domain may not take a function of that group.
        let e = d
            .lease("pci_0000_05_00_1", [2; 16], "other", 4321, false)
            .unwrap_err();
        assert!(e.to_string().contains("domain vm"), "{e}");
        assert_eq!(
            d.release([1; 16], Some("pci_0000_05_00_0")).unwrap(),
            ["pci_0000_05_00_0"]
        );
        assert_eq!(
            owner(&node),
            4321,
            "the other function still uses the group"
        );
        // What is kept survives a new driver over the same state.
        let again = NodeDevDriver::open_with_leases(&root, &state).unwrap();
        assert_eq!(again.leases(None).len(), 1);
        assert_eq!(again.release([1; 16], None).unwrap(), ["pci_0000_05_00_1"]);
        assert_eq!(owner(&node), 0);
        std::fs::write(state.join("leases"), "garbage\n").unwrap();
        let e = NodeDevDriver::open_with_leases(&root, &state)
            .err()
            .expect("a damaged lease file is refused");
        assert!(e.to_string().contains("line 1: not a lease"), "{e}");
    }
}
