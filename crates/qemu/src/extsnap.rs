//! Deleting an external snapshot, as libvirt 9 does: the overlay the snapshot started
//! (where the domain went on writing) is committed down into the image the snapshot kept,
//! and the overlay file goes. On a running domain that is a block job in its shim (an
//! active commit with a pivot when the overlay is the disk's image now); on a shut-off
//! domain, `qemu-img commit`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use vireo_driver::events::DeviceEvent;
use vireo_driver::{DriverError, Result};
use vireo_proto::remote::block_job::{
    ABORT_PIVOT, CANCELED, COMPLETED, FAILED, READY, TYPE_ACTIVE_COMMIT, TYPE_COMMIT,
};
use vireo_proto::remote::{event, Domain as Handle, DomainBlockJobArgs};
use vireo_proto::vireo::ShimBlockJobArgs;
use vireo_xml::{DomainSnapshot, SnapshotLocation};

use crate::driver::QemuDriver;

/// How long a commit may take before the delete gives up waiting (the job goes on).
const COMMIT_WAIT: Duration = Duration::from_secs(600);

/// The disks an external snapshot made overlays for: (target, overlay file).
fn overlays(s: &DomainSnapshot) -> Vec<(String, String)> {
    s.head
        .disks
        .iter()
        .flat_map(|d| &d.disk)
        .filter(|d| {
            matches!(
                d.snapshot,
                Some(SnapshotLocation::External | SnapshotLocation::Manual)
            )
        })
        .filter_map(|d| Some((d.name.clone(), d.source.as_ref()?.file.clone()?)))
        .collect()
}

/// Waits for the block job of disk `target` of domain `h` to reach `want` (READY or
/// COMPLETED); a failed or cancelled job is an error.
async fn wait_job(
    rx: &mut broadcast::Receiver<DeviceEvent>,
    h: &Handle,
    target: &str,
    want: i32,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + COMMIT_WAIT;
    loop {
        let ev = match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => {
                return Err(DriverError::OperationFailed(format!(
                    "the commit of disk '{target}' did not end in time (it goes on)"
                )))
            }
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(broadcast::error::RecvError::Closed)) => {
                return Err(DriverError::OperationFailed("the driver is closing".into()))
            }
            Ok(Ok(ev)) => ev,
        };
        if ev.dom.uuid != h.uuid || ev.event_id != event::ID_BLOCK_JOB_2 || ev.alias != target {
            continue;
        }
        match ev.status {
            s if s == want => return Ok(()),
            FAILED | CANCELED => {
                return Err(DriverError::OperationFailed(format!(
                    "the commit of disk '{target}' into the snapshot's image failed"
                )))
            }
            // READY on the way to COMPLETED is not ours to act on.
            READY | COMPLETED => continue,
            _ => continue,
        }
    }
}

impl QemuDriver {
    /// Merges the overlays of external snapshot `s` into the images it kept and removes
    /// the overlays and its memory file (the metadata is the caller's).
    pub(crate) async fn delete_external(
        self: &Arc<Self>,
        h: &Handle,
        s: &DomainSnapshot,
    ) -> Result<()> {
        for (target, overlay) in overlays(s) {
            // What lies under the overlay now (an older snapshot's delete may have
            // merged the image it was made on into the one below).
            let Some(kept) = crate::snapshot::backing_of(&overlay) else {
                return Err(DriverError::OperationFailed(format!(
                    "snapshot '{}': its overlay {overlay} cannot be read or has no backing image",
                    s.name()
                )));
            };
            if self.is_running(h)? {
                self.commit_running(h, &target, &overlay, &kept.0).await?;
            } else {
                self.commit_offline(h, &target, &overlay, kept).await?;
            }
        }
        let memory = s
            .head
            .memory
            .as_ref()
            .filter(|m| m.snapshot == Some(SnapshotLocation::External))
            .and_then(|m| m.file.as_deref());
        if let Some(f) = memory {
            match std::fs::remove_file(f) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    log::warn!(
                        "cannot remove the memory file {f} of snapshot '{}': {e}",
                        s.name()
                    )
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The running VM commits `overlay` into `base` (an active commit and a pivot when
    /// the overlay is the disk's image now); the overlay file goes when that ended well.
    async fn commit_running(
        self: &Arc<Self>,
        h: &Handle,
        target: &str,
        overlay: &str,
        base: &str,
    ) -> Result<()> {
        let live = self.live_def(h).await?;
        let current = live
            .devices
            .disks
            .iter()
            .find(|d| d.target.dev == target)
            .and_then(|d| d.source.as_ref()?.file.clone())
            .ok_or_else(|| {
                DriverError::OperationInvalid(format!("the domain has no disk '{target}' now"))
            })?;
        let active = current == overlay;
        let mut rx = self.device_events.subscribe();
        self.shim_block_job(
            h,
            ShimBlockJobArgs {
                kind: if active {
                    TYPE_ACTIVE_COMMIT
                } else {
                    TYPE_COMMIT
                },
                disk: target.to_string(),
                base: Some(base.to_string()),
                top: (!active).then(|| overlay.to_string()),
                dest: None,
                dest_format: None,
                bandwidth: 0,
                shallow: 0,
                delete: 1,
            },
        )
        .await?;
        if active {
            wait_job(&mut rx, h, target, READY).await?;
            let pivot = vireo_xdr::to_bytes(&DomainBlockJobArgs {
                dom: h.clone(),
                path: target.to_string(),
                flags: ABORT_PIVOT,
            });
            self.block_job_abort(h, &pivot).await?;
        }
        wait_job(&mut rx, h, target, COMPLETED).await
    }

    /// A shut-off domain: `qemu-img commit` of the overlay (the disk's image in the
    /// definition) into its backing, the overlay removed, the definition back on the kept
    /// image.
    async fn commit_offline(
        &self,
        h: &Handle,
        target: &str,
        overlay: &str,
        (base, base_format): (String, String),
    ) -> Result<()> {
        let (_, persistent, mut def) = self.device_target(h)?;
        let d = def
            .devices
            .disks
            .iter_mut()
            .find(|d| d.target.dev == target)
            .ok_or_else(|| {
                DriverError::OperationInvalid(format!("the domain has no disk '{target}' now"))
            })?;
        if d.source.as_ref().and_then(|s| s.file.as_deref()) != Some(overlay) {
            return Err(DriverError::ConfigUnsupported(format!(
                "disk '{target}' no longer runs on the snapshot's overlay {overlay} (delete \
                 its newer snapshots first, or start the domain)"
            )));
        }
        crate::snapshot::qemu_img(&["commit", "-q", "-f", "qcow2", overlay]).await?;
        if let Some(src) = d.source.as_mut() {
            src.file = Some(base);
        }
        d.driver.get_or_insert_with(Default::default).format = Some(base_format);
        if persistent {
            self.save_config(h, def)?;
        }
        if let Err(e) = std::fs::remove_file(overlay) {
            log::warn!("cannot remove the committed overlay {overlay}: {e}");
        }
        Ok(())
    }
}
