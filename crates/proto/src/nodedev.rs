//! The node device calls of REMOTE_PROGRAM: those that read the host's devices
//! (procedures 111–117, 285), those that give PCI devices to VMs and back (118–120,
//! 301), and the life of mediated devices (123, 124, 428–430, 433–436): handles,
//! arguments and returns, in libvirt's field order.

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

// ---- Devices made and defined: mediated devices (123, 124, 428–430, 433–436).

/// `VIR_NODE_DEVICE_CREATE_XML_VALIDATE` / `VIR_NODE_DEVICE_DEFINE_XML_VALIDATE`: check
/// the document against the schema first.
pub const XML_VALIDATE: u32 = 1;

xdr_struct! {
    /// `NODE_DEVICE_CREATE_XML` and `NODE_DEVICE_DEFINE_XML`: the device's XML.
    pub struct NodeDeviceXmlArgs {
        pub xml_desc: String,
        pub flags: u32,
    }
}
xdr_struct! {
    /// What `NODE_DEVICE_CREATE_XML` and `NODE_DEVICE_DEFINE_XML` made.
    pub struct NodeDeviceXmlRet {
        pub dev: NodeDevice,
    }
}
xdr_struct! {
    /// `NODE_DEVICE_UNDEFINE` and `NODE_DEVICE_CREATE` (start a defined device).
    pub struct NodeDeviceNameFlagsArgs {
        pub name: String,
        pub flags: u32,
    }
}
xdr_struct! { pub struct NodeDeviceGetAutostartRet { pub autostart: i32 } }
xdr_struct! { pub struct NodeDeviceSetAutostartArgs { pub name: String, pub autostart: i32 } }
xdr_struct! { pub struct NodeDeviceIsPersistentRet { pub persistent: i32 } }
xdr_struct! { pub struct NodeDeviceIsActiveRet { pub active: i32 } }

// ---- Lookup of a Fibre Channel SCSI host by its world wide names (procedure 297).

xdr_struct! {
    pub struct NodeDeviceLookupScsiHostByWwnArgs {
        pub wwnn: String,
        pub wwpn: String,
        pub flags: u32,
    }
}

// ---- Events (procedures 374–377).

/// Node device events (`virNodeDeviceEventID`, `virNodeDeviceEventLifecycleType`).
/// Lifecycle events carry detail 0.
pub mod event {
    pub const ID_LIFECYCLE: i32 = 0;
    pub const ID_UPDATE: i32 = 1;
    pub const CREATED: i32 = 0;
    pub const DELETED: i32 = 1;
    pub const DEFINED: i32 = 2;
    pub const UNDEFINED: i32 = 3;
}

xdr_struct! {
    /// `CONNECT_NODE_DEVICE_EVENT_REGISTER_ANY`: the events of one device, or of all.
    pub struct NodeDeviceEventRegisterAnyArgs {
        pub event_id: i32,
        pub dev: Option<NodeDevice>,
    }
}
xdr_struct! {
    /// Procedure 376, after the callback id.
    pub struct NodeDeviceEventLifecycleBody {
        pub dev: NodeDevice,
        pub event: i32,
        pub detail: i32,
    }
}
xdr_struct! {
    pub struct NodeDeviceEventLifecycleMsg {
        pub callback_id: i32,
        pub body: NodeDeviceEventLifecycleBody,
    }
}
xdr_struct! {
    /// Procedure 377, after the callback id.
    pub struct NodeDeviceEventUpdateBody {
        pub dev: NodeDevice,
    }
}
xdr_struct! {
    pub struct NodeDeviceEventUpdateMsg {
        pub callback_id: i32,
        pub body: NodeDeviceEventUpdateBody,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lifecycle event as libvirtd sends it: the callback id, the device's name, the
    /// event and its detail.
    #[test]
    fn events_are_libvirts_layout() {
        let m = NodeDeviceEventLifecycleMsg {
            callback_id: 2,
            body: NodeDeviceEventLifecycleBody {
                dev: NodeDevice {
                    name: "net_v0".into(),
                },
                event: event::DELETED,
                detail: 0,
            },
        };
        let b = vireo_xdr::to_bytes(&m);
        assert_eq!(
            b,
            [
                &[0, 0, 0, 2][..],
                &[0, 0, 0, 6],
                b"net_v0",
                &[0, 0],
                &[0, 0, 0, 1],
                &[0, 0, 0, 0]
            ]
            .concat()
        );
        assert_eq!(
            vireo_xdr::from_bytes::<NodeDeviceEventLifecycleMsg>(&b).unwrap(),
            m
        );
        let a = NodeDeviceEventRegisterAnyArgs {
            event_id: event::ID_UPDATE,
            dev: None,
        };
        assert_eq!(vireo_xdr::to_bytes(&a), [0, 0, 0, 1, 0, 0, 0, 0]);
    }

    /// The mediated device calls: a name (or the XML) then the flags, an int for a
    /// boolean.
    #[test]
    fn lifecycle_calls_are_libvirts_layout() {
        let a = NodeDeviceNameFlagsArgs {
            name: "mdev_x".into(),
            flags: 0,
        };
        assert_eq!(
            vireo_xdr::to_bytes(&a),
            [&[0, 0, 0, 6][..], b"mdev_x", &[0, 0], &[0, 0, 0, 0]].concat()
        );
        let a = NodeDeviceSetAutostartArgs {
            name: "ab".into(),
            autostart: 1,
        };
        assert_eq!(
            vireo_xdr::to_bytes(&a),
            [&[0, 0, 0, 2][..], b"ab", &[0, 0], &[0, 0, 0, 1]].concat()
        );
        let x = NodeDeviceXmlArgs {
            xml_desc: "<d/>".into(),
            flags: XML_VALIDATE,
        };
        let b = vireo_xdr::to_bytes(&x);
        assert_eq!(b, [&[0, 0, 0, 4][..], b"<d/>", &[0, 0, 0, 1]].concat());
        assert_eq!(vireo_xdr::from_bytes::<NodeDeviceXmlArgs>(&b).unwrap(), x);
        assert_eq!(
            vireo_xdr::to_bytes(&NodeDeviceIsActiveRet { active: 1 }),
            [0, 0, 0, 1]
        );
    }
}
