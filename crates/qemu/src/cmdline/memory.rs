//! The guest's memory as arguments: `-m` (with room for DIMMs), the RAM backends (memfd
//! when shared or in huge pages, bound to host nodes by `<numatune>`), the NUMA nodes
//! and their distances, and the memory devices (`pc-dimm`, `virtio-mem-pci`).

use std::collections::BTreeSet;

use serde_json::{json, Value};
use vireo_xml::{Domain, MemoryDevice, MemoryModel, NumaMode};

use super::util::{json_obj, Opts};
use super::{unsupported, Builder, Result};

/// Huge page sizes of x86 hosts, in KiB.
const HUGE_PAGES_KIB: [u64; 2] = [2048, 1_048_576];

/// What a RAM backend is for: the whole guest, one NUMA cell, or a memory device.
#[derive(Clone, Copy)]
enum Region<'a> {
    Guest,
    Cell(u32),
    Device(&'a MemoryDevice),
}

/// The fields of a RAM backend object `id` of `bytes` for `region` of `def`.
fn ram_backend(
    def: &Domain,
    id: &str,
    bytes: u64,
    region: Region,
) -> Result<Vec<(&'static str, Value)>> {
    let mb = def.memory_backing.clone().unwrap_or_default();
    let source = mb.source.as_ref().map(|s| s.source_type.as_str());
    match source {
        None | Some("memfd") | Some("anonymous") => {}
        Some(other) => {
            return unsupported(format!(
                "<memoryBacking><source type='{other}'> is not supported (memfd, anonymous)"
            ))
        }
    }
    if let Some(a) = &mb.access {
        if a.mode != "shared" && a.mode != "private" {
            return unsupported(format!("<memoryBacking><access mode='{}'>", a.mode));
        }
    }
    if mb.discard {
        return unsupported(
            "<memoryBacking><discard/> needs file-backed memory, which Vireo does not use",
        );
    }
    let (cell, access) = match region {
        Region::Guest => (None, None),
        Region::Cell(c) => (
            Some(c),
            def.numa_cells()
                .get(c as usize)
                .and_then(|n| n.mem_access.as_deref()),
        ),
        Region::Device(m) => (m.target.node, m.access.as_deref()),
    };
    let shared = match access {
        Some(a) => a == "shared",
        None => mb.shared(),
    };
    let page = mb.hugepages.as_ref().and_then(|h| h.size_for(cell));
    if let Some(p) = page {
        if !HUGE_PAGES_KIB.contains(&p) {
            return unsupported(format!(
                "huge pages of {p} KiB are not supported (2048 or 1048576 KiB)"
            ));
        }
    }
    let memfd = page.is_some() || shared || source == Some("memfd");
    let mut o = vec![
        (
            "qom-type",
            json!(if memfd {
                "memory-backend-memfd"
            } else {
                "memory-backend-ram"
            }),
        ),
        ("id", json!(id)),
    ];
    if let Some(p) = page {
        o.push(("hugetlb", json!(true)));
        o.push(("hugetlbsize", json!(p * 1024)));
    }
    if memfd {
        o.push(("share", json!(shared)));
    }
    let alloc = mb.allocation.as_ref();
    let virtio_mem = matches!(region, Region::Device(m) if m.model == MemoryModel::VirtioMem);
    // Huge pages are taken at start, so a host without enough fails then, not later.
    // (virtio-mem takes its memory as it plugs it: the device preallocates.)
    if !virtio_mem && preallocated(def, cell) {
        o.push(("prealloc", json!(true)));
        if let Some(t) = alloc.and_then(|a| a.threads) {
            o.push(("prealloc-threads", json!(t)));
        }
    }
    if mb.nosharepages {
        o.push(("merge", json!(false)));
    }
    if virtio_mem {
        // virtio-mem plugs its memory in as the guest is asked to: none is reserved
        // up front.
        o.push(("reserve", json!(false)));
    }
    o.push(("size", json!(bytes)));
    if let Some((nodes, policy)) = host_nodes(def, cell)? {
        o.push(("host-nodes", json!(nodes)));
        o.push(("policy", json!(policy)));
    }
    Ok(o)
}

/// Whether the memory of cell `cell` (None: the guest's) is allocated at start: huge
/// pages, or `<allocation mode='immediate'>`.
fn preallocated(def: &Domain, cell: Option<u32>) -> bool {
    let Some(mb) = &def.memory_backing else {
        return false;
    };
    mb.hugepages
        .as_ref()
        .and_then(|h| h.size_for(cell))
        .is_some()
        || mb.allocation.as_ref().and_then(|a| a.mode.as_deref()) == Some("immediate")
}

/// `<numatune>` for guest cell `cell` (None: the whole guest): the host nodes and QEMU's
/// policy.
fn host_nodes(def: &Domain, cell: Option<u32>) -> Result<Option<(Vec<usize>, &'static str)>> {
    let Some(nt) = &def.numatune else {
        return Ok(None);
    };
    let memnode = cell.and_then(|c| nt.memnodes.iter().find(|m| m.cellid == c));
    let (mode, nodeset) = match (memnode, &nt.memory) {
        (Some(m), _) => (m.mode, Some(m.nodeset.clone())),
        (None, Some(m)) => {
            if m.placement.as_deref() == Some("auto") {
                return unsupported("<numatune> placement='auto' is not supported (needs numad)");
            }
            (m.mode, m.nodeset.clone())
        }
        (None, None) => return Ok(None),
    };
    let Some(nodeset) = nodeset else {
        return Ok(None);
    };
    let policy = match mode.unwrap_or(NumaMode::Strict) {
        NumaMode::Strict => "bind",
        NumaMode::Preferred => "preferred",
        NumaMode::Interleave => "interleave",
        // Only cgroups restrict it; QEMU is not told.
        NumaMode::Restrictive => return Ok(None),
    };
    let Ok(nodes) = vireo_xml::parse_cpuset(&nodeset) else {
        return unsupported(format!("<numatune>: bad nodeset '{nodeset}'"));
    };
    let nodes = nodes.into_iter().collect();
    Ok(Some((nodes, policy)))
}

impl<'a> Builder<'a> {
    /// Whether something maps the guest's memory from another process (vhost-user).
    fn needs_shared_memory(&self) -> bool {
        self.def
            .devices
            .filesystems
            .iter()
            .any(|f| f.driver.as_ref().and_then(|d| d.driver_type.as_deref()) == Some("virtiofs"))
    }

    /// `-m`: the memory the guest boots with, and the room for DIMMs.
    pub(super) fn memory_size(&self) -> Result<String> {
        let def = self.def;
        let mut s = format!("size={}k", def.initial_memory_kib());
        if let Some(max) = &def.max_memory {
            if let Some(slots) = max.slots {
                s.push_str(&format!(",slots={slots}"));
            }
            s.push_str(&format!(",maxmem={}k", max.value));
        }
        Ok(s)
    }

    /// Without NUMA cells: the guest's RAM backend when it needs one (shared, memfd,
    /// huge pages, host nodes, preallocated); its id goes to `-machine memory-backend`.
    pub(super) fn memory_backend(&mut self) -> Result<Option<String>> {
        let def = self.def;
        if !def.numa_cells().is_empty() {
            return Ok(None);
        }
        let mb = def.memory_backing.clone().unwrap_or_default();
        if self.needs_shared_memory() && !mb.shared() {
            return unsupported(
                "virtiofs needs shared memory: <memoryBacking><source type='memfd'/>\
                 <access mode='shared'/></memoryBacking>",
            );
        }
        let o = ram_backend(
            def,
            "pc.ram",
            def.initial_memory_kib() * 1024,
            Region::Guest,
        )?;
        // Plain RAM in QEMU's own way needs no backend object.
        let plain = o.len() == 3 && o[0].1 == json!("memory-backend-ram");
        if plain {
            return Ok(None);
        }
        self.arg2("-object", json_obj(&o));
        Ok(Some("pc.ram".into()))
    }

    /// `<cpu><numa>`: a RAM backend and a `-numa node` per cell, then the distances.
    pub(super) fn numa(&mut self) -> Result<()> {
        let def = self.def;
        let cells = def.numa_cells();
        if cells.is_empty() {
            if def
                .numatune
                .as_ref()
                .is_some_and(|n| !n.memnodes.is_empty())
            {
                return unsupported("<numatune><memnode> needs <cpu><numa> cells");
            }
            return Ok(());
        }
        if self.needs_shared_memory()
            && !cells.iter().all(|c| {
                c.mem_access.as_deref() == Some("shared")
                    || (c.mem_access.is_none()
                        && def.memory_backing.as_ref().is_some_and(|m| m.shared()))
            })
        {
            return unsupported(
                "virtiofs needs every NUMA cell's memory shared (memAccess='shared')",
            );
        }
        let mut seen = BTreeSet::new();
        for (i, c) in cells.iter().enumerate() {
            if c.id.unwrap_or(i as u32) != i as u32 {
                return unsupported(format!(
                    "NUMA cell ids must count up from 0 in order (cell {i} has id {})",
                    c.id.unwrap_or(i as u32)
                ));
            }
            if c.memory == 0 {
                return unsupported(format!("NUMA cell {i} has no memory"));
            }
            if c.discard.is_some() {
                return unsupported(format!(
                    "NUMA cell {i}: discard needs file-backed memory, which Vireo does not use"
                ));
            }
            for v in c.vcpus() {
                if v >= def.vcpus as usize {
                    return unsupported(format!(
                        "NUMA cell {i} names vCPU {v}, but the domain has {} vCPUs",
                        def.vcpus
                    ));
                }
                if !seen.insert(v) {
                    return unsupported(format!("vCPU {v} is in two NUMA cells"));
                }
            }
        }
        if seen.len() != def.vcpus as usize {
            return unsupported(format!(
                "every vCPU (0-{}) must be in a NUMA cell",
                def.vcpus - 1
            ));
        }
        for (i, c) in cells.iter().enumerate() {
            let id = format!("ram-node{i}");
            let o = ram_backend(def, &id, c.memory * 1024, Region::Cell(i as u32))?;
            self.arg2("-object", json_obj(&o));
            let mut node = format!("node,nodeid={i}");
            if let Some(cpus) = &c.cpus {
                for range in cpus.split(',') {
                    node.push_str(&format!(",cpus={range}"));
                }
            }
            node.push_str(&format!(",memdev={id}"));
            self.arg2("-numa", node);
        }
        for (i, c) in cells.iter().enumerate() {
            for s in c.distances.iter().flat_map(|d| &d.siblings) {
                if s.id as usize >= cells.len() {
                    return unsupported(format!(
                        "NUMA cell {i}: a distance to cell {}, which does not exist",
                        s.id
                    ));
                }
                self.arg2(
                    "-numa",
                    format!("dist,src={i},dst={},val={}", s.id, s.value),
                );
            }
        }
        Ok(())
    }

    /// `<memory>` devices: DIMMs in the slots `<maxMemory>` makes, virtio-mem devices on
    /// PCI.
    pub(super) fn memory_devices(&mut self) -> Result<()> {
        let def = self.def;
        if def.devices.memories.is_empty() {
            return Ok(());
        }
        let Some(max) = &def.max_memory else {
            return unsupported("memory devices need <maxMemory> (the room to plug them into)");
        };
        let cells = def.numa_cells().len();
        if cells == 0 {
            return unsupported("memory devices need at least one <cpu><numa> cell");
        }
        let slots = max.slots.unwrap_or(0);
        let mut used: BTreeSet<u32> = def
            .devices
            .memories
            .iter()
            .filter_map(|m| m.address.as_ref().and_then(|a| a.get_num("slot")))
            .map(|s| s as u32)
            .collect();
        for (i, m) in def.devices.memories.iter().enumerate() {
            let what = format!("<memory model='{}'> {i}", m.model);
            let node = m.target.node.unwrap_or(0);
            if node as usize >= cells {
                return unsupported(format!("{what}: NUMA node {node} does not exist"));
            }
            let (obj, dev) = memory_device(&def.devices.memories, i)?;
            let backend = ram_backend(def, &obj, m.size_kib() * 1024, Region::Device(m))?;
            match m.model {
                MemoryModel::Dimm => {
                    let slot = match m.address.as_ref().and_then(|a| a.get_num("slot")) {
                        Some(s) => s as u32,
                        None => {
                            let Some(free) = (0..slots).find(|s| !used.contains(s)) else {
                                return unsupported(format!(
                                    "{what}: no free DIMM slot (<maxMemory slots='{slots}'>)"
                                ));
                            };
                            used.insert(free);
                            free
                        }
                    };
                    if slot >= slots {
                        return unsupported(format!(
                            "{what}: slot {slot} is not below <maxMemory slots='{slots}'>"
                        ));
                    }
                    self.arg2("-object", json_obj(&backend));
                    let o = Opts::new("pc-dimm")
                        .set("node", node)
                        .set("memdev", &obj)
                        .set("id", &dev)
                        .set("slot", slot)
                        .set_opt("addr", m.address.as_ref().and_then(|a| a.get_num("base")));
                    self.arg2("-device", o.done());
                }
                MemoryModel::VirtioMem => {
                    let (block, requested) = (m.block_kib(), m.requested_kib());
                    if let Err(e) = m.check_requested(requested) {
                        return unsupported(format!("{what}: {e}"));
                    }
                    self.arg2("-object", json_obj(&backend));
                    let addr = self.pci.place(m.address.as_ref(), &what)?;
                    let o = Opts::new("virtio-mem-pci")
                        .set("node", node)
                        .set("block-size", block * 1024)
                        .set("requested-size", requested * 1024)
                        .set("memdev", &obj)
                        .set_opt("prealloc", preallocated(def, Some(node)).then_some("on"))
                        .set("id", &dev)
                        .raw(&addr);
                    self.arg2("-device", o.done());
                }
                other => {
                    return unsupported(format!(
                        "<memory model='{other}'> is not supported (dimm, virtio-mem)"
                    ))
                }
            }
        }
        Ok(())
    }
}

/// The ids of memory device `i` of `all`: its backend object and its device (libvirt's
/// alias: the model and its place among the devices of that model).
pub fn memory_device(all: &[MemoryDevice], i: usize) -> Result<(String, String)> {
    let Some(m) = all.get(i) else {
        return unsupported(format!("no memory device {i}"));
    };
    let n = all[..i].iter().filter(|o| o.model == m.model).count();
    let dev = format!("{}{n}", memory_prefix(m)?);
    Ok((format!("mem{dev}"), dev))
}

/// The prefix of a memory device's QEMU id (and libvirt alias) by its model.
pub fn memory_prefix(m: &MemoryDevice) -> Result<&'static str> {
    match m.model {
        MemoryModel::Dimm => Ok("dimm"),
        MemoryModel::VirtioMem => Ok("virtiomem"),
        other => unsupported(format!(
            "<memory model='{other}'> is not supported (dimm, virtio-mem)"
        )),
    }
}

/// Memory device `m` plugged into the running guest `def` with QEMU id `dev`: its backend
/// object (`mem<dev>`) and its device, as `object-add` and `device_add` take them (a DIMM
/// takes the slot its `<address>` names or QEMU's first free one, a virtio-mem device
/// the PCI place in its `<address>`).
pub fn hotplug_memory(def: &Domain, m: &MemoryDevice, dev: &str) -> Result<(Value, Value)> {
    let obj = format!("mem{dev}");
    let what = format!("<memory model='{}'>", m.model);
    if def.max_memory.is_none() {
        return unsupported("memory devices need <maxMemory> (the room to plug them into)");
    }
    let node = m.target.node.unwrap_or(0);
    if node as usize >= def.numa_cells().len() {
        return unsupported(format!("{what}: NUMA node {node} does not exist"));
    }
    let backend: serde_json::Map<String, Value> =
        ram_backend(def, &obj, m.size_kib() * 1024, Region::Device(m))?
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
    let mut device = match m.model {
        MemoryModel::Dimm => {
            let mut d = json!({"driver": "pc-dimm", "node": node, "memdev": obj, "id": dev});
            if let Some(slot) = m.address.as_ref().and_then(|a| a.get_num("slot")) {
                d["slot"] = json!(slot);
            }
            if let Some(base) = m.address.as_ref().and_then(|a| a.get_num("base")) {
                d["addr"] = json!(base);
            }
            d
        }
        MemoryModel::VirtioMem => {
            let (block, requested) = (m.block_kib(), m.requested_kib());
            if let Err(e) = m.check_requested(requested) {
                return unsupported(format!("{what}: {e}"));
            }
            let mut d = json!({
                "driver": "virtio-mem-pci", "node": node, "block-size": block * 1024,
                "requested-size": requested * 1024, "memdev": obj, "id": dev,
            });
            if preallocated(def, Some(node)) {
                d["prealloc"] = json!(true);
            }
            super::slots::hotplug_pci_place(&mut d, m.address.as_ref(), &what)?;
            d
        }
        other => {
            return unsupported(format!(
                "<memory model='{other}'> is not supported (dimm, virtio-mem)"
            ))
        }
    };
    if device.get("id").is_none() {
        device["id"] = json!(dev);
    }
    Ok((Value::Object(backend), device))
}
