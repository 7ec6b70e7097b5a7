//! The host's interfaces as libvirt's udev backend shows them, read from one netlink dump
//! of the links and one of the addresses: which are listed (not a bridge's ports, not tap
//! devices), which are active (operational state up), and each one's XML — type from the
//! link's kind, MTU, `<link>` state and speed, MAC address (ethernet), a bridge's STP,
//! forward delay and ports, a bond's mode, monitoring and members, a VLAN's tag and
//! device; its addresses as `<protocol>` elements, which the udev backend leaves out.

use vireo_xml::{
    ArpValidate, BondArpmon, BondMiimon, BondMode, HostIfaceType, InterfaceBond, InterfaceBridge,
    InterfaceDef, InterfaceIp, InterfaceLink, InterfaceProtocol, InterfaceVlan, MacAddr,
    MiiCarrier, NodeDevLinkState, ProtocolFamily, VlanDevice,
};

use crate::netlink::{self, Addr, Link, Netlink, OPER_UP};
use crate::{InterfaceError, Result};

/// One reading of the host's links and addresses.
pub struct Host {
    pub links: Vec<Link>,
    pub addrs: Vec<Addr>,
}

impl Host {
    pub fn read(nl: &mut Netlink) -> Result<Host> {
        let links = nl
            .links()
            .map_err(|e| InterfaceError::io("cannot read the host's interfaces", e))?;
        let addrs = nl
            .addresses()
            .map_err(|e| InterfaceError::io("cannot read the host's addresses", e))?;
        Ok(Host { links, addrs })
    }

    pub fn by_name(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    pub fn by_index(&self, index: u32) -> Option<&Link> {
        self.links.iter().find(|l| l.index == index)
    }

    /// Whether a link is listed: tap devices are the guests', a bridge's ports are shown
    /// inside their bridge.
    pub fn listed(&self, l: &Link) -> bool {
        l.kind.as_deref() != Some("tun") && !self.is_bridge_port(l)
    }

    fn is_bridge_port(&self, l: &Link) -> bool {
        l.master
            .and_then(|m| self.by_index(m))
            .is_some_and(|m| m.kind.as_deref() == Some("bridge"))
    }

    /// The links enslaved to the link of `index`, by name (a guest's `vnetN` left out,
    /// as libvirt leaves it out).
    fn members(&self, index: u32) -> Vec<&Link> {
        let mut v: Vec<&Link> = self
            .links
            .iter()
            .filter(|l| l.master == Some(index) && !is_guest_tap(&l.name))
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// A host link's XML model, top-level (with its MTU and addresses) or as a member.
    pub fn def(&self, l: &Link, top: bool) -> InterfaceDef {
        let t = type_of(l);
        let mut d = InterfaceDef::new(t, &l.name);
        if top {
            d.mtu = l.mtu;
            d.protocols = self.protocols(l.index);
        }
        if t != HostIfaceType::Bridge {
            let speed = (l.oper == OPER_UP && l.ether)
                .then(|| netlink::speed(&l.name))
                .flatten();
            d.link = Some(InterfaceLink {
                speed,
                state: Some(state_of(l.oper)),
            });
        }
        match t {
            HostIfaceType::Ethernet => d.mac = l.mac.map(MacAddr),
            HostIfaceType::Bridge => {
                let b = l.bridge.clone().unwrap_or(netlink::BridgeInfo {
                    forward_delay: 0,
                    stp: 0,
                });
                d.bridge = Some(InterfaceBridge {
                    stp: Some(b.stp != 0),
                    delay: Some(b.forward_delay.to_string()),
                    interfaces: self
                        .members(l.index)
                        .into_iter()
                        .map(|m| self.def(m, false))
                        .collect(),
                });
            }
            HostIfaceType::Bond => {
                let b = l.bond.clone().unwrap_or_default();
                let (miimon, arpmon) = if b.arp_interval > 0 {
                    let target = b
                        .arp_targets
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(" ");
                    let validate = match b.arp_validate {
                        1 => Some(ArpValidate::Active),
                        2 => Some(ArpValidate::Backup),
                        3 => Some(ArpValidate::All),
                        _ => None,
                    };
                    let arp = BondArpmon {
                        interval: b.arp_interval,
                        target,
                        validate,
                    };
                    (None, Some(arp))
                } else if b.miimon > 0 {
                    let mii = BondMiimon {
                        freq: b.miimon,
                        downdelay: (b.downdelay > 0).then_some(b.downdelay),
                        updelay: (b.updelay > 0).then_some(b.updelay),
                        carrier: Some(if b.use_carrier {
                            MiiCarrier::Netif
                        } else {
                            MiiCarrier::Ioctl
                        }),
                    };
                    (Some(mii), None)
                } else {
                    (None, None)
                };
                d.bond = Some(InterfaceBond {
                    mode: BondMode::from_kernel(b.mode),
                    miimon,
                    arpmon,
                    interfaces: self
                        .members(l.index)
                        .into_iter()
                        .map(|m| self.def(m, false))
                        .collect(),
                });
            }
            HostIfaceType::Vlan => {
                d.vlan = Some(InterfaceVlan {
                    tag: l.vlan_id.unwrap_or(0),
                    device: l.parent.and_then(|p| self.by_index(p)).map(|p| VlanDevice {
                        name: p.name.clone(),
                    }),
                });
            }
        }
        d
    }

    /// The addresses of the link of `index`: `<protocol family='ipv4'>` then `ipv6`,
    /// each only when the link has addresses of that family.
    fn protocols(&self, index: u32) -> Vec<InterfaceProtocol> {
        let mut out = Vec::new();
        for (family, v4) in [(ProtocolFamily::Ipv4, true), (ProtocolFamily::Ipv6, false)] {
            let ips: Vec<InterfaceIp> = self
                .addrs
                .iter()
                .filter(|a| a.index == index && a.addr.is_ipv4() == v4)
                .map(|a| InterfaceIp {
                    address: a.addr.to_string(),
                    prefix: (a.prefix != 0).then_some(u32::from(a.prefix)),
                })
                .collect();
            if !ips.is_empty() {
                out.push(InterfaceProtocol {
                    family,
                    autoconf: false,
                    dhcp: None,
                    ips,
                    gateway: None,
                });
            }
        }
        out
    }
}

/// libvirt's type of a link: from its kind, ethernet for everything else.
pub fn type_of(l: &Link) -> HostIfaceType {
    match l.kind.as_deref() {
        Some("bridge") => HostIfaceType::Bridge,
        Some("bond") => HostIfaceType::Bond,
        Some("vlan") => HostIfaceType::Vlan,
        _ => HostIfaceType::Ethernet,
    }
}

fn state_of(oper: u8) -> NodeDevLinkState {
    match netlink::oper_name(oper) {
        "notpresent" => NodeDevLinkState::NotPresent,
        "down" => NodeDevLinkState::Down,
        "lowerlayerdown" => NodeDevLinkState::LowerLayerDown,
        "testing" => NodeDevLinkState::Testing,
        "dormant" => NodeDevLinkState::Dormant,
        "up" => NodeDevLinkState::Up,
        _ => NodeDevLinkState::Unknown,
    }
}

/// A guest's tap device as libvirt names them (`vnet` and a digit).
fn is_guest_tap(name: &str) -> bool {
    name.strip_prefix("vnet")
        .and_then(|r| r.bytes().next())
        .is_some_and(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::{BondInfo, BridgeInfo};

    fn link(index: u32, name: &str, kind: Option<&str>) -> Link {
        Link {
            index,
            name: name.into(),
            kind: kind.map(Into::into),
            mac: Some([0x52, 0x54, 0, 0, 0, index as u8]),
            mtu: Some(1500),
            up: true,
            oper: 2,
            ether: true,
            master: None,
            parent: None,
            vlan_id: None,
            bridge: None,
            bond: None,
        }
    }

    #[test]
    fn a_bridge_shows_its_ports_and_hides_them_from_the_list() {
        let mut br = link(3, "br0", Some("bridge"));
        br.bridge = Some(BridgeInfo {
            forward_delay: 1500,
            stp: 0,
        });
        let mut p1 = link(4, "veth1", Some("veth"));
        p1.master = Some(3);
        let mut p0 = link(5, "veth0", Some("veth"));
        p0.master = Some(3);
        let mut tap = link(6, "vnet0", Some("tun"));
        tap.master = Some(3);
        let mut lo = link(1, "lo", None);
        lo.oper = 0;
        lo.mac = Some([0; 6]);
        lo.mtu = Some(65536);
        let h = Host {
            links: vec![lo.clone(), br.clone(), p1.clone(), p0, tap.clone()],
            addrs: vec![Addr {
                index: 3,
                addr: "192.168.7.1".parse().unwrap(),
                prefix: 24,
            }],
        };
        assert!(h.listed(&br) && h.listed(&lo));
        assert!(!h.listed(&p1) && !h.listed(&tap));
        assert_eq!(
            h.def(&br, true).to_xml(),
            "<interface type='bridge' name='br0'>
  <mtu size='1500'/>
  <protocol family='ipv4'>
    <ip address='192.168.7.1' prefix='24'/>
  </protocol>
  <bridge stp='off' delay='1500'>
    <interface type='ethernet' name='veth0'>
      <link state='down'/>
      <mac address='52:54:00:00:00:05'/>
    </interface>
    <interface type='ethernet' name='veth1'>
      <link state='down'/>
      <mac address='52:54:00:00:00:04'/>
    </interface>
  </bridge>
</interface>
"
        );
        assert_eq!(
            h.def(&lo, true).to_xml(),
            "<interface type='ethernet' name='lo'>
  <mtu size='65536'/>
  <link state='unknown'/>
  <mac address='00:00:00:00:00:00'/>
</interface>
"
        );
    }

    #[test]
    fn bonds_and_vlans() {
        let mut bond = link(7, "bond0", Some("bond"));
        bond.bond = Some(BondInfo {
            mode: 1,
            miimon: 100,
            updelay: 0,
            downdelay: 200,
            use_carrier: true,
            ..Default::default()
        });
        let mut s = link(8, "eth1", None);
        s.master = Some(7);
        let mut vlan = link(9, "eth1.42", Some("vlan"));
        vlan.parent = Some(8);
        vlan.vlan_id = Some(42);
        let h = Host {
            links: vec![bond.clone(), s, vlan.clone()],
            addrs: vec![],
        };
        assert_eq!(
            h.def(&bond, true).to_xml(),
            "<interface type='bond' name='bond0'>
  <mtu size='1500'/>
  <link state='down'/>
  <bond mode='active-backup'>
    <miimon freq='100' downdelay='200' carrier='netif'/>
    <interface type='ethernet' name='eth1'>
      <link state='down'/>
      <mac address='52:54:00:00:00:08'/>
    </interface>
  </bond>
</interface>
"
        );
        assert_eq!(
            h.def(&vlan, true).to_xml(),
            "<interface type='vlan' name='eth1.42'>
  <mtu size='1500'/>
  <link state='down'/>
  <vlan tag='42'>
    <interface name='eth1'/>
  </vlan>
</interface>
"
        );
        // What the kernel shows reads back as a definition.
        let back = InterfaceDef::parse(&h.def(&bond, true).to_xml()).unwrap();
        assert_eq!(back, h.def(&bond, true));
    }

    #[test]
    fn guest_taps_are_named_vnet_and_a_digit() {
        assert!(is_guest_tap("vnet0") && is_guest_tap("vnet12"));
        assert!(!is_guest_tap("vnet") && !is_guest_tap("vnetx") && !is_guest_tap("eth0"));
    }
}
