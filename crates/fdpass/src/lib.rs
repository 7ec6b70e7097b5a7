//! File descriptors over UNIX sockets (`SCM_RIGHTS`): the one place Vireo builds and reads
//! control messages. Both calls are single, non-blocking system calls (`MSG_DONTWAIT`), so
//! they fit tokio's `async_io` as they are; an interrupted call is retried.
//!
//! Used by the connection handoff (`vireo-rpc`: the proxy gives a client to a daemon) and
//! by the QMP client (`vireo-qmp`: `getfd`/`add-fd` carry a descriptor to QEMU).
//!
//! Also here: [`pipe_with`], a pipe that holds a few bytes for a child process to read
//! from an inherited descriptor (how passphrases reach qemu-img, the shim and QEMU without
//! a command line or a file).

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

/// One `sendmsg(2)` of `data` on `sock`, with `fd` attached to its first byte if given.
/// Returns how many bytes went (the fd went with them if any did).
pub fn send(sock: BorrowedFd<'_>, data: &[u8], fd: Option<BorrowedFd<'_>>) -> io::Result<usize> {
    let iov = [io::IoSlice::new(data)];
    let fds: Vec<BorrowedFd<'_>> = fd.into_iter().collect();
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !cmsg.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::Error::other(
            "no room for the SCM_RIGHTS control message",
        ));
    }
    // MSG_NOSIGNAL: a closed peer is an EPIPE error, not a SIGPIPE.
    let flags = SendFlags::NOSIGNAL | SendFlags::DONTWAIT;
    loop {
        match rustix::net::sendmsg(sock, &iov, &mut cmsg, flags) {
            Err(rustix::io::Errno::INTR) => continue,
            r => return Ok(r?),
        }
    }
}

/// One `recvmsg(2)` into `buf` on `sock`: the bytes read (0 at end of stream) and the
/// descriptors that came with them (close-on-exec, ours to keep). Room is made for one
/// descriptor; a message that brought more is an error (the kernel closed the rest, and
/// those that did come are closed here).
pub fn recv(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [io::IoSliceMut::new(buf)];
    let flags = RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT;
    let msg = loop {
        match rustix::net::recvmsg(sock, &mut iov, &mut cmsg, flags) {
            Err(rustix::io::Errno::INTR) => continue,
            r => break r?,
        }
    };
    let mut fds = Vec::new();
    for m in cmsg.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = m {
            fds.extend(rights);
        }
    }
    if msg.flags.contains(ReturnFlags::CTRUNC) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "more descriptors came than were expected",
        ));
    }
    Ok((msg.bytes, fds))
}

/// Makes `from` the child's fd `to`, kept open across exec. For `pre_exec` (between fork
/// and exec): it makes only async-signal-safe calls. When `from` already is `to`, `dup2`
/// would do nothing and leave it close-on-exec, so the flag is cleared instead.
pub fn inherit_as(from: libc::c_int, to: libc::c_int) -> io::Result<()> {
    // SAFETY: fork/exec: fcntl and dup2 on descriptor numbers open in this (child) process,
    // which owns them through the parent's handles: no OwnedFd may be made here, as its
    // drop would close `to`. No memory is touched.
    unsafe {
        if from == to {
            let flags = libc::fcntl(to, libc::F_GETFD);
            if flags < 0 || libc::fcntl(to, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(io::Error::last_os_error());
            }
        } else if libc::dup2(from, to) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A pipe holding `data` with its write end closed: reading the returned end gives
/// `data`, then end of file. `data` must fit in the pipe (64 KiB on Linux), or this fails
/// instead of blocking. The end is close-on-exec: a child gets it only by `dup2`.
pub fn pipe_with(data: &[u8]) -> io::Result<OwnedFd> {
    use rustix::pipe::PipeFlags;
    let (r, w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
    let mut done = 0;
    while done < data.len() {
        match rustix::io::write(&w, &data[done..]) {
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    // The reader may block as usual.
    let fl = rustix::fs::fcntl_getfl(&r)?;
    rustix::fs::fcntl_setfl(&r, fl - rustix::fs::OFlags::NONBLOCK)?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_descriptor_travels_with_the_first_byte() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mine, mut theirs) = UnixStream::pair().unwrap();
        assert_eq!(send(a.as_fd(), b"hello", Some(mine.as_fd())).unwrap(), 5);
        assert_eq!(send(a.as_fd(), b"!", None).unwrap(), 1);
        let mut buf = [0u8; 16];
        let (n, fds) = recv(b.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(fds.len(), 1);
        let mut moved = UnixStream::from(fds.into_iter().next().unwrap());
        moved.write_all(b"x").unwrap();
        let mut one = [0u8; 1];
        theirs.read_exact(&mut one).unwrap();
        assert_eq!(&one, b"x");
        let (n, fds) = recv(b.as_fd(), &mut buf).unwrap();
        assert_eq!((&buf[..n], fds.len()), (&b"!"[..], 0));
        drop(a);
        assert_eq!(recv(b.as_fd(), &mut buf).unwrap().0, 0);
    }

    #[test]
    fn nothing_to_read_is_would_block() {
        let (_a, b) = UnixStream::pair().unwrap();
        let mut buf = [0u8; 4];
        let e = recv(b.as_fd(), &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }
}
