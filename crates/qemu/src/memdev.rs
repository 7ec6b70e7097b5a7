//! Memory devices in a definition (`<memory model='dimm'>`, `<memory model='virtio-mem'>`):
//! how attach, detach and update-device find them and change `<memory>` with them. The
//! running VM's are its shim's (`crates/shim/src/memdev.rs`).

use vireo_driver::{DriverError, Result};
use vireo_xml::{Domain, MemSize, MemoryDevice, MemoryModel};

/// The memory device of `all` that `want` names: by alias when it has one, else by model,
/// size, node (and DIMM slot, if given), as libvirt matches them.
pub(crate) fn find(all: &[MemoryDevice], want: &MemoryDevice) -> Result<usize> {
    let slot = |m: &MemoryDevice| m.address.as_ref().and_then(|a| a.get_num("slot"));
    all.iter()
        .position(|m| match &want.alias {
            Some(a) => m.alias.as_ref() == Some(a),
            None => {
                m.model == want.model
                    && m.size_kib() == want.size_kib()
                    && m.target.node.unwrap_or(0) == want.target.node.unwrap_or(0)
                    && (slot(want).is_none() || slot(m) == slot(want))
            }
        })
        .ok_or_else(|| {
            DriverError::DeviceMissing(format!(
                "matching memory device was not found (model '{}', {} KiB)",
                want.model,
                want.size_kib()
            ))
        })
}

/// Adds memory device `m` to definition `def`: `<memory>` (and `<currentMemory>`) grow by
/// its size, within `<maxMemory>` and its slots.
pub(crate) fn add(def: &mut Domain, m: MemoryDevice) -> Result<()> {
    let Some(max) = def.max_memory.clone() else {
        return Err(DriverError::ConfigUnsupported(
            "cannot use/hotplug a memory device when domain 'maxMemory' is not defined".into(),
        ));
    };
    if def.numa_cells().is_empty() {
        return Err(DriverError::ConfigUnsupported(
            "memory devices need at least one <cpu><numa> cell".into(),
        ));
    }
    let node = m.target.node.unwrap_or(0);
    if node as usize >= def.numa_cells().len() {
        return Err(DriverError::ConfigUnsupported(format!(
            "NUMA node {node} does not exist in the domain"
        )));
    }
    let total = def.memory_kib + m.size_kib();
    if total > max.value {
        return Err(DriverError::ConfigUnsupported(format!(
            "the memory devices would take the domain to {total} KiB, above <maxMemory> ({} KiB)",
            max.value
        )));
    }
    if m.model == MemoryModel::Dimm {
        let dimms = def
            .devices
            .memories
            .iter()
            .filter(|d| d.model == MemoryModel::Dimm)
            .count();
        if dimms as u32 >= max.slots.unwrap_or(0) {
            return Err(DriverError::ConfigUnsupported(format!(
                "no free memory slot (<maxMemory slots='{}'>)",
                max.slots.unwrap_or(0)
            )));
        }
    }
    def.memory_kib = total;
    def.current_memory_kib += m.size_kib();
    def.devices.memories.push(m);
    Ok(())
}

/// Removes memory device `n` from `def`; `<memory>` shrinks by its size.
pub(crate) fn remove(def: &mut Domain, n: usize) {
    if n < def.devices.memories.len() {
        let m = def.devices.memories.remove(n);
        def.memory_kib = def.memory_kib.saturating_sub(m.size_kib());
        def.current_memory_kib = def
            .current_memory_kib
            .saturating_sub(m.size_kib())
            .min(def.memory_kib);
    }
}

/// The requested size (KiB) an update gives a virtio-mem device, checked against it.
pub(crate) fn requested(dev: &MemoryDevice, want: &MemoryDevice) -> Result<u64> {
    if dev.model != MemoryModel::VirtioMem {
        return Err(DriverError::ConfigUnsupported(format!(
            "only a virtio-mem device's requested size can change (this one is '{}')",
            dev.model
        )));
    }
    let Some(r) = want.target.requested.as_ref().map(|r| r.value) else {
        return Err(DriverError::InvalidArg(
            "the update gives no <requested> size".into(),
        ));
    };
    dev.check_requested(r).map_err(DriverError::InvalidArg)?;
    Ok(r)
}

/// Sets the requested size of virtio-mem device `n` of `def`.
pub(crate) fn set_requested(def: &mut Domain, n: usize, kib: u64) {
    if let Some(m) = def.devices.memories.get_mut(n) {
        m.target.requested = Some(MemSize::kib(kib));
    }
}
