//! Secret calls (procedures 139–147 and 287), served by the secret driver. Event
//! registration (380/381) is in `events.rs`, with the other object events.

use std::sync::Arc;

use vireo_proto::remote::procs;
use vireo_proto::secret::*;
use vireo_proto::RemoteError;
use vireo_secret::SecretDriver;
use vireo_xdr::{Array, Opaque};
use vireo_xml::format_uuid;

use super::{args, not_supported, ret, void, ProcResult, RemoteClient, RemoteService};
use vireo_proto::family::Family;

pub(super) fn dispatch(
    s: &RemoteService,
    client: &Arc<RemoteClient>,
    p: i32,
    payload: &[u8],
) -> ProcResult {
    let d: &SecretDriver = s
        .secret
        .as_deref()
        .ok_or_else(|| not_supported(s.role, Family::Secret))?;
    match p {
        procs::SECRET_DEFINE_XML => {
            let a: SecretDefineXmlArgs = args(payload)?;
            ret(SecretRet {
                secret: d.define_xml(&a.xml, a.flags)?,
            })
        }
        procs::SECRET_UNDEFINE => {
            let a: SecretArgs = args(payload)?;
            d.undefine(&a.secret)?;
            void()
        }
        procs::SECRET_LOOKUP_BY_UUID => {
            let a: SecretLookupByUuidArgs = args(payload)?;
            ret(SecretRet {
                secret: d.lookup_by_uuid(&a.uuid)?,
            })
        }
        procs::SECRET_LOOKUP_BY_USAGE => {
            let a: SecretLookupByUsageArgs = args(payload)?;
            ret(SecretRet {
                secret: d.lookup_by_usage(a.usage_type, &a.usage_id)?,
            })
        }
        procs::SECRET_GET_XML_DESC => {
            let a: SecretFlagsArgs = args(payload)?;
            ret(SecretGetXmlDescRet {
                xml: d.xml_desc(&a.secret, a.flags)?,
            })
        }
        procs::SECRET_SET_VALUE => {
            let a: SecretSetValueArgs = args(payload)?;
            d.set_value(&a.secret, &a.value.0, a.flags)?;
            void()
        }
        procs::SECRET_GET_VALUE => {
            let a: SecretFlagsArgs = args(payload)?;
            let internal = client.data.lock().internal;
            let v = d.get_value(&a.secret, a.flags, internal)?;
            ret(SecretGetValueRet {
                value: Opaque(v.to_vec()),
            })
        }
        procs::CONNECT_NUM_OF_SECRETS => ret(ConnectNumOfSecretsRet {
            num: d.count() as i32,
        }),
        procs::CONNECT_LIST_SECRETS => {
            let a: ConnectListSecretsArgs = args(payload)?;
            if a.maxuuids < 0 || a.maxuuids as usize > SECRET_LIST_MAX {
                return Err(RemoteError::rpc(format!(
                    "maxuuids {} out of range (0..{SECRET_LIST_MAX})",
                    a.maxuuids
                )));
            }
            let uuids = d
                .list_all(0)?
                .iter()
                .take(a.maxuuids as usize)
                .map(|h| format_uuid(&h.uuid))
                .collect();
            ret(ConnectListSecretsRet {
                uuids: Array(uuids),
            })
        }
        procs::CONNECT_LIST_ALL_SECRETS => {
            let a: ConnectListAllSecretsArgs = args(payload)?;
            let all = d.list_all(a.flags)?;
            let n = all.len() as u32;
            ret(ConnectListAllSecretsRet {
                secrets: Array(if a.need_results != 0 { all } else { Vec::new() }),
                ret: n,
            })
        }
        _ => Err(RemoteError::unknown_procedure(p)),
    }
}

/// Secret calls that write to the disk.
pub(super) fn blocks(p: i32) -> bool {
    matches!(
        p,
        procs::SECRET_DEFINE_XML | procs::SECRET_UNDEFINE | procs::SECRET_SET_VALUE
    )
}
