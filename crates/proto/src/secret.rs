//! The secret calls of REMOTE_PROGRAM (procedures 139–147, 287, 380–383): handles,
//! arguments, returns and event messages, in libvirt's field order.

use vireo_xdr::{xdr_struct, Array, Opaque};

use crate::remote::Uuid;

/// libvirt's `REMOTE_SECRET_LIST_MAX`.
pub const SECRET_LIST_MAX: usize = 16384;
/// libvirt's `REMOTE_SECRET_VALUE_MAX`: the largest secret value.
pub const SECRET_VALUE_MAX: usize = 65536;

xdr_struct! {
    /// A secret handle (`remote_nonnull_secret`).
    pub struct Secret {
        pub uuid: Uuid,
        pub usage_type: i32,
        pub usage_id: String,
    }
}

/// `virSecretUsageType`.
pub mod usage {
    pub const NONE: i32 = 0;
    pub const VOLUME: i32 = 1;
    pub const CEPH: i32 = 2;
    pub const ISCSI: i32 = 3;
    pub const TLS: i32 = 4;
    pub const VTPM: i32 = 5;
}

/// `CONNECT_LIST_ALL_SECRETS` filter flags.
pub mod list_flags {
    pub const EPHEMERAL: u32 = 1;
    pub const NO_EPHEMERAL: u32 = 2;
    pub const PRIVATE: u32 = 4;
    pub const NO_PRIVATE: u32 = 8;
}

/// `VIR_SECRET_DEFINE_VALIDATE`.
pub const DEFINE_VALIDATE: u32 = 1;

/// Secret event ids and lifecycle events (`virSecretEventID`, `virSecretEventLifecycleType`).
pub mod event {
    pub const ID_LIFECYCLE: i32 = 0;
    pub const ID_VALUE_CHANGED: i32 = 1;
    pub const DEFINED: i32 = 0;
    pub const UNDEFINED: i32 = 1;
}

xdr_struct! { pub struct ConnectNumOfSecretsRet { pub num: i32 } }
xdr_struct! { pub struct ConnectListSecretsArgs { pub maxuuids: i32 } }
xdr_struct! { pub struct ConnectListSecretsRet { pub uuids: Array<String, SECRET_LIST_MAX> } }
xdr_struct! { pub struct ConnectListAllSecretsArgs { pub need_results: i32, pub flags: u32 } }
xdr_struct! {
    pub struct ConnectListAllSecretsRet {
        pub secrets: Array<Secret, SECRET_LIST_MAX>,
        pub ret: u32,
    }
}
xdr_struct! { pub struct SecretLookupByUuidArgs { pub uuid: Uuid } }
xdr_struct! { pub struct SecretLookupByUsageArgs { pub usage_type: i32, pub usage_id: String } }
xdr_struct! { pub struct SecretDefineXmlArgs { pub xml: String, pub flags: u32 } }
xdr_struct! {
    /// Returns that are just a secret handle.
    pub struct SecretRet { pub secret: Secret }
}
xdr_struct! {
    /// Arguments that are just a secret handle.
    pub struct SecretArgs { pub secret: Secret }
}
xdr_struct! {
    /// Arguments that are a secret handle and flags.
    pub struct SecretFlagsArgs { pub secret: Secret, pub flags: u32 }
}
xdr_struct! { pub struct SecretGetXmlDescRet { pub xml: String } }
xdr_struct! {
    pub struct SecretSetValueArgs {
        pub secret: Secret,
        pub value: Opaque<SECRET_VALUE_MAX>,
        pub flags: u32,
    }
}
xdr_struct! { pub struct SecretGetValueRet { pub value: Opaque<SECRET_VALUE_MAX> } }
xdr_struct! {
    pub struct ConnectSecretEventRegisterAnyArgs {
        pub event_id: i32,
        pub secret: Option<Secret>,
    }
}
xdr_struct! {
    /// Procedure 382, after the callback id.
    pub struct SecretEventLifecycleBody {
        pub secret: Secret,
        pub event: i32,
        pub detail: i32,
    }
}
xdr_struct! {
    /// Procedure 383, after the callback id.
    pub struct SecretEventValueChangedBody { pub secret: Secret }
}
