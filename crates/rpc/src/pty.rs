//! A character device (a VM's serial pty) joined to an RPC stream, both ways: what
//! `virsh console` reads and types. The daemon's `DOMAIN_OPEN_CONSOLE` and a VM shim's own
//! endpoint both use it.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc::Receiver;
use vireo_proto::{RemoteError, Status};

use crate::server::{StreamPacket, StreamSender};

/// Opens the pty at `path` for the stream: raw, non-blocking, watched by the runtime.
pub fn open_raw(path: &Path) -> std::io::Result<AsyncFd<File>> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)?;
    make_raw(&f)?;
    // SAFETY: fd registration with the runtime (tokio's API is unsafe): the AsyncFd owns
    // the File, so the fd stays open and the same for its lifetime.
    unsafe { AsyncFd::register(f) }.map_err(Into::into)
}

/// No echo, no line editing, no character translation: bytes pass as they are.
fn make_raw(f: &File) -> std::io::Result<()> {
    use rustix::termios::{tcgetattr, tcsetattr, OptionalActions};
    let mut t = tcgetattr(f)?;
    t.make_raw();
    tcsetattr(f, OptionalActions::Now, &t)?;
    Ok(())
}

/// Moves bytes between the pty and the stream until either side ends.
pub async fn pump(pty: AsyncFd<File>, tx: StreamSender, mut rx: Receiver<StreamPacket>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            r = pty.readable() => {
                let Ok(mut guard) = r else { break };
                match guard.try_io(|f| f.get_ref().read(&mut buf)) {
                    Ok(Ok(n)) if n > 0 => {
                        if !tx.data(&buf[..n]).await {
                            return;
                        }
                    }
                    // EOF or EIO: the VM (QEMU) is gone. An empty data packet is the end.
                    Ok(_) => {
                        let _ = tx.data(&[]).await;
                        let _ = tx.finish(None).await;
                        return;
                    }
                    Err(_would_block) => {}
                }
            }
            p = rx.recv() => match p {
                Some(StreamPacket { status: Status::Continue, data, hole: false }) => {
                    if write_all(&pty, &data).await.is_err() {
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

async fn write_all(pty: &AsyncFd<File>, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        let mut guard = pty.writable().await?;
        match guard.try_io(|f| f.get_ref().write(data)) {
            Ok(Ok(n)) => data = &data[n..],
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => {}
        }
    }
    Ok(())
}
