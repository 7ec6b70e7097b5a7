//! `<hostdev mode='subsystem'>`: a device of the host given to the guest — a PCI function
//! (VFIO), a USB device, or a mediated device (mdev) — in libvirt's element and attribute
//! names and order:
//!
//! ```text
//! <hostdev mode='subsystem' type='pci|usb|mdev' managed='yes|no' [model display ramfb]>
//!   <driver name='vfio'/>                       (pci)
//!   <source [startupPolicy guestReset]>         (usb)
//!     <address domain bus slot function/>       (pci)
//!     <vendor id/> <product id/> <address bus device/>   (usb)
//!     <address uuid/>                           (mdev)
//!   </source>
//!   <boot order/> <alias name/> <rom enabled bar file/> <address type=…/>
//! </hostdev>
//! ```
//!
//! What the source is depends on the type, so the element is read and written by hand;
//! `<rom>` is a table. `mode='capabilities'` (LXC's) and the SCSI types are refused as
//! unsupported, naming the type.

use std::fmt;

use roxmltree::Node;

use crate::devices::{Address, AddressType};
use crate::model::{field, XmlElement};
use crate::util::{child, el_name, positive, str_enum, Writer};
use crate::{format_uuid, xml_element, XmlError};

str_enum! {
    /// `<hostdev mode=...>`.
    #[derive(Default)]
    HostdevMode, "hostdev mode" {
        #[default]
        Subsystem => "subsystem",
        Capabilities => "capabilities",
    }
}

str_enum! {
    /// `<hostdev type=...>` of a subsystem host device.
    HostdevType, "host device source address type" {
        Usb => "usb",
        Pci => "pci",
        Scsi => "scsi",
        ScsiHost => "scsi_host",
        Mdev => "mdev",
    }
}

str_enum! {
    /// `<hostdev type='mdev' model=...>`: the device the mediated device is in the guest.
    MdevModel, "mediated device model" {
        VfioPci => "vfio-pci",
        VfioCcw => "vfio-ccw",
        VfioAp => "vfio-ap",
    }
}

str_enum! {
    /// `<hostdev type='pci'><driver name=...>`: how the function is assigned.
    HostdevDriverName, "host device driver name" {
        Kvm => "kvm",
        Vfio => "vfio",
        Xen => "xen",
    }
}

str_enum! {
    /// `<source startupPolicy=...>` of a USB host device: what a start does when the
    /// device is not there.
    StartupPolicy, "startupPolicy" {
        Mandatory => "mandatory",
        Requisite => "requisite",
        Optional => "optional",
    }
}

str_enum! {
    /// `<source guestReset=...>` of a USB host device: which resets of the guest reach it.
    UsbGuestReset, "guestReset" {
        Off => "off",
        Uninitialized => "uninitialized",
        On => "on",
    }
}

/// A PCI function of the host, `DDDD:BB:SS.F`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciHostAddress {
    pub domain: u16,
    pub bus: u8,
    pub slot: u8,
    pub function: u8,
}

impl PciHostAddress {
    /// The name libvirt's node device driver gives the function (`pci_0000_06_12_5`).
    pub fn nodedev_name(&self) -> String {
        format!(
            "pci_{:04x}_{:02x}_{:02x}_{:x}",
            self.domain, self.bus, self.slot, self.function
        )
    }
}

/// `0000:06:12.5`: how sysfs names the function, and QEMU's `host=`.
impl fmt::Display for PciHostAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.slot, self.function
        )
    }
}

/// A USB device of the host by where it is plugged: its bus and device numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UsbHostAddress {
    pub bus: u32,
    pub device: u32,
}

impl UsbHostAddress {
    /// The device node of the device (`/dev/bus/usb/001/005`).
    pub fn dev_path(&self) -> String {
        format!("/dev/bus/usb/{:03}/{:03}", self.bus, self.device)
    }
}

/// A USB device of the host by what it is: `<vendor id>` and `<product id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UsbIds {
    pub vendor: u16,
    pub product: u16,
}

/// `<hostdev type='usb'><source>`: the device by its ids, its place, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbSource {
    pub startup_policy: Option<StartupPolicy>,
    pub guest_reset: Option<UsbGuestReset>,
    pub ids: Option<UsbIds>,
    pub address: Option<UsbHostAddress>,
}

/// `<hostdev type='mdev'>`: the mediated device and how the guest sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdevSource {
    /// `model` on `<hostdev>`.
    pub model: MdevModel,
    /// `display` on `<hostdev>`: the device's display as a QEMU console.
    pub display: Option<bool>,
    /// `ramfb` on `<hostdev>`: a ramfb boot display beside it.
    pub ramfb: Option<bool>,
    /// `<source><address uuid=…/>`.
    pub uuid: [u8; 16],
}

impl MdevSource {
    /// The device in sysfs (`/sys/bus/mdev/devices/UUID`), QEMU's `sysfsdev=`.
    pub fn sysfs_path(&self) -> String {
        format!("/sys/bus/mdev/devices/{}", format_uuid(&self.uuid))
    }
}

/// What a host device is, by its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostdevSource {
    Pci(PciHostAddress),
    Usb(UsbSource),
    Mdev(MdevSource),
}

xml_element! {
    /// `<rom enabled='yes|no' bar='on|off' file='…'/>`: the device's option ROM.
    #[derive(Default)]
    pub struct Rom {
        yes_no enabled: bool = "enabled",
        on_off bar: bool = "bar",
        attr_opt file: String = "file",
    }
    check Rom::check;
}

impl Rom {
    fn check(&mut self) -> Result<(), XmlError> {
        if self.enabled == Some(false) && (self.bar.is_some() || self.file.is_some()) {
            return Err(XmlError::Unsupported(
                "ROM tuning is not supported when ROM is disabled".into(),
            ));
        }
        Ok(())
    }
}

/// `<hostdev mode='subsystem'>` (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hostdev {
    /// `managed`: the device is detached from its host driver (bound to vfio-pci) at
    /// start and given back at the end. Written always, as libvirt does.
    pub managed: bool,
    /// `<driver name=…>` (pci).
    pub driver: Option<HostdevDriverName>,
    pub source: HostdevSource,
    /// `<boot order=…>`.
    pub boot_order: Option<u32>,
    /// `<alias name=…>`.
    pub alias: Option<String>,
    pub rom: Option<Rom>,
    /// The device's place in the guest: `type='pci'` (or `unassigned`) for pci and
    /// vfio-pci mdev devices, `type='usb'` for usb.
    pub address: Option<Address>,
}

impl Hostdev {
    /// The `type` attribute.
    pub fn hostdev_type(&self) -> HostdevType {
        match self.source {
            HostdevSource::Pci(_) => HostdevType::Pci,
            HostdevSource::Usb(_) => HostdevType::Usb,
            HostdevSource::Mdev(_) => HostdevType::Mdev,
        }
    }

    /// Whether the device sits on the guest's PCI bus (and needs a PCI address there): a
    /// PCI function not left unassigned, or a vfio-pci mediated device.
    pub fn on_guest_pci(&self) -> bool {
        let unassigned = self
            .address
            .as_ref()
            .is_some_and(|a| a.addr_type == AddressType::Unassigned);
        match &self.source {
            HostdevSource::Pci(_) => !unassigned,
            HostdevSource::Mdev(m) => m.model == MdevModel::VfioPci,
            HostdevSource::Usb(_) => false,
        }
    }

    /// Whether QEMU drives the device through VFIO (a PCI function or a mediated device):
    /// the guest's memory must then be locked.
    pub fn is_vfio(&self) -> bool {
        !matches!(self.source, HostdevSource::Usb(_))
    }

    /// What the device is, for messages: `PCI device 0000:06:12.5`, `USB device
    /// 1234:beef`, `USB device 001/005`, `mediated device 53764d0e-…`.
    pub fn describe(&self) -> String {
        match &self.source {
            HostdevSource::Pci(a) => format!("PCI device {a}"),
            HostdevSource::Usb(u) => match (u.ids, u.address) {
                (_, Some(a)) => format!("USB device {:03}/{:03}", a.bus, a.device),
                (Some(i), None) => format!("USB device {:04x}:{:04x}", i.vendor, i.product),
                (None, None) => "USB device".into(),
            },
            HostdevSource::Mdev(m) => format!("mediated device {}", format_uuid(&m.uuid)),
        }
    }

    /// Whether `self` and `other` name the same host device, as libvirt matches them: the
    /// same PCI function or mdev UUID; USB devices by their place when both give one, else
    /// by their ids.
    pub fn same_device(&self, other: &Hostdev) -> bool {
        match (&self.source, &other.source) {
            (HostdevSource::Pci(a), HostdevSource::Pci(b)) => a == b,
            (HostdevSource::Mdev(a), HostdevSource::Mdev(b)) => a.uuid == b.uuid,
            (HostdevSource::Usb(a), HostdevSource::Usb(b)) => match (a.address, b.address) {
                (Some(x), Some(y)) => x == y,
                _ => a.ids.is_some() && a.ids == b.ids,
            },
            _ => false,
        }
    }

    fn check_address(&self) -> Result<(), XmlError> {
        let Some(a) = &self.address else {
            return Ok(());
        };
        match &self.source {
            HostdevSource::Pci(_)
                if !matches!(a.addr_type, AddressType::Pci | AddressType::Unassigned) =>
            {
                Err(XmlError::Invalid(
                    "PCI host devices must use 'pci' or 'unassigned' address type".into(),
                ))
            }
            HostdevSource::Usb(_) if a.addr_type != AddressType::Usb => Err(XmlError::Invalid(
                "USB host devices must use 'usb' address type".into(),
            )),
            HostdevSource::Mdev(m)
                if m.model == MdevModel::VfioPci && a.addr_type != AddressType::Pci =>
            {
                Err(XmlError::Invalid(format!(
                    "unsupported address type '{}' with mediated device model 'vfio-pci'",
                    a.addr_type
                )))
            }
            _ => Ok(()),
        }
    }
}

/// A number as libvirt reads one (C's `strtoul` with base 0): `0x` hexadecimal, a leading
/// `0` octal, else decimal.
fn c_number(s: &str) -> Option<u64> {
    let t = s.trim();
    if t.starts_with(['+', '-']) {
        return None;
    }
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if t.len() > 1 && t.starts_with('0') {
        u64::from_str_radix(&t[1..], 8).ok()
    } else {
        t.parse().ok()
    }
}

/// The number in attribute `name` of `n`, if there is one.
fn num_attr(n: Node, name: &str) -> Result<Option<u64>, XmlError> {
    n.attribute(name)
        .map(|v| {
            c_number(v).ok_or_else(|| {
                XmlError::Invalid(format!(
                    "invalid value '{v}' for attribute '{name}' of {}: expected a \
                     non-negative integer",
                    el_name(n)
                ))
            })
        })
        .transpose()
}

fn pci_source(src: Node) -> Result<PciHostAddress, XmlError> {
    let a = child(src, "address").ok_or_else(|| {
        XmlError::Invalid("missing <address> in the <source> of a PCI <hostdev>".into())
    })?;
    // libvirt's words for a number out of range.
    let part = |name: &str, max: u64, shown: &str| -> Result<u64, XmlError> {
        let v = num_attr(a, name)?.unwrap_or(0);
        if v > max {
            let value = match name {
                "function" => format!("{name}=0x{v:x}"),
                _ => format!("{name}='0x{v:x}'"),
            };
            return Err(XmlError::Invalid(format!(
                "Invalid PCI address {value}, must be <= {shown}"
            )));
        }
        Ok(v)
    };
    // The sizes are the ones the ranges give.
    Ok(PciHostAddress {
        domain: part("domain", 0xffff, "0xFFFF")? as u16,
        bus: part("bus", 0xff, "0xFF")? as u8,
        slot: part("slot", 0x1f, "0x1F")? as u8,
        function: part("function", 7, "7")? as u8,
    })
}

fn usb_source(src: Node) -> Result<UsbSource, XmlError> {
    let id = |name: &str| -> Result<Option<u16>, XmlError> {
        let Some(el) = child(src, name) else {
            return Ok(None);
        };
        let Some(v) = num_attr(el, "id")? else {
            return Err(XmlError::Invalid(format!(
                "missing attribute 'id' in <{name}>"
            )));
        };
        u16::try_from(v).map(Some).map_err(|_| {
            XmlError::Invalid(format!("USB {name} id 0x{v:x} is out of range (0xffff)"))
        })
    };
    let ids = match (id("vendor")?, id("product")?) {
        (Some(vendor), Some(product)) => Some(UsbIds { vendor, product }),
        (None, None) => None,
        (Some(_), None) => {
            return Err(XmlError::Invalid(
                "missing <product> beside <vendor> in the <source> of a USB <hostdev>".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(XmlError::Invalid(
                "missing <vendor> beside <product> in the <source> of a USB <hostdev>".into(),
            ))
        }
    };
    let address = match child(src, "address") {
        None => None,
        Some(a) => {
            let part = |name: &str| -> Result<u32, XmlError> {
                let v = num_attr(a, name)?.ok_or_else(|| {
                    XmlError::Invalid(format!("missing attribute '{name}' in <address>"))
                })?;
                u32::try_from(v).map_err(|_| {
                    XmlError::Invalid(format!("USB {name} number {v} is out of range"))
                })
            };
            Some(UsbHostAddress {
                bus: part("bus")?,
                device: part("device")?,
            })
        }
    };
    if ids.is_none() && address.is_none() {
        return Err(XmlError::Invalid(
            "a USB <hostdev> needs <vendor> and <product>, or <address bus device>, in its \
             <source>"
                .into(),
        ));
    }
    Ok(UsbSource {
        startup_policy: field::attr_opt(src, "startupPolicy")?,
        guest_reset: field::attr_opt(src, "guestReset")?,
        ids,
        address,
    })
}

fn mdev_source(n: Node, src: Node) -> Result<MdevSource, XmlError> {
    let model: MdevModel = field::attr(n, "model")?;
    let a = child(src, "address").ok_or_else(|| {
        XmlError::Invalid("missing <address> in the <source> of an mdev <hostdev>".into())
    })?;
    Ok(MdevSource {
        model,
        display: field::on_off(n, "display")?,
        ramfb: field::on_off(n, "ramfb")?,
        uuid: field::attr(a, "uuid")?,
    })
}

impl XmlElement for Hostdev {
    fn from_node(n: Node) -> Result<Hostdev, XmlError> {
        let mode: HostdevMode = field::attr_def(n, "mode")?;
        let type_name = n.attribute("type");
        if mode == HostdevMode::Capabilities {
            return Err(XmlError::Unsupported(format!(
                "<hostdev mode='capabilities' type='{}'> is not supported by Vireo (only \
                 mode='subsystem' devices: pci, usb, mdev)",
                type_name.unwrap_or_default()
            )));
        }
        let kind: HostdevType = field::attr(n, "type")?;
        if matches!(kind, HostdevType::Scsi | HostdevType::ScsiHost) {
            return Err(XmlError::Unsupported(format!(
                "<hostdev type='{kind}'> is not supported by Vireo yet (pci, usb, mdev)"
            )));
        }
        let src = child(n, "source")
            .ok_or_else(|| XmlError::Invalid("missing <source> in <hostdev>".into()))?;
        let source = match kind {
            HostdevType::Pci => HostdevSource::Pci(pci_source(src)?),
            HostdevType::Usb => HostdevSource::Usb(usb_source(src)?),
            _ => HostdevSource::Mdev(mdev_source(n, src)?),
        };
        if kind != HostdevType::Mdev {
            for a in ["model", "display", "ramfb"] {
                if n.attribute(a).is_some() {
                    return Err(XmlError::Invalid(format!(
                        "attribute '{a}' of <hostdev> applies to type='mdev' only"
                    )));
                }
            }
        }
        let driver = match child(n, "driver") {
            None => None,
            Some(_) if kind != HostdevType::Pci => {
                return Err(XmlError::Invalid(
                    "<driver> of <hostdev> applies to type='pci' only".into(),
                ))
            }
            Some(d) => Some(field::attr(d, "name")?),
        };
        let h = Hostdev {
            managed: field::yes_no(n, "managed")?.unwrap_or(false),
            driver,
            source,
            boot_order: field::in_attr_opt(n, "boot@order")?,
            alias: field::in_attr_opt(n, "alias@name")?,
            rom: field::child_opt(n, "rom")?,
            address: field::child_opt(n, "address")?,
        };
        positive(h.boot_order, "attribute 'order' of <boot>")?;
        h.check_address()?;
        Ok(h)
    }

    fn write_to(&self, w: &mut Writer, name: &str) {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        let on_off = |b: bool| if b { "on" } else { "off" };
        let mut e = w
            .elem(name)
            .attr("mode", HostdevMode::Subsystem)
            .attr("type", self.hostdev_type())
            .attr("managed", yes_no(self.managed));
        if let HostdevSource::Mdev(m) = &self.source {
            e = e
                .attr("model", m.model)
                .opt("display", m.display.map(on_off))
                .opt("ramfb", m.ramfb.map(on_off));
        }
        e.open();
        if let Some(d) = self.driver {
            w.elem("driver").attr("name", d).empty();
        }
        match &self.source {
            HostdevSource::Pci(a) => {
                w.elem("source").open();
                w.elem("address")
                    .attr("domain", format!("0x{:04x}", a.domain))
                    .attr("bus", format!("0x{:02x}", a.bus))
                    .attr("slot", format!("0x{:02x}", a.slot))
                    .attr("function", format!("0x{:x}", a.function))
                    .empty();
            }
            HostdevSource::Usb(u) => {
                w.elem("source")
                    .opt("startupPolicy", u.startup_policy)
                    .opt("guestReset", u.guest_reset)
                    .open();
                if let Some(i) = u.ids {
                    w.elem("vendor")
                        .attr("id", format!("0x{:04x}", i.vendor))
                        .empty();
                    w.elem("product")
                        .attr("id", format!("0x{:04x}", i.product))
                        .empty();
                }
                if let Some(a) = u.address {
                    w.elem("address")
                        .attr("bus", a.bus)
                        .attr("device", a.device)
                        .empty();
                }
            }
            HostdevSource::Mdev(m) => {
                w.elem("source").open();
                w.elem("address").attr("uuid", format_uuid(&m.uuid)).empty();
            }
        }
        w.close("source");
        if let Some(o) = self.boot_order {
            w.elem("boot").attr("order", o).empty();
        }
        if let Some(a) = &self.alias {
            w.elem("alias").attr("name", a).empty();
        }
        if let Some(r) = &self.rom {
            r.write_to(w, "rom");
        }
        if let Some(a) = &self.address {
            a.write_to(w, "address");
        }
        w.close(name);
    }
}

#[cfg(test)]
mod tests;
