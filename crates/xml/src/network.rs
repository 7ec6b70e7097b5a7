//! Virtual network XML (`<network>`), described once with [`xml_element!`], and the
//! pieces it shares with network ports and domain interfaces: `<bandwidth>`, `<vlan>`,
//! `<virtualport>`, PCI addresses and MAC addresses.
//!
//! [`NetworkDef::parse`] reads a definition, checks it as libvirt's network_conf.c and
//! its network driver do when a network is defined, and normalises it the way libvirt
//! writes it back ([`NetworkDef::normalise`]): `<forward>` always carries its mode, a
//! network whose bridge libvirt makes (isolated, nat, route, open) always has
//! `<bridge stp=… delay=…>`, values libvirt leaves out (a zero, a `no` it does not
//! keep) are dropped. [`NetworkDef::format`] writes libvirt's element order.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use roxmltree::Node;

use crate::model::{format_root, parse_root, XmlElement, XmlValue, YesNo};
use crate::util::{str_enum, Writer};
use crate::{format_mac, parse_mac, xml_element, XmlError};

fn invalid(msg: String) -> XmlError {
    XmlError::Invalid(msg)
}

fn unsupported(msg: String) -> XmlError {
    XmlError::Unsupported(msg)
}

// ---------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------

/// An IPv4 or IPv6 address, written the way libvirt writes it (IPv6 compressed).
impl XmlValue for IpAddr {
    fn from_xml(s: &str) -> Result<Self, String> {
        s.trim()
            .parse()
            .map_err(|_| "expected an IPv4 or IPv6 address".to_string())
    }
    fn to_xml(&self) -> String {
        self.to_string()
    }
}

impl XmlValue for Ipv4Addr {
    fn from_xml(s: &str) -> Result<Self, String> {
        s.trim()
            .parse()
            .map_err(|_| "expected an IPv4 address".to_string())
    }
    fn to_xml(&self) -> String {
        self.to_string()
    }
}

/// A MAC address: read in any spelling [`parse_mac`] accepts, written lowercase with
/// colons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// A group (multicast or broadcast) address, which no interface may have.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_mac(&self.0))
    }
}

impl FromStr for MacAddr {
    type Err = XmlError;
    fn from_str(s: &str) -> Result<MacAddr, XmlError> {
        parse_mac(s.trim())
            .map(MacAddr)
            .ok_or_else(|| invalid(format!("invalid MAC address '{s}'")))
    }
}

impl XmlValue for MacAddr {
    fn from_xml(s: &str) -> Result<Self, String> {
        parse_mac(s.trim())
            .map(MacAddr)
            .ok_or_else(|| "expected a MAC address".to_string())
    }
    fn to_xml(&self) -> String {
        self.to_string()
    }
}

/// A number libvirt writes in hexadecimal with at least `W` digits (`0x0000`), read in
/// decimal or `0x` hexadecimal. The parts of a PCI address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Hex<const W: usize>(pub u32);

impl<const W: usize> XmlValue for Hex<W> {
    fn from_xml(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let v = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            Some(h) => u32::from_str_radix(h, 16),
            None => t.parse(),
        };
        v.map(Hex)
            .map_err(|_| "expected a decimal or 0x-prefixed hexadecimal number".to_string())
    }
    fn to_xml(&self) -> String {
        format!("0x{:0w$x}", self.0, w = W)
    }
}

str_enum! {
    /// `<ip family=…>` and `<route family=…>`.
    IpFamily, "address family" {
        Ipv4 => "ipv4",
        Ipv6 => "ipv6",
    }
}

impl IpFamily {
    /// The family of `addr`.
    pub fn of(addr: &IpAddr) -> IpFamily {
        match addr {
            IpAddr::V4(_) => IpFamily::Ipv4,
            IpAddr::V6(_) => IpFamily::Ipv6,
        }
    }

    /// How libvirt names the family in messages.
    fn label(self) -> &'static str {
        match self {
            IpFamily::Ipv4 => "IPv4",
            IpFamily::Ipv6 => "IPv6",
        }
    }
}

// ---------------------------------------------------------------------------
// Address arithmetic
// ---------------------------------------------------------------------------

/// The length of a contiguous IPv4 netmask (`255.255.255.0` → 24); `None` when the ones
/// are not contiguous.
pub fn netmask_prefix(mask: Ipv4Addr) -> Option<u8> {
    let v = u32::from(mask);
    let ones = v.leading_ones();
    if v.checked_shl(ones).unwrap_or(0) == 0 {
        u8::try_from(ones).ok()
    } else {
        None
    }
}

/// The IPv4 netmask of a prefix length (24 → `255.255.255.0`); `None` above 32.
pub fn prefix_netmask(prefix: u8) -> Option<Ipv4Addr> {
    (prefix <= 32).then(|| Ipv4Addr::from(mask_v4(prefix)))
}

fn mask_v4(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

fn mask_v6(prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p => u128::MAX << (128 - u32::from(p.min(128))),
    }
}

/// `addr` with every bit past `prefix` cleared; `None` when the prefix is too long for
/// the family.
pub fn mask_address(addr: IpAddr, prefix: u8) -> Option<IpAddr> {
    match addr {
        IpAddr::V4(a) if prefix <= 32 => {
            Some(IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask_v4(prefix))))
        }
        IpAddr::V6(a) if prefix <= 128 => {
            Some(IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask_v6(prefix))))
        }
        _ => None,
    }
}

/// Whether `a` and `b` are of one family and in the same `prefix`-long network.
fn same_network(a: IpAddr, b: IpAddr, prefix: u8) -> bool {
    IpFamily::of(&a) == IpFamily::of(&b)
        && matches!((mask_address(a, prefix), mask_address(b, prefix)), (Some(x), Some(y)) if x == y)
}

/// The address as a number, to compare and count addresses of one family.
fn addr_number(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

// ---------------------------------------------------------------------------
// Shared with ports and domain interfaces
// ---------------------------------------------------------------------------

str_enum! {
    /// `type` of a PCI `<address>`.
    PciAddressType, "address type" {
        Pci => "pci",
    }
}

xml_element! {
    /// A PCI address: `<address type='pci' domain='0x0000' bus='0x03' slot='0x10'
    /// function='0x1'/>` in a hostdev network's `<forward>`, the same without `type` in
    /// a port's `<plug>`. A missing part is 0.
    #[derive(Default)]
    pub struct PciAddress {
        attr_opt addr_type: PciAddressType = "type",
        attr_def domain: Hex<4> = "domain",
        attr_def bus: Hex<2> = "bus",
        attr_def slot: Hex<2> = "slot",
        attr_def function: Hex<1> = "function",
    }
    check PciAddress::validate_mut;
}

impl PciAddress {
    /// The address `domain:bus:slot.function`, with `type='pci'`.
    pub fn new(domain: u32, bus: u32, slot: u32, function: u32) -> PciAddress {
        PciAddress {
            addr_type: Some(PciAddressType::Pci),
            domain: Hex(domain),
            bus: Hex(bus),
            slot: Hex(slot),
            function: Hex(function),
        }
    }

    /// Each part within what PCI allows.
    pub fn validate(&self) -> Result<(), XmlError> {
        for (what, v, max) in [
            ("domain", self.domain.0, 0xffff),
            ("bus", self.bus.0, 0xff),
            ("slot", self.slot.0, 0x1f),
            ("function", self.function.0, 7),
        ] {
            if v > max {
                return Err(invalid(format!(
                    "Invalid PCI address {what}='0x{v:x}', must be <= 0x{max:x}"
                )));
            }
        }
        Ok(())
    }

    fn validate_mut(&mut self) -> Result<(), XmlError> {
        self.validate()
    }
}

impl fmt::Display for PciAddress {
    /// `0000:03:10.1`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain.0, self.bus.0, self.slot.0, self.function.0
        )
    }
}

xml_element! {
    /// `<inbound>` or `<outbound>` of a `<bandwidth>`: `average`, `peak` and `floor` in
    /// KiB/s, `burst` in KiB.
    #[derive(Default)]
    pub struct BandwidthRate {
        attr_opt average: u64 = "average",
        attr_opt peak: u64 = "peak",
        attr_opt floor: u64 = "floor",
        attr_opt burst: u64 = "burst",
    }
    check BandwidthRate::validate_mut;
}

impl BandwidthRate {
    /// An average (or a floor) is required; peak and burst only shape an average.
    pub fn validate(&self) -> Result<(), XmlError> {
        if self.average.is_none() && self.floor.is_none() {
            return Err(invalid(
                "Missing mandatory average or floor attributes".to_string(),
            ));
        }
        if (self.peak.is_some() || self.burst.is_some()) && self.average.is_none() {
            return Err(unsupported(
                "'peak' and 'burst' require 'average' attribute".to_string(),
            ));
        }
        Ok(())
    }

    fn validate_mut(&mut self) -> Result<(), XmlError> {
        self.validate()
    }

    /// Drops zeros, which libvirt does not write; `false` when nothing is left (neither
    /// an average nor a floor), so the element goes.
    fn normalise(&mut self) -> bool {
        for v in [
            &mut self.average,
            &mut self.peak,
            &mut self.floor,
            &mut self.burst,
        ] {
            if *v == Some(0) {
                *v = None;
            }
        }
        if self.average.is_none() {
            self.peak = None;
            self.burst = None;
        }
        self.average.is_some() || self.floor.is_some()
    }
}

xml_element! {
    /// `<bandwidth>`: QoS of a network, a portgroup, a port or a domain interface.
    #[derive(Default)]
    pub struct Bandwidth {
        /// `classID`: the traffic class of a port (ports only).
        attr_opt class_id: u32 = "classID",
        child_opt inbound: BandwidthRate = "inbound",
        child_opt outbound: BandwidthRate = "outbound",
    }
    check Bandwidth::check;
}

impl Bandwidth {
    /// Checks each rate; a floor is only for inbound traffic.
    pub fn validate(&self) -> Result<(), XmlError> {
        for r in [&self.inbound, &self.outbound].into_iter().flatten() {
            r.validate()?;
        }
        if self.outbound.as_ref().is_some_and(|o| o.floor.is_some()) {
            return Err(unsupported(
                "'floor' attribute allowed only in <inbound> element".to_string(),
            ));
        }
        Ok(())
    }

    /// Neither inbound nor outbound: libvirt drops such a `<bandwidth>`.
    pub fn is_empty(&self) -> bool {
        self.inbound.is_none() && self.outbound.is_none()
    }

    /// Whether the inbound rate has a floor (which only some networks allow).
    pub fn has_floor(&self) -> bool {
        self.inbound.as_ref().is_some_and(|i| i.floor.is_some())
    }

    /// As libvirt writes it: zeros dropped, a rate with neither average nor floor gone.
    pub fn normalise(&mut self) {
        for r in [&mut self.inbound, &mut self.outbound] {
            if r.as_mut().is_some_and(|r| !r.normalise()) {
                *r = None;
            }
        }
        if self.class_id == Some(0) {
            self.class_id = None;
        }
    }

    fn check(&mut self) -> Result<(), XmlError> {
        self.validate()?;
        self.normalise();
        Ok(())
    }
}

/// Normalises an optional bandwidth, dropping it when empty.
pub(crate) fn normalise_bandwidth_opt(b: &mut Option<Bandwidth>) {
    if let Some(bw) = b {
        bw.normalise();
        if bw.is_empty() {
            *b = None;
        }
    }
}

str_enum! {
    /// `<tag nativeMode=…>` of a trunk.
    NativeVlanMode, "native VLAN mode" {
        Tagged => "tagged",
        Untagged => "untagged",
    }
}

xml_element! {
    /// `<tag id='42' nativeMode='untagged'/>`.
    pub struct VlanTag {
        attr id: u32 = "id",
        attr_opt native_mode: NativeVlanMode = "nativeMode",
    }
}

xml_element! {
    /// `<vlan trunk='yes'>` and its tags.
    pub struct Vlan {
        /// Written only as `yes` (more than one tag makes a trunk anyway).
        attr_opt trunk: YesNo = "trunk",
        children tags: VlanTag = "tag",
    }
    check Vlan::check;
}

impl Vlan {
    /// At least one tag, each at most 4095, at most one native; `trunk='no'` only for a
    /// single tag without native mode.
    pub fn validate(&self) -> Result<(), XmlError> {
        if self.tags.is_empty() {
            return Err(invalid(
                "missing tag id - each <vlan> must have at least one <tag id='n'/> subelement"
                    .to_string(),
            ));
        }
        for t in &self.tags {
            if t.id > 4095 {
                return Err(invalid(format!(
                    "vlan tag id {} too large (maximum 4095)",
                    t.id
                )));
            }
        }
        let natives = self.tags.iter().filter(|t| t.native_mode.is_some()).count();
        if natives > 1 {
            return Err(invalid("duplicate native vlan setting".to_string()));
        }
        if self.trunk == Some(YesNo::No) {
            if self.tags.len() > 1 {
                return Err(invalid(
                    "invalid \"trunk='no'\" in <vlan> - trunk='yes' is required for more than one vlan tag"
                        .to_string(),
                ));
            }
            if natives > 0 {
                return Err(invalid(
                    "invalid configuration in <vlan> - \"trunk='no'\" is not allowed with a native vlan id"
                        .to_string(),
                ));
            }
        }
        Ok(())
    }

    /// Whether traffic carries several tags (or was declared a trunk).
    pub fn is_trunk(&self) -> bool {
        self.trunk == Some(YesNo::Yes) || self.tags.len() > 1
    }

    /// As libvirt writes it: `trunk='yes'` when a trunk, no `trunk` otherwise.
    pub fn normalise(&mut self) {
        self.trunk = self.is_trunk().then_some(YesNo::Yes);
    }

    fn check(&mut self) -> Result<(), XmlError> {
        self.validate()?;
        self.normalise();
        Ok(())
    }
}

str_enum! {
    /// `<virtualport type=…>`.
    VirtualPortType, "virtualport type" {
        Qbg => "802.1Qbg",
        Qbh => "802.1Qbh",
        OpenVSwitch => "openvswitch",
        Midonet => "midonet",
    }
}

xml_element! {
    /// `<parameters>` of a `<virtualport>`; which apply depends on the type.
    #[derive(Default)]
    pub struct VirtualPortParams {
        attr_opt managerid: u8 = "managerid",
        attr_opt typeid: u32 = "typeid",
        attr_opt typeidversion: u8 = "typeidversion",
        attr_opt instanceid: [u8; 16] = "instanceid",
        attr_opt interfaceid: [u8; 16] = "interfaceid",
        attr_opt profileid: String = "profileid",
    }
}

xml_element! {
    /// `<virtualport type='openvswitch'><parameters …/></virtualport>`.
    #[derive(Default)]
    pub struct VirtualPort {
        attr_opt vport_type: VirtualPortType = "type",
        child_opt parameters: VirtualPortParams = "parameters",
    }
    check VirtualPort::check;
}

impl VirtualPort {
    /// Values in range, and only the parameters the type has.
    pub fn validate(&self) -> Result<(), XmlError> {
        let Some(p) = &self.parameters else {
            return Ok(());
        };
        if p.typeid.is_some_and(|t| t > 0xff_ffff) {
            return Err(invalid("value for typeid out of range".to_string()));
        }
        if p.profileid.as_ref().is_some_and(|s| s.len() > 39) {
            return Err(invalid("profileid parameter too long".to_string()));
        }
        let Some(t) = self.vport_type else {
            return Ok(());
        };
        let allowed: &[&str] = match t {
            VirtualPortType::Qbg => &["managerid", "typeid", "typeidversion", "instanceid"],
            VirtualPortType::Qbh => &["profileid"],
            VirtualPortType::OpenVSwitch => &["interfaceid", "profileid"],
            VirtualPortType::Midonet => &["interfaceid"],
        };
        let given = [
            ("managerid", p.managerid.is_some()),
            ("typeid", p.typeid.is_some()),
            ("typeidversion", p.typeidversion.is_some()),
            ("instanceid", p.instanceid.is_some()),
            ("interfaceid", p.interfaceid.is_some()),
            ("profileid", p.profileid.is_some()),
        ];
        for (name, set) in given {
            if set && !allowed.contains(&name) {
                return Err(invalid(format!(
                    "attribute {name} not allowed for <virtualport type='{t}'>"
                )));
            }
        }
        Ok(())
    }

    /// Neither a type nor parameters: libvirt writes nothing.
    pub fn is_empty(&self) -> bool {
        self.vport_type.is_none() && self.parameters.is_none()
    }

    /// As libvirt writes it: an empty profile id and empty `<parameters>` dropped.
    pub fn normalise(&mut self) {
        if let Some(p) = &mut self.parameters {
            if p.profileid.as_deref() == Some("") {
                p.profileid = None;
            }
            if *p == VirtualPortParams::default() {
                self.parameters = None;
            }
        }
    }

    fn check(&mut self) -> Result<(), XmlError> {
        self.validate()?;
        self.normalise();
        Ok(())
    }
}

/// Normalises an optional virtual port, dropping it when empty.
pub(crate) fn normalise_virtualport_opt(v: &mut Option<VirtualPort>) {
    if let Some(vp) = v {
        vp.normalise();
        if vp.is_empty() {
            *v = None;
        }
    }
}

/// `<metadata>`: the inner XML kept verbatim (each top-level child carries the
/// namespace declarations it needs).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata(pub String);

impl XmlElement for Metadata {
    fn from_node(n: Node) -> Result<Metadata, XmlError> {
        Ok(Metadata(crate::domain::metadata_inner(
            n,
            n.document().input_text(),
        )))
    }

    fn write_to(&self, w: &mut Writer, name: &str) {
        if self.0.trim().is_empty() {
            w.elem(name).empty();
        } else {
            w.elem(name).open();
            w.raw(&self.0);
            w.close(name);
        }
    }
}

// ---------------------------------------------------------------------------
// <forward>
// ---------------------------------------------------------------------------

str_enum! {
    /// `<forward mode=…>`; a network without `<forward>` is isolated.
    ForwardMode, "forward mode" {
        Nat => "nat",
        Route => "route",
        Open => "open",
        Bridge => "bridge",
        Private => "private",
        Vepa => "vepa",
        Passthrough => "passthrough",
        Hostdev => "hostdev",
    }
}

impl ForwardMode {
    /// The modes in which libvirt makes the bridge itself (with isolated networks).
    pub fn has_own_bridge(self) -> bool {
        matches!(
            self,
            ForwardMode::Nat | ForwardMode::Route | ForwardMode::Open
        )
    }
}

str_enum! {
    /// `<driver name=…>` of a hostdev network or port.
    ForwardDriverName, "forward driver name" {
        Kvm => "kvm",
        Vfio => "vfio",
    }
}

xml_element! {
    /// `<address start='…' end='…'/>` of `<nat>`: the IPv4 addresses to SNAT to.
    pub struct NatAddress {
        attr start: Ipv4Addr = "start",
        attr end: Ipv4Addr = "end",
    }
}

xml_element! {
    /// `<port start='1024' end='65535'/>` of `<nat>`: the source ports to use.
    pub struct NatPort {
        attr start: u16 = "start",
        attr end: u16 = "end",
    }
}

xml_element! {
    /// `<nat ipv6='yes'>` of a NAT network's `<forward>`.
    #[derive(Default)]
    pub struct Nat {
        yes_no ipv6: bool = "ipv6",
        child_opt address: NatAddress = "address",
        child_opt port: NatPort = "port",
    }
}

xml_element! {
    /// `<interface dev='eth0'/>` of `<forward>`: one device of the pool.
    pub struct ForwardInterface {
        attr dev: String = "dev",
        /// Guest interfaces using it (live XML only).
        attr_opt connections: u32 = "connections",
    }
}

xml_element! {
    /// `<pf dev='eth0'/>`: the SR-IOV physical function whose VFs make the pool.
    pub struct ForwardPf {
        attr dev: String = "dev",
    }
}

xml_element! {
    /// `<forward>`: how the network reaches the outside.
    #[derive(Default)]
    pub struct Forward {
        /// The (first) device used; libvirt writes it from the first `<interface>`.
        attr_opt dev: String = "dev",
        /// `nat` when absent.
        attr_opt mode: ForwardMode = "mode",
        /// Hostdev networks: whether libvirt detaches the devices from the host.
        yes_no managed: bool = "managed",
        in_attr_opt driver: ForwardDriverName = "driver@name",
        child_opt nat: Nat = "nat",
        children pfs: ForwardPf = "pf",
        children interfaces: ForwardInterface = "interface",
        /// Hostdev networks: the VFs by PCI address.
        children addresses: PciAddress = "address",
    }
}

impl Forward {
    /// The mode, `nat` when not given.
    pub fn mode(&self) -> ForwardMode {
        self.mode.unwrap_or(ForwardMode::Nat)
    }

    /// The network devices of the pool: the `<interface>`s, or `dev` alone.
    pub fn devs(&self) -> Vec<&str> {
        if self.interfaces.is_empty() {
            self.dev.iter().map(String::as_str).collect()
        } else {
            self.interfaces.iter().map(|i| i.dev.as_str()).collect()
        }
    }

    /// As libvirt writes it.
    pub fn normalise(&mut self) {
        let mode = self.mode();
        self.mode = Some(mode);
        self.managed = (mode == ForwardMode::Hostdev).then_some(self.managed == Some(true));
        if mode != ForwardMode::Nat {
            self.nat = None;
        }
        if let Some(n) = &self.nat {
            if n.ipv6.is_none() && n.address.is_none() && n.port.is_none() {
                self.nat = None;
            }
        }
        if self.pfs.is_empty() && self.addresses.is_empty() {
            if self.interfaces.is_empty() {
                if let Some(d) = &self.dev {
                    self.interfaces.push(ForwardInterface {
                        dev: d.clone(),
                        connections: None,
                    });
                }
            }
            self.dev = self.interfaces.first().map(|i| i.dev.clone());
        } else {
            self.dev = None;
        }
        for i in &mut self.interfaces {
            if i.connections == Some(0) {
                i.connections = None;
            }
        }
    }

    fn validate(&self, net: &str) -> Result<(), XmlError> {
        let mode = self.mode();
        if let Some(nat) = &self.nat {
            if mode != ForwardMode::Nat {
                return Err(invalid(format!(
                    "The <nat> element can only be used when <forward> 'mode' is 'nat' in network {net}"
                )));
            }
            if let Some(a) = &nat.address {
                if u32::from(a.start) > u32::from(a.end) {
                    return Err(invalid(format!(
                        "range {} - {} is reversed in <nat> in <forward> in network '{net}'",
                        a.start, a.end
                    )));
                }
            }
            if let Some(p) = &nat.port {
                if p.end < p.start {
                    return Err(invalid(format!(
                        "Missing or invalid 'end' attribute in <port> in <nat> in <forward> in network {net}"
                    )));
                }
            }
        }
        if self.dev.is_some() && (!self.addresses.is_empty() || !self.pfs.is_empty()) {
            return Err(invalid(format!(
                "the <forward> 'dev' attribute cannot be used when <address> or <pf> sub-elements are present in network {net}"
            )));
        }
        if let (Some(dev), Some(first)) = (&self.dev, self.interfaces.first()) {
            if first.dev != *dev {
                return Err(invalid(format!(
                    "<forward dev='{dev}'> must match first <interface dev='{}'/> in network {net}",
                    first.dev
                )));
            }
        }
        for (i, a) in self.interfaces.iter().enumerate() {
            if self.interfaces[..i].iter().any(|b| b.dev == a.dev) {
                return Err(invalid(format!(
                    "interface '{}' can only be listed once in network {net}",
                    a.dev
                )));
            }
        }
        for (i, a) in self.addresses.iter().enumerate() {
            if a.addr_type.is_none() {
                return Err(invalid(format!("missing address type in network {net}")));
            }
            a.validate()?;
            if self.addresses[..i]
                .iter()
                .any(|b| b.to_string() == a.to_string())
            {
                return Err(invalid(format!(
                    "PCI device '{a}' can only be listed once in network {net}"
                )));
            }
        }
        if self.pfs.len() > 1 {
            return Err(invalid(format!(
                "Only one <pf> element is allowed in <forward> of network {net}"
            )));
        }
        let uses_if = !self.devs().is_empty();
        let kinds = [!self.pfs.is_empty(), uses_if, !self.addresses.is_empty()];
        if kinds.iter().filter(|k| **k).count() > 1 {
            return Err(unsupported(format!(
                "<address>, <interface>, and <pf> elements of <forward> in network {net} are mutually exclusive"
            )));
        }
        if mode == ForwardMode::Hostdev {
            if let Some(d) = self.devs().first() {
                return Err(unsupported(format!(
                    "hostdev network '{net}' lists '{d}' in the device pool, but hostdev networks require all devices to be listed by PCI address, not network device name"
                )));
            }
        } else if !self.addresses.is_empty() {
            return Err(unsupported(format!(
                "network '{net}' has forward mode '{mode}' but lists a device by PCI address in the device pool. This is only supported for networks with forward mode 'hostdev'"
            )));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// <bridge>, <domain>, <dns>
// ---------------------------------------------------------------------------

str_enum! {
    /// `macTableManager` of a bridge: who fills its forwarding table.
    MacTableManager, "macTableManager setting" {
        Kernel => "kernel",
        Libvirt => "libvirt",
    }
}

xml_element! {
    /// `<bridge name='virbr0' stp='on' delay='0'/>`.
    #[derive(Default)]
    pub struct Bridge {
        /// The bridge device (may be a template with `%d` until the driver picks one).
        attr_opt name: String = "name",
        /// The firewalld zone of the bridge.
        attr_opt zone: String = "zone",
        /// Spanning tree (`on` when not given).
        on_off stp: bool = "stp",
        /// Forward delay in seconds.
        attr_opt delay: u64 = "delay",
        attr_opt mac_table_manager: MacTableManager = "macTableManager",
    }
}

xml_element! {
    /// `<domain name='example.com' localOnly='yes' register='yes'/>`: the DNS domain of
    /// the network.
    pub struct NetworkDomain {
        attr name: String = "name",
        /// Answer queries for the domain only locally, never forward them.
        yes_no local_only: bool = "localOnly",
        /// Register the domain with systemd-resolved for the bridge (libvirt 10.1).
        yes_no register: bool = "register",
    }
}

xml_element! {
    /// `<forwarder addr='8.8.8.8' domain='example.com'/>`: where dnsmasq sends queries.
    pub struct DnsForwarder {
        attr_opt domain: String = "domain",
        attr_opt addr: IpAddr = "addr",
    }
}

xml_element! {
    /// `<txt name='example' value='example value'/>`.
    pub struct DnsTxt {
        attr name: String = "name",
        attr_opt value: String = "value",
    }
}

xml_element! {
    /// `<srv service='name' protocol='tcp' domain=… target=… port=… priority=… weight=…/>`.
    pub struct DnsSrv {
        attr_opt service: String = "service",
        attr_opt protocol: String = "protocol",
        attr_opt domain: String = "domain",
        attr_opt target: String = "target",
        attr_opt port: u32 = "port",
        attr_opt priority: u32 = "priority",
        attr_opt weight: u32 = "weight",
    }
}

xml_element! {
    /// `<host ip='192.168.122.2'><hostname>myhost</hostname></host>` of `<dns>`.
    pub struct DnsHost {
        attr_opt ip: IpAddr = "ip",
        leaves hostnames: String = "hostname",
    }
}

xml_element! {
    /// `<dns enable='yes' forwardPlainNames='no'>`.
    #[derive(Default)]
    pub struct Dns {
        yes_no enable: bool = "enable",
        yes_no forward_plain_names: bool = "forwardPlainNames",
        children forwarders: DnsForwarder = "forwarder",
        children txts: DnsTxt = "txt",
        children srvs: DnsSrv = "srv",
        children hosts: DnsHost = "host",
    }
}

/// libvirt's limit on an SRV service name (512 bytes minus the record's overhead).
const DNS_RECORD_LENGTH_SRV: usize = 512 - 30;

/// Characters of an SRV service name (libvirt's list; no `.`).
fn is_service_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-+/*".contains(c)
}

/// Characters of an SRV protocol name.
fn is_protocol_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-+/".contains(c)
}

impl Dns {
    /// Nothing set: libvirt writes no `<dns>`.
    pub fn is_empty(&self) -> bool {
        self.enable.is_none()
            && self.forward_plain_names.is_none()
            && self.forwarders.is_empty()
            && self.txts.is_empty()
            && self.srvs.is_empty()
            && self.hosts.is_empty()
    }

    fn has_records(&self) -> bool {
        !(self.txts.is_empty() && self.srvs.is_empty() && self.hosts.is_empty())
    }

    fn normalise(&mut self) {
        for s in &mut self.srvs {
            for v in [&mut s.port, &mut s.priority, &mut s.weight] {
                if *v == Some(0) {
                    *v = None;
                }
            }
        }
    }

    fn validate(&self, net: &str) -> Result<(), XmlError> {
        if self.enable == Some(false) && (!self.forwarders.is_empty() || self.has_records()) {
            return Err(invalid(format!("Extra data in disabled network '{net}'")));
        }
        for f in &self.forwarders {
            if f.addr.is_none() && f.domain.is_none() {
                return Err(invalid(
                    "Invalid forwarder element, must contain at least one of addr or domain"
                        .to_string(),
                ));
            }
        }
        for h in &self.hosts {
            if h.hostnames.is_empty() || h.hostnames.iter().any(String::is_empty) {
                return Err(invalid(format!(
                    "Missing hostname in network '{net}' DNS HOST record"
                )));
            }
            if h.ip.is_none() {
                return Err(invalid(format!(
                    "Missing IP address in network '{net}' DNS HOST record"
                )));
            }
        }
        for s in &self.srvs {
            validate_srv(s, net)?;
        }
        for t in &self.txts {
            if t.name.contains([' ', ',']) {
                return Err(invalid(format!(
                    "prohibited character in DNS TXT record name '{}' of network {net}",
                    t.name
                )));
            }
            if t.value.is_none() {
                return Err(invalid(format!(
                    "missing required value attribute in DNS TXT record named '{}' of network {net}",
                    t.name
                )));
            }
        }
        Ok(())
    }
}

fn validate_srv(s: &DnsSrv, net: &str) -> Result<(), XmlError> {
    let Some(service) = &s.service else {
        return Err(invalid(format!(
            "missing required service attribute in DNS SRV record of network '{net}'"
        )));
    };
    if service.len() > DNS_RECORD_LENGTH_SRV {
        return Err(invalid(format!(
            "service attribute '{service}' in network '{net}' is too long, limit is {DNS_RECORD_LENGTH_SRV} bytes"
        )));
    }
    if !service.chars().all(is_service_char) {
        return Err(invalid(format!(
            "invalid character in service attribute '{service}' in DNS SRV record of network '{net}'"
        )));
    }
    let Some(protocol) = &s.protocol else {
        return Err(invalid(format!(
            "missing required protocol attribute in DNS SRV record '{service}' of network '{net}'"
        )));
    };
    if !protocol.chars().all(is_protocol_char) {
        return Err(invalid(format!(
            "invalid character in protocol attribute '{protocol}' in DNS SRV record of network '{net}'"
        )));
    }
    for (what, v, min) in [
        ("port", s.port, 1),
        ("priority", s.priority, 0),
        ("weight", s.weight, 0),
    ] {
        let Some(v) = v else { continue };
        if s.target.is_none() {
            return Err(invalid(format!(
                "DNS SRV {what} attribute not permitted without target for service '{service}' in network '{net}'"
            )));
        }
        if v < min || v > 65535 {
            return Err(invalid(format!(
                "invalid DNS SRV {what} attribute for service '{service}' in network '{net}'"
            )));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// <ip>, <dhcp>, <route>
// ---------------------------------------------------------------------------

str_enum! {
    /// `unit` of a DHCP `<lease>` (minutes when absent).
    LeaseUnit, "lease unit" {
        Seconds => "seconds",
        Minutes => "minutes",
        Hours => "hours",
    }
}

xml_element! {
    /// `<lease expiry='1' unit='hours'/>`; an expiry of 0 is an infinite lease.
    pub struct DhcpLease {
        attr expiry: u64 = "expiry",
        attr_opt unit: LeaseUnit = "unit",
    }
    check DhcpLease::check;
}

impl DhcpLease {
    /// The unit, minutes when not given.
    pub fn unit(&self) -> LeaseUnit {
        self.unit.unwrap_or(LeaseUnit::Minutes)
    }

    /// The lease time in seconds; `None` for an infinite lease.
    pub fn seconds(&self) -> Option<u64> {
        let mult = match self.unit() {
            LeaseUnit::Seconds => 1,
            LeaseUnit::Minutes => 60,
            LeaseUnit::Hours => 3600,
        };
        (self.expiry > 0).then(|| self.expiry.saturating_mul(mult))
    }

    /// dnsmasq's minimum lease is two minutes.
    pub fn validate(&self) -> Result<(), XmlError> {
        if self.expiry > 0 && self.seconds().is_some_and(|s| s < 120) {
            return Err(unsupported(
                "The minimum lease time should be greater than 2 minutes".to_string(),
            ));
        }
        Ok(())
    }

    /// As libvirt writes it: a unit always, except for an infinite lease.
    pub fn normalise(&mut self) {
        self.unit = (self.expiry > 0).then(|| self.unit());
    }

    fn check(&mut self) -> Result<(), XmlError> {
        self.validate()?;
        self.normalise();
        Ok(())
    }
}

xml_element! {
    /// `<range start='192.168.122.2' end='192.168.122.254'/>` of `<dhcp>`.
    pub struct DhcpRange {
        attr start: IpAddr = "start",
        attr end: IpAddr = "end",
        child_opt lease: DhcpLease = "lease",
    }
}

impl DhcpRange {
    /// How many addresses the range holds; `None` when reversed or of mixed families.
    pub fn address_count(&self) -> Option<u128> {
        if IpFamily::of(&self.start) != IpFamily::of(&self.end) {
            return None;
        }
        let (s, e) = (addr_number(self.start), addr_number(self.end));
        (s <= e).then(|| e - s + 1)
    }
}

xml_element! {
    /// `<host mac='52:54:00:…' name='vm' ip='192.168.122.10'/>` of `<dhcp>`: a static
    /// lease (IPv6 hosts are named by `id`, a DUID, or `name`).
    pub struct DhcpHost {
        attr_opt mac: MacAddr = "mac",
        attr_opt id: String = "id",
        attr_opt name: String = "name",
        attr_opt ip: IpAddr = "ip",
        child_opt lease: DhcpLease = "lease",
    }
}

xml_element! {
    /// `<bootp file='pxelinux.0' server='192.168.122.1'/>` of `<dhcp>` (IPv4 only).
    pub struct Bootp {
        attr file: String = "file",
        attr_opt server: IpAddr = "server",
    }
}

xml_element! {
    /// `<dhcp>` of an `<ip>`.
    #[derive(Default)]
    pub struct Dhcp {
        children ranges: DhcpRange = "range",
        children hosts: DhcpHost = "host",
        child_opt bootp: Bootp = "bootp",
    }
}

xml_element! {
    /// `<ip address='192.168.122.1' netmask='255.255.255.0'>`: an address of the bridge,
    /// and the subnet the network serves.
    pub struct NetworkIp {
        /// Required (`ipv6`) for an IPv6 address.
        attr_opt family: IpFamily = "family",
        attr address: IpAddr = "address",
        attr_opt netmask: Ipv4Addr = "netmask",
        attr_opt prefix: u32 = "prefix",
        /// Answer PTR queries of the subnet locally.
        yes_no local_ptr: bool = "localPtr",
        /// `<tftp root='/srv/tftp'/>`: serve files by TFTP (IPv4 only).
        in_attr_opt tftp_root: String = "tftp@root",
        child_opt dhcp: Dhcp = "dhcp",
    }
}

impl NetworkIp {
    /// An `<ip>` with only its address and prefix (and the family for IPv6).
    pub fn new(address: IpAddr, prefix: u8) -> NetworkIp {
        NetworkIp {
            family: address.is_ipv6().then_some(IpFamily::Ipv6),
            address,
            netmask: None,
            prefix: Some(u32::from(prefix)),
            local_ptr: None,
            tftp_root: None,
            dhcp: None,
        }
    }

    pub fn is_ipv4(&self) -> bool {
        self.address.is_ipv4()
    }

    pub fn is_ipv6(&self) -> bool {
        self.address.is_ipv6()
    }

    /// The prefix length, as libvirt works it out: `prefix`, else the netmask, else the
    /// address's class (A, B, C: 8, 16, 24) for IPv4 and 64 for IPv6. `None` when none
    /// applies (a class D or E address, a prefix too long, a netmask with holes).
    pub fn prefix_len(&self) -> Option<u8> {
        let max: u32 = if self.is_ipv4() { 32 } else { 128 };
        if let Some(p) = self.prefix.filter(|p| *p > 0) {
            return if p <= max { u8::try_from(p).ok() } else { None };
        }
        if let Some(m) = self.netmask {
            return if self.is_ipv4() {
                netmask_prefix(m)
            } else {
                None
            };
        }
        match self.address {
            IpAddr::V4(a) if a.is_unspecified() => Some(0),
            IpAddr::V4(a) => match a.octets()[0] {
                0..=127 => Some(8),
                128..=191 => Some(16),
                192..=223 => Some(24),
                _ => None,
            },
            IpAddr::V6(a) if a.is_unspecified() => Some(0),
            IpAddr::V6(_) => Some(64),
        }
    }

    /// The IPv4 netmask: as given, or made from the prefix length.
    pub fn netmask_v4(&self) -> Option<Ipv4Addr> {
        if !self.is_ipv4() {
            return None;
        }
        self.netmask.or_else(|| prefix_netmask(self.prefix_len()?))
    }

    /// The address of the subnet (`192.168.122.0`).
    pub fn network_address(&self) -> Option<IpAddr> {
        mask_address(self.address, self.prefix_len()?)
    }

    /// The broadcast address of an IPv4 subnet (`192.168.122.255`).
    pub fn broadcast(&self) -> Option<Ipv4Addr> {
        let IpAddr::V4(a) = self.address else {
            return None;
        };
        let p = self.prefix_len()?;
        (p <= 32).then(|| Ipv4Addr::from(u32::from(a) | !mask_v4(p)))
    }

    /// Whether `addr` is in this subnet.
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.prefix_len()
            .is_some_and(|p| same_network(self.address, addr, p))
    }

    /// Whether the network serves DHCP on this subnet (a range or a static host).
    pub fn has_dhcp(&self) -> bool {
        self.dhcp
            .as_ref()
            .is_some_and(|d| !d.ranges.is_empty() || !d.hosts.is_empty())
    }

    /// The DHCP ranges (none without `<dhcp>`).
    pub fn dhcp_ranges(&self) -> &[DhcpRange] {
        self.dhcp.as_ref().map_or(&[], |d| d.ranges.as_slice())
    }

    /// The static DHCP hosts (none without `<dhcp>`).
    pub fn dhcp_hosts(&self) -> &[DhcpHost] {
        self.dhcp.as_ref().map_or(&[], |d| d.hosts.as_slice())
    }

    /// As libvirt writes it: no `prefix='0'`, no `<dhcp>` without ranges or hosts, no
    /// `<bootp>` for IPv6.
    pub fn normalise(&mut self) {
        if self.prefix == Some(0) {
            self.prefix = None;
        }
        let v6 = self.is_ipv6();
        if let Some(d) = &mut self.dhcp {
            if v6 {
                d.bootp = None;
            }
            for l in d
                .ranges
                .iter_mut()
                .filter_map(|r| r.lease.as_mut())
                .chain(d.hosts.iter_mut().filter_map(|h| h.lease.as_mut()))
            {
                l.normalise();
            }
        }
        if !self.has_dhcp() {
            self.dhcp = None;
        }
    }

    fn validate(&self, net: &str) -> Result<(), XmlError> {
        let addr = self.address;
        let prefix = self.prefix.filter(|p| *p > 0);
        match self.family {
            None | Some(IpFamily::Ipv4) => {
                if !addr.is_ipv4() {
                    let fam = if self.family.is_some() { "ipv4" } else { "no" };
                    return Err(unsupported(format!(
                        "{fam} family specified for non-IPv4 address '{addr}' in network '{net}'"
                    )));
                }
                if self.netmask.is_some() && prefix.is_some() {
                    return Err(unsupported(format!(
                        "Network '{net}' IP address cannot have both a prefix and a netmask"
                    )));
                }
                if let Some(p) = prefix.filter(|p| *p > 32) {
                    return Err(unsupported(format!(
                        "Invalid IPv4 prefix '{p}' in network '{net}'"
                    )));
                }
            }
            Some(IpFamily::Ipv6) => {
                if !addr.is_ipv6() {
                    return Err(unsupported(format!(
                        "Family 'ipv6' specified for non-IPv6 address '{addr}' in network '{net}'"
                    )));
                }
                if self.netmask.is_some() {
                    return Err(unsupported(format!(
                        "netmask not allowed for IPv6 address '{addr}' in network '{net}'"
                    )));
                }
                if let Some(p) = prefix.filter(|p| *p > 128) {
                    return Err(unsupported(format!(
                        "Invalid IPv6 prefix '{p}' in network '{net}'"
                    )));
                }
            }
        }
        if let Some(m) = self.netmask {
            if netmask_prefix(m).is_none() {
                return Err(invalid(format!("Invalid netmask '{m}' in network '{net}'")));
            }
        }
        let Some(plen) = self.prefix_len() else {
            return Err(invalid(format!(
                "cannot tell the prefix of address '{addr}' in network '{net}': give a prefix or a netmask"
            )));
        };
        if self.tftp_root.is_some() && !addr.is_ipv4() {
            return Err(unsupported(format!(
                "Unsupported <tftp> element in an IPv6 element in network '{net}'"
            )));
        }
        for r in self.dhcp_ranges() {
            self.validate_range(r, plen)?;
            if let Some(l) = &r.lease {
                l.validate()?;
            }
        }
        for h in self.dhcp_hosts() {
            self.validate_host(h, plen, net)?;
            if let Some(l) = &h.lease {
                l.validate()?;
            }
        }
        Ok(())
    }

    /// libvirt's checks of a DHCP range (virSocketAddrGetRange).
    fn validate_range(&self, r: &DhcpRange, plen: u8) -> Result<(), XmlError> {
        let (s, e, net_addr) = (r.start, r.end, self.address);
        let range = format!("{s} - {e}");
        if IpFamily::of(&s) != IpFamily::of(&e) {
            return Err(invalid(format!(
                "mismatch of address family in range {range}"
            )));
        }
        if IpFamily::of(&s) != IpFamily::of(&net_addr) {
            return Err(invalid(format!(
                "mismatch of address family in range {range} for network {net_addr}"
            )));
        }
        if !same_network(s, net_addr, plen) || !same_network(e, net_addr, plen) {
            return Err(invalid(format!(
                "range {range} is not entirely within network {net_addr}/{plen}"
            )));
        }
        if s.is_ipv4() {
            if self.network_address() == Some(s) {
                return Err(invalid(format!(
                    "start of range {range} in network {net_addr}/{plen} is the network address"
                )));
            }
            if self.broadcast().map(IpAddr::V4) == Some(e) {
                return Err(invalid(format!(
                    "end of range {range} in network {net_addr}/{plen} is the broadcast address"
                )));
            }
        }
        // libvirt's legacy limit: only the last 16 bits may differ.
        if addr_number(s) >> 16 != addr_number(e) >> 16 {
            return Err(invalid(format!("range {range} is too large (> 65535)")));
        }
        if addr_number(s) > addr_number(e) {
            return Err(invalid(if s.is_ipv4() {
                format!("range {range} is reversed")
            } else {
                format!("range {range} start larger than end")
            }));
        }
        Ok(())
    }

    /// libvirt's checks of a static DHCP host, and that its address is in the subnet.
    fn validate_host(&self, h: &DhcpHost, plen: u8, net: &str) -> Result<(), XmlError> {
        let v6 = self.is_ipv6();
        if let Some(mac) = h.mac {
            if v6 {
                return Err(invalid(format!(
                    "Invalid to specify MAC address '{mac}' in network '{net}' IPv6 static host definition"
                )));
            }
            if mac.is_multicast() {
                return Err(invalid(format!(
                    "expected unicast mac address, found multicast '{mac}' in network '{net}'"
                )));
            }
        }
        if let Some(id) = &h.id {
            if let Some(c) = id.chars().find(|c| !(c.is_ascii_hexdigit() || *c == ':')) {
                return Err(invalid(format!(
                    "Invalid character '{c}' in id '{id}' of network '{net}'"
                )));
            }
        }
        if let Some(name) = &h.name {
            if !name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            {
                return Err(invalid(format!(
                    "Cannot use host name '{name}' in network '{net}'"
                )));
            }
        }
        if v6 {
            if h.id.is_none() && h.name.is_none() {
                return Err(invalid(format!(
                    "Static host definition in IPv6 network '{net}' must have id or name attribute"
                )));
            }
        } else if h.mac.is_none() && h.name.is_none() {
            return Err(invalid(format!(
                "Static host definition in IPv4 network '{net}' must have mac or name attribute"
            )));
        }
        let Some(ip) = h.ip else {
            return Err(invalid(format!(
                "Missing IP address in static host definition for network '{net}'"
            )));
        };
        if IpFamily::of(&ip) != IpFamily::of(&self.address) {
            return Err(invalid(format!(
                "the address family of a host entry IP must match the address family of the dhcp element's parent (host '{ip}' in network '{net}')"
            )));
        }
        if !same_network(ip, self.address, plen) {
            return Err(invalid(format!(
                "static host address {ip} is not within network {}/{plen} (network '{net}')",
                self.address
            )));
        }
        Ok(())
    }
}

xml_element! {
    /// `<route address='192.168.222.0' prefix='24' gateway='192.168.122.2'/>`: a static
    /// route the host adds when the network starts.
    pub struct Route {
        attr_opt family: IpFamily = "family",
        attr address: IpAddr = "address",
        attr_opt netmask: Ipv4Addr = "netmask",
        attr_opt prefix: u32 = "prefix",
        attr gateway: IpAddr = "gateway",
        attr_opt metric: u32 = "metric",
    }
}

impl Route {
    /// The prefix length: `prefix`, else the netmask's, else 0.
    pub fn prefix_len(&self) -> Option<u8> {
        match (self.prefix, self.netmask) {
            (Some(p), _) => u8::try_from(p).ok(),
            (None, Some(m)) => netmask_prefix(m),
            (None, None) => Some(0),
        }
    }

    fn validate(&self, net: &str) -> Result<(), XmlError> {
        let (a, g) = (self.address, self.gateway);
        let max = match self.family {
            None | Some(IpFamily::Ipv4) => {
                let which = if self.family.is_some() { "IPv4" } else { "No" };
                if !a.is_ipv4() {
                    return Err(invalid(format!(
                        "{net}: {which} family specified for non-IPv4 address '{a}' in route definition"
                    )));
                }
                if !g.is_ipv4() {
                    return Err(invalid(format!(
                        "{net}: {which} family specified for non-IPv4 gateway '{g}' in route definition"
                    )));
                }
                if self.netmask.is_some() && self.prefix.is_some() {
                    return Err(invalid(format!(
                        "{net}: Route definition cannot have both a prefix and a netmask"
                    )));
                }
                32
            }
            Some(IpFamily::Ipv6) => {
                if !a.is_ipv6() {
                    return Err(invalid(format!(
                        "{net}: ipv6 family specified for non-IPv6 address '{a}' in route definition"
                    )));
                }
                if self.netmask.is_some() {
                    return Err(invalid(format!(
                        "{net}: Specifying netmask invalid for IPv6 address '{a}' in route definition"
                    )));
                }
                if !g.is_ipv6() {
                    return Err(invalid(format!(
                        "{net}: ipv6 specified for non-IPv6 gateway address '{g}' in route definition"
                    )));
                }
                128
            }
        };
        if let Some(p) = self.prefix.filter(|p| *p > max) {
            return Err(invalid(format!(
                "{net}: Invalid prefix {p} specified in route definition, must be 0 - {max}"
            )));
        }
        if let Some(m) = self.netmask.filter(|m| netmask_prefix(*m).is_none()) {
            return Err(invalid(format!(
                "{net}: Bad netmask address '{m}' in route definition"
            )));
        }
        if self.metric == Some(0) {
            return Err(invalid(format!(
                "{net}: Invalid metric value, must be > 0 in route definition"
            )));
        }
        let plen = self.prefix_len().unwrap_or(0);
        if mask_address(a, plen) != Some(a) {
            return Err(invalid(format!(
                "{net}: Address '{a}' in route definition is not a network address"
            )));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// <portgroup>
// ---------------------------------------------------------------------------

xml_element! {
    /// `<portgroup name='engineering' default='yes'>`: settings a domain interface
    /// takes by naming the group.
    pub struct PortGroup {
        attr name: String = "name",
        /// The group of interfaces that name none (written only as `yes`).
        yes_no is_default: bool = "default",
        yes_no trust_guest_rx_filters: bool = "trustGuestRxFilters",
        child_opt vlan: Vlan = "vlan",
        child_opt virtualport: VirtualPort = "virtualport",
        child_opt bandwidth: Bandwidth = "bandwidth",
    }
}

impl PortGroup {
    /// Whether it is the network's default group.
    pub fn is_default(&self) -> bool {
        self.is_default == Some(true)
    }

    fn normalise(&mut self) {
        self.is_default = self.is_default().then_some(true);
        if let Some(v) = &mut self.vlan {
            v.normalise();
        }
        normalise_virtualport_opt(&mut self.virtualport);
        normalise_bandwidth_opt(&mut self.bandwidth);
    }
}

// ---------------------------------------------------------------------------
// <network>
// ---------------------------------------------------------------------------

xml_element! {
    /// `<network>`: a virtual network definition.
    pub struct NetworkDef {
        /// Guest interfaces connected (live XML only).
        attr_opt connections: u32 = "connections",
        /// `ipv6='yes'`: guest-to-guest IPv6 without an IPv6 address on the bridge.
        yes_no ipv6: bool = "ipv6",
        yes_no trust_guest_rx_filters: bool = "trustGuestRxFilters",
        leaf name: String = "name",
        /// `None` when not given (the driver makes one).
        leaf_opt uuid: [u8; 16] = "uuid",
        leaf_opt title: String = "title",
        leaf_opt description: String = "description",
        child_opt metadata: Metadata = "metadata",
        /// `None`: an isolated network.
        child_opt forward: Forward = "forward",
        child_opt bridge: Bridge = "bridge",
        /// `<mtu size=…>` of the bridge.
        in_attr_opt mtu: u32 = "mtu@size",
        /// `<mac address=…>` of the bridge.
        in_attr_opt mac: MacAddr = "mac@address",
        child_opt domain: NetworkDomain = "domain",
        child_opt dns: Dns = "dns",
        child_opt vlan: Vlan = "vlan",
        child_opt bandwidth: Bandwidth = "bandwidth",
        /// `<port isolated='yes'/>`: guests may not talk to each other.
        in_attr_opt isolated_port: YesNo = "port@isolated",
        children ips: NetworkIp = "ip",
        children routes: Route = "route",
        child_opt virtualport: VirtualPort = "virtualport",
        children portgroups: PortGroup = "portgroup",
    }
}

impl NetworkDef {
    /// A definition with only a name: an isolated network.
    pub fn new(name: &str) -> NetworkDef {
        NetworkDef {
            connections: None,
            ipv6: None,
            trust_guest_rx_filters: None,
            name: name.to_string(),
            uuid: None,
            title: None,
            description: None,
            metadata: None,
            forward: None,
            bridge: None,
            mtu: None,
            mac: None,
            domain: None,
            dns: None,
            vlan: None,
            bandwidth: None,
            isolated_port: None,
            ips: Vec::new(),
            routes: Vec::new(),
            virtualport: None,
            portgroups: Vec::new(),
        }
    }

    /// Parses, checks ([`NetworkDef::validate`]) and normalises a network definition.
    pub fn parse(xml: &str) -> Result<NetworkDef, XmlError> {
        let mut n: NetworkDef = parse_root(xml, "network")?;
        n.validate()?;
        n.normalise();
        Ok(n)
    }

    /// The definition as libvirt writes it (normalised, libvirt's element order).
    pub fn format(&self) -> String {
        let mut n = self.clone();
        n.normalise();
        format_root(&n, "network")
    }

    /// The forward mode; `None` for an isolated network.
    pub fn forward_mode(&self) -> Option<ForwardMode> {
        self.forward.as_ref().map(Forward::mode)
    }

    /// Whether libvirt makes the bridge (and runs dnsmasq): isolated, nat, route and
    /// open networks.
    pub fn has_own_bridge(&self) -> bool {
        self.forward_mode().is_none_or(ForwardMode::has_own_bridge)
    }

    /// The bridge device's name, if given.
    pub fn bridge_name(&self) -> Option<&str> {
        self.bridge.as_ref().and_then(|b| b.name.as_deref())
    }

    /// The network devices of the forward pool (see [`Forward::devs`]).
    pub fn forward_devs(&self) -> Vec<&str> {
        self.forward.as_ref().map(Forward::devs).unwrap_or_default()
    }

    /// The `<ip>`s of one family, in order.
    pub fn ips_of(&self, family: IpFamily) -> impl Iterator<Item = &NetworkIp> {
        self.ips
            .iter()
            .filter(move |ip| IpFamily::of(&ip.address) == family)
    }

    /// The `<ip>` of `family` that serves DHCP (there is at most one).
    pub fn dhcp_ip(&self, family: IpFamily) -> Option<&NetworkIp> {
        self.ips_of(family).find(|ip| ip.has_dhcp())
    }

    /// The portgroup called `name`, or the default one for `None` (as libvirt looks a
    /// domain interface's portgroup up).
    pub fn portgroup(&self, name: Option<&str>) -> Option<&PortGroup> {
        self.portgroups.iter().find(|p| match name {
            Some(n) => p.name == n,
            None => p.is_default(),
        })
    }

    /// Puts the definition in the form libvirt writes: the forward mode and the bridge's
    /// `stp`/`delay` always given (for a bridge libvirt makes), `<forward dev>` and the
    /// first `<interface>` in step, and nothing libvirt would leave out (zeros, `no`s it
    /// does not keep, empty elements).
    pub fn normalise(&mut self) {
        if self.connections == Some(0) {
            self.connections = None;
        }
        if self.ipv6 == Some(false) {
            self.ipv6 = None;
        }
        if let Some(f) = &mut self.forward {
            f.normalise();
        }
        if self.has_own_bridge() {
            let b = self.bridge.get_or_insert_with(Bridge::default);
            b.stp = Some(b.stp.unwrap_or(true));
            b.delay = Some(b.delay.unwrap_or(0));
        } else if let Some(b) = &mut self.bridge {
            b.stp = None;
            b.delay = None;
            if b.name.is_none() && b.mac_table_manager.is_none() {
                self.bridge = None;
            }
        }
        if self.mtu == Some(0) {
            self.mtu = None;
        }
        if let Some(d) = &mut self.dns {
            d.normalise();
            if d.is_empty() {
                self.dns = None;
            }
        }
        if let Some(v) = &mut self.vlan {
            v.normalise();
        }
        normalise_bandwidth_opt(&mut self.bandwidth);
        for ip in &mut self.ips {
            ip.normalise();
        }
        normalise_virtualport_opt(&mut self.virtualport);
        for p in &mut self.portgroups {
            p.normalise();
        }
    }

    /// The checks libvirt makes when a network is defined (its XML parser and its network
    /// driver), and that a forward mode has what it needs. Errors libvirt reports as
    /// unsupported configuration are [`XmlError::Unsupported`].
    pub fn validate(&self) -> Result<(), XmlError> {
        let net = self.name.as_str();
        check_name(net)?;
        if self.title.as_ref().is_some_and(|t| t.contains('\n')) {
            return Err(invalid("Network title can't contain newlines".to_string()));
        }
        if let Some(f) = &self.forward {
            f.validate(net)?;
        }
        if let Some(m) = self.mac.filter(MacAddr::is_multicast) {
            return Err(invalid(format!(
                "Invalid multicast bridge mac address '{m}' in network '{net}'"
            )));
        }
        if let Some(d) = &self.dns {
            d.validate(net)?;
        }
        for ip in &self.ips {
            ip.validate(net)?;
        }
        self.validate_dhcp_count()?;
        for r in &self.routes {
            r.validate(net)?;
        }
        self.validate_route_gateways()?;
        if let Some(vp) = &self.virtualport {
            if vp.vport_type.is_none() {
                return Err(invalid("missing required virtualport type".to_string()));
            }
            vp.validate()?;
        }
        if let Some(v) = &self.vlan {
            v.validate()?;
        }
        if let Some(b) = &self.bandwidth {
            validate_network_bandwidth(b)?;
        }
        for p in &self.portgroups {
            if let Some(v) = &p.vlan {
                v.validate()?;
            }
            if let Some(vp) = &p.virtualport {
                vp.validate()?;
            }
            if let Some(b) = &p.bandwidth {
                validate_network_bandwidth(b)?;
            }
        }
        self.validate_mode()?;
        self.validate_portgroups_and_vlans()
    }

    /// What each forward mode allows and needs.
    fn validate_mode(&self) -> Result<(), XmlError> {
        let net = self.name.as_str();
        let Some(mode) = self.forward_mode() else {
            return Ok(());
        };
        let devs = self.forward_devs();
        let pfs = self.forward.as_ref().map_or(0, |f| f.pfs.len());
        let bridge = self.bridge.clone().unwrap_or_default();
        if mode.has_own_bridge() {
            if self.ips.is_empty() {
                return Err(invalid(format!(
                    "{mode} forwarding requested, but no IP address provided for network '{net}'"
                )));
            }
            if devs.len() > 1 {
                return Err(invalid(format!(
                    "multiple forwarding interfaces specified for network '{net}', only one is supported"
                )));
            }
            if mode == ForwardMode::Open && !devs.is_empty() {
                return Err(invalid(format!(
                    "forward dev not allowed for network '{net}' with forward mode='{mode}'"
                )));
            }
            return Ok(());
        }
        if mode != ForwardMode::Bridge {
            for (set, what) in [
                (bridge.name.is_some(), "bridge name"),
                (bridge.zone.is_some(), "bridge zone"),
                (
                    bridge.mac_table_manager.is_some(),
                    "bridge macTableManager setting",
                ),
            ] {
                if set {
                    return Err(invalid(format!(
                        "{what} not allowed in {mode} mode (network '{net}')"
                    )));
                }
            }
        }
        if bridge.delay.unwrap_or(0) != 0 || bridge.stp.is_some() || bridge.zone.is_some() {
            return Err(invalid(format!(
                "bridge delay/stp/zone options only allowed in route, nat, and isolated mode, not in {mode} (network '{net}')"
            )));
        }
        if bridge.name.is_some() && (!devs.is_empty() || pfs > 0) {
            return Err(invalid(format!(
                "A network with forward mode='{mode}' can specify a bridge name or a forward dev, but not both (network '{net}')"
            )));
        }
        if self.mtu.unwrap_or(0) != 0 {
            return Err(invalid(format!(
                "mtu size only allowed in open, route, nat, and isolated mode, not in {mode} (network '{net}')"
            )));
        }
        let dns_records = self.dns.as_ref().is_some_and(Dns::has_records);
        for (set, what) in [
            (self.mac.is_some(), "<mac>"),
            (!self.ips.is_empty(), "<ip>"),
            (dns_records, "<dns>"),
            (self.domain.is_some(), "<domain>"),
        ] {
            if set {
                return Err(unsupported(format!(
                    "Unsupported {what} element in network {net} with forward mode='{mode}'"
                )));
            }
        }
        let bandwidth_allowed = mode == ForwardMode::Bridge && bridge.name.is_some();
        if !bandwidth_allowed {
            if self.bandwidth.is_some() {
                return Err(unsupported(format!(
                    "Unsupported network-wide <bandwidth> element in network {net} with forward mode='{mode}'"
                )));
            }
            if let Some(p) = self.portgroups.iter().find(|p| p.bandwidth.is_some()) {
                return Err(unsupported(format!(
                    "Unsupported <bandwidth> element in network '{net}' in portgroup '{}' with forward mode='{mode}'",
                    p.name
                )));
            }
        }
        let has_device = match mode {
            ForwardMode::Bridge => bridge.name.is_some() || !devs.is_empty() || pfs > 0,
            ForwardMode::Hostdev => {
                pfs > 0
                    || self
                        .forward
                        .as_ref()
                        .is_some_and(|f| !f.addresses.is_empty())
            }
            _ => !devs.is_empty() || pfs > 0,
        };
        if !has_device {
            let needs = match mode {
                ForwardMode::Bridge => "a <bridge name='…'/> or a forward device",
                ForwardMode::Hostdev => "<address> or <pf> elements in <forward>",
                _ => "a forward device (<forward dev='…'>, <interface> or <pf>)",
            };
            return Err(invalid(format!(
                "network '{net}' with forward mode='{mode}' needs {needs}"
            )));
        }
        Ok(())
    }

    /// DHCP on at most one IPv4 and one IPv6 subnet.
    fn validate_dhcp_count(&self) -> Result<(), XmlError> {
        for family in [IpFamily::Ipv4, IpFamily::Ipv6] {
            if self.ips_of(family).filter(|ip| ip.has_dhcp()).count() > 1 {
                let f = family.label();
                return Err(unsupported(format!(
                    "Multiple {f} dhcp sections found -- dhcp is supported only for a single {f} address on each network"
                )));
            }
        }
        Ok(())
    }

    /// Each route's gateway is on one of the network's subnets.
    fn validate_route_gateways(&self) -> Result<(), XmlError> {
        for r in &self.routes {
            let g = r.gateway;
            if !self.ips.iter().any(|ip| ip.contains(g)) {
                return Err(unsupported(format!(
                    "unreachable static route gateway '{g}' specified for network '{}'",
                    self.name
                )));
            }
        }
        Ok(())
    }

    /// One default portgroup, unique names, and VLAN tags only where libvirt can apply
    /// them (hostdev and passthrough networks, Open vSwitch bridges).
    fn validate_portgroups_and_vlans(&self) -> Result<(), XmlError> {
        let net = self.name.as_str();
        let mode = self.forward_mode();
        let ovs_bridge = |vp: Option<&VirtualPort>| {
            mode == Some(ForwardMode::Bridge)
                && vp.is_some_and(|v| v.vport_type == Some(VirtualPortType::OpenVSwitch))
        };
        let vlan_allowed = matches!(
            mode,
            Some(ForwardMode::Hostdev) | Some(ForwardMode::Passthrough)
        ) || ovs_bridge(self.virtualport.as_ref());
        let vlan_used = self.vlan.is_some();
        let mut bad_vlan = false;
        let mut default: Option<&PortGroup> = None;
        for (i, p) in self.portgroups.iter().enumerate() {
            if vlan_used || p.vlan.is_some() {
                bad_vlan |= match &p.virtualport {
                    Some(vp) => !ovs_bridge(Some(vp)),
                    None => !vlan_allowed,
                };
            }
            if p.is_default() {
                if let Some(d) = default {
                    return Err(unsupported(format!(
                        "network '{net}' has multiple default <portgroup> elements ({} and {}), but only one default is allowed",
                        d.name, p.name
                    )));
                }
                default = Some(p);
            }
            if self.portgroups[i + 1..].iter().any(|q| q.name == p.name) {
                return Err(unsupported(format!(
                    "multiple <portgroup> elements with the same name ({}) in network '{net}'",
                    p.name
                )));
            }
        }
        if bad_vlan || (vlan_used && !vlan_allowed && default.is_none()) {
            return Err(unsupported(format!(
                "<vlan> element specified for network {net}, whose type doesn't support vlan configuration"
            )));
        }
        Ok(())
    }
}

/// A network's and a portgroup's bandwidth: no floor, no class.
fn validate_network_bandwidth(b: &Bandwidth) -> Result<(), XmlError> {
    b.validate()?;
    if b.class_id.is_some() {
        return Err(invalid(
            "classID attribute not supported on <bandwidth> in this usage context".to_string(),
        ));
    }
    if b.has_floor() {
        return Err(unsupported(
            "floor attribute is not supported for this config".to_string(),
        ));
    }
    Ok(())
}

/// A network name becomes a file name: not empty, no `/`, no newline.
fn check_name(name: &str) -> Result<(), XmlError> {
    if name.is_empty() {
        return Err(invalid("network name must not be empty".to_string()));
    }
    if name.contains('/') {
        return Err(invalid(format!("network name '{name}' cannot contain '/'")));
    }
    if name.contains('\n') {
        return Err(invalid(
            "network name must not contain a newline".to_string(),
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;
    use std::process::Command;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Runs libvirt's own validator (`virt-xml-validate FILE SCHEMA`) on `xml`.
    pub(crate) fn validate_schema(xml: &str, schema: &str, label: &str) {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!(
            "vireo-xml-{schema}-{}-{n}-{label}.xml",
            std::process::id()
        ));
        {
            let mut f = std::fs::File::create(&path).expect("create temp file");
            f.write_all(xml.as_bytes()).expect("write temp file");
        }
        let out = Command::new(vireo_hostprog::require("virt-xml-validate"))
            .arg(&path)
            .arg(schema)
            .output()
            .unwrap_or_else(|e| panic!("cannot run virt-xml-validate: {e}"));
        let _ = std::fs::remove_file(&path);
        assert!(
            out.status.success(),
            "virt-xml-validate rejected {label} ({:?}):\n{}{}\n--- xml ---\n{xml}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
    }

    fn parse(xml: &str) -> NetworkDef {
        NetworkDef::parse(xml).unwrap_or_else(|e| panic!("{e}\n--- input ---\n{xml}"))
    }

    /// Parses, formats, checks the output is stable and valid for libvirt's schema.
    fn round_trip(xml: &str, label: &str) -> (NetworkDef, String) {
        let n = parse(xml);
        let out = n.format();
        let again = parse(&out);
        assert_eq!(again, n, "parse(format(x)) differs\n{out}");
        assert_eq!(again.format(), out, "format is not stable");
        validate_schema(&out, "network", label);
        (n, out)
    }

    const DEFAULT_NAT: &str = "<network>
  <name>default</name>
  <uuid>9a05da11-e96b-47f3-8253-a3a482e445f5</uuid>
  <forward/>
  <bridge name='virbr0'/>
  <mac address='52:54:00:0A:CD:21'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.122.2' end='192.168.122.254'/>
    </dhcp>
  </ip>
</network>";

    #[test]
    fn default_nat_network_in_libvirts_layout() {
        let (n, out) = round_trip(DEFAULT_NAT, "default");
        assert_eq!(
            out,
            "<network>
  <name>default</name>
  <uuid>9a05da11-e96b-47f3-8253-a3a482e445f5</uuid>
  <forward mode='nat'/>
  <bridge name='virbr0' stp='on' delay='0'/>
  <mac address='52:54:00:0a:cd:21'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.122.2' end='192.168.122.254'/>
    </dhcp>
  </ip>
</network>
"
        );
        assert_eq!(n.forward_mode(), Some(ForwardMode::Nat));
        assert!(n.has_own_bridge());
        assert_eq!(n.bridge_name(), Some("virbr0"));
        let ip = n.dhcp_ip(IpFamily::Ipv4).unwrap();
        assert_eq!(ip.prefix_len(), Some(24));
        assert_eq!(ip.dhcp_ranges()[0].address_count(), Some(253));
        assert!(n.dhcp_ip(IpFamily::Ipv6).is_none());
    }

    #[test]
    fn route_network_keeps_dev_and_interface_in_step() {
        let (n, out) = round_trip(
            "<network><name>routed</name>\
             <forward mode='route' dev='eth1'/><bridge name='virbr1' stp='off'/>\
             <ip address='10.10.0.1' prefix='24'/>\
             <route address='10.20.0.0' prefix='16' gateway='10.10.0.254' metric='10'/>\
             </network>",
            "route",
        );
        assert_eq!(
            out,
            "<network>
  <name>routed</name>
  <forward dev='eth1' mode='route'>
    <interface dev='eth1'/>
  </forward>
  <bridge name='virbr1' stp='off' delay='0'/>
  <ip address='10.10.0.1' prefix='24'/>
  <route address='10.20.0.0' prefix='16' gateway='10.10.0.254' metric='10'/>
</network>
"
        );
        assert_eq!(n.forward_devs(), ["eth1"]);
        // Only an <interface> given: the dev attribute follows it.
        let n2 = parse(
            "<network><name>r</name><forward mode='route'><interface dev='eth1'/></forward>\
             <ip address='10.10.0.1' prefix='24'/></network>",
        );
        assert_eq!(n2.forward.as_ref().unwrap().dev.as_deref(), Some("eth1"));
    }

    #[test]
    fn isolated_network_with_ipv6() {
        let (n, out) = round_trip(
            "<network ipv6='yes'><name>isolated6</name>\
             <bridge name='virbr2' stp='off' delay='2'/>\
             <domain name='lab.example' localOnly='yes'/>\
             <ip family='ipv6' address='FD00:1:2:3:0:0:0:1' prefix='64'><dhcp>\
             <range start='fd00:1:2:3::100' end='fd00:1:2:3::1ff'/>\
             <host id='0:3:0:1:0:16:3e:11:22:33' name='alpha' ip='fd00:1:2:3::10'/>\
             </dhcp></ip>\
             <ip address='192.168.100.1' prefix='0' netmask='255.255.255.0'/>\
             </network>",
            "isolated6",
        );
        assert_eq!(
            out,
            "<network ipv6='yes'>
  <name>isolated6</name>
  <bridge name='virbr2' stp='off' delay='2'/>
  <domain name='lab.example' localOnly='yes'/>
  <ip family='ipv6' address='fd00:1:2:3::1' prefix='64'>
    <dhcp>
      <range start='fd00:1:2:3::100' end='fd00:1:2:3::1ff'/>
      <host id='0:3:0:1:0:16:3e:11:22:33' name='alpha' ip='fd00:1:2:3::10'/>
    </dhcp>
  </ip>
  <ip address='192.168.100.1' netmask='255.255.255.0'/>
</network>
"
        );
        assert_eq!(n.forward_mode(), None);
        let v6 = n.dhcp_ip(IpFamily::Ipv6).unwrap();
        assert_eq!(v6.network_address(), Some("fd00:1:2:3::".parse().unwrap()));
        assert_eq!(v6.broadcast(), None);
        assert_eq!(n.ips_of(IpFamily::Ipv4).count(), 1);
    }

    #[test]
    fn bridge_mode_network() {
        let (n, out) = round_trip(
            "<network><name>host-bridge</name><forward mode='bridge'/><bridge name='br0'/></network>",
            "bridge",
        );
        assert_eq!(
            out,
            "<network>
  <name>host-bridge</name>
  <forward mode='bridge'/>
  <bridge name='br0'/>
</network>
"
        );
        assert!(!n.has_own_bridge());
        // An Open vSwitch bridge with VLAN portgroups.
        round_trip(
            "<network><name>ovs</name><forward mode='bridge'/><bridge name='ovsbr0'/>\
             <virtualport type='openvswitch'/>\
             <portgroup name='vlan-42' default='yes'><vlan><tag id='42'/></vlan></portgroup>\
             <portgroup name='trunk'><vlan trunk='yes'><tag id='42'/><tag id='43' nativeMode='untagged'/></vlan>\
             <virtualport type='openvswitch'><parameters profileid='trunked'/></virtualport></portgroup>\
             </network>",
            "ovs",
        );
    }

    const RICH: &str = "<network trustGuestRxFilters='no'>
  <name>rich</name>
  <uuid>3e3fce45-4f53-4fa7-bb32-11f34168b82b</uuid>
  <metadata><app:info xmlns:app='http://example.org/app'>x</app:info></metadata>
  <forward mode='nat' dev='eth0'>
    <nat ipv6='yes'>
      <address start='203.0.113.10' end='203.0.113.20'/>
      <port start='1024' end='65535'/>
    </nat>
  </forward>
  <bridge name='virbr9' macTableManager='libvirt'/>
  <mtu size='9000'/>
  <mac address='52:54:00:12:34:56'/>
  <domain name='example.lan' localOnly='no'/>
  <dns forwardPlainNames='no'>
    <host ip='192.168.50.2'><hostname>gw</hostname><hostname>gateway</hostname></host>
    <forwarder addr='9.9.9.9'/>
    <forwarder domain='corp.example' addr='10.0.0.53'/>
    <forwarder domain='local.example'/>
    <txt name='info' value='rich network'/>
    <srv service='ldap' protocol='tcp' domain='example.lan' target='ldap.example.lan' port='389' priority='10' weight='0'/>
  </dns>
  <bandwidth><inbound average='1000' peak='5000' burst='1024'/><outbound average='2000'/></bandwidth>
  <port isolated='yes'/>
  <ip address='192.168.50.1' netmask='255.255.255.0' localPtr='yes'>
    <tftp root='/srv/tftp'/>
    <dhcp>
      <range start='192.168.50.100' end='192.168.50.199'><lease expiry='1' unit='hours'/></range>
      <host mac='52:54:00:AA:BB:01' name='web' ip='192.168.50.10'><lease expiry='30'/></host>
      <host mac='52:54:00:aa:bb:02' ip='192.168.50.11'><lease expiry='0'/></host>
      <bootp file='pxelinux.0' server='192.168.50.1'/>
    </dhcp>
  </ip>
  <ip family='ipv6' address='2001:db8:ca2:2::1' prefix='64'/>
  <route family='ipv6' address='2001:db8:ca2:3::' prefix='64' gateway='2001:db8:ca2:2::2'/>
  <portgroup name='engineering' default='yes'><bandwidth><inbound average='500'/></bandwidth></portgroup>
  <portgroup name='sales' default='no' trustGuestRxFilters='yes'/>
  <unknown-element/>
</network>";

    #[test]
    fn rich_network_round_trip() {
        let (n, out) = round_trip(RICH, "rich");
        let expect_in_order = [
            "<network trustGuestRxFilters='no'>\n  <name>rich</name>\n  <uuid>",
            "  <metadata>\n    <app:info xmlns:app='http://example.org/app'>x</app:info>\n  </metadata>\n",
            "  <forward dev='eth0' mode='nat'>\n    <nat ipv6='yes'>\n      <address start='203.0.113.10' end='203.0.113.20'/>\n      <port start='1024' end='65535'/>\n    </nat>\n    <interface dev='eth0'/>\n  </forward>\n",
            "  <bridge name='virbr9' stp='on' delay='0' macTableManager='libvirt'/>\n  <mtu size='9000'/>\n  <mac address='52:54:00:12:34:56'/>\n  <domain name='example.lan' localOnly='no'/>\n",
            "  <dns forwardPlainNames='no'>\n    <forwarder addr='9.9.9.9'/>\n    <forwarder domain='corp.example' addr='10.0.0.53'/>\n",
            "    <txt name='info' value='rich network'/>\n    <srv service='ldap' protocol='tcp' domain='example.lan' target='ldap.example.lan' port='389' priority='10'/>\n    <host ip='192.168.50.2'>\n      <hostname>gw</hostname>\n      <hostname>gateway</hostname>\n    </host>\n  </dns>\n",
            "  <bandwidth>\n    <inbound average='1000' peak='5000' burst='1024'/>\n    <outbound average='2000'/>\n  </bandwidth>\n  <port isolated='yes'/>\n",
            "  <ip address='192.168.50.1' netmask='255.255.255.0' localPtr='yes'>\n    <tftp root='/srv/tftp'/>\n    <dhcp>\n      <range start='192.168.50.100' end='192.168.50.199'>\n        <lease expiry='1' unit='hours'/>\n      </range>\n",
            "      <host mac='52:54:00:aa:bb:01' name='web' ip='192.168.50.10'>\n        <lease expiry='30' unit='minutes'/>\n      </host>\n      <host mac='52:54:00:aa:bb:02' ip='192.168.50.11'>\n        <lease expiry='0'/>\n      </host>\n      <bootp file='pxelinux.0' server='192.168.50.1'/>\n    </dhcp>\n  </ip>\n",
            "  <route family='ipv6' address='2001:db8:ca2:3::' prefix='64' gateway='2001:db8:ca2:2::2'/>\n",
            "  <portgroup name='engineering' default='yes'>\n    <bandwidth>\n      <inbound average='500'/>\n    </bandwidth>\n  </portgroup>\n  <portgroup name='sales' trustGuestRxFilters='yes'/>\n</network>\n",
        ];
        let mut at = 0;
        for piece in expect_in_order {
            let Some(i) = out[at..].find(piece) else {
                panic!("missing or out of order:\n{piece}\n--- output ---\n{out}");
            };
            at += i + piece.len();
        }
        assert!(!out.contains("unknown"));
        assert_eq!(
            n.portgroup(None).map(|p| p.name.as_str()),
            Some("engineering")
        );
        assert_eq!(
            n.portgroup(Some("sales")).map(|p| p.is_default()),
            Some(false)
        );
        let hosts = n.dhcp_ip(IpFamily::Ipv4).unwrap().dhcp_hosts();
        assert_eq!(
            hosts[0].lease.as_ref().and_then(DhcpLease::seconds),
            Some(1800)
        );
        assert_eq!(hosts[1].lease.as_ref().and_then(DhcpLease::seconds), None);
        assert_eq!(
            n.metadata.as_ref().map(|m| m.0.as_str()),
            Some("<app:info xmlns:app='http://example.org/app'>x</app:info>")
        );
    }

    #[test]
    fn hostdev_and_passthrough_networks() {
        let (n, out) = round_trip(
            "<network><name>sriov</name><forward mode='hostdev' managed='yes'>\
             <driver name='vfio'/>\
             <address type='pci' domain='0x0000' bus='0x04' slot='0x10' function='0x1'/>\
             <address type='pci' domain='0' bus='4' slot='16' function='3'/></forward>\
             <portgroup name='pg'><vlan><tag id='7'/></vlan></portgroup></network>",
            "hostdev",
        );
        assert!(out.contains(
            "  <forward mode='hostdev' managed='yes'>\n    <driver name='vfio'/>\n    \
             <address type='pci' domain='0x0000' bus='0x04' slot='0x10' function='0x1'/>\n    \
             <address type='pci' domain='0x0000' bus='0x04' slot='0x10' function='0x3'/>\n  </forward>\n"
        ), "{out}");
        assert_eq!(
            n.forward.as_ref().unwrap().addresses[1].to_string(),
            "0000:04:10.3"
        );
        let (_, out) = round_trip(
            "<network><name>pt</name><forward mode='passthrough'><pf dev='enp3s0f0'/></forward>\
             <vlan><tag id='42'/></vlan></network>",
            "passthrough",
        );
        assert!(out.contains("  <forward mode='passthrough'>\n    <pf dev='enp3s0f0'/>\n  </forward>\n  <vlan>\n    <tag id='42'/>\n  </vlan>\n"), "{out}");
        let (_, out) = round_trip(
            "<network><name>macvtap</name><forward mode='vepa'><interface dev='eth1'/>\
             <interface dev='eth2'/></forward></network>",
            "vepa",
        );
        assert!(out.contains("<forward dev='eth1' mode='vepa'>"), "{out}");
    }

    #[test]
    fn title_description_and_register_are_kept() {
        // Not in Debian 12's schema (libvirt 9.0), so checked without it.
        let n = parse(
            "<network><name>t</name><title>Lab</title><description>A\nlab</description>\
             <forward mode='open'/><domain name='lab' register='yes'/>\
             <ip address='10.1.0.1' prefix='16'/></network>",
        );
        let out = n.format();
        assert!(out.contains("  <title>Lab</title>\n  <description>A\nlab</description>\n  <forward mode='open'/>\n  <bridge stp='on' delay='0'/>\n  <domain name='lab' register='yes'/>\n"), "{out}");
        assert_eq!(parse(&out), n);
    }

    #[test]
    fn ip_helpers() {
        let ip = |xml: &str| parse_root::<NetworkIp>(xml, "ip").unwrap();
        let a = ip("<ip address='192.168.122.1' netmask='255.255.255.0'/>");
        assert_eq!(a.prefix_len(), Some(24));
        assert_eq!(a.network_address(), Some("192.168.122.0".parse().unwrap()));
        assert_eq!(a.broadcast(), Some(Ipv4Addr::new(192, 168, 122, 255)));
        assert!(a.contains("192.168.122.77".parse().unwrap()));
        assert!(!a.contains("192.168.123.1".parse().unwrap()));
        assert!(!a.contains("::1".parse().unwrap()));
        let b = ip("<ip address='172.20.3.4' prefix='20'/>");
        assert_eq!(b.netmask_v4(), Some(Ipv4Addr::new(255, 255, 240, 0)));
        assert_eq!(b.network_address(), Some("172.20.0.0".parse().unwrap()));
        assert_eq!(b.broadcast(), Some(Ipv4Addr::new(172, 20, 15, 255)));
        let natural = |a: &str| ip(&format!("<ip address='{a}'/>")).prefix_len();
        assert_eq!(natural("10.0.0.1"), Some(8));
        assert_eq!(natural("172.16.0.1"), Some(16));
        assert_eq!(natural("192.168.1.1"), Some(24));
        assert_eq!(natural("224.0.0.1"), None);
        assert_eq!(natural("0.0.0.0"), Some(0));
        let c = ip("<ip family='ipv6' address='2001:db8::1'/>");
        assert_eq!(c.prefix_len(), Some(64));
        assert_eq!(c.netmask_v4(), None);
        assert!(c.contains("2001:db8::ffff".parse().unwrap()));
        assert!(!c.contains("2001:db9::1".parse().unwrap()));
        assert_eq!(netmask_prefix(Ipv4Addr::new(255, 0, 255, 0)), None);
        assert_eq!(netmask_prefix(Ipv4Addr::new(255, 255, 255, 255)), Some(32));
        assert_eq!(netmask_prefix(Ipv4Addr::new(0, 0, 0, 0)), Some(0));
        assert_eq!(prefix_netmask(33), None);
        assert_eq!(
            mask_address("10.1.2.3".parse().unwrap(), 33),
            None,
            "prefix too long"
        );
        let r = DhcpRange {
            start: "10.0.0.2".parse().unwrap(),
            end: "10.0.0.1".parse().unwrap(),
            lease: None,
        };
        assert_eq!(r.address_count(), None);
        let mut n = NetworkDef::new("built");
        n.ips.push(NetworkIp::new("fd00::1".parse().unwrap(), 64));
        n.validate().unwrap();
        assert!(n
            .format()
            .contains("<ip family='ipv6' address='fd00::1' prefix='64'/>"));
    }

    fn net(body: &str) -> String {
        format!("<network><name>n</name>{body}</network>")
    }

    const IP4: &str = "<ip address='192.168.1.1' prefix='24'/>";

    #[test]
    fn every_validation_error() {
        let nat = |extra: &str| net(&format!("<forward mode='nat'/>{extra}"));
        let dhcp4 = |inner: &str| {
            net(&format!(
                "<ip address='192.168.1.1' prefix='24'><dhcp>{inner}</dhcp></ip>"
            ))
        };
        let dhcp6 = |inner: &str| {
            net(&format!(
                "<ip family='ipv6' address='fd00::1' prefix='64'><dhcp>{inner}</dhcp></ip>"
            ))
        };
        let route = |r: &str| {
            net(&format!(
                "{IP4}<ip family='ipv6' address='fd00::1' prefix='64'/>{r}"
            ))
        };
        let cases: Vec<(String, &str)> = vec![
            // name, title
            ("<network><name></name></network>".into(), "XML error: network name must not be empty"),
            ("<network><name>a/b</name></network>".into(), "XML error: network name 'a/b' cannot contain '/'"),
            ("<network><name>n</name><title>a\nb</title></network>".into(), "XML error: Network title can't contain newlines"),
            ("<network/>".into(), "XML error: missing <name> in <network>"),
            // forward
            (net("<forward mode='tunnel'/>"), "XML error: invalid value 'tunnel' for attribute 'mode' of <forward>: unknown forward mode 'tunnel'"),
            (nat(""), "XML error: nat forwarding requested, but no IP address provided for network 'n'"),
            (net(&format!("<forward mode='route'><interface dev='eth0'/><interface dev='eth1'/></forward>{IP4}")),
             "XML error: multiple forwarding interfaces specified for network 'n', only one is supported"),
            (net(&format!("<forward mode='open' dev='eth0'/>{IP4}")), "XML error: forward dev not allowed for network 'n' with forward mode='open'"),
            (net(&format!("<forward mode='route'><nat/></forward>{IP4}")),
             "XML error: The <nat> element can only be used when <forward> 'mode' is 'nat' in network n"),
            (net(&format!("<forward><nat><port start='2000' end='1000'/></nat></forward>{IP4}")),
             "XML error: Missing or invalid 'end' attribute in <port> in <nat> in <forward> in network n"),
            (net(&format!("<forward><nat><address start='10.0.0.9' end='10.0.0.1'/></nat></forward>{IP4}")),
             "XML error: range 10.0.0.9 - 10.0.0.1 is reversed in <nat> in <forward> in network 'n'"),
            (net(&format!("<forward><nat><address start='fd00::1' end='fd00::2'/></nat></forward>{IP4}")),
             "XML error: invalid value 'fd00::1' for attribute 'start' of <address>: expected an IPv4 address"),
            (net(&format!("<forward dev='eth0'><interface dev='eth1'/></forward>{IP4}")),
             "XML error: <forward dev='eth0'> must match first <interface dev='eth1'/> in network n"),
            (net("<forward mode='vepa'><interface dev='eth1'/><interface dev='eth1'/></forward>"),
             "XML error: interface 'eth1' can only be listed once in network n"),
            (net("<forward mode='passthrough' dev='eth0'><pf dev='eth0'/></forward>"),
             "XML error: the <forward> 'dev' attribute cannot be used when <address> or <pf> sub-elements are present in network n"),
            (net("<forward mode='passthrough'><pf dev='eth0'/><pf dev='eth1'/></forward>"),
             "XML error: Only one <pf> element is allowed in <forward> of network n"),
            (net("<forward mode='passthrough'><pf dev='eth0'/><interface dev='eth1'/></forward>"),
             "unsupported configuration: <address>, <interface>, and <pf> elements of <forward> in network n are mutually exclusive"),
            (net("<forward mode='hostdev'><interface dev='eth1'/></forward>"),
             "unsupported configuration: hostdev network 'n' lists 'eth1' in the device pool, but hostdev networks require all devices to be listed by PCI address, not network device name"),
            (net("<forward mode='bridge'><address type='pci' bus='1'/></forward>"),
             "unsupported configuration: network 'n' has forward mode 'bridge' but lists a device by PCI address in the device pool. This is only supported for networks with forward mode 'hostdev'"),
            (net("<forward mode='hostdev'><address bus='1'/></forward>"), "XML error: missing address type in network n"),
            (net("<forward mode='hostdev'><address type='pci' bus='1'/><address type='pci' bus='0x1'/></forward>"),
             "XML error: PCI device '0000:01:00.0' can only be listed once in network n"),
            (net("<forward mode='hostdev'><address type='pci' slot='32'/></forward>"),
             "XML error: Invalid PCI address slot='0x20', must be <= 0x1f"),
            (net("<forward mode='hostdev'><address type='usb'/></forward>"),
             "XML error: invalid value 'usb' for attribute 'type' of <address>: unknown address type 'usb'"),
            // what each mode allows and needs
            (net("<forward mode='vepa' dev='eth0'/><bridge name='br0'/>"), "XML error: bridge name not allowed in vepa mode (network 'n')"),
            (net("<forward mode='private' dev='eth0'/><bridge zone='trusted'/>"), "XML error: bridge zone not allowed in private mode (network 'n')"),
            (net("<forward mode='hostdev'><pf dev='eth0'/></forward><bridge macTableManager='kernel'/>"),
             "XML error: bridge macTableManager setting not allowed in hostdev mode (network 'n')"),
            (net("<forward mode='bridge'/><bridge name='br0' stp='on'/>"),
             "XML error: bridge delay/stp/zone options only allowed in route, nat, and isolated mode, not in bridge (network 'n')"),
            (net("<forward mode='bridge' dev='eth0'/><bridge name='br0'/>"),
             "XML error: A network with forward mode='bridge' can specify a bridge name or a forward dev, but not both (network 'n')"),
            (net("<forward mode='bridge'/><bridge name='br0'/><mtu size='9000'/>"),
             "XML error: mtu size only allowed in open, route, nat, and isolated mode, not in bridge (network 'n')"),
            (net("<forward mode='bridge'/><bridge name='br0'/><mac address='52:54:00:00:00:01'/>"),
             "unsupported configuration: Unsupported <mac> element in network n with forward mode='bridge'"),
            (net(&format!("<forward mode='bridge'/><bridge name='br0'/>{IP4}")),
             "unsupported configuration: Unsupported <ip> element in network n with forward mode='bridge'"),
            (net("<forward mode='bridge'/><bridge name='br0'/><dns><txt name='a' value='b'/></dns>"),
             "unsupported configuration: Unsupported <dns> element in network n with forward mode='bridge'"),
            (net("<forward mode='bridge'/><bridge name='br0'/><domain name='x'/>"),
             "unsupported configuration: Unsupported <domain> element in network n with forward mode='bridge'"),
            (net("<forward mode='bridge' dev='eth0'/><bandwidth><inbound average='10'/></bandwidth>"),
             "unsupported configuration: Unsupported network-wide <bandwidth> element in network n with forward mode='bridge'"),
            (net("<forward mode='vepa' dev='eth0'/><portgroup name='p'><bandwidth><inbound average='10'/></bandwidth></portgroup>"),
             "unsupported configuration: Unsupported <bandwidth> element in network 'n' in portgroup 'p' with forward mode='vepa'"),
            (net("<forward mode='bridge'/>"), "XML error: network 'n' with forward mode='bridge' needs a <bridge name='…'/> or a forward device"),
            (net("<forward mode='vepa'/>"), "XML error: network 'n' with forward mode='vepa' needs a forward device (<forward dev='…'>, <interface> or <pf>)"),
            (net("<forward mode='hostdev'/>"), "XML error: network 'n' with forward mode='hostdev' needs <address> or <pf> elements in <forward>"),
            // bridge MAC
            (net("<mac address='01:00:5E:00:00:01'/>"), "XML error: Invalid multicast bridge mac address '01:00:5e:00:00:01' in network 'n'"),
            (net("<mac address='52:54:00:zz:00:01'/>"), "XML error: invalid value '52:54:00:zz:00:01' for attribute 'address' of <mac>: expected a MAC address"),
            (net("<bridge stp='maybe'/>"), "XML error: invalid value 'maybe' for attribute 'stp' of <bridge>: unknown value (expected 'on' or 'off') 'maybe'"),
            // dns
            (net("<dns enable='no'><forwarder addr='1.1.1.1'/></dns>"), "XML error: Extra data in disabled network 'n'"),
            (net("<dns><forwarder/></dns>"), "XML error: Invalid forwarder element, must contain at least one of addr or domain"),
            (net("<dns><forwarder addr='dns.example'/></dns>"), "XML error: invalid value 'dns.example' for attribute 'addr' of <forwarder>: expected an IPv4 or IPv6 address"),
            (net("<dns><host ip='192.168.1.5'/></dns>"), "XML error: Missing hostname in network 'n' DNS HOST record"),
            (net("<dns><host ip='192.168.1.5'><hostname> </hostname></host></dns>"), "XML error: Missing hostname in network 'n' DNS HOST record"),
            (net("<dns><host><hostname>a</hostname></host></dns>"), "XML error: Missing IP address in network 'n' DNS HOST record"),
            (net("<dns><srv protocol='tcp'/></dns>"), "XML error: missing required service attribute in DNS SRV record of network 'n'"),
            (net("<dns><srv service='a.b' protocol='tcp'/></dns>"), "XML error: invalid character in service attribute 'a.b' in DNS SRV record of network 'n'"),
            (net(&format!("<dns><srv service='{}' protocol='tcp'/></dns>", "s".repeat(483))),
             "XML error: service attribute 'sss…' in network 'n' is too long, limit is 482 bytes"),
            (net("<dns><srv service='ldap'/></dns>"), "XML error: missing required protocol attribute in DNS SRV record 'ldap' of network 'n'"),
            (net("<dns><srv service='ldap' protocol='t.cp'/></dns>"), "XML error: invalid character in protocol attribute 't.cp' in DNS SRV record of network 'n'"),
            (net("<dns><srv service='ldap' protocol='tcp' port='389'/></dns>"),
             "XML error: DNS SRV port attribute not permitted without target for service 'ldap' in network 'n'"),
            (net("<dns><srv service='ldap' protocol='tcp' target='h' port='0'/></dns>"),
             "XML error: invalid DNS SRV port attribute for service 'ldap' in network 'n'"),
            (net("<dns><srv service='ldap' protocol='tcp' target='h' weight='70000'/></dns>"),
             "XML error: invalid DNS SRV weight attribute for service 'ldap' in network 'n'"),
            (net("<dns><txt name='a b' value='v'/></dns>"), "XML error: prohibited character in DNS TXT record name 'a b' of network n"),
            (net("<dns><txt name='a'/></dns>"), "XML error: missing required value attribute in DNS TXT record named 'a' of network n"),
            // ip
            (net("<ip address='192.168.1.300'/>"), "XML error: invalid value '192.168.1.300' for attribute 'address' of <ip>: expected an IPv4 or IPv6 address"),
            (net("<ip prefix='24'/>"), "XML error: missing attribute 'address' in <ip>"),
            (net("<ip address='fd00::1' prefix='64'/>"), "unsupported configuration: no family specified for non-IPv4 address 'fd00::1' in network 'n'"),
            (net("<ip family='ipv4' address='fd00::1'/>"), "unsupported configuration: ipv4 family specified for non-IPv4 address 'fd00::1' in network 'n'"),
            (net("<ip family='ipv6' address='10.0.0.1'/>"), "unsupported configuration: Family 'ipv6' specified for non-IPv6 address '10.0.0.1' in network 'n'"),
            (net("<ip family='inet' address='10.0.0.1'/>"), "XML error: invalid value 'inet' for attribute 'family' of <ip>: unknown address family 'inet'"),
            (net("<ip address='10.0.0.1' netmask='255.0.0.0' prefix='8'/>"), "unsupported configuration: Network 'n' IP address cannot have both a prefix and a netmask"),
            (net("<ip address='10.0.0.1' prefix='33'/>"), "unsupported configuration: Invalid IPv4 prefix '33' in network 'n'"),
            (net("<ip family='ipv6' address='fd00::1' prefix='129'/>"), "unsupported configuration: Invalid IPv6 prefix '129' in network 'n'"),
            (net("<ip family='ipv6' address='fd00::1' netmask='255.255.0.0'/>"), "unsupported configuration: netmask not allowed for IPv6 address 'fd00::1' in network 'n'"),
            (net("<ip address='10.0.0.1' netmask='255.0.255.0'/>"), "XML error: Invalid netmask '255.0.255.0' in network 'n'"),
            (net("<ip address='224.0.0.1'/>"), "XML error: cannot tell the prefix of address '224.0.0.1' in network 'n': give a prefix or a netmask"),
            (net("<ip family='ipv6' address='fd00::1' prefix='64'><tftp root='/srv'/></ip>"),
             "unsupported configuration: Unsupported <tftp> element in an IPv6 element in network 'n'"),
            // dhcp ranges
            (dhcp4("<range start='192.168.2.10' end='192.168.2.20'/>"), "XML error: range 192.168.2.10 - 192.168.2.20 is not entirely within network 192.168.1.1/24"),
            (dhcp4("<range start='192.168.1.0' end='192.168.1.20'/>"), "XML error: start of range 192.168.1.0 - 192.168.1.20 in network 192.168.1.1/24 is the network address"),
            (dhcp4("<range start='192.168.1.10' end='192.168.1.255'/>"), "XML error: end of range 192.168.1.10 - 192.168.1.255 in network 192.168.1.1/24 is the broadcast address"),
            (dhcp4("<range start='192.168.1.20' end='192.168.1.10'/>"), "XML error: range 192.168.1.20 - 192.168.1.10 is reversed"),
            (dhcp4("<range start='192.168.1.20' end='fd00::10'/>"), "XML error: mismatch of address family in range 192.168.1.20 - fd00::10"),
            (dhcp4("<range start='fd00::2' end='fd00::10'/>"), "XML error: mismatch of address family in range fd00::2 - fd00::10 for network 192.168.1.1"),
            (net("<ip address='10.0.0.1' prefix='8'><dhcp><range start='10.0.0.2' end='10.1.0.1'/></dhcp></ip>"),
             "XML error: range 10.0.0.2 - 10.1.0.1 is too large (> 65535)"),
            (dhcp6("<range start='fd00::20' end='fd00::10'/>"), "XML error: range fd00::20 - fd00::10 start larger than end"),
            (dhcp4("<range start='192.168.1.10' end='192.168.1.20'><lease expiry='90' unit='seconds'/></range>"),
             "unsupported configuration: The minimum lease time should be greater than 2 minutes"),
            (dhcp4("<range start='192.168.1.10' end='192.168.1.20'><lease expiry='1'/></range>"),
             "unsupported configuration: The minimum lease time should be greater than 2 minutes"),
            (dhcp4("<range start='192.168.1.10' end='192.168.1.20'><lease expiry='1' unit='days'/></range>"),
             "XML error: invalid value 'days' for attribute 'unit' of <lease>: unknown lease unit 'days'"),
            // dhcp hosts
            (dhcp6("<host mac='52:54:00:00:00:01' name='a' ip='fd00::5'/>"),
             "XML error: Invalid to specify MAC address '52:54:00:00:00:01' in network 'n' IPv6 static host definition"),
            (dhcp4("<host mac='03:54:00:00:00:01' ip='192.168.1.5'/>"),
             "XML error: expected unicast mac address, found multicast '03:54:00:00:00:01' in network 'n'"),
            (dhcp6("<host id='0:1:x' ip='fd00::5'/>"), "XML error: Invalid character 'x' in id '0:1:x' of network 'n'"),
            (dhcp4("<host name='-web' ip='192.168.1.5'/>"), "XML error: Cannot use host name '-web' in network 'n'"),
            (dhcp6("<host ip='fd00::5'/>"), "XML error: Static host definition in IPv6 network 'n' must have id or name attribute"),
            (dhcp4("<host ip='192.168.1.5'/>"), "XML error: Static host definition in IPv4 network 'n' must have mac or name attribute"),
            (dhcp4("<host name='web'/>"), "XML error: Missing IP address in static host definition for network 'n'"),
            (dhcp4("<host name='web' ip='fd00::5'/>"),
             "XML error: the address family of a host entry IP must match the address family of the dhcp element's parent (host 'fd00::5' in network 'n')"),
            (dhcp4("<host name='web' ip='192.168.7.5'/>"), "XML error: static host address 192.168.7.5 is not within network 192.168.1.1/24 (network 'n')"),
            (net("<ip address='10.0.0.1' prefix='24'><dhcp><host name='a' ip='10.0.0.2'/></dhcp></ip>\
                  <ip address='10.0.1.1' prefix='24'><dhcp><host name='b' ip='10.0.1.2'/></dhcp></ip>"),
             "unsupported configuration: Multiple IPv4 dhcp sections found -- dhcp is supported only for a single IPv4 address on each network"),
            (net("<ip family='ipv6' address='fd00::1' prefix='64'><dhcp><host name='a' ip='fd00::2'/></dhcp></ip>\
                  <ip family='ipv6' address='fd01::1' prefix='64'><dhcp><host name='b' ip='fd01::2'/></dhcp></ip>"),
             "unsupported configuration: Multiple IPv6 dhcp sections found -- dhcp is supported only for a single IPv6 address on each network"),
            // routes
            (route("<route address='fd02::' prefix='64' gateway='fd00::2'/>"), "XML error: n: No family specified for non-IPv4 address 'fd02::' in route definition"),
            (route("<route address='10.2.0.0' prefix='16' gateway='fd00::2'/>"), "XML error: n: No family specified for non-IPv4 gateway 'fd00::2' in route definition"),
            (route("<route family='ipv4' address='fd02::' gateway='192.168.1.2'/>"), "XML error: n: IPv4 family specified for non-IPv4 address 'fd02::' in route definition"),
            (route("<route address='10.2.0.0' prefix='16' netmask='255.255.0.0' gateway='192.168.1.2'/>"), "XML error: n: Route definition cannot have both a prefix and a netmask"),
            (route("<route address='10.2.0.0' prefix='33' gateway='192.168.1.2'/>"), "XML error: n: Invalid prefix 33 specified in route definition, must be 0 - 32"),
            (route("<route address='10.2.0.0' netmask='255.0.255.0' gateway='192.168.1.2'/>"), "XML error: n: Bad netmask address '255.0.255.0' in route definition"),
            (route("<route family='ipv6' address='10.2.0.0' gateway='fd00::2'/>"), "XML error: n: ipv6 family specified for non-IPv6 address '10.2.0.0' in route definition"),
            (route("<route family='ipv6' address='fd02::' netmask='255.255.0.0' gateway='fd00::2'/>"), "XML error: n: Specifying netmask invalid for IPv6 address 'fd02::' in route definition"),
            (route("<route family='ipv6' address='fd02::' prefix='64' gateway='192.168.1.2'/>"), "XML error: n: ipv6 specified for non-IPv6 gateway address '192.168.1.2' in route definition"),
            (route("<route family='ipv6' address='fd02::' prefix='129' gateway='fd00::2'/>"), "XML error: n: Invalid prefix 129 specified in route definition, must be 0 - 128"),
            (route("<route address='10.2.0.0' prefix='16' gateway='192.168.1.2' metric='0'/>"), "XML error: n: Invalid metric value, must be > 0 in route definition"),
            (route("<route address='10.2.0.1' prefix='16' gateway='192.168.1.2'/>"), "XML error: n: Address '10.2.0.1' in route definition is not a network address"),
            (route("<route address='10.2.0.0' prefix='16'/>"), "XML error: missing attribute 'gateway' in <route>"),
            (route("<route address='10.2.0.0' prefix='16' gateway='192.168.9.2'/>"),
             "unsupported configuration: unreachable static route gateway '192.168.9.2' specified for network 'n'"),
            // virtualport, vlan, bandwidth, portgroups
            (net("<forward mode='bridge'/><bridge name='br0'/><virtualport/>"), "XML error: missing required virtualport type"),
            (net("<forward mode='bridge'/><bridge name='br0'/><virtualport type='vmware'/>"),
             "XML error: invalid value 'vmware' for attribute 'type' of <virtualport>: unknown virtualport type 'vmware'"),
            (net("<forward mode='bridge'/><bridge name='br0'/><virtualport type='802.1Qbh'><parameters managerid='1'/></virtualport>"),
             "XML error: attribute managerid not allowed for <virtualport type='802.1Qbh'>"),
            (net("<forward mode='bridge'/><bridge name='br0'/><virtualport type='802.1Qbg'><parameters typeid='16777216'/></virtualport>"),
             "XML error: value for typeid out of range"),
            (net(&format!("<forward mode='bridge'/><bridge name='br0'/><virtualport type='openvswitch'><parameters profileid='{}'/></virtualport>", "p".repeat(40))),
             "XML error: profileid parameter too long"),
            (net("<forward mode='hostdev'><pf dev='eth0'/></forward><vlan/>"),
             "XML error: missing tag id - each <vlan> must have at least one <tag id='n'/> subelement"),
            (net("<forward mode='hostdev'><pf dev='eth0'/></forward><vlan><tag id='4096'/></vlan>"), "XML error: vlan tag id 4096 too large (maximum 4095)"),
            (net("<forward mode='hostdev'><pf dev='eth0'/></forward><vlan><tag id='1' nativeMode='tagged'/><tag id='2' nativeMode='untagged'/></vlan>"),
             "XML error: duplicate native vlan setting"),
            (net("<forward mode='hostdev'><pf dev='eth0'/></forward><vlan trunk='no'><tag id='1'/><tag id='2'/></vlan>"),
             "XML error: invalid \"trunk='no'\" in <vlan> - trunk='yes' is required for more than one vlan tag"),
            (net("<forward mode='hostdev'><pf dev='eth0'/></forward><vlan trunk='no'><tag id='1' nativeMode='tagged'/></vlan>"),
             "XML error: invalid configuration in <vlan> - \"trunk='no'\" is not allowed with a native vlan id"),
            (nat(&format!("{IP4}<vlan><tag id='5'/></vlan>")),
             "unsupported configuration: <vlan> element specified for network n, whose type doesn't support vlan configuration"),
            (net("<forward mode='bridge'/><bridge name='br0'/><portgroup name='p'><vlan><tag id='5'/></vlan></portgroup>"),
             "unsupported configuration: <vlan> element specified for network n, whose type doesn't support vlan configuration"),
            (nat(&format!("{IP4}<bandwidth><inbound peak='10'/></bandwidth>")), "XML error: Missing mandatory average or floor attributes"),
            (nat(&format!("{IP4}<bandwidth><inbound floor='10' burst='5'/></bandwidth>")), "unsupported configuration: 'peak' and 'burst' require 'average' attribute"),
            (nat(&format!("{IP4}<bandwidth><outbound average='10' floor='5'/></bandwidth>")), "unsupported configuration: 'floor' attribute allowed only in <inbound> element"),
            (nat(&format!("{IP4}<bandwidth><inbound average='10' floor='5'/></bandwidth>")), "unsupported configuration: floor attribute is not supported for this config"),
            (nat(&format!("{IP4}<portgroup name='p'><bandwidth><inbound average='10' floor='5'/></bandwidth></portgroup>")),
             "unsupported configuration: floor attribute is not supported for this config"),
            (nat(&format!("{IP4}<bandwidth classID='3'><inbound average='10'/></bandwidth>")),
             "XML error: classID attribute not supported on <bandwidth> in this usage context"),
            (nat(&format!("{IP4}<bandwidth><inbound average='fast'/></bandwidth>")),
             "XML error: invalid value 'fast' for attribute 'average' of <inbound>: expected a non-negative integer"),
            (nat(&format!("{IP4}<portgroup name='a' default='yes'/><portgroup name='b' default='yes'/>")),
             "unsupported configuration: network 'n' has multiple default <portgroup> elements (a and b), but only one default is allowed"),
            (nat(&format!("{IP4}<portgroup name='a'/><portgroup name='a'/>")),
             "unsupported configuration: multiple <portgroup> elements with the same name (a) in network 'n'"),
            (nat(&format!("{IP4}<portgroup/>")), "XML error: missing attribute 'name' in <portgroup>"),
            // well-formedness, root
            ("<network><name>n</name>".into(), "XML error at line 1, column 24: unexpected end of stream: root element is not closed"),
            ("<pool><name>n</name></pool>".into(), "XML error: expected root element <network>, found <pool>"),
        ];
        for (xml, want) in &cases {
            let got = match NetworkDef::parse(xml) {
                Ok(n) => panic!(
                    "accepted, expected {want:?}\n--- input ---\n{xml}\n--- parsed ---\n{n:?}"
                ),
                Err(e) => e.to_string(),
            };
            let want = want.replace("sss…", &"s".repeat(483));
            assert_eq!(got, want, "\n--- input ---\n{xml}");
        }
    }

    #[test]
    fn validate_catches_what_was_built_by_hand() {
        let mut n = parse(DEFAULT_NAT);
        n.mac = Some(MacAddr([1, 0, 0, 0, 0, 1]));
        assert!(n.validate().is_err());
        let mut n = parse(DEFAULT_NAT);
        n.ips[0].dhcp.as_mut().unwrap().ranges[0].end = "192.168.123.1".parse().unwrap();
        assert_eq!(
            n.validate().unwrap_err().detail(),
            "range 192.168.122.2 - 192.168.123.1 is not entirely within network 192.168.122.1/24"
        );
        let mut n = parse(DEFAULT_NAT);
        n.name = "a/b".into();
        assert!(n.validate().is_err());
    }

    #[test]
    fn normalising_drops_what_libvirt_leaves_out() {
        let n = parse(
            "<network connections='0' ipv6='no'><name>z</name>\
             <forward mode='bridge'/><bridge name='br0'/>\
             <bandwidth><inbound average='0' peak='5'/><outbound average='7' peak='0'/></bandwidth>\
             <virtualport type='openvswitch'><parameters profileid=''/></virtualport>\
             <portgroup name='p' default='no'><vlan trunk='no'><tag id='3'/></vlan>\
             <virtualport type='openvswitch'/></portgroup></network>",
        );
        assert_eq!(
            n.format(),
            "<network>
  <name>z</name>
  <forward mode='bridge'/>
  <bridge name='br0'/>
  <bandwidth>
    <outbound average='7'/>
  </bandwidth>
  <virtualport type='openvswitch'/>
  <portgroup name='p'>
    <vlan>
      <tag id='3'/>
    </vlan>
    <virtualport type='openvswitch'/>
  </portgroup>
</network>
"
        );
        // <dhcp> without ranges or hosts, bootp of an IPv6 subnet, an empty <dns>.
        let n = parse(
            "<network><name>z</name><dns/>\
             <ip address='10.0.0.1' prefix='24'><dhcp><bootp file='x'/></dhcp></ip>\
             <ip family='ipv6' address='fd00::1' prefix='64'><dhcp><range start='fd00::2' end='fd00::9'/>\
             <bootp file='y'/></dhcp></ip></network>",
        );
        let out = n.format();
        assert!(
            !out.contains("bootp") && !out.contains("<dns") && out.matches("<dhcp>").count() == 1,
            "{out}"
        );
    }
}
