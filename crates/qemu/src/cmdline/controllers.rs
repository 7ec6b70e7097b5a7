//! Controllers: PCI buses (root ports, bridges), USB (including ICH9's EHCI with its
//! UHCI companions), SATA and virtio-serial; and the reservation of every PCI address
//! written in the definition before anything is placed automatically.

use std::collections::BTreeSet;

use vireo_xml::{Address, AddressType, ControllerType, DiskBus, VideoModelType};

use super::slots::PciBus;
use super::util::Opts;
use super::{unsupported, Builder, Result};
use crate::pci::Family;

impl<'a> Builder<'a> {
    pub(super) fn reserve_pci(&mut self) -> Result<()> {
        let def = self.def;
        let d = &def.devices;
        let mut explicit: Vec<(String, &Address)> = Vec::new();
        for c in &d.controllers {
            let emitted = match c.ctl_type {
                ControllerType::Usb | ControllerType::VirtioSerial => true,
                ControllerType::Sata => self.family == Family::Pc,
                ControllerType::Pci => c.index.unwrap_or(0) != 0,
                _ => false,
            };
            if emitted {
                if let Some(a) = &c.address {
                    explicit.push((format!("<controller type='{}'>", c.ctl_type), a));
                }
            }
        }
        for disk in &d.disks {
            if let Some(a) = &disk.address {
                explicit.push((format!("<disk> '{}'", disk.target.dev), a));
            }
        }
        for (i, n) in d.interfaces.iter().enumerate() {
            if let Some(a) = &n.address {
                explicit.push((format!("<interface> {i}"), a));
            }
        }
        for v in &d.videos {
            if let Some(a) = &v.address {
                explicit.push(("<video>".to_string(), a));
            }
        }
        if let Some(a) = d.memballoon.as_ref().and_then(|m| m.address.as_ref()) {
            explicit.push(("<memballoon>".to_string(), a));
        }
        for r in &d.rngs {
            if let Some(a) = &r.address {
                explicit.push(("<rng>".to_string(), a));
            }
        }
        for i in &d.inputs {
            if let Some(a) = &i.address {
                explicit.push((format!("<input type='{}'>", i.input_type), a));
            }
        }
        for (p, _, what) in crate::pci::platform_pci(d) {
            if let Some(a) = crate::pci::platform_address(d, p) {
                explicit.push((what, a));
            }
        }
        for (what, a) in explicit {
            self.pci.reserve(a, &what)?;
        }
        // libvirt gives the video device the first free slot.
        if let Some(v) = d.videos.first() {
            let none = v
                .model
                .as_ref()
                .is_some_and(|m| m.model_type == VideoModelType::None);
            if v.address.is_none() && !none {
                self.video_addr = Some(self.pci.next_free("<video>")?);
            }
        }
        Ok(())
    }

    // -----------------------------------------------------------------------
    // Controllers
    // -----------------------------------------------------------------------

    pub(super) fn controllers(&mut self, needs_usb: bool) -> Result<()> {
        let def = self.def;
        let d = &def.devices;
        let mut usb: Option<&vireo_xml::Controller> = None;
        // ICH9's USB 1 companions of an ich9-ehci1 (`<master startport>`), by first port.
        let mut companions: Vec<&vireo_xml::Controller> = Vec::new();
        let mut sata: Option<&vireo_xml::Controller> = None;
        // virtio-serial and SCSI controllers may be several (by index).
        let mut vserials: Vec<&vireo_xml::Controller> = Vec::new();
        let mut scsis: Vec<&vireo_xml::Controller> = Vec::new();
        // Buses first, parents before children (a controller's index is above its
        // parent bus's).
        let mut pci: Vec<&vireo_xml::Controller> = d
            .controllers
            .iter()
            .filter(|c| c.ctl_type == ControllerType::Pci)
            .collect();
        pci.sort_by_key(|c| c.index.unwrap_or(0));
        for c in pci {
            self.pci_controller(c)?;
        }
        for c in &d.controllers {
            let what = format!(
                "<controller type='{}' index='{}'>",
                c.ctl_type,
                c.index.unwrap_or(0)
            );
            if c.ctl_type == ControllerType::Pci {
                continue;
            }
            let many = matches!(
                c.ctl_type,
                ControllerType::Scsi | ControllerType::VirtioSerial
            );
            if c.index.unwrap_or(0) != 0 && !many {
                return unsupported(format!("{what}: only index 0 is supported"));
            }
            let virtio_scsi =
                c.ctl_type == ControllerType::Scsi && c.model.as_deref() == Some("virtio-scsi");
            if let Some((k, _)) = c
                .driver_attrs
                .iter()
                .find(|(k, _)| !(virtio_scsi && matches!(k.as_str(), "iothread" | "queues")))
            {
                return unsupported(format!(
                    "{what}: <driver {k}=…> is not supported{}",
                    if virtio_scsi {
                        " (iothread, queues)"
                    } else {
                        ""
                    }
                ));
            }
            if c.model_name.is_some() || !c.target_attrs.is_empty() {
                return unsupported(format!("{what}: <model>/<target> are not supported"));
            }
            if c.ctl_type == ControllerType::Ccid {
                // The smartcard reader: a USB device, made with the card (smartcards()).
                continue;
            }
            if c.ctl_type != ControllerType::VirtioSerial && c.vectors.is_some() {
                return unsupported(format!("{what}: vectors is not supported"));
            }
            if !matches!(
                c.ctl_type,
                ControllerType::VirtioSerial | ControllerType::Usb
            ) && c.ports.is_some()
            {
                return unsupported(format!("{what}: ports is not supported"));
            }
            if c.ctl_type == ControllerType::Usb && c.master_startport.is_some() {
                companions.push(c);
                continue;
            }
            if many {
                let list = if c.ctl_type == ControllerType::Scsi {
                    &mut scsis
                } else {
                    &mut vserials
                };
                if list
                    .iter()
                    .any(|x| x.index.unwrap_or(0) == c.index.unwrap_or(0))
                {
                    return unsupported(format!("{what} appears twice"));
                }
                list.push(c);
                continue;
            }
            let slot = match c.ctl_type {
                ControllerType::Usb => &mut usb,
                ControllerType::Sata => &mut sata,
                ControllerType::Ide => {
                    if self.family == Family::Q35 {
                        return unsupported(
                            "q35 machines have no IDE controller (use a SATA controller)",
                        );
                    }
                    if c.model.is_some() {
                        return unsupported(format!("{what}: model is not supported"));
                    }
                    // PIIX3's IDE function, built in; libvirt writes its fixed address.
                    self.builtin_address(c, 1, 1, &what)?;
                    continue;
                }
                other => {
                    return unsupported(format!("<controller type='{other}'> is not supported yet"))
                }
            };
            if slot.is_some() {
                return unsupported(format!("{what} appears twice"));
            }
            *slot = Some(c);
        }

        // USB: the one asked for, or a default one when a USB device needs it.
        let usb_model = match usb {
            Some(c) => c.model.as_deref(),
            None if needs_usb => None,
            None => Some("none"),
        };
        let usb_model = usb_model.unwrap_or(match self.family {
            Family::Pc => "piix3-uhci",
            Family::Q35 => "qemu-xhci",
        });
        let usb_addr = usb.and_then(|c| c.address.as_ref());
        let usb_ports = usb.and_then(|c| c.ports);
        if !companions.is_empty() && usb_model != "ich9-ehci1" {
            return unsupported(
                "<controller type='usb'> with <master> needs an ich9-ehci1 master controller",
            );
        }
        match usb_model {
            "none" => {
                if needs_usb {
                    return unsupported(
                        "USB input devices need a USB controller, but <controller type='usb' \
                         model='none'>",
                    );
                }
                if usb_addr.is_some() {
                    return unsupported("<controller type='usb' model='none'> takes no address");
                }
            }
            "piix3-uhci" => {
                if usb_ports.is_some() {
                    return unsupported(
                        "<controller type='usb' model='piix3-uhci'>: ports is not supported",
                    );
                }
                let addr = match (usb_addr, self.family) {
                    (None, Family::Pc) => self.pci.place_at(1, 2, "USB controller")?,
                    (a, _) => self.pci.place(a, "USB controller")?,
                };
                let dev = Opts::new("piix3-usb-uhci")
                    .set("id", "usb")
                    .raw(&addr)
                    .done();
                self.arg2("-device", dev);
            }
            "qemu-xhci" | "nec-xhci" => {
                let driver = if usb_model == "qemu-xhci" {
                    "qemu-xhci"
                } else {
                    "nec-usb-xhci"
                };
                if usb_ports.is_some_and(|p| p == 0 || p > 15) {
                    return unsupported("<controller type='usb'>: ports must be 1 to 15");
                }
                let addr = self.pci.place(usb_addr, "USB controller")?;
                let dev = Opts::new(driver)
                    .set_opt("p2", usb_ports)
                    .set_opt("p3", usb_ports)
                    .set("id", "usb")
                    .raw(&addr)
                    .done();
                self.arg2("-device", dev);
            }
            "ich9-ehci1" => self.ich9_usb(usb_addr, &companions)?,
            other => {
                return unsupported(format!(
                    "<controller type='usb' model='{other}'> is not supported (piix3-uhci, \
                     qemu-xhci, nec-xhci, ich9-ehci1 with its ich9-uhci companions, or none)"
                ))
            }
        }

        // SATA: built into q35; an ich9-ahci on pc, when asked for or used by a disk.
        if let Some(c) = sata {
            if c.model.is_some() {
                return unsupported("<controller type='sata'>: model is not supported");
            }
        }
        let sata_disks = d
            .disks
            .iter()
            .any(|disk| disk.target.bus == Some(DiskBus::Sata));
        match self.family {
            Family::Q35 => {
                if let Some(c) = sata {
                    self.builtin_address(c, 0x1f, 2, "<controller type='sata'>")?;
                }
            }
            Family::Pc => {
                if sata.is_some() || sata_disks {
                    let addr = self
                        .pci
                        .place(sata.and_then(|c| c.address.as_ref()), "SATA controller")?;
                    let dev = Opts::new("ich9-ahci").set("id", "sata0").raw(&addr).done();
                    self.arg2("-device", dev);
                }
            }
        }

        // virtio-serial: when asked for, or (controller 0) for channels and virtio consoles.
        let needs_vserial = !d.channels.is_empty()
            || d.consoles.iter().any(|c| {
                c.target.as_ref().and_then(|t| t.target_type.as_deref()) == Some("virtio")
            });
        vserials.sort_by_key(|c| c.index.unwrap_or(0));
        for c in &vserials {
            if c.model.is_some() {
                return unsupported("<controller type='virtio-serial'>: model is not supported");
            }
        }
        if vserials.is_empty() && needs_vserial {
            let addr = self.pci.place(None, "virtio-serial controller")?;
            let dev = Opts::new("virtio-serial-pci")
                .set("id", "virtio-serial0")
                .raw(&addr)
                .done();
            self.arg2("-device", dev);
        }
        for c in vserials {
            let addr = self
                .pci
                .place(c.address.as_ref(), "virtio-serial controller")?;
            let dev = Opts::new("virtio-serial-pci")
                .set("id", format!("virtio-serial{}", c.index.unwrap_or(0)))
                .set_opt("max_ports", c.ports)
                .set_opt("vectors", c.vectors)
                .raw(&addr)
                .done();
            self.arg2("-device", dev);
        }

        // SCSI: the controllers of the SCSI disks (define adds one when they need it).
        scsis.sort_by_key(|c| c.index.unwrap_or(0));
        for c in scsis {
            let (device, iothread, queues) = scsi_device(c)?;
            let addr = self.pci.place(c.address.as_ref(), "SCSI controller")?;
            let dev = Opts::new(device)
                .set("id", format!("scsi{}", c.index.unwrap_or(0)))
                .set_opt("iothread", iothread)
                .set_opt("num_queues", queues)
                .raw(&addr)
                .done();
            self.arg2("-device", dev);
        }
        Ok(())
    }

    /// The root bus is part of the machine; root ports and bridges are devices on their
    /// parent bus (whose index is lower), with QEMU id `pci.INDEX`.
    fn pci_controller(&mut self, c: &vireo_xml::Controller) -> Result<()> {
        let index = c.index.unwrap_or(0);
        let model = c.model.as_deref().unwrap_or("");
        let what = format!("<controller type='pci' index='{index}' model='{model}'>");
        let Some(kind) = crate::pci::BusKind::of_model(model) else {
            return unsupported(format!("{what} is not supported"));
        };
        if !c.driver_attrs.is_empty() {
            return unsupported(format!("{what}: <driver> settings are not supported"));
        }
        let Some(device) = kind.qemu_device() else {
            // The root: part of the machine, nothing to set.
            if c.model_name.is_some() || !c.target_attrs.is_empty() || c.address.is_some() {
                return unsupported(format!("{what} takes no settings other than index 0"));
            }
            return Ok(());
        };
        if let Some(n) = &c.model_name {
            if n != device {
                return unsupported(format!(
                    "{what}: <model name='{n}'> is not supported (only '{device}')"
                ));
            }
        }
        let Some(addr) = &c.address else {
            return unsupported(format!("{what} has no PCI address"));
        };
        let at = PciBus::parse(addr, &what)?;
        if at.bus >= index {
            return unsupported(format!(
                "{what}: it must sit on a bus of lower index than its own (bus {:#04x})",
                at.bus
            ));
        }
        let target = |key: &str| -> Result<Option<u64>> {
            match c.target_attrs.iter().find(|(k, _)| k == key) {
                None => Ok(None),
                Some((_, v)) => {
                    let v = v.trim();
                    let n = match v.strip_prefix("0x") {
                        Some(h) => u64::from_str_radix(h, 16).ok(),
                        None => v.parse().ok(),
                    };
                    n.map(Some).map_or_else(
                        || unsupported(format!("{what}: invalid <target {key}='{v}'>")),
                        Ok,
                    )
                }
            }
        };
        let allowed: &[&str] = match kind {
            crate::pci::BusKind::PcieRootPort => &["chassis", "port", "hotplug"],
            crate::pci::BusKind::PciBridge => &["chassisNr", "hotplug"],
            _ => &[],
        };
        if let Some((k, _)) = c
            .target_attrs
            .iter()
            .find(|(k, _)| !allowed.contains(&k.as_str()))
        {
            return unsupported(format!("{what}: <target {k}=…> is not supported"));
        }
        let hotplug = match c.target_attrs.iter().find(|(k, _)| k == "hotplug") {
            None => None,
            Some((_, v)) if v == "on" => Some("on"),
            Some((_, v)) if v == "off" => Some("off"),
            Some((_, v)) => return unsupported(format!("{what}: invalid hotplug '{v}'")),
        };
        let mut dev = Opts::new(device);
        match kind {
            crate::pci::BusKind::PcieRootPort => {
                dev = dev
                    .set_opt("port", target("port")?)
                    .set_opt("chassis", target("chassis")?);
            }
            crate::pci::BusKind::PciBridge => {
                dev = dev.set_opt("chassis_nr", target("chassisNr")?);
            }
            _ => {}
        }
        let dev = dev
            .set("id", format!("pci.{index}"))
            .raw(
                &self
                    .pci
                    .format_at(at.bus, at.slot, at.function, at.multifunction),
            )
            .set_opt(
                match kind {
                    crate::pci::BusKind::PcieRootPort => "hotplug",
                    _ => "shpc",
                },
                hotplug,
            )
            .done();
        self.arg2("-device", dev);
        Ok(())
    }

    /// ICH9's USB 2 controller (function 7) and its USB 1 companions (functions 0, 1, 2,
    /// the first multifunction) in one PCI slot, as libvirt lays them out.
    fn ich9_usb(
        &mut self,
        addr: Option<&Address>,
        companions: &[&vireo_xml::Controller],
    ) -> Result<()> {
        let mut seen = BTreeSet::new();
        for c in companions {
            let n = match c.model.as_deref() {
                Some("ich9-uhci1") => 1,
                Some("ich9-uhci2") => 2,
                Some("ich9-uhci3") => 3,
                other => {
                    return unsupported(format!(
                        "<controller type='usb' model='{}'> cannot be a companion of \
                         ich9-ehci1 (ich9-uhci1, 2 or 3)",
                        other.unwrap_or("")
                    ))
                }
            };
            if !seen.insert(n) {
                return unsupported(format!(
                    "<controller type='usb' model='ich9-uhci{n}'> appears twice"
                ));
            }
            if c.address.is_some() {
                return unsupported(
                    "ich9-uhci companion controllers take their master's slot; give no address",
                );
            }
        }
        let (bus, base) = match addr {
            Some(a) => {
                let p = PciBus::parse(a, "USB controller")?;
                (p.bus, p.slot)
            }
            None => (0, self.pci.free_slot("USB controller")?),
        };
        let ehci = Opts::new("ich9-usb-ehci1")
            .set("id", "usb")
            .raw(&self.pci.format_at(bus, base, 7, false))
            .done();
        self.arg2("-device", ehci);
        for c in companions {
            let (n, first) = match c.model.as_deref() {
                Some("ich9-uhci1") => (1, 0),
                Some("ich9-uhci2") => (2, 1),
                _ => (3, 2),
            };
            let dev = Opts::new(&format!("ich9-usb-uhci{n}"))
                .set("masterbus", "usb.0")
                .set("firstport", c.master_startport.unwrap_or(0))
                .raw(&self.pci.format_at(bus, base, first, first == 0))
                .done();
            self.pci.used.insert((bus, base, first));
            self.arg2("-device", dev);
        }
        self.pci.used.insert((bus, base, 7));
        Ok(())
    }

    /// A built-in controller may carry its fixed address, and nothing else.
    fn builtin_address(
        &self,
        c: &vireo_xml::Controller,
        slot: u32,
        function: u32,
        what: &str,
    ) -> Result<()> {
        let Some(a) = &c.address else { return Ok(()) };
        if a.addr_type == AddressType::Pci {
            let p = PciBus::parse(a, what)?;
            if p.slot == slot && p.function == function {
                return Ok(());
            }
        }
        unsupported(format!(
            "{what}: this controller is built into the machine at PCI {slot:#04x}.{function:x} \
             and cannot be moved"
        ))
    }
}

/// A SCSI controller's QEMU device, I/O thread and queue count.
fn scsi_device(c: &vireo_xml::Controller) -> Result<(&'static str, Option<String>, Option<u32>)> {
    let device = match c.model.as_deref().unwrap_or("lsilogic") {
        "lsilogic" => "lsi",
        "virtio-scsi" => "virtio-scsi-pci",
        other => {
            return unsupported(format!(
                "<controller type='scsi' model='{other}'> is not supported (lsilogic, virtio-scsi)"
            ))
        }
    };
    let driver = |k: &str| {
        c.driver_attrs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    let queues = match driver("queues") {
        Some(q) => match q.parse::<u32>() {
            Ok(n) if n > 0 => Some(n),
            _ => return unsupported(format!("SCSI controller: bad queues '{q}'")),
        },
        None => None,
    };
    Ok((
        device,
        driver("iothread").map(|t| format!("iothread{t}")),
        queues,
    ))
}

/// The alias a running VM's controller shows in its live XML, as libvirt names them: the
/// QEMU id of the bus it gives (`pci.0` or `pcie.0` for the root, `pci.N`, `usb`, `ide`
/// for the chipset's own IDE or (q35) SATA, `sataN`, `scsiN`, `virtio-serialN`).
pub fn live_alias(c: &vireo_xml::Controller, family: crate::pci::Family) -> String {
    let index = c.index.unwrap_or(0);
    match c.ctl_type {
        ControllerType::Pci if index == 0 => match family {
            crate::pci::Family::Pc => "pci.0".into(),
            crate::pci::Family::Q35 => "pcie.0".into(),
        },
        ControllerType::Pci => format!("pci.{index}"),
        // A master and its companions are one bus.
        ControllerType::Usb if index == 0 => "usb".into(),
        ControllerType::Ide if index == 0 => "ide".into(),
        ControllerType::Sata if index == 0 && family == crate::pci::Family::Q35 => "ide".into(),
        _ => controller_id(c).unwrap_or_else(|| format!("{}{index}", c.ctl_type)),
    }
}

/// The QEMU id of a controller that can be plugged in and out (`scsiN`,
/// `virtio-serialN`, N its index).
pub fn controller_id(c: &vireo_xml::Controller) -> Option<String> {
    let index = c.index.unwrap_or(0);
    match c.ctl_type {
        ControllerType::Scsi => Some(format!("scsi{index}")),
        ControllerType::VirtioSerial => Some(format!("virtio-serial{index}")),
        _ => None,
    }
}

/// The `device_add` arguments of a controller plugged into the running VM: a SCSI or a
/// virtio-serial controller (QEMU id [`controller_id`]) at its `<address>` (the driver
/// gives one).
pub fn hotplug_controller(c: &vireo_xml::Controller) -> Result<serde_json::Value> {
    let what = format!(
        "<controller type='{}' index='{}'>",
        c.ctl_type,
        c.index.unwrap_or(0)
    );
    let Some(id) = controller_id(c) else {
        return unsupported(format!(
            "'{}' controller cannot be hot plugged (only SCSI and virtio-serial controllers)",
            c.ctl_type
        ));
    };
    if c.model_name.is_some() || !c.target_attrs.is_empty() {
        return unsupported(format!("{what}: <model>/<target> are not supported"));
    }
    let mut v = if c.ctl_type == ControllerType::Scsi {
        if let Some((k, _)) = c.driver_attrs.iter().find(|(k, _)| {
            !(c.model.as_deref() == Some("virtio-scsi")
                && matches!(k.as_str(), "iothread" | "queues"))
        }) {
            return unsupported(format!("{what}: <driver {k}=…> is not supported"));
        }
        if c.vectors.is_some() || c.ports.is_some() {
            return unsupported(format!("{what}: ports and vectors are not supported"));
        }
        let (device, iothread, queues) = scsi_device(c)?;
        let mut v = serde_json::json!({"driver": device, "id": id});
        if let Some(t) = iothread {
            v["iothread"] = serde_json::json!(t);
        }
        if let Some(q) = queues {
            v["num_queues"] = serde_json::json!(q);
        }
        v
    } else {
        if c.model.is_some() {
            return unsupported(format!("{what}: model is not supported"));
        }
        if let Some((k, _)) = c.driver_attrs.first() {
            return unsupported(format!("{what}: <driver {k}=…> is not supported"));
        }
        let mut v = serde_json::json!({"driver": "virtio-serial-pci", "id": id});
        if let Some(p) = c.ports {
            v["max_ports"] = serde_json::json!(p);
        }
        if let Some(n) = c.vectors {
            v["vectors"] = serde_json::json!(n);
        }
        v
    };
    super::slots::hotplug_pci_place(&mut v, c.address.as_ref(), &what)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::Family;

    #[test]
    fn live_aliases_are_libvirts() {
        let c = |xml: &str| {
            let d = vireo_xml::Domain::parse(&format!(
                "<domain type='qemu'><name>a</name><memory>1</memory><os><type>hvm</type></os>\
                 <devices>{xml}</devices></domain>"
            ))
            .expect("xml");
            d.devices.controllers[0].clone()
        };
        let cases = [
            (
                "<controller type='pci' index='0' model='pci-root'/>",
                Family::Pc,
                "pci.0",
            ),
            (
                "<controller type='pci' index='0' model='pcie-root'/>",
                Family::Q35,
                "pcie.0",
            ),
            (
                "<controller type='pci' index='3' model='pcie-root-port'/>",
                Family::Q35,
                "pci.3",
            ),
            (
                "<controller type='usb' index='0' model='qemu-xhci'/>",
                Family::Q35,
                "usb",
            ),
            ("<controller type='ide' index='0'/>", Family::Pc, "ide"),
            ("<controller type='sata' index='0'/>", Family::Q35, "ide"),
            ("<controller type='sata' index='0'/>", Family::Pc, "sata0"),
            (
                "<controller type='scsi' index='1' model='virtio-scsi'/>",
                Family::Pc,
                "scsi1",
            ),
            (
                "<controller type='virtio-serial' index='0'/>",
                Family::Pc,
                "virtio-serial0",
            ),
        ];
        for (xml, family, alias) in cases {
            assert_eq!(live_alias(&c(xml), family), alias, "{xml}");
        }
    }
}
