//! Mediated devices: the types a parent device offers (a PCI device's
//! `mdev_supported_types`, shown as its `mdev_types` capability), and the devices made of
//! them (`mdev`, from `/sys/bus/mdev/devices`), named as libvirt names them: their UUID and
//! their parent's address (`mdev_<uuid>_0000_00_02_0`).

use std::fs;
use std::path::Path;

use vireo_xml::{
    NodeDevCapType, NodeDevIommuGroup, NodeDevMdevCap, NodeDevMdevType, NodeDevMdevTypeId,
    NodeDevPciSubCap,
};

use crate::props::parse_num;
use crate::sysfs::Sysfs;

/// Where the mediated devices are listed.
pub(crate) const MDEV_DEVICES: &str = "/sys/bus/mdev/devices";
/// A parent's directory of the types it offers.
const SUPPORTED: &str = "mdev_supported_types";
/// Types one parent may offer (a GPU offers a dozen or so).
const MAX_TYPES: usize = 256;

/// The types the device in `path` offers, in the order sysfs lists them (libvirt's). A
/// type whose API or count cannot be read is left out.
pub(crate) fn types(sysfs: &Sysfs, path: &Path) -> Vec<NodeDevMdevType> {
    let dir = path.join(SUPPORTED);
    let Ok(rd) = fs::read_dir(sysfs.host(&dir)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in rd.flatten().take(MAX_TYPES) {
        let Ok(id) = entry.file_name().into_string() else {
            continue;
        };
        let t = dir.join(&id);
        let (Some(device_api), Some(available)) = (
            sysfs.attr(&t, "device_api"),
            sysfs
                .attr(&t, "available_instances")
                .and_then(|v| parse_num(&v, 10)),
        ) else {
            log::debug!("{}: not a readable mdev type", t.display());
            continue;
        };
        out.push(NodeDevMdevType {
            id,
            name: sysfs.attr(&t, "name"),
            device_api,
            available_instances: available,
        });
    }
    out
}

/// The `<capability type='mdev_types'>` of a parent that offers `types`.
pub(crate) fn types_cap(types: Vec<NodeDevMdevType>) -> NodeDevPciSubCap {
    NodeDevPciSubCap {
        cap_type: "mdev_types".into(),
        max_count: None,
        address: Vec::new(),
        types,
    }
}

/// A mediated device: what it is made of and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mdev {
    pub(crate) uuid: String,
    pub(crate) type_id: String,
    pub(crate) parent_addr: String,
    pub(crate) iommu_group: u32,
}

/// The mediated device in `path` (its directory is named by its UUID), when its type
/// and IOMMU group can be read (libvirt leaves it out otherwise).
pub(crate) fn device(sysfs: &Sysfs, path: &Path) -> Option<Mdev> {
    let uuid = path.file_name()?.to_str()?.to_string();
    let type_id = sysfs.link_name(path, "mdev_type")?;
    let iommu_group = sysfs.link_name(path, "iommu_group")?.parse().ok()?;
    let parent_addr = path.parent()?.file_name()?.to_str()?.to_string();
    Some(Mdev {
        uuid,
        type_id,
        parent_addr,
        iommu_group,
    })
}

pub(crate) fn cap(m: &Mdev) -> NodeDevMdevCap {
    NodeDevMdevCap {
        cap_type: NodeDevCapType::Mdev,
        mdev_type: NodeDevMdevTypeId {
            id: m.type_id.clone(),
        },
        uuid: Some(m.uuid.clone()),
        parent_addr: Some(m.parent_addr.clone()),
        iommu_group: Some(NodeDevIommuGroup {
            number: m.iommu_group,
            address: Vec::new(),
        }),
        attrs: Vec::new(),
    }
}
