//! Host devices (`<hostdev>`) plugged into and out of a running VM. A device is leased
//! from the node device driver for the domain before its shim plugs it in (a managed PCI
//! function detached for it; a USB device's node comes open and reaches QEMU as a
//! descriptor), and the lease goes back when the plug fails or when the guest has let the
//! device go (DEVICE_REMOVED); the domain's other leases stand.
//!
//! The driver keeps the running domain's devices ([`HeldDevice`]) so that a device being
//! plugged in is not asked for twice, and so that an unplugged one's lease is found by
//! the alias the event names.

use std::sync::Arc;

use vireo_driver::{DriverError, Result};
use vireo_proto::remote::{event, Domain as Handle};
use vireo_proto::vireo::{
    procs as vprocs, ShimAttachArgs, ShimAttachRet, VIREO_PROGRAM, VIREO_VERSION,
};
use vireo_rpc::client::CallError;
use vireo_xml::{Domain, Hostdev, HostdevSource};

use crate::devlease::HeldDevice;
use crate::driver::QemuDriver;
use crate::hotplug::shim_error;

/// libvirt's words for a host device a running domain does not have.
pub(crate) fn not_found(h: &Hostdev) -> DriverError {
    DriverError::DeviceMissing(match &h.source {
        HostdevSource::Pci(a) => format!(
            "host pci device {:04x}:{:02x}:{:02x}.{:x} not found",
            a.domain, a.bus, a.slot, a.function
        ),
        HostdevSource::Usb(u) => match (u.address, u.ids) {
            (Some(a), _) => format!("host usb device {:03}.{:03} not found", a.bus, a.device),
            (None, Some(i)) => format!(
                "host usb device vendor=0x{:04x} product=0x{:04x} not found",
                i.vendor, i.product
            ),
            (None, None) => "host usb device not found".into(),
        },
        HostdevSource::Mdev(m) => format!(
            "mediated device '{}' not found",
            vireo_xml::format_uuid(&m.uuid)
        ),
    })
}

/// The alias of the host device of the running definition `running` that `want` names.
pub(crate) fn live_alias(running: &Domain, want: &Hostdev) -> Result<String> {
    running
        .devices
        .hostdevs
        .iter()
        .enumerate()
        .find(|(_, h)| h.same_device(want))
        .map(|(i, h)| {
            h.alias
                .clone()
                .unwrap_or_else(|| crate::cmdline::hostdev_alias(h, i))
        })
        .ok_or_else(|| not_found(want))
}

impl QemuDriver {
    /// Plugs host device `hd` into the running VM of `h`: checked, placed on the guest's
    /// PCI bus if it sits there, leased, then plugged in by the shim. On failure nothing
    /// is left: the lease goes back, QEMU is as it was.
    pub(crate) async fn attach_hostdev_live(
        self: &Arc<Self>,
        h: &Handle,
        mut hd: Hostdev,
    ) -> Result<()> {
        let running = self.live_def(h).await?;
        let in_use = |hd: &Hostdev| {
            DriverError::OperationInvalid(format!(
                "{} is in use by driver QEMU, domain {}",
                hd.describe(),
                h.name
            ))
        };
        if running.devices.hostdevs.iter().any(|x| x.same_device(&hd)) {
            return Err(in_use(&hd));
        }
        // What QEMU cannot have is refused before anything is leased.
        let graphics = !running.devices.graphics.is_empty();
        let fdset = matches!(hd.source, HostdevSource::Usb(_)).then_some(crate::cmdline::USB_FDSET);
        crate::cmdline::hostdev_device(&hd, "hostdev0", fdset, graphics).map_err(|e| {
            let crate::cmdline::CmdlineError::Unsupported(m) = e;
            DriverError::ConfigUnsupported(m)
        })?;
        // Held from here on: a second call for the same device is refused.
        {
            let mut reg = self.write();
            let o = reg
                .by_uuid
                .get_mut(&h.uuid)
                .filter(|o| o.active())
                .ok_or_else(|| DriverError::OperationInvalid("domain is not running".into()))?;
            if o.hostdevs.iter().any(|x| x.dev.same_device(&hd)) {
                return Err(in_use(&hd));
            }
            o.hostdevs.push(HeldDevice {
                alias: String::new(),
                dev: hd.clone(),
                name: None,
            });
        }
        let r = self.plug_hostdev(h, &mut hd).await;
        let mut leftover = None;
        {
            let mut reg = self.write();
            let o = reg.by_uuid.get_mut(&h.uuid);
            let active = o.as_ref().is_some_and(|o| o.active());
            if let Some(o) = o {
                if let Some(i) = o
                    .hostdevs
                    .iter()
                    .position(|x| x.alias.is_empty() && x.dev.same_device(&hd))
                {
                    match &r {
                        Ok((alias, name)) if active => {
                            let held = &mut o.hostdevs[i];
                            held.alias.clone_from(alias);
                            held.name = Some(name.clone());
                            held.dev = hd.clone();
                            o.leased = true;
                        }
                        _ => {
                            o.hostdevs.remove(i);
                        }
                    }
                }
            }
            // Stopped meanwhile: the lease goes back (if the stop did not take it).
            if let (Ok((alias, name)), false) = (&r, active) {
                leftover = Some(HeldDevice {
                    alias: alias.clone(),
                    dev: hd.clone(),
                    name: Some(name.clone()),
                });
            }
        }
        if let Some(held) = leftover {
            self.release_hostdev(h.uuid, &held).await;
        }
        let (alias, _) = r?;
        self.publish_device(h.uuid, event::ID_DEVICE_ADDED, alias);
        Ok(())
    }

    /// Places, leases and plugs in `hd`; returns its alias and its node device. The lease
    /// goes back when the shim does not plug the device in.
    async fn plug_hostdev(
        self: &Arc<Self>,
        h: &Handle,
        hd: &mut Hostdev,
    ) -> Result<(String, String)> {
        if hd.on_guest_pci() {
            let what = format!("<hostdev> {}", hd.describe());
            self.place_live(h, &mut hd.address, true, &what).await?;
        }
        let (name, lease) = self.lease_hostdev(h.uuid, &h.name, hd).await?;
        // A USB device's node goes to QEMU; a VFIO group QEMU opens itself by its path,
        // and a group opens once at a time: the lease's descriptor is closed.
        let fds = match hd.source {
            HostdevSource::Usb(_) => vec![lease.fd],
            _ => Vec::new(),
        };
        let args = ShimAttachArgs {
            xml: vireo_xml::format_root(&*hd, "hostdev"),
            shown: None,
            flags: 0,
        };
        let r: std::result::Result<(ShimAttachRet, _), CallError> = match self.shim_conn(h) {
            Ok(conn) if fds.is_empty() => {
                conn.call_fds(
                    VIREO_PROGRAM,
                    VIREO_VERSION,
                    vprocs::SHIM_ATTACH_DEVICE,
                    &args,
                )
                .await
            }
            Ok(conn) => {
                conn.call_sending_fds(
                    VIREO_PROGRAM,
                    VIREO_VERSION,
                    vprocs::SHIM_ATTACH_DEVICE,
                    &args,
                    fds,
                )
                .await
            }
            Err(e) => {
                self.give_back(h, hd, &name).await;
                return Err(e);
            }
        };
        match r {
            Ok((ret, _)) => Ok((ret.alias, name)),
            Err(e) => {
                self.give_back(h, hd, &name).await;
                Err(shim_error(e))
            }
        }
    }

    async fn give_back(&self, h: &Handle, hd: &Hostdev, name: &str) {
        let held = HeldDevice {
            alias: String::new(),
            dev: hd.clone(),
            name: Some(name.to_string()),
        };
        self.release_hostdev(h.uuid, &held).await;
    }

    /// The guest let device `alias` go: if it is a host device, its lease goes back.
    pub(crate) fn hostdev_removed(&self, uuid: [u8; 16], alias: &str) {
        let held = {
            let mut reg = self.write();
            reg.by_uuid.get_mut(&uuid).and_then(|o| {
                let i = o.hostdevs.iter().position(|x| x.alias == alias)?;
                Some(o.hostdevs.remove(i))
            })
        };
        if let (Some(held), Some(peers), Ok(rt)) = (
            held,
            self.peers.get().cloned(),
            tokio::runtime::Handle::try_current(),
        ) {
            rt.spawn(async move {
                crate::devlease::release_held(peers.as_ref(), uuid, &held).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(xml: &str) -> Hostdev {
        vireo_xml::parse_root(xml, "hostdev").unwrap()
    }

    #[test]
    fn missing_devices_are_named_as_libvirt_does() {
        let pci = one(
            "<hostdev mode='subsystem' type='pci'><source><address domain='0' bus='1' \
             slot='0' function='0'/></source></hostdev>",
        );
        assert_eq!(
            not_found(&pci).to_string(),
            DriverError::DeviceMissing("host pci device 0000:01:00.0 not found".into()).to_string()
        );
        let usb = one(
            "<hostdev mode='subsystem' type='usb'><source><vendor id='0x0627'/>\
             <product id='0x0001'/></source></hostdev>",
        );
        assert!(not_found(&usb)
            .to_string()
            .contains("host usb device vendor=0x0627 product=0x0001 not found"));
        let running = vireo_xml::Domain::parse(
            "<domain type='qemu'><name>v</name><memory>1024</memory><os><type>hvm</type></os>\
             <devices><hostdev mode='subsystem' type='usb'><source><vendor id='0x0627'/>\
             <product id='0x0001'/></source><alias name='hostdev3'/></hostdev>\
             <hostdev mode='subsystem' type='pci'><source><address bus='2'/></source>\
             </hostdev></devices></domain>",
        )
        .unwrap();
        assert_eq!(live_alias(&running, &usb).unwrap(), "hostdev3");
        let pci2 = one(
            "<hostdev mode='subsystem' type='pci'><source><address bus='2'/></source>\
             </hostdev>",
        );
        assert_eq!(live_alias(&running, &pci2).unwrap(), "hostdev1");
        assert!(live_alias(&running, &pci).is_err());
    }
}
