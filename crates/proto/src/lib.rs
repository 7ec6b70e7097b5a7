//! libvirt's RPC protocol in our own words: the packet header, program numbers, procedure
//! tables and argument/return types, and the `remote_error` payload.
//!
//! One module per API family: [`remote`] holds the procedure table and the connect and
//! domain calls, [`secret`] the secret calls, [`storage`] the storage calls, [`network`] the
//! network and network port calls, [`nwfilter`] the network filter and filter binding calls.

/// Declares the procedure numbers of one program (`procs::NAME`), with `proc_name`, the
/// name table for logs and tools (libvirt's names without the program's `*_PROC_` prefix).
macro_rules! procedures {
    ($($name:ident = $num:expr),* $(,)?) => {
        pub mod procs {
            $(pub const $name: i32 = $num;)*
        }
        /// libvirt's name of a procedure of this program.
        pub fn proc_name(p: i32) -> Option<&'static str> {
            match p {
                $($num => Some(stringify!($name)),)*
                _ => None,
            }
        }
    };
}

pub mod admin;
pub mod auth;
pub mod domevent;
pub mod error;
pub mod family;
pub mod header;
pub mod interface;
pub mod migrate;
pub mod network;
pub mod nodedev;
pub mod nwfilter;
pub mod remote;
pub mod secret;
pub mod storage;
pub mod typed;
pub mod vireo;

pub use error::RemoteError;
pub use header::{Header, MessageType, Status, HEADER_LEN};

/// The libvirt main API program.
pub const REMOTE_PROGRAM: u32 = 0x2000_8086;
pub const REMOTE_VERSION: u32 = 1;
/// libvirt's QEMU-specific program (`virsh qemu-agent-command`, …).
pub const QEMU_PROGRAM: u32 = 0x2000_8087;
pub const QEMU_VERSION: u32 = 1;
/// `QEMU_PROC_DOMAIN_AGENT_COMMAND`.
pub const QEMU_PROC_DOMAIN_AGENT_COMMAND: i32 = 3;
/// `QEMU_PROC_DOMAIN_MONITOR_COMMAND` (`virsh qemu-monitor-command`).
pub const QEMU_PROC_DOMAIN_MONITOR_COMMAND: i32 = 1;
/// The procedures of libvirt's QEMU program (`virsh qemu-monitor-command`, …).
pub mod qemu {
    procedures! {
        DOMAIN_MONITOR_COMMAND = 1,
        DOMAIN_ATTACH = 2,
        DOMAIN_AGENT_COMMAND = 3,
        CONNECT_DOMAIN_MONITOR_EVENT_REGISTER = 4,
        CONNECT_DOMAIN_MONITOR_EVENT_DEREGISTER = 5,
        DOMAIN_MONITOR_EVENT = 6,
        DOMAIN_MONITOR_COMMAND_WITH_FILES = 7,
    }
}
/// Keepalive program ("keep").
pub const KEEPALIVE_PROGRAM: u32 = 0x6b65_6570;
pub const KEEPALIVE_VERSION: u32 = 1;
pub const KEEPALIVE_PING: i32 = 1;
pub const KEEPALIVE_PONG: i32 = 2;
/// Admin program, on the admin socket.
pub const ADMIN_PROGRAM: u32 = 0x0690_0690;

/// Largest frame body (length word excluded), libvirt's `VIR_NET_MESSAGE_MAX`.
pub const MESSAGE_MAX: usize = 32 * 1024 * 1024;
/// Stream data chunk size libvirt uses in both directions.
pub const STREAM_CHUNK: usize = 262_120;
/// Maximum fds in one message.
pub const NUM_FDS_MAX: usize = 32;

/// `CONNECT_SUPPORTS_FEATURE` numbers that the remote layer answers itself.
pub mod feature {
    pub const MIGRATION_P2P: i32 = 4;
    pub const MIGRATION_V3: i32 = 6;
    pub const FD_PASSING: i32 = 8;
    pub const TYPED_PARAM_STRING: i32 = 9;
    pub const PROGRAM_KEEPALIVE: i32 = 10;
    pub const XML_MIGRATABLE: i32 = 11;
    pub const MIGRATION_PARAMS: i32 = 13;
    pub const REMOTE_EVENT_CALLBACK: i32 = 14;
    pub const REMOTE_CLOSE_CALLBACK: i32 = 15;
}
