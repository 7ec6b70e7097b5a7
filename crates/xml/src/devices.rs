//! `<devices>`: disks, controllers, network interfaces, character devices,
//! input, graphics, video, memory balloon and RNG devices.

use roxmltree::Node;

use crate::util::{
    attr, attr_enum, attr_int, attr_list, attr_on_off, attr_one_of, attr_positive, attr_yes_no,
    child, child_text, children, missing, str_enum, text, Writer,
};
use crate::{format_mac, parse_mac, XmlError};

str_enum! {
    /// `<disk type=...>`.
    DiskType, "disk type" {
        File => "file",
        Block => "block",
        Dir => "dir",
        Network => "network",
        Volume => "volume",
    }
}

str_enum! {
    /// `<disk device=...>`.
    DiskDevice, "disk device type" {
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

/// `<devices>`, one list per device kind, each in document order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Devices {
    pub emulator: Option<String>,
    pub disks: Vec<Disk>,
    pub controllers: Vec<Controller>,
    pub interfaces: Vec<Interface>,
    pub serials: Vec<Chardev>,
    pub consoles: Vec<Chardev>,
    pub channels: Vec<Chardev>,
    pub inputs: Vec<Input>,
    pub graphics: Vec<Graphics>,
    pub videos: Vec<Video>,
    pub memballoon: Option<Memballoon>,
    pub rngs: Vec<Rng>,
}

/// A device address: its type and the remaining attributes in order
/// (for example `domain`, `bus`, `slot`, `function` for PCI).
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

    fn parse(n: Node) -> Result<Address, XmlError> {
        let t = n
            .attribute("type")
            .ok_or_else(|| XmlError::Invalid("missing 'type' attribute on <address>".into()))?;
        Ok(Address {
            addr_type: t.parse()?,
            attrs: attr_list(n, &["type"]),
        })
    }

    fn write(&self, w: &mut Writer) {
        w.elem("address")
            .attr("type", self.addr_type)
            .attrs(&self.attrs)
            .empty();
    }
}

/// `<disk>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// `type` (default file).
    pub disk_type: DiskType,
    /// `device` (default disk).
    pub device: DiskDevice,
    pub driver: Option<DiskDriver>,
    /// `None` for an empty drive (e.g. a cdrom without media).
    pub source: Option<DiskSource>,
    pub target: DiskTarget,
    pub readonly: bool,
    pub shareable: bool,
    pub boot_order: Option<u32>,
    pub serial: Option<String>,
    /// `<encryption format='luks'><secret type='passphrase' uuid='…'/></encryption>`, in
    /// `<disk>` or in its `<source>`.
    pub encryption: Option<crate::Encryption>,
    pub alias: Option<String>,
    pub address: Option<Address>,
}

/// `<disk><driver>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskDriver {
    /// `name`, e.g. `qemu`.
    pub name: Option<String>,
    /// `type`: image format, e.g. `raw` or `qcow2`.
    pub format: Option<String>,
    pub cache: Option<DiskCache>,
    pub io: Option<DiskIo>,
    pub discard: Option<DiskDiscard>,
}

/// `<disk><source>`. Which fields apply depends on the disk type: `file`
/// (file), `dev` (block), `dir` (dir), `protocol` + `name` + `hosts`
/// (network), `pool` + `volume` + `mode` (volume).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskSource {
    pub file: Option<String>,
    pub dev: Option<String>,
    pub dir: Option<String>,
    pub protocol: Option<DiskProtocol>,
    pub name: Option<String>,
    pub pool: Option<String>,
    pub volume: Option<String>,
    pub mode: Option<String>,
    pub hosts: Vec<DiskHost>,
}

/// `<disk><source><host>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskHost {
    pub name: Option<String>,
    pub port: Option<u32>,
    pub transport: Option<String>,
    pub socket: Option<String>,
}

/// `<disk><target>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskTarget {
    pub dev: String,
    pub bus: Option<DiskBus>,
}

/// `<controller>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controller {
    pub ctl_type: ControllerType,
    pub index: Option<u32>,
    /// `model` attribute (e.g. `qemu-xhci`, `pcie-root-port`, `virtio-scsi`).
    pub model: Option<String>,
    pub ports: Option<u32>,
    pub vectors: Option<u32>,
    /// `<model name=...>` child (PCI controllers).
    pub model_name: Option<String>,
    /// Attributes of `<target>` (PCI controllers), in order.
    pub target_attrs: Vec<(String, String)>,
    /// Attributes of `<driver>`, in order.
    pub driver_attrs: Vec<(String, String)>,
    /// `<master startport=...>`: a USB companion controller's first port on its master.
    pub master_startport: Option<u32>,
    pub alias: Option<String>,
    pub address: Option<Address>,
}

/// `<interface>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub if_type: InterfaceType,
    /// `<mac address=...>`, normalised to lowercase `aa:bb:cc:dd:ee:ff`.
    pub mac: Option<String>,
    pub source: Option<InterfaceSource>,
    /// `<target dev=...>`: host-side device name.
    pub target_dev: Option<String>,
    /// `<model type=...>`, e.g. `virtio` or `e1000`.
    pub model: Option<String>,
    /// `<driver name=...>`, e.g. `vhost` or `qemu`.
    pub driver_name: Option<String>,
    /// `<driver queues=...>`.
    pub driver_queues: Option<u32>,
    pub link_state: Option<LinkState>,
    /// `<mtu size=...>`.
    pub mtu: Option<u32>,
    pub boot_order: Option<u32>,
    pub alias: Option<String>,
    pub address: Option<Address>,
}

/// `<interface><source>`. Which fields apply depends on the interface type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceSource {
    pub network: Option<String>,
    pub portgroup: Option<String>,
    pub bridge: Option<String>,
    pub dev: Option<String>,
    /// `mode` (direct: vepa, bridge, private, passthrough; vhostuser:
    /// client, server).
    pub mode: Option<String>,
    /// `type` (vhostuser: unix).
    pub source_type: Option<String>,
    pub path: Option<String>,
    pub address: Option<String>,
    pub port: Option<u32>,
}

/// A character device: `<serial>`, `<console>` or `<channel>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chardev {
    pub dev_type: ChardevType,
    /// `tty` attribute (the pty path of a running domain).
    pub tty: Option<String>,
    pub sources: Vec<ChardevSource>,
    /// `<protocol type=...>` (tcp: raw, telnet, telnets, tls).
    pub protocol: Option<String>,
    /// `<log file=...>`.
    pub log_file: Option<String>,
    pub target: Option<ChardevTarget>,
    pub alias: Option<String>,
    pub address: Option<Address>,
}

/// `<source>` of a character device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChardevSource {
    /// `mode`: bind or connect.
    pub mode: Option<String>,
    pub path: Option<String>,
    pub host: Option<String>,
    pub service: Option<String>,
    /// `channel` (spiceport).
    pub channel: Option<String>,
    /// `append` (file), on/off.
    pub append: Option<bool>,
    /// `tls` (tcp), yes/no.
    pub tls: Option<bool>,
}

/// `<target>` of a character device. `target_type` is checked against
/// [`SERIAL_TARGET_TYPES`], [`CONSOLE_TARGET_TYPES`] or
/// [`CHANNEL_TARGET_TYPES`] depending on the device kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChardevTarget {
    pub target_type: Option<String>,
    pub port: Option<u32>,
    /// Channel name, e.g. `org.qemu.guest_agent.0`.
    pub name: Option<String>,
    /// Channel state (connected, disconnected).
    pub state: Option<String>,
    /// Guest address (guestfwd channels).
    pub address: Option<String>,
    /// `<model name=...>` child (serial targets).
    pub model_name: Option<String>,
}

/// `<input>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub input_type: InputType,
    pub bus: Option<InputBus>,
    /// `model` (virtio, virtio-transitional, virtio-non-transitional).
    pub model: Option<String>,
    /// Attributes of `<source>` (passthrough/evdev inputs), in order.
    pub source_attrs: Vec<(String, String)>,
    pub alias: Option<String>,
    pub address: Option<Address>,
}

/// `<graphics>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graphics {
    pub graphics_type: GraphicsType,
    /// `port` (-1 means automatic).
    pub port: Option<i32>,
    pub tls_port: Option<i32>,
    pub autoport: Option<bool>,
    pub websocket: Option<i32>,
    /// `listen` attribute; kept in step with the first address listen.
    pub listen: Option<String>,
    pub passwd: Option<String>,
    pub keymap: Option<String>,
    pub listens: Vec<GraphicsListen>,
}

/// `<graphics><listen>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphicsListen {
    pub listen_type: ListenType,
    pub address: Option<String>,
    pub network: Option<String>,
    pub socket: Option<String>,
}

/// `<video>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Video {
    pub model: Option<VideoModel>,
    pub alias: Option<String>,
    pub address: Option<Address>,
}

/// `<video><model>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoModel {
    pub model_type: VideoModelType,
    pub ram: Option<u32>,
    pub vram: Option<u32>,
    pub vram64: Option<u32>,
    pub vgamem: Option<u32>,
    pub heads: Option<u32>,
    pub primary: Option<bool>,
}

/// `<memballoon>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memballoon {
    pub model: MemballoonModel,
    pub autodeflate: Option<bool>,
    pub free_page_reporting: Option<bool>,
    /// `<stats period=...>` in seconds.
    pub stats_period: Option<u32>,
    pub alias: Option<String>,
    pub address: Option<Address>,
}

/// `<rng>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    pub model: RngModel,
    pub backend: RngBackend,
    pub rate: Option<RngRate>,
    pub alias: Option<String>,
    pub address: Option<Address>,
}

/// `<rng><backend>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RngBackend {
    pub model: RngBackendModel,
    /// Device path for the `random` backend (e.g. `/dev/urandom`).
    pub path: Option<String>,
    /// Character device type for the `egd` backend.
    pub egd_type: Option<ChardevType>,
    /// Character device sources for the `egd` backend.
    pub sources: Vec<ChardevSource>,
}

/// `<rng><rate>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RngRate {
    pub bytes: u32,
    pub period: Option<u32>,
}

// ---------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------

fn parse_alias(n: Node) -> Option<String> {
    child(n, "alias").and_then(|a| attr(a, "name"))
}

fn parse_address(n: Node) -> Result<Option<Address>, XmlError> {
    child(n, "address").map(Address::parse).transpose()
}

fn parse_boot_order(n: Node) -> Result<Option<u32>, XmlError> {
    match child(n, "boot") {
        None => Ok(None),
        Some(b) => attr_positive(b, "order")?
            .map(Some)
            .ok_or_else(|| XmlError::Invalid("missing 'order' attribute on device <boot>".into())),
    }
}

fn write_alias_address(w: &mut Writer, alias: &Option<String>, address: &Option<Address>) {
    if let Some(a) = alias {
        w.elem("alias").attr("name", a).empty();
    }
    if let Some(a) = address {
        a.write(w);
    }
}

fn required_enum<T: std::str::FromStr<Err = XmlError>>(
    n: Node,
    name: &str,
    element: &str,
) -> Result<T, XmlError> {
    attr_enum(n, name)?
        .ok_or_else(|| XmlError::Invalid(format!("missing '{name}' attribute on <{element}>")))
}

// ---------------------------------------------------------------------------
// Devices
// ---------------------------------------------------------------------------

impl Devices {
    /// Per-device boot orders (`<boot order=...>` of disks and
    /// interfaces), in device order.
    pub fn boot_orders(&self) -> Vec<u32> {
        self.disks
            .iter()
            .filter_map(|d| d.boot_order)
            .chain(self.interfaces.iter().filter_map(|i| i.boot_order))
            .collect()
    }

    /// True when no device at all is defined.
    pub fn is_empty(&self) -> bool {
        *self == Devices::default()
    }

    pub(crate) fn parse(n: Node) -> Result<Devices, XmlError> {
        let mut d = Devices::default();
        for c in n.children().filter(|c| c.is_element()) {
            if c.tag_name().namespace().is_some() {
                continue;
            }
            match c.tag_name().name() {
                "emulator" if d.emulator.is_none() => {
                    d.emulator = Some(text(c).trim().to_string()).filter(|s| !s.is_empty());
                }
                "disk" => d.disks.push(Disk::parse(c)?),
                "controller" => d.controllers.push(Controller::parse(c)?),
                "interface" => d.interfaces.push(Interface::parse(c)?),
                "serial" => d.serials.push(Chardev::parse(c, ChardevKind::Serial)?),
                "console" => d.consoles.push(Chardev::parse(c, ChardevKind::Console)?),
                "channel" => d.channels.push(Chardev::parse(c, ChardevKind::Channel)?),
                "input" => d.inputs.push(Input::parse(c)?),
                "graphics" => d.graphics.push(Graphics::parse(c)?),
                "video" => d.videos.push(Video::parse(c)?),
                "memballoon" if d.memballoon.is_none() => {
                    d.memballoon = Some(Memballoon::parse(c)?);
                }
                "rng" => d.rngs.push(Rng::parse(c)?),
                _ => {}
            }
        }
        Ok(d)
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        if self.is_empty() {
            return;
        }
        w.elem("devices").open();
        if let Some(e) = &self.emulator {
            w.text_elem("emulator", e);
        }
        for d in &self.disks {
            d.write(w);
        }
        for c in &self.controllers {
            c.write(w);
        }
        for i in &self.interfaces {
            i.write(w);
        }
        for s in &self.serials {
            s.write(w, "serial");
        }
        for c in &self.consoles {
            c.write(w, "console");
        }
        for c in &self.channels {
            c.write(w, "channel");
        }
        for i in &self.inputs {
            i.write(w);
        }
        for g in &self.graphics {
            g.write(w);
        }
        for v in &self.videos {
            v.write(w);
        }
        if let Some(m) = &self.memballoon {
            m.write(w);
        }
        for r in &self.rngs {
            r.write(w);
        }
        w.close("devices");
    }
}

// ---------------------------------------------------------------------------
// Disk
// ---------------------------------------------------------------------------

impl Disk {
    fn parse(n: Node) -> Result<Disk, XmlError> {
        let disk_type: DiskType = attr_enum(n, "type")?.unwrap_or(DiskType::File);
        let device = attr_enum(n, "device")?.unwrap_or(DiskDevice::Disk);

        let driver = match child(n, "driver") {
            None => None,
            Some(d) => Some(DiskDriver {
                name: attr(d, "name"),
                format: attr(d, "type"),
                cache: attr_enum(d, "cache")?,
                io: attr_enum(d, "io")?,
                discard: attr_enum(d, "discard")?,
            }),
        };

        let source = match child(n, "source") {
            None => None,
            Some(s) => {
                let mut hosts = Vec::new();
                for h in children(s, "host") {
                    hosts.push(DiskHost {
                        name: attr(h, "name"),
                        port: attr_int(h, "port")?,
                        transport: attr_one_of(
                            h,
                            "transport",
                            &["tcp", "rdma", "unix"],
                            "disk host transport",
                        )?,
                        socket: attr(h, "socket"),
                    });
                }
                Some(DiskSource {
                    file: attr(s, "file"),
                    dev: attr(s, "dev"),
                    dir: attr(s, "dir"),
                    protocol: attr_enum(s, "protocol")?,
                    name: attr(s, "name"),
                    pool: attr(s, "pool"),
                    volume: attr(s, "volume"),
                    mode: attr_one_of(s, "mode", &["host", "direct"], "volume source mode")?,
                    hosts,
                })
            }
        };
        if disk_type == DiskType::Network {
            match &source {
                Some(s) if s.protocol.is_some() => {}
                _ => {
                    return Err(XmlError::Invalid(
                        "network disk requires <source protocol=...>".into(),
                    ))
                }
            }
        }

        let t = child(n, "target").ok_or_else(|| missing("<target>", "<disk>"))?;
        let dev = attr(t, "dev")
            .filter(|d| !d.is_empty())
            .ok_or_else(|| XmlError::Invalid("missing 'dev' attribute on disk <target>".into()))?;
        let target = DiskTarget {
            dev,
            bus: attr_enum(t, "bus")?,
        };

        Ok(Disk {
            disk_type,
            device,
            driver,
            source,
            target,
            readonly: child(n, "readonly").is_some(),
            shareable: child(n, "shareable").is_some(),
            boot_order: parse_boot_order(n)?,
            serial: child_text(n, "serial"),
            encryption: child(n, "encryption")
                .or_else(|| child(n, "source").and_then(|s| child(s, "encryption")))
                .map(<crate::Encryption as crate::XmlElement>::from_node)
                .transpose()?,
            alias: parse_alias(n),
            address: parse_address(n)?,
        })
    }

    fn write(&self, w: &mut Writer) {
        w.elem("disk")
            .attr("type", self.disk_type)
            .attr("device", self.device)
            .open();
        if let Some(d) = &self.driver {
            w.elem("driver")
                .opt("name", d.name.as_deref())
                .opt("type", d.format.as_deref())
                .opt("cache", d.cache)
                .opt("io", d.io)
                .opt("discard", d.discard)
                .empty();
        }
        if let Some(s) = &self.source {
            let e = w
                .elem("source")
                .opt("file", s.file.as_deref())
                .opt("dev", s.dev.as_deref())
                .opt("dir", s.dir.as_deref())
                .opt("protocol", s.protocol)
                .opt("name", s.name.as_deref())
                .opt("pool", s.pool.as_deref())
                .opt("volume", s.volume.as_deref())
                .opt("mode", s.mode.as_deref());
            if s.hosts.is_empty() {
                e.empty();
            } else {
                e.open();
                for h in &s.hosts {
                    w.elem("host")
                        .opt("transport", h.transport.as_deref())
                        .opt("name", h.name.as_deref())
                        .opt("port", h.port)
                        .opt("socket", h.socket.as_deref())
                        .empty();
                }
                w.close("source");
            }
        }
        w.elem("target")
            .attr("dev", &self.target.dev)
            .opt("bus", self.target.bus)
            .empty();
        if let Some(o) = self.boot_order {
            w.elem("boot").attr("order", o).empty();
        }
        if self.readonly {
            w.elem("readonly").empty();
        }
        if self.shareable {
            w.elem("shareable").empty();
        }
        if let Some(s) = &self.serial {
            w.text_elem("serial", s);
        }
        if let Some(e) = &self.encryption {
            crate::XmlElement::write_to(e, w, "encryption");
        }
        write_alias_address(w, &self.alias, &self.address);
        w.close("disk");
    }
}

// ---------------------------------------------------------------------------
// Controller
// ---------------------------------------------------------------------------

impl Controller {
    fn parse(n: Node) -> Result<Controller, XmlError> {
        Ok(Controller {
            ctl_type: required_enum(n, "type", "controller")?,
            index: attr_int(n, "index")?,
            model: attr(n, "model"),
            ports: attr_int(n, "ports")?,
            vectors: attr_int(n, "vectors")?,
            model_name: child(n, "model").and_then(|m| attr(m, "name")),
            target_attrs: child(n, "target")
                .map(|t| attr_list(t, &[]))
                .unwrap_or_default(),
            driver_attrs: child(n, "driver")
                .map(|t| attr_list(t, &[]))
                .unwrap_or_default(),
            master_startport: match child(n, "master") {
                Some(m) => Some(attr_int(m, "startport")?.ok_or_else(|| {
                    XmlError::Invalid("missing 'startport' on controller <master>".into())
                })?),
                None => None,
            },
            alias: parse_alias(n),
            address: parse_address(n)?,
        })
    }

    fn write(&self, w: &mut Writer) {
        let e = w
            .elem("controller")
            .attr("type", self.ctl_type)
            .opt("index", self.index)
            .opt("model", self.model.as_deref())
            .opt("ports", self.ports)
            .opt("vectors", self.vectors);
        if self.model_name.is_none()
            && self.target_attrs.is_empty()
            && self.driver_attrs.is_empty()
            && self.master_startport.is_none()
            && self.alias.is_none()
            && self.address.is_none()
        {
            e.empty();
            return;
        }
        e.open();
        if let Some(m) = &self.model_name {
            w.elem("model").attr("name", m).empty();
        }
        if !self.driver_attrs.is_empty() {
            w.elem("driver").attrs(&self.driver_attrs).empty();
        }
        if let Some(p) = self.master_startport {
            w.elem("master").attr("startport", p).empty();
        }
        if !self.target_attrs.is_empty() {
            w.elem("target").attrs(&self.target_attrs).empty();
        }
        write_alias_address(w, &self.alias, &self.address);
        w.close("controller");
    }
}

// ---------------------------------------------------------------------------
// Interface
// ---------------------------------------------------------------------------

impl Interface {
    fn parse(n: Node) -> Result<Interface, XmlError> {
        let if_type = required_enum(n, "type", "interface")?;
        let mac = match child(n, "mac") {
            None => None,
            Some(m) => {
                let a = m.attribute("address").ok_or_else(|| {
                    XmlError::Invalid("missing 'address' attribute on <mac>".into())
                })?;
                let bytes = parse_mac(a)
                    .ok_or_else(|| XmlError::Invalid(format!("invalid MAC address '{a}'")))?;
                if bytes[0] & 1 == 1 {
                    return Err(XmlError::Invalid(format!(
                        "expected unicast MAC address, found multicast '{a}'"
                    )));
                }
                Some(format_mac(&bytes))
            }
        };
        let source = match child(n, "source") {
            None => None,
            Some(s) => Some(InterfaceSource {
                network: attr(s, "network"),
                portgroup: attr(s, "portgroup"),
                bridge: attr(s, "bridge"),
                dev: attr(s, "dev"),
                mode: attr_one_of(
                    s,
                    "mode",
                    &[
                        "vepa",
                        "bridge",
                        "private",
                        "passthrough",
                        "client",
                        "server",
                    ],
                    "interface source mode",
                )?,
                source_type: attr(s, "type"),
                path: attr(s, "path"),
                address: attr(s, "address"),
                port: attr_int(s, "port")?,
            }),
        };
        let driver = child(n, "driver");
        Ok(Interface {
            if_type,
            mac,
            source,
            target_dev: child(n, "target").and_then(|t| attr(t, "dev")),
            model: child(n, "model").and_then(|m| attr(m, "type")),
            driver_name: driver.and_then(|d| attr(d, "name")),
            driver_queues: driver.map(|d| attr_int(d, "queues")).transpose()?.flatten(),
            link_state: child(n, "link")
                .map(|l| attr_enum(l, "state"))
                .transpose()?
                .flatten(),
            mtu: child(n, "mtu")
                .map(|m| attr_int(m, "size"))
                .transpose()?
                .flatten(),
            boot_order: parse_boot_order(n)?,
            alias: parse_alias(n),
            address: parse_address(n)?,
        })
    }

    fn write(&self, w: &mut Writer) {
        w.elem("interface").attr("type", self.if_type).open();
        if let Some(m) = &self.mac {
            w.elem("mac").attr("address", m).empty();
        }
        if let Some(s) = &self.source {
            w.elem("source")
                .opt("network", s.network.as_deref())
                .opt("portgroup", s.portgroup.as_deref())
                .opt("bridge", s.bridge.as_deref())
                .opt("dev", s.dev.as_deref())
                .opt("type", s.source_type.as_deref())
                .opt("path", s.path.as_deref())
                .opt("address", s.address.as_deref())
                .opt("port", s.port)
                .opt("mode", s.mode.as_deref())
                .empty();
        }
        if let Some(t) = &self.target_dev {
            w.elem("target").attr("dev", t).empty();
        }
        if let Some(m) = &self.model {
            w.elem("model").attr("type", m).empty();
        }
        if self.driver_name.is_some() || self.driver_queues.is_some() {
            w.elem("driver")
                .opt("name", self.driver_name.as_deref())
                .opt("queues", self.driver_queues)
                .empty();
        }
        if let Some(l) = self.link_state {
            w.elem("link").attr("state", l).empty();
        }
        if let Some(m) = self.mtu {
            w.elem("mtu").attr("size", m).empty();
        }
        if let Some(o) = self.boot_order {
            w.elem("boot").attr("order", o).empty();
        }
        write_alias_address(w, &self.alias, &self.address);
        w.close("interface");
    }
}

// ---------------------------------------------------------------------------
// Character devices
// ---------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum ChardevKind {
    Serial,
    Console,
    Channel,
}

impl ChardevSource {
    fn parse(s: Node) -> Result<ChardevSource, XmlError> {
        Ok(ChardevSource {
            mode: attr_one_of(
                s,
                "mode",
                &["bind", "connect"],
                "character device source mode",
            )?,
            path: attr(s, "path"),
            host: attr(s, "host"),
            service: attr(s, "service"),
            channel: attr(s, "channel"),
            append: attr_on_off(s, "append")?,
            tls: attr_yes_no(s, "tls")?,
        })
    }

    fn write(&self, w: &mut Writer) {
        w.elem("source")
            .opt("mode", self.mode.as_deref())
            .opt("path", self.path.as_deref())
            .opt("host", self.host.as_deref())
            .opt("service", self.service.as_deref())
            .opt("channel", self.channel.as_deref())
            .on_off("append", self.append)
            .yes_no("tls", self.tls)
            .empty();
    }
}

impl Chardev {
    fn parse(n: Node, kind: ChardevKind) -> Result<Chardev, XmlError> {
        // libvirt treats a missing type as 'pty'.
        let dev_type = attr_enum(n, "type")?.unwrap_or(ChardevType::Pty);
        let mut sources = Vec::new();
        for s in children(n, "source") {
            sources.push(ChardevSource::parse(s)?);
        }
        let target = match child(n, "target") {
            None => None,
            Some(t) => {
                let target_type = attr(t, "type");
                let (allowed, what) = match kind {
                    ChardevKind::Serial => (SERIAL_TARGET_TYPES, "serial target type"),
                    ChardevKind::Console => (CONSOLE_TARGET_TYPES, "console target type"),
                    ChardevKind::Channel => (CHANNEL_TARGET_TYPES, "channel target type"),
                };
                if let Some(tt) = &target_type {
                    if !allowed.contains(&tt.as_str()) {
                        return Err(XmlError::Invalid(format!("unknown {what} '{tt}'")));
                    }
                }
                Some(ChardevTarget {
                    target_type,
                    port: attr_int(t, "port")?,
                    name: attr(t, "name"),
                    state: attr_one_of(
                        t,
                        "state",
                        &["connected", "disconnected"],
                        "channel state",
                    )?,
                    address: attr(t, "address"),
                    model_name: child(t, "model").and_then(|m| attr(m, "name")),
                })
            }
        };
        if let ChardevKind::Channel = kind {
            if target
                .as_ref()
                .and_then(|t| t.target_type.as_ref())
                .is_none()
            {
                return Err(XmlError::Invalid(
                    "missing target type for <channel>".into(),
                ));
            }
        }
        Ok(Chardev {
            dev_type,
            tty: attr(n, "tty"),
            sources,
            protocol: child(n, "protocol")
                .map(|p| {
                    attr_one_of(
                        p,
                        "type",
                        &["raw", "telnet", "telnets", "tls"],
                        "character device protocol",
                    )
                })
                .transpose()?
                .flatten(),
            log_file: child(n, "log").and_then(|l| attr(l, "file")),
            target,
            alias: parse_alias(n),
            address: parse_address(n)?,
        })
    }

    fn write(&self, w: &mut Writer, element: &str) {
        w.elem(element)
            .attr("type", self.dev_type)
            .opt("tty", self.tty.as_deref())
            .open();
        for s in &self.sources {
            s.write(w);
        }
        if let Some(p) = &self.protocol {
            w.elem("protocol").attr("type", p).empty();
        }
        if let Some(l) = &self.log_file {
            w.elem("log").attr("file", l).empty();
        }
        if let Some(t) = &self.target {
            let e = w
                .elem("target")
                .opt("type", t.target_type.as_deref())
                .opt("name", t.name.as_deref())
                .opt("state", t.state.as_deref())
                .opt("address", t.address.as_deref())
                .opt("port", t.port);
            match &t.model_name {
                Some(m) => {
                    e.open();
                    w.elem("model").attr("name", m).empty();
                    w.close("target");
                }
                None => e.empty(),
            }
        }
        write_alias_address(w, &self.alias, &self.address);
        w.close(element);
    }
}

// ---------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------

impl Input {
    fn parse(n: Node) -> Result<Input, XmlError> {
        Ok(Input {
            input_type: required_enum(n, "type", "input")?,
            bus: attr_enum(n, "bus")?,
            model: attr_one_of(
                n,
                "model",
                &["virtio", "virtio-transitional", "virtio-non-transitional"],
                "input model",
            )?,
            source_attrs: child(n, "source")
                .map(|s| attr_list(s, &[]))
                .unwrap_or_default(),
            alias: parse_alias(n),
            address: parse_address(n)?,
        })
    }

    fn write(&self, w: &mut Writer) {
        let e = w
            .elem("input")
            .attr("type", self.input_type)
            .opt("bus", self.bus)
            .opt("model", self.model.as_deref());
        if self.source_attrs.is_empty() && self.alias.is_none() && self.address.is_none() {
            e.empty();
            return;
        }
        e.open();
        if !self.source_attrs.is_empty() {
            w.elem("source").attrs(&self.source_attrs).empty();
        }
        write_alias_address(w, &self.alias, &self.address);
        w.close("input");
    }
}

// ---------------------------------------------------------------------------
// Graphics
// ---------------------------------------------------------------------------

impl Graphics {
    fn parse(n: Node) -> Result<Graphics, XmlError> {
        let mut listens = Vec::new();
        for l in children(n, "listen") {
            listens.push(GraphicsListen {
                listen_type: required_enum(l, "type", "listen")?,
                address: attr(l, "address"),
                network: attr(l, "network"),
                socket: attr(l, "socket"),
            });
        }
        let mut listen = attr(n, "listen");
        // Keep the legacy attribute and the first address listen in step,
        // as libvirt does.
        match (&listen, listens.first()) {
            (Some(addr), None) => listens.push(GraphicsListen {
                listen_type: ListenType::Address,
                address: Some(addr.clone()),
                network: None,
                socket: None,
            }),
            (None, Some(first)) if first.listen_type == ListenType::Address => {
                listen.clone_from(&first.address);
            }
            _ => {}
        }
        Ok(Graphics {
            graphics_type: required_enum(n, "type", "graphics")?,
            port: attr_int(n, "port")?,
            tls_port: attr_int(n, "tlsPort")?,
            autoport: attr_yes_no(n, "autoport")?,
            websocket: attr_int(n, "websocket")?,
            listen,
            passwd: attr(n, "passwd"),
            keymap: attr(n, "keymap"),
            listens,
        })
    }

    fn write(&self, w: &mut Writer) {
        let e = w
            .elem("graphics")
            .attr("type", self.graphics_type)
            .opt("port", self.port)
            .opt("tlsPort", self.tls_port)
            .yes_no("autoport", self.autoport)
            .opt("websocket", self.websocket)
            .opt("listen", self.listen.as_deref())
            .opt("keymap", self.keymap.as_deref())
            .opt("passwd", self.passwd.as_deref());
        if self.listens.is_empty() {
            e.empty();
            return;
        }
        e.open();
        for l in &self.listens {
            w.elem("listen")
                .attr("type", l.listen_type)
                .opt("address", l.address.as_deref())
                .opt("network", l.network.as_deref())
                .opt("socket", l.socket.as_deref())
                .empty();
        }
        w.close("graphics");
    }
}

// ---------------------------------------------------------------------------
// Video
// ---------------------------------------------------------------------------

impl Video {
    fn parse(n: Node) -> Result<Video, XmlError> {
        let model = match child(n, "model") {
            None => None,
            Some(m) => Some(VideoModel {
                model_type: required_enum(m, "type", "model")?,
                ram: attr_int(m, "ram")?,
                vram: attr_int(m, "vram")?,
                vram64: attr_int(m, "vram64")?,
                vgamem: attr_int(m, "vgamem")?,
                heads: attr_int(m, "heads")?,
                primary: attr_yes_no(m, "primary")?,
            }),
        };
        Ok(Video {
            model,
            alias: parse_alias(n),
            address: parse_address(n)?,
        })
    }

    fn write(&self, w: &mut Writer) {
        w.elem("video").open();
        if let Some(m) = &self.model {
            w.elem("model")
                .attr("type", m.model_type)
                .opt("ram", m.ram)
                .opt("vram", m.vram)
                .opt("vram64", m.vram64)
                .opt("vgamem", m.vgamem)
                .opt("heads", m.heads)
                .yes_no("primary", m.primary)
                .empty();
        }
        write_alias_address(w, &self.alias, &self.address);
        w.close("video");
    }
}

// ---------------------------------------------------------------------------
// Memballoon
// ---------------------------------------------------------------------------

impl Memballoon {
    fn parse(n: Node) -> Result<Memballoon, XmlError> {
        Ok(Memballoon {
            model: required_enum(n, "model", "memballoon")?,
            autodeflate: attr_on_off(n, "autodeflate")?,
            free_page_reporting: attr_on_off(n, "freePageReporting")?,
            stats_period: child(n, "stats")
                .map(|s| attr_positive(s, "period"))
                .transpose()?
                .flatten(),
            alias: parse_alias(n),
            address: parse_address(n)?,
        })
    }

    fn write(&self, w: &mut Writer) {
        let e = w
            .elem("memballoon")
            .attr("model", self.model)
            .on_off("autodeflate", self.autodeflate)
            .on_off("freePageReporting", self.free_page_reporting);
        if self.stats_period.is_none() && self.alias.is_none() && self.address.is_none() {
            e.empty();
            return;
        }
        e.open();
        if let Some(p) = self.stats_period {
            w.elem("stats").attr("period", p).empty();
        }
        write_alias_address(w, &self.alias, &self.address);
        w.close("memballoon");
    }
}

// ---------------------------------------------------------------------------
// RNG
// ---------------------------------------------------------------------------

impl Rng {
    fn parse(n: Node) -> Result<Rng, XmlError> {
        let b = child(n, "backend").ok_or_else(|| missing("<backend>", "<rng>"))?;
        let model: RngBackendModel = required_enum(b, "model", "backend")?;
        let mut sources = Vec::new();
        let mut egd_type = None;
        let mut path = None;
        match model {
            RngBackendModel::Random => {
                path = Some(text(b).trim().to_string()).filter(|s| !s.is_empty());
            }
            RngBackendModel::Egd => {
                egd_type = Some(required_enum(b, "type", "backend")?);
                for s in children(b, "source") {
                    sources.push(ChardevSource::parse(s)?);
                }
            }
            RngBackendModel::Builtin => {}
        }
        let rate = match child(n, "rate") {
            None => None,
            Some(r) => Some(RngRate {
                bytes: attr_positive(r, "bytes")?.ok_or_else(|| {
                    XmlError::Invalid("missing 'bytes' attribute on <rate>".into())
                })?,
                period: attr_positive(r, "period")?,
            }),
        };
        Ok(Rng {
            model: required_enum(n, "model", "rng")?,
            backend: RngBackend {
                model,
                path,
                egd_type,
                sources,
            },
            rate,
            alias: parse_alias(n),
            address: parse_address(n)?,
        })
    }

    fn write(&self, w: &mut Writer) {
        w.elem("rng").attr("model", self.model).open();
        if let Some(r) = &self.rate {
            w.elem("rate")
                .attr("bytes", r.bytes)
                .opt("period", r.period)
                .empty();
        }
        let b = &self.backend;
        let e = w
            .elem("backend")
            .attr("model", b.model)
            .opt("type", b.egd_type);
        match b.model {
            RngBackendModel::Random => match &b.path {
                Some(p) => e.text(p),
                None => e.empty(),
            },
            RngBackendModel::Egd if !b.sources.is_empty() => {
                e.open();
                for s in &b.sources {
                    s.write(w);
                }
                w.close("backend");
            }
            _ => e.empty(),
        }
        write_alias_address(w, &self.alias, &self.address);
        w.close("rng");
    }
}
