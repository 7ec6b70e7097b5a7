//! Network ports: the public port API (a guest interface's place on a network), and the
//! Vireo extension that also makes the port's tap device and hands it over as a
//! descriptor.
//!
//! Ports are runtime state: `RUN/network/ports/NET/UUID.xml`, and for a port with a tap
//! `UUID.tap` holding the device's name. They outlive a restart of the daemon; a port whose
//! tap is gone (its guest stopped, also while no daemon ran) is released when the driver
//! next looks.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use vireo_driver::store;
use vireo_proto::network::{port_create_flags, port_param, NetworkPort as PortHandle};
use vireo_proto::remote::{Network as NetHandle, Uuid};
use vireo_proto::typed::{TypedParam, TypedValue};
use vireo_xml::{format_uuid, NetworkPortDef, PortPlug};

use crate::error::{NetworkError, Result};
use crate::{bandwidth, check_flags, host, tap, NetObj, NetworkDriver};

/// Ports one network may have.
pub const MAX_PORTS: usize = vireo_proto::network::NETWORK_PORT_LIST_MAX;

pub(crate) struct PortObj {
    pub(crate) def: NetworkPortDef,
    /// The tap device made for it, if any: its name and interface index.
    pub(crate) tap: Option<String>,
    pub(crate) tap_index: Option<u32>,
    /// Its tap has a filter binding (by the tap's name).
    pub(crate) filtered: bool,
}

/// Whether the port's tap still exists: a link of its name with its interface index.
pub(crate) fn tap_alive(name: Option<&str>, index: Option<u32>) -> bool {
    let Some(name) = name else { return false };
    match (host::link_index(name), index) {
        (Some(now), Some(then)) => now == then,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

fn no_port(uuid: &Uuid) -> NetworkError {
    NetworkError::NoPort(format!(
        "no network port with matching uuid '{}'",
        format_uuid(uuid)
    ))
}

/// The filter binding of a port's tap: the interface's `<filterref>`, with the guest's
/// address as `IP` when the interface gives none and the network has a static DHCP host
/// for its MAC address.
fn binding_xml(
    obj: Option<&NetObj>,
    def: &NetworkPortDef,
    tap: &str,
    filterref: &str,
) -> Result<String> {
    use vireo_xml::{escape, FilterParam, FilterRef};
    let mut fr: FilterRef = vireo_xml::parse_root(filterref, "filterref")?;
    let mac = def.mac.map(|m| m.to_string()).unwrap_or_default();
    if let (Some(obj), false) = (obj, fr.parameters.iter().any(|p| p.name == "IP")) {
        let net = obj.live.as_ref().unwrap_or(&obj.def);
        let fixed = net
            .ips
            .iter()
            .flat_map(|ip| ip.dhcp_hosts())
            .find(|h| h.mac.map(|m| m.to_string()) == Some(mac.clone()))
            .and_then(|h| h.ip);
        if let Some(ip) = fixed {
            fr.parameters.push(FilterParam {
                name: "IP".into(),
                value: ip.to_string(),
            });
        }
    }
    let owner = &def.owner;
    Ok(format!(
        "<filterbinding><owner><name>{}</name><uuid>{}</uuid></owner>\
         <portdev name='{}'/><mac address='{}'/>{}</filterbinding>",
        escape(&owner.name),
        format_uuid(&owner.uuid),
        escape(tap),
        escape(&mac),
        vireo_xml::format_root(&fr, "filterref")
    ))
}

/// Writes a port's record into `dir`: `UUID.xml`, and `UUID.tap` (`NAME INDEX`) and
/// `UUID.filtered` when it has a tap and a filter binding.
fn save_port(dir: &std::path::Path, p: &PortObj) -> Result<()> {
    let uuid = p.def.uuid.unwrap_or_default();
    let path = dir.join(format!("{}.xml", format_uuid(&uuid)));
    if let Some(t) = &p.tap {
        let line = format!("{t} {}", p.tap_index.unwrap_or(0));
        store::write_atomic(&path.with_extension("tap"), line.as_bytes())?;
    }
    if p.filtered {
        store::write_atomic(&path.with_extension("filtered"), b"")?;
    }
    store::write_atomic(&path, p.def.format().as_bytes())?;
    Ok(())
}

/// Reads the port records of `dir`; those whose tap is gone are removed and returned
/// apart (their filter bindings, by tap name, still to be removed).
pub(crate) fn read_ports(dir: &std::path::Path) -> (Vec<PortObj>, Vec<String>) {
    let mut live = Vec::new();
    let mut stale = Vec::new();
    let Ok(paths) = store::list_xml(dir) else {
        return (live, stale);
    };
    for path in paths {
        let def = match fs::read_to_string(&path)
            .ok()
            .and_then(|x| NetworkPortDef::parse(&x).ok())
        {
            Some(d) if d.uuid.is_some() => d,
            _ => {
                log::warn!("skipping port {}", path.display());
                continue;
            }
        };
        // `NAME INDEX`.
        let tapfile = fs::read_to_string(path.with_extension("tap")).ok();
        let mut words = tapfile.as_deref().unwrap_or("").split_whitespace();
        let tap = words.next().map(str::to_string);
        let tap_index = words.next().and_then(|i| i.parse().ok());
        let filtered = path.with_extension("filtered").exists();
        if tap.is_some() && !tap_alive(tap.as_deref(), tap_index) {
            log::info!(
                "releasing port {} ({}): its tap is gone",
                format_uuid(&def.uuid.unwrap_or_default()),
                dir.display()
            );
            remove_port_files(&path);
            if let (true, Some(t)) = (filtered, tap) {
                stale.push(t);
            }
            continue;
        }
        live.push(PortObj {
            def,
            tap,
            tap_index,
            filtered,
        });
    }
    (live, stale)
}

pub(crate) fn remove_port_files(xml: &std::path::Path) {
    let _ = store::remove(xml);
    let _ = fs::remove_file(xml.with_extension("tap"));
    let _ = fs::remove_file(xml.with_extension("filtered"));
}

impl NetworkDriver {
    fn ports_dir(&self, net: &str) -> PathBuf {
        self.run_dir.join("ports").join(net)
    }

    /// Reads the ports of every network (at start), dropping those whose tap is gone.
    pub(crate) fn load_ports(&self, nets: &mut BTreeMap<String, NetObj>) {
        for (name, obj) in nets.iter_mut() {
            let (live, stale) = read_ports(&self.ports_dir(name));
            self.stale_bindings
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(stale);
            for p in live {
                obj.ports.insert(p.def.uuid.unwrap_or_default(), p);
            }
        }
    }

    /// Checks and completes a port definition for an active network: its UUID, and a plug
    /// into the network's bridge.
    fn new_port(&self, obj: &NetObj, xml: &str, flags: u32) -> Result<NetworkPortDef> {
        check_flags(
            flags,
            port_create_flags::RECLAIM | port_create_flags::VALIDATE,
        )?;
        let Some(live) = &obj.live else {
            return Err(NetworkError::Invalid(format!(
                "network '{}' is not active",
                obj.def.name
            )));
        };
        let mut def = NetworkPortDef::parse(xml)?;
        let uuid = *def
            .uuid
            .get_or_insert_with(|| *uuid::Uuid::new_v4().as_bytes());
        if obj.ports.contains_key(&uuid) && flags & port_create_flags::RECLAIM == 0 {
            return Err(NetworkError::Exists(format!(
                "network port {} already exists",
                format_uuid(&uuid)
            )));
        }
        if obj.ports.len() >= MAX_PORTS {
            return Err(NetworkError::Invalid(format!(
                "too many ports on network '{}' (at most {MAX_PORTS})",
                obj.def.name
            )));
        }
        match live.bridge_name() {
            Some(br)
                if live.has_own_bridge()
                    || live.forward_mode() == Some(vireo_xml::ForwardMode::Bridge) =>
            {
                def.plug = Some(PortPlug::network(br));
            }
            _ => {
                return Err(NetworkError::Unsupported(format!(
                    "ports of network '{}' (forward mode '{}') are not supported by Vireo yet",
                    obj.def.name,
                    live.forward_mode().map_or("none", |m| m.as_str())
                )))
            }
        }
        Ok(def)
    }

    /// `NETWORK_PORT_CREATE_XML`: a port without a device (its user makes one).
    pub fn port_create(&self, h: &NetHandle, xml: &str, flags: u32) -> Result<PortHandle> {
        let mut nets = self.lock();
        let obj = Self::find(&mut nets, h)?;
        let def = self.new_port(obj, xml, flags)?;
        let p = PortObj {
            def,
            tap: None,
            tap_index: None,
            filtered: false,
        };
        save_port(&self.ports_dir(&obj.def.name), &p)?;
        let uuid = p.def.uuid.unwrap_or_default();
        obj.ports.insert(uuid, p);
        Ok(PortHandle {
            net: obj.handle(),
            uuid,
        })
    }

    /// The Vireo extension: a port and its tap device in the network's bridge; returns the
    /// port, the device's name and the descriptor that keeps the device.
    pub fn port_create_tap(
        &self,
        h: &NetHandle,
        xml: &str,
        filterref: Option<&str>,
        flags: u32,
    ) -> Result<(PortHandle, String, std::os::fd::OwnedFd)> {
        self.release_stale_bindings();
        let mut nets = self.lock();
        let obj = Self::find(&mut nets, h)?;
        let def = self.new_port(obj, xml, flags)?;
        let mac = def
            .mac
            .ok_or_else(|| NetworkError::InvalidArg("network port has no mac".into()))?;
        let bridge = def
            .plug
            .as_ref()
            .and_then(|p| p.bridge.clone())
            .unwrap_or_default();
        // The port's bandwidth (else its portgroup's), on the tap.
        let live = obj.live.as_ref().unwrap_or(&obj.def);
        let bw = def.bandwidth.clone().or_else(|| {
            live.portgroup(def.group.as_deref())
                .and_then(|g| g.bandwidth.clone())
        });
        let (p, fd) = self.plug_tap(
            def,
            mac,
            &bridge,
            bw.as_ref(),
            filterref,
            Some(obj),
            &self.ports_dir(&obj.def.name),
        )?;
        let name = p.tap.clone().unwrap_or_default();
        let uuid = p.def.uuid.unwrap_or_default();
        obj.ports.insert(uuid, p);
        Ok((
            PortHandle {
                net: obj.handle(),
                uuid,
            },
            name,
            fd,
        ))
    }

    /// Makes a port's tap in `bridge`, with its bandwidth and its interface's filter, and
    /// records it in `dir`; on failure nothing of it is left.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn plug_tap(
        &self,
        def: NetworkPortDef,
        mac: vireo_xml::MacAddr,
        bridge: &str,
        bw: Option<&vireo_xml::Bandwidth>,
        filterref: Option<&str>,
        net: Option<&NetObj>,
        dir: &std::path::Path,
    ) -> Result<(PortObj, std::os::fd::OwnedFd)> {
        let t = tap::create(bridge, mac.0)?;
        let port_id = def.uuid.unwrap_or_default();
        if let Some(bw) = bw {
            if let Err(e) = bandwidth::apply(&port_id, &t.name, bw) {
                bandwidth::remove(&port_id);
                let _ = host::delete_link(&t.name);
                return Err(e);
            }
        }
        // The interface's filter, bound to the tap before the guest can use it.
        if let Some(fr) = filterref {
            let bound = self
                .filters
                .get()
                .ok_or_else(|| {
                    NetworkError::Invalid(
                        "the interface has a <filterref>, but no filter driver is reachable".into(),
                    )
                })
                .and_then(|f| f.bind(&binding_xml(net, &def, &t.name, fr)?));
            if let Err(e) = bound {
                bandwidth::remove(&port_id);
                let _ = host::delete_link(&t.name);
                return Err(e);
            }
        }
        let p = PortObj {
            def,
            tap: Some(t.name.clone()),
            tap_index: Some(t.index),
            filtered: filterref.is_some(),
        };
        if let Err(e) = save_port(dir, &p) {
            self.unbind(&p);
            bandwidth::remove(&port_id);
            let _ = host::delete_link(&t.name);
            return Err(e);
        }
        Ok((p, t.fd))
    }

    /// Runs `f` on the port (after releasing it if its tap is gone).
    fn with_port<T>(&self, ph: &PortHandle, f: impl FnOnce(&NetObj, &PortObj) -> T) -> Result<T> {
        let mut nets = self.lock();
        let obj = Self::find(&mut nets, &ph.net)?;
        let gone = obj
            .ports
            .get(&ph.uuid)
            .is_some_and(|p| p.tap.as_deref().is_some_and(|t| !host::link_exists(t)));
        if gone {
            self.forget_port(obj, &ph.uuid);
        }
        let p = obj.ports.get(&ph.uuid).ok_or_else(|| no_port(&ph.uuid))?;
        Ok(f(obj, p))
    }

    fn forget_port(&self, obj: &mut NetObj, uuid: &Uuid) -> Option<PortObj> {
        let p = obj.ports.remove(uuid)?;
        self.unbind(&p);
        if p.tap.is_some() {
            bandwidth::remove(uuid);
        }
        remove_port_files(
            &self
                .ports_dir(&obj.def.name)
                .join(format!("{}.xml", format_uuid(uuid))),
        );
        Some(p)
    }

    /// Removes the filter binding of a port's tap, if it has one.
    pub(crate) fn unbind(&self, p: &PortObj) {
        let (true, Some(t)) = (p.filtered, &p.tap) else {
            return;
        };
        match self.filters.get() {
            Some(f) => {
                if let Err(e) = f.unbind(t) {
                    log::warn!("cannot remove the filter binding of {t}: {e}");
                }
            }
            None => self
                .stale_bindings
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(t.clone()),
        }
    }

    pub fn port_lookup(&self, h: &NetHandle, uuid: &Uuid) -> Result<PortHandle> {
        self.with_port(
            &PortHandle {
                net: h.clone(),
                uuid: *uuid,
            },
            |o, _| PortHandle {
                net: o.handle(),
                uuid: *uuid,
            },
        )
    }

    /// The network's ports (those whose tap is gone are released first).
    pub fn port_list(&self, h: &NetHandle, flags: u32) -> Result<Vec<PortHandle>> {
        check_flags(flags, 0)?;
        self.release_stale_bindings();
        let mut nets = self.lock();
        let obj = Self::find(&mut nets, h)?;
        let gone: Vec<Uuid> = obj
            .ports
            .iter()
            .filter(|(_, p)| p.tap.is_some() && !tap_alive(p.tap.as_deref(), p.tap_index))
            .map(|(u, _)| *u)
            .collect();
        for u in gone {
            self.forget_port(obj, &u);
        }
        let net = obj.handle();
        Ok(obj
            .ports
            .keys()
            .map(|u| PortHandle {
                net: net.clone(),
                uuid: *u,
            })
            .collect())
    }

    pub fn port_xml(&self, ph: &PortHandle, flags: u32) -> Result<String> {
        check_flags(flags, 0)?;
        self.with_port(ph, |_, p| p.def.format())
    }

    /// `NETWORK_PORT_DELETE`: releases the port; its tap device, if it still exists (a
    /// guest interface unplugged), goes with it.
    pub fn port_delete(&self, ph: &PortHandle, flags: u32) -> Result<()> {
        check_flags(flags, 0)?;
        self.release_stale_bindings();
        let mut nets = self.lock();
        let obj = Self::find(&mut nets, &ph.net)?;
        let p = self
            .forget_port(obj, &ph.uuid)
            .ok_or_else(|| no_port(&ph.uuid))?;
        if let Some(t) = &p.tap {
            host::delete_link(t)?;
        }
        Ok(())
    }

    /// `NETWORK_PORT_GET_PARAMETERS`: the port's bandwidth, every field (0 when unset).
    pub fn port_parameters(&self, ph: &PortHandle, flags: u32) -> Result<Vec<TypedParam>> {
        check_flags(flags, 0)?;
        self.with_port(ph, |_, p| {
            let bw = p.def.bandwidth.as_ref();
            let inb = bw.and_then(|b| b.inbound.as_ref());
            let outb = bw.and_then(|b| b.outbound.as_ref());
            let v =
                |x: Option<u64>| TypedValue::UInt(x.unwrap_or(0).min(u64::from(u32::MAX)) as u32);
            vec![
                (port_param::IN_AVERAGE, v(inb.and_then(|r| r.average))),
                (port_param::IN_PEAK, v(inb.and_then(|r| r.peak))),
                (port_param::IN_BURST, v(inb.and_then(|r| r.burst))),
                (port_param::IN_FLOOR, v(inb.and_then(|r| r.floor))),
                (port_param::OUT_AVERAGE, v(outb.and_then(|r| r.average))),
                (port_param::OUT_PEAK, v(outb.and_then(|r| r.peak))),
                (port_param::OUT_BURST, v(outb.and_then(|r| r.burst))),
            ]
            .into_iter()
            .map(|(f, value)| TypedParam {
                field: f.to_string(),
                value,
            })
            .collect()
        })
    }

    /// `NETWORK_PORT_SET_PARAMETERS`: the port's bandwidth, field by field (0 unsets a
    /// field; a direction left with no average has no limit), put on its tap at once.
    pub fn port_set_parameters(
        &self,
        ph: &PortHandle,
        params: &[TypedParam],
        flags: u32,
    ) -> Result<()> {
        check_flags(flags, 0)?;
        let mut nets = self.lock();
        let obj = Self::find(&mut nets, &ph.net)?;
        let dir = self.ports_dir(&obj.def.name);
        let p = obj
            .ports
            .get_mut(&ph.uuid)
            .ok_or_else(|| no_port(&ph.uuid))?;
        let mut bw = p.def.bandwidth.clone().unwrap_or_default();
        for prm in params {
            let TypedValue::UInt(v) = prm.value else {
                return Err(NetworkError::InvalidArg(format!(
                    "parameter '{}' must be an unsigned int",
                    prm.field
                )));
            };
            let v = (v != 0).then_some(u64::from(v));
            let (rate, which) = match prm.field.as_str() {
                port_param::IN_AVERAGE => (&mut bw.inbound, 0),
                port_param::IN_PEAK => (&mut bw.inbound, 1),
                port_param::IN_BURST => (&mut bw.inbound, 2),
                port_param::IN_FLOOR => (&mut bw.inbound, 3),
                port_param::OUT_AVERAGE => (&mut bw.outbound, 0),
                port_param::OUT_PEAK => (&mut bw.outbound, 1),
                port_param::OUT_BURST => (&mut bw.outbound, 2),
                other => {
                    return Err(NetworkError::InvalidArg(format!(
                        "unknown parameter '{other}'"
                    )))
                }
            };
            if which == 3 && v.is_some() {
                return Err(NetworkError::Unsupported(
                    "an inbound floor is not supported by Vireo yet".into(),
                ));
            }
            let r = rate.get_or_insert_with(Default::default);
            match which {
                0 => r.average = v,
                1 => r.peak = v,
                2 => r.burst = v,
                _ => r.floor = v,
            }
        }
        for rate in [&mut bw.inbound, &mut bw.outbound] {
            if rate
                .as_ref()
                .is_some_and(|r| r.average.is_none() && r.floor.is_none())
            {
                *rate = None;
            }
        }
        let bw = (bw.inbound.is_some() || bw.outbound.is_some()).then_some(bw);
        if let Some(t) = p
            .tap
            .clone()
            .filter(|_| tap_alive(p.tap.as_deref(), p.tap_index))
        {
            // The old limits go, the new ones come.
            let _ = host::run("tc", &["qdisc", "del", "dev", &t, "root"]);
            bandwidth::remove(&ph.uuid);
            if let Some(b) = &bw {
                bandwidth::apply(&ph.uuid, &t, b)?;
            }
        }
        p.def.bandwidth = bw;
        save_port(&dir, p)?;
        Ok(())
    }

    /// Reattaches the taps of a network's ports to its bridge (after the network was
    /// started again while its guests ran).
    pub(crate) fn reattach_ports(&self, obj: &NetObj) {
        let Some(br) = obj.live.as_ref().and_then(|l| l.bridge_name()) else {
            return;
        };
        for p in obj.ports.values() {
            if let Some(t) = p
                .tap
                .as_deref()
                .filter(|_| tap_alive(p.tap.as_deref(), p.tap_index))
            {
                if let Err(e) = host::run("ip", &["link", "set", "dev", t, "master", br, "up"]) {
                    log::warn!("cannot put {t} back into {br}: {e}");
                }
            }
        }
    }
}
