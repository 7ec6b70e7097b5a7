//! Domain calls: define/undefine, lookups, listings, XML, info, state, autostart.

use vireo_driver::DriverError;
use vireo_proto::remote::*;
use vireo_proto::RemoteError;
use vireo_xdr::{Array, CharArray};

/// `VIR_DOMAIN_XML_SECURE`.
const XML_SECURE: u32 = 1;

use super::{args, ret, void, ProcResult, RemoteService};

/// Serves a domain call; any procedure not served anywhere ends here as "unknown procedure".
pub(super) fn dispatch(s: &RemoteService, p: i32, payload: &[u8], readonly: bool) -> ProcResult {
    let q = s.hv()?;
    // Each arm decodes its arguments, asks the driver, and encodes the reply.
    match p {
        procs::DOMAIN_DEFINE_XML => {
            let a: DomainDefineXmlArgs = args(payload)?;
            ret(DomainRet {
                dom: q.define_xml(&a.xml)?,
            })
        }
        procs::DOMAIN_DEFINE_XML_FLAGS => {
            let a: DomainDefineXmlFlagsArgs = args(payload)?;
            ret(DomainRet {
                dom: q.define_xml_flags(&a.xml, a.flags)?,
            })
        }
        procs::DOMAIN_UNDEFINE => {
            let a: DomainArgs = args(payload)?;
            q.undefine(&a.dom, 0)?;
            void()
        }
        procs::DOMAIN_UNDEFINE_FLAGS => {
            let a: DomainFlagsArgs = args(payload)?;
            // MANAGED_SAVE 1 removes the managed save image. SNAPSHOTS_METADATA 2, NVRAM 4,
            // KEEP_NVRAM 8, CHECKPOINTS_METADATA 16, TPM 32, KEEP_TPM 64: none of those
            // exist here, so removing or keeping them is the same.
            check_flags(a.flags, 0x7f)?;
            q.undefine(&a.dom, a.flags)?;
            void()
        }
        procs::DOMAIN_LOOKUP_BY_NAME => {
            let a: DomainLookupByNameArgs = args(payload)?;
            ret(DomainRet {
                dom: q.lookup_by_name(&a.name)?,
            })
        }
        procs::DOMAIN_LOOKUP_BY_UUID => {
            let a: DomainLookupByUuidArgs = args(payload)?;
            ret(DomainRet {
                dom: q.lookup_by_uuid(&a.uuid)?,
            })
        }
        procs::DOMAIN_LOOKUP_BY_ID => {
            let a: DomainLookupByIdArgs = args(payload)?;
            ret(DomainRet {
                dom: q.lookup_by_id(a.id)?,
            })
        }
        procs::CONNECT_LIST_ALL_DOMAINS => {
            let a: ConnectListAllDomainsArgs = args(payload)?;
            // ACTIVE … NO_CHECKPOINT (`VIR_CONNECT_LIST_DOMAINS_*`).
            check_flags(a.flags, 0xffff)?;
            let doms = q.list_all(a.flags);
            let n = doms.len() as u32;
            if doms.len() > DOMAIN_LIST_MAX {
                return Err(RemoteError::rpc(format!(
                    "too many domains '{}' for limit '{DOMAIN_LIST_MAX}'",
                    doms.len()
                )));
            }
            ret(ConnectListAllDomainsRet {
                domains: Array(if a.need_results != 0 {
                    doms
                } else {
                    Vec::new()
                }),
                ret: n,
            })
        }
        procs::CONNECT_NUM_OF_DOMAINS => ret(ConnectNumOfDomainsRet {
            num: q.active_ids().len() as i32,
        }),
        procs::CONNECT_LIST_DOMAINS => {
            let a: ConnectListDomainsArgs = args(payload)?;
            let max = check_max(a.maxids)?;
            let mut ids = q.active_ids();
            ids.truncate(max);
            ret(ConnectListDomainsRet { ids: Array(ids) })
        }
        procs::CONNECT_NUM_OF_DEFINED_DOMAINS => ret(ConnectNumOfDomainsRet {
            num: q.inactive_names().len() as i32,
        }),
        procs::CONNECT_LIST_DEFINED_DOMAINS => {
            let a: ConnectListDefinedDomainsArgs = args(payload)?;
            let max = check_max(a.maxnames)?;
            let mut names = q.inactive_names();
            names.truncate(max);
            ret(ConnectListDefinedDomainsRet {
                names: Array(names),
            })
        }
        procs::DOMAIN_GET_XML_DESC => {
            let a: DomainFlagsArgs = args(payload)?;
            // SECURE 1 adds passwords; INACTIVE 2, UPDATE_CPU 4 and MIGRATABLE 8 all give
            // the stored definition while no VM runs.
            check_flags(a.flags, 0xf)?;
            let secure = a.flags & XML_SECURE != 0;
            if secure && readonly {
                return Err(DriverError::OperationDenied(
                    "virDomainGetXMLDesc with secure flag".into(),
                )
                .into());
            }
            ret(DomainGetXmlDescRet {
                xml: q.xml_desc(&a.dom, secure)?,
            })
        }
        procs::DOMAIN_GET_INFO => {
            let a: DomainArgs = args(payload)?;
            let i = q.info(&a.dom)?;
            ret(DomainGetInfoRet {
                state: i.state as u32,
                max_mem: i.max_mem_kib,
                memory: i.memory_kib,
                nr_virt_cpu: i.vcpus,
                cpu_time: i.cpu_time_ns,
            })
        }
        procs::DOMAIN_GET_STATE => {
            let a: DomainFlagsArgs = args(payload)?;
            check_flags(a.flags, 0)?;
            let (state, reason) = q.state(&a.dom)?;
            ret(DomainGetStateRet { state, reason })
        }
        procs::DOMAIN_GET_OS_TYPE => {
            let a: DomainArgs = args(payload)?;
            ret(DomainGetOsTypeRet {
                type_: q.os_type(&a.dom)?,
            })
        }
        procs::DOMAIN_GET_MAX_MEMORY => {
            let a: DomainArgs = args(payload)?;
            ret(DomainGetMaxMemoryRet {
                memory: q.max_memory(&a.dom)?,
            })
        }
        procs::DOMAIN_GET_MAX_VCPUS => {
            let a: DomainArgs = args(payload)?;
            ret(DomainGetMaxVcpusRet {
                num: q.vcpus(&a.dom)? as i32,
            })
        }
        procs::DOMAIN_GET_VCPUS_FLAGS => {
            let a: DomainFlagsArgs = args(payload)?;
            // LIVE 1, CONFIG 2, MAXIMUM 4 (the running guest's counts come from its shim).
            check_flags(a.flags, 7)?;
            if a.flags & affect::LIVE != 0 {
                return Err(DriverError::OperationInvalid("domain is not running".into()).into());
            }
            let num = if a.flags & VCPU_MAXIMUM != 0 {
                q.vcpus(&a.dom)?
            } else {
                q.current_vcpus(&a.dom)?
            };
            ret(DomainGetVcpusFlagsRet { num: num as i32 })
        }
        procs::DOMAIN_GET_AUTOSTART => {
            let a: DomainArgs = args(payload)?;
            ret(DomainGetAutostartRet {
                autostart: q.autostart(&a.dom)? as i32,
            })
        }
        procs::DOMAIN_SET_AUTOSTART => {
            let a: DomainSetAutostartArgs = args(payload)?;
            q.set_autostart(&a.dom, a.autostart != 0)?;
            void()
        }
        procs::DOMAIN_IS_ACTIVE => {
            let a: DomainArgs = args(payload)?;
            ret(DomainIsActiveRet {
                active: q.is_active(&a.dom)? as i32,
            })
        }
        procs::DOMAIN_IS_PERSISTENT => {
            let a: DomainArgs = args(payload)?;
            ret(DomainIsPersistentRet {
                persistent: q.is_persistent(&a.dom)? as i32,
            })
        }
        procs::DOMAIN_IS_UPDATED => {
            let a: DomainArgs = args(payload)?;
            q.is_active(&a.dom)?;
            ret(DomainIsUpdatedRet { updated: 0 })
        }
        procs::DOMAIN_HAS_MANAGED_SAVE_IMAGE => {
            let a: DomainFlagsArgs = args(payload)?;
            check_flags(a.flags, 0)?;
            ret(DomainHasManagedSaveImageRet {
                result: q.has_managed_save(&a.dom)? as i32,
            })
        }
        procs::DOMAIN_MANAGED_SAVE_REMOVE => {
            let a: DomainFlagsArgs = args(payload)?;
            check_flags(a.flags, 0)?;
            q.managed_save_remove(&a.dom)?;
            void()
        }
        procs::DOMAIN_MANAGED_SAVE_GET_XML_DESC => {
            let a: DomainFlagsArgs = args(payload)?;
            // VIR_DOMAIN_SAVE_IMAGE_XML_SECURE (1): the passwords too, not read-only.
            if a.flags & 1 != 0 && readonly {
                return Err(DriverError::OperationDenied(
                    "virDomainManagedSaveGetXMLDesc with secure flag".into(),
                )
                .into());
            }
            ret(DomainGetXmlDescRet {
                xml: q.managed_save_xml(&a.dom, a.flags)?,
            })
        }
        procs::DOMAIN_MANAGED_SAVE_DEFINE_XML => {
            let a: DomainManagedSaveDefineXmlArgs = args(payload)?;
            q.managed_save_define(&a.dom, a.dxml.as_deref().unwrap_or(""), a.flags)?;
            void()
        }
        procs::DOMAIN_SAVE_IMAGE_GET_XML_DESC => {
            let a: DomainSaveImageGetXmlDescArgs = args(payload)?;
            ret(DomainSaveImageGetXmlDescRet {
                xml: q.save_image_xml(&a.file, a.flags)?,
            })
        }
        procs::DOMAIN_SAVE_IMAGE_DEFINE_XML => {
            let a: DomainSaveImageDefineXmlArgs = args(payload)?;
            q.save_image_define(&a.file, &a.dxml, a.flags)?;
            void()
        }
        procs::DOMAIN_GET_SECURITY_LABEL => {
            let a: DomainArgs = args(payload)?;
            q.is_active(&a.dom)?;
            ret(DomainGetSecurityLabelRet {
                label: CharArray(String::new()),
                enforcing: 0,
            })
        }
        _ => Err(RemoteError::unknown_procedure(p)),
    }
}

/// libvirt rejects flags it does not know with VIR_ERR_INVALID_ARG.
pub(super) fn check_flags(flags: u32, known: u32) -> Result<(), RemoteError> {
    if flags & !known != 0 {
        return Err(
            DriverError::InvalidArg(format!("unsupported flags (0x{:x})", flags & !known)).into(),
        );
    }
    Ok(())
}

fn check_max(n: i32) -> Result<usize, RemoteError> {
    if n < 0 || n as usize > DOMAIN_LIST_MAX {
        return Err(RemoteError::rpc(format!(
            "maximum {n} out of range (0..{DOMAIN_LIST_MAX})"
        )));
    }
    Ok(n as usize)
}
