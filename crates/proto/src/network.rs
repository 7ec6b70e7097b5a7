//! The network calls of REMOTE_PROGRAM: virtual networks (36–52, 152–153, 283, 291, 341,
//! 432, 437, 444–445), their events (313–315, 446) and network ports (404–410), in
//! libvirt's field order.

use vireo_xdr::{xdr_struct, Array};

use crate::remote::Uuid;
use crate::typed::TypedParam;

pub use crate::remote::Network;

/// libvirt's `REMOTE_NETWORK_LIST_MAX`: names or handles in one list reply.
pub const NETWORK_LIST_MAX: usize = 16384;
/// libvirt's `REMOTE_NETWORK_PORT_LIST_MAX`.
pub const NETWORK_PORT_LIST_MAX: usize = 16384;
/// libvirt's `REMOTE_NETWORK_PORT_PARAMETERS_MAX`: typed parameters of one port.
pub const NETWORK_PORT_PARAMETERS_MAX: usize = 16;
/// libvirt's `REMOTE_NETWORK_DHCP_LEASES_MAX`.
pub const NETWORK_DHCP_LEASES_MAX: usize = 65536;

xdr_struct! {
    /// A network port handle (`remote_nonnull_network_port`): its network and its UUID.
    pub struct NetworkPort {
        pub net: Network,
        pub uuid: Uuid,
    }
}

/// `CONNECT_LIST_ALL_NETWORKS` filter flags (`virConnectListAllNetworksFlags`). Note that
/// INACTIVE and ACTIVE are the other way round from the domain flags.
pub mod list_flags {
    pub const INACTIVE: u32 = 1 << 0;
    pub const ACTIVE: u32 = 1 << 1;
    pub const PERSISTENT: u32 = 1 << 2;
    pub const TRANSIENT: u32 = 1 << 3;
    pub const AUTOSTART: u32 = 1 << 4;
    pub const NO_AUTOSTART: u32 = 1 << 5;
}

/// `VIR_NETWORK_XML_INACTIVE` (`virNetworkXMLFlags`): the XML as defined, not as running.
pub const XML_INACTIVE: u32 = 1;
/// `VIR_NETWORK_CREATE_VALIDATE` (NETWORK_CREATE_XML_FLAGS).
pub const CREATE_VALIDATE: u32 = 1;
/// `VIR_NETWORK_DEFINE_VALIDATE` (NETWORK_DEFINE_XML_FLAGS).
pub const DEFINE_VALIDATE: u32 = 1;

/// `virNetworkUpdateCommand`: what NETWORK_UPDATE does with the XML fragment.
pub mod update_command {
    pub const NONE: u32 = 0;
    pub const MODIFY: u32 = 1;
    pub const DELETE: u32 = 2;
    pub const ADD_LAST: u32 = 3;
    pub const ADD_FIRST: u32 = 4;
}

/// `virNetworkUpdateSection`: which part of the network NETWORK_UPDATE changes.
pub mod update_section {
    pub const NONE: u32 = 0;
    pub const BRIDGE: u32 = 1;
    pub const DOMAIN: u32 = 2;
    pub const IP: u32 = 3;
    pub const IP_DHCP_HOST: u32 = 4;
    pub const IP_DHCP_RANGE: u32 = 5;
    pub const FORWARD: u32 = 6;
    pub const FORWARD_INTERFACE: u32 = 7;
    pub const FORWARD_PF: u32 = 8;
    pub const PORTGROUP: u32 = 9;
    pub const DNS_HOST: u32 = 10;
    pub const DNS_TXT: u32 = 11;
    pub const DNS_SRV: u32 = 12;
}

/// `virNetworkUpdateFlags`, also the flags of NETWORK_SET_METADATA / GET_METADATA.
pub mod update_flags {
    pub const AFFECT_CURRENT: u32 = 0;
    pub const AFFECT_LIVE: u32 = 1 << 0;
    pub const AFFECT_CONFIG: u32 = 1 << 1;
}

/// `virNetworkMetadataType` (NETWORK_SET_METADATA / GET_METADATA, libvirt 9.7 and later).
pub mod metadata_type {
    pub const DESCRIPTION: i32 = 0;
    pub const TITLE: i32 = 1;
    pub const ELEMENT: i32 = 2;
}

/// Network events (`virNetworkEventID`, `virNetworkEventLifecycleType`). Lifecycle events
/// carry detail 0.
pub mod event {
    pub const ID_LIFECYCLE: i32 = 0;
    /// libvirt 9.7 and later.
    pub const ID_METADATA_CHANGE: i32 = 1;
    pub const DEFINED: i32 = 0;
    pub const UNDEFINED: i32 = 1;
    pub const STARTED: i32 = 2;
    pub const STOPPED: i32 = 3;
}

/// `virIPAddrType`: the `type_` of a DHCP lease.
pub mod ip_addr_type {
    pub const IPV4: i32 = 0;
    pub const IPV6: i32 = 1;
}

/// `virNetworkPortCreateFlags`.
pub mod port_create_flags {
    /// Reclaim an existing port's resources (used when a running guest is re-attached).
    pub const RECLAIM: u32 = 1 << 0;
    pub const VALIDATE: u32 = 1 << 1;
}

/// The typed parameters of a network port (`VIR_NETWORK_PORT_BANDWIDTH_*`), all UINT.
pub mod port_param {
    pub const IN_AVERAGE: &str = "inbound.average";
    pub const IN_PEAK: &str = "inbound.peak";
    pub const IN_BURST: &str = "inbound.burst";
    pub const IN_FLOOR: &str = "inbound.floor";
    pub const OUT_AVERAGE: &str = "outbound.average";
    pub const OUT_PEAK: &str = "outbound.peak";
    pub const OUT_BURST: &str = "outbound.burst";
}

// ---- Counting and listing.

xdr_struct! { pub struct NumRet { pub num: i32 } }
xdr_struct! { pub struct MaxNamesArgs { pub maxnames: i32 } }
xdr_struct! {
    /// CONNECT_LIST_NETWORKS and CONNECT_LIST_DEFINED_NETWORKS.
    pub struct NamesRet { pub names: Array<String, NETWORK_LIST_MAX> }
}
xdr_struct! { pub struct ListAllArgs { pub need_results: i32, pub flags: u32 } }
xdr_struct! {
    pub struct ListAllNetworksRet {
        pub nets: Array<Network, NETWORK_LIST_MAX>,
        pub ret: u32,
    }
}

// ---- Lookup, define, create, lifecycle.

xdr_struct! { pub struct NameArgs { pub name: String } }
xdr_struct! { pub struct UuidArgs { pub uuid: Uuid } }
xdr_struct! {
    /// Returns that are just a network handle (lookups, create, define).
    pub struct NetRet { pub net: Network }
}
xdr_struct! {
    /// Arguments that are just a network handle (undefine, create, destroy, get bridge
    /// name, get autostart, is active, is persistent).
    pub struct NetArgs { pub net: Network }
}
xdr_struct! {
    /// Arguments that are a network handle and flags (get XML desc).
    pub struct NetFlagsArgs { pub net: Network, pub flags: u32 }
}
xdr_struct! {
    /// NETWORK_CREATE_XML and NETWORK_DEFINE_XML.
    pub struct XmlArgs { pub xml: String }
}
xdr_struct! {
    /// NETWORK_CREATE_XML_FLAGS and NETWORK_DEFINE_XML_FLAGS.
    pub struct XmlFlagsArgs { pub xml: String, pub flags: u32 }
}
xdr_struct! { pub struct XmlRet { pub xml: String } }
xdr_struct! {
    pub struct NetworkUpdateArgs {
        pub net: Network,
        /// Named `command` in libvirt's protocol, but libvirt's clients send the
        /// `update_section` here (its stubs swap the two alike on both sides).
        pub command: u32,
        /// Named `section`, but carries the `update_command`.
        pub section: u32,
        /// Which `<ip>` element, for the IP sections; -1 for "the first / any".
        pub parent_index: i32,
        pub xml: String,
        /// `update_flags`.
        pub flags: u32,
    }
}
xdr_struct! { pub struct GetBridgeNameRet { pub name: String } }
xdr_struct! { pub struct AutostartRet { pub autostart: i32 } }
xdr_struct! { pub struct SetAutostartArgs { pub net: Network, pub autostart: i32 } }
xdr_struct! { pub struct ActiveRet { pub active: i32 } }
xdr_struct! { pub struct PersistentRet { pub persistent: i32 } }

// ---- Metadata (libvirt 9.7 and later).

xdr_struct! {
    pub struct SetMetadataArgs {
        pub net: Network,
        /// `metadata_type`.
        pub type_: i32,
        pub metadata: Option<String>,
        pub key: Option<String>,
        pub uri: Option<String>,
        pub flags: u32,
    }
}
xdr_struct! {
    pub struct GetMetadataArgs {
        pub net: Network,
        /// `metadata_type`.
        pub type_: i32,
        pub uri: Option<String>,
        pub flags: u32,
    }
}
xdr_struct! { pub struct GetMetadataRet { pub metadata: String } }

// ---- DHCP leases.

xdr_struct! {
    /// One lease (`remote_network_dhcp_lease`).
    pub struct DhcpLease {
        pub iface: String,
        /// Seconds since the epoch.
        pub expirytime: i64,
        /// `ip_addr_type`.
        pub type_: i32,
        pub mac: Option<String>,
        pub iaid: Option<String>,
        pub ipaddr: String,
        pub prefix: u32,
        pub hostname: Option<String>,
        pub clientid: Option<String>,
    }
}
xdr_struct! {
    pub struct GetDhcpLeasesArgs {
        pub net: Network,
        /// Only the leases of this MAC address, when set.
        pub mac: Option<String>,
        pub need_results: i32,
        pub flags: u32,
    }
}
xdr_struct! {
    pub struct GetDhcpLeasesRet {
        pub leases: Array<DhcpLease, NETWORK_DHCP_LEASES_MAX>,
        pub ret: u32,
    }
}

// ---- Events.

xdr_struct! {
    pub struct EventRegisterAnyArgs {
        pub event_id: i32,
        pub net: Option<Network>,
    }
}
xdr_struct! { pub struct EventRegisterAnyRet { pub callback_id: i32 } }
xdr_struct! { pub struct EventDeregisterAnyArgs { pub callback_id: i32 } }
xdr_struct! {
    /// Procedure 315, after the callback id.
    pub struct NetworkEventLifecycleBody {
        pub net: Network,
        pub event: i32,
        pub detail: i32,
    }
}
xdr_struct! {
    /// Procedure 315 whole (`remote_network_event_lifecycle_msg`).
    pub struct NetworkEventLifecycleMsg {
        pub callback_id: i32,
        pub body: NetworkEventLifecycleBody,
    }
}
xdr_struct! {
    /// Procedure 446, after the callback id.
    pub struct NetworkEventMetadataChangeBody {
        pub net: Network,
        /// `metadata_type`.
        pub type_: i32,
        /// The namespace URI, for `metadata_type::ELEMENT`.
        pub nsuri: Option<String>,
    }
}
xdr_struct! {
    /// Procedure 446 whole (`remote_network_event_callback_metadata_change_msg`).
    pub struct NetworkEventMetadataChangeMsg {
        pub callback_id: i32,
        pub body: NetworkEventMetadataChangeBody,
    }
}

// ---- Ports.

xdr_struct! {
    pub struct ListAllPortsArgs {
        pub net: Network,
        pub need_results: i32,
        pub flags: u32,
    }
}
xdr_struct! {
    pub struct ListAllPortsRet {
        pub ports: Array<NetworkPort, NETWORK_PORT_LIST_MAX>,
        pub ret: u32,
    }
}
xdr_struct! { pub struct PortLookupByUuidArgs { pub net: Network, pub uuid: Uuid } }
xdr_struct! {
    pub struct PortCreateXmlArgs {
        pub net: Network,
        pub xml: String,
        /// `port_create_flags`.
        pub flags: u32,
    }
}
xdr_struct! {
    /// Returns that are just a port handle (lookup, create).
    pub struct PortRet { pub port: NetworkPort }
}
xdr_struct! {
    /// Arguments that are a port handle and flags (get XML desc, delete).
    pub struct PortFlagsArgs { pub port: NetworkPort, pub flags: u32 }
}
xdr_struct! {
    pub struct PortSetParametersArgs {
        pub port: NetworkPort,
        pub params: Array<TypedParam, NETWORK_PORT_PARAMETERS_MAX>,
        pub flags: u32,
    }
}
xdr_struct! {
    /// Not two-phase like the domain getters: libvirt's client sends an uninitialised
    /// `nparams`, and libvirtd ignores it and returns every parameter at once (captured).
    pub struct PortGetParametersArgs {
        pub port: NetworkPort,
        pub nparams: i32,
        pub flags: u32,
    }
}
xdr_struct! {
    /// libvirtd leaves `nparams` 0 here; the count is the array's.
    pub struct PortGetParametersRet {
        pub params: Array<TypedParam, NETWORK_PORT_PARAMETERS_MAX>,
        pub nparams: i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::typed::TypedValue;
    use vireo_xdr::{from_bytes, to_bytes, Xdr, XdrError};

    fn rt<T: Xdr + PartialEq + std::fmt::Debug>(v: &T) -> Vec<u8> {
        let b = to_bytes(v);
        assert_eq!(&from_bytes::<T>(&b).unwrap(), v);
        b
    }

    fn net() -> Network {
        Network {
            name: "default".into(),
            uuid: [0x11; 16],
        }
    }

    fn port_handle() -> NetworkPort {
        NetworkPort {
            net: net(),
            uuid: [0x33; 16],
        }
    }

    #[test]
    fn handles_are_in_libvirts_order() {
        let b = rt(&NetRet { net: net() });
        // name "default" (length, 7 bytes, 1 pad), then the 16 raw uuid bytes.
        assert_eq!(&b[..4], &[0, 0, 0, 7]);
        assert_eq!(&b[4..12], b"default\0");
        assert_eq!(&b[12..], &[0x11; 16]);
        let p = NetworkPort {
            net: net(),
            uuid: [0x22; 16],
        };
        let b = rt(&p);
        assert_eq!(b.len(), 12 + 16 + 16);
        assert_eq!(&b[28..], &[0x22; 16]);
    }

    #[test]
    fn update_args_layout() {
        let a = NetworkUpdateArgs {
            net: net(),
            command: update_command::ADD_LAST,
            section: update_section::IP_DHCP_HOST,
            parent_index: -1,
            xml: "<host/>".into(),
            flags: update_flags::AFFECT_LIVE | update_flags::AFFECT_CONFIG,
        };
        let b = rt(&a);
        assert_eq!(
            &b[28..40],
            &[0, 0, 0, 3, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(&b[b.len() - 4..], &[0, 0, 0, 3]);
    }

    #[test]
    fn dhcp_leases_round_trip() {
        let r = GetDhcpLeasesRet {
            leases: Array(vec![
                DhcpLease {
                    iface: "virbr0".into(),
                    expirytime: 1_700_000_000,
                    type_: ip_addr_type::IPV4,
                    mac: Some("52:54:00:00:00:01".into()),
                    iaid: None,
                    ipaddr: "192.168.122.10".into(),
                    prefix: 24,
                    hostname: Some("guest".into()),
                    clientid: None,
                },
                DhcpLease {
                    iface: "virbr0".into(),
                    expirytime: 0,
                    type_: ip_addr_type::IPV6,
                    mac: None,
                    iaid: Some("1".into()),
                    ipaddr: "fd00::10".into(),
                    prefix: 64,
                    hostname: None,
                    clientid: Some("00:01".into()),
                },
            ]),
            ret: 2,
        };
        rt(&r);
        rt(&GetDhcpLeasesArgs {
            net: net(),
            mac: None,
            need_results: 1,
            flags: 0,
        });
    }

    #[test]
    fn events_and_metadata_round_trip() {
        let m = NetworkEventLifecycleMsg {
            callback_id: 3,
            body: NetworkEventLifecycleBody {
                net: net(),
                event: event::STARTED,
                detail: 0,
            },
        };
        let b = rt(&m);
        // The whole message is the callback id followed by the body.
        let mut want = to_bytes(&3i32);
        want.extend(to_bytes(&m.body));
        assert_eq!(b, want);
        rt(&NetworkEventMetadataChangeMsg {
            callback_id: 0,
            body: NetworkEventMetadataChangeBody {
                net: net(),
                type_: metadata_type::ELEMENT,
                nsuri: Some("http://example.org/ns".into()),
            },
        });
        rt(&EventRegisterAnyArgs {
            event_id: event::ID_LIFECYCLE,
            net: None,
        });
        assert_eq!(
            to_bytes(&EventRegisterAnyArgs {
                event_id: 0,
                net: None
            }),
            [0; 8]
        );
        rt(&SetMetadataArgs {
            net: net(),
            type_: metadata_type::TITLE,
            metadata: Some("t".into()),
            key: None,
            uri: None,
            flags: update_flags::AFFECT_CONFIG,
        });
        rt(&GetMetadataArgs {
            net: net(),
            type_: metadata_type::DESCRIPTION,
            uri: None,
            flags: 0,
        });
    }

    #[test]
    fn ports_round_trip() {
        let port = port_handle();
        rt(&ListAllPortsRet {
            ports: Array(vec![port.clone(), port.clone()]),
            ret: 2,
        });
        rt(&PortCreateXmlArgs {
            net: net(),
            xml: "<networkport/>".into(),
            flags: port_create_flags::RECLAIM | port_create_flags::VALIDATE,
        });
        rt(&PortSetParametersArgs {
            port: port.clone(),
            params: Array(vec![
                TypedParam::uint(port_param::IN_AVERAGE, 1000),
                TypedParam::uint(port_param::OUT_BURST, 2048),
            ]),
            flags: 0,
        });
        let r = PortGetParametersRet {
            params: Array(vec![TypedParam::new(
                port_param::IN_FLOOR,
                TypedValue::UInt(10),
            )]),
            nparams: 1,
        };
        rt(&r);
    }

    /// Whether decoding `b` as `T` fails on an array count above its maximum.
    fn too_long<T: Xdr>(b: &[u8]) -> bool {
        matches!(from_bytes::<T>(b), Err(XdrError::TooLong { .. }))
    }

    /// A count word of `n` followed by enough zero bytes for `n` empty elements.
    fn count_then_zeros(n: usize, elem: usize) -> Vec<u8> {
        let mut b = to_bytes(&(n as u32));
        b.resize(4 + n * elem + 8, 0);
        b
    }

    #[test]
    fn arrays_longer_than_their_maximum_are_refused() {
        // A port parameter list may hold 16 entries, not 17.
        let params: Vec<TypedParam> = (0..=NETWORK_PORT_PARAMETERS_MAX)
            .map(|i| TypedParam::uint(&format!("p{i}"), 1))
            .collect();
        let mut b = to_bytes(&Array::<TypedParam, 64>(params.clone()));
        b.extend(to_bytes(&17i32));
        assert!(too_long::<PortGetParametersRet>(&b));
        let mut ok = to_bytes(&Array::<TypedParam, 64>(
            params[..NETWORK_PORT_PARAMETERS_MAX].to_vec(),
        ));
        ok.extend(to_bytes(&16i32));
        assert_eq!(
            from_bytes::<PortGetParametersRet>(&ok)
                .unwrap()
                .params
                .0
                .len(),
            NETWORK_PORT_PARAMETERS_MAX
        );
        let mut set = to_bytes(&port_handle());
        set.extend(&b[..b.len() - 4]);
        set.extend(to_bytes(&0u32));
        assert!(too_long::<PortSetParametersArgs>(&set));

        // Lists: one past the maximum is refused, the maximum itself is accepted.
        let names = count_then_zeros(NETWORK_LIST_MAX + 1, 4);
        assert!(too_long::<NamesRet>(&names));
        let mut names = count_then_zeros(NETWORK_LIST_MAX, 4);
        names.truncate(4 + NETWORK_LIST_MAX * 4);
        assert_eq!(
            from_bytes::<NamesRet>(&names).unwrap().names.0.len(),
            NETWORK_LIST_MAX
        );
        assert!(too_long::<ListAllNetworksRet>(&count_then_zeros(
            NETWORK_LIST_MAX + 1,
            20
        )));
        assert!(too_long::<GetDhcpLeasesRet>(&count_then_zeros(
            NETWORK_DHCP_LEASES_MAX + 1,
            DhcpLease::MIN_SIZE
        )));
        assert!(too_long::<ListAllPortsRet>(&count_then_zeros(
            NETWORK_PORT_LIST_MAX + 1,
            NetworkPort::MIN_SIZE
        )));
    }

    #[test]
    fn read_only_connections_may_look_but_not_change() {
        use crate::remote::{allowed_read_only, opens_stream, procs::*};
        let reads = [
            CONNECT_NUM_OF_NETWORKS,
            CONNECT_LIST_NETWORKS,
            CONNECT_NUM_OF_DEFINED_NETWORKS,
            CONNECT_LIST_DEFINED_NETWORKS,
            CONNECT_LIST_ALL_NETWORKS,
            NETWORK_LOOKUP_BY_NAME,
            NETWORK_LOOKUP_BY_UUID,
            NETWORK_GET_XML_DESC,
            NETWORK_GET_BRIDGE_NAME,
            NETWORK_GET_AUTOSTART,
            NETWORK_IS_ACTIVE,
            NETWORK_IS_PERSISTENT,
            NETWORK_GET_DHCP_LEASES,
            NETWORK_GET_METADATA,
            CONNECT_NETWORK_EVENT_REGISTER_ANY,
            CONNECT_NETWORK_EVENT_DEREGISTER_ANY,
            NETWORK_LIST_ALL_PORTS,
            NETWORK_PORT_LOOKUP_BY_UUID,
            NETWORK_PORT_GET_XML_DESC,
            NETWORK_PORT_GET_PARAMETERS,
        ];
        let writes = [
            NETWORK_CREATE,
            NETWORK_CREATE_XML,
            NETWORK_CREATE_XML_FLAGS,
            NETWORK_DEFINE_XML,
            NETWORK_DEFINE_XML_FLAGS,
            NETWORK_UNDEFINE,
            NETWORK_DESTROY,
            NETWORK_SET_AUTOSTART,
            NETWORK_UPDATE,
            NETWORK_SET_METADATA,
            NETWORK_PORT_CREATE_XML,
            NETWORK_PORT_SET_PARAMETERS,
            NETWORK_PORT_DELETE,
        ];
        for p in reads {
            assert!(allowed_read_only(p), "{p}");
        }
        for p in writes {
            assert!(!allowed_read_only(p), "{p}");
        }
        for p in reads.into_iter().chain(writes) {
            assert!(!opens_stream(p), "{p}");
        }
    }
}
