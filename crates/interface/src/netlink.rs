//! The kernel's interfaces over rtnetlink (`NETLINK_ROUTE`), synchronously: one request at
//! a time on a socket of the calling thread's network namespace, its replies read until the
//! kernel's acknowledgement (or the end of a dump). Messages are built and parsed with
//! `netlink-packet-route`; the socket is `netlink-sys`'s.
//!
//! What is read of a link: its name, kind, MAC address, MTU, administrative (IFF_UP) and
//! operational state, master, parent (a VLAN's device), and the bridge, bond and VLAN
//! settings libvirt shows. A link's speed is the ethtool ioctl's (sysfs shows the
//! namespace that mounted it, not the caller's).

use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    BondArpValidate, BondMode, BridgeStpState, InfoBond, InfoBridge, InfoData, InfoKind, InfoVlan,
    LinkAttribute, LinkFlags, LinkInfo, LinkLayerType, LinkMessage, State,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// Most links (or addresses) one dump may bring: the rest is refused, not allocated.
const MAX_OBJECTS: usize = 65536;
/// Receive buffer: larger than any datagram of a dump the kernel sends.
const RECV_BUF: usize = 64 * 1024;

/// A bridge's settings (`IFLA_BR_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeInfo {
    /// Forward delay in hundredths of a second, as sysfs shows it.
    pub forward_delay: u32,
    /// 0: no STP; 1: the kernel's; 2: a user-space daemon's.
    pub stp: u32,
}

/// A bond's settings (`IFLA_BOND_*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BondInfo {
    /// The kernel's mode number (0 balance-rr … 6 balance-alb).
    pub mode: u8,
    pub miimon: u32,
    pub updelay: u32,
    pub downdelay: u32,
    pub use_carrier: bool,
    pub arp_interval: u32,
    pub arp_targets: Vec<IpAddr>,
    /// The kernel's arp_validate number (0 none, 1 active, 2 backup, 3 all, …).
    pub arp_validate: u32,
}

/// One link, as the kernel describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `IFLA_INFO_KIND` (`bridge`, `bond`, `vlan`, `veth`, `tun`, …); none for a
    /// physical device or `lo`.
    pub kind: Option<String>,
    /// The hardware address, when it is a 6-byte one.
    pub mac: Option<[u8; 6]>,
    pub mtu: Option<u32>,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// The operational state, RFC 2863's number (`IF_OPER_*`: 0 unknown … 6 up).
    pub oper: u8,
    /// An Ethernet-like device (ARPHRD_ETHER).
    pub ether: bool,
    /// The index of its bridge or bond.
    pub master: Option<u32>,
    /// The index of the device under it (a VLAN's, a veth's peer).
    pub parent: Option<u32>,
    pub vlan_id: Option<u16>,
    pub bridge: Option<BridgeInfo>,
    pub bond: Option<BondInfo>,
}

/// One address of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub index: u32,
    pub addr: IpAddr,
    pub prefix: u8,
}

/// What to make with [`Netlink::add_link`].
#[derive(Debug, Clone)]
pub enum NewLink {
    /// A bridge: forward delay in hundredths of a second, STP on or off.
    Bridge {
        forward_delay: u32,
        stp: bool,
    },
    Bond(BondInfo),
    /// A VLAN of id `id` on the link of index `parent`.
    Vlan {
        parent: u32,
        id: u16,
    },
}

/// A change of an existing link (RTM_SETLINK); what is None is left as it is.
#[derive(Debug, Clone, Default)]
pub struct LinkChange {
    pub up: Option<bool>,
    /// The master's index; 0 frees the link from its master.
    pub master: Option<u32>,
    pub mtu: Option<u32>,
    pub mac: Option<[u8; 6]>,
}

/// A route netlink socket.
pub struct Netlink {
    sock: Socket,
    seq: u32,
}

impl Netlink {
    /// A socket in this thread's network namespace.
    pub fn open() -> io::Result<Netlink> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Netlink { sock, seq: 0 })
    }

    /// Sends `msg` and reads the replies: the objects of a dump, or nothing but the
    /// acknowledgement of a change. A NACK is the kernel's error.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let mut out = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut out);
        self.sock.send(&out, 0)?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut got = Vec::new();
        let mut buf: Vec<u8> = Vec::with_capacity(RECV_BUF);
        loop {
            buf.clear();
            let n = self.sock.recv(&mut buf, libc::MSG_TRUNC)?;
            if n > buf.len() {
                return Err(io::Error::other(format!(
                    "netlink reply of {n} bytes does not fit {RECV_BUF}"
                )));
            }
            let mut off = 0usize;
            while off < n {
                let rest = &buf[off..n];
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(rest)
                    .map_err(|e| io::Error::other(format!("bad netlink reply: {e}")))?;
                let len = m.header.length as usize;
                if len < 16 || len > rest.len() {
                    return Err(io::Error::other("bad netlink message length"));
                }
                off += (len + 3) & !3;
                if m.header.sequence_number != self.seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            Some(c) => Err(io::Error::from_raw_os_error(-c.get())),
                            None => Ok(got),
                        };
                    }
                    NetlinkPayload::Done(_) if dump => return Ok(got),
                    NetlinkPayload::InnerMessage(inner) => {
                        if got.len() >= MAX_OBJECTS {
                            return Err(io::Error::other("too many objects in a netlink dump"));
                        }
                        got.push(inner);
                    }
                    _ => {}
                }
            }
        }
    }

    /// Every link of the namespace.
    pub fn links(&mut self) -> io::Result<Vec<Link>> {
        let msgs = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_of(l)),
                _ => None,
            })
            .collect())
    }

    /// Every address of the namespace, IPv4 then IPv6 as the kernel dumps them.
    pub fn addresses(&mut self) -> io::Result<Vec<Addr>> {
        let msgs = self.request(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => addr_of(a),
                _ => None,
            })
            .collect())
    }

    /// Makes link `name` (refused by the kernel when the name is taken).
    pub fn add_link(&mut self, name: &str, what: &NewLink) -> io::Result<()> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        let info = match what {
            NewLink::Bridge { forward_delay, stp } => vec![
                LinkInfo::Kind(InfoKind::Bridge),
                LinkInfo::Data(InfoData::Bridge(vec![
                    InfoBridge::ForwardDelay(*forward_delay),
                    InfoBridge::StpState(if *stp {
                        BridgeStpState::KernelStp
                    } else {
                        BridgeStpState::Disabled
                    }),
                ])),
            ],
            NewLink::Bond(b) => {
                let mut data = vec![InfoBond::Mode(BondMode::from(b.mode))];
                if b.arp_interval > 0 {
                    data.push(InfoBond::ArpInterval(b.arp_interval));
                    let v4: Vec<_> = b
                        .arp_targets
                        .iter()
                        .filter_map(|a| match a {
                            IpAddr::V4(v) => Some(*v),
                            IpAddr::V6(_) => None,
                        })
                        .collect();
                    data.push(InfoBond::ArpIpTarget(v4));
                    data.push(InfoBond::ArpValidate(BondArpValidate::from(b.arp_validate)));
                } else if b.miimon > 0 {
                    data.push(InfoBond::MiiMon(b.miimon));
                    data.push(InfoBond::UpDelay(b.updelay));
                    data.push(InfoBond::DownDelay(b.downdelay));
                    data.push(InfoBond::UseCarrier(b.use_carrier));
                }
                vec![
                    LinkInfo::Kind(InfoKind::Bond),
                    LinkInfo::Data(InfoData::Bond(data)),
                ]
            }
            NewLink::Vlan { parent, id } => {
                m.attributes.push(LinkAttribute::Link(*parent));
                vec![
                    LinkInfo::Kind(InfoKind::Vlan),
                    LinkInfo::Data(InfoData::Vlan(vec![InfoVlan::Id(*id)])),
                ]
            }
        };
        m.attributes.push(LinkAttribute::LinkInfo(info));
        self.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL)
            .map(|_| ())
    }

    /// Sends a link of the caller's making (tests make veth pairs with it).
    #[cfg(test)]
    pub(crate) fn raw_new_link(&mut self, m: LinkMessage) -> io::Result<()> {
        self.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL)
            .map(|_| ())
    }

    /// Removes the link of index `index`.
    pub fn del_link(&mut self, index: u32) -> io::Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        self.request(RouteNetlinkMessage::DelLink(m), 0).map(|_| ())
    }

    /// Changes the link of index `index`.
    pub fn set_link(&mut self, index: u32, c: &LinkChange) -> io::Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        if let Some(up) = c.up {
            m.header.change_mask = LinkFlags::Up;
            if up {
                m.header.flags = LinkFlags::Up;
            }
        }
        if let Some(master) = c.master {
            m.attributes.push(LinkAttribute::Controller(master));
        }
        if let Some(mtu) = c.mtu {
            m.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = c.mac {
            m.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        self.request(RouteNetlinkMessage::SetLink(m), 0).map(|_| ())
    }

    /// Adds `addr/prefix` to the link of index `index`.
    pub fn add_address(&mut self, index: u32, addr: IpAddr, prefix: u8) -> io::Result<()> {
        self.request(
            RouteNetlinkMessage::NewAddress(addr_msg(index, addr, prefix)),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(|_| ())
    }

    /// Removes `addr/prefix` from the link of index `index`.
    pub fn del_address(&mut self, index: u32, addr: IpAddr, prefix: u8) -> io::Result<()> {
        self.request(
            RouteNetlinkMessage::DelAddress(addr_msg(index, addr, prefix)),
            0,
        )
        .map(|_| ())
    }
}

fn addr_msg(index: u32, addr: IpAddr, prefix: u8) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    m.header.prefix_len = prefix;
    m.header.index = index;
    m.attributes.push(AddressAttribute::Local(addr));
    m.attributes.push(AddressAttribute::Address(addr));
    m
}

fn link_of(l: LinkMessage) -> Link {
    let mut out = Link {
        index: l.header.index,
        name: String::new(),
        kind: None,
        mac: None,
        mtu: None,
        up: l.header.flags.contains(LinkFlags::Up),
        oper: 0,
        ether: l.header.link_layer_type == LinkLayerType::Ether,
        master: None,
        parent: None,
        vlan_id: None,
        bridge: None,
        bond: None,
    };
    for a in l.attributes {
        match a {
            LinkAttribute::IfName(n) => out.name = n,
            LinkAttribute::Address(a) => out.mac = <[u8; 6]>::try_from(a.as_slice()).ok(),
            LinkAttribute::Mtu(m) => out.mtu = Some(m),
            LinkAttribute::OperState(s) => out.oper = u8::from(s),
            LinkAttribute::Controller(m) if m != 0 => out.master = Some(m),
            LinkAttribute::Link(p) if p != 0 => out.parent = Some(p),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    match i {
                        LinkInfo::Kind(k) => out.kind = Some(k.to_string()),
                        LinkInfo::Data(d) => info_data(&mut out, d),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    out
}

fn info_data(out: &mut Link, d: InfoData) {
    match d {
        InfoData::Bridge(attrs) => {
            let mut b = BridgeInfo {
                forward_delay: 0,
                stp: 0,
            };
            for a in attrs {
                match a {
                    InfoBridge::ForwardDelay(v) => b.forward_delay = v,
                    InfoBridge::StpState(s) => b.stp = u32::from(s),
                    _ => {}
                }
            }
            out.bridge = Some(b);
        }
        InfoData::Bond(attrs) => {
            let mut b = BondInfo::default();
            for a in attrs {
                match a {
                    InfoBond::Mode(m) => b.mode = u8::from(m),
                    InfoBond::MiiMon(v) => b.miimon = v,
                    InfoBond::UpDelay(v) => b.updelay = v,
                    InfoBond::DownDelay(v) => b.downdelay = v,
                    InfoBond::UseCarrier(v) => b.use_carrier = v,
                    InfoBond::ArpInterval(v) => b.arp_interval = v,
                    InfoBond::ArpIpTarget(v) => {
                        b.arp_targets = v.into_iter().map(IpAddr::V4).collect()
                    }
                    InfoBond::ArpValidate(v) => b.arp_validate = u32::from(v),
                    _ => {}
                }
            }
            out.bond = Some(b);
        }
        InfoData::Vlan(attrs) => {
            for a in attrs {
                if let InfoVlan::Id(id) = a {
                    out.vlan_id = Some(id);
                }
            }
        }
        _ => {}
    }
}

fn addr_of(a: AddressMessage) -> Option<Addr> {
    let mut local = None;
    let mut address = None;
    for at in a.attributes {
        match at {
            AddressAttribute::Local(ip) => local = Some(ip),
            AddressAttribute::Address(ip) => address = Some(ip),
            _ => {}
        }
    }
    Some(Addr {
        index: a.header.index,
        addr: local.or(address)?,
        prefix: a.header.prefix_len,
    })
}

/// `IF_OPER_UP`.
pub const OPER_UP: u8 = 6;

/// The name libvirt gives an operational state (the kernel's `operstate` file).
pub fn oper_name(oper: u8) -> &'static str {
    match State::from(oper) {
        State::NotPresent => "notpresent",
        State::Down => "down",
        State::LowerLayerDown => "lowerlayerdown",
        State::Testing => "testing",
        State::Dormant => "dormant",
        State::Up => "up",
        _ => "unknown",
    }
}

/// `struct ethtool_cmd` of the kernel's uapi (ETHTOOL_GSET).
#[repr(C)]
#[derive(Default)]
struct EthtoolCmd {
    cmd: u32,
    supported: u32,
    advertising: u32,
    speed: u16,
    duplex: u8,
    port: u8,
    phy_address: u8,
    transceiver: u8,
    autoneg: u8,
    mdio_support: u8,
    maxtxpkt: u32,
    maxrxpkt: u32,
    speed_hi: u16,
    eth_tp_mdix: u8,
    eth_tp_mdix_ctrl: u8,
    lp_advertising: u32,
    reserved: [u32; 2],
}

/// `struct ifreq` with its `ifr_data` member.
#[repr(C)]
struct IfreqData {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GSET: u32 = 1;

/// The link speed of `name` in Mbit/s, from the ethtool ioctl (None when the device does
/// not tell or does not know).
pub fn speed(name: &str) -> Option<u32> {
    if name.len() >= libc::IFNAMSIZ {
        return None;
    }
    let sock = rustix::net::socket_with(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .ok()?;
    let mut cmd = EthtoolCmd {
        cmd: ETHTOOL_GSET,
        ..Default::default()
    };
    let mut req = IfreqData {
        name: [0; libc::IFNAMSIZ],
        data: (&mut cmd as *mut EthtoolCmd).cast(),
        _pad: [0; 16],
    };
    for (d, s) in req.name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: ioctl: SIOCETHTOOL reads the NUL-terminated name and writes at most one
    // `ethtool_cmd` through `data`, which points at `cmd`; both outlive the call.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &mut req) };
    if r != 0 {
        return None;
    }
    let speed = u32::from(cmd.speed) | (u32::from(cmd.speed_hi) << 16);
    // SPEED_UNKNOWN is -1.
    (speed != 0 && speed != u32::MAX && speed != 0xffff).then_some(speed)
}

/// A MAC address as libvirt writes it.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
