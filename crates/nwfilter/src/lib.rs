//! The network filter driver (`vireo-nwfilterd`, and `vireod`): filters, and their
//! bindings to guest interfaces, enforced in the kernel with nftables (see [`nft`]).
//!
//! Filters live in `CONFIG/nwfilter/NAME.xml`; the well-known ones ([`wellknown`]) are
//! defined at the very first start. Bindings are runtime state in
//! `RUN/nwfilter/bindings/DEV.xml`: they outlive a restart of this daemon (which puts their
//! rules back) and of the daemon that made them.
//!
//! Variables: a binding's `<filterref>` parameters, and `MAC` (the binding's address); a
//! filterref inside a filter adds or overrides parameters for what it references. A
//! variable with several values makes a rule once per value (variables of one iterator in
//! step, `$V[i]` one value). A rule that uses a variable without a value is left out: with
//! no `IP` known, `no-ip-spoofing` lets no IPv4 from the guest through but DHCP. `IP` comes
//! from the binding (the network driver passes the address of a static DHCP host for the
//! guest's MAC), else it is learned from the DHCP server's acknowledgements to the guest
//! ([`snoop`]; `CTRL_IP_LEARNING='none'` turns that off), kept in
//! `RUN/nwfilter/learned/DEV`, and the binding's rules are put in place again with it.

mod error;
pub mod nft;
pub mod snoop;
pub mod wellknown;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use vireo_driver::store;
use vireo_proto::nwfilter::{NwFilter as FilterHandle, NwFilterBinding as BindingHandle};
use vireo_xml::{
    format_uuid, FilterEntry, FilterRule, NwFilterBindingDef, NwFilterDef, RuleProtocol, VarIndex,
};

pub use error::{NwFilterError, Result};

/// Filters one host may define.
pub const MAX_FILTERS: usize = vireo_proto::nwfilter::NWFILTER_LIST_MAX;
/// Bindings one host may have.
pub const MAX_BINDINGS: usize = vireo_proto::nwfilter::NWFILTER_BINDING_LIST_MAX;
/// How deep filters may reference filters.
const MAX_DEPTH: usize = 20;

#[derive(Default)]
struct State {
    filters: BTreeMap<String, NwFilterDef>,
    /// By port device.
    bindings: BTreeMap<String, NwFilterBindingDef>,
    /// Addresses learned by DHCP snooping, by port device.
    learned: BTreeMap<String, Ipv4Addr>,
}

impl State {
    /// A binding's rules, with its learned address as `IP` when it gives none.
    fn rules(&self, b: &NwFilterBindingDef) -> Result<Vec<nft::Rule>> {
        match self.learned.get(&b.portdev) {
            Some(ip) if !gives_ip(b) => {
                let mut b = b.clone();
                b.filterref.parameters.push(vireo_xml::FilterParam {
                    name: "IP".into(),
                    value: ip.to_string(),
                });
                compile(&self.filters, &b)
            }
            _ => compile(&self.filters, b),
        }
    }
}

/// Whether the binding names the guest's address itself.
fn gives_ip(b: &NwFilterBindingDef) -> bool {
    b.filterref.parameters.iter().any(|p| p.name == "IP")
}

/// Whether the guest's address is to be learned: none given, learning not turned off.
fn learns_ip(b: &NwFilterBindingDef) -> bool {
    !gives_ip(b)
        && !b
            .filterref
            .parameters
            .iter()
            .any(|p| p.name == "CTRL_IP_LEARNING" && p.value.eq_ignore_ascii_case("none"))
}

pub struct NwFilterDriver {
    cfg_dir: PathBuf,
    bind_dir: PathBuf,
    learn_dir: PathBuf,
    state: Arc<Mutex<State>>,
    /// DHCP snoopers, by port device.
    snoopers: Mutex<BTreeMap<String, snoop::Snooper>>,
}

fn handle(f: &NwFilterDef) -> FilterHandle {
    FilterHandle {
        name: f.name.clone(),
        uuid: f.uuid.unwrap_or_default(),
    }
}

fn bhandle(b: &NwFilterBindingDef) -> BindingHandle {
    BindingHandle {
        portdev: b.portdev.clone(),
        filtername: b.filterref.filter.clone(),
    }
}

impl NwFilterDriver {
    /// Loads the filters (defining the well-known ones at the very first start) and the
    /// bindings, whose rules are put in place again.
    pub fn open(config_dir: &Path, run_dir: &Path) -> Result<NwFilterDriver> {
        let cfg_dir = config_dir.join("nwfilter");
        let first_start = !cfg_dir.exists();
        let d = NwFilterDriver {
            cfg_dir,
            bind_dir: run_dir.join("nwfilter").join("bindings"),
            learn_dir: run_dir.join("nwfilter").join("learned"),
            state: Arc::new(Mutex::new(State::default())),
            snoopers: Mutex::new(BTreeMap::new()),
        };
        for dir in [&d.cfg_dir, &d.bind_dir, &d.learn_dir] {
            fs::create_dir_all(dir)
                .map_err(|e| NwFilterError::io(format!("cannot create {}", dir.display()), e))?;
        }
        {
            let mut st = d.lock();
            for path in store::list_xml(&d.cfg_dir)? {
                match fs::read_to_string(&path)
                    .ok()
                    .map(|x| NwFilterDef::parse(&x))
                {
                    Some(Ok(f)) if f.uuid.is_some() => {
                        st.filters.insert(f.name.clone(), f);
                    }
                    _ => log::warn!("skipping filter {}", path.display()),
                }
            }
        }
        if first_start {
            for (_, xml) in wellknown::FILTERS {
                d.define_xml(xml, 0)?;
            }
        }
        let mut st = d.lock();
        for path in store::list_xml(&d.bind_dir)? {
            let b = match fs::read_to_string(&path)
                .ok()
                .map(|x| NwFilterBindingDef::parse(&x))
            {
                Some(Ok(b)) => b,
                _ => {
                    log::warn!("skipping binding {}", path.display());
                    continue;
                }
            };
            if let Some(ip) = fs::read_to_string(d.learn_dir.join(&b.portdev))
                .ok()
                .and_then(|t| t.trim().parse().ok())
            {
                st.learned.insert(b.portdev.clone(), ip);
            }
            if let Err(e) = st.rules(&b).and_then(|r| apply(&b.portdev, &r)) {
                log::warn!("cannot put the rules of binding {} back: {e}", b.portdev);
            }
            st.bindings.insert(b.portdev.clone(), b);
        }
        let learning: Vec<NwFilterBindingDef> = st
            .bindings
            .values()
            .filter(|b| learns_ip(b))
            .cloned()
            .collect();
        drop(st);
        for b in learning {
            d.snoop(&b);
        }
        Ok(d)
    }

    /// Starts learning the guest's address of a binding (a failure only costs the
    /// learning: the binding's rules stand).
    fn snoop(&self, b: &NwFilterBindingDef) {
        let ifindex = rustix::net::socket_with(
            rustix::net::AddressFamily::INET,
            rustix::net::SocketType::DGRAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .and_then(|s| rustix::net::netdevice::name_to_index(&s, &b.portdev))
        .unwrap_or(0);
        if ifindex == 0 {
            log::warn!("cannot learn the address on {}: no such device", b.portdev);
            return;
        }
        let (state, dev, mac, dir) = (
            Arc::clone(&self.state),
            b.portdev.clone(),
            b.mac,
            self.learn_dir.clone(),
        );
        let learned = move |ip: Ipv4Addr| {
            let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
            let Some(b) = st.bindings.get(&dev).filter(|b| b.mac == mac).cloned() else {
                return;
            };
            st.learned.insert(dev.clone(), ip);
            if let Err(e) = store::write_atomic(&dir.join(&dev), ip.to_string().as_bytes()) {
                log::warn!("cannot record the address learned on {dev}: {e}");
            }
            match st.rules(&b).and_then(|r| apply(&dev, &r)) {
                Ok(()) => log::info!("{dev}: learned IP {ip} by DHCP"),
                Err(e) => log::warn!("{dev}: cannot apply the learned IP {ip}: {e}"),
            }
        };
        match snoop::start(ifindex, mac.0, learned) {
            Ok(sn) => {
                self.snoopers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(b.portdev.clone(), sn);
            }
            Err(e) => log::warn!("cannot learn the address on {}: {e}", b.portdev),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn def_path(&self, name: &str) -> PathBuf {
        self.cfg_dir.join(format!("{name}.xml"))
    }

    fn binding_path(&self, dev: &str) -> PathBuf {
        self.bind_dir.join(format!("{dev}.xml"))
    }

    // -----------------------------------------------------------------------------------
    // Filters
    // -----------------------------------------------------------------------------------

    pub fn lookup_by_name(&self, name: &str) -> Result<FilterHandle> {
        self.lock()
            .filters
            .get(name)
            .map(handle)
            .ok_or_else(|| no_filter(&format!("no nwfilter with matching name '{name}'")))
    }

    pub fn lookup_by_uuid(&self, uuid: &[u8; 16]) -> Result<FilterHandle> {
        self.lock()
            .filters
            .values()
            .find(|f| f.uuid.as_ref() == Some(uuid))
            .map(handle)
            .ok_or_else(|| {
                no_filter(&format!(
                    "no nwfilter with matching uuid '{}'",
                    format_uuid(uuid)
                ))
            })
    }

    fn find<'a>(st: &'a State, h: &FilterHandle) -> Result<&'a NwFilterDef> {
        st.filters
            .get(&h.name)
            .filter(|f| f.uuid == Some(h.uuid))
            .or_else(|| st.filters.values().find(|f| f.uuid == Some(h.uuid)))
            .ok_or_else(|| {
                no_filter(&format!(
                    "no nwfilter with matching uuid '{}' ({})",
                    format_uuid(&h.uuid),
                    h.name
                ))
            })
    }

    pub fn list_all(&self, flags: u32) -> Result<Vec<FilterHandle>> {
        check_flags(flags, 0)?;
        Ok(self.lock().filters.values().map(handle).collect())
    }

    pub fn names(&self) -> Vec<String> {
        self.lock().filters.keys().cloned().collect()
    }

    pub fn xml_desc(&self, h: &FilterHandle, flags: u32) -> Result<String> {
        check_flags(flags, 0)?;
        Ok(Self::find(&self.lock(), h)?.format())
    }

    /// Defines (or redefines) a filter. References to filters not defined yet are allowed;
    /// a reference loop is not. The bindings that use the filter get its new rules; if
    /// they cannot, the old definition stays.
    pub fn define_xml(&self, xml: &str, flags: u32) -> Result<FilterHandle> {
        check_flags(flags, vireo_proto::nwfilter::DEFINE_VALIDATE)?;
        let mut def = NwFilterDef::parse(xml)?;
        let mut st = self.lock();
        if let Some(old) = st.filters.get(&def.name) {
            match def.uuid {
                Some(u) if Some(u) != old.uuid => {
                    return Err(NwFilterError::Exists(format!(
                        "filter '{}' already exists with uuid {}",
                        def.name,
                        format_uuid(&old.uuid.unwrap_or_default())
                    )))
                }
                _ => def.uuid = old.uuid,
            }
        } else if st.filters.len() >= MAX_FILTERS {
            return Err(NwFilterError::Invalid(format!(
                "too many filters (at most {MAX_FILTERS})"
            )));
        }
        let uuid = *def
            .uuid
            .get_or_insert_with(|| *uuid::Uuid::new_v4().as_bytes());
        if let Some(o) = st
            .filters
            .values()
            .find(|f| f.uuid == Some(uuid) && f.name != def.name)
        {
            return Err(NwFilterError::Exists(format!(
                "filter with same UUID but different name ('{}') already exists",
                o.name
            )));
        }
        let old = st.filters.insert(def.name.clone(), def.clone());
        if let Some(path) = find_loop(&st.filters, &def.name) {
            restore(&mut st.filters, &def.name, old);
            return Err(NwFilterError::Invalid(format!(
                "filter '{}' would introduce a loop: {}",
                def.name,
                path.join(" -> ")
            )));
        }
        if let Err(e) = self.reapply(&st, &def.name) {
            restore(&mut st.filters, &def.name, old);
            let _ = self.reapply(&st, &def.name);
            return Err(e);
        }
        if let Err(e) = store::write_atomic(&self.def_path(&def.name), def.format().as_bytes()) {
            restore(&mut st.filters, &def.name, old);
            let _ = self.reapply(&st, &def.name);
            return Err(e.into());
        }
        Ok(handle(&def))
    }

    /// Puts the rules of every binding that uses `name` (directly or through references)
    /// in place again.
    fn reapply(&self, st: &State, name: &str) -> Result<()> {
        for b in st.bindings.values() {
            if uses(&st.filters, &b.filterref.filter, name, 0) {
                let rules = st.rules(b)?;
                apply(&b.portdev, &rules)?;
            }
        }
        Ok(())
    }

    pub fn undefine(&self, h: &FilterHandle) -> Result<()> {
        let mut st = self.lock();
        let name = Self::find(&st, h)?.name.clone();
        if let Some(b) = st
            .bindings
            .values()
            .find(|b| uses(&st.filters, &b.filterref.filter, &name, 0))
        {
            return Err(NwFilterError::Invalid(format!(
                "nwfilter '{name}' is in use (by the binding of {})",
                b.portdev
            )));
        }
        store::remove(&self.def_path(&name))?;
        st.filters.remove(&name);
        Ok(())
    }

    // -----------------------------------------------------------------------------------
    // Bindings
    // -----------------------------------------------------------------------------------

    /// Binds a filter to a port device: its rules are in the kernel before this returns.
    pub fn binding_create(&self, xml: &str, flags: u32) -> Result<BindingHandle> {
        check_flags(flags, vireo_proto::nwfilter::BINDING_CREATE_VALIDATE)?;
        let b = NwFilterBindingDef::parse(xml)?;
        let mut st = self.lock();
        if st.bindings.contains_key(&b.portdev) {
            return Err(NwFilterError::Exists(format!(
                "filter binding for portdev {} already exists",
                b.portdev
            )));
        }
        if st.bindings.len() >= MAX_BINDINGS {
            return Err(NwFilterError::Invalid(format!(
                "too many filter bindings (at most {MAX_BINDINGS})"
            )));
        }
        // A new device of an old name learns afresh.
        st.learned.remove(&b.portdev);
        let _ = fs::remove_file(self.learn_dir.join(&b.portdev));
        let rules = compile(&st.filters, &b)?;
        apply(&b.portdev, &rules)?;
        if let Err(e) = store::write_atomic(&self.binding_path(&b.portdev), b.format().as_bytes()) {
            let _ = remove(&b.portdev);
            return Err(e.into());
        }
        let h = bhandle(&b);
        let learn = learns_ip(&b).then(|| b.clone());
        st.bindings.insert(b.portdev.clone(), b);
        drop(st);
        if let Some(b) = learn {
            self.snoop(&b);
        }
        Ok(h)
    }

    pub fn binding_delete(&self, h: &BindingHandle) -> Result<()> {
        let mut st = self.lock();
        let b = st
            .bindings
            .get(&h.portdev)
            .ok_or_else(|| no_binding(&h.portdev))?;
        let dev = b.portdev.clone();
        remove(&dev)?;
        let _ = store::remove(&self.binding_path(&dev));
        st.bindings.remove(&dev);
        st.learned.remove(&dev);
        drop(st);
        let _ = fs::remove_file(self.learn_dir.join(&dev));
        self.snoopers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&dev);
        Ok(())
    }

    pub fn binding_lookup(&self, portdev: &str) -> Result<BindingHandle> {
        self.lock()
            .bindings
            .get(portdev)
            .map(bhandle)
            .ok_or_else(|| no_binding(portdev))
    }

    pub fn binding_list(&self, flags: u32) -> Result<Vec<BindingHandle>> {
        check_flags(flags, 0)?;
        Ok(self.lock().bindings.values().map(bhandle).collect())
    }

    pub fn binding_xml(&self, h: &BindingHandle, flags: u32) -> Result<String> {
        check_flags(flags, 0)?;
        self.lock()
            .bindings
            .get(&h.portdev)
            .map(NwFilterBindingDef::format)
            .ok_or_else(|| no_binding(&h.portdev))
    }
}

fn restore(filters: &mut BTreeMap<String, NwFilterDef>, name: &str, old: Option<NwFilterDef>) {
    match old {
        Some(o) => {
            filters.insert(name.to_string(), o);
        }
        None => {
            filters.remove(name);
        }
    }
}

fn no_filter(what: &str) -> NwFilterError {
    NwFilterError::NoFilter(what.to_string())
}

fn no_binding(dev: &str) -> NwFilterError {
    NwFilterError::NoBinding(format!("no nwfilter binding for port dev '{dev}'"))
}

fn check_flags(flags: u32, known: u32) -> Result<()> {
    if flags & !known != 0 {
        return Err(NwFilterError::InvalidArg(format!(
            "unsupported flags (0x{:x})",
            flags & !known
        )));
    }
    Ok(())
}

/// Whether filter `top` is `name` or references it (missing filters reference nothing).
fn uses(filters: &BTreeMap<String, NwFilterDef>, top: &str, name: &str, depth: usize) -> bool {
    if top == name {
        return true;
    }
    if depth > MAX_DEPTH {
        return false;
    }
    filters.get(top).is_some_and(|f| {
        f.filter_refs()
            .into_iter()
            .any(|r| uses(filters, r, name, depth + 1))
    })
}

/// A reference loop through `start`, as the names along it.
fn find_loop(filters: &BTreeMap<String, NwFilterDef>, start: &str) -> Option<Vec<String>> {
    fn walk(
        filters: &BTreeMap<String, NwFilterDef>,
        at: &str,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        let Some(f) = filters.get(at) else {
            return false;
        };
        for r in f.filter_refs() {
            path.push(r.to_string());
            if r == start {
                return true;
            }
            if seen.insert(r.to_string()) && walk(filters, r, start, path, seen) {
                return true;
            }
            path.pop();
        }
        false
    }
    let mut path = vec![start.to_string()];
    walk(filters, start, start, &mut path, &mut BTreeSet::new()).then_some(path)
}

/// The binding's rules with their variables' values.
pub fn compile(
    filters: &BTreeMap<String, NwFilterDef>,
    b: &NwFilterBindingDef,
) -> Result<Vec<nft::Rule>> {
    let mut vars = b.parameters();
    vars.insert("MAC".into(), vec![b.mac.to_string()]);
    let mut out = Vec::new();
    walk(filters, &b.filterref.filter, &vars, 0, &mut out)?;
    Ok(out)
}

fn walk(
    filters: &BTreeMap<String, NwFilterDef>,
    name: &str,
    vars: &BTreeMap<String, Vec<String>>,
    depth: usize,
    out: &mut Vec<nft::Rule>,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(NwFilterError::Invalid(format!(
            "filters are nested too deeply at '{name}'"
        )));
    }
    let f = filters
        .get(name)
        .ok_or_else(|| NwFilterError::NoFilter(format!("referenced filter '{name}' is missing")))?;
    for e in &f.entries {
        match e {
            FilterEntry::Rule(r) => instantiate(f, r, vars, out),
            FilterEntry::Ref(r) => {
                let mut inner = vars.clone();
                inner.extend(r.parameter_map());
                walk(filters, &r.filter, &inner, depth + 1, out)?;
            }
        }
    }
    Ok(())
}

/// The protocol as [`nft::matches`] names it.
fn proto_name(p: RuleProtocol) -> String {
    match p {
        RuleProtocol::Icmpv6 => "icmp-ipv6".into(),
        p => p.as_str().to_string(),
    }
}

/// Adds the rule once per combination of its variables' values (none if one is missing).
fn instantiate(
    f: &NwFilterDef,
    r: &FilterRule,
    vars: &BTreeMap<String, Vec<String>>,
    out: &mut Vec<nft::Rule>,
) {
    let used = r.variables();
    // Iterators: each advances its variables in step, as many times as its shortest list.
    let mut iters: BTreeMap<u32, usize> = BTreeMap::new();
    for v in &used {
        let Some(vals) = vars.get(&v.name).filter(|x| !x.is_empty()) else {
            return;
        };
        match v.index {
            VarIndex::Iterator(id) => {
                let n = iters.entry(id).or_insert(vals.len());
                *n = (*n).min(vals.len());
            }
            VarIndex::Element(i) => {
                if i as usize >= vals.len() {
                    return;
                }
            }
        }
    }
    let ids: Vec<(u32, usize)> = iters.into_iter().collect();
    let total: usize = ids.iter().map(|(_, n)| *n).product::<usize>().min(4096);
    for mut k in 0..total.max(1) {
        let mut pos: BTreeMap<u32, usize> = BTreeMap::new();
        for (id, n) in &ids {
            pos.insert(*id, k % n);
            k /= n;
        }
        let mut attrs = BTreeMap::new();
        let mut negated = BTreeSet::new();
        let mut proto = String::new();
        if let Some(m) = &r.matches {
            proto = proto_name(m.protocol);
            for a in &m.attrs {
                let value = match vireo_xml::is_var(&a.value) {
                    Some(v) => {
                        let vals = &vars[&v.name];
                        let i = match v.index {
                            VarIndex::Iterator(id) => pos.get(&id).copied().unwrap_or(0),
                            VarIndex::Element(i) => i as usize,
                        };
                        vals[i].clone()
                    }
                    None => a.value.clone(),
                };
                if a.negated {
                    negated.insert(a.name.clone());
                }
                attrs.insert(a.name.clone(), value);
            }
        }
        out.push(nft::Rule {
            action: r.action.as_str().to_string(),
            direction: r.direction.as_str().to_string(),
            priority: r.priority,
            chain: f.chain.clone(),
            chain_priority: f.priority,
            proto,
            attrs,
            negated,
        });
    }
}

fn run_nft(script: &str) -> Result<()> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let nft = vireo_hostprog::find("nft")?;
    let mut child = Command::new(nft)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NwFilterError::io("cannot run nft", e))?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(script.as_bytes())
            .map_err(|e| NwFilterError::io("cannot write to nft", e))?;
    }
    let o = child
        .wait_with_output()
        .map_err(|e| NwFilterError::io("cannot run nft", e))?;
    if !o.status.success() {
        return Err(NwFilterError::Firewall(
            String::from_utf8_lossy(&o.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

/// Puts a binding's rules in the kernel (replacing what it had).
fn apply(dev: &str, rules: &[nft::Rule]) -> Result<()> {
    run_nft(&nft::script(dev, rules))
}

/// Removes a binding's rules.
fn remove(dev: &str) -> Result<()> {
    run_nft(&nft::remove_script(dev))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wellknown() -> BTreeMap<String, NwFilterDef> {
        wellknown::FILTERS
            .iter()
            .map(|(n, x)| {
                let f = NwFilterDef::parse(x).unwrap_or_else(|e| panic!("{n}: {e}"));
                assert_eq!(f.name, *n);
                (f.name.clone(), f)
            })
            .collect()
    }

    fn binding(filter: &str, params: &str) -> NwFilterBindingDef {
        NwFilterBindingDef::parse(&format!(
            "<filterbinding><owner><name>vm</name>\
             <uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid></owner>\
             <portdev name='vnet0'/><mac address='52:54:00:aa:bb:cc'/>\
             <filterref filter='{filter}'>{params}</filterref></filterbinding>"
        ))
        .unwrap()
    }

    #[test]
    fn clean_traffic_compiles_with_the_guest_address() {
        let f = wellknown();
        let b = binding("clean-traffic", "<parameter name='IP' value='10.77.0.50'/>");
        let rules = compile(&f, &b).unwrap();
        let s = nft::script("vnet0", &rules);
        assert!(s.contains("ether saddr == 52:54:00:aa:bb:cc return"), "{s}");
        assert!(s.contains("ip saddr == 10.77.0.50 return"), "{s}");
        assert!(s.contains("arp saddr ip == 10.77.0.50 return"), "{s}");
        // Without an address, the rules that need one are left out: IPv4 from the guest
        // is dropped but for DHCP.
        let rules = compile(&f, &binding("clean-traffic", "")).unwrap();
        let s = nft::script("vnet0", &rules);
        assert!(!s.contains("10.77.0.50"), "{s}");
        assert!(s.contains("ip saddr == 0.0.0.0"), "{s}");
    }

    #[test]
    fn lists_make_a_rule_per_value_and_missing_filters_are_named() {
        let mut f = wellknown();
        let b = binding(
            "no-ip-spoofing",
            "<parameter name='IP' value='10.0.0.1'/><parameter name='IP' value='10.0.0.2'/>",
        );
        let rules = compile(&f, &b).unwrap();
        let with_ip = rules
            .iter()
            .filter(|r| {
                r.attrs
                    .get("srcipaddr")
                    .is_some_and(|v| v.starts_with("10."))
            })
            .count();
        assert_eq!(with_ip, 2);
        f.remove("no-ip-spoofing");
        let e = compile(&f, &binding("clean-traffic", "")).unwrap_err();
        assert!(e.to_string().contains("'no-ip-spoofing' is missing"), "{e}");
    }

    #[test]
    fn reference_loops_are_found() {
        let mut f = wellknown();
        for (n, r) in [("a", "b"), ("b", "c"), ("c", "a")] {
            let d = NwFilterDef::parse(&format!(
                "<filter name='{n}'><filterref filter='{r}'/></filter>"
            ))
            .unwrap();
            f.insert(n.into(), d);
        }
        assert_eq!(find_loop(&f, "a").unwrap(), ["a", "b", "c", "a"]);
        assert!(find_loop(&f, "clean-traffic").is_none());
    }
}
