//! Network port XML (`<networkport>`): one guest interface's connection to a virtual
//! network, as libvirt's virNetworkPort API and virnetworkportdef.c describe it.

use crate::model::{format_root, parse_root, YesNo};
use crate::network::{
    normalise_bandwidth_opt, normalise_virtualport_opt, Bandwidth, ForwardDriverName, MacAddr,
    MacTableManager, PciAddress, VirtualPort, Vlan,
};
use crate::util::str_enum;
use crate::{xml_element, XmlError};

str_enum! {
    /// `<plug type=…>`: how the port reaches the network.
    PlugType, "network port plug type" {
        /// A tap device on the bridge libvirt made for the network.
        Network => "network",
        /// A tap device on a host bridge (`<forward mode='bridge'>`).
        Bridge => "bridge",
        /// A macvtap device on a host device.
        Direct => "direct",
        /// An SR-IOV VF given to the guest.
        HostdevPci => "hostdev-pci",
    }
}

str_enum! {
    /// `mode` of a direct (macvtap) plug.
    DirectMode, "direct mode" {
        Vepa => "vepa",
        Private => "private",
        Bridge => "bridge",
        Passthrough => "passthrough",
    }
}

xml_element! {
    /// `<plug type='network' bridge='virbr0'/>`: which fields apply depends on the type.
    pub struct PortPlug {
        attr plug_type: PlugType = "type",
        /// network, bridge: the bridge device.
        attr_opt bridge: String = "bridge",
        /// network, bridge.
        attr_opt mac_table_manager: MacTableManager = "macTableManager",
        /// direct: the host device.
        attr_opt dev: String = "dev",
        /// direct (`vepa` when not given).
        attr_opt mode: DirectMode = "mode",
        /// hostdev-pci.
        yes_no managed: bool = "managed",
        /// hostdev-pci.
        in_attr_opt driver: ForwardDriverName = "driver@name",
        /// hostdev-pci: the VF.
        child_opt address: PciAddress = "address",
    }
}

impl PortPlug {
    /// A tap device on `bridge` (type network).
    pub fn network(bridge: &str) -> PortPlug {
        PortPlug {
            plug_type: PlugType::Network,
            bridge: Some(bridge.to_string()),
            mac_table_manager: None,
            dev: None,
            mode: None,
            managed: None,
            driver: None,
            address: None,
        }
    }

    fn validate(&self) -> Result<(), XmlError> {
        let missing = match self.plug_type {
            PlugType::Network | PlugType::Bridge if self.bridge.is_none() => "bridge name",
            PlugType::Direct if self.dev.is_none() => "link device name",
            PlugType::HostdevPci if self.address.is_none() => "PCI address",
            _ => return self.address.as_ref().map_or(Ok(()), PciAddress::validate),
        };
        Err(XmlError::Invalid(format!("Missing network port {missing}")))
    }

    /// Keeps what the type uses, as libvirt writes it.
    fn normalise(&mut self) {
        let t = self.plug_type;
        let bridged = matches!(t, PlugType::Network | PlugType::Bridge);
        if !bridged {
            self.bridge = None;
            self.mac_table_manager = None;
        }
        if t == PlugType::Direct {
            self.mode = Some(self.mode.unwrap_or(DirectMode::Vepa));
        } else {
            self.dev = None;
            self.mode = None;
        }
        if t == PlugType::HostdevPci {
            if let Some(a) = &mut self.address {
                a.addr_type = None;
            }
        } else {
            self.managed = None;
            self.driver = None;
            self.address = None;
        }
    }
}

xml_element! {
    /// `<owner>` of a port: the domain whose interface it is.
    pub struct PortOwner {
        leaf name: String = "name",
        leaf uuid: [u8; 16] = "uuid",
    }
}

xml_element! {
    /// `<networkport>`.
    pub struct NetworkPortDef {
        /// `None` when not given (the network driver makes one).
        leaf_opt uuid: [u8; 16] = "uuid",
        child owner: PortOwner = "owner",
        /// The portgroup the port takes its settings from.
        leaf_opt group: String = "group",
        /// The guest interface's MAC address (required).
        in_attr_opt mac: MacAddr = "mac@address",
        child_opt virtualport: VirtualPort = "virtualport",
        /// Its `classID` is the port's traffic class, and its inbound rate may have a floor.
        child_opt bandwidth: Bandwidth = "bandwidth",
        child_opt vlan: Vlan = "vlan",
        /// `<port isolated='yes'/>`.
        in_attr_opt isolated: YesNo = "port@isolated",
        /// `<rxfilters trustGuest='yes'/>`.
        in_attr_opt trust_guest_rx_filters: YesNo = "rxfilters@trustGuest",
        child_opt plug: PortPlug = "plug",
    }
}

impl NetworkPortDef {
    /// Parses, checks and normalises a port definition.
    pub fn parse(xml: &str) -> Result<NetworkPortDef, XmlError> {
        let mut p: NetworkPortDef = parse_root(xml, "networkport")?;
        p.validate()?;
        p.normalise();
        Ok(p)
    }

    /// The definition as libvirt writes it.
    pub fn format(&self) -> String {
        let mut p = self.clone();
        p.normalise();
        format_root(&p, "networkport")
    }

    /// A MAC address, and what the plug type needs.
    pub fn validate(&self) -> Result<(), XmlError> {
        if self.mac.is_none() {
            return Err(XmlError::Invalid("network port has no mac".to_string()));
        }
        if let Some(p) = &self.plug {
            p.validate()?;
        }
        if let Some(b) = &self.bandwidth {
            b.validate()?;
        }
        if let Some(v) = &self.vlan {
            v.validate()?;
        }
        if let Some(vp) = &self.virtualport {
            vp.validate()?;
        }
        Ok(())
    }

    /// As libvirt writes it: only the plug's own fields, nothing empty.
    pub fn normalise(&mut self) {
        if let Some(p) = &mut self.plug {
            p.normalise();
        }
        normalise_bandwidth_opt(&mut self.bandwidth);
        normalise_virtualport_opt(&mut self.virtualport);
        if let Some(v) = &mut self.vlan {
            v.normalise();
        }
    }

    /// Whether the guest may change its receive filters (MAC, multicast) on the host.
    pub fn trusts_guest_rx_filters(&self) -> bool {
        self.trust_guest_rx_filters == Some(YesNo::Yes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "5d3a2b8e-7c51-4f0e-9d2a-0b6c4e8f1a37";
    const OWNER: &str =
        "<owner><name>vm1</name><uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid></owner>";

    fn port(extra: &str) -> String {
        format!(
            "<networkport><uuid>{UUID}</uuid>{OWNER}<mac address='52:54:00:AB:cd:01'/>{extra}</networkport>"
        )
    }

    #[test]
    fn network_plug_round_trip_in_libvirts_layout() {
        let p = NetworkPortDef::parse(&port(
            "<plug type='network' bridge='virbr0' macTableManager='libvirt'/>\
             <rxfilters trustGuest='yes'/><group>web</group>\
             <bandwidth classID='3'><inbound average='1000' floor='200' burst='64'/></bandwidth>",
        ))
        .unwrap();
        assert_eq!(
            p.mac.map(|m| m.to_string()).as_deref(),
            Some("52:54:00:ab:cd:01")
        );
        assert!(p.trusts_guest_rx_filters());
        let out = p.format();
        assert_eq!(
            out,
            format!(
                "<networkport>
  <uuid>{UUID}</uuid>
  <owner>
    <name>vm1</name>
    <uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid>
  </owner>
  <group>web</group>
  <mac address='52:54:00:ab:cd:01'/>
  <bandwidth classID='3'>
    <inbound average='1000' floor='200' burst='64'/>
  </bandwidth>
  <rxfilters trustGuest='yes'/>
  <plug type='network' bridge='virbr0' macTableManager='libvirt'/>
</networkport>
"
            )
        );
        assert_eq!(NetworkPortDef::parse(&out).unwrap(), p);
        crate::network::tests::validate_schema(&out, "networkport", "port-network");
    }

    #[test]
    fn direct_and_hostdev_plugs() {
        let p = NetworkPortDef::parse(&port(
            "<plug type='direct' dev='eth0' bridge='ignored'/>\
             <vlan><tag id='42'/></vlan><port isolated='yes'/>\
             <virtualport type='802.1Qbh'><parameters profileid='finance'/></virtualport>",
        ))
        .unwrap();
        let plug = p.plug.as_ref().unwrap();
        assert_eq!(
            (plug.mode, plug.bridge.as_deref()),
            (Some(DirectMode::Vepa), None)
        );
        let out = p.format();
        assert!(
            out.contains("  <plug type='direct' dev='eth0' mode='vepa'/>\n"),
            "{out}"
        );
        assert!(out.contains("  <virtualport type='802.1Qbh'>\n    <parameters profileid='finance'/>\n  </virtualport>\n  <vlan>\n    <tag id='42'/>\n  </vlan>\n  <port isolated='yes'/>\n"), "{out}");
        crate::network::tests::validate_schema(&out, "networkport", "port-direct");

        let p = NetworkPortDef::parse(&port(
            "<plug type='hostdev-pci' managed='yes'><driver name='vfio'/>\
             <address type='pci' domain='0' bus='3' slot='0x10' function='1'/></plug>",
        ))
        .unwrap();
        let out = p.format();
        assert!(
            out.contains("  <plug type='hostdev-pci' managed='yes'>\n    <driver name='vfio'/>\n    <address domain='0x0000' bus='0x03' slot='0x10' function='0x1'/>\n  </plug>\n"),
            "{out}"
        );
        assert_eq!(NetworkPortDef::parse(&out).unwrap(), p);
        crate::network::tests::validate_schema(&out, "networkport", "port-hostdev");
    }

    #[test]
    fn port_errors() {
        let e = |xml: &str| NetworkPortDef::parse(xml).unwrap_err().to_string();
        assert_eq!(
            e(&format!(
                "<networkport><uuid>{UUID}</uuid>{OWNER}</networkport>"
            )),
            "XML error: network port has no mac"
        );
        assert_eq!(
            e(&format!("<networkport><uuid>{UUID}</uuid></networkport>")),
            "XML error: missing <owner> in <networkport>"
        );
        assert_eq!(
            e(&port("<plug type='bridge'/>")),
            "XML error: Missing network port bridge name"
        );
        assert_eq!(
            e(&port("<plug type='direct' mode='vepa'/>")),
            "XML error: Missing network port link device name"
        );
        assert_eq!(
            e(&port("<plug type='hostdev-pci'/>")),
            "XML error: Missing network port PCI address"
        );
        assert_eq!(
            e(&port(
                "<plug type='hostdev-pci'><address bus='0x100'/></plug>"
            )),
            "XML error: Invalid PCI address bus='0x100', must be <= 0xff"
        );
        assert_eq!(
            e(&port("<plug type='tap'/>")),
            "XML error: invalid value 'tap' for attribute 'type' of <plug>: unknown network port plug type 'tap'"
        );
        assert_eq!(
            e(&port(
                "<bandwidth><outbound average='1' floor='2'/></bandwidth>"
            )),
            "unsupported configuration: 'floor' attribute allowed only in <inbound> element"
        );
        assert_eq!(
            e(&port("<plug type='direct' dev='eth0' mode='macvtap'/>")),
            "XML error: invalid value 'macvtap' for attribute 'mode' of <plug>: unknown direct mode 'macvtap'"
        );
    }
}
