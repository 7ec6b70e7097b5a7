//! Node device calls (procedures 111–120, 285, 301; mediated devices made, defined and
//! removed: 123, 124, 428–430, 433–436), served by the node device driver, and its leases
//! of devices to domains (Vireo's own program).

use vireo_nodedev::NodeDevDriver;
use vireo_proto::family::Family;
use vireo_proto::nodedev::*;
use vireo_proto::remote::procs;
use vireo_proto::RemoteError;
use vireo_xdr::Array;

use super::{args, not_supported, ret, Outcome, ProcResult, RemoteService};

/// At most `max` names (a count from the client: refused when negative or too large).
fn at_most(max: i32, limit: usize, mut names: Vec<String>) -> Result<Vec<String>, RemoteError> {
    let n = usize::try_from(max)
        .ok()
        .filter(|n| *n <= limit)
        .ok_or_else(|| RemoteError::rpc(format!("maxnames {max} out of range (0..{limit})")))?;
    names.truncate(n);
    Ok(names)
}

/// A listing's flags: one bit per capability, and ACTIVE / INACTIVE (every device read
/// from the host is active; a defined mediated device not made now is inactive). Returns
/// the capabilities, and whether active and inactive devices are wanted.
fn wanted(flags: u32) -> Result<(Vec<&'static str>, bool, bool), RemoteError> {
    let known = LIST_CAPS
        .iter()
        .fold(LIST_ACTIVE | LIST_INACTIVE, |a, (b, _)| a | b);
    if flags & !known != 0 {
        return Err(RemoteError::new(
            vireo_proto::error::code::INVALID_ARG,
            22,
            format!(
                "invalid argument: unsupported flags (0x{:x})",
                flags & !known
            ),
        ));
    }
    let caps = LIST_CAPS
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    // Neither asked: both.
    let (active, inactive) = match (flags & LIST_ACTIVE != 0, flags & LIST_INACTIVE != 0) {
        (false, false) => (true, true),
        both => both,
    };
    Ok((caps, active, inactive))
}

pub(super) fn dispatch(s: &RemoteService, p: i32, payload: &[u8]) -> ProcResult {
    let d: &NodeDevDriver = s
        .nodedev
        .as_deref()
        .ok_or_else(|| not_supported(s.role, Family::NodeDev))?;
    let flags_none = |flags: u32| -> Result<(), RemoteError> {
        if flags != 0 {
            return Err(RemoteError::new(
                vireo_proto::error::code::INVALID_ARG,
                22,
                format!("invalid argument: unsupported flags (0x{flags:x})"),
            ));
        }
        Ok(())
    };
    match p {
        procs::NODE_NUM_OF_DEVICES => {
            let a: NodeNumOfDevicesArgs = args(payload)?;
            flags_none(a.flags)?;
            ret(NodeNumOfDevicesRet {
                num: d.names(a.cap.as_deref())?.len() as i32,
            })
        }
        procs::NODE_LIST_DEVICES => {
            let a: NodeListDevicesArgs = args(payload)?;
            flags_none(a.flags)?;
            let names = d.names(a.cap.as_deref())?;
            ret(NodeListDevicesRet {
                names: Array(at_most(a.maxnames, NODE_DEVICE_LIST_MAX, names)?),
            })
        }
        procs::NODE_DEVICE_LOOKUP_BY_NAME => {
            let a: NodeDeviceNameArgs = args(payload)?;
            // The device must be there now.
            d.caps(&a.name)?;
            ret(NodeDeviceLookupByNameRet {
                dev: NodeDevice { name: a.name },
            })
        }
        procs::NODE_DEVICE_LOOKUP_SCSI_HOST_BY_WWN => {
            let a: NodeDeviceLookupScsiHostByWwnArgs = args(payload)?;
            flags_none(a.flags)?;
            ret(NodeDeviceLookupByNameRet {
                dev: NodeDevice {
                    name: d.scsi_host_by_wwn(&a.wwnn, &a.wwpn)?,
                },
            })
        }
        procs::NODE_DEVICE_GET_XML_DESC => {
            let a: NodeDeviceGetXmlDescArgs = args(payload)?;
            // VIR_NODE_DEVICE_XML_INACTIVE asks for what a defined device would be: the
            // host's devices are all there is.
            if a.flags & !1 != 0 {
                flags_none(a.flags & !1)?;
            }
            ret(NodeDeviceGetXmlDescRet {
                xml: d.xml(&a.name)?,
            })
        }
        procs::NODE_DEVICE_GET_PARENT => {
            let a: NodeDeviceNameArgs = args(payload)?;
            ret(NodeDeviceGetParentRet {
                parent: d.parent(&a.name)?,
            })
        }
        procs::NODE_DEVICE_NUM_OF_CAPS => {
            let a: NodeDeviceNameArgs = args(payload)?;
            ret(NodeDeviceNumOfCapsRet {
                num: d.caps(&a.name)?.len() as i32,
            })
        }
        procs::NODE_DEVICE_LIST_CAPS => {
            let a: NodeDeviceListCapsArgs = args(payload)?;
            let caps = d.caps(&a.name)?;
            ret(NodeDeviceListCapsRet {
                names: Array(at_most(a.maxnames, NODE_DEVICE_CAPS_LIST_MAX, caps)?),
            })
        }
        procs::NODE_DEVICE_DETTACH => {
            let a: NodeDeviceNameArgs = args(payload)?;
            d.detach(&a.name, None)?;
            ret(())
        }
        procs::NODE_DEVICE_DETACH_FLAGS => {
            let a: NodeDeviceDetachFlagsArgs = args(payload)?;
            flags_none(a.flags)?;
            d.detach(&a.name, a.driver_name.as_deref())?;
            ret(())
        }
        procs::NODE_DEVICE_RE_ATTACH => {
            let a: NodeDeviceNameArgs = args(payload)?;
            d.reattach(&a.name)?;
            ret(())
        }
        procs::NODE_DEVICE_RESET => {
            let a: NodeDeviceNameArgs = args(payload)?;
            d.reset(&a.name)?;
            ret(())
        }
        procs::CONNECT_LIST_ALL_NODE_DEVICES => {
            let a: ConnectListAllNodeDevicesArgs = args(payload)?;
            let (caps, active, inactive) = wanted(a.flags)?;
            let off = d.inactive()?;
            let devices: Vec<NodeDevice> = d
                .all()?
                .into_iter()
                .filter(|(name, have)| {
                    (if off.contains(name) { inactive } else { active })
                        && (caps.is_empty() || have.iter().any(|c| caps.contains(&c.as_str())))
                })
                .map(|(name, _)| NodeDevice { name })
                .collect();
            let n = devices.len() as u32;
            ret(ConnectListAllNodeDevicesRet {
                devices: Array(if a.need_results != 0 {
                    devices
                } else {
                    Vec::new()
                }),
                ret: n,
            })
        }
        procs::NODE_DEVICE_CREATE_XML => {
            let a: NodeDeviceXmlArgs = args(payload)?;
            let name = d.create_xml(&a.xml_desc, a.flags)?;
            ret(NodeDeviceXmlRet {
                dev: NodeDevice { name },
            })
        }
        procs::NODE_DEVICE_DESTROY => {
            let a: NodeDeviceNameArgs = args(payload)?;
            d.destroy(&a.name)?;
            ret(())
        }
        procs::NODE_DEVICE_DEFINE_XML => {
            let a: NodeDeviceXmlArgs = args(payload)?;
            let name = d.define_xml(&a.xml_desc, a.flags)?;
            ret(NodeDeviceXmlRet {
                dev: NodeDevice { name },
            })
        }
        procs::NODE_DEVICE_UNDEFINE => {
            let a: NodeDeviceNameFlagsArgs = args(payload)?;
            d.undefine(&a.name, a.flags)?;
            ret(())
        }
        procs::NODE_DEVICE_CREATE => {
            let a: NodeDeviceNameFlagsArgs = args(payload)?;
            d.start(&a.name, a.flags)?;
            ret(())
        }
        procs::NODE_DEVICE_GET_AUTOSTART => {
            let a: NodeDeviceNameArgs = args(payload)?;
            ret(NodeDeviceGetAutostartRet {
                autostart: i32::from(d.autostart(&a.name)?),
            })
        }
        procs::NODE_DEVICE_SET_AUTOSTART => {
            let a: NodeDeviceSetAutostartArgs = args(payload)?;
            d.set_autostart(&a.name, a.autostart != 0)?;
            ret(())
        }
        procs::NODE_DEVICE_IS_PERSISTENT => {
            let a: NodeDeviceNameArgs = args(payload)?;
            ret(NodeDeviceIsPersistentRet {
                persistent: i32::from(d.is_persistent(&a.name)?),
            })
        }
        procs::NODE_DEVICE_IS_ACTIVE => {
            let a: NodeDeviceNameArgs = args(payload)?;
            ret(NodeDeviceIsActiveRet {
                active: i32::from(d.is_active(&a.name)?),
            })
        }
        _ => Err(RemoteError::unknown_procedure(p)),
    }
}

/// Vireo's own calls for device leases; `uid` is the caller's (its QEMU opens the
/// device). A lease's reply carries the device's node, open.
pub(super) fn dispatch_vireo(s: &RemoteService, p: i32, payload: &[u8], uid: u32) -> Outcome {
    use vireo_proto::vireo::{
        procs as vprocs, NodeDeviceLeaseArgs, NodeDeviceLeaseInfo, NodeDeviceLeaseRet,
        NodeDeviceLeasesArgs, NodeDeviceLeasesRet, NodeDeviceReleaseArgs, NodeDeviceReleaseRet,
        LEASES_ALL,
    };
    let r = (|| {
        let d: &NodeDevDriver = s
            .nodedev
            .as_deref()
            .ok_or_else(|| not_supported(s.role, Family::NodeDev))?;
        Ok::<_, RemoteError>(match p {
            vprocs::NODE_DEVICE_LEASE => {
                let a: NodeDeviceLeaseArgs = args(payload)?;
                let g = d.lease(&a.name, a.owner, &a.owner_name, uid, a.managed != 0)?;
                Outcome::ReplyWithFds(
                    vireo_xdr::to_bytes(&NodeDeviceLeaseRet {
                        address: g.address,
                        node: g.node,
                    }),
                    vec![g.fd],
                )
            }
            vprocs::NODE_DEVICE_RELEASE => {
                let a: NodeDeviceReleaseArgs = args(payload)?;
                let names = d.release(a.owner, a.name.as_deref())?;
                Outcome::Reply(vireo_xdr::to_bytes(&NodeDeviceReleaseRet {
                    names: Array(names),
                }))
            }
            vprocs::NODE_DEVICE_LEASES => {
                let a: NodeDeviceLeasesArgs = args(payload)?;
                let all = a.flags & LEASES_ALL != 0;
                if a.flags & !LEASES_ALL != 0 || (all && uid != 0) {
                    return Err(RemoteError::new(
                        vireo_proto::error::code::INVALID_ARG,
                        22,
                        format!("invalid argument: flags 0x{:x}", a.flags),
                    ));
                }
                let leases = d
                    .leases((!all).then_some(uid))
                    .into_iter()
                    .map(|l| NodeDeviceLeaseInfo {
                        name: l.device,
                        owner: l.owner,
                        owner_name: l.owner_name,
                        managed: i32::from(l.managed),
                    })
                    .collect();
                Outcome::Reply(vireo_xdr::to_bytes(&NodeDeviceLeasesRet {
                    leases: Array(leases),
                }))
            }
            _ => return Err(RemoteError::unknown_procedure(p)),
        })
    })();
    r.unwrap_or_else(Outcome::Error)
}
