//! A domain's host devices (`<hostdev>`), leased from the node device driver through its
//! public API: at start every device is asked for (a managed one is detached by that
//! driver), at the end every lease of the domain is given back. Leases the driver still
//! keeps for domains that are not running here (the VM ended while this daemon or the
//! node device daemon was down) are given back when this daemon starts and before any
//! new lease.
//!
//! QEMU 7.2 opens a PCI function's VFIO group by its path (`/dev/vfio/N`, which the node
//! device driver made this daemon's user's), and a group opens once at a time: the
//! descriptor the lease brings is closed before QEMU starts.

use std::collections::HashSet;
use std::sync::Arc;

use vireo_driver::{DriverError, Result};
use vireo_xml::{Domain, HostdevSource};

use crate::driver::QemuDriver;

impl QemuDriver {
    /// Leases every `<hostdev>` of `def` for it. On failure, whatever was leased is given
    /// back and the error names the device.
    pub(crate) async fn lease_hostdevs(self: &Arc<Self>, def: &Domain) -> Result<()> {
        if def.devices.hostdevs.is_empty() {
            return Ok(());
        }
        let peers = self.peers.get().ok_or_else(|| {
            DriverError::OperationInvalid(
                "the domain has host devices, but no node device driver is reachable".into(),
            )
        })?;
        self.reconcile_leases().await;
        let owner = def.uuid.unwrap_or_default();
        for h in &def.devices.hostdevs {
            let r = match &h.source {
                HostdevSource::Pci(a) => peers
                    .lease_device(&a.nodedev_name(), owner, &def.name, h.managed)
                    .await
                    .map(drop),
                HostdevSource::Usb(_) | HostdevSource::Mdev(_) => {
                    Err(DriverError::ConfigUnsupported(format!(
                        "<hostdev> {}: the node device driver does not lease this kind of \
                         device yet (PCI functions only)",
                        h.describe()
                    )))
                }
            };
            if let Err(e) = r {
                if let Err(u) = peers.release_devices(owner).await {
                    log::warn!("cannot give back the devices of {}: {u}", def.name);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Gives back every device leased to domain `owner` (errors are logged: the leases
    /// are reconciled later).
    pub(crate) async fn release_hostdevs(&self, owner: [u8; 16]) {
        let Some(peers) = self.peers.get() else {
            return;
        };
        if let Err(e) = peers.release_devices(owner).await {
            log::warn!(
                "cannot give back the host devices of {}: {e}",
                vireo_xml::format_uuid(&owner)
            );
        }
    }

    /// Gives back the leases this daemon's user holds for domains that are not running
    /// (nor starting) here.
    pub async fn reconcile_leases(self: &Arc<Self>) {
        let Some(peers) = self.peers.get() else {
            return;
        };
        let leases = match peers.device_leases().await {
            Ok(l) => l,
            Err(e) => {
                log::debug!("cannot list the device leases: {e}");
                return;
            }
        };
        let keep: HashSet<[u8; 16]> = {
            let reg = self.read();
            reg.by_uuid
                .values()
                .filter(|o| o.id.is_some() || o.starting)
                .map(|o| o.uuid)
                .collect()
        };
        let stale: HashSet<[u8; 16]> = leases
            .into_iter()
            .map(|(_, owner)| owner)
            .filter(|o| !keep.contains(o))
            .collect();
        for owner in stale {
            log::info!(
                "giving back the host devices of {}, which is not running",
                vireo_xml::format_uuid(&owner)
            );
            self.release_hostdevs(owner).await;
        }
    }
}
