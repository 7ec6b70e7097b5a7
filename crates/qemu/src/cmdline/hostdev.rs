//! Host devices given to the guest (`<hostdev mode='subsystem'>`):
//!
//! - a host PCI function through VFIO: `-device vfio-pci,host=DDDD:BB:SS.F,id=…,bus=…,addr=…`
//!   with `bootindex`, `rombar`/`romfile` from `<boot>` and `<rom>`;
//! - a mediated device of model vfio-pci: `-device vfio-pci,id=…,sysfsdev=/sys/bus/mdev/
//!   devices/UUID,…` (`display=on|off`; `ramfb='on'` makes it `vfio-pci-nohotplug,…,ramfb=on`,
//!   as libvirt does);
//! - a host USB device: QEMU gets the device node as a descriptor the launcher passes
//!   ([`LaunchConfig::usb_host_fds`](super::LaunchConfig::usb_host_fds)), put in an fd set
//!   (`-add-fd fd=F,set=N,opaque=hostdevK`) that `usb-host,hostdevice=/dev/fdset/N` opens,
//!   so that an unprivileged QEMU needs no access to `/dev/bus/usb`.
//!
//! A host device plugged into a running VM ([`hostdev_device`]) is the same QEMU device,
//! as `device_add` arguments; a USB device's descriptor reaches QEMU by `add-fd` into a
//! new fd set first.
//!
//! What the launcher must do before it builds the command line, none of which is done
//! here: lease every device from the node device driver (a managed PCI function bound to
//! vfio-pci, its IOMMU group's `/dev/vfio/N` usable by QEMU; a USB device found by its
//! ids or place and opened read-write, one descriptor per USB hostdev in the order of
//! [`usb_host_devices`]); and raise QEMU's locked-memory limit to [`vfio_memlock_kib`].

use serde_json::{json, Value};
use vireo_xml::{
    AddressType, Domain, Hostdev, HostdevDriverName, HostdevSource, MdevModel, UsbGuestReset,
};

use super::slots::hotplug_pci_place;
use super::util::{on_off, Opts};
use super::{unsupported, Builder, Result};

/// The first fd set of the USB host devices: the K-th USB hostdev's descriptor is in fd
/// set `USB_FDSET + K`.
pub const USB_FDSET: u32 = 100;

/// The QEMU id of host device `index` (its position among the `<hostdev>`s): a user alias
/// (`ua-…`, as libvirt keeps them) when it is a valid QEMU id, else `hostdevN`. The live
/// XML shows it as the device's alias.
pub fn hostdev_alias(h: &Hostdev, index: usize) -> String {
    match h.alias.as_deref() {
        Some(a) if a.starts_with("ua-") && is_qemu_id(a) => a.to_string(),
        _ => format!("hostdev{index}"),
    }
}

/// QEMU's rule for device ids: a letter, then letters, digits, `-`, `.` and `_`.
fn is_qemu_id(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

/// The USB host devices of a definition, in the order
/// [`LaunchConfig::usb_host_fds`](super::LaunchConfig::usb_host_fds) gives their
/// descriptors, each with its position among all the `<hostdev>`s.
pub fn usb_host_devices(def: &Domain) -> Vec<(usize, &Hostdev)> {
    def.devices
        .hostdevs
        .iter()
        .enumerate()
        .filter(|(_, h)| matches!(h.source, HostdevSource::Usb(_)))
        .collect()
}

/// How much memory (KiB) QEMU must be allowed to lock for the definition's VFIO devices
/// (PCI functions and mediated devices map the guest's memory for DMA), as libvirt
/// computes it: the `<memtune><hard_limit>` when there is one, else the guest's memory
/// (once per VFIO device behind a virtual IOMMU) plus 1 GiB for the devices' own regions.
/// `None` when the definition has no VFIO device.
pub fn vfio_memlock_kib(def: &Domain) -> Option<u64> {
    let vfio = def.devices.hostdevs.iter().filter(|h| h.is_vfio()).count() as u64;
    if vfio == 0 {
        return None;
    }
    if let Some(h) = def.memtune.as_ref().and_then(|m| m.hard_limit.as_ref()) {
        return Some(h.value);
    }
    let factor = if def.devices.iommu.is_some() { vfio } else { 1 };
    Some(
        def.memory_kib
            .saturating_mul(factor)
            .saturating_add(1024 * 1024),
    )
}

/// The `device_add` arguments of host device `h` plugged into a running VM with QEMU id
/// `id`, at its `<address>` (the driver gives a PCI one); a USB device opens the fd set
/// `usb_fdset` that its descriptor was added to. `graphics`: the VM has a display for a
/// mediated device's. What cannot be plugged in is refused, as at start; so is a mediated
/// device with `ramfb='on'` (QEMU's vfio-pci-nohotplug).
pub fn hostdev_device(
    h: &Hostdev,
    id: &str,
    usb_fdset: Option<u32>,
    graphics: bool,
) -> Result<Value> {
    let what = format!("<hostdev> {}", h.describe());
    if h.address
        .as_ref()
        .is_some_and(|a| a.addr_type == AddressType::Unassigned)
    {
        return unsupported(format!(
            "{what}: address type 'unassigned' is not supported by Vireo yet"
        ));
    }
    let mut v = match &h.source {
        HostdevSource::Pci(host) => {
            pci_driver(h, &what)?;
            json!({"driver": "vfio-pci", "host": host.to_string(), "id": id})
        }
        HostdevSource::Mdev(m) => {
            mdev_checks(m, graphics, &what)?;
            if m.ramfb == Some(true) {
                return unsupported(format!(
                    "{what}: a device with ramfb='on' cannot be plugged into a running VM"
                ));
            }
            let mut v = json!({"driver": "vfio-pci", "id": id, "sysfsdev": m.sysfs_path()});
            if let Some(d) = m.display {
                v["display"] = json!(on_off(d));
            }
            v
        }
        HostdevSource::Usb(u) => {
            if h.rom.is_some() {
                return unsupported(format!("{what}: <rom> is for PCI devices"));
            }
            let Some(set) = usb_fdset else {
                return unsupported(format!(
                    "{what}: no descriptor of the host device was passed (it is leased from \
                     the node device driver)"
                ));
            };
            let mut v = json!({
                "driver": "usb-host",
                "hostdevice": format!("/dev/fdset/{set}"),
                "id": id,
            });
            let (reset, resets_all) = guest_reset(u.guest_reset);
            if let Some(r) = reset {
                v["guest-reset"] = json!(r);
            }
            if let Some(r) = resets_all {
                v["guest-resets-all"] = json!(r);
            }
            v["bus"] = json!("usb.0");
            if let Some(a) = &h.address {
                v["port"] = json!(super::input::usb_port(a, &what)?);
            }
            v
        }
    };
    if let Some(b) = h.boot_order {
        v["bootindex"] = json!(b);
    }
    if h.on_guest_pci() {
        if let Some(r) = &h.rom {
            if let Some(bar) = r.bar {
                v["rombar"] = json!(u8::from(bar));
            }
            match (r.enabled, r.file.as_deref()) {
                (Some(false), _) => v["romfile"] = json!(""),
                (_, Some(f)) => v["romfile"] = json!(f),
                _ => {}
            }
        }
        hotplug_pci_place(&mut v, h.address.as_ref(), &what)?;
    }
    Ok(v)
}

/// `<driver name>` of a PCI host device: VFIO only.
fn pci_driver(h: &Hostdev, what: &str) -> Result<()> {
    match h.driver {
        None | Some(HostdevDriverName::Vfio) => Ok(()),
        Some(other) => unsupported(format!(
            "{what}: <driver name='{other}'> is not supported (vfio)"
        )),
    }
}

/// What a mediated device must be on this machine: a vfio-pci one, its display shown.
fn mdev_checks(m: &vireo_xml::MdevSource, graphics: bool, what: &str) -> Result<()> {
    if m.model != MdevModel::VfioPci {
        return unsupported(format!(
            "{what}: model '{}' is for s390 machines (vfio-pci)",
            m.model
        ));
    }
    if m.display == Some(true) && !graphics {
        return unsupported(format!(
            "{what}: display='on' needs a <graphics> device to show it"
        ));
    }
    if m.ramfb == Some(true) && m.display != Some(true) {
        return unsupported(format!("{what}: ramfb='on' needs display='on'"));
    }
    Ok(())
}

/// usb-host's `guest-reset` and `guest-resets-all` for `<source guestReset>`.
fn guest_reset(g: Option<UsbGuestReset>) -> (Option<bool>, Option<bool>) {
    match g {
        None => (None, None),
        Some(UsbGuestReset::Off) => (Some(false), None),
        Some(UsbGuestReset::Uninitialized) => (Some(true), Some(false)),
        Some(UsbGuestReset::On) => (Some(true), Some(true)),
    }
}

impl<'a> Builder<'a> {
    /// `<hostdev>`s, in document order (QEMU ids `hostdev0`, `hostdev1`, …).
    pub(super) fn hostdevs(&mut self) -> Result<()> {
        let def = self.def;
        let mut usb = 0usize;
        for (i, h) in def.devices.hostdevs.iter().enumerate() {
            let what = format!("<hostdev> {}", h.describe());
            let id = hostdev_alias(h, i);
            if h.address
                .as_ref()
                .is_some_and(|a| a.addr_type == AddressType::Unassigned)
            {
                return unsupported(format!(
                    "{what}: address type 'unassigned' is not supported by Vireo yet"
                ));
            }
            match &h.source {
                HostdevSource::Pci(host) => {
                    pci_driver(h, &what)?;
                    let addr = self.pci.place(h.address.as_ref(), &what)?;
                    let dev = Opts::new("vfio-pci")
                        .set("host", host)
                        .set("id", &id)
                        .set_opt("bootindex", h.boot_order)
                        .raw(&addr)
                        .raw(&rom_options(h))
                        .done();
                    self.arg2("-device", dev);
                }
                HostdevSource::Mdev(m) => {
                    mdev_checks(m, !def.devices.graphics.is_empty(), &what)?;
                    let ramfb = m.ramfb == Some(true);
                    let addr = self.pci.place(h.address.as_ref(), &what)?;
                    // The ramfb display cannot be unplugged: nor can the device with it.
                    let driver = if ramfb {
                        "vfio-pci-nohotplug"
                    } else {
                        "vfio-pci"
                    };
                    let dev = Opts::new(driver)
                        .set("id", &id)
                        .set("sysfsdev", m.sysfs_path())
                        .set_opt("display", m.display.map(on_off))
                        .set_opt("ramfb", ramfb.then_some("on"))
                        .set_opt("bootindex", h.boot_order)
                        .raw(&addr)
                        .raw(&rom_options(h))
                        .done();
                    self.arg2("-device", dev);
                }
                HostdevSource::Usb(u) => {
                    if h.rom.is_some() {
                        return unsupported(format!("{what}: <rom> is for PCI devices"));
                    }
                    // The launcher opened the device node; none when only checking.
                    let fd = match &self.cfg.usb_host_fds {
                        Some(fds) => match fds.get(usb) {
                            Some(fd) => *fd,
                            None => {
                                return unsupported(format!(
                                    "{what}: no descriptor of the host device was passed \
                                     (it is leased from the node device driver at start)"
                                ))
                            }
                        },
                        None => -1,
                    };
                    let set = USB_FDSET + usb as u32;
                    usb += 1;
                    self.arg2(
                        "-add-fd",
                        Opts::new("")
                            .set("fd", fd)
                            .set("set", set)
                            .set("opaque", &id)
                            .done(),
                    );
                    let port = match &h.address {
                        Some(a) => Some(super::input::usb_port(a, &what)?),
                        None => None,
                    };
                    let (reset, resets_all) = guest_reset(u.guest_reset);
                    let dev = Opts::new("usb-host")
                        .set("hostdevice", format!("/dev/fdset/{set}"))
                        .set("id", &id)
                        .set_opt("bootindex", h.boot_order)
                        .set_opt("guest-reset", reset.map(on_off))
                        .set_opt("guest-resets-all", resets_all.map(on_off))
                        .set("bus", "usb.0")
                        .set_opt("port", port)
                        .done();
                    self.arg2("-device", dev);
                }
            }
        }
        Ok(())
    }
}

/// `rombar=0|1` and `romfile=…` of a `<rom>` (a disabled ROM is an empty file).
fn rom_options(h: &Hostdev) -> String {
    let Some(r) = &h.rom else {
        return String::new();
    };
    let file = match r.enabled {
        Some(false) => Some(""),
        _ => r.file.as_deref(),
    };
    Opts::new("")
        .set_opt("rombar", r.bar.map(u8::from))
        .set_opt("romfile", file)
        .done()
}

/// Whether a USB device of the definition's hostdevs needs the USB controller.
pub(super) fn needs_usb(def: &Domain) -> bool {
    !usb_host_devices(def).is_empty()
}

#[cfg(test)]
mod tests;
