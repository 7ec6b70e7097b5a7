//! Block jobs (`virsh blockpull`, `blockcommit`, `blockcopy`, `blockjob`): checked here,
//! run by the VM's shim (`crates/shim/src/blockjob.rs`). A copy's destination image is
//! made here (qemu-img) unless the client made it; when a copy or an active commit pivots,
//! the persistent definition follows the disk to its new image.

use std::sync::Arc;

use vireo_driver::{DriverError, Result};
use vireo_proto::remote::block_job::*;
use vireo_proto::remote::{procs, Domain as Handle, DomainBlockJobArgs};
use vireo_proto::typed::TypedParam;
use vireo_proto::vireo::{procs as vprocs, ShimBlockJobArgs, VIREO_PROGRAM, VIREO_VERSION};
use vireo_xml::{Disk, DiskType, Domain};

use crate::driver::{check_flags, no_domain_uuid, xml_error, QemuDriver};
use crate::hotplug::shim_error;

/// libvirt's bandwidth (MiB/s, or bytes/s when `bytes`) in bytes per second.
fn speed(bandwidth: u64, bytes: bool) -> Result<u64> {
    if bytes {
        return Ok(bandwidth);
    }
    bandwidth.checked_mul(1 << 20).ok_or_else(|| {
        DriverError::InvalidArg(format!(
            "bandwidth must be less than {} MiB/s",
            u64::MAX >> 20
        ))
    })
}

/// The disk of `def` a client names by target or image file.
fn find_disk<'a>(def: &'a Domain, path: &str) -> Result<&'a Disk> {
    def.devices
        .disks
        .iter()
        .find(|d| {
            d.target.dev == path || d.source.as_ref().and_then(|s| s.file.as_deref()) == Some(path)
        })
        .ok_or_else(|| DriverError::InvalidArg(format!("disk '{path}' not found in domain")))
}

/// A disk's image file and format, as the running VM has it.
/// Whether `path` is a block device (a copy's destination can be one).
pub fn is_block_device(path: &str) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device())
}

/// Where a copy goes: a file, or a block device (`block`); its format when asked.
struct Dest<'a> {
    path: &'a str,
    block: bool,
    format: Option<String>,
}

fn image_of(d: &Disk) -> Result<(String, String)> {
    let file = match (d.disk_type, d.source.as_ref().and_then(|s| s.file.clone())) {
        (DiskType::File, Some(f)) => f,
        _ => {
            return Err(DriverError::ConfigUnsupported(format!(
                "block jobs on disk '{}': only file disks are supported by Vireo yet",
                d.target.dev
            )))
        }
    };
    let format = d
        .driver
        .as_ref()
        .and_then(|x| x.format.clone())
        .unwrap_or_else(|| "raw".into());
    Ok((file, format))
}

impl QemuDriver {
    pub(crate) async fn shim_block_job(&self, h: &Handle, a: ShimBlockJobArgs) -> Result<()> {
        let conn = self.shim_conn(h)?;
        conn.call_fds::<_, ()>(VIREO_PROGRAM, VIREO_VERSION, vprocs::SHIM_BLOCK_JOB, &a)
            .await
            .map(|_| ())
            .map_err(shim_error)
    }

    /// The running VM's definition, volumes resolved (a block job needs the files).
    async fn running_def(&self, h: &Handle) -> Result<Domain> {
        if !self.is_running(h)? {
            return Err(DriverError::OperationInvalid(
                "domain is not running".into(),
            ));
        }
        let live = self.live_def(h).await?;
        crate::peers::resolve(&live, self.peers.get()).await
    }

    /// `virDomainBlockPull`, and `virDomainBlockRebase` without COPY: the disk's image takes
    /// in the data of its backing images (down to `base`, which stays its backing).
    pub async fn block_pull(
        &self,
        h: &Handle,
        path: &str,
        base: Option<&str>,
        bandwidth: u64,
        bytes: bool,
    ) -> Result<()> {
        let def = self.running_def(h).await?;
        let disk = find_disk(&def, path)?;
        image_of(disk)?;
        self.shim_block_job(
            h,
            ShimBlockJobArgs {
                kind: TYPE_PULL,
                disk: disk.target.dev.clone(),
                base: base.map(str::to_string),
                top: None,
                dest: None,
                dest_format: None,
                bandwidth: speed(bandwidth, bytes)?,
                shallow: 0,
                delete: 0,
            },
        )
        .await
    }

    /// `virDomainBlockRebase`.
    pub async fn block_rebase(
        &self,
        h: &Handle,
        path: &str,
        base: Option<&str>,
        bandwidth: u64,
        flags: u32,
    ) -> Result<()> {
        check_flags(
            flags,
            REBASE_SHALLOW
                | REBASE_REUSE_EXT
                | REBASE_COPY_RAW
                | REBASE_COPY
                | REBASE_RELATIVE
                | REBASE_COPY_DEV
                | REBASE_BANDWIDTH_BYTES,
        )?;
        let bytes = flags & REBASE_BANDWIDTH_BYTES != 0;
        if flags & REBASE_COPY == 0 {
            if flags & (REBASE_SHALLOW | REBASE_REUSE_EXT | REBASE_COPY_RAW | REBASE_COPY_DEV) != 0
            {
                return Err(DriverError::InvalidArg(
                    "these flags apply to a copy only".into(),
                ));
            }
            return self.block_pull(h, path, base, bandwidth, bytes).await;
        }
        let Some(dest) = base else {
            return Err(DriverError::InvalidArg(
                "a copy needs its destination".into(),
            ));
        };
        let format = (flags & REBASE_COPY_RAW != 0).then(|| "raw".to_string());
        self.copy(
            h,
            path,
            Dest {
                path: dest,
                block: flags & REBASE_COPY_DEV != 0,
                format,
            },
            speed(bandwidth, bytes)?,
            flags & REBASE_SHALLOW != 0,
            flags & REBASE_REUSE_EXT != 0,
        )
        .await
    }

    /// `virDomainBlockCopy`: `destxml` is a `<disk>` naming the destination file.
    pub async fn block_copy(
        &self,
        h: &Handle,
        path: &str,
        destxml: &str,
        params: &[TypedParam],
        flags: u32,
    ) -> Result<()> {
        check_flags(
            flags,
            COPY_SHALLOW | COPY_REUSE_EXT | COPY_TRANSIENT_JOB | COPY_SYNCHRONOUS_WRITES,
        )?;
        if flags & COPY_SYNCHRONOUS_WRITES != 0 {
            return Err(DriverError::ArgUnsupported(
                "synchronous writes of a copy are not supported by Vireo yet".into(),
            ));
        }
        let mut bandwidth = 0;
        for p in params {
            match p.field.as_str() {
                "bandwidth" => {
                    bandwidth = p.value.as_u64().ok_or_else(|| {
                        DriverError::InvalidArg("bandwidth must be an unsigned integer".into())
                    })?
                }
                // QEMU's defaults are kept; these only tune the copy.
                "granularity" | "buf-size" => {}
                f => {
                    return Err(DriverError::InvalidArg(format!(
                        "unsupported block copy parameter '{f}'"
                    )))
                }
            }
        }
        let dest: vireo_xml::CopyDestination =
            vireo_xml::parse_root(destxml, "disk").map_err(xml_error)?;
        let src = dest.source.as_ref();
        let (file, block) = match (dest.disk_type, src.and_then(|s| s.file.clone())) {
            (DiskType::File, Some(f)) => (f, false),
            _ => match (dest.disk_type, src.and_then(|s| s.dev.clone())) {
                (DiskType::Block, Some(d)) => (d, true),
                _ => {
                    return Err(DriverError::ConfigUnsupported(
                        "block copy destination must be a file (<disk type='file'><source \
                         file>) or a block device (<disk type='block'><source dev>)"
                            .into(),
                    ))
                }
            },
        };
        let format = dest.driver.as_ref().and_then(|d| d.format.clone());
        self.copy(
            h,
            path,
            Dest {
                path: &file,
                block,
                format,
            },
            bandwidth,
            flags & COPY_SHALLOW != 0,
            flags & COPY_REUSE_EXT != 0,
        )
        .await
    }

    async fn copy(
        &self,
        h: &Handle,
        path: &str,
        to: Dest<'_>,
        bandwidth: u64,
        shallow: bool,
        reuse: bool,
    ) -> Result<()> {
        let Dest {
            path: dest,
            block,
            format,
        } = to;
        if !dest.starts_with('/') {
            return Err(DriverError::InvalidArg(format!(
                "the copy's destination '{dest}' is not an absolute path"
            )));
        }
        if block && !is_block_device(dest) {
            return Err(DriverError::InvalidArg(format!(
                "the copy's destination {dest} is not a block device"
            )));
        }
        let def = self.running_def(h).await?;
        let disk = find_disk(&def, path)?;
        let (src, src_format) = image_of(disk)?;
        let format = format.unwrap_or(src_format.clone());
        if !matches!(format.as_str(), "raw" | "qcow2") {
            return Err(DriverError::ConfigUnsupported(format!(
                "copy destination format '{format}' is not supported (raw, qcow2)"
            )));
        }
        // A block device is there already: it is written over (formatted when the copy
        // is qcow2 and not reused).
        let exists = std::path::Path::new(dest).exists() && !block;
        match (exists, reuse && !block) {
            (true, false) => {
                return Err(DriverError::OperationInvalid(format!(
                    "destination file {dest} exists (reuse it with the reuse-external flag)"
                )))
            }
            (false, true) => {
                return Err(DriverError::InvalidArg(format!(
                    "the destination {dest} to reuse does not exist"
                )))
            }
            _ => {}
        }
        // SHALLOW: the copy holds the top image only, over the layers under it.
        let backing = if shallow {
            crate::snapshot::backing_of(&src)
        } else {
            None
        };
        if backing.is_some() && format != "qcow2" {
            return Err(DriverError::ConfigUnsupported(
                "a shallow copy needs a qcow2 destination (it has a backing image)".into(),
            ));
        }
        // Made here unless reused; a raw copy on a block device needs no making.
        let make = !(reuse || (block && format == "raw"));
        if make {
            let size = crate::snapshot::virtual_size(&src, &src_format).await?;
            match &backing {
                Some((file, fmt)) => {
                    crate::snapshot::make_overlay(dest, file, fmt, Some(size)).await?
                }
                None => {
                    crate::snapshot::qemu_img(&[
                        "create",
                        "-q",
                        "-f",
                        &format,
                        dest,
                        &size.to_string(),
                    ])
                    .await?
                }
            }
            self.give_to_qemu(&h.uuid, dest);
        }
        let r = self
            .shim_block_job(
                h,
                ShimBlockJobArgs {
                    kind: TYPE_COPY,
                    disk: disk.target.dev.clone(),
                    base: None,
                    top: None,
                    dest: Some(dest.to_string()),
                    dest_format: Some(format),
                    bandwidth,
                    shallow: i32::from(backing.is_some()),
                    delete: 0,
                },
            )
            .await;
        if r.is_err() && !reuse && !block {
            let _ = std::fs::remove_file(dest);
        }
        r
    }

    /// `virDomainBlockCommit`: the data of `top` (default: the active image, which needs
    /// ACTIVE) and what lies between goes down into `base` (default: the bottom of the
    /// chain; with SHALLOW, top's own backing image).
    pub async fn block_commit(
        &self,
        h: &Handle,
        disk: &str,
        base: Option<&str>,
        top: Option<&str>,
        bandwidth: u64,
        flags: u32,
    ) -> Result<()> {
        check_flags(
            flags,
            COMMIT_SHALLOW
                | COMMIT_DELETE
                | COMMIT_ACTIVE
                | COMMIT_RELATIVE
                | COMMIT_BANDWIDTH_BYTES,
        )?;
        if flags & COMMIT_RELATIVE != 0 {
            return Err(DriverError::ArgUnsupported(
                "relative backing names are not supported by Vireo yet".into(),
            ));
        }
        let def = self.running_def(h).await?;
        let d = find_disk(&def, disk)?;
        let (active_file, _) = image_of(d)?;
        let active = top.is_none_or(|t| t == active_file || t == d.target.dev);
        if active && flags & COMMIT_ACTIVE == 0 {
            return Err(DriverError::InvalidArg(format!(
                "commit of '{}' active layer requires active flag",
                d.target.dev
            )));
        }
        self.shim_block_job(
            h,
            ShimBlockJobArgs {
                kind: if active {
                    TYPE_ACTIVE_COMMIT
                } else {
                    TYPE_COMMIT
                },
                disk: d.target.dev.clone(),
                base: base.map(str::to_string),
                top: if active {
                    None
                } else {
                    top.map(str::to_string)
                },
                dest: None,
                dest_format: None,
                bandwidth: speed(bandwidth, flags & COMMIT_BANDWIDTH_BYTES != 0)?,
                shallow: i32::from(flags & COMMIT_SHALLOW != 0),
                delete: i32::from(flags & COMMIT_DELETE != 0),
            },
        )
        .await
    }

    /// `virDomainBlockJobAbort`: the shim ends the job; after a pivot the persistent
    /// definition's disk becomes the image the VM now uses, as the live one did.
    pub async fn block_job_abort(&self, h: &Handle, payload: &[u8]) -> Result<()> {
        let a: DomainBlockJobArgs = vireo_xdr::from_bytes(payload).map_err(|e| {
            DriverError::InvalidArg(format!("Unable to decode message payload: {e}"))
        })?;
        if !self.is_running(h)? {
            return Err(DriverError::OperationInvalid(
                "domain is not running".into(),
            ));
        }
        let before = if a.flags & ABORT_PIVOT != 0 {
            Some(self.live_def(h).await?)
        } else {
            None
        };
        self.forward(h, procs::DOMAIN_BLOCK_JOB_ABORT, payload)
            .await
            .map_err(|e| DriverError::Peer(Box::new(e)))?;
        let Some(before) = before else {
            return Ok(());
        };
        let after = self.live_def(h).await?;
        let Ok(old) = find_disk(&before, &a.path) else {
            return Ok(());
        };
        let target = old.target.dev.clone();
        let old_file = old.source.as_ref().and_then(|s| s.file.clone());
        let Some(new) = after.devices.disks.iter().find(|d| d.target.dev == target) else {
            return Ok(());
        };
        let persistent = {
            let mut reg = self.write();
            let o = reg
                .by_uuid
                .get_mut(&h.uuid)
                .ok_or_else(|| no_domain_uuid(&h.uuid, &h.name))?;
            let Some(p) = o.def.devices.disks.iter_mut().find(|d| {
                d.target.dev == target && d.source.as_ref().and_then(|s| s.file.clone()) == old_file
            }) else {
                return Ok(());
            };
            p.disk_type = new.disk_type;
            p.source = new.source.clone();
            p.driver.get_or_insert_with(Default::default).format =
                new.driver.as_ref().and_then(|x| x.format.clone());
            o.persistent.then(|| o.def.clone())
        };
        if let Some(p) = persistent {
            self.defs.put(&p.name, p.format().as_bytes())?;
        }
        Ok(())
    }
}

/// The daemon's calls in one place: which procedure is which method.
pub async fn serve(q: &Arc<QemuDriver>, p: i32, payload: &[u8]) -> Result<()> {
    use vireo_proto::remote::*;
    let decode = |e: vireo_xdr::XdrError| {
        DriverError::InvalidArg(format!("Unable to decode message payload: {e}"))
    };
    match p {
        procs::DOMAIN_BLOCK_PULL => {
            let a: DomainBlockBandwidthArgs = vireo_xdr::from_bytes(payload).map_err(decode)?;
            check_flags(a.flags, PULL_BANDWIDTH_BYTES)?;
            q.block_pull(
                &a.dom,
                &a.path,
                None,
                a.bandwidth,
                a.flags & PULL_BANDWIDTH_BYTES != 0,
            )
            .await
        }
        procs::DOMAIN_BLOCK_REBASE => {
            let a: DomainBlockRebaseArgs = vireo_xdr::from_bytes(payload).map_err(decode)?;
            q.block_rebase(&a.dom, &a.path, a.base.as_deref(), a.bandwidth, a.flags)
                .await
        }
        procs::DOMAIN_BLOCK_COPY => {
            let a: DomainBlockCopyArgs = vireo_xdr::from_bytes(payload).map_err(decode)?;
            q.block_copy(&a.dom, &a.path, &a.destxml, &a.params.0, a.flags)
                .await
        }
        procs::DOMAIN_BLOCK_COMMIT => {
            let a: DomainBlockCommitArgs = vireo_xdr::from_bytes(payload).map_err(decode)?;
            q.block_commit(
                &a.dom,
                &a.disk,
                a.base.as_deref(),
                a.top.as_deref(),
                a.bandwidth,
                a.flags,
            )
            .await
        }
        _ => {
            let a: DomainBlockJobArgs = vireo_xdr::from_bytes(payload).map_err(decode)?;
            q.block_job_abort(&a.dom, payload).await
        }
    }
}
