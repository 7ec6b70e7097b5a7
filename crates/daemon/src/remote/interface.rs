//! Host interface calls (procedures 126–134, 137, 138, 156, 220–222, 284), served by the
//! interface driver.

use vireo_interface::{InterfaceDriver, Listed};
use vireo_proto::error::code;
use vireo_proto::family::Family;
use vireo_proto::interface::*;
use vireo_proto::remote::procs;
use vireo_proto::RemoteError;
use vireo_xdr::Array;

use super::{args, not_supported, ret, void, ProcResult, RemoteService};

/// libvirt's `VIR_FROM_INTERFACE`.
const FROM_INTERFACE: i32 = 26;

fn bad_flags(flags: u32) -> RemoteError {
    RemoteError::new(
        code::INVALID_ARG,
        FROM_INTERFACE,
        format!("invalid argument: unsupported flags (0x{flags:x})"),
    )
}

/// Refuses flags other than `allowed`.
fn only(flags: u32, allowed: u32) -> Result<(), RemoteError> {
    if flags & !allowed != 0 {
        return Err(bad_flags(flags & !allowed));
    }
    Ok(())
}

/// The names of at most `max` interfaces (a count from the client: refused when negative
/// or too large).
fn names(max: i32, list: impl Iterator<Item = Listed>) -> Result<Vec<String>, RemoteError> {
    let n = usize::try_from(max)
        .ok()
        .filter(|n| *n <= INTERFACE_LIST_MAX)
        .ok_or_else(|| {
            RemoteError::rpc(format!(
                "maxnames {max} out of range (0..{INTERFACE_LIST_MAX})"
            ))
        })?;
    Ok(list.take(n).map(|l| l.name).collect())
}

fn handle((name, mac): (String, String)) -> Interface {
    Interface { name, mac }
}

pub(super) fn dispatch(s: &RemoteService, p: i32, payload: &[u8]) -> ProcResult {
    let d: &InterfaceDriver = s
        .interface
        .as_deref()
        .ok_or_else(|| not_supported(s.role, Family::Interface))?;
    match p {
        procs::CONNECT_NUM_OF_INTERFACES => ret(InterfaceNumRet {
            num: d.list()?.iter().filter(|l| l.active).count() as i32,
        }),
        procs::CONNECT_LIST_INTERFACES => {
            let a: InterfaceMaxNamesArgs = args(payload)?;
            let list = d.list()?.into_iter().filter(|l| l.active);
            ret(InterfaceNamesRet {
                names: Array(names(a.maxnames, list)?),
            })
        }
        procs::CONNECT_NUM_OF_DEFINED_INTERFACES => ret(InterfaceNumRet {
            num: d.list()?.iter().filter(|l| !l.active).count() as i32,
        }),
        procs::CONNECT_LIST_DEFINED_INTERFACES => {
            let a: InterfaceMaxNamesArgs = args(payload)?;
            let list = d.list()?.into_iter().filter(|l| !l.active);
            ret(InterfaceNamesRet {
                names: Array(names(a.maxnames, list)?),
            })
        }
        procs::CONNECT_LIST_ALL_INTERFACES => {
            let a: ConnectListAllInterfacesArgs = args(payload)?;
            let both = list_flags::ACTIVE | list_flags::INACTIVE;
            only(a.flags, both)?;
            let want = |active: bool| {
                a.flags & both == 0
                    || (active && a.flags & list_flags::ACTIVE != 0)
                    || (!active && a.flags & list_flags::INACTIVE != 0)
            };
            let ifaces: Vec<Interface> = d
                .list()?
                .into_iter()
                .filter(|l| want(l.active))
                .map(|l| Interface {
                    name: l.name,
                    mac: l.mac,
                })
                .collect();
            if ifaces.len() > INTERFACE_LIST_MAX {
                return Err(RemoteError::rpc(format!(
                    "too many interfaces: {} (at most {INTERFACE_LIST_MAX})",
                    ifaces.len()
                )));
            }
            let n = ifaces.len() as u32;
            ret(ConnectListAllInterfacesRet {
                ifaces: Array(if a.need_results != 0 {
                    ifaces
                } else {
                    Vec::new()
                }),
                ret: n,
            })
        }
        procs::INTERFACE_LOOKUP_BY_NAME => {
            let a: InterfaceNameArgs = args(payload)?;
            ret(InterfaceRet {
                iface: handle(d.lookup_by_name(&a.name)?),
            })
        }
        procs::INTERFACE_LOOKUP_BY_MAC_STRING => {
            let a: InterfaceMacArgs = args(payload)?;
            ret(InterfaceRet {
                iface: handle(d.lookup_by_mac(&a.mac)?),
            })
        }
        procs::INTERFACE_GET_XML_DESC => {
            let a: InterfaceFlagsArgs = args(payload)?;
            // The definition is the XML of a defined interface either way.
            only(a.flags, XML_INACTIVE)?;
            ret(InterfaceXmlRet {
                xml: d.xml(&a.iface.name)?,
            })
        }
        procs::INTERFACE_IS_ACTIVE => {
            let a: InterfaceArgs = args(payload)?;
            ret(InterfaceIsActiveRet {
                active: i32::from(d.is_active(&a.iface.name)?),
            })
        }
        procs::INTERFACE_DEFINE_XML => {
            let a: InterfaceDefineXmlArgs = args(payload)?;
            // The XML is checked as it is read, whether validation is asked or not.
            only(a.flags, DEFINE_VALIDATE)?;
            ret(InterfaceRet {
                iface: handle(d.define(&a.xml)?),
            })
        }
        procs::INTERFACE_UNDEFINE => {
            let a: InterfaceArgs = args(payload)?;
            d.undefine(&a.iface.name)?;
            void()
        }
        procs::INTERFACE_CREATE => {
            let a: InterfaceFlagsArgs = args(payload)?;
            only(a.flags, 0)?;
            d.create(&a.iface.name)?;
            void()
        }
        procs::INTERFACE_DESTROY => {
            let a: InterfaceFlagsArgs = args(payload)?;
            only(a.flags, 0)?;
            d.destroy(&a.iface.name)?;
            void()
        }
        procs::INTERFACE_CHANGE_BEGIN => {
            let a: InterfaceChangeArgs = args(payload)?;
            only(a.flags, 0)?;
            d.change_begin()?;
            void()
        }
        procs::INTERFACE_CHANGE_COMMIT => {
            let a: InterfaceChangeArgs = args(payload)?;
            only(a.flags, 0)?;
            d.change_commit()?;
            void()
        }
        procs::INTERFACE_CHANGE_ROLLBACK => {
            let a: InterfaceChangeArgs = args(payload)?;
            only(a.flags, 0)?;
            d.change_rollback()?;
            void()
        }
        _ => Err(RemoteError::unknown_procedure(p)),
    }
}
