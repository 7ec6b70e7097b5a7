//! Storage calls (pools and volumes), served by the storage driver. Pool event
//! registration (368/369) is in `events.rs`; uploads and downloads in `transfer.rs`.

use vireo_proto::family::Family;
use vireo_proto::remote::procs;
use vireo_proto::storage::*;
use vireo_proto::RemoteError;
use vireo_storage::StorageDriver;
use vireo_xdr::Array;

use super::{args, not_supported, ret, void, ProcResult, RemoteService};

pub(super) fn driver(s: &RemoteService) -> Result<&StorageDriver, RemoteError> {
    s.storage
        .as_deref()
        .ok_or_else(|| not_supported(s.role, Family::Storage))
}

fn check_max(n: i32, max: usize) -> Result<usize, RemoteError> {
    if n < 0 || n as usize > max {
        return Err(RemoteError::rpc(format!(
            "maxnames {n} out of range (0..{max})"
        )));
    }
    Ok(n as usize)
}

pub(super) fn dispatch(s: &RemoteService, p: i32, payload: &[u8]) -> ProcResult {
    let d = driver(s)?;
    match p {
        // Pools.
        procs::CONNECT_NUM_OF_STORAGE_POOLS | procs::CONNECT_NUM_OF_DEFINED_STORAGE_POOLS => {
            ret(NumRet {
                num: d.num_of_pools(p == procs::CONNECT_NUM_OF_STORAGE_POOLS) as i32,
            })
        }
        procs::CONNECT_LIST_STORAGE_POOLS | procs::CONNECT_LIST_DEFINED_STORAGE_POOLS => {
            let a: MaxNamesArgs = args(payload)?;
            let max = check_max(a.maxnames, POOL_LIST_MAX)?;
            let mut names = d.pool_names(p == procs::CONNECT_LIST_STORAGE_POOLS);
            names.truncate(max);
            ret(PoolNamesRet {
                names: Array(names),
            })
        }
        procs::CONNECT_LIST_ALL_STORAGE_POOLS => {
            let a: ListAllPoolsArgs = args(payload)?;
            let pools = d.list_all(a.flags)?;
            let n = pools.len() as u32;
            ret(ListAllPoolsRet {
                pools: Array(if a.need_results != 0 {
                    pools
                } else {
                    Vec::new()
                }),
                ret: n,
            })
        }
        procs::STORAGE_POOL_DEFINE_XML => {
            let a: XmlFlagsArgs = args(payload)?;
            ret(PoolRet {
                pool: d.define_xml(&a.xml, a.flags)?,
            })
        }
        procs::STORAGE_POOL_CREATE_XML => {
            let a: XmlFlagsArgs = args(payload)?;
            ret(PoolRet {
                pool: d.create_xml(&a.xml, a.flags)?,
            })
        }
        procs::STORAGE_POOL_CREATE => {
            let a: PoolFlagsArgs = args(payload)?;
            d.create(&a.pool, a.flags)?;
            void()
        }
        procs::STORAGE_POOL_BUILD => {
            let a: PoolFlagsArgs = args(payload)?;
            d.build(&a.pool, a.flags)?;
            void()
        }
        procs::STORAGE_POOL_DESTROY => {
            let a: PoolArgs = args(payload)?;
            d.destroy(&a.pool)?;
            void()
        }
        procs::STORAGE_POOL_DELETE => {
            let a: PoolFlagsArgs = args(payload)?;
            d.delete(&a.pool, a.flags)?;
            void()
        }
        procs::STORAGE_POOL_UNDEFINE => {
            let a: PoolArgs = args(payload)?;
            d.undefine(&a.pool)?;
            void()
        }
        procs::STORAGE_POOL_REFRESH => {
            let a: PoolFlagsArgs = args(payload)?;
            d.refresh(&a.pool, a.flags)?;
            void()
        }
        procs::STORAGE_POOL_LOOKUP_BY_NAME => {
            let a: NameArgs = args(payload)?;
            ret(PoolRet {
                pool: d.lookup_by_name(&a.name)?,
            })
        }
        procs::STORAGE_POOL_LOOKUP_BY_UUID => {
            let a: UuidArgs = args(payload)?;
            ret(PoolRet {
                pool: d.lookup_by_uuid(&a.uuid)?,
            })
        }
        procs::STORAGE_POOL_LOOKUP_BY_VOLUME => {
            let a: VolArgs = args(payload)?;
            ret(PoolRet {
                pool: d.pool_lookup_by_volume(&a.vol)?,
            })
        }
        procs::STORAGE_POOL_LOOKUP_BY_TARGET_PATH => {
            let a: PathArgs = args(payload)?;
            ret(PoolRet {
                pool: d.lookup_by_target_path(&a.path)?,
            })
        }
        procs::STORAGE_POOL_GET_INFO => {
            let a: PoolArgs = args(payload)?;
            let i = d.info(&a.pool)?;
            ret(PoolGetInfoRet {
                state: i.state,
                capacity: i.capacity,
                allocation: i.allocation,
                available: i.available,
            })
        }
        procs::STORAGE_POOL_GET_XML_DESC => {
            let a: PoolFlagsArgs = args(payload)?;
            ret(XmlRet {
                xml: d.xml_desc(&a.pool, a.flags)?,
            })
        }
        procs::STORAGE_POOL_GET_AUTOSTART => {
            let a: PoolArgs = args(payload)?;
            ret(AutostartRet {
                autostart: d.autostart_of(&a.pool)? as i32,
            })
        }
        procs::STORAGE_POOL_SET_AUTOSTART => {
            let a: PoolSetAutostartArgs = args(payload)?;
            d.set_autostart(&a.pool, a.autostart != 0)?;
            void()
        }
        procs::STORAGE_POOL_IS_ACTIVE => {
            let a: PoolArgs = args(payload)?;
            ret(ActiveRet {
                active: d.is_active(&a.pool)? as i32,
            })
        }
        procs::STORAGE_POOL_IS_PERSISTENT => {
            let a: PoolArgs = args(payload)?;
            ret(PersistentRet {
                persistent: d.is_persistent(&a.pool)? as i32,
            })
        }
        procs::STORAGE_POOL_NUM_OF_VOLUMES => {
            let a: PoolArgs = args(payload)?;
            ret(NumRet {
                num: d.list_volumes(&a.pool)?.len() as i32,
            })
        }
        procs::STORAGE_POOL_LIST_VOLUMES => {
            let a: ListVolumesArgs = args(payload)?;
            let max = check_max(a.maxnames, VOL_LIST_MAX)?;
            let names = d
                .list_volumes(&a.pool)?
                .into_iter()
                .take(max)
                .map(|v| v.name)
                .collect();
            ret(VolNamesRet {
                names: Array(names),
            })
        }
        procs::STORAGE_POOL_LIST_ALL_VOLUMES => {
            let a: ListAllVolumesArgs = args(payload)?;
            if a.flags != 0 {
                return Err(RemoteError::from(vireo_storage::StorageError::InvalidArg(
                    format!("unsupported flags (0x{:x})", a.flags),
                )));
            }
            let vols = d.list_volumes(&a.pool)?;
            let n = vols.len() as u32;
            ret(ListAllVolumesRet {
                vols: Array(if a.need_results != 0 {
                    vols
                } else {
                    Vec::new()
                }),
                ret: n,
            })
        }
        procs::CONNECT_FIND_STORAGE_POOL_SOURCES => {
            let a: FindPoolSourcesArgs = args(payload)?;
            ret(XmlRet {
                xml: d.find_pool_sources(&a.type_, a.src_spec.as_deref(), a.flags)?,
            })
        }
        procs::CONNECT_GET_STORAGE_POOL_CAPABILITIES => {
            let a: FlagsArgs = args(payload)?;
            ret(CapabilitiesRet {
                capabilities: d.capabilities(a.flags)?,
            })
        }
        // Volumes.
        procs::STORAGE_VOL_CREATE_XML => {
            let a: VolCreateXmlArgs = args(payload)?;
            ret(VolRet {
                vol: d.vol_create_xml(&a.pool, &a.xml, a.flags)?,
            })
        }
        procs::STORAGE_VOL_CREATE_XML_FROM => {
            let a: VolCreateXmlFromArgs = args(payload)?;
            ret(VolRet {
                vol: d.vol_create_xml_from(&a.pool, &a.xml, &a.clonevol, a.flags)?,
            })
        }
        procs::STORAGE_VOL_DELETE => {
            let a: VolFlagsArgs = args(payload)?;
            d.vol_delete(&a.vol, a.flags)?;
            void()
        }
        procs::STORAGE_VOL_WIPE => {
            let a: VolFlagsArgs = args(payload)?;
            d.vol_wipe(&a.vol, wipe_alg::ZERO, a.flags)?;
            void()
        }
        procs::STORAGE_VOL_WIPE_PATTERN => {
            let a: VolWipePatternArgs = args(payload)?;
            d.vol_wipe(&a.vol, a.algorithm, a.flags)?;
            void()
        }
        procs::STORAGE_VOL_RESIZE => {
            let a: VolResizeArgs = args(payload)?;
            d.vol_resize(&a.vol, a.capacity, a.flags)?;
            void()
        }
        procs::STORAGE_VOL_LOOKUP_BY_NAME => {
            let a: VolLookupByNameArgs = args(payload)?;
            ret(VolRet {
                vol: d.vol_lookup_by_name(&a.pool, &a.name)?,
            })
        }
        procs::STORAGE_VOL_LOOKUP_BY_KEY => {
            let a: KeyArgs = args(payload)?;
            ret(VolRet {
                vol: d.vol_lookup_by_key(&a.key)?,
            })
        }
        procs::STORAGE_VOL_LOOKUP_BY_PATH => {
            let a: PathArgs = args(payload)?;
            ret(VolRet {
                vol: d.vol_lookup_by_path(&a.path)?,
            })
        }
        procs::STORAGE_VOL_GET_INFO => {
            let a: VolArgs = args(payload)?;
            let (type_, capacity, allocation) = d.vol_info(&a.vol, 0)?;
            ret(VolGetInfoRet {
                type_,
                capacity,
                allocation,
            })
        }
        procs::STORAGE_VOL_GET_INFO_FLAGS => {
            let a: VolFlagsArgs = args(payload)?;
            let (type_, capacity, allocation) = d.vol_info(&a.vol, a.flags)?;
            ret(VolGetInfoRet {
                type_,
                capacity,
                allocation,
            })
        }
        procs::STORAGE_VOL_GET_XML_DESC => {
            let a: VolFlagsArgs = args(payload)?;
            ret(XmlRet {
                xml: d.vol_xml_desc(&a.vol, a.flags)?,
            })
        }
        procs::STORAGE_VOL_GET_PATH => {
            let a: VolArgs = args(payload)?;
            ret(VolGetPathRet {
                name: d.vol_path(&a.vol)?,
            })
        }
        _ => Err(RemoteError::unknown_procedure(p)),
    }
}
