//! Node device XML (`<device>`), described once with [`xml_element!`]: the host
//! (`system`), PCI devices (`pci`) and network interfaces (`net`), in libvirt's element
//! order.
//!
//! The `<capability>` element says different things for each type; it is one table
//! ([`NodeDevCapability`]) whose fields each type fills in part, in an order that is
//! libvirt's for every type.

use crate::model::{format_root, parse_root};
use crate::util::str_enum;
use crate::{xml_element, Hex, MacAddr, PciAddress, XmlError};

str_enum! {
    /// `<capability type=...>` of a device: the types this model describes.
    NodeDevCapType, "node device capability" {
        System => "system",
        Pci => "pci",
        Net => "net",
    }
}

str_enum! {
    /// `<link state=...>` of an interface: the kernel's `operstate` (RFC 2863).
    NodeDevLinkState, "link state" {
        Unknown => "unknown",
        NotPresent => "notpresent",
        Down => "down",
        LowerLayerDown => "lowerlayerdown",
        Testing => "testing",
        Dormant => "dormant",
        Up => "up",
    }
}

xml_element! {
    /// `<driver><name>e1000e</name></driver>`: the kernel driver bound to the device.
    pub struct NodeDevDriverName {
        leaf name: String = "name",
    }
}

xml_element! {
    /// An id and its name: `<product id='0x10d3'>82574L</product>`, `<vendor
    /// id='0x8086'/>` of a PCI device (the name left out when unknown); the system's
    /// `<product>` has the name alone.
    pub struct NodeDevIdName {
        attr_opt id: Hex<4> = "id",
        text_opt name: String = "",
    }
}

xml_element! {
    /// `<hardware>` of the system (DMI): the UUID is always written, zero when unknown.
    pub struct NodeDevHardware {
        leaf_opt vendor: String = "vendor",
        leaf_opt version: String = "version",
        leaf_opt serial: String = "serial",
        leaf uuid: [u8; 16] = "uuid",
    }
}

xml_element! {
    /// `<firmware>` of the system (the BIOS, from DMI).
    pub struct NodeDevFirmware {
        leaf_opt vendor: String = "vendor",
        leaf_opt version: String = "version",
        leaf_opt release_date: String = "release_date",
    }
}

xml_element! {
    /// `<iommuGroup number='7'>` of a PCI device, with the address of every device in the
    /// group (the device itself among them).
    pub struct NodeDevIommuGroup {
        attr number: u32 = "number",
        children address: PciAddress = "address",
    }
}

xml_element! {
    /// `<link speed='1000' state='up'/>` of an interface (speed in Mbit/s).
    pub struct NodeDevLink {
        attr_opt speed: u32 = "speed",
        attr_opt state: NodeDevLinkState = "state",
    }
}

xml_element! {
    /// A capability inside a capability: `<capability type='80203'/>` of an interface
    /// (802.3, or 80211 for wireless).
    pub struct NodeDevSubCap {
        attr cap_type: String = "type",
    }
}

xml_element! {
    /// `<capability type='…'>`. A `system` one has `product`, `hardware` and
    /// `firmware`; a `pci` one `class` to `vendor` and `iommu_group`; a `net` one
    /// `interface` to `sub_caps`.
    pub struct NodeDevCapability {
        attr cap_type: NodeDevCapType = "type",
        /// Class, subclass and programming interface (`0x020000`).
        leaf_opt class: Hex<6> = "class",
        leaf_opt domain: u32 = "domain",
        leaf_opt bus: u32 = "bus",
        leaf_opt slot: u32 = "slot",
        leaf_opt function: u32 = "function",
        child_opt product: NodeDevIdName = "product",
        child_opt vendor: NodeDevIdName = "vendor",
        child_opt hardware: NodeDevHardware = "hardware",
        child_opt firmware: NodeDevFirmware = "firmware",
        child_opt iommu_group: NodeDevIommuGroup = "iommuGroup",
        /// The interface's name (`eth0`).
        leaf_opt interface: String = "interface",
        leaf_opt address: MacAddr = "address",
        child_opt link: NodeDevLink = "link",
        children sub_caps: NodeDevSubCap = "capability",
    }
}

impl NodeDevCapability {
    /// A capability of type `cap_type` with nothing in it yet.
    pub fn new(cap_type: NodeDevCapType) -> NodeDevCapability {
        NodeDevCapability {
            cap_type,
            class: None,
            domain: None,
            bus: None,
            slot: None,
            function: None,
            product: None,
            vendor: None,
            hardware: None,
            firmware: None,
            iommu_group: None,
            interface: None,
            address: None,
            link: None,
            sub_caps: Vec::new(),
        }
    }
}

xml_element! {
    /// `<device>`: one device of the host, as `virsh nodedev-dumpxml` shows it.
    pub struct NodeDeviceDef {
        leaf name: String = "name",
        /// Its sysfs directory (none for `computer`).
        leaf_opt path: String = "path",
        /// The parent's name (none for `computer`).
        leaf_opt parent: String = "parent",
        child_opt driver: NodeDevDriverName = "driver",
        children capability: NodeDevCapability = "capability",
    }
}

impl NodeDeviceDef {
    /// Parses a node device document.
    pub fn parse(xml: &str) -> Result<NodeDeviceDef, XmlError> {
        parse_root(xml, "device")
    }

    pub fn format(&self) -> String {
        format_root(self, "device")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NIC: &str = "<device>
  <name>pci_0000_01_00_0</name>
  <path>/sys/devices/pci0000:00/0000:00:1c.0/0000:01:00.0</path>
  <parent>pci_0000_00_1c_0</parent>
  <driver>
    <name>e1000e</name>
  </driver>
  <capability type='pci'>
    <class>0x020000</class>
    <domain>0</domain>
    <bus>1</bus>
    <slot>0</slot>
    <function>0</function>
    <product id='0x10d3'/>
    <vendor id='0x8086'>Intel Corporation</vendor>
    <iommuGroup number='7'>
      <address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
    </iommuGroup>
  </capability>
</device>
";

    const HOST: &str = "<device>
  <name>computer</name>
  <capability type='system'>
    <product>Standard PC</product>
    <hardware>
      <vendor>QEMU</vendor>
      <uuid>00000000-0000-0000-0000-000000000000</uuid>
    </hardware>
    <firmware/>
  </capability>
</device>
";

    const ETH: &str = "<device>
  <name>net_eth0_52_54_00_12_34_56</name>
  <path>/sys/devices/pci0000:00/0000:00:03.0/virtio2/net/eth0</path>
  <parent>pci_0000_00_03_0</parent>
  <capability type='net'>
    <interface>eth0</interface>
    <address>52:54:00:12:34:56</address>
    <link speed='1000' state='up'/>
    <capability type='80203'/>
  </capability>
</device>
";

    #[test]
    fn round_trips_in_libvirts_order() {
        for xml in [NIC, HOST, ETH] {
            let d = NodeDeviceDef::parse(xml).unwrap();
            assert_eq!(d.format(), xml);
        }
        let d = NodeDeviceDef::parse(NIC).unwrap();
        let pci = &d.capability[0];
        assert_eq!(pci.class, Some(Hex(0x020000)));
        assert_eq!(pci.vendor.as_ref().and_then(|v| v.id), Some(Hex(0x8086)));
        let group = pci.iommu_group.as_ref().unwrap();
        assert_eq!((group.number, group.address[0].bus.0), (7, 1));
        let d = NodeDeviceDef::parse(ETH).unwrap();
        let link = d.capability[0].link.as_ref().unwrap();
        assert_eq!(link.state, Some(NodeDevLinkState::Up));
    }

    #[test]
    fn a_new_capability_is_empty() {
        let c = NodeDevCapability::new(NodeDevCapType::Net);
        assert_eq!(format_root(&c, "capability"), "<capability type='net'/>\n");
        let e = NodeDeviceDef::parse("<device><name>x</name><capability type='usb'/></device>")
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown node device capability 'usb'"),
            "{e}"
        );
    }
}
