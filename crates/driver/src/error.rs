//! Driver errors, and the one place they become libvirt's `remote_error`.

use thiserror::Error;
use vireo_proto::error::{code, domain};
use vireo_proto::RemoteError;

#[derive(Debug, Error)]
pub enum DriverError {
    #[error("Domain not found: {0}")]
    NoDomain(String),
    #[error("operation failed: {0}")]
    DomainExists(String),
    /// Malformed XML; the message says where.
    #[error("XML error: {0}")]
    XmlSyntax(String),
    /// Well-formed XML that does not describe a valid object.
    #[error("XML error: {0}")]
    XmlInvalid(String),
    /// The XML does not follow libvirt's schema (`--validate`).
    #[error("XML document failed to validate against schema: {0}")]
    XmlSchema(String),
    #[error("unsupported configuration: {0}")]
    ConfigUnsupported(String),
    #[error("invalid argument: {0}")]
    InvalidArg(String),
    /// A valid argument this driver does not implement (`VIR_ERR_ARGUMENT_UNSUPPORTED`).
    #[error("argument unsupported: {0}")]
    ArgUnsupported(String),
    #[error("Requested operation is not valid: {0}")]
    OperationInvalid(String),
    #[error("operation forbidden: {0}")]
    OperationDenied(String),
    #[error("operation failed: {0}")]
    OperationFailed(String),
    #[error("this function is not supported by the connection driver: {0}")]
    NoSupport(String),
    /// A request this driver cannot carry out as asked (`VIR_ERR_OPERATION_UNSUPPORTED`).
    #[error("Operation not supported: {0}")]
    OperationUnsupported(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// The metadata a call asks for is not there (`VIR_ERR_NO_DOMAIN_METADATA`).
    #[error("metadata not found: {0}")]
    NoMetadata(String),
    /// A device a call names is not in the domain (libvirt's `VIR_ERR_DEVICE_MISSING`).
    #[error("device not found: {0}")]
    DeviceMissing(String),
    /// No snapshot of that name (`VIR_ERR_NO_DOMAIN_SNAPSHOT`).
    #[error("Domain snapshot not found: {0}")]
    NoSnapshot(String),
    /// A snapshot that cannot be used so (`VIR_ERR_INVALID_DOMAIN_SNAPSHOT`).
    #[error("invalid domain snapshot: {0}")]
    InvalidSnapshot(String),
    #[error("{what}: {}", vireo_proto::error::os_text(.err))]
    Io {
        what: String,
        #[source]
        err: std::io::Error,
    },
    /// An error another driver's daemon answered with, passed on as it came.
    #[error("{}", .0.text())]
    Peer(Box<RemoteError>),
}

pub type Result<T> = std::result::Result<T, DriverError>;

impl DriverError {
    pub fn io(what: impl Into<String>, err: std::io::Error) -> Self {
        DriverError::Io {
            what: what.into(),
            err,
        }
    }

    /// libvirt's (error code, error domain) for this error.
    pub fn libvirt_code(&self) -> (i32, i32) {
        match self {
            DriverError::NoDomain(_) => (code::NO_DOMAIN, domain::QEMU),
            DriverError::DomainExists(_) => (code::OPERATION_FAILED, domain::QEMU),
            DriverError::XmlSyntax(_) => (code::XML_DETAIL, domain::DOMAIN),
            DriverError::XmlInvalid(_) => (code::XML_ERROR, domain::DOMAIN),
            DriverError::XmlSchema(_) => (code::XML_INVALID_SCHEMA, domain::DOMAIN),
            DriverError::ConfigUnsupported(_) => (code::CONFIG_UNSUPPORTED, domain::DOMAIN),
            DriverError::InvalidArg(_) => (code::INVALID_ARG, domain::QEMU),
            DriverError::ArgUnsupported(_) => (code::ARGUMENT_UNSUPPORTED, domain::QEMU),
            DriverError::OperationInvalid(_) => (code::OPERATION_INVALID, domain::QEMU),
            DriverError::OperationDenied(_) => (code::OPERATION_DENIED, domain::NONE),
            DriverError::OperationFailed(_) => (code::OPERATION_FAILED, domain::QEMU),
            DriverError::NoSupport(_) => (code::NO_SUPPORT, domain::QEMU),
            DriverError::OperationUnsupported(_) => (code::OPERATION_UNSUPPORTED, domain::QEMU),
            DriverError::Internal(_) => (code::INTERNAL_ERROR, domain::QEMU),
            DriverError::DeviceMissing(_) => (code::DEVICE_MISSING, domain::DOMAIN),
            DriverError::NoMetadata(_) => (code::NO_DOMAIN_METADATA, domain::DOMAIN),
            DriverError::NoSnapshot(_) => (code::NO_DOMAIN_SNAPSHOT, domain::DOMAIN_SNAPSHOT),
            DriverError::InvalidSnapshot(_) => {
                (code::INVALID_DOMAIN_SNAPSHOT, domain::DOMAIN_SNAPSHOT)
            }
            DriverError::Io { .. } => (code::SYSTEM_ERROR, domain::QEMU),
            DriverError::Peer(r) => (r.code, r.domain),
        }
    }
}

impl From<DriverError> for RemoteError {
    fn from(e: DriverError) -> RemoteError {
        if let DriverError::Peer(r) = e {
            return *r;
        }
        let (c, d) = e.libvirt_code();
        let mut r = RemoteError::new(c, d, e.to_string());
        // libvirtd sends the format in str1 and the bare detail in str2.
        if let DriverError::NoDomain(detail) = &e {
            r.str1 = Some("Domain not found: %s".into());
            r.str2 = Some(detail.clone());
        }
        r
    }
}
