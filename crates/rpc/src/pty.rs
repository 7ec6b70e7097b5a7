//! A character device (a VM's serial pty) joined to an RPC stream, both ways: what
//! `virsh console` reads and types. The daemon's `DOMAIN_OPEN_CONSOLE` and a VM shim's own
//! endpoint both use it.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::sync::mpsc::Receiver;
use vireo_proto::{RemoteError, Status};

use crate::server::{StreamPacket, StreamSender};

/// A pty opened for a stream: raw, non-blocking, watched by the runtime. The runtime
/// watches a character device as it watches a pipe's ends (readiness on one fd), so each
/// direction is one of tokio's pipe ends, over its own descriptor of the same pty.
pub struct Pty {
    rx: pipe::Receiver,
    tx: pipe::Sender,
}

/// Opens the pty at `path` for the stream. Must run within the runtime.
pub fn open_raw(path: &Path) -> std::io::Result<Pty> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)?;
    make_raw(&f)?;
    let w = f.try_clone()?;
    Ok(Pty {
        rx: pipe::Receiver::from_file_unchecked(f)?,
        tx: pipe::Sender::from_file_unchecked(w)?,
    })
}

/// No echo, no line editing, no character translation: bytes pass as they are.
fn make_raw(f: &std::fs::File) -> std::io::Result<()> {
    use rustix::termios::{tcgetattr, tcsetattr, OptionalActions};
    let mut t = tcgetattr(f)?;
    t.make_raw();
    tcsetattr(f, OptionalActions::Now, &t)?;
    Ok(())
}

/// Moves bytes between the pty and the stream until either side ends.
pub async fn pump(pty: Pty, tx: StreamSender, mut rx: Receiver<StreamPacket>) {
    let Pty {
        rx: from_pty,
        tx: mut to_pty,
    } = pty;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            r = from_pty.readable() => {
                if r.is_err() {
                    break;
                }
                match from_pty.try_read(&mut buf) {
                    Ok(n) if n > 0 => {
                        if !tx.data(&buf[..n]).await {
                            return;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    // EOF or EIO: the VM (QEMU) is gone. An empty data packet is the end.
                    _ => {
                        let _ = tx.data(&[]).await;
                        let _ = tx.finish(None).await;
                        return;
                    }
                }
            }
            p = rx.recv() => match p {
                Some(StreamPacket { status: Status::Continue, data, hole: false }) => {
                    if to_pty.write_all(&data).await.is_err() {
                        let _ = tx.finish(Some(&RemoteError::rpc("cannot write to the console"))).await;
                        return;
                    }
                }
                // A console has no holes.
                Some(StreamPacket { status: Status::Continue, .. }) => {}
                // The client finished: confirm.
                Some(StreamPacket { status: Status::Ok, .. }) => {
                    let _ = tx.finish(None).await;
                    return;
                }
                // Aborted, or the client went away.
                _ => return,
            },
        }
    }
}
