//! Handing a client connection from one process to another: `vireo-proxyd` gives a client
//! whose URI names one driver to that driver's daemon, which then serves it directly (its
//! calls no longer pass through the proxy, and the daemon sees the client's own
//! credentials). The connection travels as an SCM_RIGHTS descriptor over the daemon's
//! `<name>-handoff-sock`, with the bytes the proxy already read from it. Once sent, the
//! proxy lets go of it: the descriptor in flight keeps the connection open until the
//! daemon takes it (and if that daemon dies first, the client sees its connection close,
//! as it would had the daemon died a moment later).

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::UnixStream;

/// Most bytes that may come along with a connection (the frames read before it moved).
pub const MAX_INITIAL: usize = 64 * 1024;

const FLAG_READONLY: u8 = 1;
const FLAG_KEEPALIVE: u8 = 2;
/// Flags and the length of the data that follows.
const HEAD: usize = 5;
/// What the first read takes: the head and, nearly always, all the data (an OPEN frame).
const FIRST_READ: usize = 4096;

/// A connection handed over.
pub struct Handed {
    pub stream: std::os::unix::net::UnixStream,
    pub readonly: bool,
    pub keepalive: bool,
    pub initial: Vec<u8>,
}

/// Gives `conn` to the daemon listening at `to`; resolves once it is on its way. Nothing
/// here blocks a thread: the proxy's one thread serves other clients meanwhile.
pub async fn send(
    to: &Path,
    conn: BorrowedFd<'_>,
    readonly: bool,
    keepalive: bool,
    initial: &[u8],
) -> io::Result<()> {
    if initial.len() > MAX_INITIAL {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too much pending data",
        ));
    }
    let mut chan = UnixStream::connect(to).await?;
    let mut msg = Vec::with_capacity(HEAD + initial.len());
    msg.push((readonly as u8 * FLAG_READONLY) | (keepalive as u8 * FLAG_KEEPALIVE));
    msg.extend_from_slice(&(initial.len() as u32).to_be_bytes());
    msg.extend_from_slice(initial);
    // The descriptor goes with the first bytes; the rest, if any, is plain data.
    let sent = chan
        .async_io(Interest::WRITABLE, || {
            vireo_fdpass::send(chan.as_fd(), &msg, Some(conn))
        })
        .await?;
    chan.write_all(&msg[sent..]).await?;
    Ok(())
}

/// Receives the connection handed over on an accepted handoff channel.
pub async fn receive(chan: &mut UnixStream) -> io::Result<Handed> {
    let mut buf = vec![0u8; FIRST_READ];
    let (n, fds) = chan
        .async_io(Interest::READABLE, || {
            vireo_fdpass::recv(chan.as_fd(), &mut buf)
        })
        .await?;
    let fd = fds
        .into_iter()
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no descriptor came"))?;
    if n < HEAD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "short handoff message",
        ));
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len > MAX_INITIAL {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "handoff data too large",
        ));
    }
    let flags = buf[0];
    // The first read may have brought less than the whole message, never more: a channel
    // carries one connection.
    let mut initial = buf.split_off(HEAD);
    initial.truncate(n - HEAD);
    if initial.len() < len {
        let got = initial.len();
        initial.resize(len, 0);
        chan.read_exact(&mut initial[got..]).await?;
    } else {
        initial.truncate(len);
    }
    Ok(Handed {
        stream: std::os::unix::net::UnixStream::from(fd),
        readonly: flags & FLAG_READONLY != 0,
        keepalive: flags & FLAG_KEEPALIVE != 0,
        initial,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn hand(initial: Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sock");
        let l = tokio::net::UnixListener::bind(&path).unwrap();
        let (mine, mut theirs) = UnixStream::pair().unwrap();
        let t = tokio::spawn(async move {
            let (mut chan, _) = l.accept().await.unwrap();
            receive(&mut chan).await.unwrap()
        });
        send(&path, mine.as_fd(), true, false, &initial)
            .await
            .unwrap();
        drop(mine);
        let h = t.await.unwrap();
        assert!(h.readonly && !h.keepalive);
        assert_eq!(h.initial, initial);
        use std::io::Write;
        (&h.stream).write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        theirs.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"x");
    }

    #[tokio::test]
    async fn a_connection_moves_with_its_pending_bytes() {
        hand(b"hello".to_vec()).await;
        hand(Vec::new()).await;
        // More than the first read takes.
        hand((0..MAX_INITIAL).map(|i| i as u8).collect()).await;
    }

    #[tokio::test]
    async fn too_much_data_is_refused_before_connecting() {
        let (mine, _theirs) = UnixStream::pair().unwrap();
        let e = send(
            Path::new("/nonexistent/h.sock"),
            mine.as_fd(),
            false,
            false,
            &vec![0u8; MAX_INITIAL + 1],
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
