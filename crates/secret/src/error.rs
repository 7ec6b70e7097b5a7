//! The secret driver's errors, and the one place they become libvirt's `remote_error`.

use thiserror::Error;
use vireo_proto::error::code;
use vireo_proto::RemoteError;

/// libvirt's `VIR_FROM_SECRET`.
const FROM_SECRET: i32 = 30;
/// libvirt's `VIR_ERR_INVALID_SECRET`.
const INVALID_SECRET: i32 = 65;
/// libvirt's `VIR_ERR_NO_SECRET`.
const NO_SECRET: i32 = 66;

#[derive(Debug, Error)]
pub enum SecretError {
    #[error("Secret not found: {0}")]
    NoSecret(String),
    #[error("Invalid secret: {0}")]
    Invalid(String),
    #[error("{0}")]
    Xml(#[from] vireo_xml::XmlError),
    #[error("invalid argument: {0}")]
    InvalidArg(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("{0}")]
    Store(#[from] vireo_driver::DriverError),
}

pub type Result<T> = std::result::Result<T, SecretError>;

impl SecretError {
    /// A failed file operation, saying on what.
    pub fn io(what: impl Into<String>, e: std::io::Error) -> Self {
        SecretError::Store(vireo_driver::DriverError::io(what, e))
    }
}

impl From<SecretError> for RemoteError {
    fn from(e: SecretError) -> RemoteError {
        let c = match &e {
            SecretError::NoSecret(_) => NO_SECRET,
            SecretError::Invalid(_) => INVALID_SECRET,
            SecretError::Xml(x) => x.libvirt_code(),
            SecretError::InvalidArg(_) => code::INVALID_ARG,
            SecretError::Internal(_) => code::INTERNAL_ERROR,
            SecretError::Store(d) => d.libvirt_code().0,
        };
        let mut r = RemoteError::new(c, FROM_SECRET, e.to_string());
        if let SecretError::NoSecret(detail) = &e {
            r.str1 = Some("Secret not found: %s".into());
            r.str2 = Some(detail.clone());
        }
        r
    }
}
