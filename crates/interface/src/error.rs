//! The interface driver's errors, and the one place they become libvirt's `remote_error`.

use thiserror::Error;
use vireo_proto::error::code;
use vireo_proto::error::os_text;
use vireo_proto::RemoteError;

/// libvirt's `VIR_FROM_INTERFACE`.
const FROM_INTERFACE: i32 = 26;
/// libvirt's `VIR_ERR_NO_INTERFACE`.
const NO_INTERFACE: i32 = 57;
/// libvirt's `VIR_ERR_MULTIPLE_INTERFACES`.
const MULTIPLE_INTERFACES: i32 = 59;

#[derive(Debug, Error)]
pub enum InterfaceError {
    /// No interface of that name or address; the detail says which.
    #[error("Interface not found: {0}")]
    NoInterface(String),
    #[error("multiple matching interfaces found: {0}")]
    Multiple(String),
    #[error("{0}")]
    Xml(#[from] vireo_xml::XmlError),
    #[error("invalid argument: {0}")]
    InvalidArg(String),
    #[error("Requested operation is not valid: {0}")]
    Invalid(String),
    #[error("operation failed: {0}")]
    Failed(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// A failed system call (netlink, a file), saying of what; the system's text without
    /// Rust's "(os error N)", as libvirt words it.
    #[error("{what}: {}", os_text(.err))]
    Io {
        what: String,
        #[source]
        err: std::io::Error,
    },
    #[error("{0}")]
    Store(#[from] vireo_driver::DriverError),
}

pub type Result<T> = std::result::Result<T, InterfaceError>;

impl InterfaceError {
    pub fn io(what: impl Into<String>, err: std::io::Error) -> Self {
        InterfaceError::Io {
            what: what.into(),
            err,
        }
    }

    /// libvirt's error for a name no interface has.
    pub fn no_name(name: &str) -> Self {
        InterfaceError::NoInterface(format!("couldn't find interface named '{name}'"))
    }
}

impl From<InterfaceError> for RemoteError {
    fn from(e: InterfaceError) -> RemoteError {
        let c = match &e {
            InterfaceError::NoInterface(_) => NO_INTERFACE,
            InterfaceError::Multiple(_) => MULTIPLE_INTERFACES,
            InterfaceError::Xml(x) => x.libvirt_code(),
            InterfaceError::InvalidArg(_) => code::INVALID_ARG,
            InterfaceError::Invalid(_) => code::OPERATION_INVALID,
            InterfaceError::Failed(_) => code::OPERATION_FAILED,
            InterfaceError::Internal(_) => code::INTERNAL_ERROR,
            InterfaceError::Io { .. } => code::SYSTEM_ERROR,
            InterfaceError::Store(d) => d.libvirt_code().0,
        };
        let mut r = RemoteError::new(c, FROM_INTERFACE, e.to_string());
        match &e {
            InterfaceError::NoInterface(d) => {
                r.str1 = Some("Interface not found: %s".into());
                r.str2 = Some(d.clone());
            }
            InterfaceError::Multiple(d) => {
                r.str1 = Some("multiple matching interfaces found: %s".into());
                r.str2 = Some(d.clone());
            }
            _ => {}
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_errors_read_as_libvirt_words_them() {
        let e = InterfaceError::io(
            "cannot create bridge 'br0'",
            std::io::Error::from_raw_os_error(libc::EOPNOTSUPP),
        );
        assert_eq!(
            e.to_string(),
            "cannot create bridge 'br0': Operation not supported"
        );
        let r = RemoteError::from(InterfaceError::no_name("eth9"));
        assert_eq!(r.code, NO_INTERFACE);
        assert_eq!(r.domain, FROM_INTERFACE);
        assert_eq!(
            r.text(),
            "Interface not found: couldn't find interface named 'eth9'"
        );
    }
}
