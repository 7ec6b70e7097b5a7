//! Block devices (`storage`): whole disks from `/sys/class/block` (partitions are not
//! devices of their own), as libvirt's udev backend shows them. What kind of drive a disk
//! is comes from udev (`ID_TYPE`, `ID_CDROM`, …); without it, a virtio disk (`/dev/vd*`),
//! an NVMe namespace or a DASD is still known by its name, and any other is left out, as
//! libvirt leaves it. A fixed disk has its size; a CD-ROM drive its medium (whether there
//! is one, its label and size).

use std::path::Path;

use vireo_xml::{NodeDevCapType, NodeDevStorageCap, NodeDevStorageSubCap};

use crate::props::{parse_num, Props};
use crate::sysfs::Sysfs;

/// Every block device, partitions too.
pub(crate) const BLOCK_CLASS: &str = "/sys/class/block";
/// `DEVTYPE` of a whole disk.
pub(crate) const DISK: &str = "disk";

/// A disk's node names that tell its kind when udev does not.
const KNOWN_PREFIXES: [(&str, &str); 3] = [
    ("/dev/vd", "disk"),
    ("/dev/dasd", "dasd"),
    ("/dev/nvme", "disk"),
];

/// What makes a disk a node device: its node, what kind it is, its serial number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Disk {
    pub(crate) devnode: String,
    /// libvirt's kind: `disk`, `cd`, `floppy`, `sd`, `dasd`.
    pub(crate) drive: String,
    pub(crate) serial: Option<String>,
}

/// A text attribute as libvirt reads it: control characters out, blanks trimmed, empty is
/// none.
fn text(sysfs: &Sysfs, dir: &Path, file: &str) -> Option<String> {
    let v = sysfs.attr(dir, file)?;
    let v: String = v.chars().filter(|c| !c.is_control()).collect();
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// The disk in `path`, when libvirt would show it: it has a node and a kind libvirt
/// knows.
pub(crate) fn disk(sysfs: &Sysfs, path: &Path, props: &Props) -> Option<Disk> {
    let devnode = props.devnode()?;
    let mut drive = props
        .get("ID_TYPE")
        .filter(|t| *t != "generic")
        .map(str::to_string);
    if drive.is_none() {
        drive = if props.has("ID_DRIVE_FLOPPY") {
            Some("floppy".into())
        } else if props.has("ID_CDROM") {
            Some("cd".into())
        } else if props.has("ID_DRIVE_FLASH_SD") {
            Some("sd".into())
        } else {
            KNOWN_PREFIXES
                .iter()
                .find(|(p, _)| devnode.starts_with(p))
                .map(|(_, t)| t.to_string())
        };
    }
    let drive = drive?;
    if !matches!(
        drive.as_str(),
        "cd" | "cd/dvd" | "disk" | "floppy" | "sd" | "dasd"
    ) {
        log::debug!("{}: unsupported storage type '{drive}'", path.display());
        return None;
    }
    let serial = if drive == "dasd" {
        sysfs
            .resolve(&path.join("device"))
            .ok()
            .and_then(|d| text(sysfs, &d, "uid"))
    } else {
        props.get("ID_SERIAL").map(str::to_string)
    };
    Some(Disk {
        devnode,
        drive,
        serial,
    })
}

/// A disk's capability: its node, bus, kind, model, vendor and serial, then its size (a
/// fixed disk) or its medium (a CD-ROM or floppy drive).
pub(crate) fn cap(sysfs: &Sysfs, path: &Path, props: &Props, d: &Disk) -> NodeDevStorageCap {
    let dev = sysfs.resolve(&path.join("device")).ok();
    let of_dev = |f: &str| dev.as_deref().and_then(|d| text(sysfs, d, f));
    let number = |f: &str| {
        sysfs
            .attr(path, f)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let removable_drive = matches!(d.drive.as_str(), "cd" | "cd/dvd" | "floppy");
    let mut c = NodeDevStorageCap {
        cap_type: NodeDevCapType::Storage,
        block: d.devnode.clone(),
        bus: props.get("ID_BUS").map(str::to_string),
        drive_type: Some(if d.drive.starts_with("cd") {
            // libvirt keeps HAL's name.
            "cdrom".to_string()
        } else {
            d.drive.clone()
        }),
        model: of_dev("model"),
        vendor: of_dev("vendor"),
        serial: d.serial.clone(),
        sub_caps: Vec::new(),
        size: None,
        logical_block_size: None,
        num_blocks: None,
    };
    let (mut blocks, mut block_size) = (0, 0);
    let mut removable = false;
    let mut media = false;
    let mut label = None;
    if removable_drive {
        removable = sysfs.attr(path, "removable").and_then(|v| parse_num(&v, 0)) == Some(1);
        media = if d.drive == "floppy" {
            if props.has("ID_CDROM_MEDIA") {
                props
                    .get("DKD_MEDIA_AVAILABLE")
                    .and_then(|v| parse_num(v, 0))
                    == Some(1)
            } else {
                props.has("ID_FS_LABEL")
            }
        } else {
            props.get("ID_CDROM_MEDIA").and_then(|v| parse_num(v, 0)) == Some(1)
        };
        if media {
            label = props.get("ID_FS_LABEL").map(str::to_string);
            blocks = number("size");
            block_size = number("queue/logical_block_size");
        }
    } else {
        blocks = number("size");
        block_size = number("queue/logical_block_size");
    }
    let nonzero = |n: u64| (n > 0).then_some(n);
    if removable {
        c.sub_caps.push(NodeDevStorageSubCap {
            cap_type: "removable".into(),
            media_available: Some(u8::from(media)),
            media_size: Some(blocks.saturating_mul(block_size)),
            media_label: label,
            logical_block_size: nonzero(block_size),
            num_blocks: nonzero(blocks),
        });
    } else {
        // libvirt's size: the kernel's 512-byte sectors times the logical block size (a
        // drive for removable media that says it is not has its medium's blocks alone).
        c.size = Some(if removable_drive {
            0
        } else {
            blocks.saturating_mul(block_size)
        });
        c.logical_block_size = nonzero(block_size);
        c.num_blocks = nonzero(blocks);
    }
    c
}
