//! Node device XML (`<device>`), described with [`xml_element!`]: the host (`system`),
//! PCI devices (`pci`, with their mediated device types), USB devices and interfaces
//! (`usb_device`, `usb`), network interfaces (`net`), SCSI hosts, targets and devices
//! (`scsi_host`, `scsi_target`, `scsi`), block devices (`storage`), SCSI generic devices
//! (`scsi_generic`), DRM devices (`drm`) and mediated devices (`mdev`), each in libvirt's
//! element order.
//!
//! The `<capability>` element says different things for each type: it is an enum
//! ([`NodeDevCapability`]) of one table per type.

use roxmltree::Node;

use crate::model::{field, format_root, parse_root, XmlElement, XmlValue};
use crate::util::{str_enum, Writer};
use crate::{xml_element, Hex, MacAddr, PciAddress, XmlError};

str_enum! {
    /// `<capability type=...>` of a device: the types this model describes.
    NodeDevCapType, "node device capability" {
        System => "system",
        Pci => "pci",
        UsbDevice => "usb_device",
        Usb => "usb",
        Net => "net",
        ScsiHost => "scsi_host",
        ScsiTarget => "scsi_target",
        Scsi => "scsi",
        Storage => "storage",
        ScsiGeneric => "scsi_generic",
        Drm => "drm",
        Mdev => "mdev",
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

str_enum! {
    /// `<type>` of a DRM device: what its minor number says it is.
    NodeDevDrmType, "DRM device type" {
        Primary => "primary",
        Control => "control",
        Render => "render",
    }
}

str_enum! {
    /// `<devnode type=...>`: the device's node, or another name of it.
    NodeDevDevnodeType, "devnode type" {
        Dev => "dev",
        Link => "link",
    }
}

xml_element! {
    /// `<devnode type='dev'>/dev/sda</devnode>`: a file in /dev for the device.
    pub struct NodeDevDevnode {
        attr node_type: NodeDevDevnodeType = "type",
        text path: String = "",
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

/// `<product id='0x0001'>…</product>` and `<vendor …>` of a USB device: as a PCI
/// device's, but libvirt ends one without a name with ` />`, a space before the slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDevUsbId {
    pub id: Hex<4>,
    pub name: Option<String>,
}

impl XmlElement for NodeDevUsbId {
    fn from_node(n: Node) -> Result<Self, XmlError> {
        Ok(NodeDevUsbId {
            id: field::attr(n, "id")?,
            name: field::own_text_opt(n)?,
        })
    }

    fn write_to(&self, w: &mut Writer, name: &str) {
        match &self.name {
            Some(text) => {
                let mut out = field::Out::start(w, name);
                out.attr("id", &self.id);
                out.text(text);
                out.finish();
            }
            // The id is a number: nothing in it to escape.
            None => w.raw(&format!("<{name} id='{}' />", self.id.to_xml())),
        }
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
    /// group (the device itself among them); a mediated device's has the number alone.
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
    /// One mediated device type a PCI device offers: `<type id='i915-GVTg_V5_4'>` with
    /// its name, the API its devices have (`vfio-pci`) and how many more can be made.
    pub struct NodeDevMdevType {
        attr id: String = "id",
        leaf_opt name: String = "name",
        leaf device_api: String = "deviceAPI",
        leaf available_instances: u32 = "availableInstances",
    }
}

xml_element! {
    /// A capability inside a PCI device's: `<capability type='mdev_types'>` and its
    /// types, `phys_function` / `virt_functions` (SR-IOV) with addresses, `pci-bridge`.
    pub struct NodeDevPciSubCap {
        attr cap_type: String = "type",
        attr_opt max_count: u32 = "maxCount",
        children address: PciAddress = "address",
        children types: NodeDevMdevType = "type",
    }
}

xml_element! {
    /// `<capability type='system'>`: the host.
    pub struct NodeDevSystemCap {
        attr cap_type: NodeDevCapType = "type",
        /// The product's name alone.
        child_opt product: NodeDevIdName = "product",
        child_opt hardware: NodeDevHardware = "hardware",
        child_opt firmware: NodeDevFirmware = "firmware",
    }
}

xml_element! {
    /// `<capability type='pci'>`: a PCI device.
    pub struct NodeDevPciCap {
        attr cap_type: NodeDevCapType = "type",
        /// Class, subclass and programming interface (`0x020000`).
        leaf_opt class: Hex<6> = "class",
        leaf domain: u32 = "domain",
        leaf bus: u32 = "bus",
        leaf slot: u32 = "slot",
        leaf function: u32 = "function",
        child product: NodeDevIdName = "product",
        child vendor: NodeDevIdName = "vendor",
        children sub_caps: NodeDevPciSubCap = "capability",
        child_opt iommu_group: NodeDevIommuGroup = "iommuGroup",
    }
}

xml_element! {
    /// `<capability type='usb_device'>`: a USB device (bus and device number, ids).
    pub struct NodeDevUsbDeviceCap {
        attr cap_type: NodeDevCapType = "type",
        leaf bus: u32 = "bus",
        leaf device: u32 = "device",
        child product: NodeDevUsbId = "product",
        child vendor: NodeDevUsbId = "vendor",
    }
}

xml_element! {
    /// `<capability type='usb'>`: an interface of a USB device (numbers in decimal).
    pub struct NodeDevUsbCap {
        attr cap_type: NodeDevCapType = "type",
        leaf number: u32 = "number",
        leaf class: u32 = "class",
        leaf subclass: u32 = "subclass",
        leaf protocol: u32 = "protocol",
        leaf_opt description: String = "description",
    }
}

xml_element! {
    /// `<capability type='net'>`: a network interface.
    pub struct NodeDevNetCap {
        attr cap_type: NodeDevCapType = "type",
        /// The interface's name (`eth0`).
        leaf interface: String = "interface",
        leaf_opt address: MacAddr = "address",
        child_opt link: NodeDevLink = "link",
        children sub_caps: NodeDevSubCap = "capability",
    }
}

xml_element! {
    /// A capability inside a SCSI host's: `fc_host` (its world wide names) or
    /// `vport_ops` (how many virtual ports it may have, and has).
    pub struct NodeDevScsiHostSubCap {
        attr cap_type: String = "type",
        leaf_opt wwnn: String = "wwnn",
        leaf_opt wwpn: String = "wwpn",
        leaf_opt fabric_wwn: String = "fabric_wwn",
        leaf_opt max_vports: i32 = "max_vports",
        leaf_opt vports: i32 = "vports",
    }
}

xml_element! {
    /// `<capability type='scsi_host'>`: a SCSI host adapter (`host0`).
    pub struct NodeDevScsiHostCap {
        attr cap_type: NodeDevCapType = "type",
        leaf host: u32 = "host",
        leaf_opt unique_id: i32 = "unique_id",
        children sub_caps: NodeDevScsiHostSubCap = "capability",
    }
}

xml_element! {
    /// `<capability type='fc_remote_port'>` of a SCSI target behind a Fibre Channel port.
    pub struct NodeDevRportCap {
        attr cap_type: String = "type",
        leaf rport: String = "rport",
        leaf wwpn: String = "wwpn",
    }
}

xml_element! {
    /// `<capability type='scsi_target'>`: a SCSI target (`target0:0:0`).
    pub struct NodeDevScsiTargetCap {
        attr cap_type: NodeDevCapType = "type",
        leaf target: String = "target",
        child_opt rport: NodeDevRportCap = "capability",
    }
}

xml_element! {
    /// `<capability type='scsi'>`: a SCSI device (a LUN), and its kind (`disk`, `cdrom`).
    pub struct NodeDevScsiCap {
        attr cap_type: NodeDevCapType = "type",
        leaf host: u32 = "host",
        leaf bus: u32 = "bus",
        leaf target: u32 = "target",
        leaf lun: u32 = "lun",
        leaf_opt scsi_type: String = "type",
    }
}

xml_element! {
    /// A capability inside a block device's: `removable` (the medium: whether there is
    /// one, its size, label and blocks) or `hotpluggable`.
    pub struct NodeDevStorageSubCap {
        attr cap_type: String = "type",
        leaf_opt media_available: u8 = "media_available",
        leaf_opt media_size: u64 = "media_size",
        leaf_opt media_label: String = "media_label",
        leaf_opt logical_block_size: u64 = "logical_block_size",
        leaf_opt num_blocks: u64 = "num_blocks",
    }
}

xml_element! {
    /// `<capability type='storage'>`: a block device (a whole disk). A fixed disk has
    /// `size` and its blocks; a removable one says them in its `removable` capability.
    pub struct NodeDevStorageCap {
        attr cap_type: NodeDevCapType = "type",
        leaf block: String = "block",
        leaf_opt bus: String = "bus",
        leaf_opt drive_type: String = "drive_type",
        leaf_opt model: String = "model",
        leaf_opt vendor: String = "vendor",
        leaf_opt serial: String = "serial",
        children sub_caps: NodeDevStorageSubCap = "capability",
        leaf_opt size: u64 = "size",
        leaf_opt logical_block_size: u64 = "logical_block_size",
        leaf_opt num_blocks: u64 = "num_blocks",
    }
}

xml_element! {
    /// `<capability type='scsi_generic'>`: a SCSI generic device's node (`/dev/sg0`).
    pub struct NodeDevScsiGenericCap {
        attr cap_type: NodeDevCapType = "type",
        leaf char_dev: String = "char",
    }
}

xml_element! {
    /// `<capability type='drm'>`: a DRM device (`card0`, `renderD128`).
    pub struct NodeDevDrmCap {
        attr cap_type: NodeDevCapType = "type",
        leaf drm_type: NodeDevDrmType = "type",
    }
}

xml_element! {
    /// `<type id='…'/>` of a mediated device: the type it was made of.
    pub struct NodeDevMdevTypeId {
        attr id: String = "id",
    }
}

xml_element! {
    /// `<attr name='…' value='…'/>` of a mediated device defined with attributes.
    pub struct NodeDevMdevAttr {
        attr name: String = "name",
        attr value: String = "value",
    }
}

xml_element! {
    /// `<capability type='mdev'>`: a mediated device, its type, UUID, parent's address
    /// and IOMMU group.
    pub struct NodeDevMdevCap {
        attr cap_type: NodeDevCapType = "type",
        child mdev_type: NodeDevMdevTypeId = "type",
        leaf_opt uuid: String = "uuid",
        leaf_opt parent_addr: String = "parent_addr",
        child_opt iommu_group: NodeDevIommuGroup = "iommuGroup",
        children attrs: NodeDevMdevAttr = "attr",
    }
}

/// `<capability type='…'>` of a device: what it is, in the elements of its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeDevCapability {
    System(NodeDevSystemCap),
    Pci(NodeDevPciCap),
    UsbDevice(NodeDevUsbDeviceCap),
    Usb(NodeDevUsbCap),
    Net(NodeDevNetCap),
    ScsiHost(NodeDevScsiHostCap),
    ScsiTarget(NodeDevScsiTargetCap),
    Scsi(NodeDevScsiCap),
    Storage(NodeDevStorageCap),
    ScsiGeneric(NodeDevScsiGenericCap),
    Drm(NodeDevDrmCap),
    Mdev(NodeDevMdevCap),
}

impl NodeDevCapability {
    /// Its type.
    pub fn cap_type(&self) -> NodeDevCapType {
        match self {
            NodeDevCapability::System(_) => NodeDevCapType::System,
            NodeDevCapability::Pci(_) => NodeDevCapType::Pci,
            NodeDevCapability::UsbDevice(_) => NodeDevCapType::UsbDevice,
            NodeDevCapability::Usb(_) => NodeDevCapType::Usb,
            NodeDevCapability::Net(_) => NodeDevCapType::Net,
            NodeDevCapability::ScsiHost(_) => NodeDevCapType::ScsiHost,
            NodeDevCapability::ScsiTarget(_) => NodeDevCapType::ScsiTarget,
            NodeDevCapability::Scsi(_) => NodeDevCapType::Scsi,
            NodeDevCapability::Storage(_) => NodeDevCapType::Storage,
            NodeDevCapability::ScsiGeneric(_) => NodeDevCapType::ScsiGeneric,
            NodeDevCapability::Drm(_) => NodeDevCapType::Drm,
            NodeDevCapability::Mdev(_) => NodeDevCapType::Mdev,
        }
    }
}

impl XmlElement for NodeDevCapability {
    fn from_node(n: Node) -> Result<Self, XmlError> {
        let t: NodeDevCapType = field::attr(n, "type")?;
        Ok(match t {
            NodeDevCapType::System => NodeDevCapability::System(XmlElement::from_node(n)?),
            NodeDevCapType::Pci => NodeDevCapability::Pci(XmlElement::from_node(n)?),
            NodeDevCapType::UsbDevice => NodeDevCapability::UsbDevice(XmlElement::from_node(n)?),
            NodeDevCapType::Usb => NodeDevCapability::Usb(XmlElement::from_node(n)?),
            NodeDevCapType::Net => NodeDevCapability::Net(XmlElement::from_node(n)?),
            NodeDevCapType::ScsiHost => NodeDevCapability::ScsiHost(XmlElement::from_node(n)?),
            NodeDevCapType::ScsiTarget => NodeDevCapability::ScsiTarget(XmlElement::from_node(n)?),
            NodeDevCapType::Scsi => NodeDevCapability::Scsi(XmlElement::from_node(n)?),
            NodeDevCapType::Storage => NodeDevCapability::Storage(XmlElement::from_node(n)?),
            NodeDevCapType::ScsiGeneric => {
                NodeDevCapability::ScsiGeneric(XmlElement::from_node(n)?)
            }
            NodeDevCapType::Drm => NodeDevCapability::Drm(XmlElement::from_node(n)?),
            NodeDevCapType::Mdev => NodeDevCapability::Mdev(XmlElement::from_node(n)?),
        })
    }

    fn write_to(&self, w: &mut Writer, name: &str) {
        match self {
            NodeDevCapability::System(c) => c.write_to(w, name),
            NodeDevCapability::Pci(c) => c.write_to(w, name),
            NodeDevCapability::UsbDevice(c) => c.write_to(w, name),
            NodeDevCapability::Usb(c) => c.write_to(w, name),
            NodeDevCapability::Net(c) => c.write_to(w, name),
            NodeDevCapability::ScsiHost(c) => c.write_to(w, name),
            NodeDevCapability::ScsiTarget(c) => c.write_to(w, name),
            NodeDevCapability::Scsi(c) => c.write_to(w, name),
            NodeDevCapability::Storage(c) => c.write_to(w, name),
            NodeDevCapability::ScsiGeneric(c) => c.write_to(w, name),
            NodeDevCapability::Drm(c) => c.write_to(w, name),
            NodeDevCapability::Mdev(c) => c.write_to(w, name),
        }
    }
}

xml_element! {
    /// `<device>`: one device of the host, as `virsh nodedev-dumpxml` shows it.
    pub struct NodeDeviceDef {
        leaf name: String = "name",
        /// Its sysfs directory (none for `computer`).
        leaf_opt path: String = "path",
        /// Its node in /dev, then the other names udev made for it.
        children devnode: NodeDevDevnode = "devnode",
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

xml_element! {
    /// `<device>` as a client gives it to have one made or defined (`nodedev-create`,
    /// `nodedev-define`): a mediated device's parent and capability. The name is the
    /// driver's to give: one written here is ignored, as libvirt ignores it.
    pub struct NewNodeDevice {
        leaf_opt name: String = "name",
        leaf_opt parent: String = "parent",
        children capability: NodeDevCapability = "capability",
    }
}

impl NewNodeDevice {
    /// Parses a document describing a device to make.
    pub fn parse(xml: &str) -> Result<NewNodeDevice, XmlError> {
        parse_root(xml, "device")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mediated device to make: no name, its parent, type, UUID and attributes.
    #[test]
    fn a_device_to_make_needs_no_name() {
        let d = NewNodeDevice::parse(
            "<device><parent>pci_0000_00_02_0</parent><capability type='mdev'>\
             <type id='nvidia-63'/><uuid>4b20d080-1b54-4048-85b3-a6a62d165c01</uuid>\
             <attr name='assign_adapter' value='5'/></capability></device>",
        )
        .unwrap();
        assert_eq!(d.name, None);
        assert_eq!(d.parent.as_deref(), Some("pci_0000_00_02_0"));
        let [NodeDevCapability::Mdev(m)] = &d.capability[..] else {
            panic!("{:?}", d.capability);
        };
        assert_eq!(m.mdev_type.id, "nvidia-63");
        assert_eq!(
            m.uuid.as_deref(),
            Some("4b20d080-1b54-4048-85b3-a6a62d165c01")
        );
        assert_eq!(
            (m.attrs[0].name.as_str(), m.attrs[0].value.as_str()),
            ("assign_adapter", "5")
        );
        // A type is required.
        assert!(NewNodeDevice::parse(
            "<device><parent>p</parent><capability type='mdev'/></device>"
        )
        .is_err());
        assert!(NewNodeDevice::parse("<domain/>").is_err());
    }

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

    const GPU: &str = "<device>
  <name>pci_0000_00_02_0</name>
  <path>/sys/devices/pci0000:00/0000:00:02.0</path>
  <parent>computer</parent>
  <driver>
    <name>i915</name>
  </driver>
  <capability type='pci'>
    <class>0x030000</class>
    <domain>0</domain>
    <bus>0</bus>
    <slot>2</slot>
    <function>0</function>
    <product id='0x5917'/>
    <vendor id='0x8086'/>
    <capability type='mdev_types'>
      <type id='i915-GVTg_V5_4'>
        <name>GVTg_V5_4</name>
        <deviceAPI>vfio-pci</deviceAPI>
        <availableInstances>2</availableInstances>
      </type>
      <type id='i915-GVTg_V5_8'>
        <deviceAPI>vfio-pci</deviceAPI>
        <availableInstances>0</availableInstances>
      </type>
    </capability>
    <iommuGroup number='2'>
      <address domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>
    </iommuGroup>
  </capability>
</device>
";

    const USB: &str = "<device>
  <name>usb_1_1</name>
  <path>/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1</path>
  <devnode type='dev'>/dev/bus/usb/001/002</devnode>
  <parent>usb_usb1</parent>
  <driver>
    <name>usb</name>
  </driver>
  <capability type='usb_device'>
    <bus>1</bus>
    <device>2</device>
    <product id='0x0001' />
    <vendor id='0x46f4'>QEMU</vendor>
  </capability>
</device>
";

    const USB_IF: &str = "<device>
  <name>usb_1_1_1_0</name>
  <path>/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0</path>
  <parent>usb_1_1</parent>
  <capability type='usb'>
    <number>0</number>
    <class>8</class>
    <subclass>6</subclass>
    <protocol>80</protocol>
  </capability>
</device>
";

    const SCSI_HOST: &str = "<device>
  <name>scsi_host5</name>
  <path>/sys/devices/pci0000:00/0000:00:1f.2/host5</path>
  <parent>pci_0000_00_1f_2</parent>
  <capability type='scsi_host'>
    <host>5</host>
    <unique_id>6</unique_id>
    <capability type='fc_host'>
      <wwnn>20000000c9848140</wwnn>
      <wwpn>10000000c9848140</wwpn>
      <fabric_wwn>2002000573de9a81</fabric_wwn>
    </capability>
    <capability type='vport_ops'>
      <max_vports>127</max_vports>
      <vports>0</vports>
    </capability>
  </capability>
</device>
";

    const DISK: &str = "<device>
  <name>block_sda_QEMU_HARDDISK_0001</name>
  <path>/sys/devices/pci0000:00/0000:00:1f.2/host5/target5:0:0/5:0:0:0/block/sda</path>
  <devnode type='dev'>/dev/sda</devnode>
  <devnode type='link'>/dev/disk/by-id/ata-QEMU_HARDDISK_0001</devnode>
  <parent>scsi_5_0_0_0</parent>
  <capability type='storage'>
    <block>/dev/sda</block>
    <bus>ata</bus>
    <drive_type>disk</drive_type>
    <model>QEMU HARDDISK</model>
    <vendor>ATA</vendor>
    <serial>QEMU_HARDDISK_0001</serial>
    <size>1073741824</size>
    <logical_block_size>512</logical_block_size>
    <num_blocks>2097152</num_blocks>
  </capability>
</device>
";

    const CDROM: &str = "<device>
  <name>block_sr0</name>
  <path>/sys/devices/pci0000:00/0000:00:1f.2/host5/target5:0:1/5:0:1:0/block/sr0</path>
  <devnode type='dev'>/dev/sr0</devnode>
  <parent>scsi_5_0_1_0</parent>
  <capability type='storage'>
    <block>/dev/sr0</block>
    <drive_type>cdrom</drive_type>
    <capability type='removable'>
      <media_available>1</media_available>
      <media_size>2048000</media_size>
      <media_label>Debian</media_label>
      <logical_block_size>2048</logical_block_size>
      <num_blocks>1000</num_blocks>
    </capability>
  </capability>
</device>
";

    const OTHERS: &str = "<device>
  <name>mdev_4b20d080_1b54_4048_85b3_a6a62d165c01_0000_00_02_0</name>
  <path>/sys/devices/pci0000:00/0000:00:02.0/4b20d080-1b54-4048-85b3-a6a62d165c01</path>
  <parent>pci_0000_00_02_0</parent>
  <capability type='mdev'>
    <type id='i915-GVTg_V5_4'/>
    <uuid>4b20d080-1b54-4048-85b3-a6a62d165c01</uuid>
    <parent_addr>0000:00:02.0</parent_addr>
    <iommuGroup number='12'/>
  </capability>
  <capability type='drm'>
    <type>render</type>
  </capability>
  <capability type='scsi'>
    <host>5</host>
    <bus>0</bus>
    <target>0</target>
    <lun>0</lun>
    <type>disk</type>
  </capability>
  <capability type='scsi_target'>
    <target>target5:0:0</target>
  </capability>
  <capability type='scsi_generic'>
    <char>/dev/sg0</char>
  </capability>
</device>
";

    #[test]
    fn round_trips_in_libvirts_order() {
        for xml in [
            NIC, HOST, ETH, GPU, USB, USB_IF, SCSI_HOST, DISK, CDROM, OTHERS,
        ] {
            let d = NodeDeviceDef::parse(xml).unwrap();
            assert_eq!(d.format(), xml);
        }
        let d = NodeDeviceDef::parse(NIC).unwrap();
        let NodeDevCapability::Pci(pci) = &d.capability[0] else {
            panic!("{d:?}")
        };
        assert_eq!(pci.class, Some(Hex(0x020000)));
        assert_eq!(pci.vendor.id, Some(Hex(0x8086)));
        let group = pci.iommu_group.as_ref().unwrap();
        assert_eq!((group.number, group.address[0].bus.0), (7, 1));
        let d = NodeDeviceDef::parse(ETH).unwrap();
        let NodeDevCapability::Net(net) = &d.capability[0] else {
            panic!("{d:?}")
        };
        assert_eq!(net.link.as_ref().unwrap().state, Some(NodeDevLinkState::Up));
        let d = NodeDeviceDef::parse(USB).unwrap();
        let NodeDevCapability::UsbDevice(usb) = &d.capability[0] else {
            panic!("{d:?}")
        };
        assert_eq!(
            (usb.product.id, usb.product.name.as_deref()),
            (Hex(1), None)
        );
        assert_eq!(usb.vendor.name.as_deref(), Some("QEMU"));
        let d = NodeDeviceDef::parse(OTHERS).unwrap();
        let types: Vec<_> = d.capability.iter().map(|c| c.cap_type().as_str()).collect();
        assert_eq!(
            types,
            ["mdev", "drm", "scsi", "scsi_target", "scsi_generic"]
        );
    }

    #[test]
    fn an_unknown_capability_is_refused() {
        let e = NodeDeviceDef::parse("<device><name>x</name><capability type='ccw'/></device>")
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown node device capability 'ccw'"),
            "{e}"
        );
        let e = NodeDeviceDef::parse(
            "<device><name>x</name><capability type='pci'><domain>0</domain></capability></device>",
        )
        .unwrap_err();
        assert!(e.to_string().contains("bus"), "{e}");
    }
}
