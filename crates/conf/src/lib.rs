//! libvirt-style `.conf` files: a parser for the syntax and the daemon
//! settings read from it.
//!
//! ```
//! use vireo_conf::{parse, DaemonConfig, Value};
//!
//! let text = "# a comment\n\
//!             unix_sock_group = \"libvirt\"\n\
//!             unix_sock_rw_perms = \"0770\"\n\
//!             max_clients = 100\n";
//! let file = parse("vireo-qemud.conf", text).unwrap();
//! assert_eq!(file.get("max_clients"), Some(&Value::Int(100)));
//!
//! let (config, warnings) = DaemonConfig::from_conf(&file).unwrap();
//! assert_eq!(config.unix_sock_rw_perms, 0o770);
//! assert_eq!(config.max_clients, 100);
//! assert!(warnings.is_empty());
//! ```
//!
//! The syntax is libvirt's (`key = value` lines; integers, quoted strings
//! and lists; `#` comments); see [`parse`] for the details. Where a key is
//! given twice the first one wins, as in libvirt, and the later one is noted
//! in [`ConfFile::warnings`].

mod daemon;
mod parse;
mod qemu;

pub use daemon::{DaemonConfig, RemoteAccess};
pub use parse::{
    load, parse, ConfFile, Entry, Value, MAX_FILE_BYTES, MAX_LIST_DEPTH, MAX_LIST_ITEMS,
    MAX_STRING_BYTES,
};
pub use qemu::{principal, Principal, QemuConf};

/// Everything that can go wrong reading a configuration file.
///
/// `Display` starts with the file name and, where there is one, the line:
/// `vireo-qemud.conf:12: expected a value after '='`.
#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    /// The text is not valid `.conf` syntax (or breaks one of the limits).
    #[error("{file}:{line}: {message}")]
    Syntax {
        /// The file name given for messages.
        file: String,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column (in characters) of the problem.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A setting has a value of the wrong type or out of range.
    #[error("{file}:{line}: {key}: {message}")]
    Setting {
        /// The file name given for messages.
        file: String,
        /// 1-based line of the setting.
        line: usize,
        /// The setting's name.
        key: String,
        /// What is wrong with its value.
        message: String,
    },
    /// The file as a whole is refused (it is larger than [`MAX_FILE_BYTES`]).
    #[error("{file}: {message}")]
    File {
        /// The file name given for messages.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// The file exists but could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The path of the file.
        file: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl ConfError {
    /// The file name the error names.
    pub fn file(&self) -> &str {
        match self {
            ConfError::Syntax { file, .. }
            | ConfError::Setting { file, .. }
            | ConfError::File { file, .. }
            | ConfError::Io { file, .. } => file,
        }
    }

    /// The 1-based line the error is on, when it is about one line.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfError::Syntax { line, .. } | ConfError::Setting { line, .. } => Some(*line),
            ConfError::File { .. } | ConfError::Io { .. } => None,
        }
    }
}
