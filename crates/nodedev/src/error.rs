//! The node device driver's errors, and the one place they become libvirt's
//! `remote_error`.

use thiserror::Error;
use vireo_proto::error::code;
use vireo_proto::RemoteError;

/// libvirt's `VIR_FROM_NODEDEV`.
const FROM_NODEDEV: i32 = 22;
/// libvirt's `VIR_ERR_NO_NODE_DEVICE`.
const NO_NODE_DEVICE: i32 = 53;

#[derive(Debug, Error)]
pub enum NodeDevError {
    /// No device of that name now; the detail names it.
    #[error("Node device not found: {0}")]
    NoDevice(String),
    #[error("invalid argument: {0}")]
    InvalidArg(String),
    /// Not now: the device is leased, used by the host, or in the wrong state.
    #[error("Requested operation is not valid: {0}")]
    OperationInvalid(String),
    /// The kernel did not do what was asked.
    #[error("operation failed: {0}")]
    OperationFailed(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// A device of a kind, or in a configuration, this driver cannot make.
    #[error("unsupported configuration: {0}")]
    Unsupported(String),
    /// A call that does not apply to a device of this kind.
    #[error("Operation not supported: {0}")]
    NotSupported(String),
    /// A device's XML that cannot be read.
    #[error("{0}")]
    Xml(#[from] vireo_xml::XmlError),
    /// A failed read of sysfs, saying of what.
    #[error("{what}: {}", vireo_proto::error::os_text(.err))]
    Io {
        what: String,
        #[source]
        err: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, NodeDevError>;

impl NodeDevError {
    /// libvirt's error for a name no device has.
    pub fn no_device(name: &str) -> Self {
        NodeDevError::NoDevice(format!("no node device with matching name '{name}'"))
    }

    /// A failed file operation, saying on what.
    pub fn io(what: impl Into<String>, err: std::io::Error) -> Self {
        NodeDevError::Io {
            what: what.into(),
            err,
        }
    }
}

impl From<NodeDevError> for RemoteError {
    fn from(e: NodeDevError) -> RemoteError {
        let c = match &e {
            NodeDevError::NoDevice(_) => NO_NODE_DEVICE,
            NodeDevError::InvalidArg(_) => code::INVALID_ARG,
            NodeDevError::OperationInvalid(_) => code::OPERATION_INVALID,
            NodeDevError::OperationFailed(_) => code::OPERATION_FAILED,
            NodeDevError::Internal(_) => code::INTERNAL_ERROR,
            NodeDevError::Unsupported(_) => code::CONFIG_UNSUPPORTED,
            NodeDevError::NotSupported(_) => code::OPERATION_UNSUPPORTED,
            NodeDevError::Xml(x) => x.libvirt_code(),
            // As libvirt reports a failed system call.
            NodeDevError::Io { .. } => code::SYSTEM_ERROR,
        };
        let mut r = RemoteError::new(c, FROM_NODEDEV, e.to_string());
        if let NodeDevError::NoDevice(detail) = &e {
            r.str1 = Some("Node device not found: %s".into());
            r.str2 = Some(detail.clone());
        }
        r
    }
}
