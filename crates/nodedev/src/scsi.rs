//! SCSI hosts (`scsi_host`: an adapter, `host0`), targets (`scsi_target`, `target0:0:0`)
//! and devices (`scsi`: a LUN, `0:0:0:0`), from `/sys/bus/scsi/devices`, as libvirt's
//! udev backend shows them; a Fibre Channel host's world wide names (its `fc_host`
//! capability, from `/sys/class/fc_host`), and its virtual ports; a target behind a
//! Fibre Channel remote port.

use std::path::{Path, PathBuf};

use vireo_xml::{
    NodeDevCapType, NodeDevRportCap, NodeDevScsiCap, NodeDevScsiHostCap, NodeDevScsiHostSubCap,
    NodeDevScsiTargetCap,
};

use crate::props::parse_num;
use crate::sysfs::Sysfs;

/// Where the SCSI bus lists its hosts, targets and devices.
pub(crate) const SCSI_DEVICES: &str = "/sys/bus/scsi/devices";
const SCSI_HOST_CLASS: &str = "/sys/class/scsi_host";
const FC_HOST_CLASS: &str = "/sys/class/fc_host";
const FC_RPORT_CLASS: &str = "/sys/class/fc_remote_ports";

/// `DEVTYPE`s of the three.
pub(crate) const HOST: &str = "scsi_host";
pub(crate) const TARGET: &str = "scsi_target";
pub(crate) const DEVICE: &str = "scsi_device";

/// The number of host `hostN`.
pub(crate) fn host_number(sysname: &str) -> Option<u32> {
    parse_num(sysname.strip_prefix("host")?, 0)
}

/// The address `H:B:T:L` of a SCSI device.
pub(crate) fn device_address(sysname: &str) -> Option<[u32; 4]> {
    let mut parts = sysname.split(':').map(|p| p.parse::<u32>().ok());
    let a = [
        parts.next()??,
        parts.next()??,
        parts.next()??,
        parts.next()??,
    ];
    parts.next().is_none().then_some(a)
}

/// A Fibre Channel host's world wide names and ports.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct FcHost {
    pub(crate) wwnn: String,
    pub(crate) wwpn: String,
    pub(crate) fabric_wwn: Option<String>,
}

/// A world wide name as libvirt shows it: without the `0x` sysfs writes.
fn wwn(s: String) -> String {
    match s.find("0x") {
        Some(i) => s[i + 2..].to_string(),
        None => s,
    }
}

/// Host `host`'s directory in `class` (a link into `/sys/devices`, followed inside the
/// root), when it has one.
fn class_dir(sysfs: &Sysfs, class: &str, host: u32) -> Option<PathBuf> {
    let link = Path::new(class).join(format!("host{host}"));
    sysfs.resolve(&link).ok()
}

/// Host `host`'s Fibre Channel names, when it is an FC adapter whose names (and virtual
/// ports, when it can make them) can be read.
pub(crate) fn fc_host(sysfs: &Sysfs, host: u32) -> Option<FcHost> {
    host_subcaps(sysfs, host).0
}

/// The FC names in an `fc_host` directory.
fn read_fc(sysfs: &Sysfs, dir: &Path) -> Option<FcHost> {
    let get = |f: &str| sysfs.attr(dir, f).map(wwn);
    Some(FcHost {
        wwpn: get("port_name")?,
        wwnn: get("node_name")?,
        fabric_wwn: get("fabric_name"),
    })
}

/// How many virtual ports a host may have, and has.
fn read_vports(sysfs: &Sysfs, fc_dir: &Path) -> Option<(i32, i32)> {
    let num = |f: &str| {
        sysfs
            .attr(fc_dir, f)
            .and_then(|v| v.trim().parse::<i32>().ok())
    };
    Some((num("max_npiv_vports")?, num("npiv_vports_inuse")?))
}

/// The capabilities a host has beside `scsi_host`, as libvirt lists them.
pub(crate) fn host_extra_caps(sysfs: &Sysfs, host: u32) -> Vec<&'static str> {
    let (fc, vp) = host_subcaps(sysfs, host);
    let mut caps = Vec::new();
    if fc.is_some() {
        caps.push("fc_host");
    }
    if vp.is_some() {
        caps.push("vports");
    }
    caps
}

/// An FC host's names, and its virtual ports when it can make them. As libvirt, when one
/// of them cannot be read, neither is shown.
fn host_subcaps(sysfs: &Sysfs, host: u32) -> (Option<FcHost>, Option<(i32, i32)>) {
    let fc_dir = class_dir(sysfs, FC_HOST_CLASS, host);
    let fc = if let Some(dir) = &fc_dir {
        match read_fc(sysfs, dir) {
            Some(f) => Some(f),
            None => {
                log::debug!("host{host}: an FC host whose names cannot be read");
                return (None, None);
            }
        }
    } else {
        None
    };
    let scsi_dir = class_dir(sysfs, SCSI_HOST_CLASS, host);
    let capable = [&fc_dir, &scsi_dir]
        .into_iter()
        .flatten()
        .any(|d| sysfs.host(&d.join("vport_create")).exists());
    let vp = if capable {
        match fc_dir.as_deref().and_then(|d| read_vports(sysfs, d)) {
            Some(v) => Some(v),
            None => return (None, None),
        }
    } else {
        None
    };
    (fc, vp)
}

/// A SCSI host: its number, unique id and Fibre Channel capabilities.
pub(crate) fn host_cap(sysfs: &Sysfs, host: u32) -> NodeDevScsiHostCap {
    let unique_id = class_dir(sysfs, SCSI_HOST_CLASS, host)
        .and_then(|d| sysfs.attr(&d, "unique_id"))
        .and_then(|v| v.trim().parse::<i32>().ok())
        .filter(|v| *v >= 0);
    let (fc, vp) = host_subcaps(sysfs, host);
    let mut sub_caps = Vec::new();
    if let Some(fc) = fc {
        sub_caps.push(NodeDevScsiHostSubCap {
            cap_type: "fc_host".into(),
            wwnn: Some(fc.wwnn),
            wwpn: Some(fc.wwpn),
            fabric_wwn: fc.fabric_wwn,
            max_vports: None,
            vports: None,
        });
    }
    if let Some((max, used)) = vp {
        sub_caps.push(NodeDevScsiHostSubCap {
            cap_type: "vport_ops".into(),
            wwnn: None,
            wwpn: None,
            fabric_wwn: None,
            max_vports: Some(max),
            vports: Some(used),
        });
    }
    NodeDevScsiHostCap {
        cap_type: NodeDevCapType::ScsiHost,
        host,
        unique_id,
        sub_caps,
    }
}

/// A SCSI target (`target0:0:0`), and the Fibre Channel remote port it is behind.
pub(crate) fn target_cap(sysfs: &Sysfs, path: &Path, sysname: &str) -> NodeDevScsiTargetCap {
    // …/host0/rport-0:0-0/target0:0:0: the directory above names the port.
    let rport = path
        .parent()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .filter(|n| n.starts_with("rport-"))
        .and_then(|r| {
            let dir = sysfs.resolve(&Path::new(FC_RPORT_CLASS).join(r)).ok()?;
            let wwpn = sysfs.attr(&dir, "port_name")?;
            Some(NodeDevRportCap {
                cap_type: "fc_remote_port".into(),
                rport: r.to_string(),
                wwpn,
            })
        });
    NodeDevScsiTargetCap {
        cap_type: NodeDevCapType::ScsiTarget,
        target: sysname.to_string(),
        rport,
    }
}

/// The name libvirt gives a SCSI peripheral device type (`type` in sysfs).
fn type_name(t: u32) -> Option<&'static str> {
    Some(match t {
        0x00 => "disk",
        0x01 => "tape",
        0x03 => "processor",
        0x04 => "worm",
        0x05 => "cdrom",
        0x06 => "scanner",
        0x07 => "mod",
        0x08 => "changer",
        0x0c => "raid",
        0x0d => "enclosure",
        _ => return None,
    })
}

/// A SCSI device: its address and what kind of device it is.
pub(crate) fn device_cap(sysfs: &Sysfs, path: &Path, addr: [u32; 4]) -> NodeDevScsiCap {
    let scsi_type = sysfs
        .attr(path, "type")
        .and_then(|t| parse_num(&t, 0))
        .and_then(type_name)
        .map(str::to_string);
    NodeDevScsiCap {
        cap_type: NodeDevCapType::Scsi,
        host: addr[0],
        bus: addr[1],
        target: addr[2],
        lun: addr[3],
        scsi_type,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(host_number("host12"), Some(12));
        assert_eq!(host_number("target0:0:0"), None);
        assert_eq!(device_address("2:0:1:3"), Some([2, 0, 1, 3]));
        assert_eq!(device_address("2:0:1"), None);
        assert_eq!(device_address("2:0:1:3:4"), None);
        assert_eq!(wwn("0x20000000c9848140".into()), "20000000c9848140");
        assert_eq!(type_name(5), Some("cdrom"));
        assert_eq!(type_name(0x7f), None);
    }
}
