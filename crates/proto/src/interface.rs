//! The host interface calls of REMOTE_PROGRAM (procedures 126–134, 137, 138, 156,
//! 220–222, 284): handles, arguments and returns, in libvirt's field order.

use vireo_xdr::{xdr_struct, Array};

/// libvirt's `REMOTE_INTERFACE_LIST_MAX`: names or handles in one list reply.
pub const INTERFACE_LIST_MAX: usize = 16384;

xdr_struct! {
    /// An interface handle (`remote_nonnull_interface`): its name and MAC address (empty
    /// when it has none).
    pub struct Interface {
        pub name: String,
        pub mac: String,
    }
}

/// `CONNECT_LIST_ALL_INTERFACES` filter flags (`virConnectListAllInterfacesFlags`).
pub mod list_flags {
    pub const INACTIVE: u32 = 1 << 0;
    pub const ACTIVE: u32 = 1 << 1;
}

/// `VIR_INTERFACE_XML_INACTIVE`: the XML as defined, not as running.
pub const XML_INACTIVE: u32 = 1;
/// `VIR_INTERFACE_DEFINE_VALIDATE`: check the XML against the schema.
pub const DEFINE_VALIDATE: u32 = 1;

xdr_struct! { pub struct InterfaceNumRet { pub num: i32 } }
xdr_struct! { pub struct InterfaceMaxNamesArgs { pub maxnames: i32 } }
xdr_struct! {
    pub struct InterfaceNamesRet { pub names: Array<String, INTERFACE_LIST_MAX> }
}
xdr_struct! { pub struct InterfaceNameArgs { pub name: String } }
xdr_struct! { pub struct InterfaceMacArgs { pub mac: String } }
xdr_struct! { pub struct InterfaceRet { pub iface: Interface } }
xdr_struct! { pub struct InterfaceArgs { pub iface: Interface } }
xdr_struct! { pub struct InterfaceFlagsArgs { pub iface: Interface, pub flags: u32 } }
xdr_struct! { pub struct InterfaceXmlRet { pub xml: String } }
xdr_struct! { pub struct InterfaceDefineXmlArgs { pub xml: String, pub flags: u32 } }
xdr_struct! { pub struct InterfaceChangeArgs { pub flags: u32 } }
xdr_struct! { pub struct InterfaceIsActiveRet { pub active: i32 } }
xdr_struct! {
    pub struct ConnectListAllInterfacesArgs { pub need_results: i32, pub flags: u32 }
}
xdr_struct! {
    pub struct ConnectListAllInterfacesRet {
        pub ifaces: Array<Interface, INTERFACE_LIST_MAX>,
        pub ret: u32,
    }
}
