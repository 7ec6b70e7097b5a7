//! The kernel's device events (uevents): a socket of the `NETLINK_KOBJECT_UEVENT` family
//! joined to the kernel's multicast group, and the messages read from it. Only messages
//! the kernel sent are taken (udev's own rebroadcast, group 2, is not joined; anything
//! from a process is dropped).
//!
//! A message is `ACTION@DEVPATH`, then `KEY=value` properties, each ended by a NUL:
//! `add@/devices/virtual/net/veth0\0ACTION=add\0DEVPATH=/devices/…\0SUBSYSTEM=net\0…`.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// The kernel's multicast group.
const KERNEL_GROUP: u32 = 1;
/// Longest message taken: the kernel's are at most 2 KiB of properties and a path.
pub(crate) const MAX_MESSAGE: usize = 16 * 1024;
/// Socket buffer asked for: room for a burst (a hub with many devices plugged at once).
const RCVBUF: usize = 4 * 1024 * 1024;
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

impl UeventSocket {
    /// A socket joined to the kernel's uevent group, in the calling thread's network
    /// namespace (a network device's events reach only its namespace's sockets).
    pub(crate) fn open() -> io::Result<UeventSocket> {
        use rustix::net::{netlink, socket_with, sockopt, AddressFamily, SocketFlags, SocketType};
        let fd = socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            Some(netlink::KOBJECT_UEVENT),
        )?;
        // A bigger buffer beyond the limit needs CAP_NET_ADMIN; without it, the normal one.
        if sockopt::set_socket_recv_buffer_size_force(&fd, RCVBUF).is_err() {
            let _ = sockopt::set_socket_recv_buffer_size(&fd, RCVBUF);
        }
        rustix::net::bind(&fd, &netlink::SocketAddrNetlink::new(0, KERNEL_GROUP))?;
        Ok(UeventSocket { fd })
    }

    /// Reads the next message. `ENOBUFS` (an error) says events were lost: the socket's
    /// buffer overflowed.
    pub(crate) fn recv(&self, buf: &mut [u8]) -> io::Result<Recv> {
        use rustix::net::ReturnFlags;
        use rustix::net::{netlink::SocketAddrNetlink, RecvAncillaryBuffer, RecvFlags};
        let mut iov = [io::IoSliceMut::new(buf)];
        let msg = match rustix::net::recvmsg(
            &self.fd,
            &mut iov,
            &mut RecvAncillaryBuffer::default(),
            RecvFlags::empty(),
        ) {
            Ok(m) => m,
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(Recv::Empty),
            Err(e) => return Err(e.into()),
        };
        // A message from a process (nl_pid not 0) or cut short is not the kernel's whole
        // event.
        let from_kernel = msg
            .address
            .and_then(|a| SocketAddrNetlink::try_from(a).ok())
            .is_some_and(|a| a.pid() == 0);
        if !from_kernel || msg.flags.contains(ReturnFlags::TRUNC) {
            return Ok(Recv::Ignored);
        }
        let len = msg.bytes.min(buf.len());
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
