//! The transport under every Vireo daemon and client: reading and writing libvirt RPC frames
//! over UNIX sockets (and TCP, with TLS: [`tls`]; SASL: [`sasl`], [`gssapi`] and its
//! security [`layer`]), a server that dispatches calls to a [`server::Service`], and a client
//! that matches replies to calls.

pub mod client;
pub mod frame;
pub mod gssapi;
pub mod handoff;
pub mod inspect;
pub mod layer;
pub mod metrics;
pub mod pty;
pub mod sasl;
pub mod server;
pub mod tls;

pub use frame::{Frame, FrameError};

/// Keeps the C allocator from handing a stream's buffers back to the kernel after each
/// packet: a 256 KiB stream packet is then not a fresh mmap (or a brk up and down) with its
/// pages faulted in and zeroed every time. Up to a few MiB freed stay with the process from
/// then on, so a daemon calls this when it first moves a stream, not at start (its idle
/// size stays what it was). Only the first call does anything.
pub fn keep_stream_buffers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: allocator tuning, for which no safe wrapper exists: mallopt only sets glibc
        // malloc parameters, under malloc's own lock, so it may run while other threads
        // allocate.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
        }
    });
}
