//! Domain definitions: the registry of domains by name, UUID and id, their persistent XML
//! files, autostart links, and the answers to the domain API calls that need no running VM.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicI32;
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use vireo_driver::events::{DeviceEvent, EventBus, LifecycleEvent};
use vireo_driver::journal::DefStore;
use vireo_driver::store;
use vireo_driver::{DriverError, Result};
use vireo_proto::remote::{event, list_flags, state, Domain as Handle, Uuid};
use vireo_rpc::client::Connection;
use vireo_xml::{format_uuid, Domain, XmlError};

use crate::caps::QemuCaps;

#[derive(Debug, Clone)]
pub struct QemuConfig {
    /// Where persistent definitions live (`<config>/qemu`).
    pub config_dir: PathBuf,
    /// The daemon's runtime directory (`<run>`): shims put their sockets in `shim/`.
    pub run_dir: PathBuf,
    /// Where each domain's log (`NAME.log`: shim and QEMU messages) goes.
    pub log_dir: PathBuf,
    pub emulator: PathBuf,
    /// The `vireo-shim` binary.
    pub shim: PathBuf,
    /// Where managed save images (`NAME.save`) are kept.
    pub save_dir: PathBuf,
    /// Each VM's own sockets (`<run>/vm/<NAME>-sock`, `-sock-ro`) take the daemon's modes
    /// (read-write, read-only) and group.
    pub vm_sock_perms: (u32, u32),
    pub vm_sock_group: Option<u32>,
    /// Whom QEMU runs as (qemu.conf's `user` and `group`); `None`: as the daemon.
    pub qemu_user: Option<QemuUser>,
    /// qemu.conf's `dynamic_ownership`: QEMU's user gets the VM's files while it runs.
    pub dynamic_ownership: bool,
    /// qemu.conf's `seccomp_sandbox`: QEMU runs under its own seccomp filter.
    pub seccomp_sandbox: bool,
}

/// A user QEMU runs as: its uid, its group and its supplementary groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuUser {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl QemuUser {
    /// As the shim takes it: `UID:GID[:G1,G2…]`.
    pub fn to_arg(&self) -> String {
        let groups: Vec<String> = self.groups.iter().map(u32::to_string).collect();
        format!("{}:{}:{}", self.uid, self.gid, groups.join(","))
    }

    /// The inverse of [`QemuUser::to_arg`].
    pub fn from_arg(s: &str) -> Option<QemuUser> {
        let mut it = s.splitn(3, ':');
        let uid = it.next()?.parse().ok()?;
        let gid = it.next()?.parse().ok()?;
        let groups = match it.next() {
            None | Some("") => Vec::new(),
            Some(g) => g
                .split(',')
                .map(str::parse)
                .collect::<std::result::Result<_, _>>()
                .ok()?,
        };
        Some(QemuUser { uid, gid, groups })
    }
}

impl QemuConfig {
    pub fn new(config_dir: PathBuf, run_dir: PathBuf, log_dir: PathBuf, save_dir: PathBuf) -> Self {
        QemuConfig {
            config_dir,
            run_dir,
            log_dir,
            save_dir,
            emulator: find_emulator(),
            shim: find_shim(),
            vm_sock_perms: (0o700, 0o777),
            vm_sock_group: None,
            qemu_user: None,
            dynamic_ownership: true,
            seccomp_sandbox: true,
        }
    }

    fn autostart_dir(&self) -> PathBuf {
        self.config_dir.join("autostart")
    }
}

/// `$VIREO_SHIM`, else `vireo-shim` next to the running daemon, else on `PATH`.
fn find_shim() -> PathBuf {
    if let Some(p) = std::env::var_os("VIREO_SHIM") {
        return PathBuf::from(p);
    }
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("vireo-shim")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("vireo-shim"))
}

fn find_emulator() -> PathBuf {
    let name = "qemu-system-x86_64";
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|c| c.is_file())
        })
        .unwrap_or_else(|| PathBuf::from("/usr/bin").join(name))
}

/// `virDomainInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainInfo {
    pub state: i32,
    pub max_mem_kib: u64,
    pub memory_kib: u64,
    pub vcpus: u32,
    pub cpu_time_ns: u64,
}

pub(crate) struct DomainObj {
    /// The persistent definition (or, for a transient domain, the one it runs with).
    pub(crate) def: Domain,
    pub(crate) uuid: Uuid,
    pub(crate) persistent: bool,
    pub(crate) autostart: bool,
    /// Set while running.
    pub(crate) id: Option<i32>,
    /// (state, reason), kept up to date by the shim's events.
    pub(crate) state: (i32, i32),
    /// The connection to the running VM's shim.
    pub(crate) shim: Option<Arc<Connection>>,
    /// A start is in progress.
    pub(crate) starting: bool,
    /// While running: the ports of its interfaces on networks and host bridges, by the
    /// interface's alias.
    pub(crate) ports: Vec<(String, crate::peers::PortRef)>,
    /// While running: it holds host devices leased from the node device driver.
    pub(crate) leased: bool,
    /// While running: its host devices, by alias (with those being plugged in).
    pub(crate) hostdevs: Vec<crate::devlease::HeldDevice>,
    /// A managed save image waits for the next start.
    pub(crate) managed_save: bool,
    /// The VM is being stopped to revert to a snapshot: its end is reported so.
    pub(crate) stopping_for_snapshot: bool,
    /// The statistics of its last job that ended well, once its shim has gone (a
    /// migration's, at both ends).
    pub(crate) completed_job: Option<Vec<vireo_proto::typed::TypedParam>>,
    /// Its outgoing migration's downtime as the destination counted it (to its resume),
    /// which replaces QEMU's in the statistics of the job's end.
    pub(crate) downtime_seen_there: Option<u64>,
}

impl DomainObj {
    pub(crate) fn new(def: Domain, uuid: Uuid, persistent: bool) -> Self {
        DomainObj {
            def,
            uuid,
            persistent,
            autostart: false,
            id: None,
            state: (state::SHUTOFF, state::SHUTOFF_UNKNOWN),
            shim: None,
            starting: false,
            ports: Vec::new(),
            leased: false,
            hostdevs: Vec::new(),
            managed_save: false,
            stopping_for_snapshot: false,
            completed_job: None,
            downtime_seen_there: None,
        }
    }

    pub(crate) fn handle(&self) -> Handle {
        Handle {
            name: self.def.name.clone(),
            uuid: self.uuid,
            id: self.id.unwrap_or(-1),
        }
    }

    pub(crate) fn active(&self) -> bool {
        self.id.is_some()
    }
}

#[derive(Default)]
pub(crate) struct Registry {
    pub(crate) by_uuid: HashMap<Uuid, DomainObj>,
    pub(crate) by_name: HashMap<String, Uuid>,
}

impl Registry {
    /// Refuses a name that another UUID has, and a UUID that another name has.
    pub(crate) fn check_identity(&self, name: &str, uuid: &Uuid) -> Result<()> {
        if let Some(other) = self.by_name.get(name).filter(|u| *u != uuid) {
            return Err(DriverError::DomainExists(format!(
                "domain '{name}' is already defined with uuid {}",
                format_uuid(other)
            )));
        }
        if let Some(o) = self.by_uuid.get(uuid).filter(|o| o.def.name != name) {
            return Err(DriverError::DomainExists(format!(
                "domain '{}' already exists with uuid {}",
                o.def.name,
                format_uuid(uuid)
            )));
        }
        Ok(())
    }
}

pub struct QemuDriver {
    pub(crate) cfg: QemuConfig,
    pub(crate) reg: RwLock<Registry>,
    pub(crate) events: EventBus,
    caps: OnceLock<QemuCaps>,
    /// The persistent definitions (`NAME.xml` in the config dir, journaled).
    pub(crate) defs: DefStore,
    /// The id the next started domain gets.
    pub(crate) next_id: AtomicI32,
    /// The other drivers (storage, …), set once by the daemon.
    pub(crate) peers: OnceLock<Arc<dyn crate::peers::Peers>>,
    /// Devices that came and went (DEVICE_ADDED, DEVICE_REMOVED, …).
    pub(crate) device_events: EventBus<DeviceEvent>,
    /// The emulator's CPU model names, probed once when first asked for.
    cpu_models: OnceLock<Vec<String>>,
    /// Each model's features and the host's, under TCG and under KVM, probed once each
    /// when first asked for.
    cpu_defs: [OnceLock<crate::cpumodel::CpuModels>; 2],
    /// The VMs being restored from a save image, and how far.
    pub(crate) restores: crate::restorejob::Restores,
    /// Each domain's snapshots.
    pub(crate) snapshots: crate::snapshot::Store,
    /// Domains whose host devices are still to be given back.
    pub(crate) pending_releases: Arc<crate::devlease::PendingReleases>,
    /// Incoming migrations and the migration speeds of domains that do not run.
    pub(crate) migrations: crate::migrate::Migrations,
    /// Calls to shims that got no answer, and shims lost (for the metrics).
    pub(crate) shim_counters: crate::health::ShimCounters,
}

impl QemuDriver {
    /// A file made here for VM `uuid`'s QEMU to open (an overlay, a copy's target):
    /// QEMU's user's, when QEMU runs as one and qemu.conf's `dynamic_ownership` is on,
    /// and held by the VM's shim in the owner records, so that it goes back to root when
    /// that shim ends (see [`crate::owners`]).
    pub(crate) fn give_to_qemu(&self, uuid: &[u8; 16], path: &str) {
        let Some(u) = self
            .cfg
            .qemu_user
            .as_ref()
            .filter(|_| self.cfg.dynamic_ownership)
        else {
            return;
        };
        let vm = format_uuid(uuid);
        let holder =
            std::fs::read_to_string(self.cfg.run_dir.join("shim").join(format!("{vm}.status")))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v.get("shim_pid")?.as_i64())
                .and_then(|pid| crate::owners::Holder::of(i32::try_from(pid).ok()?, &vm));
        let r = match holder {
            Some(h) => crate::owners::Store::new(&self.cfg.run_dir)
                .give(std::path::Path::new(path), u.uid, u.gid, &h)
                .map(|_| ()),
            // No shim to hold it (it is ending): QEMU's, with nobody to give it back.
            None => std::os::unix::fs::chown(path, Some(u.uid), Some(u.gid)),
        };
        if let Err(e) = r {
            log::warn!("cannot give {path} to QEMU's user: {e}");
        }
    }

    /// Loads every persistent definition from the config dir.
    pub fn open(cfg: QemuConfig, events: EventBus) -> Result<QemuDriver> {
        let defs = DefStore::open(&cfg.config_dir, &cfg.config_dir.with_extension("journal"))?;
        let d = QemuDriver {
            defs,
            cfg,
            reg: RwLock::new(Registry::default()),
            events,
            caps: OnceLock::new(),
            next_id: AtomicI32::new(1),
            peers: OnceLock::new(),
            device_events: EventBus::default(),
            cpu_models: OnceLock::new(),
            cpu_defs: Default::default(),
            snapshots: Default::default(),
            restores: Default::default(),
            pending_releases: Default::default(),
            migrations: Default::default(),
            shim_counters: Default::default(),
        };
        d.load()?;
        Ok(d)
    }

    /// Gives the driver its way to the other drivers (once; later calls are ignored).
    pub fn set_peers(&self, peers: Arc<dyn crate::peers::Peers>) {
        let _ = self.peers.set(peers);
    }

    fn load(&self) -> Result<()> {
        let mut reg = self.write();
        // The definitions the journal holds but a full disk kept from their files are
        // newer than those files.
        let unwritten = self.defs.unwritten()?;
        let mut sources: Vec<(PathBuf, std::io::Result<String>)> = Vec::new();
        for path in store::list_xml(&self.cfg.config_dir)? {
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
            if !unwritten.iter().any(|(n, _)| Some(n) == stem.as_ref()) {
                let text = std::fs::read_to_string(&path);
                sources.push((path, text));
            }
        }
        for (name, data) in unwritten {
            let path = self.cfg.config_dir.join(format!("{name}.xml (journal)"));
            sources.push((path, Ok(String::from_utf8_lossy(&data).into_owned())));
        }
        for (path, text) in sources {
            let text = match text {
                Ok(t) => t,
                Err(e) => {
                    log::warn!("skipping {}: {e}", path.display());
                    continue;
                }
            };
            let def = match Domain::parse(&text) {
                Ok(d) => d,
                Err(e) => {
                    log::warn!("skipping {}: {e}", path.display());
                    continue;
                }
            };
            let Some(uuid) = def.uuid else {
                log::warn!("skipping {}: no uuid", path.display());
                continue;
            };
            if reg.by_uuid.contains_key(&uuid) || reg.by_name.contains_key(&def.name) {
                log::warn!("skipping {}: duplicate domain", path.display());
                continue;
            }
            let autostart = self.autostart_link(&def.name).exists();
            reg.by_name.insert(def.name.clone(), uuid);
            let managed_save = self.managed_save_path(&def.name).is_file();
            let mut obj = DomainObj::new(def, uuid, true);
            obj.autostart = autostart;
            if managed_save {
                obj.managed_save = true;
                obj.state = (state::SHUTOFF, state::SHUTOFF_SAVED);
            }
            reg.by_uuid.insert(uuid, obj);
        }
        Ok(())
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Registry> {
        self.reg.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Registry> {
        self.reg.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// The bus of device events (attach and detach).
    pub fn device_events(&self) -> &EventBus<DeviceEvent> {
        &self.device_events
    }

    /// QEMU's capabilities, probed once.
    pub fn caps(&self) -> &QemuCaps {
        self.caps
            .get_or_init(|| QemuCaps::probe(&self.cfg.emulator))
    }

    pub fn capabilities_xml(&self) -> String {
        let node = vireo_driver::host::node_info();
        self.caps()
            .capabilities_xml(&crate::caps::host_uuid(), &node)
    }

    /// `virConnectGetDomainCapabilities`.
    pub fn domain_capabilities(&self, q: &crate::domcaps::Query) -> Result<String> {
        // The host-model CPU of the accelerator asked about (an unknown type is refused
        // there).
        let kvm = q.virttype.map_or(self.caps().kvm, |v| v == "kvm");
        crate::domcaps::domain_capabilities(
            self.caps(),
            self.cpu_models(),
            self.cpu_defs_for(kvm),
            q,
        )
    }

    /// `virConnectGetCPUModelNames`.
    pub fn cpu_model_names(&self, arch: &str) -> Result<Vec<String>> {
        if arch != "x86_64" {
            return Err(DriverError::InvalidArg(format!(
                "cannot find CPU models for architecture '{arch}'"
            )));
        }
        Ok(self.cpu_models().to_vec())
    }

    /// QEMU's CPU models and the host's CPU as the default accelerator sees them.
    pub fn cpu_defs(&self) -> &crate::cpumodel::CpuModels {
        self.cpu_defs_for(self.caps().kvm)
    }

    /// QEMU's CPU models and the host's CPU under KVM (when the host has it) or TCG:
    /// which models are usable, and what `host` / `max` give a guest, differ between them.
    pub fn cpu_defs_for(&self, kvm: bool) -> &crate::cpumodel::CpuModels {
        let kvm = kvm && self.caps().kvm;
        self.cpu_defs[usize::from(kvm)]
            .get_or_init(|| crate::cpumodel::CpuModels::probe(&self.cfg.emulator, kvm))
    }

    /// COMPARE_CPU (`hypervisor`: COMPARE_HYPERVISOR_CPU): the host's CPU, as QEMU gives
    /// it to guests, against `xml`.
    pub fn compare_cpu(&self, xml: &str, flags: u32) -> Result<i32> {
        // VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE, VALIDATE_XML (not done: accepted).
        if flags & !3 != 0 {
            return Err(DriverError::InvalidArg(format!(
                "unsupported flags (0x{flags:x})"
            )));
        }
        self.cpu_defs().compare(xml, flags & 1 != 0)
    }

    /// BASELINE_CPU (`hypervisor`: BASELINE_HYPERVISOR_CPU, only models this host runs).
    pub fn baseline_cpu(&self, xmls: &[String], flags: u32, hypervisor: bool) -> Result<String> {
        // EXPAND_FEATURES, MIGRATABLE (every feature here is).
        if flags & !3 != 0 {
            return Err(DriverError::InvalidArg(format!(
                "unsupported flags (0x{flags:x})"
            )));
        }
        self.cpu_defs().baseline(xmls, hypervisor, flags & 1 != 0)
    }

    fn cpu_models(&self) -> &[String] {
        self.cpu_models
            .get_or_init(|| crate::domcaps::probe_cpu_models(&self.cfg.emulator))
    }

    pub fn hypervisor_version(&self) -> u64 {
        self.caps().version
    }

    fn autostart_link(&self, name: &str) -> PathBuf {
        self.cfg.autostart_dir().join(format!("{name}.xml"))
    }

    /// Parses and checks a definition, filling what libvirt fills (UUID, machine, emulator).
    pub(crate) fn prepare(&self, xml: &str) -> Result<Domain> {
        let mut def = Domain::parse_kept(xml).map_err(xml_error)?;
        if def.name.is_empty() {
            return Err(DriverError::XmlInvalid("missing domain name".into()));
        }
        if def.name.contains('/') {
            return Err(DriverError::XmlInvalid(format!(
                "name '{}' cannot contain '/'",
                def.name
            )));
        }
        match def.dom_type.as_str() {
            "qemu" | "kvm" => {}
            other => {
                return Err(DriverError::ConfigUnsupported(format!(
                    "virtualization type '{other}' is not supported by the QEMU driver; use 'kvm' or 'qemu'"
                )))
            }
        }
        if def.os.os_type.name != "hvm" {
            return Err(DriverError::ConfigUnsupported(format!(
                "os type '{}' is not supported; only 'hvm'",
                def.os.os_type.name
            )));
        }
        if def.memory_kib == 0 {
            return Err(DriverError::XmlInvalid(
                "Memory size must be specified via <memory> or in the <numa> configuration".into(),
            ));
        }
        if def.uuid.is_none() {
            def.uuid = Some(*uuid::Uuid::new_v4().as_bytes());
        }
        self.fill_defaults(&mut def);
        // PCI places are given once, here, and kept: the guest sees its devices where it
        // saw them last time.
        if let Some(family) = crate::cmdline::family_of(&def, self.caps()) {
            crate::pci::assign(&mut def, family).map_err(DriverError::ConfigUnsupported)?;
        }
        Ok(def)
    }

    fn fill_defaults(&self, def: &mut Domain) {
        let caps = self.caps();
        let machine = def
            .os
            .os_type
            .machine
            .clone()
            .unwrap_or_else(|| "pc".into());
        if let Some(c) = caps.canonical_machine(&machine) {
            def.os.os_type.machine = Some(c);
        } else {
            def.os.os_type.machine = Some(machine);
        }
        if def.devices.emulator.is_none() {
            def.devices.emulator = Some(caps.emulator.to_string_lossy().into_owned());
        }
        // On x86 a console without a target is the first serial port, and a definition
        // with such a console and no <serial> gets the serial port it stands for, as
        // libvirt fills them (so the two are shown, and followed, as one).
        let serials_empty = def.devices.serials.is_empty();
        if let Some(c) = def.devices.consoles.first_mut() {
            let t = c.target.get_or_insert_with(Default::default);
            if t.target_type.is_none() {
                t.target_type = Some("serial".into());
            }
            if t.target_type.as_deref() == Some("serial") {
                t.port.get_or_insert(0);
                if serials_empty {
                    let mut serial = c.clone();
                    serial.tty = None;
                    serial.target = Some(vireo_xml::ChardevTarget {
                        target_type: Some("isa-serial".into()),
                        port: Some(0),
                        model_name: Some("isa-serial".into()),
                        ..Default::default()
                    });
                    def.devices.serials.push(serial);
                }
            }
        }
        // libvirt gives every NIC a MAC in QEMU's locally administered range.
        for nic in def
            .devices
            .interfaces
            .iter_mut()
            .filter(|n| n.mac.is_none())
        {
            let r = uuid::Uuid::new_v4();
            let b = r.as_bytes();
            nic.mac = Some(vireo_xml::format_mac(&[0x52, 0x54, 0x00, b[0], b[1], b[2]]));
        }
    }

    /// Defines (or redefines) a persistent domain.
    pub fn define_xml(&self, xml: &str) -> Result<Handle> {
        self.define_xml_flags(xml, 0)
    }

    /// `virDomainDefineXMLFlags`: with `VALIDATE`, the XML is first checked against
    /// libvirt's schema.
    pub fn define_xml_flags(&self, xml: &str, flags: u32) -> Result<Handle> {
        if flags & !crate::validate::DEFINE_VALIDATE != 0 {
            return Err(DriverError::InvalidArg(format!(
                "unsupported flags (0x{:x})",
                flags & !crate::validate::DEFINE_VALIDATE
            )));
        }
        if flags & crate::validate::DEFINE_VALIDATE != 0 {
            crate::validate::domain_schema(xml)?;
        }
        let def = self.prepare(xml)?;
        let uuid = def.uuid.unwrap_or_default();
        let mut reg = self.write();
        reg.check_identity(&def.name, &uuid)?;
        let existed = reg.by_uuid.contains_key(&uuid);
        self.defs.put(&def.name, def.format().as_bytes())?;
        let detail = if existed {
            event::DEFINED_UPDATED
        } else {
            event::DEFINED_ADDED
        };
        let handle = match reg.by_uuid.get_mut(&uuid) {
            Some(obj) => {
                obj.def = def;
                obj.persistent = true;
                obj.handle()
            }
            None => {
                reg.by_name.insert(def.name.clone(), uuid);
                let obj = DomainObj::new(def, uuid, true);
                let h = obj.handle();
                reg.by_uuid.insert(uuid, obj);
                h
            }
        };
        drop(reg);
        self.events.publish(LifecycleEvent {
            dom: handle.clone(),
            event: event::DEFINED,
            detail,
        });
        Ok(handle)
    }

    /// Removes a domain's persistent definition. A running domain would become transient.
    /// A managed save image goes too with `UNDEFINE_MANAGED_SAVE`, else it is refused.
    pub fn undefine(&self, h: &Handle, flags: u32) -> Result<()> {
        let mut reg = self.write();
        let obj = reg
            .by_uuid
            .get(&h.uuid)
            .ok_or_else(|| no_domain_uuid(&h.uuid, &h.name))?;
        if !obj.persistent {
            return Err(DriverError::OperationInvalid(
                "cannot undefine transient domain".into(),
            ));
        }
        let name = obj.def.name.clone();
        // The domain's UEFI variables go only when asked (NVRAM) or stay (KEEP_NVRAM).
        let nvram = self.nvram_of(&obj.def);
        if let Some(nv) = nvram.as_ref().filter(|p| p.exists()) {
            if flags & (UNDEFINE_NVRAM | UNDEFINE_KEEP_NVRAM) == 0 {
                return Err(DriverError::OperationInvalid(format!(
                    "cannot undefine domain with nvram ({})",
                    nv.display()
                )));
            }
        }
        let snapshots = self.snapshot_count(&h.uuid);
        if snapshots > 0 && !obj.active() && flags & UNDEFINE_SNAPSHOTS_METADATA == 0 {
            return Err(DriverError::OperationInvalid(format!(
                "cannot delete inactive domain with {snapshots} snapshots"
            )));
        }
        if obj.managed_save {
            if flags & UNDEFINE_MANAGED_SAVE == 0 {
                return Err(DriverError::OperationInvalid(
                    "Refusing to undefine while domain managed save image exists".into(),
                ));
            }
            store::remove(&self.managed_save_path(&name))?;
            if let Some(o) = reg.by_uuid.get_mut(&h.uuid) {
                o.managed_save = false;
            }
        }
        let Some(obj) = reg.by_uuid.get(&h.uuid) else {
            return Err(no_domain_uuid(&h.uuid, &h.name));
        };
        let active = obj.active();
        if snapshots > 0 && !active {
            self.drop_snapshot_metadata(&h.uuid)?;
        }
        if let Some(nv) = nvram.filter(|_| flags & UNDEFINE_NVRAM != 0) {
            store::remove(&nv)?;
        }
        // An emulated TPM's state goes with the domain unless KEEP_TPM says otherwise.
        let tpm = self.tpm_state_dir(&format_uuid(&h.uuid));
        if flags & UNDEFINE_KEEP_TPM == 0 && !active && tpm.exists() {
            std::fs::remove_dir_all(&tpm)
                .map_err(|e| DriverError::io(format!("cannot remove {}", tpm.display()), e))?;
        }
        if obj.autostart {
            store::remove(&self.autostart_link(&name))?;
        }
        self.defs.remove(&name)?;
        let handle = obj.handle();
        if active {
            if let Some(o) = reg.by_uuid.get_mut(&h.uuid) {
                o.persistent = false;
                o.autostart = false;
            }
        } else {
            reg.by_uuid.remove(&h.uuid);
            reg.by_name.remove(&name);
        }
        drop(reg);
        self.events.publish(LifecycleEvent {
            dom: handle,
            event: event::UNDEFINED,
            detail: event::UNDEFINED_REMOVED,
        });
        Ok(())
    }

    pub fn lookup_by_name(&self, name: &str) -> Result<Handle> {
        let reg = self.read();
        reg.by_name
            .get(name)
            .and_then(|u| reg.by_uuid.get(u))
            .map(DomainObj::handle)
            .ok_or_else(|| DriverError::NoDomain(format!("no domain with matching name '{name}'")))
    }

    pub fn lookup_by_uuid(&self, uuid: &Uuid) -> Result<Handle> {
        self.read()
            .by_uuid
            .get(uuid)
            .map(DomainObj::handle)
            .ok_or_else(|| {
                DriverError::NoDomain(format!(
                    "no domain with matching uuid '{}'",
                    format_uuid(uuid)
                ))
            })
    }

    pub fn lookup_by_id(&self, id: i32) -> Result<Handle> {
        self.read()
            .by_uuid
            .values()
            .find(|o| o.id == Some(id))
            .map(DomainObj::handle)
            .ok_or_else(|| DriverError::NoDomain(format!("no domain with matching id {id}")))
    }

    pub(crate) fn with<T>(&self, h: &Handle, f: impl FnOnce(&DomainObj) -> T) -> Result<T> {
        let reg = self.read();
        reg.by_uuid
            .get(&h.uuid)
            .map(f)
            .ok_or_else(|| no_domain_uuid(&h.uuid, &h.name))
    }

    /// `virConnectListAllDomains` with libvirt's filter flags.
    pub fn list_all(&self, flags: u32) -> Vec<Handle> {
        let reg = self.read();
        let mut v: Vec<Handle> = reg
            .by_uuid
            .values()
            .filter(|o| matches_filter(o, flags, || self.snapshot_count(&o.uuid) > 0))
            .map(DomainObj::handle)
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn active_ids(&self) -> Vec<i32> {
        let mut ids: Vec<i32> = self.read().by_uuid.values().filter_map(|o| o.id).collect();
        ids.sort_unstable();
        ids
    }

    pub fn inactive_names(&self) -> Vec<String> {
        let mut n: Vec<String> = self
            .read()
            .by_uuid
            .values()
            .filter(|o| !o.active())
            .map(|o| o.def.name.clone())
            .collect();
        n.sort();
        n
    }

    /// The domain's XML. Passwords (graphics `passwd`) only with `secure`, as in libvirt.
    pub fn xml_desc(&self, h: &Handle, secure: bool) -> Result<String> {
        self.with(h, |o| {
            if secure || o.def.devices.graphics.iter().all(|g| g.passwd.is_none()) {
                return o.def.format_with_id(o.id);
            }
            let mut def = o.def.clone();
            for g in &mut def.devices.graphics {
                g.passwd = None;
            }
            def.format_with_id(o.id)
        })
    }

    pub fn info(&self, h: &Handle) -> Result<DomainInfo> {
        self.with(h, |o| DomainInfo {
            state: o.state.0,
            max_mem_kib: o.def.max_memory_kib(),
            memory_kib: o.def.current_memory_kib,
            vcpus: o.def.vcpus,
            cpu_time_ns: 0,
        })
    }

    /// (state, reason)
    pub fn state(&self, h: &Handle) -> Result<(i32, i32)> {
        self.with(h, |o| o.state)
    }

    pub fn os_type(&self, h: &Handle) -> Result<String> {
        self.with(h, |o| o.def.os.os_type.name.clone())
    }

    pub fn max_memory(&self, h: &Handle) -> Result<u64> {
        self.with(h, |o| o.def.max_memory_kib())
    }

    pub fn vcpus(&self, h: &Handle) -> Result<u32> {
        self.with(h, |o| o.def.vcpus)
    }

    /// The vCPUs online at boot (`<vcpu current>`), of the definition.
    pub fn current_vcpus(&self, h: &Handle) -> Result<u32> {
        self.with(h, |o| o.def.current_vcpus())
    }

    pub fn is_active(&self, h: &Handle) -> Result<bool> {
        self.with(h, DomainObj::active)
    }

    pub fn is_persistent(&self, h: &Handle) -> Result<bool> {
        self.with(h, |o| o.persistent)
    }

    pub fn autostart(&self, h: &Handle) -> Result<bool> {
        self.with(h, |o| o.autostart)
    }

    pub fn set_autostart(&self, h: &Handle, on: bool) -> Result<()> {
        let mut reg = self.write();
        let obj = reg
            .by_uuid
            .get_mut(&h.uuid)
            .ok_or_else(|| no_domain_uuid(&h.uuid, &h.name))?;
        if !obj.persistent {
            return Err(DriverError::OperationInvalid(
                "cannot set autostart for transient domain".into(),
            ));
        }
        if obj.autostart == on {
            return Ok(());
        }
        let link = self.autostart_link(&obj.def.name);
        if on {
            let dir = self.cfg.autostart_dir();
            std::fs::create_dir_all(&dir)
                .map_err(|e| DriverError::io(format!("cannot create {}", dir.display()), e))?;
            let target = Path::new("..").join(format!("{}.xml", obj.def.name));
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&target, &link).map_err(|e| {
                DriverError::io(
                    format!("cannot create autostart link {}", link.display()),
                    e,
                )
            })?;
        } else {
            store::remove(&link)?;
        }
        obj.autostart = on;
        Ok(())
    }

    /// The NVRAM file a definition uses (its own, or the one a UEFI domain gets).
    pub(crate) fn nvram_of(&self, def: &Domain) -> Option<PathBuf> {
        if let Some(p) = def.os.nvram.as_ref().and_then(|n| n.path.as_ref()) {
            return Some(PathBuf::from(p));
        }
        let uefi = def.os.firmware == Some(vireo_xml::OsFirmware::Efi)
            || def.os.loader.as_ref().is_some_and(|l| {
                l.loader_type == Some(vireo_xml::LoaderType::Pflash) && l.readonly == Some(true)
            });
        uefi.then(|| self.nvram_dir().join(format!("{}_VARS.fd", def.name)))
    }

    /// Number of domains (for benchmarks and admin).
    pub fn count(&self) -> usize {
        self.read().by_uuid.len()
    }
}

/// libvirt's refusal of flags a call does not know.
pub(crate) fn check_flags(flags: u32, known: u32) -> Result<()> {
    if flags & !known != 0 {
        return Err(DriverError::InvalidArg(format!(
            "unsupported flags (0x{:x})",
            flags & !known
        )));
    }
    Ok(())
}

/// A domain XML's error as libvirt reports it.
pub(crate) fn xml_error(e: XmlError) -> DriverError {
    match e {
        // Shaped like libvirt's libxml2 messages: "(domain_definition):LINE: what".
        XmlError::Syntax { line, col, msg } => {
            DriverError::XmlSyntax(format!("(domain_definition):{line}:{col}: {msg}"))
        }
        XmlError::Invalid(m) => DriverError::XmlInvalid(m),
        XmlError::Unsupported(m) => DriverError::ConfigUnsupported(m),
    }
}

/// `VIR_DOMAIN_UNDEFINE_MANAGED_SAVE`.
pub const UNDEFINE_MANAGED_SAVE: u32 = 1;
/// `VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA`.
const UNDEFINE_SNAPSHOTS_METADATA: u32 = 2;
/// `VIR_DOMAIN_UNDEFINE_NVRAM`, `VIR_DOMAIN_UNDEFINE_KEEP_NVRAM`.
const UNDEFINE_NVRAM: u32 = 4;
const UNDEFINE_KEEP_NVRAM: u32 = 8;
/// `VIR_DOMAIN_UNDEFINE_KEEP_TPM`.
const UNDEFINE_KEEP_TPM: u32 = 64;

pub(crate) fn no_domain_uuid(uuid: &Uuid, name: &str) -> DriverError {
    DriverError::NoDomain(format!(
        "no domain with matching uuid '{}' ({name})",
        format_uuid(uuid)
    ))
}

fn matches_filter(o: &DomainObj, flags: u32, has_snapshot: impl Fn() -> bool) -> bool {
    use list_flags::*;
    let pair = |a: u32, b: u32, has_a: bool| {
        let want = flags & (a | b);
        want == 0 || want == (a | b) || (want == a && has_a) || (want == b && !has_a)
    };
    let running = o.active();
    pair(ACTIVE, INACTIVE, running)
        && pair(PERSISTENT, TRANSIENT, o.persistent)
        && pair(AUTOSTART, NO_AUTOSTART, o.autostart)
        && pair(MANAGEDSAVE, NO_MANAGEDSAVE, o.managed_save)
        && (flags & (HAS_SNAPSHOT | NO_SNAPSHOT) == 0 || pair(HAS_SNAPSHOT, NO_SNAPSHOT, has_snapshot()))
        // Nothing has a checkpoint yet.
        && pair(HAS_CHECKPOINT, NO_CHECKPOINT, false)
        && {
            let st = flags & (RUNNING | PAUSED | SHUTOFF | OTHER);
            let s = o.state.0;
            st == 0
                || (s == state::RUNNING && st & RUNNING != 0)
                || (s == state::PAUSED && st & PAUSED != 0)
                || (s == state::SHUTOFF && st & SHUTOFF != 0)
                || (![state::RUNNING, state::PAUSED, state::SHUTOFF].contains(&s) && st & OTHER != 0)
        }
}
