//! The host interface driver (`vireo-interfaced`, and `vireod`): the host's interfaces
//! read from the kernel over rtnetlink ([`netlink`]) and shown as libvirt's udev backend
//! shows them ([`host`]); and interfaces defined here — ethernet (settings for a device
//! that exists), bridge, bond and VLAN (devices this driver makes) — kept in
//! `CONFIG/interface/NAME.xml`, started and destroyed with rtnetlink.
//!
//! Everything happens in the network namespace the daemon runs in.
//!
//! * A defined interface is active when its device exists and is up (IFF_UP); a host
//!   interface that is not defined here, when its operational state is up (as the udev
//!   backend says).
//! * Starting one makes what it describes: the bridge, bond or VLAN device (a name taken
//!   by a device not made here is refused), its members enslaved (a bridge's VLAN or bond
//!   members made too), its MTU, MAC and static addresses set, all brought up. What was
//!   done is kept in `RUN/interface/NAME.state`; a failure undoes it, so nothing changed.
//! * Destroying one undoes exactly that: the devices made here are removed, the members
//!   freed and brought down, the addresses added taken away. A device nobody defined here
//!   is never touched.
//! * `iface-begin` snapshots the definitions and which of them are active into
//!   `STATE/interface/transaction`; `iface-rollback` destroys what is active and differs
//!   from it, puts the definitions back and starts what was active; `iface-commit` drops
//!   the snapshot.

mod error;
pub mod host;
pub mod netlink;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use vireo_driver::store;
use vireo_xml::{valid_interface_name, HostIfaceType, InterfaceDef, MacAddr};

pub use error::{InterfaceError, Result};
use host::Host;
use netlink::{BondInfo, LinkChange, Netlink, NewLink};

/// Interfaces one host may define.
pub const MAX_DEFINITIONS: usize = 1024;
/// Members one bridge or bond may have.
const MAX_MEMBERS: usize = 256;
/// Largest runtime record read back.
const MAX_RECORD: u64 = 64 * 1024;

/// One interface as a list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    /// Its MAC address, empty when it has none.
    pub mac: String,
    pub active: bool,
}

/// What starting an interface did, so that destroying it undoes that and nothing else.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Record {
    /// Devices made, in the order they were made.
    made: Vec<String>,
    /// Existing devices put into a bridge or bond.
    enslaved: Vec<String>,
    /// Existing devices brought up (an ethernet interface).
    upped: Vec<String>,
    /// Addresses added to the interface's device.
    addrs: Vec<(IpAddr, u8)>,
}

impl Record {
    fn to_text(&self) -> String {
        let mut s = String::new();
        for n in &self.made {
            s.push_str(&format!("made {n}\n"));
        }
        for n in &self.enslaved {
            s.push_str(&format!("enslaved {n}\n"));
        }
        for n in &self.upped {
            s.push_str(&format!("upped {n}\n"));
        }
        for (a, p) in &self.addrs {
            s.push_str(&format!("addr {a}/{p}\n"));
        }
        s
    }

    fn parse(text: &str) -> Record {
        let mut r = Record::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once(' ') else {
                continue;
            };
            match k {
                "made" => r.made.push(v.to_string()),
                "enslaved" => r.enslaved.push(v.to_string()),
                "upped" => r.upped.push(v.to_string()),
                "addr" => {
                    let parsed = v
                        .split_once('/')
                        .and_then(|(a, p)| Some((a.parse().ok()?, p.parse().ok()?)));
                    if let Some(ap) = parsed {
                        r.addrs.push(ap);
                    }
                }
                _ => {}
            }
        }
        r
    }
}

struct State {
    defs: BTreeMap<String, InterfaceDef>,
}

pub struct InterfaceDriver {
    conf_dir: PathBuf,
    run_dir: PathBuf,
    tx_dir: PathBuf,
    state: Mutex<State>,
}

impl InterfaceDriver {
    /// The driver over `CONFIG/interface`, `RUN/interface` and `STATE/interface`, with the
    /// definitions found there (one that cannot be read is logged and left out).
    pub fn open(config_dir: &Path, run_dir: &Path, state_dir: &Path) -> Result<InterfaceDriver> {
        let conf_dir = config_dir.join("interface");
        let mut defs = BTreeMap::new();
        for p in store::list_xml(&conf_dir)? {
            let read = fs::read_to_string(&p)
                .map_err(|e| InterfaceError::io(format!("cannot read {}", p.display()), e));
            match read.and_then(|x| Ok(InterfaceDef::parse(&x)?)) {
                Ok(d) if p.file_stem().is_some_and(|s| s.to_string_lossy() == d.name) => {
                    defs.insert(d.name.clone(), d);
                }
                Ok(d) => log::warn!("{}: defines '{}', not its name", p.display(), d.name),
                Err(e) => log::warn!("{}: {e}", p.display()),
            }
        }
        let tx_dir = state_dir.join("interface").join("transaction");
        // A snapshot whose writing was cut short is no snapshot.
        let _ = fs::remove_dir_all(tx_dir.with_extension("new"));
        Ok(InterfaceDriver {
            conf_dir,
            run_dir: run_dir.join("interface"),
            tx_dir,
            state: Mutex::new(State { defs }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn host() -> Result<(Netlink, Host)> {
        let mut nl =
            Netlink::open().map_err(|e| InterfaceError::io("cannot open a netlink socket", e))?;
        let h = Host::read(&mut nl)?;
        Ok((nl, h))
    }

    /// Every interface: the host's (but a bridge's ports and tap devices) and those defined
    /// here, by name.
    pub fn list(&self) -> Result<Vec<Listed>> {
        let st = self.lock();
        let (_, h) = Self::host()?;
        let mut out: BTreeMap<String, Listed> = BTreeMap::new();
        for l in h.links.iter().filter(|l| h.listed(l)) {
            out.insert(l.name.clone(), listed(&st, &h, &l.name));
        }
        for name in st.defs.keys() {
            out.insert(name.clone(), listed(&st, &h, name));
        }
        Ok(out.into_values().collect())
    }

    /// The handle of interface `name`: (name, MAC).
    pub fn lookup_by_name(&self, name: &str) -> Result<(String, String)> {
        let st = self.lock();
        let (_, h) = Self::host()?;
        if !st.defs.contains_key(name) && h.by_name(name).is_none() {
            return Err(InterfaceError::no_name(name));
        }
        Ok((name.to_string(), mac_of(&st, &h, name)))
    }

    /// The one listed interface with MAC address `mac`.
    pub fn lookup_by_mac(&self, mac: &str) -> Result<(String, String)> {
        let want = mac.parse::<MacAddr>().ok().map(|m| m.to_string());
        let found: Vec<Listed> = self
            .list()?
            .into_iter()
            .filter(|l| want.as_deref() == Some(l.mac.as_str()))
            .collect();
        match found.as_slice() {
            [one] => Ok((one.name.clone(), one.mac.clone())),
            [] => Err(InterfaceError::NoInterface(format!(
                "couldn't find interface with MAC address '{mac}'"
            ))),
            _ => Err(InterfaceError::Multiple(format!(
                "the MAC address '{mac}' matches multiple interfaces"
            ))),
        }
    }

    pub fn is_active(&self, name: &str) -> Result<bool> {
        let st = self.lock();
        let (_, h) = Self::host()?;
        if !st.defs.contains_key(name) && h.by_name(name).is_none() {
            return Err(InterfaceError::no_name(name));
        }
        Ok(active(&st, &h, name))
    }

    /// The interface's XML: a defined interface's definition, a host interface as the
    /// kernel shows it.
    pub fn xml(&self, name: &str) -> Result<String> {
        let st = self.lock();
        if let Some(d) = st.defs.get(name) {
            return Ok(d.to_xml());
        }
        let (_, h) = Self::host()?;
        let l = h
            .by_name(name)
            .ok_or_else(|| InterfaceError::no_name(name))?;
        Ok(h.def(l, true).to_xml())
    }

    /// Defines (or redefines) an interface; returns its handle. A bridge, bond or VLAN may
    /// not take the name of a device that exists and was not defined here.
    pub fn define(&self, xml: &str) -> Result<(String, String)> {
        let def = InterfaceDef::parse(xml)?;
        check_names(&def)?;
        def.static_addresses()?;
        if let Some(b) = &def.bridge {
            if let Some(d) = &b.delay {
                bridge_delay(d)?;
            }
        }
        let mut st = self.lock();
        let (_, h) = Self::host()?;
        let name = def.name.clone();
        if !st.defs.contains_key(&name) {
            if def.iface_type != HostIfaceType::Ethernet && h.by_name(&name).is_some() {
                return Err(InterfaceError::Failed(format!(
                    "interface name '{name}' is taken by an existing device"
                )));
            }
            if st.defs.len() >= MAX_DEFINITIONS {
                return Err(InterfaceError::Failed(format!(
                    "too many interfaces defined (at most {MAX_DEFINITIONS})"
                )));
            }
        }
        store::write_atomic(&self.conf_path(&name), def.to_xml().as_bytes())?;
        st.defs.insert(name.clone(), def);
        let mac = mac_of(&st, &h, &name);
        Ok((name, mac))
    }

    /// Removes a definition. A bridge, bond or VLAN that is running must be destroyed
    /// first (its device would be left behind, nobody's).
    pub fn undefine(&self, name: &str) -> Result<()> {
        let mut st = self.lock();
        let (_, h) = Self::host()?;
        let def = self.defined(&st, &h, name)?;
        if def.iface_type != HostIfaceType::Ethernet
            && self.record(name).is_some()
            && active(&st, &h, name)
        {
            return Err(InterfaceError::Invalid(format!(
                "interface '{name}' is active; destroy it first"
            )));
        }
        store::remove(&self.conf_path(name))?;
        st.defs.remove(name);
        Ok(())
    }

    /// Starts a defined interface.
    pub fn create(&self, name: &str) -> Result<()> {
        let st = self.lock();
        let (mut nl, h) = Self::host()?;
        let def = self.defined(&st, &h, name)?.clone();
        if active(&st, &h, name) {
            return Err(InterfaceError::Invalid(format!(
                "interface '{name}' is already active"
            )));
        }
        // Still holding the lock: one change of the host's interfaces at a time.
        self.start(&mut nl, &def)
    }

    /// Stops a defined interface, undoing what its start did.
    pub fn destroy(&self, name: &str) -> Result<()> {
        let st = self.lock();
        let (mut nl, h) = Self::host()?;
        let def = self.defined(&st, &h, name)?.clone();
        if !active(&st, &h, name) {
            return Err(InterfaceError::Invalid(format!(
                "interface '{name}' is not active"
            )));
        }
        self.stop(&mut nl, &def)
    }

    /// `iface-begin`: snapshots the definitions and which of them are active.
    pub fn change_begin(&self) -> Result<()> {
        let st = self.lock();
        if self.tx_dir.exists() {
            return Err(InterfaceError::Invalid(
                "there is another transaction running.".into(),
            ));
        }
        let (_, h) = Self::host()?;
        let new = self.tx_dir.with_extension("new");
        let _ = fs::remove_dir_all(&new);
        let mut running = String::new();
        for (name, d) in &st.defs {
            store::write_atomic(&new.join(format!("{name}.xml")), d.to_xml().as_bytes())?;
            if active(&st, &h, name) {
                running.push_str(name);
                running.push('\n');
            }
        }
        store::write_atomic(&new.join("active"), running.as_bytes())?;
        fs::rename(&new, &self.tx_dir).map_err(|e| {
            InterfaceError::io(format!("cannot write {}", self.tx_dir.display()), e)
        })?;
        Ok(())
    }

    /// `iface-commit`: keeps what was done since `iface-begin`.
    pub fn change_commit(&self) -> Result<()> {
        let _st = self.lock();
        if !self.tx_dir.exists() {
            return Err(InterfaceError::Invalid(
                "no transaction running, nothing to be committed.".into(),
            ));
        }
        self.drop_snapshot()
    }

    /// `iface-rollback`: the definitions as they were at `iface-begin`, and the running
    /// interfaces brought back to how they were then.
    pub fn change_rollback(&self) -> Result<()> {
        let mut st = self.lock();
        if !self.tx_dir.exists() {
            return Err(InterfaceError::Invalid(
                "no transaction running, nothing to rollback.".into(),
            ));
        }
        let (snap, was_active) = self.read_snapshot()?;
        let (mut nl, h) = Self::host()?;
        let mut errors = Vec::new();
        // What runs now and is not as it was: stopped with its current definition.
        let running: Vec<InterfaceDef> = st
            .defs
            .values()
            .filter(|d| active(&st, &h, &d.name))
            .filter(|d| !was_active.contains(&d.name) || snap.get(&d.name) != Some(*d))
            .cloned()
            .collect();
        for d in &running {
            if d.iface_type == HostIfaceType::Ethernet || self.record(&d.name).is_some() {
                if let Err(e) = self.stop(&mut nl, d) {
                    errors.push(e.to_string());
                }
            }
        }
        // The definitions as they were.
        for name in st.defs.keys() {
            if !snap.contains_key(name) {
                store::remove(&self.conf_path(name))?;
            }
        }
        for (name, d) in &snap {
            if st.defs.get(name) != Some(d) {
                store::write_atomic(&self.conf_path(name), d.to_xml().as_bytes())?;
            }
        }
        st.defs = snap;
        // What ran then, running again.
        let h = Host::read(&mut nl)?;
        let to_start: Vec<InterfaceDef> = st
            .defs
            .values()
            .filter(|d| was_active.contains(&d.name) && !active(&st, &h, &d.name))
            .cloned()
            .collect();
        for d in &to_start {
            if let Err(e) = self.start(&mut nl, d) {
                errors.push(e.to_string());
            }
        }
        self.drop_snapshot()?;
        if !errors.is_empty() {
            return Err(InterfaceError::Failed(format!(
                "the rollback could not restore everything: {}",
                errors.join("; ")
            )));
        }
        Ok(())
    }

    fn drop_snapshot(&self) -> Result<()> {
        fs::remove_dir_all(&self.tx_dir)
            .map_err(|e| InterfaceError::io(format!("cannot remove {}", self.tx_dir.display()), e))
    }

    fn read_snapshot(&self) -> Result<(BTreeMap<String, InterfaceDef>, BTreeSet<String>)> {
        let mut defs = BTreeMap::new();
        for p in store::list_xml(&self.tx_dir)? {
            let x = fs::read_to_string(&p)
                .map_err(|e| InterfaceError::io(format!("cannot read {}", p.display()), e))?;
            let d = InterfaceDef::parse(&x)?;
            defs.insert(d.name.clone(), d);
        }
        let active = fs::read_to_string(self.tx_dir.join("active"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        Ok((defs, active))
    }

    fn conf_path(&self, name: &str) -> PathBuf {
        self.conf_dir.join(format!("{name}.xml"))
    }

    fn record_path(&self, name: &str) -> PathBuf {
        self.run_dir.join(format!("{name}.state"))
    }

    fn record(&self, name: &str) -> Option<Record> {
        use std::io::Read;
        let f = fs::File::open(self.record_path(name)).ok()?;
        let mut s = String::new();
        f.take(MAX_RECORD).read_to_string(&mut s).ok()?;
        Some(Record::parse(&s))
    }

    /// The definition of `name`, or why there is none to act on.
    fn defined<'s>(&self, st: &'s State, h: &Host, name: &str) -> Result<&'s InterfaceDef> {
        match st.defs.get(name) {
            Some(d) => Ok(d),
            None if h.by_name(name).is_some() => Err(InterfaceError::Invalid(format!(
                "interface '{name}' is not defined here: the host's own interfaces are left as they are"
            ))),
            None => Err(InterfaceError::no_name(name)),
        }
    }

    /// Makes and brings up what `def` describes, recording it; undone on failure.
    fn start(&self, nl: &mut Netlink, def: &InterfaceDef) -> Result<()> {
        let mut rec = Record::default();
        let done = apply(nl, def, &mut rec).and_then(|()| {
            store::write_atomic(&self.record_path(&def.name), rec.to_text().as_bytes())
                .map_err(InterfaceError::from)
        });
        if let Err(e) = done {
            // Nothing changed: what was done is undone.
            let _ = undo(nl, &def.name, &rec);
            let _ = store::remove(&self.record_path(&def.name));
            return Err(e);
        }
        Ok(())
    }

    /// Undoes what starting `def` did (an ethernet interface started elsewhere is
    /// brought down).
    fn stop(&self, nl: &mut Netlink, def: &InterfaceDef) -> Result<()> {
        let rec = match self.record(&def.name) {
            Some(r) => r,
            None if def.iface_type == HostIfaceType::Ethernet => Record {
                upped: vec![def.name.clone()],
                ..Default::default()
            },
            None => {
                return Err(InterfaceError::Invalid(format!(
                    "interface '{}' was not started here; its device is left as it is",
                    def.name
                )))
            }
        };
        undo(nl, &def.name, &rec)?;
        store::remove(&self.record_path(&def.name))?;
        Ok(())
    }
}

/// Whether `name` is active: a defined interface when its device is up, a host one when
/// its operational state is up.
fn active(st: &State, h: &Host, name: &str) -> bool {
    match h.by_name(name) {
        Some(l) if st.defs.contains_key(name) => l.up,
        Some(l) => l.oper == netlink::OPER_UP,
        None => false,
    }
}

/// The MAC address of `name`: its device's, else its definition's, else none.
fn mac_of(st: &State, h: &Host, name: &str) -> String {
    if let Some(l) = h.by_name(name) {
        return l.mac.map(|m| netlink::format_mac(&m)).unwrap_or_default();
    }
    st.defs
        .get(name)
        .and_then(|d| d.mac)
        .map(|m| m.to_string())
        .unwrap_or_default()
}

fn listed(st: &State, h: &Host, name: &str) -> Listed {
    Listed {
        name: name.to_string(),
        mac: mac_of(st, h, name),
        active: active(st, h, name),
    }
}

/// Every name in a definition must be one the kernel takes.
fn check_names(def: &InterfaceDef) -> Result<()> {
    let bad = |n: &str| {
        InterfaceError::Xml(vireo_xml::XmlError::Invalid(format!(
            "invalid interface name '{n}'"
        )))
    };
    if !valid_interface_name(&def.name) {
        return Err(bad(&def.name));
    }
    if def.members().len() > MAX_MEMBERS {
        return Err(InterfaceError::InvalidArg(format!(
            "interface '{}' has more than {MAX_MEMBERS} members",
            def.name
        )));
    }
    for m in def.members() {
        check_names(m)?;
    }
    if let Some(dev) = def.vlan.as_ref().and_then(|v| v.device.as_ref()) {
        if !valid_interface_name(&dev.name) {
            return Err(bad(&dev.name));
        }
    }
    Ok(())
}

/// A bridge's `delay` (seconds) as the kernel's forward delay (hundredths of a second).
fn bridge_delay(s: &str) -> Result<u32> {
    s.trim()
        .parse::<u32>()
        .ok()
        .and_then(|secs| secs.checked_mul(100))
        .ok_or_else(|| {
            InterfaceError::Xml(vireo_xml::XmlError::Invalid(format!(
                "invalid bridge delay '{s}'"
            )))
        })
}

/// The index of device `name` now.
fn index_of(nl: &mut Netlink, name: &str) -> Result<u32> {
    let links = nl
        .links()
        .map_err(|e| InterfaceError::io("cannot read the host's interfaces", e))?;
    links
        .iter()
        .find(|l| l.name == name)
        .map(|l| l.index)
        .ok_or_else(|| InterfaceError::Failed(format!("no device '{name}' on the host")))
}

/// Makes device `name` of `what`, recording it.
fn make(nl: &mut Netlink, name: &str, what: &NewLink, rec: &mut Record) -> Result<u32> {
    let kind = match what {
        NewLink::Bridge { .. } => "bridge",
        NewLink::Bond(_) => "bond",
        NewLink::Vlan { .. } => "VLAN interface",
    };
    nl.add_link(name, what).map_err(|e| {
        if e.raw_os_error() == Some(libc::EEXIST) {
            InterfaceError::Failed(format!(
                "interface name '{name}' is taken by an existing device"
            ))
        } else {
            InterfaceError::io(format!("cannot create {kind} '{name}'"), e)
        }
    })?;
    rec.made.push(name.to_string());
    index_of(nl, name)
}

fn set(nl: &mut Netlink, name: &str, index: u32, c: &LinkChange) -> Result<()> {
    nl.set_link(index, c)
        .map_err(|e| InterfaceError::io(format!("cannot change interface '{name}'"), e))
}

/// Makes the device `def` describes (a bridge, bond or VLAN) or finds it (ethernet); its
/// index.
fn device(nl: &mut Netlink, def: &InterfaceDef, rec: &mut Record) -> Result<u32> {
    let name = &def.name;
    match def.iface_type {
        HostIfaceType::Ethernet => index_of(nl, name).map_err(|_| {
            InterfaceError::Failed(format!(
                "cannot start interface '{name}': there is no device of that name"
            ))
        }),
        HostIfaceType::Bridge => {
            let b = def.bridge.as_ref();
            let forward_delay = match b.and_then(|b| b.delay.as_deref()) {
                Some(d) => bridge_delay(d)?,
                None => 0,
            };
            let stp = b.and_then(|b| b.stp).unwrap_or(false);
            let idx = make(nl, name, &NewLink::Bridge { forward_delay, stp }, rec)?;
            for m in def.members() {
                member(nl, m, idx, false, rec)?;
            }
            Ok(idx)
        }
        HostIfaceType::Bond => {
            let b = def.bond.as_ref();
            let mut info = BondInfo {
                mode: b.and_then(|b| b.mode).map_or(0, |m| m.kernel()),
                ..Default::default()
            };
            if let Some(m) = b.and_then(|b| b.miimon.as_ref()) {
                info.miimon = m.freq;
                info.updelay = m.updelay.unwrap_or(0);
                info.downdelay = m.downdelay.unwrap_or(0);
                info.use_carrier = m.carrier != Some(vireo_xml::MiiCarrier::Ioctl);
            } else if let Some(a) = b.and_then(|b| b.arpmon.as_ref()) {
                info.arp_interval = a.interval;
                info.arp_targets = a
                    .target
                    .split([',', ' '])
                    .filter_map(|t| t.trim().parse().ok())
                    .collect();
                info.arp_validate = match a.validate {
                    Some(vireo_xml::ArpValidate::Active) => 1,
                    Some(vireo_xml::ArpValidate::Backup) => 2,
                    Some(vireo_xml::ArpValidate::All) => 3,
                    None => 0,
                };
            }
            let idx = make(nl, name, &NewLink::Bond(info), rec)?;
            for m in def.members() {
                member(nl, m, idx, true, rec)?;
            }
            Ok(idx)
        }
        HostIfaceType::Vlan => {
            let v = def
                .vlan
                .as_ref()
                .ok_or_else(|| InterfaceError::Internal("a VLAN without <vlan>".into()))?;
            let dev = v.device.as_ref().map(|d| d.name.as_str()).unwrap_or("");
            let parent = index_of(nl, dev).map_err(|_| {
                InterfaceError::Failed(format!(
                    "cannot start interface '{name}': its device '{dev}' does not exist"
                ))
            })?;
            make(nl, name, &NewLink::Vlan { parent, id: v.tag }, rec)
        }
    }
}

/// Puts member `m` into the bridge or bond of index `master` (made first when it is a
/// VLAN or bond), brought up.
fn member(
    nl: &mut Netlink,
    m: &InterfaceDef,
    master: u32,
    bond: bool,
    rec: &mut Record,
) -> Result<()> {
    let idx = if m.iface_type == HostIfaceType::Ethernet {
        let links = nl
            .links()
            .map_err(|e| InterfaceError::io("cannot read the host's interfaces", e))?;
        let l = links.iter().find(|l| l.name == m.name).ok_or_else(|| {
            InterfaceError::Failed(format!("member interface '{}' does not exist", m.name))
        })?;
        if let Some(other) = l.master.and_then(|i| links.iter().find(|x| x.index == i)) {
            return Err(InterfaceError::Failed(format!(
                "interface '{}' is already in '{}'",
                m.name, other.name
            )));
        }
        if bond {
            // A bond takes its members down.
            set(
                nl,
                &m.name,
                l.index,
                &LinkChange {
                    up: Some(false),
                    ..Default::default()
                },
            )?;
        }
        set(
            nl,
            &m.name,
            l.index,
            &LinkChange {
                master: Some(master),
                ..Default::default()
            },
        )?;
        rec.enslaved.push(m.name.clone());
        l.index
    } else {
        let idx = device(nl, m, rec)?;
        set(
            nl,
            &m.name,
            idx,
            &LinkChange {
                master: Some(master),
                ..Default::default()
            },
        )?;
        idx
    };
    set(
        nl,
        &m.name,
        idx,
        &LinkChange {
            up: Some(true),
            ..Default::default()
        },
    )
}

/// Starts `def`: its device, MTU, MAC, addresses, up.
fn apply(nl: &mut Netlink, def: &InterfaceDef, rec: &mut Record) -> Result<()> {
    let name = &def.name;
    let idx = device(nl, def, rec)?;
    if def.mtu.is_some() || def.mac.is_some() {
        set(
            nl,
            name,
            idx,
            &LinkChange {
                mtu: def.mtu,
                mac: def.mac.map(|m| m.0),
                ..Default::default()
            },
        )?;
    }
    for (a, p) in def.static_addresses()? {
        match nl.add_address(idx, a, p) {
            Ok(()) => rec.addrs.push((a, p)),
            // Already there: not ours to take away later.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => {
                return Err(InterfaceError::io(
                    format!("cannot add address {a}/{p} to '{name}'"),
                    e,
                ))
            }
        }
    }
    set(
        nl,
        name,
        idx,
        &LinkChange {
            up: Some(true),
            ..Default::default()
        },
    )?;
    if def.iface_type == HostIfaceType::Ethernet {
        rec.upped.push(name.clone());
    }
    Ok(())
}

/// Undoes `rec` (what starting interface `name` did): every step is tried; the first
/// failure is returned.
fn undo(nl: &mut Netlink, name: &str, rec: &Record) -> Result<()> {
    let links = nl
        .links()
        .map_err(|e| InterfaceError::io("cannot read the host's interfaces", e))?;
    let idx = |n: &str| links.iter().find(|l| l.name == n).map(|l| l.index);
    let mut first: Option<InterfaceError> = None;
    let mut note = |r: Result<()>| {
        if let Err(e) = r {
            first.get_or_insert(e);
        }
    };
    if !rec.made.iter().any(|m| m == name) {
        if let Some(i) = idx(name) {
            for (a, p) in &rec.addrs {
                note(nl.del_address(i, *a, *p).or_else(|e| {
                    // Gone already.
                    if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) {
                        Ok(())
                    } else {
                        Err(InterfaceError::io(
                            format!("cannot remove address {a}/{p} from '{name}'"),
                            e,
                        ))
                    }
                }));
            }
        }
    }
    for m in rec.enslaved.iter().rev() {
        if let Some(i) = idx(m) {
            note(set(
                nl,
                m,
                i,
                &LinkChange {
                    master: Some(0),
                    up: Some(false),
                    ..Default::default()
                },
            ));
        }
    }
    for u in &rec.upped {
        if let Some(i) = idx(u) {
            note(set(
                nl,
                u,
                i,
                &LinkChange {
                    up: Some(false),
                    ..Default::default()
                },
            ));
        }
    }
    for m in rec.made.iter().rev() {
        if let Some(i) = idx(m) {
            note(
                nl.del_link(i)
                    .map_err(|e| InterfaceError::io(format!("cannot remove interface '{m}'"), e)),
            );
        }
    }
    match first {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
