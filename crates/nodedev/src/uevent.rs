//! The kernel's device events (uevents): a socket of the `NETLINK_KOBJECT_UEVENT` family
//! joined to the kernel's multicast group, and the messages read from it. Only messages
//! the kernel sent are taken (udev's own rebroadcast, group 2, is not joined; anything
//! from a process is dropped).
//!
//! A message is `ACTION@DEVPATH`, then `KEY=value` properties, each ended by a NUL:
//! `add@/devices/virtual/net/veth0\0ACTION=add\0DEVPATH=/devices/…\0SUBSYSTEM=net\0…`.

use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// The kernel's multicast group.
const KERNEL_GROUP: u32 = 1;
/// Longest message taken: the kernel's are at most 2 KiB of properties and a path.
pub(crate) const MAX_MESSAGE: usize = 16 * 1024;
/// Socket buffer asked for: room for a burst (a hub with many devices plugged at once).
const RCVBUF: libc::c_int = 4 * 1024 * 1024;
/// Properties kept from one message (the kernel sends at most 64).
const MAX_PROPS: usize = 128;

/// One event about one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Uevent {
    /// `add`, `remove`, `change`, `move`, `bind`, `unbind`, `online`, `offline`.
    pub(crate) action: String,
    /// The device's directory below /sys (`/devices/…`).
    pub(crate) devpath: String,
    /// Its properties (`SUBSYSTEM`, `DEVTYPE`, `DEVPATH_OLD`, …).
    props: Vec<(String, String)>,
}

impl Uevent {
    /// Reads one kernel message; `None` for what is not one (udev's, garbage).
    pub(crate) fn parse(msg: &[u8]) -> Option<Uevent> {
        let mut parts = msg.split(|b| *b == 0).filter(|p| !p.is_empty());
        let head = std::str::from_utf8(parts.next()?).ok()?;
        let (action, devpath) = head.split_once('@')?;
        if action.is_empty() || !devpath.starts_with('/') {
            return None;
        }
        let mut props = Vec::new();
        for p in parts.take(MAX_PROPS) {
            let Ok(p) = std::str::from_utf8(p) else {
                continue;
            };
            if let Some((k, v)) = p.split_once('=') {
                props.push((k.to_string(), v.to_string()));
            }
        }
        Some(Uevent {
            action: action.to_string(),
            devpath: devpath.to_string(),
            props,
        })
    }

    /// A property's value.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.props
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// What one read of the socket gave.
pub(crate) enum Recv {
    Event(Uevent),
    /// A message that is not a kernel uevent, or too long: dropped.
    Ignored,
    /// Nothing waiting.
    Empty,
}

/// A netlink socket receiving the kernel's uevents (non-blocking).
pub(crate) struct UeventSocket {
    fd: OwnedFd,
}

/// `setsockopt(fd, SOL_SOCKET, opt, value)`.
fn set_int_opt(fd: BorrowedFd, opt: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: the pointer and length describe `value`, alive for the call; the fd is open.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl UeventSocket {
    /// A socket joined to the kernel's uevent group, in the calling thread's network
    /// namespace (a network device's events reach only its namespace's sockets).
    pub(crate) fn open() -> io::Result<UeventSocket> {
        // SAFETY: socket() takes no pointers; a non-negative result is a new descriptor
        // that nothing else owns.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::NETLINK_KOBJECT_UEVENT,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` was just returned by socket() and is owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // A bigger buffer beyond the limit needs CAP_NET_ADMIN; without it, the normal one.
        if set_int_opt(fd.as_fd(), libc::SO_RCVBUFFORCE, RCVBUF).is_err() {
            let _ = set_int_opt(fd.as_fd(), libc::SO_RCVBUF, RCVBUF);
        }
        // SAFETY: sockaddr_nl is plain data; all-zero is a valid value of it.
        let mut addr: libc::sockaddr_nl = unsafe { mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = KERNEL_GROUP;
        // SAFETY: the pointer and length describe `addr`, alive for the call.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(UeventSocket { fd })
    }

    /// Reads the next message. `ENOBUFS` (an error) says events were lost: the socket's
    /// buffer overflowed.
    pub(crate) fn recv(&self, buf: &mut [u8]) -> io::Result<Recv> {
        // SAFETY: sockaddr_nl and msghdr are plain data; all-zero is valid for both.
        let mut from: libc::sockaddr_nl = unsafe { mem::zeroed() };
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: as above.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_name = (&mut from as *mut libc::sockaddr_nl).cast();
        msg.msg_namelen = mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        // SAFETY: `msg` points at `from` and at `buf` through `iov`, all alive and
        // writable for the lengths given, for the duration of the call.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(Recv::Empty),
                _ => Err(e),
            };
        }
        // A message from a process (nl_pid not 0) or cut short is not the kernel's whole
        // event.
        if from.nl_pid != 0 || msg.msg_flags & libc::MSG_TRUNC != 0 {
            return Ok(Recv::Ignored);
        }
        let len = usize::try_from(n).unwrap_or(0).min(buf.len());
        Ok(match Uevent::parse(&buf[..len]) {
            Some(ev) => Recv::Event(ev),
            None => Recv::Ignored,
        })
    }
}

impl AsFd for UeventSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_kernel_message() {
        let msg = b"add@/devices/virtual/net/vnd0\0ACTION=add\0DEVPATH=/devices/virtual/net/vnd0\0SUBSYSTEM=net\0INTERFACE=vnd0\0IFINDEX=7\0SEQNUM=4242\0";
        let ev = Uevent::parse(msg).unwrap();
        assert_eq!(ev.action, "add");
        assert_eq!(ev.devpath, "/devices/virtual/net/vnd0");
        assert_eq!(ev.get("SUBSYSTEM"), Some("net"));
        assert_eq!(ev.get("IFINDEX"), Some("7"));
        assert_eq!(ev.get("DEVTYPE"), None);
    }

    #[test]
    fn refuses_what_is_not_one() {
        // udev's rebroadcast starts with its own header.
        assert_eq!(Uevent::parse(b"libudev\0\xfe\xed\xca\xfe"), None);
        assert_eq!(Uevent::parse(b""), None);
        assert_eq!(Uevent::parse(b"@/devices/x\0"), None);
        assert_eq!(Uevent::parse(b"add@devices\0"), None);
        // Properties past the limit are dropped, not kept.
        let mut long = b"change@/devices/x\0".to_vec();
        for i in 0..1000 {
            long.extend_from_slice(format!("K{i}=v\0").as_bytes());
        }
        let ev = Uevent::parse(&long).unwrap();
        assert_eq!(ev.props.len(), MAX_PROPS);
    }

    /// A socket can be opened and read without blocking (nothing waits, or some event of
    /// the machine's does).
    #[test]
    fn a_socket_opens_and_reads_without_blocking() {
        let s = match UeventSocket::open() {
            Ok(s) => s,
            // Not allowed here (a sandbox without netlink): nothing to test.
            Err(e) => {
                eprintln!("no uevent socket: {e}");
                return;
            }
        };
        let mut buf = vec![0; MAX_MESSAGE];
        for _ in 0..64 {
            match s.recv(&mut buf) {
                Ok(Recv::Empty) => return,
                Ok(_) => continue,
                Err(e) => panic!("{e}"),
            }
        }
    }
}
