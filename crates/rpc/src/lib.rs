//! The transport under every Vireo daemon and client: reading and writing libvirt RPC frames
//! over UNIX sockets, a server that dispatches calls to a [`server::Service`], and a client
//! that matches replies to calls.

pub mod client;
pub mod frame;
pub mod handoff;
pub mod inspect;
pub mod server;

pub use frame::{Frame, FrameError};

/// Keeps the C allocator from handing a stream's buffers back to the kernel after each
/// packet: a 256 KiB stream packet is then not a fresh mmap (or a brk up and down) with its
/// pages faulted in and zeroed every time. Memory freed stays with the process up to a few
/// MiB, and an idle process holds no more than before. Call once, early in `main`.
pub fn keep_stream_buffers() {
    // SAFETY: mallopt only sets glibc malloc parameters; it is called before other
    // threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
    }
}
