//! The network filter driver's errors, and the one place they become libvirt's
//! `remote_error`.

use thiserror::Error;
use vireo_proto::error::code;
use vireo_proto::RemoteError;

/// libvirt's `VIR_FROM_NWFILTER`.
const FROM_NWFILTER: i32 = 33;
/// libvirt's `VIR_ERR_NO_NWFILTER`.
const NO_NWFILTER: i32 = 62;
/// libvirt's `VIR_ERR_NO_NWFILTER_BINDING`.
const NO_NWFILTER_BINDING: i32 = 101;
/// libvirt's `VIR_ERR_BUILD_FIREWALL`.
const BUILD_FIREWALL: i32 = 63;

#[derive(Debug, Error)]
pub enum NwFilterError {
    #[error("Network filter not found: {0}")]
    NoFilter(String),
    #[error("Network filter binding not found: {0}")]
    NoBinding(String),
    #[error("operation failed: {0}")]
    Exists(String),
    #[error("Requested operation is not valid: {0}")]
    Invalid(String),
    #[error("{0}")]
    Xml(#[from] vireo_xml::XmlError),
    #[error("invalid argument: {0}")]
    InvalidArg(String),
    #[error("error while building firewall: {0}")]
    Firewall(String),
    #[error("{what}: {}", vireo_proto::error::os_text(.err))]
    Io {
        what: String,
        #[source]
        err: std::io::Error,
    },
    #[error("{0}")]
    Missing(#[from] vireo_hostprog::Missing),
    #[error("{0}")]
    Store(#[from] vireo_driver::DriverError),
}

pub type Result<T> = std::result::Result<T, NwFilterError>;

impl NwFilterError {
    pub fn io(what: impl Into<String>, err: std::io::Error) -> Self {
        NwFilterError::Io {
            what: what.into(),
            err,
        }
    }
}

impl From<NwFilterError> for RemoteError {
    fn from(e: NwFilterError) -> RemoteError {
        let c = match &e {
            NwFilterError::NoFilter(_) => NO_NWFILTER,
            NwFilterError::NoBinding(_) => NO_NWFILTER_BINDING,
            NwFilterError::Exists(_) => code::OPERATION_FAILED,
            NwFilterError::Invalid(_) => code::OPERATION_INVALID,
            NwFilterError::Xml(x) => x.libvirt_code(),
            NwFilterError::InvalidArg(_) => code::INVALID_ARG,
            NwFilterError::Firewall(_) => BUILD_FIREWALL,
            NwFilterError::Io { .. } => code::SYSTEM_ERROR,
            NwFilterError::Missing(_) => code::NO_SUPPORT,
            NwFilterError::Store(d) => d.libvirt_code().0,
        };
        let mut r = RemoteError::new(c, FROM_NWFILTER, e.to_string());
        if let NwFilterError::NoFilter(d) = &e {
            r.str1 = Some("Network filter not found: %s".into());
            r.str2 = Some(d.clone());
        }
        r
    }
}
