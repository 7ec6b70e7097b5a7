//! The PCI topology of a domain, laid out as libvirt lays it out, once, at define.
//!
//! [`assign`] completes a definition: the root controller (`pci-root` on pc, `pcie-root` on
//! q35), an index, model name and target for every PCI controller, and a PCI address for
//! every device that sits on PCI and has none. The addresses are written into the
//! definition, so a guest sees the same devices at the same places at every start, and
//! the command line only follows them.
//!
//! Places, as libvirt chooses them:
//! - fixed ones first: the host bridge (slot 0), PIIX3 on pc (slot 1: ISA, IDE at 1.1, a
//!   piix3-uhci USB controller at 1.2), ICH9 on q35 (0x1f: LPC, SATA at 0x1f.2, SMBus),
//!   the primary video card at slot 2 (pc) or 1 (q35) when it is free;
//! - then PCI controllers (root ports side by side as functions of one multifunction slot,
//!   eight per slot, with `port` = slot·8 + function and `chassis` = index), interfaces,
//!   device controllers (USB, virtio-serial, SATA on pc), virtio disks, host devices
//!   (`<hostdev>`), the balloon, RNGs, videos, virtio inputs and the other platform
//!   devices, in that order, each in document order.
//! - On q35 a PCI Express device (virtio, qemu-xhci, e1000e) gets a root port of its own
//!   (slot 0 of the port's bus), and a conventional PCI device (rtl8139, e1000, a second
//!   video card) a slot on a pcie-to-pci-bridge. When none is free a port or bridge is
//!   added to the definition, as libvirt does, except for a device plugged into a running
//!   guest: a root port cannot be plugged, so the definition needs a spare one (tools such
//!   as virt-install add spare ones).
//! - On pc everything goes on the root bus, or on a pci-bridge the definition has.

use std::collections::{BTreeMap, BTreeSet};

use vireo_xml::{
    Address, AddressType, Controller, ControllerType, DiskBus, Domain, InputBus, MemballoonModel,
    RngModel, VideoModelType,
};

/// The chipset family of a machine type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// i440FX + PIIX3: `pci.0`, built-in IDE with `ide.0`/`ide.1`.
    Pc,
    /// Q35 + ICH9: `pcie.0`, built-in AHCI with `ide.0` to `ide.5`, no IDE.
    Q35,
}

/// The family of a machine type name (`pc`, `pc-i440fx-7.2`, `pc-1.0`, `q35`, `pc-q35-7.2`).
pub fn machine_family(name: &str) -> Option<Family> {
    if name == "q35" || name.starts_with("pc-q35-") {
        Some(Family::Q35)
    } else if name == "pc"
        || name.starts_with("pc-i440fx-")
        || name
            .strip_prefix("pc-")
            .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
    {
        Some(Family::Pc)
    } else {
        None
    }
}

/// What a PCI controller adds: a bus of some kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusKind {
    PciRoot,
    PcieRoot,
    PcieRootPort,
    PciBridge,
    PcieToPciBridge,
}

impl BusKind {
    /// The kind a `<controller type='pci' model=…>` makes.
    pub fn of_model(model: &str) -> Option<BusKind> {
        Some(match model {
            "pci-root" => BusKind::PciRoot,
            "pcie-root" => BusKind::PcieRoot,
            "pcie-root-port" => BusKind::PcieRootPort,
            "pci-bridge" => BusKind::PciBridge,
            "pcie-to-pci-bridge" => BusKind::PcieToPciBridge,
            _ => return None,
        })
    }

    /// The QEMU device of a controller of this kind (none for the roots).
    pub fn qemu_device(self) -> Option<&'static str> {
        match self {
            BusKind::PciRoot | BusKind::PcieRoot => None,
            BusKind::PcieRootPort => Some("pcie-root-port"),
            BusKind::PciBridge => Some("pci-bridge"),
            BusKind::PcieToPciBridge => Some("pcie-pci-bridge"),
        }
    }

    /// The slots of the bus a device may use.
    pub fn slots(self) -> std::ops::RangeInclusive<u32> {
        match self {
            BusKind::PcieRootPort => 0..=0,
            _ => 1..=31,
        }
    }

    /// Whether a device of `kind` belongs on this bus when Vireo chooses.
    fn takes(self, kind: Conn, family: Family) -> bool {
        matches!(
            (family, self, kind),
            (Family::Pc, BusKind::PciRoot | BusKind::PciBridge, _)
                | (Family::Q35, BusKind::PcieRootPort, Conn::Pcie)
                | (
                    Family::Q35,
                    BusKind::PcieToPciBridge | BusKind::PciBridge,
                    Conn::Pci
                )
                | (Family::Q35, BusKind::PcieRoot, Conn::Port)
        )
    }
}

/// How a device plugs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conn {
    /// A PCI Express endpoint: a root port on q35.
    Pcie,
    /// Conventional PCI: a PCI bus (a bridge on q35).
    Pci,
    /// A root port itself: the root complex.
    Port,
}

/// libvirt's longest list of PCI controllers the addresses allow (buses 0 to 255).
const MAX_BUSES: u32 = 256;

/// One PCI function's place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PciSlot {
    pub bus: u32,
    pub slot: u32,
    pub function: u32,
}

/// Reads a `<address type='pci'>`; `None` for another type.
pub fn parse_address(a: &Address, what: &str) -> Result<Option<(PciSlot, bool)>, String> {
    if a.addr_type != AddressType::Pci {
        return Ok(None);
    }
    let num = |key: &str, default: Option<u64>, max: u64| -> Result<u32, String> {
        let v = match a.get(key) {
            None => default.ok_or_else(|| format!("{what}: PCI address without '{key}'"))?,
            Some(raw) => a
                .get_num(key)
                .ok_or_else(|| format!("{what}: invalid PCI address {key} '{raw}'"))?,
        };
        if v > max {
            return Err(format!("{what}: PCI address {key} {v:#x} is out of range"));
        }
        Ok(v as u32)
    };
    if num("domain", Some(0), 0xffff)? != 0 {
        return Err(format!("{what}: only PCI domain 0 is available"));
    }
    let at = PciSlot {
        bus: num("bus", Some(0), 0xff)?,
        slot: num("slot", None, 0x1f)?,
        function: num("function", Some(0), 7)?,
    };
    let multi = match a.get("multifunction") {
        None | Some("off") => false,
        Some("on") => true,
        Some(other) => return Err(format!("{what}: invalid multifunction '{other}'")),
    };
    Ok(Some((at, multi)))
}

/// The `<address type='pci'>` of a place, written as libvirt writes it.
pub fn address(at: PciSlot, multifunction: bool) -> Address {
    let mut a = Address::pci(0, at.bus, at.slot, at.function);
    if multifunction {
        a.attrs.push(("multifunction".into(), "on".into()));
    }
    a
}

/// The buses of a definition and the functions taken on them.
pub struct Topology {
    family: Family,
    /// Bus number (the controller's index) → its kind.
    pub buses: BTreeMap<u32, BusKind>,
    used: BTreeSet<PciSlot>,
}

impl Topology {
    /// Reads the buses and every PCI address of a definition that has been through
    /// [`assign`] (or that a running guest has), checking them.
    pub fn of(def: &Domain, family: Family) -> Result<Topology, String> {
        let mut t = Topology {
            family,
            buses: BTreeMap::new(),
            used: BTreeSet::new(),
        };
        t.read_buses(def)?;
        t.reserve_builtin();
        for (what, a) in addresses(def, family) {
            t.reserve(&a, &what)?;
        }
        Ok(t)
    }

    fn read_buses(&mut self, def: &Domain) -> Result<(), String> {
        let root = match self.family {
            Family::Pc => BusKind::PciRoot,
            Family::Q35 => BusKind::PcieRoot,
        };
        self.buses.insert(0, root);
        for c in def
            .devices
            .controllers
            .iter()
            .filter(|c| c.ctl_type == ControllerType::Pci)
        {
            let model = c.model.as_deref().unwrap_or("");
            let kind = BusKind::of_model(model).ok_or_else(|| {
                format!(
                    "<controller type='pci' model='{model}'> is not supported (pci-root, \
                     pcie-root, pcie-root-port, pci-bridge, pcie-to-pci-bridge)"
                )
            })?;
            let index = c.index.unwrap_or(0);
            match (index, kind) {
                (0, k) if k == root => {}
                (0, _) => {
                    return Err(format!(
                        "<controller type='pci' index='0'> must be model '{}' on this machine",
                        root_model(self.family)
                    ))
                }
                (_, BusKind::PciRoot | BusKind::PcieRoot) => {
                    return Err(format!(
                        "<controller type='pci' model='{model}'> must have index 0"
                    ))
                }
                (i, _) if i >= MAX_BUSES => {
                    return Err(format!(
                        "<controller type='pci' index='{i}'> is out of range"
                    ))
                }
                (i, k) => {
                    if (k == BusKind::PcieRootPort || k == BusKind::PcieToPciBridge)
                        && self.family == Family::Pc
                    {
                        return Err(format!(
                            "<controller type='pci' model='{model}'> needs a q35 machine"
                        ));
                    }
                    if self.buses.insert(i, k).is_some() {
                        return Err(format!("<controller type='pci' index='{i}'> appears twice"));
                    }
                }
            }
        }
        Ok(())
    }

    /// The chipset's own functions.
    fn reserve_builtin(&mut self) {
        for f in 0..8 {
            self.used.insert(PciSlot {
                bus: 0,
                slot: 0,
                function: f,
            });
        }
        let fixed: &[(u32, u32)] = match self.family {
            Family::Pc => &[(1, 0), (1, 1), (1, 3)],
            Family::Q35 => &[(0x1f, 0), (0x1f, 2), (0x1f, 3)],
        };
        for &(slot, function) in fixed {
            self.used.insert(PciSlot {
                bus: 0,
                slot,
                function,
            });
        }
    }

    fn reserve(&mut self, a: &Address, what: &str) -> Result<(), String> {
        let Some((at, _)) = parse_address(a, what)? else {
            return Ok(());
        };
        let Some(kind) = self.buses.get(&at.bus) else {
            return Err(format!(
                "{what}: PCI bus {:#04x} does not exist (no <controller type='pci' index='{}'>)",
                at.bus, at.bus
            ));
        };
        if !kind.slots().contains(&at.slot) {
            return Err(format!(
                "{what}: slot {:#04x} is not usable on PCI bus {:#04x} (slots {:#x} to {:#x})",
                at.slot,
                at.bus,
                kind.slots().start(),
                kind.slots().end()
            ));
        }
        if !self.used.insert(at) {
            return Err(format!(
                "{what}: PCI address {:#04x}:{:#04x}.{:x} is already in use",
                at.bus, at.slot, at.function
            ));
        }
        Ok(())
    }

    fn slot_free(&self, bus: u32, slot: u32) -> bool {
        !self.used.iter().any(|u| u.bus == bus && u.slot == slot)
    }

    /// Takes function 0 of the first free slot on a bus that takes `kind`.
    fn take(&mut self, kind: Conn) -> Option<PciSlot> {
        let buses: Vec<(u32, BusKind)> = self.buses.iter().map(|(i, k)| (*i, *k)).collect();
        for (bus, k) in buses {
            if !k.takes(kind, self.family) {
                continue;
            }
            if let Some(slot) = k.slots().find(|&s| self.slot_free(bus, s)) {
                let at = PciSlot {
                    bus,
                    slot,
                    function: 0,
                };
                self.used.insert(at);
                return Some(at);
            }
        }
        None
    }

    /// Takes a specific place when free.
    fn take_at(&mut self, at: PciSlot) -> bool {
        self.buses.contains_key(&at.bus) && self.used.insert(at)
    }

    /// A function for a new root port: next to the root ports already laid side by side,
    /// or function 0 (multifunction) of a free slot of the root complex.
    fn take_port_function(&mut self, last: &mut Option<PciSlot>) -> Option<(PciSlot, bool)> {
        if let Some(prev) = *last {
            let next = PciSlot {
                function: prev.function + 1,
                ..prev
            };
            if prev.function < 7 && self.used.insert(next) {
                *last = Some(next);
                return Some((next, false));
            }
        }
        let at = self.take(Conn::Port)?;
        *last = Some(at);
        Some((at, true))
    }

    /// The place of a device of `kind` being plugged into a running guest.
    pub fn place_hotplug(&mut self, pcie: bool, what: &str) -> Result<PciSlot, String> {
        let kind = if pcie { Conn::Pcie } else { Conn::Pci };
        self.take(kind).ok_or_else(|| match (self.family, kind) {
            (Family::Q35, Conn::Pcie) => format!(
                "{what}: no free PCIe root port to plug the device into; define the domain \
                 with spare <controller type='pci' model='pcie-root-port'/> controllers"
            ),
            (Family::Q35, _) => format!(
                "{what}: no free slot on a pcie-to-pci-bridge to plug this conventional PCI \
                 device into"
            ),
            (Family::Pc, _) => format!("{what}: no free PCI slot left"),
        })
    }
}

fn root_model(family: Family) -> &'static str {
    match family {
        Family::Pc => "pci-root",
        Family::Q35 => "pcie-root",
    }
}

/// Whether a guest NIC model is a PCI Express device.
pub fn nic_is_pcie(model: Option<&str>) -> bool {
    matches!(model, Some("virtio" | "e1000e"))
}

/// Every PCI address a definition gives, with what it belongs to.
fn addresses(def: &Domain, family: Family) -> Vec<(String, Address)> {
    let d = &def.devices;
    let mut out = Vec::new();
    let mut push = |what: String, a: &Option<Address>| {
        if let Some(a) = a {
            out.push((what, a.clone()));
        }
    };
    for c in &d.controllers {
        // The chipset's own IDE (pc) and SATA (q35) functions are reserved already.
        let builtin = c.index.unwrap_or(0) == 0
            && matches!(
                (family, c.ctl_type),
                (Family::Pc, ControllerType::Ide) | (Family::Q35, ControllerType::Sata)
            );
        if !builtin {
            push(controller_name(c), &c.address);
        }
    }
    for disk in &d.disks {
        push(format!("<disk> '{}'", disk.target.dev), &disk.address);
    }
    for (i, n) in d.interfaces.iter().enumerate() {
        push(format!("<interface> {i}"), &n.address);
    }
    for v in &d.videos {
        push("<video>".into(), &v.address);
    }
    if let Some(m) = &d.memballoon {
        push("<memballoon>".into(), &m.address);
    }
    for r in &d.rngs {
        push("<rng>".into(), &r.address);
    }
    for i in &d.inputs {
        push(format!("<input type='{}'>", i.input_type), &i.address);
    }
    for c in d.serials.iter().chain(&d.consoles).chain(&d.channels) {
        push("<serial>".into(), &c.address);
    }
    for (p, _, what) in platform_pci(d) {
        if let Some(a) = platform_address(d, p) {
            out.push((what, a.clone()));
        }
    }
    out
}

fn controller_name(c: &Controller) -> String {
    format!(
        "<controller type='{}' index='{}'>",
        c.ctl_type,
        c.index.unwrap_or(0)
    )
}

/// Whether the USB controller is one of ICH9's USB 1 companions (placed in their
/// master's slot by the command line).
fn is_companion(c: &Controller) -> bool {
    c.ctl_type == ControllerType::Usb && c.master_startport.is_some()
}

/// Completes the PCI side of a definition (see the module documentation). Leaves the
/// definition unchanged on error.
pub fn assign(def: &mut Domain, family: Family) -> Result<(), String> {
    let mut new = def.clone();
    complete_controllers(&mut new, family)?;
    let mut t = Topology::of(&new, family)?;
    let before = new.devices.controllers.len();
    place_all(&mut new, &mut t, family)?;
    // Controllers added for room go after the last PCI controller that was there, as
    // libvirt keeps the controllers of a type together.
    let added = new.devices.controllers.split_off(before);
    let pos = new
        .devices
        .controllers
        .iter()
        .rposition(|c| c.ctl_type == ControllerType::Pci)
        .map_or(new.devices.controllers.len(), |p| p + 1);
    new.devices.controllers.splice(pos..pos, added);
    *def = new;
    Ok(())
}

/// The root controller, indexes, model names; the controllers devices need.
fn complete_controllers(def: &mut Domain, family: Family) -> Result<(), String> {
    let d = &mut def.devices;
    let has_root = d.controllers.iter().any(|c| {
        c.ctl_type == ControllerType::Pci
            && (c.index == Some(0) || c.model.as_deref() == Some(root_model(family)))
    });
    if !has_root {
        let root = Controller {
            ctl_type: ControllerType::Pci,
            index: Some(0),
            model: Some(root_model(family).into()),
            ..blank_controller()
        };
        match d
            .controllers
            .iter()
            .position(|c| c.ctl_type == ControllerType::Pci)
        {
            Some(i) => d.controllers.insert(i, root),
            None => d.controllers.push(root),
        }
    }
    // Controllers the guest's devices need and the definition does not name.
    let needs_vserial = !d.channels.is_empty()
        || d.consoles
            .iter()
            .any(|c| c.target.as_ref().and_then(|t| t.target_type.as_deref()) == Some("virtio"));
    if needs_vserial
        && !d
            .controllers
            .iter()
            .any(|c| c.ctl_type == ControllerType::VirtioSerial)
    {
        d.controllers.push(Controller {
            ctl_type: ControllerType::VirtioSerial,
            index: Some(0),
            ..blank_controller()
        });
    }
    // SCSI disks need a SCSI controller: libvirt's default model for x86 is lsilogic.
    let scsi_disks = d.disks.iter().any(|disk| {
        disk.target.bus == Some(DiskBus::Scsi)
            || (disk.target.bus.is_none() && disk.target.dev.starts_with("sd"))
    });
    if scsi_disks
        && !d
            .controllers
            .iter()
            .any(|c| c.ctl_type == ControllerType::Scsi)
    {
        d.controllers.push(Controller {
            ctl_type: ControllerType::Scsi,
            index: Some(0),
            model: Some("lsilogic".into()),
            ..blank_controller()
        });
    }
    // Indexes: the first free one of each type, in document order.
    let mut taken: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    for c in d.controllers.iter().filter(|c| c.index.is_some()) {
        let i = c.index.unwrap_or(0);
        if !taken.entry(c.ctl_type.to_string()).or_default().insert(i) && !is_companion(c) {
            // USB companions share their master's index.
            if c.ctl_type != ControllerType::Usb {
                return Err(format!("{} appears twice", controller_name(c)));
            }
        }
    }
    for c in d.controllers.iter_mut().filter(|c| c.index.is_none()) {
        let set = taken.entry(c.ctl_type.to_string()).or_default();
        let first_free = (0..).find(|i| !set.contains(i)).unwrap_or(0);
        let i = if is_companion(c) { 0 } else { first_free };
        set.insert(i);
        c.index = Some(i);
    }
    // SCSI: the model a default controller is.
    for c in d
        .controllers
        .iter_mut()
        .filter(|c| c.ctl_type == ControllerType::Scsi && c.model.is_none())
    {
        c.model = Some("lsilogic".into());
    }
    // USB: the model a default controller is.
    for c in d
        .controllers
        .iter_mut()
        .filter(|c| c.ctl_type == ControllerType::Usb && c.model.is_none())
    {
        c.model = Some(
            match family {
                Family::Pc => "piix3-uhci",
                Family::Q35 => "qemu-xhci",
            }
            .into(),
        );
    }
    // PCI controllers: the QEMU model they are, and a chassis for those that have one.
    for c in d
        .controllers
        .iter_mut()
        .filter(|c| c.ctl_type == ControllerType::Pci)
    {
        let Some(kind) = c.model.as_deref().and_then(BusKind::of_model) else {
            continue; // Topology::of names it.
        };
        if c.model_name.is_none() {
            c.model_name = kind.qemu_device().map(|m| match kind {
                BusKind::PcieToPciBridge => "pcie-pci-bridge".to_string(),
                _ => m.to_string(),
            });
        }
        if kind == BusKind::PciBridge && c.target_attrs.is_empty() {
            c.target_attrs = vec![("chassisNr".into(), c.index.unwrap_or(0).to_string())];
        }
    }
    Ok(())
}

fn blank_controller() -> Controller {
    Controller {
        ctl_type: ControllerType::Pci,
        index: None,
        model: None,
        ports: None,
        vectors: None,
        model_name: None,
        driver_attrs: Vec::new(),
        master_startport: None,
        target_attrs: Vec::new(),
        alias: None,
        address: None,
    }
}

/// Which device of the definition a place is for.
#[derive(Clone, Copy)]
enum Dev {
    Controller(usize),
    Interface(usize),
    Disk(usize),
    Balloon,
    Rng(usize),
    Video(usize),
    Input(usize),
    Platform(Platform),
}

/// A platform device that sits on PCI (`crates/qemu/src/cmdline/platform.rs`).
#[derive(Clone, Copy)]
pub enum Platform {
    Filesystem(usize),
    Sound(usize),
    Watchdog(usize),
    Panic(usize),
    Shmem(usize),
    Vsock,
    Iommu,
    /// A `<hostdev>` on the guest's PCI bus: a host PCI function or a vfio-pci mediated
    /// device (`crates/qemu/src/cmdline/hostdev.rs`).
    Hostdev(usize),
}

/// The platform devices of `d` that sit on PCI, how they plug in, and what they are.
pub fn platform_pci(d: &vireo_xml::Devices) -> Vec<(Platform, Conn, String)> {
    use vireo_xml::{IommuModel, PanicModel, SoundModel, WatchdogModel};
    let mut out = Vec::new();
    for i in 0..d.filesystems.len() {
        out.push((Platform::Filesystem(i), Conn::Pcie, "<filesystem>".into()));
    }
    for (i, s) in d.sounds.iter().enumerate() {
        if matches!(
            s.model,
            SoundModel::Ich6 | SoundModel::Ich9 | SoundModel::Ac97 | SoundModel::Es1370
        ) {
            out.push((
                Platform::Sound(i),
                Conn::Pci,
                format!("<sound model='{}'>", s.model),
            ));
        }
    }
    for (i, w) in d.watchdogs.iter().enumerate() {
        if w.model == WatchdogModel::I6300esb {
            out.push((Platform::Watchdog(i), Conn::Pci, "<watchdog>".into()));
        }
    }
    for (i, p) in d.panics.iter().enumerate() {
        if p.model == Some(PanicModel::Pvpanic) {
            out.push((Platform::Panic(i), Conn::Pci, "<panic>".into()));
        }
    }
    for i in 0..d.shmems.len() {
        out.push((Platform::Shmem(i), Conn::Pci, "<shmem>".into()));
    }
    if d.vsock.is_some() {
        out.push((Platform::Vsock, Conn::Pcie, "<vsock>".into()));
    }
    if d.iommu
        .as_ref()
        .is_some_and(|i| i.model == IommuModel::Virtio)
    {
        out.push((Platform::Iommu, Conn::Pcie, "<iommu>".into()));
    }
    out.extend(hostdev_pci(d));
    out
}

/// The host devices of `d` on the guest's PCI bus, as PCI Express endpoints (a root port
/// each on q35, as libvirt gives a host function it cannot look into, and a mediated one).
pub fn hostdev_pci(d: &vireo_xml::Devices) -> Vec<(Platform, Conn, String)> {
    d.hostdevs
        .iter()
        .enumerate()
        .filter(|(_, h)| h.on_guest_pci())
        .map(|(i, h)| {
            (
                Platform::Hostdev(i),
                Conn::Pcie,
                format!("<hostdev> {}", h.describe()),
            )
        })
        .collect()
}

/// The address of a platform device.
pub fn platform_address(d: &vireo_xml::Devices, p: Platform) -> Option<&Address> {
    match p {
        Platform::Filesystem(i) => d.filesystems.get(i)?.address.as_ref(),
        Platform::Sound(i) => d.sounds.get(i)?.address.as_ref(),
        Platform::Watchdog(i) => d.watchdogs.get(i)?.address.as_ref(),
        Platform::Panic(i) => d.panics.get(i)?.address.as_ref(),
        Platform::Shmem(i) => d.shmems.get(i)?.address.as_ref(),
        Platform::Vsock => d.vsock.as_ref()?.address.as_ref(),
        Platform::Iommu => d.iommu.as_ref()?.address.as_ref(),
        Platform::Hostdev(i) => d.hostdevs.get(i)?.address.as_ref(),
    }
}

fn platform_slot(d: &mut vireo_xml::Devices, p: Platform) -> Option<&mut Option<Address>> {
    Some(match p {
        Platform::Filesystem(i) => &mut d.filesystems.get_mut(i)?.address,
        Platform::Sound(i) => &mut d.sounds.get_mut(i)?.address,
        Platform::Watchdog(i) => &mut d.watchdogs.get_mut(i)?.address,
        Platform::Panic(i) => &mut d.panics.get_mut(i)?.address,
        Platform::Shmem(i) => &mut d.shmems.get_mut(i)?.address,
        Platform::Vsock => &mut d.vsock.as_mut()?.address,
        Platform::Iommu => &mut d.iommu.as_mut()?.address,
        Platform::Hostdev(i) => &mut d.hostdevs.get_mut(i)?.address,
    })
}

fn set_address(def: &mut Domain, dev: Dev, a: Address) {
    let d = &mut def.devices;
    let slot = match dev {
        Dev::Controller(i) => &mut d.controllers[i].address,
        Dev::Interface(i) => &mut d.interfaces[i].address,
        Dev::Disk(i) => &mut d.disks[i].address,
        Dev::Balloon => match d.memballoon.as_mut() {
            Some(m) => &mut m.address,
            None => return,
        },
        Dev::Rng(i) => &mut d.rngs[i].address,
        Dev::Video(i) => &mut d.videos[i].address,
        Dev::Input(i) => &mut d.inputs[i].address,
        Dev::Platform(p) => match platform_slot(d, p) {
            Some(s) => s,
            None => return,
        },
    };
    *slot = Some(a);
}

/// The devices that want a PCI address and have none, in libvirt's order, with how they
/// plug in.
fn wanted(def: &Domain, family: Family) -> Vec<(Dev, Conn, String)> {
    let d = &def.devices;
    let mut out = Vec::new();
    for (i, n) in d.interfaces.iter().enumerate() {
        if n.address.is_none() {
            let kind = if nic_is_pcie(n.model.as_deref()) {
                Conn::Pcie
            } else {
                Conn::Pci
            };
            out.push((Dev::Interface(i), kind, format!("<interface> {i}")));
        }
    }
    for (i, c) in d.controllers.iter().enumerate() {
        if c.address.is_some() || is_companion(c) {
            continue;
        }
        let kind = match (c.ctl_type, c.model.as_deref()) {
            (ControllerType::Usb, Some("none")) => continue,
            (ControllerType::Usb, Some("qemu-xhci" | "nec-xhci")) => Conn::Pcie,
            (ControllerType::Usb, _) => Conn::Pci,
            (ControllerType::VirtioSerial, _) => Conn::Pcie,
            (ControllerType::Scsi, Some("virtio-scsi")) => Conn::Pcie,
            (ControllerType::Scsi, _) => Conn::Pci,
            (ControllerType::Sata, _) if family == Family::Pc => Conn::Pci,
            _ => continue,
        };
        out.push((Dev::Controller(i), kind, controller_name(c)));
    }
    for (i, disk) in d.disks.iter().enumerate() {
        let virtio = disk.target.bus == Some(DiskBus::Virtio)
            || (disk.target.bus.is_none() && disk.target.dev.starts_with("vd"));
        if virtio && disk.address.is_none() {
            out.push((
                Dev::Disk(i),
                Conn::Pcie,
                format!("<disk> '{}'", disk.target.dev),
            ));
        }
    }
    // Host devices after the disks, as libvirt places them.
    for (p, conn, what) in hostdev_pci(d) {
        if platform_address(d, p).is_none() {
            out.push((Dev::Platform(p), conn, what));
        }
    }
    if let Some(m) = &d.memballoon {
        if m.model == MemballoonModel::Virtio && m.address.is_none() {
            out.push((Dev::Balloon, Conn::Pcie, "<memballoon>".into()));
        }
    }
    for (i, r) in d.rngs.iter().enumerate() {
        if r.model == RngModel::Virtio && r.address.is_none() {
            out.push((Dev::Rng(i), Conn::Pcie, "<rng>".into()));
        }
    }
    for (i, v) in d.videos.iter().enumerate() {
        let none = v
            .model
            .as_ref()
            .is_some_and(|m| m.model_type == VideoModelType::None);
        if v.address.is_none() && !none {
            out.push((Dev::Video(i), Conn::Pci, "<video>".into()));
        }
    }
    for (i, inp) in d.inputs.iter().enumerate() {
        if inp.bus == Some(InputBus::Virtio) && inp.address.is_none() {
            out.push((
                Dev::Input(i),
                Conn::Pcie,
                format!("<input type='{}'>", inp.input_type),
            ));
        }
    }
    for (p, conn, what) in platform_pci(d) {
        if platform_address(d, p).is_none() && !matches!(p, Platform::Hostdev(_)) {
            out.push((Dev::Platform(p), conn, what));
        }
    }
    out
}

fn place_all(def: &mut Domain, t: &mut Topology, family: Family) -> Result<(), String> {
    // Fixed places: PIIX3's USB function, the primary video card's slot.
    for i in 0..def.devices.controllers.len() {
        let c = &def.devices.controllers[i];
        let fixed = match (family, c.ctl_type, c.model.as_deref(), c.index) {
            (Family::Pc, ControllerType::Usb, Some("piix3-uhci"), Some(0)) => Some((1, 2)),
            (Family::Pc, ControllerType::Ide, _, Some(0)) => Some((1, 1)),
            (Family::Q35, ControllerType::Sata, _, Some(0)) => Some((0x1f, 2)),
            // ICH9's USB 2 controller where real Q35 boards have it, when free.
            (Family::Q35, ControllerType::Usb, Some("ich9-ehci1"), _) if t.slot_free(0, 0x1d) => {
                Some((0x1d, 7))
            }
            _ => None,
        };
        if let (Some((slot, function)), None) = (fixed, &c.address) {
            let at = PciSlot {
                bus: 0,
                slot,
                function,
            };
            // IDE and SATA are the chipset's own (reserved already); the USB function is
            // taken here when free.
            if matches!(c.ctl_type, ControllerType::Ide | ControllerType::Sata) || t.take_at(at) {
                set_address(def, Dev::Controller(i), address(at, false));
            }
        }
    }
    if let Some(v) = def.devices.videos.first() {
        let none = v
            .model
            .as_ref()
            .is_some_and(|m| m.model_type == VideoModelType::None);
        let slot = match family {
            Family::Pc => 2,
            Family::Q35 => 1,
        };
        let at = PciSlot {
            bus: 0,
            slot,
            function: 0,
        };
        if v.address.is_none() && !none && t.slot_free(0, slot) && t.take_at(at) {
            set_address(def, Dev::Video(0), address(at, false));
        }
    }
    // ICH9's HD audio where the chipset has it (libvirt's place too), when free.
    if family == Family::Q35 {
        let ich9 = def
            .devices
            .sounds
            .iter()
            .position(|s| s.model == vireo_xml::SoundModel::Ich9 && s.address.is_none());
        let at = PciSlot {
            bus: 0,
            slot: 0x1b,
            function: 0,
        };
        if let Some(i) = ich9 {
            if t.slot_free(0, 0x1b) && t.take_at(at) {
                set_address(def, Dev::Platform(Platform::Sound(i)), address(at, false));
            }
        }
    }
    // PCI controllers: root ports side by side, bridges where they plug in.
    place_pci_controllers(def, t)?;
    // Devices, in libvirt's order.
    for (dev, kind, what) in wanted(def, family) {
        let mut at = match t.take(kind) {
            Some(at) => at,
            None => add_bus_for(def, t, kind, &what)?,
        };
        if let Dev::Controller(i) = dev {
            // ICH9's USB 2 controller is function 7 of its slot; its USB 1 companions
            // take functions 0 to 2 there.
            if def.devices.controllers[i].model.as_deref() == Some("ich9-ehci1") {
                at.function = 7;
            }
        }
        set_address(def, dev, address(at, false));
    }
    Ok(())
}

/// Places the PCI controllers that have no address, and writes the root ports' targets.
fn place_pci_controllers(def: &mut Domain, t: &mut Topology) -> Result<(), String> {
    let mut last_port: Option<PciSlot> = None;
    let mut order: Vec<usize> = (0..def.devices.controllers.len())
        .filter(|&i| def.devices.controllers[i].ctl_type == ControllerType::Pci)
        .collect();
    order.sort_by_key(|&i| def.devices.controllers[i].index);
    for i in order {
        let c = &def.devices.controllers[i];
        let Some(kind) = c.model.as_deref().and_then(BusKind::of_model) else {
            continue;
        };
        let what = controller_name(c);
        if c.address.is_none() {
            let placed = match kind {
                BusKind::PciRoot | BusKind::PcieRoot => None,
                BusKind::PcieRootPort => Some(t.take_port_function(&mut last_port)),
                BusKind::PcieToPciBridge => Some(t.take(Conn::Pcie).map(|a| (a, false))),
                BusKind::PciBridge => Some(t.take(Conn::Pci).map(|a| (a, false))),
            };
            if let Some(p) = placed {
                let (at, multi) =
                    p.ok_or_else(|| format!("{what}: no free PCI slot left for it"))?;
                set_address(def, Dev::Controller(i), address(at, multi));
            }
        }
        root_port_target(&mut def.devices.controllers[i], kind);
    }
    Ok(())
}

/// `<target chassis=N port=0xSF>` of a root port, from its index and its own place.
fn root_port_target(c: &mut Controller, kind: BusKind) {
    if kind != BusKind::PcieRootPort || !c.target_attrs.is_empty() {
        return;
    }
    let Some(Ok(Some((at, _)))) = c.address.as_ref().map(|a| parse_address(a, "")) else {
        return;
    };
    c.target_attrs = vec![
        ("chassis".into(), c.index.unwrap_or(0).to_string()),
        ("port".into(), format!("{:#x}", at.slot * 8 + at.function)),
    ];
}

/// Adds the controller that makes room for a device of `kind` (q35: a root port, or a
/// pcie-to-pci-bridge on a root port of its own), and takes a place on it.
fn add_bus_for(
    def: &mut Domain,
    t: &mut Topology,
    kind: Conn,
    what: &str,
) -> Result<PciSlot, String> {
    let full = || format!("{what}: no free PCI slot left");
    if t.family == Family::Pc || kind == Conn::Port {
        return Err(full());
    }
    let model = match kind {
        Conn::Pcie => BusKind::PcieRootPort,
        _ => BusKind::PcieToPciBridge,
    };
    // The bridge itself needs a root port.
    let (at, multi) = match model {
        BusKind::PcieRootPort => {
            // Next to the last root port when its slot has room, as libvirt aggregates them.
            let mut last = last_root_port(def);
            t.take_port_function(&mut last).ok_or_else(full)?
        }
        _ => (
            match t.take(Conn::Pcie) {
                Some(a) => a,
                None => add_bus_for(def, t, Conn::Pcie, what)?,
            },
            false,
        ),
    };
    let index = (1..MAX_BUSES)
        .find(|i| !t.buses.contains_key(i))
        .ok_or_else(full)?;
    let name = model.qemu_device().unwrap_or_default().to_string();
    let mut c = Controller {
        ctl_type: ControllerType::Pci,
        index: Some(index),
        model: Some(
            match model {
                BusKind::PcieRootPort => "pcie-root-port",
                _ => "pcie-to-pci-bridge",
            }
            .into(),
        ),
        model_name: Some(name),
        address: Some(address(at, multi)),
        ..blank_controller()
    };
    root_port_target(&mut c, model);
    // At the end for now, so that the positions of devices waiting for a place hold;
    // [`assign`] then moves it beside the other PCI controllers.
    def.devices.controllers.push(c);
    t.buses.insert(index, model);
    t.take(kind).ok_or_else(full)
}

/// The place of the root port with the highest index, to put a new one beside it.
fn last_root_port(def: &Domain) -> Option<PciSlot> {
    def.devices
        .controllers
        .iter()
        .filter(|c| {
            c.ctl_type == ControllerType::Pci && c.model.as_deref() == Some("pcie-root-port")
        })
        .max_by_key(|c| c.index)
        .and_then(|c| c.address.as_ref())
        .and_then(|a| parse_address(a, "").ok().flatten())
        .filter(|(at, _)| at.bus == 0)
        .map(|(at, _)| at)
}

#[cfg(test)]
mod tests;
