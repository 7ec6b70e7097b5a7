//! The storage calls of REMOTE_PROGRAM (pools 71–92, 154–155, 281, 391, 403; volumes
//! 93–100, 125, 165, 208–209, 259–260, 282, 378; events 368–373), in libvirt's field order.

use vireo_xdr::{xdr_struct, Array};

use crate::remote::Uuid;

/// libvirt's `REMOTE_STORAGE_POOL_LIST_MAX`.
pub const POOL_LIST_MAX: usize = 16384;
/// libvirt's `REMOTE_STORAGE_VOL_LIST_MAX`.
pub const VOL_LIST_MAX: usize = 16384;

xdr_struct! {
    /// A storage pool handle (`remote_nonnull_storage_pool`).
    pub struct Pool {
        pub name: String,
        pub uuid: Uuid,
    }
}

xdr_struct! {
    /// A storage volume handle (`remote_nonnull_storage_vol`): its pool's name, its name,
    /// its key (the path, for file-backed pools).
    pub struct Vol {
        pub pool: String,
        pub name: String,
        pub key: String,
    }
}

/// `virStoragePoolState`.
pub mod pool_state {
    pub const INACTIVE: u32 = 0;
    pub const BUILDING: u32 = 1;
    pub const RUNNING: u32 = 2;
    pub const DEGRADED: u32 = 3;
    pub const INACCESSIBLE: u32 = 4;
}

/// `virStorageVolType`.
pub mod vol_type {
    pub const FILE: i32 = 0;
    pub const BLOCK: i32 = 1;
    pub const DIR: i32 = 2;
    pub const NETWORK: i32 = 3;
    pub const NETDIR: i32 = 4;
    pub const PLOOP: i32 = 5;
}

/// `CONNECT_LIST_ALL_STORAGE_POOLS` filter flags.
pub mod pool_list_flags {
    pub const INACTIVE: u32 = 1 << 0;
    pub const ACTIVE: u32 = 1 << 1;
    pub const PERSISTENT: u32 = 1 << 2;
    pub const TRANSIENT: u32 = 1 << 3;
    pub const AUTOSTART: u32 = 1 << 4;
    pub const NO_AUTOSTART: u32 = 1 << 5;
    pub const DIR: u32 = 1 << 6;
    pub const FS: u32 = 1 << 7;
    pub const NETFS: u32 = 1 << 8;
    pub const LOGICAL: u32 = 1 << 9;
    pub const DISK: u32 = 1 << 10;
    pub const ISCSI: u32 = 1 << 11;
    pub const SCSI: u32 = 1 << 12;
    pub const MPATH: u32 = 1 << 13;
    pub const RBD: u32 = 1 << 14;
    pub const SHEEPDOG: u32 = 1 << 15;
    pub const GLUSTER: u32 = 1 << 16;
    pub const ZFS: u32 = 1 << 17;
    pub const VSTORAGE: u32 = 1 << 18;
    pub const ISCSI_DIRECT: u32 = 1 << 19;
}

/// `virStoragePoolBuildFlags`.
pub mod build_flags {
    pub const NEW: u32 = 0;
    pub const REPAIR: u32 = 1;
    pub const RESIZE: u32 = 2;
    pub const NO_OVERWRITE: u32 = 4;
    pub const OVERWRITE: u32 = 8;
}

/// `virStorageVolCreateFlags`.
pub mod vol_create_flags {
    pub const PREALLOC_METADATA: u32 = 1;
    pub const REFLINK: u32 = 2;
    pub const VALIDATE: u32 = 4;
}

/// `virStorageVolResizeFlags`.
pub mod resize_flags {
    pub const ALLOCATE: u32 = 1;
    pub const DELTA: u32 = 2;
    pub const SHRINK: u32 = 4;
}

/// `virStorageVolDeleteFlags`.
pub mod delete_flags {
    pub const ZEROED: u32 = 1;
    pub const WITH_SNAPSHOTS: u32 = 2;
}

/// `virStorageVolWipeAlgorithm`.
pub mod wipe_alg {
    pub const ZERO: u32 = 0;
    pub const NNSA: u32 = 1;
    pub const DOD: u32 = 2;
    pub const BSI: u32 = 3;
    pub const GUTMANN: u32 = 4;
    pub const SCHNEIER: u32 = 5;
    pub const PFITZNER7: u32 = 6;
    pub const PFITZNER33: u32 = 7;
    pub const RANDOM: u32 = 8;
    pub const TRIM: u32 = 9;
}

/// `VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM` / `..._DOWNLOAD_SPARSE_STREAM`.
pub const SPARSE_STREAM: u32 = 1;

/// `VIR_STORAGE_VOL_GET_PHYSICAL` (for GET_INFO_FLAGS).
pub const GET_PHYSICAL: u32 = 1;

/// `VIR_STORAGE_XML_INACTIVE` (pool XML as defined).
pub const XML_INACTIVE: u32 = 1;

/// Pool events (`virStoragePoolEventID`, `virStoragePoolEventLifecycleType`).
pub mod event {
    pub const ID_LIFECYCLE: i32 = 0;
    pub const ID_REFRESH: i32 = 1;
    pub const DEFINED: i32 = 0;
    pub const UNDEFINED: i32 = 1;
    pub const STARTED: i32 = 2;
    pub const STOPPED: i32 = 3;
    pub const CREATED: i32 = 4;
    pub const DELETED: i32 = 5;
}

xdr_struct! { pub struct NumRet { pub num: i32 } }
xdr_struct! { pub struct MaxNamesArgs { pub maxnames: i32 } }
xdr_struct! { pub struct PoolNamesRet { pub names: Array<String, POOL_LIST_MAX> } }
xdr_struct! {
    pub struct FindPoolSourcesArgs {
        pub type_: String,
        pub src_spec: Option<String>,
        pub flags: u32,
    }
}
xdr_struct! { pub struct XmlRet { pub xml: String } }
xdr_struct! { pub struct XmlFlagsArgs { pub xml: String, pub flags: u32 } }
xdr_struct! { pub struct PoolRet { pub pool: Pool } }
xdr_struct! { pub struct PoolArgs { pub pool: Pool } }
xdr_struct! { pub struct PoolFlagsArgs { pub pool: Pool, pub flags: u32 } }
xdr_struct! { pub struct NameArgs { pub name: String } }
xdr_struct! { pub struct UuidArgs { pub uuid: Uuid } }
xdr_struct! { pub struct VolArgs { pub vol: Vol } }
xdr_struct! { pub struct VolFlagsArgs { pub vol: Vol, pub flags: u32 } }
xdr_struct! { pub struct VolRet { pub vol: Vol } }
xdr_struct! {
    /// `remote_storage_pool_get_info_ret`: `state` is an unsigned char, sent as 4 bytes.
    pub struct PoolGetInfoRet {
        pub state: u32,
        pub capacity: u64,
        pub allocation: u64,
        pub available: u64,
    }
}
xdr_struct! { pub struct AutostartRet { pub autostart: i32 } }
xdr_struct! { pub struct PoolSetAutostartArgs { pub pool: Pool, pub autostart: i32 } }
xdr_struct! { pub struct ListVolumesArgs { pub pool: Pool, pub maxnames: i32 } }
xdr_struct! { pub struct VolNamesRet { pub names: Array<String, VOL_LIST_MAX> } }
xdr_struct! { pub struct VolCreateXmlArgs { pub pool: Pool, pub xml: String, pub flags: u32 } }
xdr_struct! {
    pub struct VolCreateXmlFromArgs {
        pub pool: Pool,
        pub xml: String,
        pub clonevol: Vol,
        pub flags: u32,
    }
}
xdr_struct! { pub struct VolLookupByNameArgs { pub pool: Pool, pub name: String } }
xdr_struct! { pub struct KeyArgs { pub key: String } }
xdr_struct! { pub struct PathArgs { pub path: String } }
xdr_struct! {
    /// `remote_storage_vol_get_info_ret`: `type` is a char, sent as 4 bytes.
    pub struct VolGetInfoRet {
        pub type_: i32,
        pub capacity: u64,
        pub allocation: u64,
    }
}
xdr_struct! { pub struct VolGetPathRet { pub name: String } }
xdr_struct! { pub struct ActiveRet { pub active: i32 } }
xdr_struct! { pub struct PersistentRet { pub persistent: i32 } }
xdr_struct! {
    /// Upload and download: a range of the volume, and flags.
    pub struct VolTransferArgs {
        pub vol: Vol,
        pub offset: u64,
        pub length: u64,
        pub flags: u32,
    }
}
xdr_struct! { pub struct VolWipePatternArgs { pub vol: Vol, pub algorithm: u32, pub flags: u32 } }
xdr_struct! { pub struct VolResizeArgs { pub vol: Vol, pub capacity: u64, pub flags: u32 } }
xdr_struct! { pub struct ListAllPoolsArgs { pub need_results: i32, pub flags: u32 } }
xdr_struct! {
    pub struct ListAllPoolsRet {
        pub pools: Array<Pool, POOL_LIST_MAX>,
        pub ret: u32,
    }
}
xdr_struct! { pub struct ListAllVolumesArgs { pub pool: Pool, pub need_results: i32, pub flags: u32 } }
xdr_struct! {
    pub struct ListAllVolumesRet {
        pub vols: Array<Vol, VOL_LIST_MAX>,
        pub ret: u32,
    }
}
xdr_struct! { pub struct FlagsArgs { pub flags: u32 } }
xdr_struct! { pub struct CapabilitiesRet { pub capabilities: String } }
xdr_struct! {
    pub struct PoolEventRegisterAnyArgs {
        pub event_id: i32,
        pub pool: Option<Pool>,
    }
}
xdr_struct! {
    /// Procedure 370, after the callback id.
    pub struct PoolEventLifecycleBody {
        pub pool: Pool,
        pub event: i32,
        pub detail: i32,
    }
}
xdr_struct! {
    /// Procedure 373, after the callback id.
    pub struct PoolEventRefreshBody { pub pool: Pool }
}
