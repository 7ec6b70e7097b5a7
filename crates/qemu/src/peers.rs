//! What the QEMU driver asks the other drivers, always through their public API (the
//! daemon supplies the implementation: RPC calls to the daemon serving that family). The
//! QEMU crate depends on no other driver crate.

use std::sync::Arc;

use vireo_driver::{DriverError, Result};
use vireo_rpc::server::BoxFuture;
use vireo_xml::{DiskType, Domain};

/// A storage volume as a disk uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSource {
    pub path: String,
    /// A block device (else a file).
    pub block: bool,
    /// As the volume's header says (`raw`, `qcow2`, …).
    pub format: String,
}

/// The other drivers, seen from the QEMU driver.
pub trait Peers: Send + Sync {
    /// Resolves `<source pool='…' volume='…'/>`; an error names the missing pool or volume.
    fn volume(&self, pool: &str, volume: &str) -> BoxFuture<Result<VolumeSource>>;
}

/// The definition QEMU is started from: every `<disk type='volume'>` becomes the file or
/// block device its volume is, with the volume's format unless the disk names one.
pub async fn resolve(def: &Domain, peers: Option<&Arc<dyn Peers>>) -> Result<Domain> {
    let mut out = def.clone();
    for disk in out.devices.disks.iter_mut() {
        if disk.disk_type != DiskType::Volume {
            continue;
        }
        let src = disk.source.as_mut().ok_or_else(|| {
            DriverError::XmlInvalid(format!(
                "disk '{}': a volume disk needs <source pool='…' volume='…'/>",
                disk.target.dev
            ))
        })?;
        let (Some(pool), Some(vol)) = (src.pool.clone(), src.volume.clone()) else {
            return Err(DriverError::XmlInvalid(format!(
                "disk '{}': a volume disk needs both pool and volume in <source>",
                disk.target.dev
            )));
        };
        let peers = peers.ok_or_else(|| {
            DriverError::OperationInvalid(format!(
                "disk '{}' is volume '{vol}' of pool '{pool}', but no storage driver is reachable",
                disk.target.dev
            ))
        })?;
        let v = peers.volume(&pool, &vol).await?;
        if v.block {
            disk.disk_type = DiskType::Block;
            src.dev = Some(v.path);
        } else {
            disk.disk_type = DiskType::File;
            src.file = Some(v.path);
        }
        src.pool = None;
        src.volume = None;
        src.mode = None;
        let drv = disk.driver.get_or_insert_with(Default::default);
        if drv.format.is_none() {
            drv.format = Some(v.format);
        }
    }
    Ok(out)
}
