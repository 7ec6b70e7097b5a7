//! Host interface XML (`<interface>` of the interface driver, not a domain's), described
//! once with [`xml_element!`]: types `ethernet`, `bridge` (with its member interfaces),
//! `bond` (its mode, link monitoring and members) and `vlan` (its tag and the device under
//! it), in libvirt's element order.
//!
//! One table ([`InterfaceDef`]) serves the top-level interface and the members of a bridge
//! or bond: a member has no `<start>`, `<mtu>` or `<protocol>` (they are the top-level
//! interface's), which [`InterfaceDef::parse`] drops as libvirt ignores them there.

use std::net::IpAddr;

use crate::model::{format_root, parse_root};
use crate::util::str_enum;
use crate::{xml_element, MacAddr, NodeDevLinkState, XmlError};

/// libvirt's largest `<mtu size>` for an interface.
pub const INTERFACE_MTU_MAX: u32 = 100_000;
/// The kernel's longest interface name (IFNAMSIZ less its NUL).
pub const INTERFACE_NAME_MAX: usize = 15;

str_enum! {
    /// `<interface type=...>`.
    HostIfaceType, "interface type" {
        Ethernet => "ethernet",
        Bridge => "bridge",
        Bond => "bond",
        Vlan => "vlan",
    }
}

str_enum! {
    /// `<start mode=...>`: when the host brings the interface up.
    InterfaceStartMode, "interface startmode" {
        None => "none",
        Onboot => "onboot",
        Hotplug => "hotplug",
    }
}

str_enum! {
    /// `<bond mode=...>`, in the kernel's order (its mode number is the index).
    BondMode, "bonding mode" {
        BalanceRr => "balance-rr",
        ActiveBackup => "active-backup",
        BalanceXor => "balance-xor",
        Broadcast => "broadcast",
        Ieee8023ad => "802.3ad",
        BalanceTlb => "balance-tlb",
        BalanceAlb => "balance-alb",
    }
}

impl BondMode {
    /// The kernel's number for the mode (`IFLA_BOND_MODE`).
    pub fn kernel(self) -> u8 {
        BondMode::ALL.iter().position(|m| *m == self).unwrap_or(0) as u8
    }

    /// The mode of the kernel's number, if it is one of libvirt's.
    pub fn from_kernel(n: u8) -> Option<BondMode> {
        BondMode::ALL.get(usize::from(n)).copied()
    }
}

str_enum! {
    /// `<miimon carrier=...>`: how the link of a bond's members is watched.
    MiiCarrier, "mii bonding carrier" {
        Ioctl => "ioctl",
        Netif => "netif",
    }
}

str_enum! {
    /// `<arpmon validate=...>`, in the kernel's order from 1 (0 is none).
    ArpValidate, "arp bonding validate" {
        Active => "active",
        Backup => "backup",
        All => "all",
    }
}

str_enum! {
    /// `<protocol family=...>`.
    ProtocolFamily, "protocol family" {
        Ipv4 => "ipv4",
        Ipv6 => "ipv6",
    }
}

xml_element! {
    /// `<ip address='192.168.0.5' prefix='24'/>` of a protocol.
    pub struct InterfaceIp {
        attr address: String = "address",
        /// Left out when 0, as libvirt writes it.
        attr_opt prefix: u32 = "prefix",
    }
}

xml_element! {
    /// `<dhcp peerdns='yes'/>`: the address comes from a DHCP server.
    pub struct InterfaceDhcp {
        yes_no peerdns: bool = "peerdns",
    }
}

xml_element! {
    /// `<protocol family='ipv4'>`: how the interface is addressed in one family.
    pub struct InterfaceProtocol {
        attr family: ProtocolFamily = "family",
        /// IPv6 stateless autoconfiguration (`<autoconf/>`, IPv6 only).
        flag autoconf: bool = "autoconf",
        child_opt dhcp: InterfaceDhcp = "dhcp",
        children ips: InterfaceIp = "ip",
        in_attr_opt gateway: String = "route@gateway",
    }
}

xml_element! {
    /// `<link speed='1000' state='up'/>` (speed in Mbit/s; state the kernel's operstate).
    pub struct InterfaceLink {
        attr_opt speed: u32 = "speed",
        attr_opt state: NodeDevLinkState = "state",
    }
}

xml_element! {
    /// `<miimon freq='100' downdelay='0' updelay='0' carrier='netif'/>` of a bond.
    pub struct BondMiimon {
        attr freq: u32 = "freq",
        attr_opt downdelay: u32 = "downdelay",
        attr_opt updelay: u32 = "updelay",
        attr_opt carrier: MiiCarrier = "carrier",
    }
}

xml_element! {
    /// `<arpmon interval='100' target='192.168.0.1' validate='active'/>` of a bond.
    pub struct BondArpmon {
        attr interval: u32 = "interval",
        attr target: String = "target",
        attr_opt validate: ArpValidate = "validate",
    }
}

xml_element! {
    /// `<bridge stp='on' delay='0'>` and the interfaces in the bridge.
    pub struct InterfaceBridge {
        on_off stp: bool = "stp",
        /// Forward delay, as given (seconds in a definition).
        attr_opt delay: String = "delay",
        children interfaces: InterfaceDef = "interface",
    }
}

xml_element! {
    /// `<bond mode='active-backup'>`, its link monitoring and its member interfaces.
    pub struct InterfaceBond {
        attr_opt mode: BondMode = "mode",
        child_opt miimon: BondMiimon = "miimon",
        child_opt arpmon: BondArpmon = "arpmon",
        children interfaces: InterfaceDef = "interface",
    }
}

xml_element! {
    /// `<interface name='eth0'/>` inside `<vlan>`: the device the VLAN is on.
    pub struct VlanDevice {
        attr name: String = "name",
    }
}

xml_element! {
    /// `<vlan tag='42'><interface name='eth0'/></vlan>`.
    pub struct InterfaceVlan {
        attr tag: u16 = "tag",
        child_opt device: VlanDevice = "interface",
    }
}

xml_element! {
    /// `<interface type='…' name='…'>`: a host interface, as `virsh iface-dumpxml` shows
    /// it and `virsh iface-define` takes it.
    pub struct InterfaceDef {
        attr iface_type: HostIfaceType = "type",
        attr name: String = "name",
        in_attr_opt start: InterfaceStartMode = "start@mode",
        in_attr_opt mtu: u32 = "mtu@size",
        children protocols: InterfaceProtocol = "protocol",
        /// Not for a bridge.
        child_opt link: InterfaceLink = "link",
        /// Ethernet only.
        in_attr_opt mac: MacAddr = "mac@address",
        child_opt bridge: InterfaceBridge = "bridge",
        child_opt bond: InterfaceBond = "bond",
        child_opt vlan: InterfaceVlan = "vlan",
    }
}

impl InterfaceDef {
    /// An interface of `iface_type` named `name`, with nothing else yet.
    pub fn new(iface_type: HostIfaceType, name: &str) -> InterfaceDef {
        InterfaceDef {
            iface_type,
            name: name.to_string(),
            start: None,
            mtu: None,
            protocols: Vec::new(),
            link: None,
            mac: None,
            bridge: None,
            bond: None,
            vlan: None,
        }
    }

    /// Reads an interface definition, checked as libvirt checks it: what each type needs
    /// is there, members are of a type their parent may hold, and what libvirt ignores is
    /// dropped (so the definition formats as libvirt would show it).
    pub fn parse(xml: &str) -> Result<InterfaceDef, XmlError> {
        let mut d: InterfaceDef = parse_root(xml, "interface")?;
        d.normalize(None)?;
        Ok(d)
    }

    /// The document, in libvirt's layout.
    pub fn to_xml(&self) -> String {
        format_root(self, "interface")
    }

    /// Checks the interface as a member of a `parent` (None: top-level) and drops what
    /// libvirt does not read there.
    fn normalize(&mut self, parent: Option<HostIfaceType>) -> Result<(), XmlError> {
        use HostIfaceType::*;
        let allowed = match parent {
            None => true,
            Some(Bond) => self.iface_type == Ethernet,
            Some(Bridge) => self.iface_type != Bridge,
            Some(Ethernet) | Some(Vlan) => false,
        };
        if !allowed {
            return Err(XmlError::Invalid(format!(
                "interface has unsupported type '{}'",
                self.iface_type
            )));
        }
        if self.name.is_empty() {
            return Err(XmlError::Invalid("interface has no name".into()));
        }
        if parent.is_some() {
            // Only a top-level interface has these.
            self.start = None;
            self.mtu = None;
            self.protocols.clear();
        }
        if self.mtu.is_some_and(|m| m > INTERFACE_MTU_MAX) {
            return Err(XmlError::Invalid(format!(
                "value of the 'size' attribute of 'mtu' element must be at most {INTERFACE_MTU_MAX}"
            )));
        }
        for p in &mut self.protocols {
            if p.family == ProtocolFamily::Ipv4 {
                p.autoconf = false;
            }
            for ip in &mut p.ips {
                if ip.prefix == Some(0) {
                    ip.prefix = None;
                }
            }
        }
        if self.iface_type == Bridge {
            self.link = None;
        }
        if self.iface_type != Ethernet {
            self.mac = None;
        }
        let me = self.iface_type;
        match me {
            Ethernet => {
                self.bridge = None;
                self.bond = None;
                self.vlan = None;
            }
            Bridge => {
                let b = self.bridge.as_mut().ok_or_else(|| {
                    XmlError::Invalid("bridge interface misses the bridge element".into())
                })?;
                for i in &mut b.interfaces {
                    i.normalize(Some(Bridge))?;
                }
                self.bond = None;
                self.vlan = None;
            }
            Bond => {
                let b = self.bond.as_mut().ok_or_else(|| {
                    XmlError::Invalid("bond interface misses the bond element".into())
                })?;
                // miimon wins over arpmon, as libvirt reads them.
                if b.miimon.is_some() {
                    b.arpmon = None;
                }
                if let Some(m) = &mut b.miimon {
                    if m.downdelay == Some(0) {
                        m.downdelay = None;
                    }
                    if m.updelay == Some(0) {
                        m.updelay = None;
                    }
                }
                for i in &mut b.interfaces {
                    i.normalize(Some(Bond))?;
                }
                self.bridge = None;
                self.vlan = None;
            }
            Vlan => {
                let v = self.vlan.as_ref().ok_or_else(|| {
                    XmlError::Invalid("vlan interface misses the vlan element".into())
                })?;
                if v.tag > 4095 {
                    return Err(XmlError::Invalid(format!(
                        "vlan tag {} is out of range (0 to 4095)",
                        v.tag
                    )));
                }
                if v.device.is_none() {
                    return Err(XmlError::Invalid(
                        "vlan interface misses name attribute".into(),
                    ));
                }
                self.bridge = None;
                self.bond = None;
            }
        }
        Ok(())
    }

    /// The member interfaces of a bridge or bond (none for the other types).
    pub fn members(&self) -> &[InterfaceDef] {
        if let Some(b) = &self.bridge {
            return &b.interfaces;
        }
        if let Some(b) = &self.bond {
            return &b.interfaces;
        }
        &[]
    }

    /// The static addresses of the top-level interface: (address, prefix) of every
    /// `<ip>`, refused when one is not an address of its protocol's family or its prefix
    /// is too long for it.
    pub fn static_addresses(&self) -> Result<Vec<(IpAddr, u8)>, XmlError> {
        let mut out = Vec::new();
        for p in &self.protocols {
            for ip in &p.ips {
                let a: IpAddr = ip.address.parse().map_err(|_| {
                    XmlError::Invalid(format!("invalid IP address '{}'", ip.address))
                })?;
                let (ok, max, dflt) = match p.family {
                    ProtocolFamily::Ipv4 => (a.is_ipv4(), 32, 32),
                    ProtocolFamily::Ipv6 => (a.is_ipv6(), 128, 64),
                };
                if !ok {
                    return Err(XmlError::Invalid(format!(
                        "address '{}' is not of family '{}'",
                        ip.address, p.family
                    )));
                }
                let prefix = ip.prefix.unwrap_or(dflt);
                if prefix > max {
                    return Err(XmlError::Invalid(format!(
                        "invalid prefix {prefix} for address '{}'",
                        ip.address
                    )));
                }
                out.push((a, prefix as u8));
            }
        }
        Ok(out)
    }
}

/// Whether `name` may name a kernel interface: 1 to 15 bytes, none of them '/', ':', a
/// space or a control character, and not `.` or `..`.
pub fn valid_interface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= INTERFACE_NAME_MAX
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b > b' ' && b != b'/' && b != b':' && b != 0x7f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(xml: &str) -> String {
        InterfaceDef::parse(xml).unwrap().to_xml()
    }

    #[test]
    fn ethernet_with_addresses_formats_as_libvirt() {
        let xml = "<interface type='ethernet' name='eth0'>
  <start mode='onboot'/>
  <mtu size='1500'/>
  <protocol family='ipv4'>
    <dhcp peerdns='no'/>
    <ip address='192.168.0.5' prefix='24'/>
    <route gateway='192.168.0.1'/>
  </protocol>
  <protocol family='ipv6'>
    <autoconf/>
    <ip address='fd00::5' prefix='64'/>
  </protocol>
  <link speed='1000' state='up'/>
  <mac address='52:54:00:AA:BB:CC'/>
</interface>
";
        let want = xml.replace("AA:BB:CC", "aa:bb:cc");
        assert_eq!(round(xml), want);
        let d = InterfaceDef::parse(xml).unwrap();
        assert_eq!(
            d.static_addresses().unwrap(),
            vec![
                ("192.168.0.5".parse().unwrap(), 24),
                ("fd00::5".parse().unwrap(), 64)
            ]
        );
    }

    #[test]
    fn bridge_members_keep_only_what_members_have() {
        let xml = "<interface type='bridge' name='br0'>
  <mtu size='1400'/>
  <link state='up'/>
  <mac address='52:54:00:00:00:01'/>
  <bridge stp='off' delay='0'>
    <interface type='ethernet' name='eth0'>
      <mtu size='9000'/>
      <mac address='52:54:00:00:00:02'/>
    </interface>
    <interface type='vlan' name='eth1.42'>
      <vlan tag='42'>
        <interface name='eth1'/>
      </vlan>
    </interface>
  </bridge>
</interface>";
        let want = "<interface type='bridge' name='br0'>
  <mtu size='1400'/>
  <bridge stp='off' delay='0'>
    <interface type='ethernet' name='eth0'>
      <mac address='52:54:00:00:00:02'/>
    </interface>
    <interface type='vlan' name='eth1.42'>
      <vlan tag='42'>
        <interface name='eth1'/>
      </vlan>
    </interface>
  </bridge>
</interface>
";
        assert_eq!(round(xml), want);
        let d = InterfaceDef::parse(xml).unwrap();
        assert_eq!(d.members().len(), 2);
    }

    #[test]
    fn bond_with_miimon_and_arpmon() {
        let xml = "<interface type='bond' name='bond0'>
  <bond mode='active-backup'>
    <miimon freq='100' updelay='10' carrier='ioctl'/>
    <interface type='ethernet' name='eth0'/>
    <interface type='ethernet' name='eth1'/>
  </bond>
</interface>
";
        assert_eq!(round(xml), xml);
        let arp = "<interface type='bond' name='bond1'>
  <bond mode='802.3ad'>
    <arpmon interval='100' target='192.168.0.1' validate='backup'/>
  </bond>
</interface>
";
        assert_eq!(round(arp), arp);
        assert_eq!(BondMode::Ieee8023ad.kernel(), 4);
        assert_eq!(BondMode::from_kernel(1), Some(BondMode::ActiveBackup));
        assert_eq!(BondMode::from_kernel(9), None);
        // A downdelay of 0 is not written.
        let zero = xml.replace("updelay='10'", "downdelay='0' updelay='10'");
        assert_eq!(round(&zero), xml);
    }

    #[test]
    fn vlan_needs_tag_and_device() {
        let xml = "<interface type='vlan' name='eth0.5'>
  <start mode='onboot'/>
  <vlan tag='5'>
    <interface name='eth0'/>
  </vlan>
</interface>
";
        assert_eq!(round(xml), xml);
        let e = InterfaceDef::parse("<interface type='vlan' name='v'><vlan tag='5'/></interface>")
            .unwrap_err();
        assert!(e.to_string().contains("vlan interface misses name"), "{e}");
        let e = InterfaceDef::parse("<interface type='vlan' name='v'/>").unwrap_err();
        assert!(e.to_string().contains("misses the vlan element"), "{e}");
        let e = InterfaceDef::parse(
            "<interface type='vlan' name='v'><vlan tag='5000'><interface name='e'/></vlan></interface>",
        )
        .unwrap_err();
        assert!(e.to_string().contains("tag"), "{e}");
    }

    #[test]
    fn refusals() {
        for (xml, why) in [
            ("<interface type='bridge' name='br0'/>", "misses the bridge element"),
            ("<interface type='bond' name='b'/>", "misses the bond element"),
            ("<interface type='wifi' name='w'/>", "interface type"),
            ("<interface type='ethernet'/>", "missing attribute 'name'"),
            (
                "<interface type='bridge' name='b'><bridge><interface type='bridge' name='c'><bridge/></interface></bridge></interface>",
                "unsupported type 'bridge'",
            ),
            (
                "<interface type='bond' name='b'><bond><interface type='vlan' name='c'><vlan tag='1'><interface name='d'/></vlan></interface></bond></interface>",
                "unsupported type 'vlan'",
            ),
            (
                "<interface type='ethernet' name='e'><mtu size='100001'/></interface>",
                "at most 100000",
            ),
            (
                "<interface type='ethernet' name='e'><start mode='sometimes'/></interface>",
                "startmode",
            ),
            (
                "<interface type='ethernet' name='e'><protocol family='ipx'/></interface>",
                "protocol family",
            ),
            (
                "<interface type='bridge' name='b'><bridge stp='maybe'/></interface>",
                "stp",
            ),
            ("<network/>", "expected root element <interface>"),
        ] {
            let e = InterfaceDef::parse(xml).unwrap_err();
            assert!(e.to_string().contains(why), "{xml}: {e}");
        }
    }

    #[test]
    fn addresses_are_checked_against_their_family() {
        let d = InterfaceDef::parse(
            "<interface type='ethernet' name='e'><protocol family='ipv4'><ip address='fd00::1'/></protocol></interface>",
        )
        .unwrap();
        assert!(d.static_addresses().is_err());
        let d = InterfaceDef::parse(
            "<interface type='ethernet' name='e'><protocol family='ipv4'><ip address='10.0.0.1' prefix='33'/></protocol></interface>",
        )
        .unwrap();
        assert!(d.static_addresses().is_err());
        let d = InterfaceDef::parse(
            "<interface type='ethernet' name='e'><protocol family='ipv4'><ip address='10.0.0.1'/></protocol></interface>",
        )
        .unwrap();
        assert_eq!(
            d.static_addresses().unwrap(),
            vec![("10.0.0.1".parse().unwrap(), 32)]
        );
    }

    #[test]
    fn interface_names() {
        for ok in ["eth0", "br-lan", "eth0.42", "a", "fifteen_chars_x"] {
            assert!(valid_interface_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "a:b",
            "sixteen_chars_xx",
            "tab\t",
        ] {
            assert!(!valid_interface_name(bad), "{bad:?}");
        }
    }
}
