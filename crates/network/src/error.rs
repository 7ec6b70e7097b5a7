//! The network driver's errors, and the one place they become libvirt's `remote_error`.

use thiserror::Error;
use vireo_proto::error::code;
use vireo_proto::RemoteError;

/// libvirt's `VIR_FROM_NETWORK`.
const FROM_NETWORK: i32 = 19;
/// libvirt's `VIR_ERR_NO_NETWORK`.
const NO_NETWORK: i32 = 43;
/// libvirt's `VIR_ERR_NO_NETWORK_PORT`.
const NO_NETWORK_PORT: i32 = 107;

#[derive(Debug, Error)]
pub enum NetworkError {
    #[error("Network not found: {0}")]
    NoNetwork(String),
    #[error("network port not found: {0}")]
    NoPort(String),
    #[error("operation failed: {0}")]
    Exists(String),
    #[error("Requested operation is not valid: {0}")]
    Invalid(String),
    #[error("{0}")]
    Xml(#[from] vireo_xml::XmlError),
    #[error("unsupported configuration: {0}")]
    Unsupported(String),
    #[error("invalid argument: {0}")]
    InvalidArg(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// A program we run failed; the message carries what it said.
    #[error("internal error: {0}")]
    Command(String),
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

pub type Result<T> = std::result::Result<T, NetworkError>;

impl NetworkError {
    pub fn io(what: impl Into<String>, err: std::io::Error) -> Self {
        NetworkError::Io {
            what: what.into(),
            err,
        }
    }
}

impl From<NetworkError> for RemoteError {
    fn from(e: NetworkError) -> RemoteError {
        let c = match &e {
            NetworkError::NoNetwork(_) => NO_NETWORK,
            NetworkError::NoPort(_) => NO_NETWORK_PORT,
            NetworkError::Exists(_) => code::OPERATION_FAILED,
            NetworkError::Invalid(_) => code::OPERATION_INVALID,
            NetworkError::Xml(x) => x.libvirt_code(),
            NetworkError::Unsupported(_) => code::CONFIG_UNSUPPORTED,
            NetworkError::InvalidArg(_) => code::INVALID_ARG,
            NetworkError::Internal(_) | NetworkError::Command(_) => code::INTERNAL_ERROR,
            NetworkError::Io { .. } => code::SYSTEM_ERROR,
            NetworkError::Missing(_) => code::NO_SUPPORT,
            NetworkError::Store(d) => d.libvirt_code().0,
        };
        let mut r = RemoteError::new(c, FROM_NETWORK, e.to_string());
        match &e {
            NetworkError::NoNetwork(d) => {
                r.str1 = Some("Network not found: %s".into());
                r.str2 = Some(d.clone());
            }
            NetworkError::NoPort(d) => {
                r.str1 = Some("network port not found: %s".into());
                r.str2 = Some(d.clone());
            }
            _ => {}
        }
        r
    }
}
