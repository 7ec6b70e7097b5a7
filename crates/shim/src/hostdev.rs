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
        let Some(pid) = i32::try_from(self.pid())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            return;
        };
        let now = memlock_of(pid.as_raw_nonzero().get());
        if now.is_some_and(|(cur, _)| cur >= bytes) {
            return;
        }
        let lim = rustix::process::Rlimit {
            current: Some(bytes),
            maximum: Some(bytes.max(now.map_or(0, |(_, max)| max))).filter(|m| *m != u64::MAX),
        };
        let set = || rustix::process::prlimit(Some(pid), rustix::process::Resource::Memlock, lim);
        if let Err(e) = crate::confine::privileged(set) {
            eprintln!(
                "vireo-shim: cannot raise QEMU's locked-memory limit to {bytes} bytes for \
                 VFIO devices: {}",
                std::io::Error::from(e)
            );
        }
    }
}

/// (soft, hard) locked-memory limit of process `pid` from `/proc/PID/limits`
/// (`u64::MAX` for unlimited), None if it cannot be read.
fn memlock_of(pid: i32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    parse_memlock(&text)
}

fn parse_memlock(limits: &str) -> Option<(u64, u64)> {
    let rest = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max locked memory"))?;
    let mut it = rest.split_whitespace().map(|v| match v {
        "unlimited" => Some(u64::MAX),
        v => v.parse().ok(),
    });
    Some((it.next()??, it.next()??))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memlock_limits_are_read() {
        let text = "Limit                     Soft Limit           Hard Limit           Units\n\
                    Max open files            1024                 524288               files\n\
                    Max locked memory         8388608              unlimited            bytes\n";
        assert_eq!(parse_memlock(text), Some((8 << 20, u64::MAX)));
        assert_eq!(parse_memlock("Max open files 1 2 files\n"), None);
        assert!(memlock_of(std::process::id() as i32).is_some());
    }

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
