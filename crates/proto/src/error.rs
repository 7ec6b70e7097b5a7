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
    pub const OPERATION_TIMEOUT: i32 = 68;
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

/// The system's text for an I/O error as libvirt words it: without Rust's
/// " (os error N)" after it.
pub fn os_text(e: &std::io::Error) -> String {
    let full = e.to_string();
    match full.rfind(" (os error ") {
        Some(i) => full[..i].to_string(),
        None => full,
    }
}

/// libvirt's name of an error number (`VIR_ERR_NO_DOMAIN` for 42), for logs and metrics;
/// `None` for a number libvirt has no name for.
pub fn code_name(code: i32) -> Option<&'static str> {
    usize::try_from(code)
        .ok()
        .and_then(|i| CODE_NAMES.get(i).copied().flatten())
}

/// libvirt's `virErrorNumber` names, indexed by number (`None`: a number libvirt retired).
const CODE_NAMES: [Option<&'static str>; 111] = [
    None,
    Some("VIR_ERR_INTERNAL_ERROR"),
    Some("VIR_ERR_NO_MEMORY"),
    Some("VIR_ERR_NO_SUPPORT"),
    Some("VIR_ERR_UNKNOWN_HOST"),
    Some("VIR_ERR_NO_CONNECT"),
    Some("VIR_ERR_INVALID_CONN"),
    Some("VIR_ERR_INVALID_DOMAIN"),
    Some("VIR_ERR_INVALID_ARG"),
    Some("VIR_ERR_OPERATION_FAILED"),
    Some("VIR_ERR_GET_FAILED"),
    Some("VIR_ERR_POST_FAILED"),
    Some("VIR_ERR_HTTP_ERROR"),
    Some("VIR_ERR_SEXPR_SERIAL"),
    Some("VIR_ERR_NO_XEN"),
    Some("VIR_ERR_XEN_CALL"),
    Some("VIR_ERR_OS_TYPE"),
    Some("VIR_ERR_NO_KERNEL"),
    Some("VIR_ERR_NO_ROOT"),
    Some("VIR_ERR_NO_SOURCE"),
    Some("VIR_ERR_NO_TARGET"),
    Some("VIR_ERR_NO_NAME"),
    Some("VIR_ERR_NO_OS"),
    Some("VIR_ERR_NO_DEVICE"),
    Some("VIR_ERR_NO_XENSTORE"),
    Some("VIR_ERR_DRIVER_FULL"),
    Some("VIR_ERR_CALL_FAILED"),
    Some("VIR_ERR_XML_ERROR"),
    Some("VIR_ERR_DOM_EXIST"),
    Some("VIR_ERR_OPERATION_DENIED"),
    Some("VIR_ERR_OPEN_FAILED"),
    Some("VIR_ERR_READ_FAILED"),
    Some("VIR_ERR_PARSE_FAILED"),
    Some("VIR_ERR_CONF_SYNTAX"),
    Some("VIR_ERR_WRITE_FAILED"),
    Some("VIR_ERR_XML_DETAIL"),
    Some("VIR_ERR_INVALID_NETWORK"),
    Some("VIR_ERR_NETWORK_EXIST"),
    Some("VIR_ERR_SYSTEM_ERROR"),
    Some("VIR_ERR_RPC"),
    Some("VIR_ERR_GNUTLS_ERROR"),
    None,
    Some("VIR_ERR_NO_DOMAIN"),
    Some("VIR_ERR_NO_NETWORK"),
    Some("VIR_ERR_INVALID_MAC"),
    Some("VIR_ERR_AUTH_FAILED"),
    Some("VIR_ERR_INVALID_STORAGE_POOL"),
    Some("VIR_ERR_INVALID_STORAGE_VOL"),
    None,
    Some("VIR_ERR_NO_STORAGE_POOL"),
    Some("VIR_ERR_NO_STORAGE_VOL"),
    None,
    Some("VIR_ERR_INVALID_NODE_DEVICE"),
    Some("VIR_ERR_NO_NODE_DEVICE"),
    Some("VIR_ERR_NO_SECURITY_MODEL"),
    Some("VIR_ERR_OPERATION_INVALID"),
    None,
    Some("VIR_ERR_NO_INTERFACE"),
    Some("VIR_ERR_INVALID_INTERFACE"),
    Some("VIR_ERR_MULTIPLE_INTERFACES"),
    None,
    Some("VIR_ERR_INVALID_NWFILTER"),
    Some("VIR_ERR_NO_NWFILTER"),
    Some("VIR_ERR_BUILD_FIREWALL"),
    None,
    Some("VIR_ERR_INVALID_SECRET"),
    Some("VIR_ERR_NO_SECRET"),
    Some("VIR_ERR_CONFIG_UNSUPPORTED"),
    Some("VIR_ERR_OPERATION_TIMEOUT"),
    Some("VIR_ERR_MIGRATE_PERSIST_FAILED"),
    Some("VIR_ERR_HOOK_SCRIPT_FAILED"),
    Some("VIR_ERR_INVALID_DOMAIN_SNAPSHOT"),
    Some("VIR_ERR_NO_DOMAIN_SNAPSHOT"),
    Some("VIR_ERR_INVALID_STREAM"),
    Some("VIR_ERR_ARGUMENT_UNSUPPORTED"),
    Some("VIR_ERR_STORAGE_PROBE_FAILED"),
    Some("VIR_ERR_STORAGE_POOL_BUILT"),
    Some("VIR_ERR_SNAPSHOT_REVERT_RISKY"),
    Some("VIR_ERR_OPERATION_ABORTED"),
    Some("VIR_ERR_AUTH_CANCELLED"),
    Some("VIR_ERR_NO_DOMAIN_METADATA"),
    Some("VIR_ERR_MIGRATE_UNSAFE"),
    Some("VIR_ERR_OVERFLOW"),
    Some("VIR_ERR_BLOCK_COPY_ACTIVE"),
    Some("VIR_ERR_OPERATION_UNSUPPORTED"),
    Some("VIR_ERR_SSH"),
    Some("VIR_ERR_AGENT_UNRESPONSIVE"),
    Some("VIR_ERR_RESOURCE_BUSY"),
    Some("VIR_ERR_ACCESS_DENIED"),
    Some("VIR_ERR_DBUS_SERVICE"),
    Some("VIR_ERR_STORAGE_VOL_EXIST"),
    Some("VIR_ERR_CPU_INCOMPATIBLE"),
    Some("VIR_ERR_XML_INVALID_SCHEMA"),
    Some("VIR_ERR_MIGRATE_FINISH_OK"),
    Some("VIR_ERR_AUTH_UNAVAILABLE"),
    Some("VIR_ERR_NO_SERVER"),
    Some("VIR_ERR_NO_CLIENT"),
    Some("VIR_ERR_AGENT_UNSYNCED"),
    Some("VIR_ERR_LIBSSH"),
    Some("VIR_ERR_DEVICE_MISSING"),
    Some("VIR_ERR_INVALID_NWFILTER_BINDING"),
    Some("VIR_ERR_NO_NWFILTER_BINDING"),
    Some("VIR_ERR_INVALID_DOMAIN_CHECKPOINT"),
    Some("VIR_ERR_NO_DOMAIN_CHECKPOINT"),
    Some("VIR_ERR_NO_DOMAIN_BACKUP"),
    Some("VIR_ERR_INVALID_NETWORK_PORT"),
    Some("VIR_ERR_NETWORK_PORT_EXIST"),
    Some("VIR_ERR_NO_NETWORK_PORT"),
    Some("VIR_ERR_NO_HOSTNAME"),
    Some("VIR_ERR_CHECKPOINT_INCONSISTENT"),
    Some("VIR_ERR_MULTIPLE_DOMAINS"),
];

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_read_as_libvirt_words_them() {
        let e = std::io::Error::from_raw_os_error(28);
        assert_eq!(os_text(&e), "No space left on device");
        assert_eq!(os_text(&std::io::Error::other("plain")), "plain");
    }

    #[test]
    fn code_names_are_libvirts() {
        assert_eq!(code_name(code::NO_DOMAIN), Some("VIR_ERR_NO_DOMAIN"));
        assert_eq!(
            code_name(code::INTERNAL_ERROR),
            Some("VIR_ERR_INTERNAL_ERROR")
        );
        assert_eq!(
            code_name(code::DEVICE_MISSING),
            Some("VIR_ERR_DEVICE_MISSING")
        );
        assert_eq!(code_name(0), None);
        assert_eq!(code_name(41), None);
        assert_eq!(code_name(-1), None);
        assert_eq!(code_name(100_000), None);
    }
}
