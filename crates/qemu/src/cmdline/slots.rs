//! PCI slot bookkeeping for the command line ([`PciBus`]) and the place of hot-plugged
//! PCI devices. The PCI topology itself (which device goes where) is [`crate::pci`]'s.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use vireo_xml::{Address, AddressType};

use super::{unsupported, Result};
use crate::pci::Family;

/// Slot bookkeeping for the command line. [`crate::pci::assign`] has given every device
/// of the definition its place (and checked the places); this only writes them, and finds
/// slots on the root bus for what the command line adds on its own (a USB controller for
/// USB inputs, an AHCI controller for SATA disks on pc).
pub(super) struct PciBus {
    root: &'static str,
    pub(super) used: BTreeSet<(u32, u32, u32)>,
}

pub(super) struct PciAddr {
    pub(super) bus: u32,
    pub(super) slot: u32,
    pub(super) function: u32,
    pub(super) multifunction: bool,
}

impl PciBus {
    pub(super) fn new(family: Family) -> PciBus {
        let mut used = BTreeSet::new();
        // Slot 0: the host bridge.
        for f in 0..8 {
            used.insert((0, 0, f));
        }
        let root = match family {
            Family::Pc => {
                // PIIX3: ISA bridge, IDE, ACPI/PM. Function 2 is the USB controller's place.
                used.extend([(0, 1, 0), (0, 1, 1), (0, 1, 3)]);
                "pci.0"
            }
            Family::Q35 => {
                // ICH9: LPC, AHCI, SMBus.
                used.extend([(0, 0x1f, 0), (0, 0x1f, 2), (0, 0x1f, 3)]);
                "pcie.0"
            }
        };
        PciBus { root, used }
    }

    pub(super) fn parse(addr: &Address, what: &str) -> Result<PciAddr> {
        match crate::pci::parse_address(addr, what) {
            Ok(Some((at, multifunction))) => Ok(PciAddr {
                bus: at.bus,
                slot: at.slot,
                function: at.function,
                multifunction,
            }),
            Ok(None) => unsupported(format!(
                "{what}: address type '{}' is not valid for a PCI device",
                addr.addr_type
            )),
            Err(e) => unsupported(e),
        }
    }

    /// Claims an address written in the definition (before any automatic placement).
    pub(super) fn reserve(&mut self, addr: &Address, what: &str) -> Result<()> {
        if addr.addr_type != AddressType::Pci {
            return Ok(());
        }
        let a = Self::parse(addr, what)?;
        if !self.used.insert((a.bus, a.slot, a.function)) {
            return unsupported(format!(
                "{what}: PCI address {:#04x}:{:#04x}.{:x} is already in use",
                a.bus, a.slot, a.function
            ));
        }
        Ok(())
    }

    /// `bus=…,addr=…[,multifunction=on]`: bus 0 is the machine's root bus, bus N the
    /// controller with index N (QEMU id `pci.N`).
    pub(super) fn format_at(
        &self,
        bus: u32,
        slot: u32,
        function: u32,
        multifunction: bool,
    ) -> String {
        let mut s = if bus == 0 {
            format!("bus={},addr={slot:#x}", self.root)
        } else {
            format!("bus=pci.{bus},addr={slot:#x}")
        };
        if function != 0 {
            s.push_str(&format!(".{function:#x}"));
        }
        if multifunction {
            s.push_str(",multifunction=on");
        }
        s
    }

    fn format(&self, slot: u32, function: u32, multifunction: bool) -> String {
        self.format_at(0, slot, function, multifunction)
    }

    /// The first slot of the root bus with no function in use (its function 0 is then
    /// taken).
    pub(super) fn free_slot(&mut self, what: &str) -> Result<u32> {
        for slot in 1..32 {
            if !self.used.iter().any(|&(b, s, _)| b == 0 && s == slot) {
                self.used.insert((0, slot, 0));
                return Ok(slot);
            }
        }
        unsupported(format!("{what}: no free PCI slot left on the root bus"))
    }

    /// The first slot with no function in use.
    pub(super) fn next_free(&mut self, what: &str) -> Result<String> {
        let slot = self.free_slot(what)?;
        Ok(self.format(slot, 0, false))
    }

    /// `bus=...,addr=...` for a PCI device: its own address (reserved already) or the next
    /// free slot.
    pub(super) fn place(&mut self, addr: Option<&Address>, what: &str) -> Result<String> {
        match addr {
            None => self.next_free(what),
            Some(a) => {
                let p = Self::parse(a, what)?;
                Ok(self.format_at(p.bus, p.slot, p.function, p.multifunction))
            }
        }
    }

    /// A fixed default such as PIIX3's USB function, when free.
    pub(super) fn place_at(&mut self, slot: u32, function: u32, what: &str) -> Result<String> {
        if self.used.insert((0, slot, function)) {
            Ok(self.format(slot, function, false))
        } else {
            self.next_free(what)
        }
    }
}

/// Puts a hot-plugged PCI device where its `<address>` says (`bus`: `pci.N` for the
/// controller of index N; on bus 0 QEMU's main bus, whatever its name), or lets QEMU
/// choose when it has none.
pub(super) fn hotplug_pci_place(v: &mut Value, addr: Option<&Address>, what: &str) -> Result<()> {
    let Some(a) = addr else { return Ok(()) };
    let p = PciBus::parse(a, what)?;
    if p.bus != 0 {
        v["bus"] = json!(format!("pci.{}", p.bus));
    }
    v["addr"] = json!(if p.function == 0 {
        format!("{:#x}", p.slot)
    } else {
        format!("{:#x}.{:#x}", p.slot, p.function)
    });
    if p.multifunction {
        v["multifunction"] = json!(true);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_slots() {
        let mut bus = PciBus::new(Family::Pc);
        assert_eq!(
            bus.place_at(1, 2, "usb").ok(),
            Some("bus=pci.0,addr=0x1.0x2".into())
        );
        assert_eq!(bus.next_free("x").ok(), Some("bus=pci.0,addr=0x2".into()));
        let a = Address::pci(0, 0, 3, 0);
        assert!(bus.reserve(&a, "y").is_ok());
        assert!(bus.reserve(&a, "z").is_err());
        assert_eq!(bus.next_free("x").ok(), Some("bus=pci.0,addr=0x4".into()));
        // Other buses are the controllers' (pci::assign checked they exist).
        assert!(bus.reserve(&Address::pci(0, 1, 0, 0), "w").is_ok());
        assert_eq!(bus.format_at(1, 0, 0, false), "bus=pci.1,addr=0x0");
        assert!(bus.reserve(&Address::pci(0, 0, 1, 0), "v").is_err());
        let mut q = PciBus::new(Family::Q35);
        assert_eq!(q.next_free("x").ok(), Some("bus=pcie.0,addr=0x1".into()));
    }
}
