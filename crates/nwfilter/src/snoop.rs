//! Learning a guest's IPv4 address from the DHCP server's answers (`IP` of a binding that
//! gives none): a packet socket on the port device sees the DHCPACKs sent *to* the guest
//! (outgoing on the device, from UDP port 67; a kernel socket filter passes nothing else),
//! and the address acknowledged for the guest's MAC becomes its `IP`. What the guest sends
//! itself is never believed, so a guest cannot teach us an address of its choosing.

use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use crate::error::{NwFilterError, Result};

/// `ETH_P_IP`.
const ETH_P_IP: u16 = 0x0800;
/// `ETH_P_ALL`: only such sockets see what a device sends (the DHCP server's answers go
/// out of the port device); the filter keeps IPv4 alone.
const ETH_P_ALL: u16 = 0x0003;
/// `SKF_AD_OFF + SKF_AD_PROTOCOL`: loads the packet's ethertype.
const SKF_AD_PROTOCOL: u32 = 0xffff_f000;
/// `PACKET_OUTGOING`: a packet the host sent out of the device (to the guest).
const PACKET_OUTGOING: u8 = 4;
/// DHCP's magic cookie, and the options' codes we read.
const COOKIE: [u8; 4] = [99, 130, 83, 99];
const OPT_PAD: u8 = 0;
const OPT_END: u8 = 255;
const OPT_MESSAGE_TYPE: u8 = 53;
const DHCPACK: u8 = 5;

/// The classic BPF program: IPv4 UDP, not a fragment, from port 67. Offsets are from the
/// IP header (a datagram packet socket).
fn program() -> [libc::sock_filter; 11] {
    let op = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    [
        op(0x28, 0, 0, SKF_AD_PROTOCOL),     // ldh ethertype
        op(0x15, 0, 8, u32::from(ETH_P_IP)), // jeq IPv4, else drop
        op(0x30, 0, 0, 9),                   // ldb [9]: protocol
        op(0x15, 0, 6, 17),                  // jeq #17 (UDP), else drop
        op(0x28, 0, 0, 6),                   // ldh [6]: flags and fragment offset
        op(0x45, 4, 0, 0x1fff),              // jset #0x1fff: a fragment, drop
        op(0xb1, 0, 0, 0),                   // ldxb 4*([0]&0xf): header length
        op(0x48, 0, 0, 0),                   // ldh [x+0]: source port
        op(0x15, 0, 1, 67),                  // jeq #67, else drop
        op(0x06, 0, 0, 65535),               // ret: the whole packet
        op(0x06, 0, 0, 0),                   // ret: nothing
    ]
}

/// The address a DHCPACK in `ip` (an IPv4 packet) gives the client `mac`, if it is one.
pub fn acked_address(ip: &[u8], mac: &[u8; 6]) -> Option<Ipv4Addr> {
    let ihl = usize::from(*ip.first()? & 0x0f) * 4;
    if ip.first()? >> 4 != 4 || ihl < 20 || *ip.get(9)? != 17 {
        return None;
    }
    let udp = ip.get(ihl..)?;
    if udp.get(0..2)? != [0, 67] || udp.get(2..4)? != [0, 68] {
        return None;
    }
    let b = udp.get(8..)?;
    // BOOTREPLY, Ethernet addresses of 6 bytes, for this client.
    if *b.first()? != 2 || b.get(1..3)? != [1, 6] || b.get(28..34)? != mac {
        return None;
    }
    if b.get(236..240)? != COOKIE {
        return None;
    }
    let yiaddr: [u8; 4] = b.get(16..20)?.try_into().ok()?;
    let mut opts = b.get(240..)?;
    let mut ack = false;
    while let Some((&code, rest)) = opts.split_first() {
        match code {
            OPT_PAD => opts = rest,
            OPT_END => break,
            _ => {
                let (&len, rest) = rest.split_first()?;
                let (val, rest) = rest.split_at_checked(usize::from(len))?;
                if code == OPT_MESSAGE_TYPE && val.first() == Some(&DHCPACK) {
                    ack = true;
                }
                opts = rest;
            }
        }
    }
    let addr = Ipv4Addr::from(yiaddr);
    (ack && !addr.is_unspecified()).then_some(addr)
}

/// A running snooper; it stops when this is dropped.
pub struct Snooper {
    _stop: OwnedFd,
}

/// Watches device `ifindex` for DHCPACKs to `mac`; calls `learned` with each address
/// acknowledged (from a thread of its own).
pub fn start(
    ifindex: u32,
    mac: [u8; 6],
    learned: impl Fn(Ipv4Addr) + Send + 'static,
) -> Result<Snooper> {
    let sock = packet_socket(ifindex)?;
    let (stop_rx, stop_tx) = pipe()?;
    std::thread::Builder::new()
        .name(format!("dhcp-snoop-{ifindex}"))
        .spawn(move || run(sock, stop_rx, mac, learned))
        .map_err(|e| NwFilterError::io("cannot start the DHCP snooper", e))?;
    Ok(Snooper { _stop: stop_tx })
}

fn run(sock: OwnedFd, stop: OwnedFd, mac: [u8; 6], learned: impl Fn(Ipv4Addr)) {
    let mut buf = vec![0u8; 2048];
    let mut last = None;
    loop {
        use rustix::event::{poll, PollFd, PollFlags};
        let mut fds = [
            PollFd::new(&sock, PollFlags::IN),
            PollFd::new(&stop, PollFlags::IN),
        ];
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return,
        }
        // The other end closed (the binding went) or the device went away.
        if !fds[1].revents().is_empty()
            || fds[0]
                .revents()
                .intersects(PollFlags::ERR | PollFlags::NVAL)
        {
            return;
        }
        if !fds[0].revents().contains(PollFlags::IN) {
            continue;
        }
        // SAFETY: packet-socket address (rustix has no sockaddr_ll): all-zero is a valid
        // sockaddr_ll.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut from_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: packet-socket address (rustix's recvfrom does not give sll_pkttype): buf
        // and from are live buffers of the stated sizes; sock is open.
        let n = unsafe {
            libc::recvfrom(
                sock.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
                std::ptr::addr_of_mut!(from).cast(),
                &mut from_len,
            )
        };
        if n <= 0 {
            if n == 0 {
                return;
            }
            continue;
        }
        // Only what went out to the guest.
        if from.sll_pkttype != PACKET_OUTGOING {
            continue;
        }
        if let Some(addr) = acked_address(&buf[..n as usize], &mac) {
            if last != Some(addr) {
                last = Some(addr);
                learned(addr);
            }
        }
    }
}

/// A datagram packet socket for IPv4 on one device, with the DHCP-server filter attached.
fn packet_socket(ifindex: u32) -> Result<OwnedFd> {
    let io = |what: &str| NwFilterError::io(what.to_string(), std::io::Error::last_os_error());
    use rustix::net::{socket_with, AddressFamily, Protocol, SocketFlags, SocketType};
    let proto = std::num::NonZeroU32::new(u32::from(ETH_P_ALL.to_be())).map(Protocol::from_raw);
    let sock = socket_with(
        AddressFamily::PACKET,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        proto,
    )
    .map_err(|e| NwFilterError::io("cannot open a packet socket", e.into()))?;
    let prog = program();
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: socket filter (rustix has no SO_ATTACH_FILTER): fprog points at `prog`,
    // alive for the call; the kernel copies the program.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            std::ptr::addr_of!(fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io("cannot attach the DHCP filter"));
    }
    // SAFETY: packet-socket address (rustix has no sockaddr_ll): all-zero is a valid
    // sockaddr_ll; the fields set are the ones bind reads.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = ETH_P_ALL.to_be();
    addr.sll_ifindex = ifindex as i32;
    // SAFETY: packet-socket address: addr is a valid sockaddr_ll of the stated size.
    let r = unsafe {
        libc::bind(
            sock.as_fd().as_raw_fd(),
            std::ptr::addr_of!(addr).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io("cannot bind the packet socket to the device"));
    }
    Ok(sock)
}

/// (read end, write end), close-on-exec.
fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| NwFilterError::io("cannot make a pipe", e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x77, 0, 0x41];

    /// An IPv4/UDP packet from port 67 to 68 carrying a BOOTP reply for `mac` giving
    /// `yiaddr`, with option 53 = `kind`.
    fn reply(mac: [u8; 6], yiaddr: [u8; 4], kind: u8) -> Vec<u8> {
        let mut bootp = vec![0u8; 240];
        bootp[0] = 2;
        bootp[1] = 1;
        bootp[2] = 6;
        bootp[16..20].copy_from_slice(&yiaddr);
        bootp[28..34].copy_from_slice(&mac);
        bootp[236..240].copy_from_slice(&COOKIE);
        bootp.extend_from_slice(&[OPT_PAD, 53, 1, kind, 1, 4, 255, 255, 255, 0, OPT_END]);
        let mut udp = vec![0, 67, 0, 68, 0, 0, 0, 0];
        udp.extend_from_slice(&bootp);
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 77, 0, 1, 255, 255, 255, 255,
        ];
        ip.extend_from_slice(&udp);
        ip
    }

    #[test]
    fn acks_for_the_guest_are_learned_and_nothing_else() {
        let ack = reply(MAC, [10, 77, 0, 150], DHCPACK);
        assert_eq!(
            acked_address(&ack, &MAC),
            Some(Ipv4Addr::new(10, 77, 0, 150))
        );
        // An offer, another client, no address, a truncated packet, another port.
        assert_eq!(acked_address(&reply(MAC, [10, 77, 0, 150], 2), &MAC), None);
        let mut other = MAC;
        other[5] = 0x42;
        assert_eq!(
            acked_address(&reply(other, [10, 77, 0, 150], DHCPACK), &MAC),
            None
        );
        assert_eq!(
            acked_address(&reply(MAC, [0, 0, 0, 0], DHCPACK), &MAC),
            None
        );
        for cut in [0, 10, 30, 200, 270] {
            assert_eq!(acked_address(&ack[..cut], &MAC), None, "{cut}");
        }
        let mut port = ack.clone();
        port[21] = 53;
        assert_eq!(acked_address(&port, &MAC), None);
        // An option whose length runs past the end (the subnet mask's, after the type).
        let mut bad = ack.clone();
        bad[20 + 8 + 240 + 5] = 200;
        assert_eq!(acked_address(&bad, &MAC), None);
    }

    #[test]
    fn the_socket_filter_jumps_stay_inside() {
        let p = program();
        for (i, ins) in p.iter().enumerate() {
            if ins.code & 0x07 == 0x05 {
                assert!(i + 1 + usize::from(ins.jt) < p.len());
                assert!(i + 1 + usize::from(ins.jf) < p.len());
            }
        }
    }
}
