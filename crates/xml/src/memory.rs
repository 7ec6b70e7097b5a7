//! The guest's memory layout: NUMA cells (`<cpu><numa>`), where their memory comes from on
//! the host (`<numatune>`, `<memoryBacking><hugepages>`), the room for memory plugged in
//! later (`<maxMemory slots>`) and the memory devices themselves (`<memory model='dimm'>`,
//! `<memory model='virtio-mem'>`). Sizes are kept in KiB, as libvirt writes them.

use crate::util::{one_of, str_enum};
use crate::{xml_element, Address, XmlError};

/// `value` in `unit` (libvirt's default for memory: KiB) as KiB.
fn kib(value: u64, unit: Option<&str>, what: &str) -> Result<u64, XmlError> {
    crate::to_kib(value, unit.unwrap_or("KiB"))
        .ok_or_else(|| XmlError::Invalid(format!("invalid {what}: {value} {}", unit.unwrap_or(""))))
}

xml_element! {
    /// A memory size element (`<size unit='MiB'>128</size>`), kept in KiB.
    pub struct MemSize {
        attr_opt unit: String = "unit",
        text value: u64 = "",
    }
    check MemSize::check;
}

impl MemSize {
    pub fn kib(v: u64) -> MemSize {
        MemSize {
            unit: Some("KiB".into()),
            value: v,
        }
    }

    fn check(&mut self) -> Result<(), XmlError> {
        self.value = kib(self.value, self.unit.as_deref(), "memory size")?;
        self.unit = Some("KiB".into());
        Ok(())
    }
}

xml_element! {
    /// `<maxMemory slots='N' unit='KiB'>`: the most memory the guest may have with what
    /// is plugged in later, and how many DIMM slots it has for that.
    pub struct MaxMemory {
        attr_opt slots: u32 = "slots",
        attr_opt unit: String = "unit",
        text value: u64 = "",
    }
    check MaxMemory::check;
}

impl MaxMemory {
    fn check(&mut self) -> Result<(), XmlError> {
        self.value = kib(self.value, self.unit.as_deref(), "<maxMemory>")?;
        self.unit = Some("KiB".into());
        Ok(())
    }
}

xml_element! {
    /// `<cpu><numa>`: the guest's NUMA cells.
    #[derive(Default)]
    pub struct Numa {
        children cells: NumaCell = "cell",
    }
}

xml_element! {
    /// `<numa><cell id cpus memory unit memAccess discard>`.
    pub struct NumaCell {
        attr_opt id: u32 = "id",
        attr_opt cpus: String = "cpus",
        attr memory: u64 = "memory",
        attr_opt unit: String = "unit",
        attr_opt mem_access: String = "memAccess",
        attr_opt discard: crate::YesNo = "discard",
        child_opt distances: NumaDistances = "distances",
    }
    check NumaCell::check;
}

impl NumaCell {
    fn check(&mut self) -> Result<(), XmlError> {
        self.memory = kib(self.memory, self.unit.as_deref(), "NUMA cell memory")?;
        self.unit = Some("KiB".into());
        one_of(
            &self.mem_access,
            &["shared", "private"],
            "NUMA cell memAccess",
        )?;
        if let Some(c) = &self.cpus {
            self.cpus = Some(crate::format_cpuset(&crate::parse_cpuset(c)?));
        }
        Ok(())
    }

    /// The vCPUs of the cell.
    pub fn vcpus(&self) -> std::collections::BTreeSet<usize> {
        self.cpus
            .as_deref()
            .and_then(|c| crate::parse_cpuset(c).ok())
            .unwrap_or_default()
    }
}

xml_element! {
    /// `<cell><distances>`.
    #[derive(Default)]
    pub struct NumaDistances {
        children siblings: NumaSibling = "sibling",
    }
}

xml_element! {
    /// `<distances><sibling id='N' value='D'/>`.
    pub struct NumaSibling {
        attr id: u32 = "id",
        attr value: u32 = "value",
    }
}

str_enum! {
    /// `<numatune><memory mode=…>`.
    NumaMode, "numatune mode" {
        Strict => "strict",
        Preferred => "preferred",
        Interleave => "interleave",
        Restrictive => "restrictive",
    }
}

xml_element! {
    /// `<numatune>`: the host NUMA nodes the guest's memory comes from.
    #[derive(Default)]
    pub struct Numatune {
        child_opt memory: NumaMemory = "memory",
        children memnodes: NumaMemnode = "memnode",
    }
}

xml_element! {
    /// `<numatune><memory mode nodeset placement>`.
    pub struct NumaMemory {
        attr_opt mode: NumaMode = "mode",
        attr_opt nodeset: String = "nodeset",
        attr_opt placement: String = "placement",
    }
    check NumaMemory::check;
}

impl NumaMemory {
    fn check(&mut self) -> Result<(), XmlError> {
        one_of(&self.placement, &["static", "auto"], "numatune placement")?;
        if let Some(n) = &self.nodeset {
            self.nodeset = Some(crate::format_cpuset(&crate::parse_cpuset(n)?));
        }
        Ok(())
    }
}

xml_element! {
    /// `<numatune><memnode cellid mode nodeset>`: one guest cell's host nodes.
    pub struct NumaMemnode {
        attr cellid: u32 = "cellid",
        attr_opt mode: NumaMode = "mode",
        attr nodeset: String = "nodeset",
    }
    check NumaMemnode::check;
}

impl NumaMemnode {
    fn check(&mut self) -> Result<(), XmlError> {
        self.nodeset = crate::format_cpuset(&crate::parse_cpuset(&self.nodeset)?);
        Ok(())
    }
}

xml_element! {
    /// `<memoryBacking><hugepages>`.
    #[derive(Default)]
    pub struct Hugepages {
        children pages: HugePage = "page",
    }
}

xml_element! {
    /// `<hugepages><page size unit nodeset>`: the page size of (some of) the guest cells.
    pub struct HugePage {
        attr size: u64 = "size",
        attr_opt unit: String = "unit",
        attr_opt nodeset: String = "nodeset",
    }
    check HugePage::check;
}

impl HugePage {
    fn check(&mut self) -> Result<(), XmlError> {
        self.size = kib(self.size, self.unit.as_deref(), "huge page size")?;
        self.unit = Some("KiB".into());
        if let Some(n) = &self.nodeset {
            self.nodeset = Some(crate::format_cpuset(&crate::parse_cpuset(n)?));
        }
        Ok(())
    }
}

impl Hugepages {
    /// The huge page size (KiB) of guest cell `cell` (None: the whole guest without
    /// cells): the page that names the cell, else the one that names none; a bare
    /// `<hugepages/>` is the x86 default, 2 MiB.
    pub fn size_for(&self, cell: Option<u32>) -> Option<u64> {
        if self.pages.is_empty() {
            return Some(2048);
        }
        let named = cell.and_then(|c| {
            self.pages.iter().find(|p| {
                p.nodeset
                    .as_deref()
                    .and_then(|n| crate::parse_cpuset(n).ok())
                    .is_some_and(|s| s.contains(&(c as usize)))
            })
        });
        named
            .or_else(|| self.pages.iter().find(|p| p.nodeset.is_none()))
            .map(|p| p.size)
    }
}

xml_element! {
    /// `<memoryBacking><allocation mode threads>`.
    pub struct MemoryAllocation {
        attr_opt mode: String = "mode",
        attr_opt threads: u32 = "threads",
    }
    check MemoryAllocation::check;
}

impl MemoryAllocation {
    fn check(&mut self) -> Result<(), XmlError> {
        one_of(
            &self.mode,
            &["immediate", "ondemand"],
            "memory allocation mode",
        )
    }
}

str_enum! {
    /// `<memory model=…>`.
    MemoryModel, "memory model" {
        Dimm => "dimm",
        Nvdimm => "nvdimm",
        VirtioPmem => "virtio-pmem",
        VirtioMem => "virtio-mem",
        SgxEpc => "sgx-epc",
    }
}

xml_element! {
    /// `<memory model=…>`: a memory device (DIMM, virtio-mem …).
    pub struct MemoryDevice {
        attr model: MemoryModel = "model",
        attr_opt access: String = "access",
        attr_opt discard: crate::YesNo = "discard",
        child_opt source: MemoryDeviceSource = "source",
        child target: MemoryTarget = "target",
        in_attr_opt alias: String = "alias@name",
        child_opt address: Address = "address",
    }
    check MemoryDevice::check;
}

impl MemoryDevice {
    fn check(&mut self) -> Result<(), XmlError> {
        one_of(&self.access, &["shared", "private"], "memory access")?;
        if self.target.size.value == 0 {
            return Err(XmlError::Invalid(
                "a memory device needs a <target><size> above 0".into(),
            ));
        }
        if let Some(b) = &self.target.block {
            if !b.value.is_power_of_two() {
                return Err(XmlError::Invalid(format!(
                    "the block size of a memory device must be a power of two ({} KiB)",
                    b.value
                )));
            }
        }
        Ok(())
    }

    /// The size the device adds to the guest's maximum, in KiB.
    pub fn size_kib(&self) -> u64 {
        self.target.size.value
    }

    /// virtio-mem: the granularity it plugs memory in, in KiB (default 2 MiB).
    pub fn block_kib(&self) -> u64 {
        self.target.block.as_ref().map_or(2048, |b| b.value)
    }

    /// virtio-mem: the share of its memory the guest is asked to have, in KiB.
    pub fn requested_kib(&self) -> u64 {
        self.target.requested.as_ref().map_or(0, |r| r.value)
    }

    /// Checks that `kib` can be a virtio-mem device's requested size.
    pub fn check_requested(&self, kib: u64) -> Result<(), String> {
        let block = self.block_kib();
        if kib > self.size_kib() || !kib.is_multiple_of(block) {
            return Err(format!(
                "the requested size must be a multiple of the block size ({block} KiB) and \
                 not above the size ({} KiB)",
                self.size_kib()
            ));
        }
        Ok(())
    }
}

xml_element! {
    /// `<memory><source>`: host pages or nodes the device's memory comes from.
    #[derive(Default)]
    pub struct MemoryDeviceSource {
        child_opt pagesize: MemSize = "pagesize",
        leaf_opt nodemask: String = "nodemask",
        leaf_opt path: String = "path",
    }
}

xml_element! {
    /// `<memory><target>`.
    pub struct MemoryTarget {
        child size: MemSize = "size",
        leaf_opt node: u32 = "node",
        /// virtio-mem: the granularity it plugs memory in.
        child_opt block: MemSize = "block",
        /// virtio-mem: how much of its size the guest is asked to have.
        child_opt requested: MemSize = "requested",
        /// virtio-mem: how much the guest has (live XML only).
        child_opt current: MemSize = "current",
    }
}

#[cfg(test)]
mod tests {
    use crate::Domain;

    const NUMA: &str = "<domain type='qemu'><name>t</name>\
        <maxMemory slots='4' unit='GiB'>2</maxMemory><memory unit='MiB'>1</memory>\
        <memoryBacking><hugepages><page size='2' unit='MiB' nodeset='1'/></hugepages>\
        <locked/><allocation mode='immediate' threads='2'/></memoryBacking>\
        <vcpu>2</vcpu><numatune><memory mode='strict' nodeset='0'/>\
        <memnode cellid='1' mode='interleave' nodeset='0'/></numatune>\
        <os><type>hvm</type></os><cpu><numa>\
        <cell id='0' cpus='0' memory='128' unit='MiB'><distances><sibling id='0' value='10'/>\
        <sibling id='1' value='21'/></distances></cell>\
        <cell id='1' cpus='1' memory='131072' memAccess='shared'/></numa></cpu>\
        <devices><memory model='dimm'><target><size unit='MiB'>64</size><node>1</node>\
        </target><address type='dimm' slot='0'/></memory>\
        <memory model='virtio-mem'><target><size unit='MiB'>256</size><node>0</node>\
        <block unit='MiB'>2</block><requested unit='MiB'>128</requested></target></memory>\
        </devices></domain>";

    #[test]
    fn cells_and_devices_make_the_total() {
        let d = Domain::parse_kept(NUMA).unwrap();
        // Two cells of 128 MiB, a 64 MiB DIMM and a 256 MiB virtio-mem device.
        assert_eq!(d.memory_kib, (128 + 128 + 64 + 256) * 1024);
        assert_eq!(d.current_memory_kib, d.memory_kib);
        assert_eq!(d.initial_memory_kib(), 256 * 1024);
        assert_eq!(d.max_memory.as_ref().unwrap().value, 2 << 20);
        let mb = d.memory_backing.as_ref().unwrap();
        assert_eq!(mb.hugepages.as_ref().unwrap().size_for(Some(1)), Some(2048));
        assert_eq!(mb.hugepages.as_ref().unwrap().size_for(Some(0)), None);
        let out = d.format();
        for piece in [
            "<maxMemory slots='4' unit='KiB'>2097152</maxMemory>",
            "<cell id='0' cpus='0' memory='131072' unit='KiB'>",
            "<sibling id='1' value='21'/>",
            "<cell id='1' cpus='1' memory='131072' unit='KiB' memAccess='shared'/>",
            "<memnode cellid='1' mode='interleave' nodeset='0'/>",
            "<page size='2048' unit='KiB' nodeset='1'/>",
            "<requested unit='KiB'>131072</requested>",
            "<address type='dimm' slot='0'/>",
        ] {
            assert!(out.contains(piece), "{piece} in {out}");
        }
        assert_eq!(Domain::parse(&out).unwrap(), d);
    }

    #[test]
    fn a_max_below_the_total_is_refused() {
        let bad = NUMA.replace("unit='GiB'>2<", "unit='MiB'>300<");
        assert!(Domain::parse(&bad).is_err());
    }
}
