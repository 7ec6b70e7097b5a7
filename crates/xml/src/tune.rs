//! Resource tuning a domain's cgroup carries out: `<memtune>` (memory limits) and
//! `<blkiotune>` (the block I/O weight). `<cputune>`'s CPU shares and bandwidth live with
//! its pinning in `domain.rs`.

use crate::memory::MemSize;
use crate::{xml_element, XmlError};

xml_element! {
    /// `<memtune>`: limits on the memory the domain's processes may use, in KiB.
    #[derive(Default)]
    pub struct Memtune {
        child_opt hard_limit: MemSize = "hard_limit",
        child_opt soft_limit: MemSize = "soft_limit",
        child_opt swap_hard_limit: MemSize = "swap_hard_limit",
        child_opt min_guarantee: MemSize = "min_guarantee",
    }
    check Memtune::check;
}

impl Memtune {
    pub fn is_empty(&self) -> bool {
        self.hard_limit.is_none()
            && self.soft_limit.is_none()
            && self.swap_hard_limit.is_none()
            && self.min_guarantee.is_none()
    }

    fn check(&mut self) -> Result<(), XmlError> {
        if let (Some(h), Some(s)) = (&self.hard_limit, &self.swap_hard_limit) {
            if s.value < h.value {
                return Err(XmlError::Invalid(
                    "memory hard_limit tunable value must be lower than or equal to \
                     swap_hard_limit"
                        .into(),
                ));
            }
        }
        Ok(())
    }
}

xml_element! {
    /// `<blkiotune>`: the domain's share of block I/O (`weight`, 100–1000) and per-device
    /// weights and limits.
    #[derive(Default)]
    pub struct Blkiotune {
        leaf_opt weight: u32 = "weight",
        children devices: BlkioDevice = "device",
    }
    check Blkiotune::check;
}

impl Blkiotune {
    pub fn is_empty(&self) -> bool {
        self.weight.is_none() && self.devices.is_empty()
    }

    fn check(&mut self) -> Result<(), XmlError> {
        check_weight(self.weight)
    }
}

/// A block I/O weight libvirt accepts: 100 to 1000.
pub fn check_weight(w: Option<u32>) -> Result<(), XmlError> {
    match w {
        Some(w) if !(100..=1000).contains(&w) => Err(XmlError::Invalid(format!(
            "blkiotune weight {w} is out of range [100, 1000]"
        ))),
        _ => Ok(()),
    }
}

xml_element! {
    /// `<blkiotune><device>`: one host block device's weight and limits.
    pub struct BlkioDevice {
        leaf path: String = "path",
        leaf_opt weight: u32 = "weight",
        leaf_opt read_iops_sec: u64 = "read_iops_sec",
        leaf_opt write_iops_sec: u64 = "write_iops_sec",
        leaf_opt read_bytes_sec: u64 = "read_bytes_sec",
        leaf_opt write_bytes_sec: u64 = "write_bytes_sec",
    }
}
