//! The network driver (`vireo-networkd`, and `vireod`): virtual networks.
//!
//! A started network of the kinds libvirt makes itself (NAT, routed, open, isolated) owns
//! its bridge ([`host`]), its firewall table ([`firewall`]) and its `dnsmasq`
//! ([`dnsmasq`]); a `bridge`-mode network uses a bridge the host already has and owns
//! nothing. Destroying a network removes exactly what it made.
//!
//! Definitions live in `CONFIG/network/NAME.xml` (atomic writes), autostart marks in
//! `CONFIG/network/autostart/NAME`, the definition in force of an active network in
//! `RUN/network/NAME.xml`, dnsmasq's configuration and log beside it, and its leases in
//! `STATE/network/NAME.leases`. A restarted driver finds its active networks there and
//! adopts their bridge, rules and dnsmasq (restoring what went missing).

pub mod bandwidth;
mod bridge_ports;
pub mod dnsmasq;
mod error;
pub mod firewall;
pub mod host;
mod ports;
pub mod tap;

use std::collections::BTreeMap;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use vireo_driver::events::{EventBus, ObjectEvent};
use vireo_driver::store;
use vireo_proto::network::{
    event, list_flags, update_command, update_flags, update_section, DhcpLease as LeaseRecord,
    NetworkEventLifecycleBody, XML_INACTIVE,
};
use vireo_proto::remote::{procs, Network as NetHandle, Uuid};
use vireo_xml::{
    format_uuid, DhcpHost, DhcpRange, DnsHost, DnsTxt, ForwardMode, IpFamily, MacAddr, NetworkDef,
    XmlElement,
};

pub use error::{NetworkError, Result};

/// Where the network driver binds traffic filters to its ports' taps: the filter driver's
/// public API (binding create/delete), supplied by the daemon. Called from a blocking
/// thread.
pub trait Filters: Send + Sync {
    /// `NWFILTER_BINDING_CREATE_XML`.
    fn bind(&self, binding_xml: &str) -> Result<()>;
    /// `NWFILTER_BINDING_DELETE` of the binding of `portdev` (one that is gone is fine).
    fn unbind(&self, portdev: &str) -> Result<()>;
}

/// Networks one host may define.
pub const MAX_NETWORKS: usize = vireo_proto::network::NETWORK_LIST_MAX;

/// What a fresh system daemon does about libvirt's `default` network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultNetwork {
    /// Nothing (session daemons).
    None,
    /// Defined, not started on its own (an instance under `--root`: tests, embedding).
    Defined,
    /// Defined and autostarted, as libvirt's packages do.
    Autostart,
}

struct NetObj {
    /// The persistent definition (or the transient one), UUID and bridge always set for
    /// networks with their own bridge.
    def: NetworkDef,
    /// The definition in force while active.
    live: Option<NetworkDef>,
    persistent: bool,
    autostart: bool,
    dnsmasq: Option<dnsmasq::Dnsmasq>,
    /// Its ports, by UUID.
    ports: BTreeMap<Uuid, ports::PortObj>,
}

impl NetObj {
    fn new(def: NetworkDef, persistent: bool) -> NetObj {
        NetObj {
            def,
            live: None,
            persistent,
            autostart: false,
            dnsmasq: None,
            ports: BTreeMap::new(),
        }
    }

    fn uuid(&self) -> Uuid {
        self.def.uuid.unwrap_or_default()
    }

    fn handle(&self) -> NetHandle {
        NetHandle {
            name: self.def.name.clone(),
            uuid: self.uuid(),
        }
    }

    fn active(&self) -> bool {
        self.live.is_some()
    }
}

pub struct NetworkDriver {
    cfg_dir: PathBuf,
    run_dir: PathBuf,
    state_dir: PathBuf,
    nets: Mutex<BTreeMap<String, NetObj>>,
    events: EventBus<ObjectEvent>,
    filters: std::sync::OnceLock<std::sync::Arc<dyn Filters>>,
    /// Filter bindings of ports released before the filter driver was known.
    stale_bindings: Mutex<Vec<String>>,
    /// Ports on host bridges (`<interface type='bridge'>`), by UUID.
    bridge_ports: Mutex<BTreeMap<Uuid, ports::PortObj>>,
}

impl NetworkDriver {
    /// Loads the definitions, adopts the networks that were active, defines `default` at
    /// the very first start (see [`DefaultNetwork`]) and starts the autostart networks.
    pub fn open(
        config_dir: &Path,
        run_dir: &Path,
        state_dir: &Path,
        events: EventBus<ObjectEvent>,
        default: DefaultNetwork,
    ) -> Result<NetworkDriver> {
        let cfg_dir = config_dir.join("network");
        let first_start = !cfg_dir.exists();
        let d = NetworkDriver {
            cfg_dir,
            run_dir: run_dir.join("network"),
            state_dir: state_dir.join("network"),
            nets: Mutex::new(BTreeMap::new()),
            events,
            filters: std::sync::OnceLock::new(),
            stale_bindings: Mutex::new(Vec::new()),
            bridge_ports: Mutex::new(BTreeMap::new()),
        };
        for dir in [&d.cfg_dir, &d.run_dir, &d.state_dir] {
            fs::create_dir_all(dir)
                .map_err(|e| NetworkError::io(format!("cannot create {}", dir.display()), e))?;
        }
        d.load()?;
        d.load_bridge_ports();
        if first_start && default != DefaultNetwork::None {
            let h = d.define_xml(DEFAULT_XML, 0)?;
            if default == DefaultNetwork::Autostart {
                d.set_autostart(&h, true)?;
            }
        }
        d.autostart();
        Ok(d)
    }

    /// Gives the driver its way to the filter driver (once; later calls are ignored).
    pub fn set_filters(&self, f: std::sync::Arc<dyn Filters>) {
        let _ = self.filters.set(f);
    }

    /// Removes the filter bindings of ports released while the filter driver could not be
    /// asked (at start); from a blocking thread.
    pub(crate) fn release_stale_bindings(&self) {
        let Some(f) = self.filters.get() else { return };
        let stale = std::mem::take(
            &mut *self
                .stale_bindings
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for dev in stale {
            if let Err(e) = f.unbind(&dev) {
                log::warn!("cannot remove the filter binding of {dev}: {e}");
            }
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, BTreeMap<String, NetObj>> {
        self.nets.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn def_path(&self, name: &str) -> PathBuf {
        self.cfg_dir.join(format!("{name}.xml"))
    }

    fn autostart_path(&self, name: &str) -> PathBuf {
        self.cfg_dir.join("autostart").join(name)
    }

    fn state_path(&self, name: &str) -> PathBuf {
        self.run_dir.join(format!("{name}.xml"))
    }

    fn dnsmasq_files(&self, name: &str) -> dnsmasq::Files {
        dnsmasq::Files {
            conf: self.run_dir.join(format!("{name}.conf")),
            pid: self.run_dir.join(format!("{name}.pid")),
            leases: self.state_dir.join(format!("{name}.leases")),
            log: self.run_dir.join(format!("{name}.log")),
        }
    }

    fn load(&self) -> Result<()> {
        let read = |path: &Path| -> Option<NetworkDef> {
            match fs::read_to_string(path)
                .map_err(|e| NetworkError::io(format!("cannot read {}", path.display()), e))
                .and_then(|x| Ok(NetworkDef::parse(&x)?))
            {
                Ok(d) if d.uuid.is_some() => Some(d),
                Ok(_) => {
                    log::warn!("skipping network {}: no UUID", path.display());
                    None
                }
                Err(e) => {
                    log::warn!("skipping network {}: {e}", path.display());
                    None
                }
            }
        };
        let mut nets = self.lock();
        for path in store::list_xml(&self.cfg_dir)? {
            let Some(def) = read(&path) else { continue };
            let name = def.name.clone();
            let mut obj = NetObj::new(def, true);
            obj.autostart = self.autostart_path(&name).exists();
            nets.insert(name.clone(), obj);
        }
        // State files: networks that were active when the last daemon left. They still
        // are if their bridge is there; what went missing of them is put back.
        for path in store::list_xml(&self.run_dir)? {
            let Some(live) = read(&path) else { continue };
            let name = live.name.clone();
            let obj = nets
                .entry(name.clone())
                .or_insert_with(|| NetObj::new(live.clone(), false));
            match self.adopt(&live) {
                Ok(dm) => {
                    obj.live = Some(live);
                    obj.dnsmasq = dm;
                }
                Err(e) => {
                    log::warn!("network '{name}' was active but cannot be adopted: {e}");
                    let _ = self.teardown(&live, None);
                    let _ = store::remove(&path);
                    if !obj.persistent {
                        nets.remove(&name);
                    }
                }
            }
        }
        self.load_ports(&mut nets);
        Ok(())
    }

    /// Takes over an active network a previous daemon started.
    fn adopt(&self, live: &NetworkDef) -> Result<Option<dnsmasq::Dnsmasq>> {
        if !live.has_own_bridge() {
            return Ok(None);
        }
        let br = live.bridge_name().unwrap_or_default();
        if !host::link_exists(br) {
            return Err(NetworkError::Internal(format!("bridge '{br}' is gone")));
        }
        if let Some(r) = rules(live) {
            if !firewall::present(br) {
                firewall::apply(&r)?;
            }
        }
        let files = self.dnsmasq_files(&live.name);
        match dnsmasq::Dnsmasq::adopt(files.clone()) {
            Some(d) => Ok(Some(d)),
            None => match dnsmasq_config(live) {
                Some(c) => Ok(Some(dnsmasq::Dnsmasq::start(
                    files.clone(),
                    &c.render(&files.leases),
                )?)),
                None => Ok(None),
            },
        }
    }

    fn autostart(&self) {
        let names: Vec<String> = self
            .lock()
            .values()
            .filter(|o| o.autostart && !o.active())
            .map(|o| o.def.name.clone())
            .collect();
        for n in names {
            let h = match self.lookup_by_name(&n) {
                Ok(h) => h,
                Err(_) => continue,
            };
            if let Err(e) = self.create(&h) {
                log::warn!("autostart of network '{n}' failed: {e}");
            }
        }
    }

    // -----------------------------------------------------------------------------------
    // Lookups and lists
    // -----------------------------------------------------------------------------------

    pub(crate) fn find<'a>(
        nets: &'a mut BTreeMap<String, NetObj>,
        h: &NetHandle,
    ) -> Result<&'a mut NetObj> {
        // By name first (the usual case), else by UUID (a renamed handle).
        let key = if nets.get(&h.name).is_some_and(|o| o.uuid() == h.uuid) {
            Some(h.name.clone())
        } else {
            nets.iter()
                .find(|(_, o)| o.uuid() == h.uuid)
                .map(|(k, _)| k.clone())
        };
        key.and_then(|k| nets.get_mut(&k)).ok_or_else(|| {
            no_network(&format!(
                "no network with matching uuid '{}' ({})",
                format_uuid(&h.uuid),
                h.name
            ))
        })
    }

    pub fn lookup_by_name(&self, name: &str) -> Result<NetHandle> {
        self.lock()
            .get(name)
            .map(NetObj::handle)
            .ok_or_else(|| no_network(&format!("no network with matching name '{name}'")))
    }

    pub fn lookup_by_uuid(&self, uuid: &Uuid) -> Result<NetHandle> {
        self.lock()
            .values()
            .find(|o| o.uuid() == *uuid)
            .map(NetObj::handle)
            .ok_or_else(|| {
                no_network(&format!(
                    "no network with matching uuid '{}'",
                    format_uuid(uuid)
                ))
            })
    }

    /// `CONNECT_LIST_ALL_NETWORKS` with libvirt's filter flags.
    pub fn list_all(&self, flags: u32) -> Result<Vec<NetHandle>> {
        use list_flags::*;
        let known = INACTIVE | ACTIVE | PERSISTENT | TRANSIENT | AUTOSTART | NO_AUTOSTART;
        check_flags(flags, known)?;
        let pick = |on: u32, off: u32, v: bool| {
            let f = flags & (on | off);
            f == 0 || f == (on | off) || (v && f == on) || (!v && f == off)
        };
        Ok(self
            .lock()
            .values()
            .filter(|o| {
                pick(ACTIVE, INACTIVE, o.active())
                    && pick(PERSISTENT, TRANSIENT, o.persistent)
                    && pick(AUTOSTART, NO_AUTOSTART, o.autostart)
            })
            .map(NetObj::handle)
            .collect())
    }

    /// Names of the active (or inactive) networks, sorted.
    pub fn names(&self, active: bool) -> Vec<String> {
        self.lock()
            .values()
            .filter(|o| o.active() == active)
            .map(|o| o.def.name.clone())
            .collect()
    }

    pub fn is_active(&self, h: &NetHandle) -> Result<bool> {
        Ok(Self::find(&mut self.lock(), h)?.active())
    }

    pub fn is_persistent(&self, h: &NetHandle) -> Result<bool> {
        Ok(Self::find(&mut self.lock(), h)?.persistent)
    }

    pub fn autostart_of(&self, h: &NetHandle) -> Result<bool> {
        Ok(Self::find(&mut self.lock(), h)?.autostart)
    }

    pub fn bridge_name(&self, h: &NetHandle) -> Result<String> {
        let mut nets = self.lock();
        let o = Self::find(&mut nets, h)?;
        let def = o.live.as_ref().unwrap_or(&o.def);
        def.bridge_name().map(str::to_string).ok_or_else(|| {
            NetworkError::Internal(format!(
                "network '{}' does not have a bridge name.",
                def.name
            ))
        })
    }

    /// The XML: the definition in force while active, unless `XML_INACTIVE`.
    pub fn xml_desc(&self, h: &NetHandle, flags: u32) -> Result<String> {
        check_flags(flags, XML_INACTIVE)?;
        let mut nets = self.lock();
        let o = Self::find(&mut nets, h)?;
        let def = match (&o.live, flags & XML_INACTIVE != 0) {
            (Some(l), false) => l,
            _ => &o.def,
        };
        Ok(def.format())
    }

    // -----------------------------------------------------------------------------------
    // Define, undefine, autostart
    // -----------------------------------------------------------------------------------

    /// Fills what the user may leave out: the UUID, the bridge's name (`virbrN`, the first
    /// free one) and its MAC address.
    fn fill(&self, nets: &BTreeMap<String, NetObj>, def: &mut NetworkDef) -> Result<()> {
        if def.uuid.is_none() {
            def.uuid = Some(*uuid::Uuid::new_v4().as_bytes());
        }
        if !def.has_own_bridge() {
            if def.forward_mode() == Some(ForwardMode::Bridge) && def.bridge_name().is_none() {
                return Err(NetworkError::Xml(vireo_xml::XmlError::Invalid(format!(
                    "network '{}' has forward mode 'bridge' but no bridge name",
                    def.name
                ))));
            }
            return Ok(());
        }
        let taken = |n: &str| {
            nets.values().any(|o| {
                o.def.name != def.name
                    && (o.def.bridge_name() == Some(n)
                        || o.live.as_ref().and_then(|l| l.bridge_name()) == Some(n))
            })
        };
        let bridge = def.bridge.get_or_insert_with(Default::default);
        match bridge.name.as_deref() {
            Some(n) if n.contains("%d") => {
                let template = n.to_string();
                bridge.name = Some(free_bridge(&template, &taken)?);
            }
            Some(n) => {
                if taken(n) {
                    return Err(NetworkError::Exists(format!(
                        "bridge name '{n}' already in use."
                    )));
                }
            }
            None => bridge.name = Some(free_bridge("virbr%d", &taken)?),
        }
        let name = bridge.name.clone().unwrap_or_default();
        if !host::valid_link_name(&name) || !firewall::usable_bridge_name(&name) {
            return Err(NetworkError::Xml(vireo_xml::XmlError::Invalid(format!(
                "invalid bridge name '{name}' (1-15 letters, digits, '-', '_' or '.')"
            ))));
        }
        if bridge.stp.is_none() {
            bridge.stp = Some(true);
        }
        if bridge.delay.is_none() {
            bridge.delay = Some(0);
        }
        if def.mac.is_none() {
            let r = *uuid::Uuid::new_v4().as_bytes();
            def.mac = Some(MacAddr([0x52, 0x54, 0x00, r[0], r[1], r[2]]));
        }
        Ok(())
    }

    pub fn define_xml(&self, xml: &str, flags: u32) -> Result<NetHandle> {
        check_flags(flags, vireo_proto::network::DEFINE_VALIDATE)?;
        let mut def = NetworkDef::parse(xml)?;
        let mut nets = self.lock();
        self.check_unique(&nets, &def)?;
        if !nets.contains_key(&def.name) && nets.len() >= MAX_NETWORKS {
            return Err(NetworkError::Invalid(format!(
                "too many networks (at most {MAX_NETWORKS})"
            )));
        }
        // A redefinition keeps what was filled in before.
        if let Some(o) = nets.get(&def.name) {
            def.uuid = def.uuid.or(o.def.uuid);
            if def.bridge_name().is_none() {
                if let Some(b) = o.def.bridge_name() {
                    def.bridge.get_or_insert_with(Default::default).name = Some(b.to_string());
                }
            }
            def.mac = def.mac.or(o.def.mac);
        }
        self.fill(&nets, &mut def)?;
        store::write_atomic(&self.def_path(&def.name), def.format().as_bytes())?;
        let name = def.name.clone();
        let obj = nets
            .entry(name.clone())
            .or_insert_with(|| NetObj::new(def.clone(), true));
        obj.def = def;
        obj.persistent = true;
        let h = obj.handle();
        drop(nets);
        self.lifecycle(&h, event::DEFINED);
        Ok(h)
    }

    /// Refuses a name taken by another UUID and a UUID taken by another name.
    fn check_unique(&self, nets: &BTreeMap<String, NetObj>, def: &NetworkDef) -> Result<()> {
        if let (Some(o), Some(u)) = (nets.get(&def.name), def.uuid) {
            if o.uuid() != u {
                return Err(NetworkError::Exists(format!(
                    "network '{}' is already defined with uuid {}",
                    def.name,
                    format_uuid(&o.uuid())
                )));
            }
        }
        if let Some(u) = def.uuid {
            if let Some(o) = nets
                .values()
                .find(|o| o.uuid() == u && o.def.name != def.name)
            {
                return Err(NetworkError::Exists(format!(
                    "network '{}' is already defined with uuid {}",
                    o.def.name,
                    format_uuid(&u)
                )));
            }
        }
        Ok(())
    }

    pub fn undefine(&self, h: &NetHandle) -> Result<()> {
        let mut nets = self.lock();
        let o = Self::find(&mut nets, h)?;
        if !o.persistent {
            return Err(NetworkError::Invalid(format!(
                "network '{}' is not persistent",
                o.def.name
            )));
        }
        let name = o.def.name.clone();
        store::remove(&self.def_path(&name))?;
        let _ = store::remove(&self.autostart_path(&name));
        o.autostart = false;
        let h = o.handle();
        if o.active() {
            o.persistent = false;
        } else {
            nets.remove(&name);
        }
        drop(nets);
        self.lifecycle(&h, event::UNDEFINED);
        Ok(())
    }

    pub fn set_autostart(&self, h: &NetHandle, on: bool) -> Result<()> {
        let mut nets = self.lock();
        let o = Self::find(&mut nets, h)?;
        if !o.persistent {
            return Err(NetworkError::Invalid(
                "cannot set autostart for transient network".into(),
            ));
        }
        let path = self.autostart_path(&o.def.name);
        if on {
            store::write_atomic(&path, b"")?;
        } else {
            store::remove(&path)?;
        }
        o.autostart = on;
        Ok(())
    }

    // -----------------------------------------------------------------------------------
    // Start and stop
    // -----------------------------------------------------------------------------------

    /// `NETWORK_CREATE_XML`: a transient network, started.
    pub fn create_xml(&self, xml: &str, flags: u32) -> Result<NetHandle> {
        check_flags(flags, vireo_proto::network::CREATE_VALIDATE)?;
        let mut def = NetworkDef::parse(xml)?;
        let h = {
            let mut nets = self.lock();
            self.check_unique(&nets, &def)?;
            if let Some(o) = nets.get(&def.name) {
                return Err(NetworkError::Exists(if o.active() {
                    format!("network is already active as '{}'", def.name)
                } else {
                    format!("network '{}' is already defined", def.name)
                }));
            }
            self.fill(&nets, &mut def)?;
            let obj = NetObj::new(def, false);
            let h = obj.handle();
            nets.insert(h.name.clone(), obj);
            h
        };
        if let Err(e) = self.create(&h) {
            self.lock().remove(&h.name);
            return Err(e);
        }
        Ok(h)
    }

    /// `NETWORK_CREATE`: starts a defined network.
    pub fn create(&self, h: &NetHandle) -> Result<()> {
        let mut nets = self.lock();
        let o = Self::find(&mut nets, h)?;
        if o.active() {
            return Err(NetworkError::Invalid(format!(
                "network is already active as '{}'",
                o.def.name
            )));
        }
        let def = o.def.clone();
        let others: Vec<NetworkDef> = nets.values().filter_map(|x| x.live.clone()).collect();
        let dm = self.bring_up(&def, &others)?;
        if let Err(e) = store::write_atomic(&self.state_path(&def.name), def.format().as_bytes()) {
            let _ = self.teardown(&def, dm.as_ref());
            return Err(e.into());
        }
        let o = Self::find(&mut nets, h)?;
        o.live = Some(def);
        o.dnsmasq = dm;
        self.reattach_ports(o);
        let h = o.handle();
        drop(nets);
        self.lifecycle(&h, event::STARTED);
        Ok(())
    }

    /// Makes what the network owns: bridge, firewall table, dnsmasq; on failure, nothing
    /// of it stays.
    fn bring_up(
        &self,
        def: &NetworkDef,
        others: &[NetworkDef],
    ) -> Result<Option<dnsmasq::Dnsmasq>> {
        match def.forward_mode() {
            None | Some(ForwardMode::Nat | ForwardMode::Route | ForwardMode::Open) => {}
            Some(ForwardMode::Bridge) => {
                let br = def.bridge_name().unwrap_or_default();
                if def.bridge.as_ref().is_some() && !host::link_exists(br) {
                    return Err(NetworkError::Invalid(format!(
                        "bridge '{br}' of network '{}' does not exist",
                        def.name
                    )));
                }
                return Ok(None);
            }
            Some(m) => {
                return Err(NetworkError::Unsupported(format!(
                    "forward mode '{m}' is not supported by Vireo yet"
                )))
            }
        }
        let br = def.bridge_name().unwrap_or_default().to_string();
        if host::link_exists(&br) {
            return Err(NetworkError::Exists(format!(
                "Network is already in use by interface {br}"
            )));
        }
        // A subnet another network or interface of the host already routes.
        let mine = subnets(def);
        let routes = host::routes()?;
        for (addr, prefix) in &mine {
            if let Some((_, _, dev)) = routes
                .iter()
                .find(|(a, p, _)| host::overlaps(*addr, *prefix, *a, *p))
            {
                return Err(NetworkError::Exists(format!(
                    "Network is already in use by interface {dev}"
                )));
            }
            if let Some(o) = others.iter().find(|o| {
                subnets(o)
                    .iter()
                    .any(|(a, p)| host::overlaps(*addr, *prefix, *a, *p))
            }) {
                return Err(NetworkError::Exists(format!(
                    "Network is already in use by network {}",
                    o.name
                )));
            }
        }
        let bridge = def.bridge.clone().unwrap_or_default();
        host::create_bridge(&host::BridgeSpec {
            name: &br,
            mac: def.mac.map(|m| m.to_string()).as_deref(),
            stp: bridge.stp.unwrap_or(true),
            delay: u32::try_from(bridge.delay.unwrap_or(0)).unwrap_or(u32::MAX),
            mtu: def.mtu,
            addresses: def
                .ips
                .iter()
                .filter_map(|ip| Some((ip.address, ip.prefix_len()?)))
                .collect(),
        })?;
        let rest = (|| -> Result<Option<dnsmasq::Dnsmasq>> {
            if let Some(r) = rules(def) {
                if r.mode != firewall::Mode::Isolated {
                    host::enable_forwarding(false)?;
                    if mine.iter().any(|(a, _)| a.is_ipv6()) {
                        host::enable_forwarding(true)?;
                    }
                }
                firewall::apply(&r)?;
            }
            match dnsmasq_config(def) {
                Some(c) => {
                    let files = self.dnsmasq_files(&def.name);
                    let text = c.render(&files.leases);
                    Ok(Some(dnsmasq::Dnsmasq::start(files, &text)?))
                }
                None => Ok(None),
            }
        })();
        if rest.is_err() {
            let _ = firewall::remove(&br);
            let _ = host::delete_link(&br);
        }
        rest
    }

    /// Removes what `live` owns.
    fn teardown(&self, live: &NetworkDef, dm: Option<&dnsmasq::Dnsmasq>) -> Result<()> {
        if let Some(d) = dm {
            d.stop();
        }
        if !live.has_own_bridge() {
            return Ok(());
        }
        let br = live.bridge_name().unwrap_or_default();
        let files = self.dnsmasq_files(&live.name);
        for f in [&files.conf, &files.pid] {
            let _ = fs::remove_file(f);
        }
        let fw = firewall::remove(br);
        host::delete_link(br)?;
        fw
    }

    /// `NETWORK_DESTROY`.
    pub fn destroy(&self, h: &NetHandle) -> Result<()> {
        let mut nets = self.lock();
        let o = Self::find(&mut nets, h)?;
        let Some(live) = o.live.take() else {
            return Err(NetworkError::Invalid(format!(
                "network '{}' is not active",
                o.def.name
            )));
        };
        let dm = o.dnsmasq.take();
        let h = o.handle();
        let r = self.teardown(&live, dm.as_ref());
        let _ = store::remove(&self.state_path(&live.name));
        if !o.persistent {
            nets.remove(&h.name);
        }
        drop(nets);
        self.lifecycle(&h, event::STOPPED);
        r
    }

    // -----------------------------------------------------------------------------------
    // Update and leases
    // -----------------------------------------------------------------------------------

    /// `NETWORK_UPDATE`: adds, changes or deletes a DHCP host or range, a DNS host or TXT
    /// record, in the live network (dnsmasq is reconfigured) and/or its definition.
    pub fn update(
        &self,
        h: &NetHandle,
        command: u32,
        section: u32,
        parent_index: i32,
        xml: &str,
        flags: u32,
    ) -> Result<()> {
        use update_flags::*;
        check_flags(flags, AFFECT_LIVE | AFFECT_CONFIG)?;
        let mut nets = self.lock();
        let o = Self::find(&mut nets, h)?;
        let (mut live, mut config) = (flags & AFFECT_LIVE != 0, flags & AFFECT_CONFIG != 0);
        if !live && !config {
            // "current": the live network if active, else its definition.
            if o.active() {
                live = true;
            } else {
                config = true;
            }
        }
        if live && !o.active() {
            return Err(NetworkError::Invalid(format!(
                "network '{}' is not active, so its live state cannot be changed",
                o.def.name
            )));
        }
        if config && !o.persistent {
            return Err(NetworkError::Invalid(format!(
                "cannot change the persistent configuration of transient network '{}'",
                o.def.name
            )));
        }
        let mut new_def = None;
        if config {
            let mut d = o.def.clone();
            apply_update(&mut d, command, section, parent_index, xml)?;
            new_def = Some(d);
        }
        let mut new_live = None;
        if live {
            let mut d = o.live.clone().unwrap_or_else(|| o.def.clone());
            apply_update(&mut d, command, section, parent_index, xml)?;
            new_live = Some(d);
        }
        if let Some(d) = &new_def {
            store::write_atomic(&self.def_path(&d.name), d.format().as_bytes())?;
            o.def = d.clone();
        }
        if let Some(d) = new_live {
            store::write_atomic(&self.state_path(&d.name), d.format().as_bytes())?;
            if let (Some(old), Some(c)) = (o.dnsmasq.take(), dnsmasq_config(&d)) {
                let files = self.dnsmasq_files(&d.name);
                o.dnsmasq = Some(old.reconfigure(&c.render(&files.leases))?);
            }
            o.live = Some(d);
        }
        Ok(())
    }

    /// `NETWORK_GET_DHCP_LEASES`: what dnsmasq handed out (unexpired), optionally of one MAC.
    pub fn dhcp_leases(&self, h: &NetHandle, mac: Option<&str>) -> Result<Vec<LeaseRecord>> {
        let mut nets = self.lock();
        let o = Self::find(&mut nets, h)?;
        let Some(live) = &o.live else {
            return Err(NetworkError::Invalid(format!(
                "network '{}' is not active",
                o.def.name
            )));
        };
        let mac = mac.map(|m| m.to_ascii_lowercase());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let bridge = live.bridge_name().unwrap_or_default().to_string();
        let leases = dnsmasq::read_leases(&self.dnsmasq_files(&live.name).leases);
        Ok(leases
            .into_iter()
            .filter(|l| l.expiry == 0 || l.expiry > now)
            .filter(|l| mac.is_none() || l.mac.as_deref().map(str::to_ascii_lowercase) == mac)
            .map(|l| {
                let prefix = live
                    .ips
                    .iter()
                    .find(|ip| ip.contains(l.ip))
                    .and_then(|ip| ip.prefix_len())
                    .unwrap_or(0);
                LeaseRecord {
                    iface: bridge.clone(),
                    expirytime: l.expiry,
                    type_: if l.ip.is_ipv4() { 0 } else { 1 },
                    mac: l.mac,
                    iaid: l.iaid,
                    ipaddr: l.ip.to_string(),
                    prefix: u32::from(prefix),
                    hostname: l.hostname,
                    clientid: l.client_id,
                }
            })
            .collect())
    }

    fn lifecycle(&self, h: &NetHandle, ev: i32) {
        let body = NetworkEventLifecycleBody {
            net: h.clone(),
            event: ev,
            detail: 0,
        };
        self.events.publish(ObjectEvent {
            register_proc: procs::CONNECT_NETWORK_EVENT_REGISTER_ANY,
            event_id: event::ID_LIFECYCLE,
            key: h.uuid.to_vec(),
            proc_: procs::NETWORK_EVENT_LIFECYCLE,
            body: vireo_xdr::to_bytes(&body),
        });
    }
}

/// libvirt's `default` network, as its packages define it.
const DEFAULT_XML: &str = "<network><name>default</name><forward mode='nat'/>\
    <bridge name='virbr0' stp='on' delay='0'/>\
    <ip address='192.168.122.1' netmask='255.255.255.0'>\
    <dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip></network>";

fn no_network(what: &str) -> NetworkError {
    NetworkError::NoNetwork(what.to_string())
}

pub(crate) fn check_flags(flags: u32, known: u32) -> Result<()> {
    if flags & !known != 0 {
        return Err(NetworkError::InvalidArg(format!(
            "unsupported flags (0x{:x})",
            flags & !known
        )));
    }
    Ok(())
}

/// The first bridge name the template (`virbr%d`) makes that no network uses and the
/// host does not have.
fn free_bridge(template: &str, taken: &dyn Fn(&str) -> bool) -> Result<String> {
    for i in 0..256 {
        let name = template.replacen("%d", &i.to_string(), 1);
        if !taken(&name) && !host::link_exists(&name) {
            return Ok(name);
        }
    }
    Err(NetworkError::Internal(format!(
        "no free bridge name for '{template}'"
    )))
}

/// The subnets of the network's `<ip>`s, as (network address, prefix).
fn subnets(def: &NetworkDef) -> Vec<(IpAddr, u8)> {
    def.ips
        .iter()
        .filter_map(|ip| Some((ip.network_address()?, ip.prefix_len()?)))
        .collect()
}

/// The firewall rules of a network; `None` for those that need none (open, bridge).
fn rules(def: &NetworkDef) -> Option<firewall::Rules> {
    let mode = match def.forward_mode() {
        None => firewall::Mode::Isolated,
        Some(ForwardMode::Nat) => firewall::Mode::Nat,
        Some(ForwardMode::Route) => firewall::Mode::Route,
        _ => return None,
    };
    let nat = def.forward.as_ref().and_then(|f| f.nat.as_ref());
    Some(firewall::Rules {
        bridge: def.bridge_name()?.to_string(),
        mode,
        forward_dev: def.forward_devs().first().map(|d| d.to_string()),
        subnets: subnets(def),
        nat_ports: nat.and_then(|n| n.port.as_ref()).map(|p| (p.start, p.end)),
        nat_addresses: nat
            .and_then(|n| n.address.as_ref())
            .map(|a| (IpAddr::V4(a.start), IpAddr::V4(a.end))),
    })
}

/// What dnsmasq serves for the network; `None` when it needs none (no address, or not a
/// network with its own bridge).
fn dnsmasq_config(def: &NetworkDef) -> Option<dnsmasq::Config> {
    if !def.has_own_bridge() || def.ips.is_empty() {
        return None;
    }
    let dns = def.dns.clone().unwrap_or_default();
    let mut c = dnsmasq::Config {
        bridge: def.bridge_name()?.to_string(),
        listen: def.ips.iter().map(|ip| ip.address).collect(),
        domain: def
            .domain
            .as_ref()
            .map(|d| (d.name.clone(), d.local_only == Some(true))),
        no_dns: dns.enable == Some(false),
        forwarders: dns
            .forwarders
            .iter()
            .map(|f| (f.addr.map(|a| a.to_string()), f.domain.clone()))
            .collect(),
        dns_hosts: dns
            .hosts
            .iter()
            .filter_map(|h| Some((h.ip?, h.hostnames.clone())))
            .collect(),
        txt: dns
            .txts
            .iter()
            .map(|t| (t.name.clone(), t.value.clone().unwrap_or_default()))
            .collect(),
        ipv6: def.ips.iter().any(|ip| ip.is_ipv6()),
        ..Default::default()
    };
    for ip in &def.ips {
        let prefix = ip.prefix_len().unwrap_or(0);
        for r in ip.dhcp_ranges() {
            c.ranges.push(dnsmasq::Range {
                start: r.start,
                end: r.end,
                prefix,
                lease: r.lease.as_ref().map(|l| l.seconds().unwrap_or(0)),
            });
        }
        for h in ip.dhcp_hosts() {
            c.hosts.push(dnsmasq::Host {
                mac: h.mac.map(|m| m.to_string()),
                id: h.id.clone(),
                name: h.name.clone(),
                ip: h.ip,
            });
        }
    }
    Some(c)
}

/// Applies one `net-update` to a definition.
fn apply_update(
    def: &mut NetworkDef,
    command: u32,
    section: u32,
    parent_index: i32,
    xml: &str,
) -> Result<()> {
    use update_command::*;
    use update_section::*;
    if !matches!(command, MODIFY | DELETE | ADD_LAST | ADD_FIRST) {
        return Err(NetworkError::InvalidArg(format!(
            "unknown network update command {command}"
        )));
    }
    match section {
        IP_DHCP_HOST => {
            let host: DhcpHost = parse_fragment(xml, "host")?;
            if host.mac.is_none() && host.id.is_none() && host.name.is_none() {
                return Err(NetworkError::InvalidArg(
                    "a DHCP host needs a mac, an id or a name".into(),
                ));
            }
            let ip = dhcp_ip(def, parent_index, host.ip)?;
            if let Some(a) = host.ip {
                if !ip.contains(a) {
                    return Err(NetworkError::InvalidArg(format!(
                        "address {a} is not in the subnet of the network"
                    )));
                }
            }
            let same = |h: &DhcpHost, host: &DhcpHost| {
                (host.mac.is_some() && h.mac == host.mac)
                    || (host.id.is_some() && h.id == host.id)
                    || (host.mac.is_none() && host.name.is_some() && h.name == host.name)
            };
            let dhcp = ip.dhcp.get_or_insert_with(Default::default);
            edit_list(&mut dhcp.hosts, command, host, same, "DHCP host")
        }
        IP_DHCP_RANGE => {
            let range: DhcpRange = parse_fragment(xml, "range")?;
            let ip = dhcp_ip(def, parent_index, Some(range.start))?;
            if !ip.contains(range.start) || !ip.contains(range.end) {
                return Err(NetworkError::InvalidArg(format!(
                    "range {} - {} is not in the subnet of the network",
                    range.start, range.end
                )));
            }
            if range.address_count().is_none() {
                return Err(NetworkError::InvalidArg(format!(
                    "range {} - {} is reversed",
                    range.start, range.end
                )));
            }
            if command == MODIFY {
                return Err(NetworkError::Unsupported(
                    "dhcp ranges cannot be modified, only added or deleted".into(),
                ));
            }
            let dhcp = ip.dhcp.get_or_insert_with(Default::default);
            let same = |r: &DhcpRange, n: &DhcpRange| r.start == n.start && r.end == n.end;
            edit_list(&mut dhcp.ranges, command, range, same, "DHCP range")
        }
        DNS_HOST => {
            let host: DnsHost = parse_fragment(xml, "host")?;
            let dns = def.dns.get_or_insert_with(Default::default);
            let same = |h: &DnsHost, n: &DnsHost| h.ip == n.ip;
            edit_list(&mut dns.hosts, command, host, same, "DNS host")
        }
        DNS_TXT => {
            let txt: DnsTxt = parse_fragment(xml, "txt")?;
            let dns = def.dns.get_or_insert_with(Default::default);
            let same = |t: &DnsTxt, n: &DnsTxt| t.name == n.name;
            edit_list(&mut dns.txts, command, txt, same, "DNS TXT record")
        }
        _ => Err(NetworkError::Unsupported(format!(
            "can't update network section {section}: not supported by Vireo yet"
        ))),
    }
}

/// The `<ip>` an update of `<dhcp>` applies to: `parent_index` when given (>= 0), else
/// the one of the address's family that has DHCP (or the first of that family).
fn dhcp_index(def: &NetworkDef, parent_index: i32, addr: Option<IpAddr>) -> Result<usize> {
    if parent_index >= 0 {
        let i = parent_index as usize;
        return if i < def.ips.len() {
            Ok(i)
        } else {
            Err(NetworkError::InvalidArg(format!(
                "couldn't update dhcp host entry - no <ip> element found at index {parent_index} in network '{}'",
                def.name
            )))
        };
    }
    let fam = addr.map(|a| IpFamily::of(&a)).unwrap_or(IpFamily::Ipv4);
    def.ips
        .iter()
        .position(|ip| IpFamily::of(&ip.address) == fam && ip.has_dhcp())
        .or_else(|| {
            def.ips
                .iter()
                .position(|ip| IpFamily::of(&ip.address) == fam)
        })
        .ok_or_else(|| {
            NetworkError::InvalidArg(format!(
                "couldn't update dhcp host entry - no <ip> element of that family in network '{}'",
                def.name
            ))
        })
}

fn dhcp_ip(
    def: &mut NetworkDef,
    parent_index: i32,
    addr: Option<IpAddr>,
) -> Result<&mut vireo_xml::NetworkIp> {
    let i = dhcp_index(def, parent_index, addr)?;
    Ok(&mut def.ips[i])
}

/// Reads an update's XML fragment, whose root must be `root`.
fn parse_fragment<T: XmlElement>(xml: &str, root: &str) -> Result<T> {
    Ok(vireo_xml::parse_root::<T>(xml, root)?)
}

/// Adds, replaces or removes `item` in `list` (an entry is `item`'s when `same(entry,
/// item)`), as libvirt's update commands do.
fn edit_list<T>(
    list: &mut Vec<T>,
    command: u32,
    item: T,
    same: impl Fn(&T, &T) -> bool,
    what: &str,
) -> Result<()> {
    use update_command::*;
    let at = list.iter().position(|x| same(x, &item));
    match (command, at) {
        (ADD_FIRST | ADD_LAST, Some(_)) => Err(NetworkError::Invalid(format!(
            "there is an existing {what} entry that matches"
        ))),
        (ADD_FIRST, None) => {
            list.insert(0, item);
            Ok(())
        }
        (ADD_LAST, None) => {
            list.push(item);
            Ok(())
        }
        (MODIFY, Some(i)) => {
            list[i] = item;
            Ok(())
        }
        (DELETE, Some(i)) => {
            list.remove(i);
            Ok(())
        }
        _ => Err(NetworkError::Invalid(format!(
            "couldn't locate a matching {what} entry in network"
        ))),
    }
}
