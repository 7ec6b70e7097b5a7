//! Learning a guest's IPv4 address from the DHCP server's answers (`IP` of a binding that
//! gives none): a packet socket on the port device sees the DHCPACKs sent *to* the guest
//! (outgoing on the device, from UDP port 67; a kernel socket filter passes nothing else),
//! and the address acknowledged for the guest's MAC becomes its `IP`. What the guest sends
//! itself is never believed, so a guest cannot teach us an address of its choosing.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::error::{NwFilterError, Result};

/// `ETH_P_IP`.
const ETH_P_IP: u16 = 0x0800;
/// `ETH_P_ALL`: only such sockets see what a device sends (the DHCP server's answers go
/// out of the port device); the filter keeps IPv4 alone.
const ETH_P_ALL: u16 = 0x0003;
/// `SKF_AD_OFF + SKF_AD_PROTOCOL`: loads the packet's ethertype.
const SKF_AD_PROTOCOL: u32 = 0xffff_f000;
/// `SKF_AD_OFF + SKF_AD_PKTTYPE`: loads the packet's type (`sll_pkttype`).
const SKF_AD_PKTTYPE: u32 = 0xffff_f004;
/// `PACKET_OUTGOING`: a packet the host sent out of the device (to the guest).
const PACKET_OUTGOING: u32 = 4;
/// DHCP's magic cookie, and the options' codes we read.
const COOKIE: [u8; 4] = [99, 130, 83, 99];
const OPT_PAD: u8 = 0;
const OPT_END: u8 = 255;
const OPT_MESSAGE_TYPE: u8 = 53;
const DHCPACK: u8 = 5;

/// One classic BPF instruction: (code, jump if true, jump if false, k).
type Insn = (u16, u8, u8, u32);

/// The classic BPF program: sent out of the device (to the guest), IPv4 UDP, not a
/// fragment, from port 67. Offsets are from the IP header (a datagram packet socket).
fn program() -> [Insn; 13] {
    [
        (0x20, 0, 0, SKF_AD_PKTTYPE),      // ld packet type
        (0x15, 0, 10, PACKET_OUTGOING),    // jeq outgoing, else drop
        (0x28, 0, 0, SKF_AD_PROTOCOL),     // ldh ethertype
        (0x15, 0, 8, u32::from(ETH_P_IP)), // jeq IPv4, else drop
        (0x30, 0, 0, 9),                   // ldb [9]: protocol
        (0x15, 0, 6, 17),                  // jeq #17 (UDP), else drop
        (0x28, 0, 0, 6),                   // ldh [6]: flags and fragment offset
        (0x45, 4, 0, 0x1fff),              // jset #0x1fff: a fragment, drop
        (0xb1, 0, 0, 0),                   // ldxb 4*([0]&0xf): header length
        (0x48, 0, 0, 0),                   // ldh [x+0]: source port
        (0x15, 0, 1, 67),                  // jeq #67, else drop
        (0x06, 0, 0, 65535),               // ret: the whole packet
        (0x06, 0, 0, 0),                   // ret: nothing
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
        // Only what went out to the guest reaches here: the socket filter checks the
        // packet type.
        let n = match rustix::net::recv(&sock, &mut buf[..], rustix::net::RecvFlags::DONTWAIT) {
            Ok((0, _)) => return,
            Ok((n, _)) => n,
            Err(_) => continue,
        };
        if let Some(addr) = acked_address(buf.get(..n).unwrap_or(&buf), &mac) {
            if last != Some(addr) {
                last = Some(addr);
                learned(addr);
            }
        }
    }
}

/// A datagram packet socket for IPv4 on one device, with the DHCP-server filter attached.
fn packet_socket(ifindex: u32) -> Result<OwnedFd> {
    use rustix::net::{socket_with, AddressFamily, Protocol, SocketFlags, SocketType};
    let proto = std::num::NonZeroU32::new(u32::from(ETH_P_ALL.to_be())).map(Protocol::from_raw);
    let sock = socket_with(
        AddressFamily::PACKET,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        proto,
    )
    .map_err(|e| NwFilterError::io("cannot open a packet socket", e.into()))?;
    let sock = socket2::Socket::from(sock);
    let prog = program().map(|(code, jt, jf, k)| socket2::SockFilter::new(code, jt, jf, k));
    sock.attach_filter(&prog)
        .map_err(|e| NwFilterError::io("cannot attach the DHCP filter", e))?;
    let dev = device_address(ifindex)?;
    nix::sys::socket::bind(sock.as_raw_fd(), &dev)
        .map_err(|e| NwFilterError::io("cannot bind the packet socket to the device", e.into()))?;
    Ok(sock.into())
}

/// A packet-socket address naming device `ifindex`, for `bind`: the device's link-layer
/// address as the C library lists it (getifaddrs). `bind` reads its family and index (the
/// rest is ignored) and its protocol, 0 there, which keeps the socket's `ETH_P_ALL`.
fn device_address(ifindex: u32) -> Result<nix::sys::socket::LinkAddr> {
    let addrs = nix::ifaddrs::getifaddrs()
        .map_err(|e| NwFilterError::io("cannot list the network devices", e.into()))?;
    addrs
        .filter_map(|a| a.address.and_then(|s| s.as_link_addr().copied()))
        .find(|l| usize::try_from(ifindex).is_ok_and(|i| l.ifindex() == i) && l.protocol() == 0)
        .ok_or_else(|| {
            NwFilterError::io(
                "cannot bind the packet socket to the device",
                std::io::Error::from_raw_os_error(libc::ENODEV),
            )
        })
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
        for (i, &(code, jt, jf, _)) in p.iter().enumerate() {
            if code & 0x07 == 0x05 {
                assert!(i + 1 + usize::from(jt) < p.len());
                assert!(i + 1 + usize::from(jf) < p.len());
            }
        }
    }

    /// The drops all land on the last instruction, `ret 0`; the one before passes all.
    #[test]
    fn the_socket_filter_drops_at_its_end() {
        let p = program();
        let last = p.len() - 1;
        assert_eq!(p[last], (0x06, 0, 0, 0));
        assert_eq!(p[last - 1], (0x06, 0, 0, 65535));
        for (i, &(code, jt, jf, k)) in p.iter().enumerate() {
            if code & 0x07 == 0x05 {
                // jset jumps (true) to the drop; jeq falls through (true) or drops.
                let drop = if code == 0x45 { jt } else { jf };
                assert_eq!(i + 1 + usize::from(drop), last, "{i}: {k:#x}");
            }
        }
    }

    /// A packet socket gets its filter and is bound to the loopback device (it only
    /// listens); without CAP_NET_RAW the kernel refuses the socket and nothing is shown.
    #[test]
    fn a_packet_socket_opens_filtered_and_bound() {
        match packet_socket(1) {
            Ok(_) => {}
            Err(NwFilterError::Io { err, .. }) if err.raw_os_error() == Some(libc::EPERM) => {}
            Err(e) => panic!("{e}"),
        }
    }
}
