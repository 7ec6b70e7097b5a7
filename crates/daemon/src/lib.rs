//! The daemon runtime: where things live on disk ([`paths`]), how a daemon starts and stops
//! ([`run`]), and the REMOTE program served over the sockets ([`remote`]: one module per API
//! family — `remote/connect.rs`, `remote/domain.rs`, `remote/events.rs`).

pub mod activation;
pub mod admin;
pub mod cmdline;
pub mod dropin;
pub mod identity;
pub mod logging;
pub mod metrics;
pub mod paths;
pub mod peers;
pub mod polkit;
pub mod proxy;
pub mod qemu_user;
pub mod remote;
pub mod remote_access;
pub mod role;
pub mod run;
