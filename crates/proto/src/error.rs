//! `remote_error`: the payload of every failed REPLY, and libvirt's error numbers.

use crate::remote::{Domain, Network};
use vireo_xdr::xdr_struct;

/// libvirt's `virErrorNumber` values that Vireo sends.
pub mod code {
    pub const INTERNAL_ERROR: i32 = 1;
    pub const NO_SUPPORT: i32 = 3;
    pub const NO_CONNECT: i32 = 5;
    pub const INVALID_DOMAIN: i32 = 7;
    pub const INVALID_ARG: i32 = 8;
    pub const OPERATION_FAILED: i32 = 9;
    pub const NO_NAME: i32 = 21;
    pub const XML_ERROR: i32 = 27;
    pub const DOM_EXIST: i32 = 28;
    pub const OPERATION_DENIED: i32 = 29;
    pub const XML_DETAIL: i32 = 35;
    pub const SYSTEM_ERROR: i32 = 38;
    pub const RPC: i32 = 39;
    pub const NO_DOMAIN: i32 = 42;
    pub const AUTH_FAILED: i32 = 45;
    pub const OPERATION_INVALID: i32 = 55;
    pub const CONFIG_UNSUPPORTED: i32 = 67;
    pub const INVALID_DOMAIN_SNAPSHOT: i32 = 71;
    pub const NO_DOMAIN_SNAPSHOT: i32 = 72;
    pub const ARGUMENT_UNSUPPORTED: i32 = 74;
    pub const OPERATION_ABORTED: i32 = 78;
    pub const AUTH_CANCELLED: i32 = 79;
    pub const NO_DOMAIN_METADATA: i32 = 80;
    pub const OVERFLOW: i32 = 82;
    pub const OPERATION_UNSUPPORTED: i32 = 84;
    pub const AGENT_UNRESPONSIVE: i32 = 86;
    pub const CPU_INCOMPATIBLE: i32 = 91;
    pub const XML_INVALID_SCHEMA: i32 = 92;
    pub const AUTH_UNAVAILABLE: i32 = 94;
    pub const DEVICE_MISSING: i32 = 99;
}

/// libvirt's `virErrorDomain` values that Vireo sends.
pub mod domain {
    pub const NONE: i32 = 0;
    pub const RPC: i32 = 7;
    pub const CONF: i32 = 9;
    pub const QEMU: i32 = 10;
    pub const REMOTE: i32 = 13;
    pub const STORAGE: i32 = 18;
    pub const NETWORK: i32 = 19;
    pub const NWFILTER: i32 = 33;
    pub const DOMAIN_SNAPSHOT: i32 = 35;
    pub const CPU: i32 = 31;
    pub const DOMAIN: i32 = 20;
    pub const POLKIT: i32 = 60;
}

/// `VIR_ERR_ERROR`.
pub const LEVEL_ERROR: i32 = 2;

xdr_struct! {
    /// Identical in layout to libvirt's `remote_error`.
    pub struct RemoteError {
        pub code: i32,
        pub domain: i32,
        pub message: Option<String>,
        pub level: i32,
        pub dom: Option<Domain>,
        pub str1: Option<String>,
        pub str2: Option<String>,
        pub str3: Option<String>,
        pub int1: i32,
        pub int2: i32,
        pub net: Option<Network>,
    }
}

impl RemoteError {
    /// An error shaped as libvirtd shapes its own: `str1` is the format, `str2` the detail.
    pub fn new(code: i32, domain: i32, message: impl Into<String>) -> Self {
        let message = message.into();
        RemoteError {
            code,
            domain,
            message: Some(message.clone()),
            level: LEVEL_ERROR,
            dom: None,
            str1: Some("%s".into()),
            str2: Some(message),
            str3: None,
            int1: -1,
            int2: -1,
            net: None,
        }
    }

    /// The "unknown procedure" error that clients turn into `VIR_ERR_NO_SUPPORT`.
    pub fn unknown_procedure(proc_: i32) -> Self {
        Self::new(
            code::RPC,
            domain::RPC,
            format!("unknown procedure: {proc_}"),
        )
    }

    pub fn rpc(message: impl Into<String>) -> Self {
        Self::new(code::RPC, domain::RPC, message)
    }

    pub fn text(&self) -> &str {
        self.message.as_deref().unwrap_or("unknown error")
    }
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text())
    }
}

impl std::error::Error for RemoteError {}
