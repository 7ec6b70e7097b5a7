//! The storage driver's errors, and the one place they become libvirt's `remote_error`.

use thiserror::Error;
use vireo_proto::error::code;
use vireo_proto::RemoteError;

/// libvirt's `VIR_FROM_STORAGE`.
const FROM_STORAGE: i32 = 18;
const NO_STORAGE_POOL: i32 = 49;
const NO_STORAGE_VOL: i32 = 50;
const STORAGE_POOL_BUILT: i32 = 76;
const STORAGE_VOL_EXIST: i32 = 90;

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("Storage pool not found: {0}")]
    NoPool(String),
    #[error("Storage volume not found: {0}")]
    NoVol(String),
    #[error("storage volume '{0}' exists already")]
    VolExists(String),
    #[error("storage pool already built: {0}")]
    PoolBuilt(String),
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
    #[error("internal error: {0}")]
    Image(#[from] vireo_storagefile::ImageError),
}

pub type Result<T> = std::result::Result<T, StorageError>;

impl StorageError {
    pub fn io(what: impl Into<String>, err: std::io::Error) -> Self {
        StorageError::Io {
            what: what.into(),
            err,
        }
    }
}

impl From<StorageError> for RemoteError {
    fn from(e: StorageError) -> RemoteError {
        let c = match &e {
            StorageError::NoPool(_) => NO_STORAGE_POOL,
            StorageError::NoVol(_) => NO_STORAGE_VOL,
            StorageError::VolExists(_) => STORAGE_VOL_EXIST,
            StorageError::PoolBuilt(_) => STORAGE_POOL_BUILT,
            StorageError::Exists(_) => code::OPERATION_FAILED,
            StorageError::Invalid(_) => code::OPERATION_INVALID,
            StorageError::Xml(x) => x.libvirt_code(),
            StorageError::Unsupported(_) => code::CONFIG_UNSUPPORTED,
            StorageError::InvalidArg(_) => code::INVALID_ARG,
            StorageError::Internal(_) | StorageError::Command(_) | StorageError::Image(_) => {
                code::INTERNAL_ERROR
            }
            StorageError::Io { .. } => code::SYSTEM_ERROR,
            StorageError::Missing(_) => code::NO_SUPPORT,
            StorageError::Store(d) => d.libvirt_code().0,
        };
        let mut r = RemoteError::new(c, FROM_STORAGE, e.to_string());
        match &e {
            StorageError::NoPool(d) => {
                r.str1 = Some("Storage pool not found: %s".into());
                r.str2 = Some(d.clone());
            }
            StorageError::NoVol(d) => {
                r.str1 = Some("Storage volume not found: %s".into());
                r.str2 = Some(d.clone());
            }
            _ => {}
        }
        r
    }
}
