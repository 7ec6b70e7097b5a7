//! The running VM's host devices (`<hostdev>`) as they are now. The QEMU daemon leases a
//! device from the node device driver and asks the shim to plug it in: a PCI function or
//! a mediated device is `device_add vfio-pci` (QEMU opens the VFIO group by its path); a
//! USB device's node comes as a descriptor, added to a new fd set (`add-fd`) that
//! `device_add usb-host,hostdevice=/dev/fdset/N` opens. A device the guest let go
//! (`DEVICE_DELETED`) is forgotten and its fd set removed; the daemon gives its lease back.

use std::os::fd::{AsFd, OwnedFd};

use anyhow::{anyhow, bail};
use serde_json::{json, Value};
use vireo_xml::{Hostdev, HostdevSource};

use crate::hotplug::{free_id, Unsupported};
use crate::vm::{OpFailed, OpInvalid, Vm};

/// A host device of the running VM.
#[derive(Debug, Clone)]
pub struct LiveHostdev {
    pub def: Hostdev,
    /// Its QEMU id, which the live XML shows as its alias.
    pub id: String,
    /// A USB device's fd set (its descriptor in QEMU).
    pub fdset: Option<u64>,
}

/// The host devices QEMU was started with, with the ids and fd sets the command line
/// gives them.
pub fn initial(all: &[Hostdev]) -> Vec<LiveHostdev> {
    let mut usb = 0u64;
    all.iter()
        .enumerate()
        .map(|(i, h)| {
            let fdset = matches!(h.source, HostdevSource::Usb(_)).then(|| {
                usb += 1;
                u64::from(vireo_qemu::cmdline::USB_FDSET) + usb - 1
            });
            LiveHostdev {
                def: h.clone(),
                id: vireo_qemu::cmdline::hostdev_alias(h, i),
                fdset,
            }
        })
        .collect()
}

fn unsupported(e: vireo_qemu::cmdline::CmdlineError) -> anyhow::Error {
    let vireo_qemu::cmdline::CmdlineError::Unsupported(m) = e;
    anyhow!(Unsupported(m))
}

/// The id of a host device plugged in: the user's alias when it is one (`ua-…`) and
/// free, else the first free `hostdevN`.
fn pick_id(live: &[LiveHostdev], alias: Option<&str>) -> anyhow::Result<String> {
    let taken = |id: &str| live.iter().any(|h| h.id == id);
    match alias {
        Some(a) if !a.starts_with("ua-") => bail!(OpInvalid(format!(
            "a device alias must start with 'ua-' ('{a}' does not)"
        ))),
        Some(a) if taken(a) => bail!(OpInvalid(format!("non unique alias detected: {a}"))),
        Some(a) => Ok(a.to_string()),
        None => Ok(free_id("hostdev", taken)),
    }
}

impl Vm {
    /// Plugs host device `h` (leased by the daemon; placed on the guest's PCI bus when it
    /// sits there) into QEMU, a USB device through its node's descriptor `fd`. Returns its
    /// alias. On failure QEMU is left as it was.
    pub async fn attach_hostdev(&self, h: Hostdev, fd: Option<OwnedFd>) -> anyhow::Result<String> {
        self.require_running()?;
        let what = h.describe();
        let usb = matches!(h.source, HostdevSource::Usb(_));
        let (id, with) = {
            let live = self.hostdevs();
            if live.iter().any(|x| x.def.same_device(&h)) {
                bail!(OpInvalid(format!(
                    "{what} is in use by driver QEMU, domain {}",
                    self.def.name
                )));
            }
            let id = pick_id(&live, h.alias.as_deref())?;
            let with: Vec<Hostdev> = live
                .iter()
                .map(|x| x.def.clone())
                .chain(std::iter::once(h.clone()))
                .collect();
            (id, with)
        };
        let graphics = !self.def.devices.graphics.is_empty();
        // Checked before QEMU is asked anything.
        vireo_qemu::cmdline::hostdev_device(&h, &id, usb.then_some(0), graphics)
            .map_err(unsupported)?;
        let fd = match (usb, fd) {
            (true, Some(fd)) => Some(fd),
            (false, None) => None,
            (true, None) => bail!(OpInvalid(format!(
                "{what}: the device's node was not passed"
            ))),
            (false, Some(_)) => bail!(OpInvalid(format!(
                "{what}: QEMU opens the device's VFIO group itself; no descriptor is taken"
            ))),
        };
        if h.is_vfio() {
            // The guest's memory is mapped for the device's DMA: QEMU must lock it.
            let mut def = self.def.clone();
            def.devices.hostdevs = with;
            if let Some(kib) = vireo_qemu::cmdline::vfio_memlock_kib(&def) {
                self.raise_qemu_memlock(kib.saturating_mul(1024));
            }
        }
        let qmp = self.qmp();
        let fdset = match &fd {
            Some(fd) => {
                let r = qmp
                    .execute_with_fd("add-fd", Some(json!({ "opaque": id })), fd.as_fd())
                    .await
                    .map_err(|e| anyhow!(OpFailed(format!("cannot pass {what} to QEMU: {e}"))))?;
                let Some(set) = r.get("fdset-id").and_then(Value::as_u64) else {
                    bail!(OpFailed(format!(
                        "cannot pass {what} to QEMU: add-fd gave no fd set ({r})"
                    )));
                };
                Some(set)
            }
            None => None,
        };
        // The descriptor is QEMU's now (in the fd set); ours goes.
        drop(fd);
        let set = fdset.map(|s| u32::try_from(s).unwrap_or(u32::MAX));
        let device =
            vireo_qemu::cmdline::hostdev_device(&h, &id, set, graphics).map_err(unsupported);
        let r = match device {
            Ok(device) => qmp
                .execute("device_add", Some(device))
                .await
                .map_err(|e| anyhow!(OpFailed(format!("cannot plug {what} in: {e}")))),
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            if let Some(s) = fdset {
                self.remove_fdset(s).await;
            }
            return Err(e);
        }
        let mut def = h;
        def.alias = Some(id.clone());
        self.hostdevs().push(LiveHostdev {
            def,
            id: id.clone(),
            fdset,
        });
        Ok(id)
    }

    /// The QEMU id of the host device with this alias.
    pub(crate) fn hostdev_id(&self, alias: &str) -> Option<String> {
        self.hostdevs()
            .iter()
            .find(|h| h.id == alias || h.def.alias.as_deref() == Some(alias))
            .map(|h| h.id.clone())
    }

    /// Whether the VM has a host device with QEMU id `id`.
    pub(crate) fn has_hostdev(&self, id: &str) -> bool {
        self.hostdevs().iter().any(|h| h.id == id)
    }

    /// A host device the guest let go: forgotten, a USB device's fd set removed; returns
    /// its alias.
    pub(crate) async fn hostdev_deleted(&self, id: &str) -> Option<String> {
        let gone = {
            let mut live = self.hostdevs();
            let i = live.iter().position(|h| h.id == id)?;
            live.remove(i)
        };
        if let Some(s) = gone.fdset {
            self.remove_fdset(s).await;
        }
        Some(gone.id)
    }

    /// Closes QEMU's descriptors of fd set `set`.
    async fn remove_fdset(&self, set: u64) {
        if let Err(e) = self
            .qmp()
            .execute("remove-fd", Some(json!({ "fdset-id": set })))
            .await
        {
            eprintln!("vireo-shim: cannot remove fd set {set}: {e}");
        }
    }

    /// Raises the locked-memory limit of QEMU (running) to `bytes`, soft and hard, as at
    /// start. Raising the hard limit needs CAP_SYS_RESOURCE: without it the limit stays
    /// and the log says so (QEMU then fails to map the device, naming the reason).
    fn raise_qemu_memlock(&self, bytes: u64) {
        let pid = self.pid() as libc::pid_t;
        if pid <= 0 {
            return;
        }
        let mut now = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: prlimit with a null new limit only writes the struct we pass, which
        // lives through the call.
        let got = unsafe { libc::prlimit(pid, libc::RLIMIT_MEMLOCK, std::ptr::null(), &mut now) };
        if got == 0 && now.rlim_cur >= bytes {
            return;
        }
        let lim = libc::rlimit {
            rlim_cur: bytes,
            rlim_max: bytes.max(if got == 0 { now.rlim_max } else { 0 }),
        };
        // SAFETY: prlimit reads the struct we pass and changes only QEMU's limit; no old
        // limit is asked for.
        if unsafe { libc::prlimit(pid, libc::RLIMIT_MEMLOCK, &lim, std::ptr::null_mut()) } != 0 {
            eprintln!(
                "vireo-shim: cannot raise QEMU's locked-memory limit to {bytes} bytes for \
                 VFIO devices: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(xml: &str) -> Hostdev {
        vireo_xml::parse_root(xml, "hostdev").unwrap()
    }

    #[test]
    fn started_devices_keep_the_command_line_ids_and_fd_sets() {
        let pci = dev(
            "<hostdev mode='subsystem' type='pci'><source><address bus='1'/>\
                       </source></hostdev>",
        );
        let usb = dev(
            "<hostdev mode='subsystem' type='usb'><source><vendor id='1'/>\
                       <product id='2'/></source></hostdev>",
        );
        let mut ua = usb.clone();
        ua.alias = Some("ua-stick".into());
        let live = initial(&[pci, usb, ua]);
        let got: Vec<(&str, Option<u64>)> = live.iter().map(|h| (h.id.as_str(), h.fdset)).collect();
        assert_eq!(
            got,
            [
                ("hostdev0", None),
                ("hostdev1", Some(100)),
                ("ua-stick", Some(101))
            ]
        );
        assert_eq!(pick_id(&live, None).unwrap(), "hostdev2");
        assert_eq!(pick_id(&live, Some("ua-x")).unwrap(), "ua-x");
        assert!(pick_id(&live, Some("ua-stick")).is_err());
        assert!(pick_id(&live, Some("hostdev7")).is_err());
    }
}
