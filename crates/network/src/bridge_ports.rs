//! Ports on host bridges: the Vireo extension behind `<interface type='bridge'>`. The guest
//! interface names a bridge the host already has (no libvirt network); the network driver
//! makes the tap in it, with the interface's bandwidth and filter, exactly as for a port
//! of a network, so the QEMU driver still needs no network privilege. A port in no bridge
//! (an empty bridge name) is a plain tap, up: `<interface type='ethernet'>`.
//!
//! Such ports belong to no network and do not show in `net-port-list`. They are runtime
//! state in `RUN/network/bridge-ports/UUID.xml` (+ `.tap`, `.filtered`), found by their
//! owner (the domain) and tap name, and released when the guest's interface goes, or when
//! the driver finds their tap gone (the guest stopped while no daemon ran).

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use vireo_xml::{format_uuid, NetworkPortDef, PlugType, PortPlug};

use crate::error::{NetworkError, Result};
use crate::ports::{read_ports, remove_port_files, tap_alive, PortObj, MAX_PORTS};
use crate::{bandwidth, check_flags, host, NetworkDriver};

/// Whether `name` is a Linux bridge of this host.
fn is_bridge(name: &str) -> bool {
    host::run("ip", &["-o", "link", "show", "dev", name, "type", "bridge"])
        .is_ok_and(|out| !out.trim().is_empty())
}

impl NetworkDriver {
    pub(crate) fn bridge_ports_dir(&self) -> PathBuf {
        self.run_dir.join("bridge-ports")
    }

    /// Reads the ports on host bridges (at start), dropping those whose tap is gone.
    pub(crate) fn load_bridge_ports(&self) {
        let (live, stale) = read_ports(&self.bridge_ports_dir());
        self.stale_bindings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(stale);
        let mut ports = self.bridge_ports();
        for p in live {
            ports.insert(p.def.uuid.unwrap_or_default(), p);
        }
    }

    fn bridge_ports(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<[u8; 16], PortObj>> {
        self.bridge_ports.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the ports whose tap is gone (their guest stopped).
    fn prune_bridge_ports(&self) {
        let mut ports = self.bridge_ports();
        let gone: Vec<[u8; 16]> = ports
            .iter()
            .filter(|(_, p)| !tap_alive(p.tap.as_deref(), p.tap_index))
            .map(|(u, _)| *u)
            .collect();
        for u in gone {
            if let Some(p) = ports.remove(&u) {
                self.release_bridge_port(&p);
            }
        }
    }

    fn release_bridge_port(&self, p: &PortObj) {
        let uuid = p.def.uuid.unwrap_or_default();
        self.unbind(p);
        bandwidth::remove(&uuid);
        remove_port_files(
            &self
                .bridge_ports_dir()
                .join(format!("{}.xml", format_uuid(&uuid))),
        );
    }

    /// A port and its tap device in host bridge `bridge` (empty: in none), for the port
    /// definition `xml` (owner, MAC address, bandwidth); with the interface's
    /// `<filterref>` (XML) bound to the tap. Returns the port's UUID, the tap's name and
    /// its descriptor.
    pub fn bridge_port_create_tap(
        &self,
        bridge: &str,
        xml: &str,
        filterref: Option<&str>,
        flags: u32,
    ) -> Result<([u8; 16], String, OwnedFd)> {
        check_flags(flags, 0)?;
        self.release_stale_bindings();
        self.prune_bridge_ports();
        let ethernet = bridge.is_empty();
        if !ethernet && !host::valid_link_name(bridge) {
            return Err(NetworkError::InvalidArg(format!(
                "invalid bridge name '{bridge}'"
            )));
        }
        if !ethernet && !host::link_exists(bridge) {
            return Err(NetworkError::Invalid(format!(
                "bridge '{bridge}' does not exist on this host"
            )));
        }
        if !ethernet && !is_bridge(bridge) {
            return Err(NetworkError::Invalid(format!(
                "'{bridge}' is not a bridge (a Linux bridge device is needed)"
            )));
        }
        let mut def = NetworkPortDef::parse(xml)?;
        if def.virtualport.is_some() || def.vlan.is_some() {
            return Err(NetworkError::Unsupported(
                "<virtualport> and <vlan> on a host bridge are not supported by Vireo yet".into(),
            ));
        }
        let mac = def
            .mac
            .ok_or_else(|| NetworkError::InvalidArg("network port has no mac".into()))?;
        let uuid = *def
            .uuid
            .get_or_insert_with(|| *uuid::Uuid::new_v4().as_bytes());
        if !ethernet {
            let mut plug = PortPlug::network(bridge);
            plug.plug_type = PlugType::Bridge;
            def.plug = Some(plug);
        }
        // Holding the lock while the tap is made: the count and the UUID stay true.
        let mut ports = self.bridge_ports();
        if ports.contains_key(&uuid) {
            return Err(NetworkError::Exists(format!(
                "network port {} already exists",
                format_uuid(&uuid)
            )));
        }
        if ports.len() >= MAX_PORTS {
            return Err(NetworkError::Invalid(format!(
                "too many ports on host bridges (at most {MAX_PORTS})"
            )));
        }
        let bw = def.bandwidth.clone();
        let (p, fd) = self.plug_tap(
            def,
            mac,
            bridge,
            bw.as_ref(),
            filterref,
            None,
            &self.bridge_ports_dir(),
        )?;
        let name = p.tap.clone().unwrap_or_default();
        ports.insert(uuid, p);
        Ok((uuid, name, fd))
    }

    /// Releases the port of domain `owner` whose tap is `ifname`, and the tap if it still
    /// exists (an interface unplugged from a running guest).
    pub fn bridge_port_delete(&self, owner: &[u8; 16], ifname: &str, flags: u32) -> Result<()> {
        check_flags(flags, 0)?;
        self.release_stale_bindings();
        let mut ports = self.bridge_ports();
        let uuid = ports
            .iter()
            .find(|(_, p)| p.def.owner.uuid == *owner && p.tap.as_deref() == Some(ifname))
            .map(|(u, _)| *u)
            .ok_or_else(|| {
                NetworkError::NoPort(format!(
                    "no port of domain {} with tap '{ifname}' on a host bridge",
                    format_uuid(owner)
                ))
            })?;
        let Some(p) = ports.remove(&uuid) else {
            return Ok(());
        };
        self.release_bridge_port(&p);
        if tap_alive(p.tap.as_deref(), p.tap_index) {
            host::delete_link(ifname)?;
        }
        Ok(())
    }
}
