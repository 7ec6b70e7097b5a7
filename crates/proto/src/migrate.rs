//! Live migration: the arguments and replies of libvirt's migration protocol version 3 with
//! typed parameters (Begin3 / Prepare3 / PrepareTunnel3 / Perform3 / Finish3 / Confirm3
//! `…_PARAMS`, procedures 302–307), the migration tuning calls (max downtime, max speed,
//! post-copy), the migration events, and the names of the flags and parameters. Field
//! orders are libvirt's; the cookies are opaque to clients (Vireo's are its own).

use vireo_xdr::{xdr_struct, Array, Opaque};

use crate::remote::Domain;
use crate::typed::TypedParam;

/// Most typed parameters one migration call carries (`REMOTE_DOMAIN_MIGRATE_PARAM_LIST_MAX`).
pub const PARAM_LIST_MAX: usize = 64;
/// Largest cookie (`REMOTE_MIGRATE_COOKIE_MAX`).
pub const COOKIE_MAX: usize = 4 << 20;
/// Most statistics a job-completed event carries (`REMOTE_DOMAIN_JOB_STATS_MAX`).
pub const JOB_STATS_MAX: usize = 64;

pub type Params = Array<TypedParam, PARAM_LIST_MAX>;
pub type Cookie = Opaque<COOKIE_MAX>;

/// `virDomainMigrateFlags`.
pub mod flags {
    pub const LIVE: u32 = 1;
    pub const PEER2PEER: u32 = 2;
    pub const TUNNELLED: u32 = 4;
    pub const PERSIST_DEST: u32 = 8;
    pub const UNDEFINE_SOURCE: u32 = 16;
    pub const PAUSED: u32 = 32;
    pub const NON_SHARED_DISK: u32 = 64;
    pub const NON_SHARED_INC: u32 = 128;
    pub const CHANGE_PROTECTION: u32 = 256;
    pub const UNSAFE: u32 = 512;
    pub const OFFLINE: u32 = 1024;
    pub const COMPRESSED: u32 = 2048;
    pub const ABORT_ON_ERROR: u32 = 4096;
    pub const AUTO_CONVERGE: u32 = 8192;
    pub const RDMA_PIN_ALL: u32 = 16384;
    pub const POSTCOPY: u32 = 32768;
    pub const TLS: u32 = 65536;
    pub const PARALLEL: u32 = 131072;
    pub const NON_SHARED_SYNCHRONOUS_WRITES: u32 = 262144;
    pub const POSTCOPY_RESUME: u32 = 524288;
    pub const ZEROCOPY: u32 = 1048576;
}

/// `VIR_MIGRATE_PARAM_*`: the typed parameters' names.
pub mod param {
    pub const URI: &str = "migrate_uri";
    pub const DEST_NAME: &str = "destination_name";
    pub const DEST_XML: &str = "destination_xml";
    pub const PERSIST_XML: &str = "persistent_xml";
    pub const BANDWIDTH: &str = "bandwidth";
    pub const BANDWIDTH_POSTCOPY: &str = "bandwidth.postcopy";
    pub const GRAPHICS_URI: &str = "graphics_uri";
    pub const LISTEN_ADDRESS: &str = "listen_address";
    pub const MIGRATE_DISKS: &str = "migrate_disks";
    pub const DISKS_PORT: &str = "disks_port";
    pub const DISKS_URI: &str = "disks_uri";
    pub const COMPRESSION: &str = "compression";
    pub const AUTO_CONVERGE_INITIAL: &str = "auto_converge.initial";
    pub const AUTO_CONVERGE_INCREMENT: &str = "auto_converge.increment";
    pub const PARALLEL_CONNECTIONS: &str = "parallel.connections";
    pub const TLS_DESTINATION: &str = "tls.destination";
}

/// `VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY`.
pub const MAX_SPEED_POSTCOPY: u32 = 1;

/// The lifecycle event details, state reasons, job operations and event id of migration.
pub mod event {
    pub const ID_MIGRATION_ITERATION: i32 = 20;
    pub const ID_JOB_COMPLETED: i32 = 21;
    pub const STARTED_MIGRATED: i32 = 1;
    pub const SUSPENDED_MIGRATED: i32 = 1;
    pub const SUSPENDED_POSTCOPY: i32 = 7;
    pub const RESUMED_MIGRATED: i32 = 1;
    pub const RESUMED_POSTCOPY: i32 = 3;
    pub const STOPPED_MIGRATED: i32 = 3;
}

/// `virDomainState` reasons of migration.
pub mod reason {
    pub const RUNNING_MIGRATED: i32 = 2;
    pub const RUNNING_MIGRATION_CANCELED: i32 = 6;
    pub const RUNNING_POSTCOPY: i32 = 10;
    pub const PAUSED_MIGRATION: i32 = 2;
    pub const PAUSED_POSTCOPY: i32 = 12;
    pub const SHUTOFF_MIGRATED: i32 = 4;
}

/// `VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN` / `_OUT`.
pub const OPERATION_MIGRATION_IN: i32 = 4;
pub const OPERATION_MIGRATION_OUT: i32 = 5;

xdr_struct! {
    pub struct Begin3ParamsArgs {
        pub dom: Domain,
        pub params: Params,
        pub flags: u32,
    }
}

xdr_struct! {
    pub struct Begin3ParamsRet {
        pub cookie_out: Cookie,
        pub xml: String,
    }
}

xdr_struct! {
    /// PREPARE3_PARAMS and PREPARE_TUNNEL3_PARAMS.
    pub struct Prepare3ParamsArgs {
        pub params: Params,
        pub cookie_in: Cookie,
        pub flags: u32,
    }
}

xdr_struct! {
    pub struct Prepare3ParamsRet {
        pub cookie_out: Cookie,
        pub uri_out: Option<String>,
    }
}

xdr_struct! {
    /// PERFORM3_PARAMS and PREPARE_TUNNEL3_PARAMS.
    pub struct CookieRet {
        pub cookie_out: Cookie,
    }
}

xdr_struct! {
    pub struct Perform3ParamsArgs {
        pub dom: Domain,
        pub dconnuri: Option<String>,
        pub params: Params,
        pub cookie_in: Cookie,
        pub flags: u32,
    }
}

xdr_struct! {
    pub struct Finish3ParamsArgs {
        pub params: Params,
        pub cookie_in: Cookie,
        pub flags: u32,
        pub cancelled: i32,
    }
}

xdr_struct! {
    pub struct Finish3ParamsRet {
        pub dom: Domain,
        pub cookie_out: Cookie,
    }
}

xdr_struct! {
    pub struct Confirm3ParamsArgs {
        pub dom: Domain,
        pub params: Params,
        pub cookie_in: Cookie,
        pub flags: u32,
        pub cancelled: i32,
    }
}

xdr_struct! {
    /// MIGRATE_SET_MAX_DOWNTIME: milliseconds.
    pub struct SetMaxDowntimeArgs {
        pub dom: Domain,
        pub downtime: u64,
        pub flags: u32,
    }
}

xdr_struct! {
    pub struct GetMaxDowntimeRet {
        pub downtime: u64,
    }
}

xdr_struct! {
    /// MIGRATE_SET_MAX_SPEED: MiB/s.
    pub struct SetMaxSpeedArgs {
        pub dom: Domain,
        pub bandwidth: u64,
        pub flags: u32,
    }
}

xdr_struct! {
    pub struct GetMaxSpeedRet {
        pub bandwidth: u64,
    }
}

xdr_struct! {
    /// `DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION`.
    pub struct IterationMsg {
        pub callback_id: i32,
        pub dom: Domain,
        pub iteration: i32,
    }
}

xdr_struct! {
    /// `DOMAIN_EVENT_CALLBACK_JOB_COMPLETED`.
    pub struct JobCompletedMsg {
        pub callback_id: i32,
        pub dom: Domain,
        pub params: Array<TypedParam, JOB_STATS_MAX>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::typed::{TypedParam, TypedValue};

    #[test]
    fn perform_args_round_trip_in_libvirt_order() {
        let a = Perform3ParamsArgs {
            dom: Domain {
                name: "vm1".into(),
                uuid: [7; 16],
                id: 3,
            },
            dconnuri: Some("qemu+tls://b/system".into()),
            params: Array(vec![TypedParam::new(
                param::URI,
                TypedValue::String("tcp:10.0.0.2:49152".into()),
            )]),
            cookie_in: Opaque(b"<c/>".to_vec()),
            flags: flags::LIVE | flags::PEER2PEER,
        };
        let bytes = vireo_xdr::to_bytes(&a);
        // The domain first, then the optional URI (present: 1, then the string).
        assert_eq!(&bytes[..8], &[0, 0, 0, 3, b'v', b'm', b'1', 0]);
        assert_eq!(&bytes[8 + 16 + 4..8 + 16 + 8], &[0, 0, 0, 1]);
        let back: Perform3ParamsArgs = vireo_xdr::from_bytes(&bytes).unwrap();
        assert_eq!(back.dconnuri.as_deref(), Some("qemu+tls://b/system"));
        assert_eq!(back.params.0.len(), 1);
        assert_eq!(back.flags, 3);
    }

    #[test]
    fn too_many_params_are_refused_before_allocating() {
        // A count of 65 parameters: over the limit, refused by the decoder.
        let mut bytes = vireo_xdr::to_bytes(&Domain::default());
        bytes.extend_from_slice(&65u32.to_be_bytes());
        assert!(vireo_xdr::from_bytes::<Begin3ParamsArgs>(&bytes).is_err());
    }
}
