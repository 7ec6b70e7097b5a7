//! `DOMAIN_OPEN_CONSOLE`: a stream joined to the VM's serial pty, both ways.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;

use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc::Receiver;
use vireo_driver::DriverError;
use vireo_proto::remote::*;
use vireo_proto::{Header, RemoteError, Status};
use vireo_rpc::server::{BoxFuture, Outcome, StreamPacket, StreamSender};
use vireo_xml::Domain as Def;

use super::{args, RemoteClient, RemoteService};

/// Opens the console stream: replies, then pumps bytes until either side ends.
pub(super) fn open(
    s: Arc<RemoteService>,
    client: Arc<RemoteClient>,
    call: Header,
    payload: Vec<u8>,
) -> BoxFuture<Outcome> {
    Box::pin(async move {
        match prepare(&s, &payload).await {
            Ok(pty) => {
                let (tx, rx) = client.open_stream(&call);
                let serial = call.serial;
                Outcome::ReplyThen(
                    Vec::new(),
                    Box::pin(async move {
                        pump(pty, tx, rx).await;
                        client.close_stream(serial);
                    }),
                )
            }
            Err(e) => Outcome::Error(e),
        }
    })
}

async fn prepare(s: &RemoteService, payload: &[u8]) -> Result<AsyncFd<File>, RemoteError> {
    let a: DomainOpenConsoleArgs = args(payload)?;
    if !s.hv()?.is_running(&a.dom)? {
        return Err(DriverError::OperationInvalid("domain is not running".into()).into());
    }
    let xml: DomainGetXmlDescRet = vireo_xdr::from_bytes(&s.hv()?.live_xml(&a.dom).await?)
        .map_err(|e| RemoteError::rpc(format!("bad reply from the shim: {e}")))?;
    let def = Def::parse(&xml.xml)
        .map_err(|e| DriverError::Internal(format!("bad live XML from the shim: {e}")))?;
    let dev = a.dev_name.as_deref();
    let chosen = match dev {
        None => def.devices.consoles.first().or(def.devices.serials.first()),
        Some(name) => {
            let idx = |prefix: &str| {
                name.strip_prefix(prefix)
                    .and_then(|n| n.parse::<usize>().ok())
            };
            match (idx("serial"), idx("console")) {
                (Some(i), _) => def.devices.serials.get(i),
                (_, Some(i)) => def.devices.consoles.get(i),
                _ => None,
            }
        }
    };
    let tty = chosen.and_then(|c| c.tty.clone()).ok_or_else(|| {
        RemoteError::from(DriverError::OperationFailed(match dev {
            Some(d) => format!("character device {d} is not using a PTY"),
            None => "cannot find default console device".into(),
        }))
    })?;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(&tty)
        .map_err(|e| DriverError::io(format!("cannot open console {tty}"), e))?;
    make_raw(&f).map_err(|e| DriverError::io(format!("cannot set {tty} to raw mode"), e))?;
    // SAFETY: the AsyncFd owns the File, so the fd stays open and the same for its lifetime.
    unsafe { AsyncFd::register(f) }
        .map_err(|e| DriverError::io("cannot watch the console".to_string(), e.into()).into())
}

/// No echo, no line editing, no character translation: bytes pass as they are.
fn make_raw(f: &File) -> std::io::Result<()> {
    // SAFETY: termios is plain data, fully written by tcgetattr before use; the fd is open.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(f.as_raw_fd(), &mut t) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        libc::cfmakeraw(&mut t);
        if libc::tcsetattr(f.as_raw_fd(), libc::TCSANOW, &t) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

async fn pump(pty: AsyncFd<File>, tx: StreamSender, mut rx: Receiver<StreamPacket>) {
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
