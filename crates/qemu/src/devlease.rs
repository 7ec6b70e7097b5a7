//! A domain's host devices (`<hostdev>`), leased from the node device driver through its
//! public API: at start every device is asked for (a managed one is detached by that
//! driver), at the end every lease of the domain is given back. Leases the driver still
//! keeps for domains that are not running here (the VM ended while this daemon was down)
//! are given back when this daemon starts and before any new lease; a release the node
//! device daemon was not there for is tried again until it is back.
//!
//! A device plugged into a running VM is leased the same way before its shim plugs it in
//! (and given back when that fails); one the guest let go is given back alone. The driver
//! keeps, per running domain, its devices with their aliases and node device names
//! ([`HeldDevice`]).
//!
//! QEMU 7.2 opens a PCI function's VFIO group by its path (`/dev/vfio/N`, which the node
//! device driver made this daemon's user's), and a group opens once at a time: the
//! descriptor the lease brings is closed before QEMU starts.

use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use vireo_driver::{DriverError, Result};
use vireo_xml::{Domain, Hostdev, HostdevSource, NodeDevCapability, NodeDeviceDef, StartupPolicy};

use crate::driver::QemuDriver;
use crate::peers::{DeviceLease, Peers};

/// A host device of a running domain, leased to it.
#[derive(Debug, Clone)]
pub(crate) struct HeldDevice {
    /// Its alias in the running VM (empty while it is being plugged in).
    pub(crate) alias: String,
    pub(crate) dev: Hostdev,
    /// Its node device, when known (else found again from `dev` at its release: a
    /// domain this daemon reconnected to).
    pub(crate) name: Option<String>,
}

/// What a start leased: the USB devices' nodes, open (QEMU gets them as descriptors), and
/// every device held.
pub(crate) struct Leased {
    pub(crate) usb: Vec<OwnedFd>,
    pub(crate) held: Vec<HeldDevice>,
}

/// How long a release the node device daemon was not there for waits before it is tried
/// again, at first and at most.
const RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(500);
const RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(30);

/// The domains whose leases are to be given back (their VM ended), until the node device
/// driver has taken them.
#[derive(Default)]
pub(crate) struct PendingReleases {
    owners: std::sync::Mutex<HashSet<[u8; 16]>>,
    /// Held while a release or a domain's new leases are under way, so that a release
    /// never takes a lease a new start of the same domain has just taken over.
    turn: tokio::sync::Mutex<()>,
}

impl PendingReleases {
    fn owners(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 16]>> {
        self.owners.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `owner`'s VM ended: its leases are to be given back.
    pub(crate) fn add(&self, owner: [u8; 16]) {
        self.owners().insert(owner);
    }
}

/// Gives back the leases of `owner` (its VM ended, [`PendingReleases::add`]), trying
/// again while the node device daemon is away; a new start of the domain meanwhile ends
/// it (that start's leases are the domain's own).
pub(crate) async fn release_when_ended(
    peers: Arc<dyn Peers>,
    pending: Arc<PendingReleases>,
    owner: [u8; 16],
) {
    let mut pause = RETRY_FIRST;
    loop {
        {
            let _turn = pending.turn.lock().await;
            if !pending.owners().contains(&owner) {
                return;
            }
            match peers.release_devices(owner).await {
                Ok(()) => {
                    pending.owners().remove(&owner);
                    return;
                }
                Err(e) if pause == RETRY_FIRST => log::warn!(
                    "cannot give back the host devices of {} yet ({e}); trying again",
                    vireo_xml::format_uuid(&owner)
                ),
                Err(_) => {}
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RETRY_MAX);
    }
}

/// The node device a `<hostdev>` names: a PCI function by its address, a mediated device
/// by its UUID, a USB device by its place or its ids (one device only), found through the
/// node device driver's listing.
async fn device_name(peers: &dyn Peers, h: &Hostdev) -> Result<String> {
    let missing =
        || DriverError::DeviceMissing(format!("{} was not found on the host", h.describe()));
    match &h.source {
        HostdevSource::Pci(a) => Ok(a.nodedev_name()),
        HostdevSource::Mdev(m) => {
            let prefix = format!("mdev_{}", vireo_xml::format_uuid(&m.uuid).replace('-', "_"));
            let names = peers.node_device_names("mdev").await?;
            names
                .into_iter()
                .find(|n| *n == prefix || n.starts_with(&format!("{prefix}_")))
                .ok_or_else(missing)
        }
        HostdevSource::Usb(u) => {
            let mut found = Vec::new();
            for name in peers.node_device_names("usb_device").await? {
                let Ok(xml) = peers.node_device_xml(&name).await else {
                    continue;
                };
                let Ok(dev) = NodeDeviceDef::parse(&xml) else {
                    continue;
                };
                let fits = dev.capability.iter().any(|c| match c {
                    NodeDevCapability::UsbDevice(c) => {
                        u.address
                            .is_none_or(|a| a.bus == c.bus && a.device == c.device)
                            && u.ids.is_none_or(|i| {
                                u32::from(i.vendor) == c.vendor.id.0
                                    && u32::from(i.product) == c.product.id.0
                            })
                    }
                    _ => false,
                });
                if fits {
                    found.push(name);
                }
            }
            match found.len() {
                0 => Err(missing()),
                1 => Ok(found.remove(0)),
                n => Err(DriverError::OperationFailed(format!(
                    "{} matches {n} USB devices of the host; give its <address bus device>",
                    h.describe()
                ))),
            }
        }
    }
}

/// Gives back the lease of `held`, one host device of domain `owner` (see
/// [`QemuDriver::release_hostdev`]).
pub(crate) async fn release_held(peers: &dyn Peers, owner: [u8; 16], held: &HeldDevice) {
    let name = match &held.name {
        Some(n) => Ok(n.clone()),
        None => device_name(peers, &held.dev).await,
    };
    let r = match name {
        Ok(n) => peers.release_device(owner, &n).await,
        Err(e) => Err(e),
    };
    if let Err(e) = r {
        log::warn!(
            "cannot give back {} of {}: {e}",
            held.dev.describe(),
            vireo_xml::format_uuid(&owner)
        );
    }
}

impl QemuDriver {
    /// Leases every `<hostdev>` of `def` for it; returns the USB devices' nodes, open, in
    /// the order of [`crate::cmdline::usb_host_devices`] (QEMU gets them as descriptors),
    /// and the devices held, with the aliases the command line gives them.
    /// A USB device with `startupPolicy='optional'` that is not there is left out of
    /// `def` (and so of the running VM), as libvirt does. On failure, whatever was leased
    /// is given back and the error names the device.
    pub(crate) async fn lease_hostdevs(self: &Arc<Self>, def: &mut Domain) -> Result<Leased> {
        if def.devices.hostdevs.is_empty() {
            return Ok(Leased {
                usb: Vec::new(),
                held: Vec::new(),
            });
        }
        let peers = self.peers.get().ok_or_else(|| {
            DriverError::OperationInvalid(
                "the domain has host devices, but no node device driver is reachable".into(),
            )
        })?;
        let owner = def.uuid.unwrap_or_default();
        // Its own leases from a run whose end could not give them back are this start's.
        let turn = self.pending_releases.turn.lock().await;
        self.pending_releases.owners().remove(&owner);
        self.give_back_stale().await;
        let mut usb = Vec::new();
        let mut absent = Vec::new();
        let mut names = Vec::new();
        for (i, h) in def.devices.hostdevs.iter().enumerate() {
            let optional = matches!(
                &h.source,
                HostdevSource::Usb(u) if u.startup_policy == Some(StartupPolicy::Optional)
            );
            let r = match device_name(peers.as_ref(), h).await {
                Err(DriverError::DeviceMissing(why)) if optional => {
                    log::info!("{}: {why}; left out (startupPolicy='optional')", def.name);
                    absent.push(i);
                    continue;
                }
                Ok(name) => {
                    let r = peers.lease_device(&name, owner, &def.name, h.managed).await;
                    names.push(name);
                    r
                }
                Err(e) => Err(e),
            };
            match r {
                Ok(l) if matches!(h.source, HostdevSource::Usb(_)) => usb.push(l.fd),
                Ok(_) => {}
                Err(e) => {
                    if let Err(u) = peers.release_devices(owner).await {
                        log::warn!("cannot give back the devices of {}: {u}", def.name);
                    }
                    return Err(e);
                }
            }
        }
        drop(turn);
        for i in absent.into_iter().rev() {
            def.devices.hostdevs.remove(i);
        }
        // The devices left (those named), in order.
        let held = names
            .into_iter()
            .zip(def.devices.hostdevs.iter().enumerate())
            .map(|(name, (i, h))| HeldDevice {
                alias: crate::cmdline::hostdev_alias(h, i),
                dev: h.clone(),
                name: Some(name),
            })
            .collect();
        Ok(Leased { usb, held })
    }

    /// Leases host device `h` to running domain `owner` (`owner_name`): its node device
    /// found, then leased (a managed PCI function detached for it). Returns the device's
    /// name and the lease.
    pub(crate) async fn lease_hostdev(
        self: &Arc<Self>,
        owner: [u8; 16],
        owner_name: &str,
        h: &Hostdev,
    ) -> Result<(String, DeviceLease)> {
        let peers = self.peers.get().ok_or_else(|| {
            DriverError::OperationInvalid(format!(
                "cannot lease {}: no node device driver is reachable",
                h.describe()
            ))
        })?;
        self.give_back_stale().await;
        let name = device_name(peers.as_ref(), h).await?;
        let lease = peers
            .lease_device(&name, owner, owner_name, h.managed)
            .await?;
        Ok((name, lease))
    }

    /// Gives back the lease of one host device of domain `owner` (unplugged, or never
    /// plugged in); its other leases stand. Errors are logged: a lease left behind goes
    /// at the domain's end.
    pub(crate) async fn release_hostdev(&self, owner: [u8; 16], held: &HeldDevice) {
        if let Some(peers) = self.peers.get() {
            release_held(peers.as_ref(), owner, held).await;
        }
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

    /// At the daemon's start: as [`Self::give_back_stale`] when some domain it knows has
    /// host devices (else no call is made, and no connection to the node device driver
    /// kept; a transient domain's lease left behind is given back before the next lease).
    pub async fn reconcile_leases(self: &Arc<Self>) {
        let any = self
            .read()
            .by_uuid
            .values()
            .any(|o| !o.def.devices.hostdevs.is_empty());
        if any {
            self.give_back_stale().await;
        }
    }

    /// Gives back the leases this daemon's user holds for domains that are not running
    /// (nor starting) here.
    async fn give_back_stale(self: &Arc<Self>) {
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
