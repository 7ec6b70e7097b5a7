//! The transport under every Vireo daemon and client: reading and writing libvirt RPC frames
//! over UNIX sockets, a server that dispatches calls to a [`server::Service`], and a client
//! that matches replies to calls.

pub mod client;
pub mod frame;
pub mod handoff;
pub mod inspect;
pub mod server;

pub use frame::{Frame, FrameError};
