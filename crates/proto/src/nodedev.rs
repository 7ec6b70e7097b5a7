//! The node device calls of REMOTE_PROGRAM: those that read the host's devices
//! (procedures 111–117, 285) and those that give PCI devices to VMs and back (118–120,
//! 301): handles, arguments and returns, in libvirt's field order.

use vireo_xdr::{xdr_struct, Array};

/// libvirt's `REMOTE_NODE_DEVICE_LIST_MAX`.
pub const NODE_DEVICE_LIST_MAX: usize = 65536;
/// libvirt's `REMOTE_NODE_DEVICE_CAPS_LIST_MAX`.
pub const NODE_DEVICE_CAPS_LIST_MAX: usize = 65536;

xdr_struct! {
    /// A node device handle (`remote_nonnull_node_device`).
    pub struct NodeDevice {
        pub name: String,
    }
}

/// `CONNECT_LIST_ALL_NODE_DEVICES` filter flags (`VIR_CONNECT_LIST_NODE_DEVICES_CAP_*`),
/// by the capability name each stands for.
pub const LIST_CAPS: [(u32, &str); 22] = [
    (1 << 0, "system"),
    (1 << 1, "pci"),
    (1 << 2, "usb_device"),
    (1 << 3, "usb"),
    (1 << 4, "net"),
    (1 << 5, "scsi_host"),
    (1 << 6, "scsi_target"),
    (1 << 7, "scsi"),
    (1 << 8, "storage"),
    (1 << 9, "fc_host"),
    (1 << 10, "vports"),
    (1 << 11, "scsi_generic"),
    (1 << 12, "drm"),
    (1 << 13, "mdev_types"),
    (1 << 14, "mdev"),
    (1 << 15, "ccw"),
    (1 << 16, "css"),
    (1 << 17, "vdpa"),
    (1 << 18, "ap_card"),
    (1 << 19, "ap_queue"),
    (1 << 20, "ap_matrix"),
    (1 << 21, "vpd"),
];
/// `VIR_CONNECT_LIST_NODE_DEVICES_INACTIVE` / `_ACTIVE`.
pub const LIST_INACTIVE: u32 = 1 << 30;
pub const LIST_ACTIVE: u32 = 1 << 31;

xdr_struct! { pub struct NodeNumOfDevicesArgs { pub cap: Option<String>, pub flags: u32 } }
xdr_struct! { pub struct NodeNumOfDevicesRet { pub num: i32 } }
xdr_struct! {
    pub struct NodeListDevicesArgs { pub cap: Option<String>, pub maxnames: i32, pub flags: u32 }
}
xdr_struct! { pub struct NodeListDevicesRet { pub names: Array<String, NODE_DEVICE_LIST_MAX> } }
xdr_struct! { pub struct NodeDeviceNameArgs { pub name: String } }
xdr_struct! { pub struct NodeDeviceLookupByNameRet { pub dev: NodeDevice } }
xdr_struct! { pub struct NodeDeviceGetXmlDescArgs { pub name: String, pub flags: u32 } }
xdr_struct! { pub struct NodeDeviceGetXmlDescRet { pub xml: String } }
xdr_struct! { pub struct NodeDeviceGetParentRet { pub parent: Option<String> } }
xdr_struct! { pub struct NodeDeviceNumOfCapsRet { pub num: i32 } }
xdr_struct! { pub struct NodeDeviceListCapsArgs { pub name: String, pub maxnames: i32 } }
xdr_struct! {
    pub struct NodeDeviceListCapsRet { pub names: Array<String, NODE_DEVICE_CAPS_LIST_MAX> }
}
xdr_struct! { pub struct ConnectListAllNodeDevicesArgs { pub need_results: i32, pub flags: u32 } }
xdr_struct! {
    pub struct ConnectListAllNodeDevicesRet {
        pub devices: Array<NodeDevice, NODE_DEVICE_LIST_MAX>,
        pub ret: u32,
    }
}
xdr_struct! {
    /// `NODE_DEVICE_DETACH_FLAGS`: the driver to bind to (`vfio`; none: the default).
    pub struct NodeDeviceDetachFlagsArgs {
        pub name: String,
        pub driver_name: Option<String>,
        pub flags: u32,
    }
}
