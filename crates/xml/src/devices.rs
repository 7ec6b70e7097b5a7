//! `<devices>`: disks, controllers, network interfaces, character devices,
//! input, graphics, video, memory balloon and RNG devices (host devices are
//! `hostdev.rs`'s).

use roxmltree::Node;

use crate::model::{field, XmlElement};
use crate::util::{attr_list, one_of, positive, str_enum, Writer};
use crate::{format_mac, parse_mac, xml_element, XmlError};

str_enum! {
    /// `<disk type=...>`.
    #[derive(Default)]
    DiskType, "disk type" {
        #[default]
        File => "file",
        Block => "block",
        Dir => "dir",
        Network => "network",
        Volume => "volume",
    }
}

str_enum! {
    /// `<disk device=...>`.
    #[derive(Default)]
    DiskDevice, "disk device type" {
        #[default]
        Disk => "disk",
        Cdrom => "cdrom",
        Floppy => "floppy",
        Lun => "lun",
    }
}

str_enum! {
    /// `<disk><target bus=...>`.
    DiskBus, "disk bus" {
        Ide => "ide",
        Fdc => "fdc",
        Scsi => "scsi",
        Virtio => "virtio",
        Xen => "xen",
        Usb => "usb",
        Uml => "uml",
        Sata => "sata",
        Sd => "sd",
    }
}

str_enum! {
    /// `<disk><driver cache=...>`.
    DiskCache, "disk cache mode" {
        Default => "default",
        None => "none",
        Writeback => "writeback",
        Writethrough => "writethrough",
        Directsync => "directsync",
        Unsafe => "unsafe",
    }
}

str_enum! {
    /// `<disk><driver io=...>`.
    DiskIo, "disk io mode" {
        Threads => "threads",
        Native => "native",
        IoUring => "io_uring",
    }
}

str_enum! {
    /// `<disk><driver discard=...>`.
    DiskDiscard, "disk discard mode" {
        Unmap => "unmap",
        Ignore => "ignore",
    }
}

str_enum! {
    /// `<disk type='network'><source protocol=...>`.
    DiskProtocol, "disk source protocol" {
        Nbd => "nbd",
        Rbd => "rbd",
        Sheepdog => "sheepdog",
        Gluster => "gluster",
        Iscsi => "iscsi",
        Http => "http",
        Https => "https",
        Ftp => "ftp",
        Ftps => "ftps",
        Tftp => "tftp",
        Ssh => "ssh",
        Vxhs => "vxhs",
        Nfs => "nfs",
    }
}

str_enum! {
    /// `<controller type=...>`.
    ControllerType, "controller type" {
        Ide => "ide",
        Fdc => "fdc",
        Scsi => "scsi",
        Sata => "sata",
        VirtioSerial => "virtio-serial",
        Ccid => "ccid",
        Usb => "usb",
        Pci => "pci",
        Xenbus => "xenbus",
        Isa => "isa",
    }
}

str_enum! {
    /// `<interface type=...>`.
    InterfaceType, "interface type" {
        User => "user",
        Network => "network",
        Bridge => "bridge",
        Ethernet => "ethernet",
        Direct => "direct",
        Vhostuser => "vhostuser",
        Server => "server",
        Client => "client",
        Mcast => "mcast",
        Udp => "udp",
        Internal => "internal",
        Hostdev => "hostdev",
        Vdpa => "vdpa",
        Null => "null",
    }
}

str_enum! {
    /// `<interface><link state=...>`.
    LinkState, "interface link state" {
        Up => "up",
        Down => "down",
    }
}

str_enum! {
    /// Character device backend type (`<serial type=...>`, `<console>`,
    /// `<channel>`, egd RNG backend).
    #[derive(Default)]
    ChardevType, "character device type" {
        Dev => "dev",
        File => "file",
        Pipe => "pipe",
        Unix => "unix",
        Tcp => "tcp",
        Udp => "udp",
        Null => "null",
        Stdio => "stdio",
        Vc => "vc",
        #[default]
        Pty => "pty",
        Spicevmc => "spicevmc",
        Spiceport => "spiceport",
        Nmdm => "nmdm",
        QemuVdagent => "qemu-vdagent",
        Dbus => "dbus",
    }
}

str_enum! {
    /// `<graphics type=...>`.
    GraphicsType, "graphics type" {
        Sdl => "sdl",
        Vnc => "vnc",
        Spice => "spice",
        Rdp => "rdp",
        Desktop => "desktop",
        EglHeadless => "egl-headless",
        Dbus => "dbus",
    }
}

str_enum! {
    /// `<graphics><listen type=...>`.
    ListenType, "graphics listen type" {
        Address => "address",
        Network => "network",
        Socket => "socket",
        None => "none",
    }
}

str_enum! {
    /// `<video><model type=...>`.
    VideoModelType, "video model type" {
        Vga => "vga",
        Cirrus => "cirrus",
        Vmvga => "vmvga",
        Xen => "xen",
        Vbox => "vbox",
        Qxl => "qxl",
        Virtio => "virtio",
        Gop => "gop",
        None => "none",
        Bochs => "bochs",
        Ramfb => "ramfb",
    }
}

str_enum! {
    /// `<input type=...>`.
    InputType, "input type" {
        Mouse => "mouse",
        Tablet => "tablet",
        Keyboard => "keyboard",
        Passthrough => "passthrough",
        Evdev => "evdev",
    }
}

str_enum! {
    /// `<input bus=...>`.
    InputBus, "input bus" {
        Ps2 => "ps2",
        Usb => "usb",
        Xen => "xen",
        Virtio => "virtio",
    }
}

str_enum! {
    /// `<memballoon model=...>`.
    MemballoonModel, "memballoon model" {
        Virtio => "virtio",
        VirtioTransitional => "virtio-transitional",
        VirtioNonTransitional => "virtio-non-transitional",
        Xen => "xen",
        None => "none",
    }
}

str_enum! {
    /// `<rng model=...>`.
    RngModel, "rng model" {
        Virtio => "virtio",
        VirtioTransitional => "virtio-transitional",
        VirtioNonTransitional => "virtio-non-transitional",
    }
}

str_enum! {
    /// `<rng><backend model=...>`.
    RngBackendModel, "rng backend model" {
        Random => "random",
        Egd => "egd",
        Builtin => "builtin",
    }
}

str_enum! {
    /// `<address type=...>`.
    AddressType, "address type" {
        Pci => "pci",
        Drive => "drive",
        VirtioSerial => "virtio-serial",
        Ccid => "ccid",
        Usb => "usb",
        SpaprVio => "spapr-vio",
        Ccw => "ccw",
        Isa => "isa",
        VirtioMmio => "virtio-mmio",
        Dimm => "dimm",
        Unassigned => "unassigned",
    }
}

/// Target types accepted for `<serial><target type=...>`.
pub const SERIAL_TARGET_TYPES: &[&str] = &[
    "isa-serial",
    "usb-serial",
    "pci-serial",
    "spapr-vio-serial",
    "system-serial",
    "sclp-serial",
    "isa-debug",
];

/// Target types accepted for `<console><target type=...>`.
pub const CONSOLE_TARGET_TYPES: &[&str] = &[
    "serial", "virtio", "xen", "lxc", "openvz", "sclp", "sclplm", "uml",
];

/// Target types accepted for `<channel><target type=...>`.
pub const CHANNEL_TARGET_TYPES: &[&str] = &["virtio", "guestfwd", "xen"];

// ---------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------

/// A device address: its type and the remaining attributes in order
/// (for example `domain`, `bus`, `slot`, `function` for PCI). Which attributes
/// apply depends on the type, so they are kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub addr_type: AddressType,
    pub attrs: Vec<(String, String)>,
}

impl Address {
    /// A PCI address, formatted the way libvirt writes it.
    pub fn pci(domain: u32, bus: u32, slot: u32, function: u32) -> Address {
        Address {
            addr_type: AddressType::Pci,
            attrs: vec![
                ("domain".into(), format!("0x{domain:04x}")),
                ("bus".into(), format!("0x{bus:02x}")),
                ("slot".into(), format!("0x{slot:02x}")),
                ("function".into(), format!("0x{function:x}")),
            ],
        }
    }

    /// A drive address (IDE/SCSI/SATA/floppy).
    pub fn drive(controller: u32, bus: u32, target: u32, unit: u32) -> Address {
        Address {
            addr_type: AddressType::Drive,
            attrs: vec![
                ("controller".into(), controller.to_string()),
                ("bus".into(), bus.to_string()),
                ("target".into(), target.to_string()),
                ("unit".into(), unit.to_string()),
            ],
        }
    }

    /// Value of attribute `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Numeric value of attribute `key` (decimal or `0x` hexadecimal).
    pub fn get_num(&self, key: &str) -> Option<u64> {
        let v = self.get(key)?.trim();
        match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        }
    }

    /// Set attribute `key`, replacing an existing value in place.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        match self.attrs.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.attrs.push((key.to_string(), value)),
        }
    }
}

impl XmlElement for Address {
    fn from_node(n: Node) -> Result<Address, XmlError> {
        Ok(Address {
            addr_type: field::attr(n, "type")?,
            attrs: attr_list(n, &["type"]),
        })
    }

    fn write_to(&self, w: &mut Writer, name: &str) {
        w.elem(name)
            .attr("type", self.addr_type)
            .attrs(&self.attrs)
            .empty();
    }
}

// ---------------------------------------------------------------------------
// Devices
// ---------------------------------------------------------------------------

xml_element! {
    /// `<devices>`, one list per device kind, each in document order; written in
    /// libvirt's order of kinds.
    #[derive(Default)]
    pub struct Devices {
        leaf_opt emulator: String = "emulator",
        children disks: Disk = "disk",
        children controllers: Controller = "controller",
        children filesystems: crate::Filesystem = "filesystem",
        children interfaces: Interface = "interface",
        children smartcards: crate::Smartcard = "smartcard",
        children serials: Chardev = "serial",
        children consoles: Chardev = "console",
        children channels: Chardev = "channel",
        children inputs: Input = "input",
        children tpms: crate::Tpm = "tpm",
        children graphics: Graphics = "graphics",
        children sounds: crate::Sound = "sound",
        children audios: crate::Audio = "audio",
        children videos: Video = "video",
        children hostdevs: crate::Hostdev = "hostdev",
        children redirdevs: crate::Redirdev = "redirdev",
        child_opt redirfilter: crate::Redirfilter = "redirfilter",
        children hubs: crate::Hub = "hub",
        children watchdogs: crate::Watchdog = "watchdog",
        child_opt memballoon: Memballoon = "memballoon",
        children rngs: Rng = "rng",
        children panics: crate::Panic = "panic",
        children shmems: crate::Shmem = "shmem",
        children memories: crate::MemoryDevice = "memory",
        child_opt iommu: crate::Iommu = "iommu",
        child_opt vsock: crate::Vsock = "vsock",
    }
    check Devices::check;
}

impl Devices {
    /// Per-device boot orders (`<boot order=...>` of disks, interfaces and host
    /// devices), in device order.
    pub fn boot_orders(&self) -> Vec<u32> {
        self.disks
            .iter()
            .filter_map(|d| d.boot_order)
            .chain(self.interfaces.iter().filter_map(|i| i.boot_order))
            .chain(self.hostdevs.iter().filter_map(|h| h.boot_order))
            .collect()
    }

    /// True when no device at all is defined.
    pub fn is_empty(&self) -> bool {
        *self == Devices::default()
    }

    fn check(&mut self) -> Result<(), XmlError> {
        self.emulator = self
            .emulator
            .take()
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty());
        let kinds: [(&[Chardev], &[&str], &str); 3] = [
            (&self.serials, SERIAL_TARGET_TYPES, "serial target type"),
            (&self.consoles, CONSOLE_TARGET_TYPES, "console target type"),
            (&self.channels, CHANNEL_TARGET_TYPES, "channel target type"),
        ];
        for (devs, allowed, what) in kinds {
            for d in devs {
                one_of(
                    &d.target.as_ref().and_then(|t| t.target_type.clone()),
                    allowed,
                    what,
                )?;
            }
        }
        for (i, h) in self.hostdevs.iter().enumerate() {
            if self.hostdevs[..i].iter().any(|o| o.same_device(h)) {
                return Err(XmlError::Invalid(format!(
                    "<hostdev> {} is given twice",
                    h.describe()
                )));
            }
        }
        if self.channels.iter().any(|c| {
            c.target
                .as_ref()
                .and_then(|t| t.target_type.as_ref())
                .is_none()
        }) {
            return Err(XmlError::Invalid(
                "missing target type for <channel>".into(),
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Disk
// ---------------------------------------------------------------------------

xml_element! {
    /// `<disk>`.
    pub struct Disk {
        /// `type` (default file).
        attr_def disk_type: DiskType = "type",
        /// `device` (default disk).
        attr_def device: DiskDevice = "device",
        child_opt driver: DiskDriver = "driver",
        /// `None` for an empty drive (e.g. a cdrom without media).
        child_opt source: DiskSource = "source",
        child target: DiskTarget = "target",
        in_attr_opt boot_order: u32 = "boot@order",
        flag readonly: bool = "readonly",
        flag shareable: bool = "shareable",
        leaf_opt serial: String = "serial",
        /// `<encryption format='luks'><secret type='passphrase' uuid='…'/></encryption>`,
        /// read in `<disk>` or in its `<source>`, written in `<disk>`.
        child_opt encryption: crate::Encryption = "encryption",
        in_attr_opt alias: String = "alias@name",
        child_opt address: Address = "address",
    }
    check Disk::check;
}

xml_element! {
    /// The destination of a block copy (`virsh blockcopy --xml`): a `<disk>` whose type,
    /// driver and source count; nothing else of it is read.
    pub struct CopyDestination {
        attr_def disk_type: DiskType = "type",
        child_opt driver: DiskDriver = "driver",
        child_opt source: DiskSource = "source",
    }
}

impl Disk {
    fn check(&mut self) -> Result<(), XmlError> {
        positive(self.boot_order, "attribute 'order' of <boot>")?;
        if let Some(s) = &mut self.source {
            if let Some(e) = s.encryption.take() {
                self.encryption.get_or_insert(e);
            }
        }
        if self.disk_type == DiskType::Network
            && self.source.as_ref().and_then(|s| s.protocol).is_none()
        {
            return Err(XmlError::Invalid(
                "network disk requires <source protocol=...>".into(),
            ));
        }
        Ok(())
    }
}

xml_element! {
    /// `<disk><driver>`.
    #[derive(Default)]
    pub struct DiskDriver {
        /// `name`, e.g. `qemu`.
        attr_opt name: String = "name",
        /// `type`: image format, e.g. `raw` or `qcow2`.
        attr_opt format: String = "type",
        attr_opt cache: DiskCache = "cache",
        attr_opt io: DiskIo = "io",
        attr_opt discard: DiskDiscard = "discard",
        /// `iothread`: the I/O thread a virtio disk runs its I/O in.
        attr_opt iothread: u32 = "iothread",
    }
}

xml_element! {
    /// `<disk><source>`. Which fields apply depends on the disk type: `file`
    /// (file), `dev` (block), `dir` (dir), `protocol` + `name` + `hosts`
    /// (network), `pool` + `volume` + `mode` (volume).
    #[derive(Default)]
    pub struct DiskSource {
        attr_opt file: String = "file",
        attr_opt dev: String = "dev",
        attr_opt dir: String = "dir",
        attr_opt protocol: DiskProtocol = "protocol",
        attr_opt name: String = "name",
        attr_opt pool: String = "pool",
        attr_opt volume: String = "volume",
        attr_opt mode: String = "mode",
        children hosts: DiskHost = "host",
        /// Moved to [`Disk::encryption`] when parsed.
        child_opt encryption: crate::Encryption = "encryption",
    }
    check DiskSource::check;
}

impl DiskSource {
    fn check(&mut self) -> Result<(), XmlError> {
        one_of(&self.mode, &["host", "direct"], "volume source mode")
    }
}

xml_element! {
    /// `<disk><source><host>`.
    #[derive(Default)]
    pub struct DiskHost {
        attr_opt transport: String = "transport",
        attr_opt name: String = "name",
        attr_opt port: u32 = "port",
        attr_opt socket: String = "socket",
    }
    check DiskHost::check;
}

impl DiskHost {
    fn check(&mut self) -> Result<(), XmlError> {
        one_of(
            &self.transport,
            &["tcp", "rdma", "unix"],
            "disk host transport",
        )
    }
}

xml_element! {
    /// `<disk><target>`.
    #[derive(Default)]
    pub struct DiskTarget {
        attr dev: String = "dev",
        attr_opt bus: DiskBus = "bus",
    }
    check DiskTarget::check;
}

impl DiskTarget {
    fn check(&mut self) -> Result<(), XmlError> {
        if self.dev.is_empty() {
            return Err(XmlError::Invalid(
                "missing 'dev' attribute on disk <target>".into(),
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Controller
// ---------------------------------------------------------------------------

xml_element! {
    /// `<controller>`.
    pub struct Controller {
        attr ctl_type: ControllerType = "type",
        attr_opt index: u32 = "index",
        /// `model` attribute (e.g. `qemu-xhci`, `pcie-root-port`, `virtio-scsi`).
        attr_opt model: String = "model",
        attr_opt ports: u32 = "ports",
        attr_opt vectors: u32 = "vectors",
        /// `<model name=...>` (PCI controllers).
        in_attr_opt model_name: String = "model@name",
        /// Attributes of `<driver>`, in order.
        attrs_in driver_attrs: () = "driver",
        /// `<master startport=...>`: a USB companion controller's first port on its master.
        in_attr_opt master_startport: u32 = "master@startport",
        /// Attributes of `<target>` (PCI controllers), in order.
        attrs_in target_attrs: () = "target",
        in_attr_opt alias: String = "alias@name",
        child_opt address: Address = "address",
    }
}

// ---------------------------------------------------------------------------
// Interface
// ---------------------------------------------------------------------------

xml_element! {
    /// `<interface>`.
    pub struct Interface {
        attr if_type: InterfaceType = "type",
        /// `<mac address=...>`, normalised to lowercase `aa:bb:cc:dd:ee:ff`.
        in_attr_opt mac: String = "mac@address",
        child_opt source: InterfaceSource = "source",
        /// `<target dev=...>`: host-side device name.
        in_attr_opt target_dev: String = "target@dev",
        /// `<model type=...>`, e.g. `virtio` or `e1000`.
        in_attr_opt model: String = "model@type",
        child_opt driver: InterfaceDriver = "driver",
        /// The traffic filter of the interface (bound by the network driver).
        child_opt filterref: crate::FilterRef = "filterref",
        /// Inbound and outbound limits (applied by the network driver to the tap).
        child_opt bandwidth: crate::Bandwidth = "bandwidth",
        in_attr_opt link_state: LinkState = "link@state",
        /// `<mtu size=...>`.
        in_attr_opt mtu: u32 = "mtu@size",
        in_attr_opt boot_order: u32 = "boot@order",
        in_attr_opt alias: String = "alias@name",
        child_opt address: Address = "address",
    }
    check Interface::check;
}

impl Interface {
    fn check(&mut self) -> Result<(), XmlError> {
        positive(self.boot_order, "attribute 'order' of <boot>")?;
        if let Some(a) = &mut self.mac {
            let bytes = parse_mac(a)
                .ok_or_else(|| XmlError::Invalid(format!("invalid MAC address '{a}'")))?;
            if bytes[0] & 1 == 1 {
                return Err(XmlError::Invalid(format!(
                    "expected unicast MAC address, found multicast '{a}'"
                )));
            }
            *a = format_mac(&bytes);
        }
        Ok(())
    }

    /// `<driver name=...>`, e.g. `vhost` or `qemu`.
    pub fn driver_name(&self) -> Option<&str> {
        self.driver.as_ref().and_then(|d| d.name.as_deref())
    }
}

xml_element! {
    /// `<interface><driver>`.
    #[derive(Default)]
    pub struct InterfaceDriver {
        /// `vhost` or `qemu`.
        attr_opt name: String = "name",
        attr_opt queues: u32 = "queues",
    }
}

xml_element! {
    /// `<interface><source>`. Which fields apply depends on the interface type.
    #[derive(Default)]
    pub struct InterfaceSource {
        attr_opt network: String = "network",
        /// The network port of a running guest's interface (live XML).
        attr_opt portid: [u8; 16] = "portid",
        attr_opt portgroup: String = "portgroup",
        attr_opt bridge: String = "bridge",
        attr_opt dev: String = "dev",
        /// `type` (vhostuser: unix).
        attr_opt source_type: String = "type",
        attr_opt path: String = "path",
        attr_opt address: String = "address",
        attr_opt port: u32 = "port",
        /// `mode` (direct: vepa, bridge, private, passthrough; vhostuser:
        /// client, server).
        attr_opt mode: String = "mode",
    }
    check InterfaceSource::check;
}

impl InterfaceSource {
    fn check(&mut self) -> Result<(), XmlError> {
        one_of(
            &self.mode,
            &[
                "vepa",
                "bridge",
                "private",
                "passthrough",
                "client",
                "server",
            ],
            "interface source mode",
        )
    }
}

// ---------------------------------------------------------------------------
// Character devices
// ---------------------------------------------------------------------------

xml_element! {
    /// A character device: `<serial>`, `<console>` or `<channel>`.
    pub struct Chardev {
        /// `type` (libvirt treats a missing one as `pty`).
        attr_def dev_type: ChardevType = "type",
        /// `tty` attribute (the pty path of a running domain).
        attr_opt tty: String = "tty",
        children sources: ChardevSource = "source",
        /// `<protocol type=...>` (tcp: raw, telnet, telnets, tls).
        in_attr_opt protocol: String = "protocol@type",
        /// `<log file=... append=...>`.
        child_opt log: ChardevLog = "log",
        child_opt target: ChardevTarget = "target",
        in_attr_opt alias: String = "alias@name",
        child_opt address: Address = "address",
    }
    check Chardev::check;
}

xml_element! {
    /// A character device's `<log>`: a file that gets a copy of what the guest writes;
    /// `append='on'` keeps what it had (off, the default: truncated at start).
    pub struct ChardevLog {
        attr file: String = "file",
        attr_opt append: String = "append",
    }
}

impl Chardev {
    /// A character device that is only a backend (of a redirdev, a smartcard): its type,
    /// sources and protocol.
    pub fn backend(
        dev_type: ChardevType,
        sources: &[ChardevSource],
        protocol: &Option<String>,
    ) -> Chardev {
        Chardev {
            dev_type,
            tty: None,
            sources: sources.to_vec(),
            protocol: protocol.clone(),
            log: None,
            target: None,
            alias: None,
            address: None,
        }
    }

    fn check(&mut self) -> Result<(), XmlError> {
        one_of(
            &self.protocol,
            &["raw", "telnet", "telnets", "tls"],
            "character device protocol",
        )
    }
}

xml_element! {
    /// `<source>` of a character device.
    #[derive(Default)]
    pub struct ChardevSource {
        /// `mode`: bind or connect.
        attr_opt mode: String = "mode",
        attr_opt path: String = "path",
        attr_opt host: String = "host",
        attr_opt service: String = "service",
        /// `channel` (spiceport).
        attr_opt channel: String = "channel",
        /// `append` (file).
        on_off append: bool = "append",
        /// `tls` (tcp).
        yes_no tls: bool = "tls",
    }
    check ChardevSource::check;
}

impl ChardevSource {
    fn check(&mut self) -> Result<(), XmlError> {
        one_of(
            &self.mode,
            &["bind", "connect"],
            "character device source mode",
        )
    }
}

xml_element! {
    /// `<target>` of a character device. `target_type` is checked against
    /// [`SERIAL_TARGET_TYPES`], [`CONSOLE_TARGET_TYPES`] or
    /// [`CHANNEL_TARGET_TYPES`] depending on the device kind.
    #[derive(Default)]
    pub struct ChardevTarget {
        attr_opt target_type: String = "type",
        /// Channel name, e.g. `org.qemu.guest_agent.0`.
        attr_opt name: String = "name",
        /// Channel state (connected, disconnected).
        attr_opt state: String = "state",
        /// Guest address (guestfwd channels).
        attr_opt address: String = "address",
        attr_opt port: u32 = "port",
        /// `<model name=...>` (serial targets).
        in_attr_opt model_name: String = "model@name",
    }
    check ChardevTarget::check;
}

impl ChardevTarget {
    fn check(&mut self) -> Result<(), XmlError> {
        one_of(&self.state, &["connected", "disconnected"], "channel state")
    }
}

// ---------------------------------------------------------------------------
// Input, graphics, video
// ---------------------------------------------------------------------------

xml_element! {
    /// `<input>`.
    pub struct Input {
        attr input_type: InputType = "type",
        attr_opt bus: InputBus = "bus",
        /// `model` (virtio, virtio-transitional, virtio-non-transitional).
        attr_opt model: String = "model",
        /// Attributes of `<source>` (passthrough/evdev inputs), in order.
        attrs_in source_attrs: () = "source",
        in_attr_opt alias: String = "alias@name",
        child_opt address: Address = "address",
    }
    check Input::check;
}

impl Input {
    fn check(&mut self) -> Result<(), XmlError> {
        one_of(
            &self.model,
            &["virtio", "virtio-transitional", "virtio-non-transitional"],
            "input model",
        )
    }
}

xml_element! {
    /// `<graphics>`.
    pub struct Graphics {
        attr graphics_type: GraphicsType = "type",
        /// `port` (-1 means automatic).
        attr_opt port: i32 = "port",
        attr_opt tls_port: i32 = "tlsPort",
        yes_no autoport: bool = "autoport",
        attr_opt websocket: i32 = "websocket",
        /// `listen` attribute; kept in step with the first address listen.
        attr_opt listen: String = "listen",
        attr_opt keymap: String = "keymap",
        attr_opt passwd: String = "passwd",
        children listens: GraphicsListen = "listen",
    }
    check Graphics::check;
}

impl Graphics {
    /// Keeps the legacy `listen` attribute and the first address listen in step, as
    /// libvirt does.
    fn check(&mut self) -> Result<(), XmlError> {
        match (&self.listen, self.listens.first()) {
            (Some(addr), None) => self.listens.push(GraphicsListen {
                listen_type: ListenType::Address,
                address: Some(addr.clone()),
                network: None,
                socket: None,
            }),
            (None, Some(first)) if first.listen_type == ListenType::Address => {
                self.listen = first.address.clone();
            }
            _ => {}
        }
        Ok(())
    }
}

xml_element! {
    /// `<graphics><listen>`.
    pub struct GraphicsListen {
        attr listen_type: ListenType = "type",
        attr_opt address: String = "address",
        attr_opt network: String = "network",
        attr_opt socket: String = "socket",
    }
}

xml_element! {
    /// `<video>`.
    #[derive(Default)]
    pub struct Video {
        child_opt model: VideoModel = "model",
        in_attr_opt alias: String = "alias@name",
        child_opt address: Address = "address",
    }
}

xml_element! {
    /// `<video><model>`.
    pub struct VideoModel {
        attr model_type: VideoModelType = "type",
        attr_opt ram: u32 = "ram",
        attr_opt vram: u32 = "vram",
        attr_opt vram64: u32 = "vram64",
        attr_opt vgamem: u32 = "vgamem",
        attr_opt heads: u32 = "heads",
        yes_no primary: bool = "primary",
    }
}

// ---------------------------------------------------------------------------
// Memory balloon, RNG
// ---------------------------------------------------------------------------

xml_element! {
    /// `<memballoon>`.
    pub struct Memballoon {
        attr model: MemballoonModel = "model",
        on_off autodeflate: bool = "autodeflate",
        on_off free_page_reporting: bool = "freePageReporting",
        /// `<stats period=...>` in seconds.
        in_attr_opt stats_period: u32 = "stats@period",
        in_attr_opt alias: String = "alias@name",
        child_opt address: Address = "address",
    }
    check Memballoon::check;
}

impl Memballoon {
    fn check(&mut self) -> Result<(), XmlError> {
        positive(self.stats_period, "attribute 'period' of <stats>")
    }
}

xml_element! {
    /// `<rng>`.
    pub struct Rng {
        attr model: RngModel = "model",
        child_opt rate: RngRate = "rate",
        child backend: RngBackend = "backend",
        in_attr_opt alias: String = "alias@name",
        child_opt address: Address = "address",
    }
}

xml_element! {
    /// `<rng><backend>`.
    pub struct RngBackend {
        attr model: RngBackendModel = "model",
        /// Character device type for the `egd` backend.
        attr_opt egd_type: ChardevType = "type",
        /// Device path for the `random` backend (e.g. `/dev/urandom`).
        text_opt path: String = "",
        /// Character device sources for the `egd` backend.
        children sources: ChardevSource = "source",
    }
    check RngBackend::check;
}

impl RngBackend {
    fn check(&mut self) -> Result<(), XmlError> {
        match self.model {
            RngBackendModel::Random => self.sources.clear(),
            RngBackendModel::Egd => {
                self.path = None;
                if self.egd_type.is_none() {
                    return Err(XmlError::Invalid(
                        "missing attribute 'type' in egd <backend>".into(),
                    ));
                }
            }
            RngBackendModel::Builtin => {
                self.path = None;
                self.sources.clear();
            }
        }
        Ok(())
    }
}

xml_element! {
    /// `<rng><rate>`.
    pub struct RngRate {
        attr bytes: u32 = "bytes",
        attr_opt period: u32 = "period",
    }
    check RngRate::check;
}

impl RngRate {
    fn check(&mut self) -> Result<(), XmlError> {
        positive(Some(self.bytes), "attribute 'bytes' of <rate>")?;
        positive(self.period, "attribute 'period' of <rate>")
    }
}
