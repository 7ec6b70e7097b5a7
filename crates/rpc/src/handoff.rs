//! Handing a client connection from one process to another: `vireo-proxyd` gives a client
//! whose URI names one driver to that driver's daemon, which then serves it directly (its
//! calls no longer pass through the proxy, and the daemon sees the client's own
//! credentials). The connection travels as an SCM_RIGHTS descriptor over the daemon's
//! `<name>-handoff-sock`, with the bytes the proxy already read from it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream as StdStream;
use std::path::Path;

/// Most bytes that may come along with a connection (the frames read before it moved).
pub const MAX_INITIAL: usize = 64 * 1024;

const FLAG_READONLY: u8 = 1;
const FLAG_KEEPALIVE: u8 = 2;

/// A connection handed over.
pub struct Handed {
    pub stream: StdStream,
    pub readonly: bool,
    pub keepalive: bool,
    pub initial: Vec<u8>,
}

/// Gives `conn` to the daemon listening at `to`; waits until it has taken it.
pub fn send(
    to: &Path,
    conn: &StdStream,
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
    let chan = StdStream::connect(to)?;
    let mut msg = Vec::with_capacity(5 + initial.len());
    msg.push((readonly as u8 * FLAG_READONLY) | (keepalive as u8 * FLAG_KEEPALIVE));
    msg.extend_from_slice(&(initial.len() as u32).to_be_bytes());
    msg.extend_from_slice(initial);
    send_with_fd(&chan, &msg, conn.as_raw_fd())?;
    // One byte back: the daemon holds the connection now.
    let mut ack = [0u8; 1];
    use std::io::Read;
    (&chan).read_exact(&mut ack)?;
    Ok(())
}

/// Receives one handed-over connection on an accepted handoff channel (blocking; call it
/// from a blocking context) and acknowledges it.
pub fn receive(chan: &StdStream) -> io::Result<Handed> {
    let mut buf = vec![0u8; 5 + MAX_INITIAL];
    let (n, fd) = recv_with_fd(chan, &mut buf)?;
    let fd = fd.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no descriptor came"))?;
    if n < 5 {
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
    let mut got = n - 5;
    // The rest of the data, if the first read did not bring it all.
    while got < len {
        use std::io::Read;
        let m = (&*chan).read(&mut buf[5 + got..5 + len])?;
        if m == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "handoff cut short",
            ));
        }
        got += m;
    }
    use std::io::Write;
    (&*chan).write_all(&[1])?;
    Ok(Handed {
        stream: StdStream::from(fd),
        readonly: buf[0] & FLAG_READONLY != 0,
        keepalive: buf[0] & FLAG_KEEPALIVE != 0,
        initial: buf[5..5 + len].to_vec(),
    })
}

fn send_with_fd(chan: &StdStream, data: &[u8], fd: i32) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: CMSG_SPACE is a pure computation on a constant size.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    // SAFETY: msghdr is plain data; every pointer in it refers to live buffers above for
    // the duration of sendmsg, and the cmsg header is written inside cbuf's bounds.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<i32>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<i32>(), fd);
        let mut sent = libc::sendmsg(chan.as_raw_fd(), &msg, libc::MSG_NOSIGNAL);
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        // The descriptor went with the first byte; the rest is plain data.
        while (sent as usize) < data.len() {
            let n = libc::send(
                chan.as_raw_fd(),
                data.as_ptr().add(sent as usize).cast(),
                data.len() - sent as usize,
                libc::MSG_NOSIGNAL,
            );
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            sent += n;
        }
    }
    Ok(())
}

fn recv_with_fd(chan: &StdStream, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: CMSG_SPACE is a pure computation on a constant size.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    // SAFETY: msghdr is plain data pointing at live buffers above; recvmsg fills at most
    // their lengths; the control data is read only inside cbuf, through the CMSG macros.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space;
        let n = libc::recvmsg(chan.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut fd = None;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if !cmsg.is_null()
            && (*cmsg).cmsg_level == libc::SOL_SOCKET
            && (*cmsg).cmsg_type == libc::SCM_RIGHTS
        {
            let raw = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<i32>());
            fd = Some(OwnedFd::from_raw_fd(raw));
        }
        Ok((n as usize, fd))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_moves_with_its_pending_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sock");
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let (mine, mut theirs) = StdStream::pair().unwrap();
        let t = std::thread::spawn(move || {
            let (chan, _) = l.accept().unwrap();
            receive(&chan).unwrap()
        });
        send(&path, &mine, true, false, b"hello").unwrap();
        drop(mine);
        let h = t.join().unwrap();
        assert!(h.readonly && !h.keepalive);
        assert_eq!(h.initial, b"hello");
        use std::io::{Read, Write};
        (&h.stream).write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        theirs.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"x");
    }
}
