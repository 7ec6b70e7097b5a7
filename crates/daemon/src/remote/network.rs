//! Network calls (procedures 36–52, 152–153, 283, 291, 341, 432, 437), served by the
//! network driver. Event registration (313/314) is in `events.rs`, with the other object
//! events. Vireo's own calls for ports with a tap are here too ([`dispatch_vireo`]).

use vireo_network::NetworkDriver;
use vireo_proto::network::*;
use vireo_proto::remote::procs;
use vireo_proto::RemoteError;
use vireo_xdr::Array;

use vireo_rpc::server::Outcome;

use super::{args, not_supported, ret, void, ProcResult, RemoteService};
use vireo_proto::family::Family;

/// Bounds a client's `maxnames`.
fn max_names(n: i32) -> Result<usize, RemoteError> {
    if n < 0 || n as usize > NETWORK_LIST_MAX {
        return Err(RemoteError::rpc(format!(
            "maxnames {n} out of range (0..{NETWORK_LIST_MAX})"
        )));
    }
    Ok(n as usize)
}

pub(super) fn dispatch(s: &RemoteService, p: i32, payload: &[u8]) -> ProcResult {
    let d: &NetworkDriver = s
        .network
        .as_deref()
        .ok_or_else(|| not_supported(s.role, Family::Network))?;
    match p {
        procs::CONNECT_NUM_OF_NETWORKS => ret(NumRet {
            num: d.names(true).len() as i32,
        }),
        procs::CONNECT_NUM_OF_DEFINED_NETWORKS => ret(NumRet {
            num: d.names(false).len() as i32,
        }),
        procs::CONNECT_LIST_NETWORKS | procs::CONNECT_LIST_DEFINED_NETWORKS => {
            let a: MaxNamesArgs = args(payload)?;
            let max = max_names(a.maxnames)?;
            let mut names = d.names(p == procs::CONNECT_LIST_NETWORKS);
            names.truncate(max);
            ret(NamesRet {
                names: Array(names),
            })
        }
        procs::CONNECT_LIST_ALL_NETWORKS => {
            let a: ListAllArgs = args(payload)?;
            let all = d.list_all(a.flags)?;
            let n = all.len() as u32;
            ret(ListAllNetworksRet {
                nets: Array(if a.need_results != 0 { all } else { Vec::new() }),
                ret: n,
            })
        }
        procs::NETWORK_LOOKUP_BY_NAME => {
            let a: NameArgs = args(payload)?;
            ret(NetRet {
                net: d.lookup_by_name(&a.name)?,
            })
        }
        procs::NETWORK_LOOKUP_BY_UUID => {
            let a: UuidArgs = args(payload)?;
            ret(NetRet {
                net: d.lookup_by_uuid(&a.uuid)?,
            })
        }
        procs::NETWORK_DEFINE_XML => {
            let a: XmlArgs = args(payload)?;
            ret(NetRet {
                net: d.define_xml(&a.xml, 0)?,
            })
        }
        procs::NETWORK_DEFINE_XML_FLAGS => {
            let a: XmlFlagsArgs = args(payload)?;
            ret(NetRet {
                net: d.define_xml(&a.xml, a.flags)?,
            })
        }
        procs::NETWORK_CREATE_XML => {
            let a: XmlArgs = args(payload)?;
            ret(NetRet {
                net: d.create_xml(&a.xml, 0)?,
            })
        }
        procs::NETWORK_CREATE_XML_FLAGS => {
            let a: XmlFlagsArgs = args(payload)?;
            ret(NetRet {
                net: d.create_xml(&a.xml, a.flags)?,
            })
        }
        procs::NETWORK_UNDEFINE => {
            let a: NetArgs = args(payload)?;
            d.undefine(&a.net)?;
            void()
        }
        procs::NETWORK_CREATE => {
            let a: NetArgs = args(payload)?;
            d.create(&a.net)?;
            void()
        }
        procs::NETWORK_DESTROY => {
            let a: NetArgs = args(payload)?;
            d.destroy(&a.net)?;
            void()
        }
        procs::NETWORK_GET_XML_DESC => {
            let a: NetFlagsArgs = args(payload)?;
            ret(XmlRet {
                xml: d.xml_desc(&a.net, a.flags)?,
            })
        }
        procs::NETWORK_GET_BRIDGE_NAME => {
            let a: NetArgs = args(payload)?;
            ret(GetBridgeNameRet {
                name: d.bridge_name(&a.net)?,
            })
        }
        procs::NETWORK_GET_AUTOSTART => {
            let a: NetArgs = args(payload)?;
            ret(AutostartRet {
                autostart: d.autostart_of(&a.net)? as i32,
            })
        }
        procs::NETWORK_SET_AUTOSTART => {
            let a: SetAutostartArgs = args(payload)?;
            d.set_autostart(&a.net, a.autostart != 0)?;
            void()
        }
        procs::NETWORK_IS_ACTIVE => {
            let a: NetArgs = args(payload)?;
            ret(ActiveRet {
                active: d.is_active(&a.net)? as i32,
            })
        }
        procs::NETWORK_IS_PERSISTENT => {
            let a: NetArgs = args(payload)?;
            ret(PersistentRet {
                persistent: d.is_persistent(&a.net)? as i32,
            })
        }
        procs::NETWORK_UPDATE => {
            let a: NetworkUpdateArgs = args(payload)?;
            // libvirt's clients put the section in the `command` field and the command in
            // `section` (its client and server stubs swap them alike); so do we.
            d.update(
                &a.net,
                a.section,
                a.command,
                a.parent_index,
                &a.xml,
                a.flags,
            )?;
            void()
        }
        procs::NETWORK_GET_DHCP_LEASES => {
            let a: GetDhcpLeasesArgs = args(payload)?;
            if a.flags != 0 {
                return Err(vireo_network::NetworkError::InvalidArg(format!(
                    "unsupported flags (0x{:x})",
                    a.flags
                ))
                .into());
            }
            let leases = d.dhcp_leases(&a.net, a.mac.as_deref())?;
            let n = leases.len() as u32;
            ret(GetDhcpLeasesRet {
                leases: Array(if a.need_results != 0 {
                    leases
                } else {
                    Vec::new()
                }),
                ret: n,
            })
        }
        procs::NETWORK_LIST_ALL_PORTS => {
            let a: ListAllPortsArgs = args(payload)?;
            let all = d.port_list(&a.net, a.flags)?;
            let n = all.len() as u32;
            ret(ListAllPortsRet {
                ports: Array(if a.need_results != 0 { all } else { Vec::new() }),
                ret: n,
            })
        }
        procs::NETWORK_PORT_LOOKUP_BY_UUID => {
            let a: PortLookupByUuidArgs = args(payload)?;
            ret(PortRet {
                port: d.port_lookup(&a.net, &a.uuid)?,
            })
        }
        procs::NETWORK_PORT_CREATE_XML => {
            let a: PortCreateXmlArgs = args(payload)?;
            ret(PortRet {
                port: d.port_create(&a.net, &a.xml, a.flags)?,
            })
        }
        procs::NETWORK_PORT_GET_XML_DESC => {
            let a: PortFlagsArgs = args(payload)?;
            ret(XmlRet {
                xml: d.port_xml(&a.port, a.flags)?,
            })
        }
        procs::NETWORK_PORT_DELETE => {
            let a: PortFlagsArgs = args(payload)?;
            d.port_delete(&a.port, a.flags)?;
            void()
        }
        procs::NETWORK_PORT_GET_PARAMETERS => {
            // libvirt's clients send no usable count here: every parameter comes back.
            let a: PortGetParametersArgs = args(payload)?;
            let params = d.port_parameters(&a.port, a.flags)?;
            ret(PortGetParametersRet {
                params: Array(params),
                nparams: 0,
            })
        }
        procs::NETWORK_PORT_SET_PARAMETERS => {
            let a: PortSetParametersArgs = args(payload)?;
            d.port_set_parameters(&a.port, &a.params.0, a.flags)?;
            void()
        }
        _ => Err(RemoteError::unknown_procedure(p)),
    }
}

/// Vireo's own calls (`VIREO_PROGRAM`): ports with their tap, the tap's descriptor in the
/// reply.
pub(super) fn dispatch_vireo(s: &RemoteService, p: i32, payload: &[u8]) -> Outcome {
    use vireo_proto::vireo::{
        procs as vprocs, BridgePortCreateTapArgs, BridgePortCreateTapRet, BridgePortDeleteArgs,
        PortCreateTapArgs, PortCreateTapRet,
    };
    let r = (|| {
        let d: &NetworkDriver = s
            .network
            .as_deref()
            .ok_or_else(|| not_supported(s.role, Family::Network))?;
        Ok::<_, RemoteError>(match p {
            vprocs::NETWORK_PORT_CREATE_TAP => {
                let a: PortCreateTapArgs = args(payload)?;
                let (port, ifname, fd) =
                    d.port_create_tap(&a.net, &a.xml, a.filterref.as_deref(), a.flags)?;
                Outcome::ReplyWithFds(
                    vireo_xdr::to_bytes(&PortCreateTapRet { port, ifname }),
                    vec![fd],
                )
            }
            vprocs::BRIDGE_PORT_CREATE_TAP => {
                let a: BridgePortCreateTapArgs = args(payload)?;
                let (port, ifname, fd) =
                    d.bridge_port_create_tap(&a.bridge, &a.xml, a.filterref.as_deref(), a.flags)?;
                Outcome::ReplyWithFds(
                    vireo_xdr::to_bytes(&BridgePortCreateTapRet { port, ifname }),
                    vec![fd],
                )
            }
            vprocs::BRIDGE_PORT_DELETE => {
                let a: BridgePortDeleteArgs = args(payload)?;
                d.bridge_port_delete(&a.owner, &a.ifname, a.flags)?;
                Outcome::Reply(Vec::new())
            }
            _ => return Err(RemoteError::unknown_procedure(p)),
        })
    })();
    r.unwrap_or_else(Outcome::Error)
}
