//! Network filter calls (procedures 175–181, 286, 397–401, 431), served by the nwfilter
//! driver.

use vireo_nwfilter::NwFilterDriver;
use vireo_proto::nwfilter::*;
use vireo_proto::remote::procs;
use vireo_proto::RemoteError;
use vireo_xdr::Array;

use super::{args, not_supported, ret, void, ProcResult, RemoteService};
use vireo_proto::family::Family;

pub(super) fn dispatch(s: &RemoteService, p: i32, payload: &[u8]) -> ProcResult {
    let d: &NwFilterDriver = s
        .nwfilter
        .as_deref()
        .ok_or_else(|| not_supported(s.role, Family::NwFilter))?;
    match p {
        procs::CONNECT_NUM_OF_NWFILTERS => ret(NumRet {
            num: d.names().len() as i32,
        }),
        procs::CONNECT_LIST_NWFILTERS => {
            let a: MaxNamesArgs = args(payload)?;
            if a.maxnames < 0 || a.maxnames as usize > NWFILTER_LIST_MAX {
                return Err(RemoteError::rpc(format!(
                    "maxnames {} out of range (0..{NWFILTER_LIST_MAX})",
                    a.maxnames
                )));
            }
            let mut names = d.names();
            names.truncate(a.maxnames as usize);
            ret(NamesRet {
                names: Array(names),
            })
        }
        procs::CONNECT_LIST_ALL_NWFILTERS => {
            let a: ListAllArgs = args(payload)?;
            let all = d.list_all(a.flags)?;
            let n = all.len() as u32;
            ret(ListAllNwFiltersRet {
                filters: Array(if a.need_results != 0 { all } else { Vec::new() }),
                ret: n,
            })
        }
        procs::NWFILTER_LOOKUP_BY_NAME => {
            let a: NameArgs = args(payload)?;
            ret(NwFilterRet {
                nwfilter: d.lookup_by_name(&a.name)?,
            })
        }
        procs::NWFILTER_LOOKUP_BY_UUID => {
            let a: UuidArgs = args(payload)?;
            ret(NwFilterRet {
                nwfilter: d.lookup_by_uuid(&a.uuid)?,
            })
        }
        procs::NWFILTER_DEFINE_XML => {
            let a: XmlArgs = args(payload)?;
            ret(NwFilterRet {
                nwfilter: d.define_xml(&a.xml, 0)?,
            })
        }
        procs::NWFILTER_DEFINE_XML_FLAGS => {
            let a: XmlFlagsArgs = args(payload)?;
            ret(NwFilterRet {
                nwfilter: d.define_xml(&a.xml, a.flags)?,
            })
        }
        procs::NWFILTER_UNDEFINE => {
            let a: NwFilterArgs = args(payload)?;
            d.undefine(&a.nwfilter)?;
            void()
        }
        procs::NWFILTER_GET_XML_DESC => {
            let a: NwFilterFlagsArgs = args(payload)?;
            ret(XmlRet {
                xml: d.xml_desc(&a.nwfilter, a.flags)?,
            })
        }
        procs::NWFILTER_BINDING_LOOKUP_BY_PORT_DEV => {
            let a: NameArgs = args(payload)?;
            ret(BindingRet {
                nwfilter: d.binding_lookup(&a.name)?,
            })
        }
        procs::NWFILTER_BINDING_CREATE_XML => {
            let a: XmlFlagsArgs = args(payload)?;
            ret(BindingRet {
                nwfilter: d.binding_create(&a.xml, a.flags)?,
            })
        }
        procs::NWFILTER_BINDING_DELETE => {
            let a: BindingArgs = args(payload)?;
            d.binding_delete(&a.nwfilter)?;
            void()
        }
        procs::NWFILTER_BINDING_GET_XML_DESC => {
            let a: BindingFlagsArgs = args(payload)?;
            ret(XmlRet {
                xml: d.binding_xml(&a.nwfilter, a.flags)?,
            })
        }
        procs::CONNECT_LIST_ALL_NWFILTER_BINDINGS => {
            let a: ListAllArgs = args(payload)?;
            let all = d.binding_list(a.flags)?;
            let n = all.len() as u32;
            ret(ListAllBindingsRet {
                bindings: Array(if a.need_results != 0 { all } else { Vec::new() }),
                ret: n,
            })
        }
        _ => Err(RemoteError::unknown_procedure(p)),
    }
}
