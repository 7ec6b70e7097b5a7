//! What the QEMU driver asks the other drivers, always through their public API (the
//! daemon supplies the implementation: RPC calls to the daemon serving that family). The
//! QEMU crate depends on no other driver crate.

use std::sync::Arc;

use vireo_driver::{DriverError, Result};
use vireo_rpc::server::BoxFuture;
use vireo_xml::{DiskType, Domain};
use zeroize::Zeroizing;

/// A storage volume as a disk uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSource {
    pub path: String,
    /// A block device (else a file).
    pub block: bool,
    /// As the volume's header says (`raw`, `qcow2`, …).
    pub format: String,
}

/// A guest interface's port on a network, and its tap device.
#[derive(Debug)]
pub struct NetPort {
    /// The port's UUID (`portid` in the live XML).
    pub uuid: [u8; 16],
    /// The network's bridge.
    pub bridge: String,
    /// The tap device's name (`<target dev>` in the live XML).
    pub ifname: String,
    /// The tap device: QEMU gets it as `-netdev tap,fd=N`.
    pub fd: std::os::fd::OwnedFd,
}

/// A host device leased to a domain by the node device driver.
#[derive(Debug)]
pub struct DeviceLease {
    /// The PCI address as QEMU's `host=` takes it (`0000:01:00.0`).
    pub address: String,
    /// The VFIO group's node (`/dev/vfio/7`), made this daemon's user's.
    pub node: String,
    /// That node, open.
    pub fd: std::os::fd::OwnedFd,
}

/// The leases a daemon's user holds: (device, owner).
pub type DeviceLeases = Vec<(String, [u8; 16])>;

/// A port the network driver keeps for a running guest's interface, as the QEMU driver
/// releases it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortRef {
    /// `<interface type='network'>`: port `port` of network `network`.
    Network { network: String, port: [u8; 16] },
    /// `<interface type='bridge'>`: the port of domain `owner` with tap `ifname`.
    Bridge { owner: [u8; 16], ifname: String },
}

impl PortRef {
    /// The port of a live `<interface>`, as its live XML names it.
    pub fn of_live(owner: [u8; 16], iface: &vireo_xml::Interface) -> Option<PortRef> {
        let s = iface.source.as_ref()?;
        match iface.if_type {
            vireo_xml::InterfaceType::Network => Some(PortRef::Network {
                network: s.network.clone()?,
                port: s.portid?,
            }),
            vireo_xml::InterfaceType::Bridge | vireo_xml::InterfaceType::Ethernet => {
                Some(PortRef::Bridge {
                    owner,
                    ifname: iface.target_dev.clone()?,
                })
            }
            _ => None,
        }
    }
}

/// The other drivers, seen from the QEMU driver.
pub trait Peers: Send + Sync {
    /// Resolves `<source pool='…' volume='…'/>`; an error names the missing pool or volume.
    fn volume(&self, pool: &str, volume: &str) -> BoxFuture<Result<VolumeSource>>;
    /// A secret's value (an encrypted disk's passphrase).
    fn secret_value(&self, uuid: [u8; 16]) -> BoxFuture<Result<Zeroizing<Vec<u8>>>>;
    /// A port on network `network` with its tap device, for the port definition `xml`;
    /// with the interface's `<filterref>` (XML), bound to the tap.
    fn network_port(
        &self,
        network: &str,
        xml: String,
        filterref: Option<String>,
    ) -> BoxFuture<Result<NetPort>>;
    /// Releases a port (and its tap device, if still there).
    fn delete_port(&self, network: &str, port: [u8; 16]) -> BoxFuture<Result<()>>;
    /// A tap device in the host's bridge `bridge` (`<interface type='bridge'>`), made by the
    /// network driver, for the port definition `xml`, with the interface's `<filterref>`.
    fn bridge_port(
        &self,
        bridge: &str,
        xml: String,
        filterref: Option<String>,
    ) -> BoxFuture<Result<NetPort>>;
    /// Releases the port of domain `owner` on a host bridge whose tap is `ifname`.
    fn delete_bridge_port(&self, owner: [u8; 16], ifname: &str) -> BoxFuture<Result<()>>;
    /// The DHCP leases network `network` gave MAC address `mac`: (address type, address,
    /// prefix).
    fn dhcp_leases(&self, network: &str, mac: &str) -> BoxFuture<Result<Vec<(i32, String, u32)>>>;
    /// Node device `name` (`pci_0000_01_00_0`) for domain `owner`, from the node device
    /// driver; `managed`: detached for it and given back at its release.
    fn lease_device(
        &self,
        name: &str,
        owner: [u8; 16],
        owner_name: &str,
        managed: bool,
    ) -> BoxFuture<Result<DeviceLease>>;
    /// Ends the leases of domain `owner`.
    fn release_devices(&self, owner: [u8; 16]) -> BoxFuture<Result<()>>;
    /// Ends the lease of node device `name` to domain `owner` (a device unplugged from
    /// the running VM); its other leases stand.
    fn release_device(&self, owner: [u8; 16], name: &str) -> BoxFuture<Result<()>>;
    /// The names of the host's node devices with capability `cap` (`usb_device`, `mdev`).
    fn node_device_names(&self, cap: &str) -> BoxFuture<Result<Vec<String>>>;
    /// A node device's XML.
    fn node_device_xml(&self, name: &str) -> BoxFuture<Result<String>>;
    /// The leases this daemon's user holds: (device, owner).
    fn device_leases(&self) -> BoxFuture<Result<DeviceLeases>>;
}

/// The port definition for a domain's `<interface type='network'>`.
pub fn port_xml(def: &Domain, iface: &vireo_xml::Interface) -> String {
    let esc = vireo_xml::escape;
    let mut x = format!(
        "<networkport><owner><name>{}</name><uuid>{}</uuid></owner>",
        esc(&def.name),
        vireo_xml::format_uuid(&def.uuid.unwrap_or_default())
    );
    if let Some(g) = iface.source.as_ref().and_then(|s| s.portgroup.as_deref()) {
        x.push_str(&format!("<group>{}</group>", esc(g)));
    }
    if let Some(m) = &iface.mac {
        x.push_str(&format!("<mac address='{}'/>", esc(m)));
    }
    if let Some(bw) = &iface.bandwidth {
        x.push_str(&vireo_xml::format_root(bw, "bandwidth"));
    }
    x.push_str("</networkport>");
    x
}

/// The definition QEMU is started from: every `<disk type='volume'>` becomes the file or
/// block device its volume is, with the volume's format unless the disk names one.
pub async fn resolve(def: &Domain, peers: Option<&Arc<dyn Peers>>) -> Result<Domain> {
    let mut out = def.clone();
    for disk in out.devices.disks.iter_mut() {
        if disk.disk_type != DiskType::Volume {
            continue;
        }
        let src = disk.source.as_mut().ok_or_else(|| {
            DriverError::XmlInvalid(format!(
                "disk '{}': a volume disk needs <source pool='…' volume='…'/>",
                disk.target.dev
            ))
        })?;
        let (Some(pool), Some(vol)) = (src.pool.clone(), src.volume.clone()) else {
            return Err(DriverError::XmlInvalid(format!(
                "disk '{}': a volume disk needs both pool and volume in <source>",
                disk.target.dev
            )));
        };
        let peers = peers.ok_or_else(|| {
            DriverError::OperationInvalid(format!(
                "disk '{}' is volume '{vol}' of pool '{pool}', but no storage driver is reachable",
                disk.target.dev
            ))
        })?;
        let v = peers.volume(&pool, &vol).await?;
        if v.block {
            disk.disk_type = DiskType::Block;
            src.dev = Some(v.path);
        } else {
            disk.disk_type = DiskType::File;
            src.file = Some(v.path);
        }
        src.pool = None;
        src.volume = None;
        src.mode = None;
        let drv = disk.driver.get_or_insert_with(Default::default);
        if drv.format.is_none() {
            drv.format = Some(v.format);
        }
    }
    Ok(out)
}

/// Makes a port (and tap) for every `<interface type='network'>` (on its network) and
/// `type='bridge'` (in the host's bridge), and writes into `def` what the live XML shows of
/// it: the tap (`<target dev>`), and for a network the port (`portid`) and the bridge.
/// Returns the ports in interface order, each with its interface's alias (the user's, or
/// `netN` as the shim names it). On failure the ports made so far are released.
pub async fn network_ports(
    def: &mut Domain,
    peers: Option<&Arc<dyn Peers>>,
) -> Result<Vec<(String, PortRef, NetPort)>> {
    let mut made: Vec<(String, PortRef, NetPort)> = Vec::new();
    for n in 0..def.devices.interfaces.len() {
        match interface_port(def, n, peers).await {
            Ok(None) => {}
            Ok(Some((r, p))) => {
                let alias = def.devices.interfaces[n]
                    .alias
                    .clone()
                    .unwrap_or_else(|| format!("net{n}"));
                made.push((alias, r, p));
            }
            Err(e) => {
                let ids: Vec<PortRef> = made.into_iter().map(|(_, r, _)| r).collect();
                release_ports(&ids, peers).await;
                return Err(e);
            }
        }
    }
    Ok(made)
}

/// The port and tap of interface `n` of `def`, if it is on a network or a host bridge;
/// what the live XML shows of it is written into `def`.
pub async fn interface_port(
    def: &mut Domain,
    n: usize,
    peers: Option<&Arc<dyn Peers>>,
) -> Result<Option<(PortRef, NetPort)>> {
    let iface = &def.devices.interfaces[n];
    let src = iface.source.as_ref();
    let (network, bridge) = match iface.if_type {
        vireo_xml::InterfaceType::Network => {
            let Some(net) = src.and_then(|s| s.network.clone()) else {
                return Err(DriverError::XmlInvalid(format!(
                    "interface {n}: a network interface needs <source network='…'/>"
                )));
            };
            (Some(net), None)
        }
        vireo_xml::InterfaceType::Bridge => {
            let Some(br) = src.and_then(|s| s.bridge.clone()) else {
                return Err(DriverError::XmlInvalid(format!(
                    "interface {n}: a bridge interface needs <source bridge='…'/>"
                )));
            };
            (None, Some(br))
        }
        // A tap in no bridge, made by the network driver all the same.
        vireo_xml::InterfaceType::Ethernet => (None, Some(String::new())),
        _ => return Ok(None),
    };
    let peers = peers.ok_or_else(|| {
        DriverError::OperationInvalid(format!(
            "interface {n} needs a tap device, but no network driver is reachable"
        ))
    })?;
    let xml = port_xml(def, iface);
    let filterref = iface
        .filterref
        .as_ref()
        .map(|f| vireo_xml::format_root(f, "filterref"));
    let owner = def.uuid.unwrap_or_default();
    let iface = &mut def.devices.interfaces[n];
    if let Some(network) = network {
        let p = peers.network_port(&network, xml, filterref).await?;
        iface.target_dev = Some(p.ifname.clone());
        let src = iface.source.get_or_insert_with(Default::default);
        src.portid = Some(p.uuid);
        src.bridge = Some(p.bridge.clone());
        Ok(Some((
            PortRef::Network {
                network,
                port: p.uuid,
            },
            p,
        )))
    } else {
        let bridge = bridge.unwrap_or_default();
        let p = peers.bridge_port(&bridge, xml, filterref).await?;
        iface.target_dev = Some(p.ifname.clone());
        Ok(Some((
            PortRef::Bridge {
                owner,
                ifname: p.ifname.clone(),
            },
            p,
        )))
    }
}

/// Releases ports (errors are logged: a port whose guest is gone is released by the
/// network driver when it next looks anyway).
pub async fn release_ports(ports: &[PortRef], peers: Option<&Arc<dyn Peers>>) {
    let Some(peers) = peers else { return };
    for p in ports {
        let r = match p {
            PortRef::Network { network, port } => peers.delete_port(network, *port).await,
            PortRef::Bridge { owner, ifname } => peers.delete_bridge_port(*owner, ifname).await,
        };
        if let Err(e) = r {
            log::warn!("cannot release port {p:?}: {e}");
        }
    }
}

/// What the live XML shows of a disk that was defined as a volume: the volume (pool,
/// name, mode), as libvirt shows it, not the file or block device it was resolved to.
/// `run` is the definition QEMU was started from, `defined` the one before [`resolve`].
pub fn show_volumes(run: &mut Domain, defined: &Domain) {
    for disk in run.devices.disks.iter_mut() {
        let Some(d) = defined
            .devices
            .disks
            .iter()
            .find(|d| d.target.dev == disk.target.dev && d.disk_type == DiskType::Volume)
        else {
            continue;
        };
        disk.disk_type = DiskType::Volume;
        if let (Some(src), Some(was)) = (disk.source.as_mut(), d.source.as_ref()) {
            src.file = None;
            src.dev = None;
            src.pool.clone_from(&was.pool);
            src.volume.clone_from(&was.volume);
            src.mode.clone_from(&was.mode);
        }
    }
}

/// Whether any disk of the definition is a storage volume.
pub fn has_volumes(def: &Domain) -> bool {
    def.devices
        .disks
        .iter()
        .any(|d| d.disk_type == DiskType::Volume)
}

/// The passphrases of the definition's encrypted disks, from the secret driver, packed
/// for the shim: per secret its UUID (16 bytes), the value's length (4 bytes, big-endian)
/// and the value. Empty when no disk is encrypted.
pub async fn disk_secrets(
    def: &Domain,
    peers: Option<&Arc<dyn Peers>>,
) -> Result<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::new());
    let mut seen = std::collections::BTreeSet::new();
    for disk in &def.devices.disks {
        let Some(enc) = &disk.encryption else {
            continue;
        };
        for s in &enc.secret {
            let Some(uuid) = s.uuid else { continue };
            if !seen.insert(uuid) {
                continue;
            }
            let peers = peers.ok_or_else(|| {
                DriverError::OperationInvalid(format!(
                    "disk '{}' is encrypted, but no secret driver is reachable",
                    disk.target.dev
                ))
            })?;
            let v = peers.secret_value(uuid).await?;
            out.extend_from_slice(&uuid);
            out.extend_from_slice(&(v.len() as u32).to_be_bytes());
            out.extend_from_slice(&v);
        }
    }
    Ok(out)
}

/// What [`disk_secrets`] packed: secret UUID (as text) → value.
pub fn unpack_secrets(
    mut buf: &[u8],
) -> std::result::Result<std::collections::BTreeMap<String, Zeroizing<Vec<u8>>>, String> {
    let mut out = std::collections::BTreeMap::new();
    while !buf.is_empty() {
        let (head, rest) = buf.split_at_checked(20).ok_or("truncated secret record")?;
        let uuid: [u8; 16] = head[..16].try_into().map_err(|_| "bad uuid")?;
        let len = u32::from_be_bytes(head[16..20].try_into().map_err(|_| "bad length")?) as usize;
        let (value, rest) = rest.split_at_checked(len).ok_or("truncated secret value")?;
        out.insert(
            vireo_xml::format_uuid(&uuid),
            Zeroizing::new(value.to_vec()),
        );
        buf = rest;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_secrets_unpack_and_truncation_is_an_error() {
        let mut buf = Vec::new();
        for (u, v) in [([1u8; 16], &b"abc"[..]), ([2u8; 16], &b""[..])] {
            buf.extend_from_slice(&u);
            buf.extend_from_slice(&(v.len() as u32).to_be_bytes());
            buf.extend_from_slice(v);
        }
        let m = unpack_secrets(&buf).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(
            &**m.get(&vireo_xml::format_uuid(&[1u8; 16])).unwrap(),
            b"abc"
        );
        assert!(unpack_secrets(&buf[..buf.len() - 21]).is_err());
        assert!(unpack_secrets(&buf[..10]).is_err());
    }

    #[test]
    fn live_xml_shows_volumes_as_defined() {
        let defined = Domain::parse(
            "<domain type='qemu'><name>v</name><memory>1024</memory><os><type>hvm</type></os>\
             <devices><disk type='volume'><source pool='p' volume='a.qcow2'/><target dev='vda'/></disk>\
             <disk type='file'><source file='/x.img'/><target dev='vdb'/></disk></devices></domain>",
        )
        .unwrap();
        let mut run = defined.clone();
        let d = &mut run.devices.disks[0];
        d.disk_type = DiskType::File;
        let s = d.source.as_mut().unwrap();
        (s.file, s.pool, s.volume) = (Some("/pool/a.qcow2".into()), None, None);
        d.driver = Some(vireo_xml::DiskDriver {
            format: Some("qcow2".into()),
            ..Default::default()
        });
        show_volumes(&mut run, &defined);
        let d = &run.devices.disks[0];
        assert_eq!(d.disk_type, DiskType::Volume);
        let s = d.source.as_ref().unwrap();
        assert_eq!(
            (s.pool.as_deref(), s.volume.as_deref()),
            (Some("p"), Some("a.qcow2"))
        );
        assert_eq!(s.file, None);
        assert_eq!(d.driver.as_ref().unwrap().format.as_deref(), Some("qcow2"));
        assert_eq!(run.devices.disks[1], defined.devices.disks[1]);
    }
}
