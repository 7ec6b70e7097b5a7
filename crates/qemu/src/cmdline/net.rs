//! Network interfaces: the `-netdev` backend (user-mode networking or a tap the network
//! driver made) and the guest NIC `-device`; hot-plugged interfaces.

use serde_json::json;
use vireo_xml::InterfaceType;

use super::slots::hotplug_pci_place;
use super::util::Opts;
use super::{unsupported, Builder, Result};

impl<'a> Builder<'a> {
    pub(super) fn interfaces(&mut self) -> Result<()> {
        let def = self.def;
        let mut taps = 0usize;
        for (i, n) in def.devices.interfaces.iter().enumerate() {
            let what = match &n.mac {
                Some(m) => format!("<interface> '{m}'"),
                None => format!("<interface> {i}"),
            };
            // The backend: user-mode networking, or the tap the network driver made.
            let netdev = match n.if_type {
                InterfaceType::User => {
                    if n.source.is_some() {
                        return unsupported(format!(
                            "{what}: <source> is not supported for type='user'"
                        ));
                    }
                    if n.bandwidth.is_some() || n.filterref.is_some() {
                        return unsupported(format!(
                            "{what}: <bandwidth> and <filterref> need an interface on a network"
                        ));
                    }
                    format!("user,id=hostnet{i}")
                }
                t @ (InterfaceType::Network | InterfaceType::Bridge | InterfaceType::Ethernet) => {
                    let src = n.source.as_ref();
                    if t == InterfaceType::Network && src.and_then(|s| s.network.as_ref()).is_none()
                    {
                        return unsupported(format!(
                            "{what}: a network interface needs <source network='…'/>"
                        ));
                    }
                    if t == InterfaceType::Bridge && src.and_then(|s| s.bridge.as_ref()).is_none() {
                        return unsupported(format!(
                            "{what}: a bridge interface needs <source bridge='…'/>"
                        ));
                    }
                    // The network driver made the tap (in the network's bridge, or the
                    // host's); QEMU gets it as a descriptor.
                    let fd = match &self.cfg.tap_fds {
                        Some(fds) => match fds.get(taps) {
                            Some(fd) => *fd,
                            None => {
                                return unsupported(format!(
                                    "{what}: no tap device was made for it"
                                ))
                            }
                        },
                        None => -1,
                    };
                    taps += 1;
                    format!("tap,fd={fd},id=hostnet{i}")
                }
                t @ InterfaceType::Direct => {
                    return unsupported(format!(
                        "<interface type='{t}'> is not supported by Vireo yet; use type='network', \
                         'bridge', 'ethernet' or 'user'"
                    ))
                }
                t => return unsupported(format!("<interface type='{t}'> is not supported")),
            };
            let Some(mac) = &n.mac else {
                return unsupported(
                    "interface without MAC address (the driver assigns one before starting)",
                );
            };
            let driver = nic_driver(n, &what)?;
            self.arg2("-netdev", netdev);
            let addr = self.pci.place(n.address.as_ref(), &what)?;
            let dev = Opts::new(driver)
                .set("netdev", format!("hostnet{i}"))
                .set("id", format!("net{i}"))
                .set("mac", mac)
                .set_opt("host_mtu", n.mtu)
                .raw(&addr)
                .set_opt("bootindex", self.net_boot.get(i).copied().flatten())
                .done();
            self.arg2("-device", dev);
        }
        Ok(())
    }
}

/// The QEMU device model of a guest interface, after the checks every interface passes.
fn nic_driver(n: &vireo_xml::Interface, what: &str) -> Result<&'static str> {
    match n.driver_name() {
        None | Some("qemu") => {}
        Some(other) => {
            return unsupported(format!("{what}: <driver name='{other}'> is not supported"))
        }
    }
    if n.driver
        .as_ref()
        .and_then(|d| d.queues)
        .is_some_and(|q| q > 1)
    {
        return unsupported(format!("{what}: multiple queues are not supported"));
    }
    let model = n.model.as_deref().unwrap_or("rtl8139");
    let driver = match model {
        "virtio" => "virtio-net-pci",
        "e1000" => "e1000",
        "e1000e" => "e1000e",
        "rtl8139" => "rtl8139",
        other => {
            return unsupported(format!(
                "{what}: model '{other}' is not supported (virtio, e1000, e1000e, rtl8139)"
            ))
        }
    };
    if n.mtu.is_some() && driver != "virtio-net-pci" {
        return unsupported(format!("{what}: <mtu> needs model 'virtio'"));
    }
    Ok(driver)
}

/// The `device_add` arguments of a guest interface hot-plugged with QEMU id `id` on
/// backend `netdev`, at its `<address>` (the driver gives one).
pub fn interface_device(
    n: &vireo_xml::Interface,
    id: &str,
    netdev: &str,
) -> Result<serde_json::Value> {
    let what = match &n.mac {
        Some(m) => format!("<interface> '{m}'"),
        None => "<interface>".to_string(),
    };
    let Some(mac) = &n.mac else {
        return unsupported("interface without MAC address");
    };
    let driver = nic_driver(n, &what)?;
    let mut v = json!({"driver": driver, "id": id, "netdev": netdev, "mac": mac});
    if let Some(mtu) = n.mtu {
        v["host_mtu"] = json!(mtu);
    }
    hotplug_pci_place(&mut v, n.address.as_ref(), &what)?;
    Ok(v)
}
