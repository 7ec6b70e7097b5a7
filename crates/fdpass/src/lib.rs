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
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

// SAFETY: CMSG_SPACE is plain arithmetic on its argument.
const FD_CMSG_SPACE: usize =
    unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;

/// Room for one control message carrying one fd, aligned for `cmsghdr`.
#[repr(C)]
union FdCmsgBuf {
    _align: libc::cmsghdr,
    bytes: [u8; FD_CMSG_SPACE],
}

impl FdCmsgBuf {
    fn new() -> Self {
        FdCmsgBuf {
            bytes: [0; FD_CMSG_SPACE],
        }
    }
}

/// One `sendmsg(2)` of `data` on `sock`, with `fd` attached to its first byte if given.
/// Returns how many bytes went (the fd went with them if any did).
pub fn send(sock: BorrowedFd<'_>, data: &[u8], fd: Option<BorrowedFd<'_>>) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut cbuf = FdCmsgBuf::new();
    // SAFETY: msghdr is a plain C struct for which all-zero (null pointers, zero lengths)
    // is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(fd) = fd {
        msg.msg_control = std::ptr::addr_of_mut!(cbuf).cast();
        msg.msg_controllen = FD_CMSG_SPACE as _;
        // SAFETY: msg_control points at FD_CMSG_SPACE zeroed bytes aligned for cmsghdr,
        // which is exactly CMSG_SPACE(sizeof(int)), so CMSG_FIRSTHDR yields a header inside
        // `cbuf` (checked for null anyway) and CMSG_DATA points at the int-sized room after
        // it, also inside `cbuf`. The fd is written unaligned to be safe on any ABI.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            if cmsg.is_null() {
                return Err(io::Error::other(
                    "no room for the SCM_RIGHTS control message",
                ));
            }
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), fd.as_raw_fd());
        }
    }
    loop {
        // SAFETY: `msg` describes memory that lives across the call (`iov` → `data`,
        // `msg_control` → `cbuf`), sendmsg only reads it; `sock` is borrowed, so open.
        // MSG_NOSIGNAL: a closed peer is an EPIPE error, not a SIGPIPE.
        let n = unsafe {
            libc::sendmsg(
                sock.as_raw_fd(),
                &msg,
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// One `recvmsg(2)` into `buf` on `sock`: the bytes read (0 at end of stream) and the
/// descriptors that came with them (close-on-exec, ours to keep). Room is made for one
/// descriptor; a message that brought more is an error (the kernel closed the rest, and
/// those that did come are closed here).
pub fn recv(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cbuf = FdCmsgBuf::new();
    // SAFETY: all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = std::ptr::addr_of_mut!(cbuf).cast();
    msg.msg_controllen = FD_CMSG_SPACE as _;
    let n = loop {
        // SAFETY: msg points at live buffers (`buf`, `cbuf`) of the stated sizes, which
        // recvmsg fills at most; `sock` is borrowed, so open.
        let n = unsafe {
            libc::recvmsg(
                sock.as_raw_fd(),
                &mut msg,
                libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let mut fds = Vec::new();
    // SAFETY: the kernel filled msg_control/msg_controllen inside `cbuf`; the CMSG_*
    // macros walk within it, every descriptor lies inside its header's cmsg_len, and each
    // SCM_RIGHTS descriptor is newly ours.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c).cast::<libc::c_int>();
                let len = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..len / std::mem::size_of::<libc::c_int>() {
                    let raw = std::ptr::read_unaligned(data.add(i));
                    fds.push(OwnedFd::from_raw_fd(raw));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "more descriptors came than were expected",
        ));
    }
    Ok((n, fds))
}

/// Makes `from` the child's fd `to`, kept open across exec. For `pre_exec` (between fork
/// and exec): it makes only async-signal-safe calls. When `from` already is `to`, `dup2`
/// would do nothing and leave it close-on-exec, so the flag is cleared instead.
pub fn inherit_as(from: libc::c_int, to: libc::c_int) -> io::Result<()> {
    // SAFETY: fcntl and dup2 on descriptors open in this process; no memory is touched.
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
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two fds into the array on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just made by pipe2 and are owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let mut done = 0;
    while done < data.len() {
        // SAFETY: the pointer and length describe the unwritten part of `data`; the fd is
        // open for the call.
        let n = unsafe {
            libc::write(
                w.as_raw_fd(),
                data[done..].as_ptr().cast(),
                data.len() - done,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        done += n as usize;
    }
    // The reader may block as usual.
    // SAFETY: fcntl on an open fd.
    unsafe {
        let fl = libc::fcntl(r.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(r.as_raw_fd(), libc::F_SETFL, fl & !libc::O_NONBLOCK);
    }
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
