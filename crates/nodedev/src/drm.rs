//! DRM devices (`drm`): a graphics card's nodes from `/sys/class/drm` (`card0`,
//! `renderD128`), as libvirt's udev backend shows them; what a node is comes from its
//! minor number. Connectors (`card0-HDMI-A-1`) are not devices of their own.

use vireo_xml::{NodeDevCapType, NodeDevDrmCap, NodeDevDrmType};

use crate::props::Props;

/// Where DRM nodes and connectors are.
pub(crate) const DRM_CLASS: &str = "/sys/class/drm";
/// `DEVTYPE` of a node.
pub(crate) const MINOR: &str = "drm_minor";

/// What the node is, from its minor number (64 of each kind); `None` for a number that
/// is none of them (libvirt leaves such a node out).
pub(crate) fn node_type(props: &Props) -> Option<NodeDevDrmType> {
    let minor = props.get("MINOR")?.trim().parse::<i32>().ok()?;
    if minor < 0 {
        return None;
    }
    match minor >> 6 {
        0 => Some(NodeDevDrmType::Primary),
        1 => Some(NodeDevDrmType::Control),
        2 => Some(NodeDevDrmType::Render),
        _ => None,
    }
}

pub(crate) fn cap(t: NodeDevDrmType) -> NodeDevDrmCap {
    NodeDevDrmCap {
        cap_type: NodeDevCapType::Drm,
        drm_type: t,
    }
}
