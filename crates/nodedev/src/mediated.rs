//! The life of mediated devices: made from a type their parent offers
//! (`nodedev-create`, a transient device), defined to be made later (`nodedev-define`),
//! started (`nodedev-start`, and at the daemon's start when marked `nodedev-autostart`),
//! destroyed (`nodedev-destroy`) and undefined (`nodedev-undefine`).
//!
//! The kernel's interface is sysfs: a UUID written into the parent's
//! `mdev_supported_types/TYPE/create` makes the device (it shows under
//! `/sys/bus/mdev/devices/UUID`, in an IOMMU group of its own); `1` written into its
//! `remove` takes it away. Attributes (`<attr name= value=/>`) are written into the
//! device's own files once it is there, in their order.
//!
//! Definitions are kept in our own files, not with mdevctl as libvirt does:
//! `CONFIG/nodedev/NAME.xml` (the device's `<device>` document: parent, type, UUID, the
//! parent's address, attributes), written atomically, and `CONFIG/nodedev/autostart/NAME`
//! for those started with the daemon. A defined device that is not made now is listed as
//! inactive, under the name it has when made (`mdev_UUID_0000_00_02_0`).
//!
//! Events: DEFINED and UNDEFINED from here; CREATED and DELETED come from the kernel's
//! uevents through [`crate::DeviceMonitor`] on the host's own tree, and from here on a tree
//! the kernel says nothing about (a test's).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use vireo_driver::events::{EventBus, ObjectEvent};
use vireo_driver::store;
use vireo_xml::{
    format_uuid, parse_uuid, NewNodeDevice, NodeDevCapType, NodeDevCapability, NodeDevDriverName,
    NodeDevIommuGroup, NodeDevMdevAttr, NodeDevMdevCap, NodeDevMdevTypeId, NodeDeviceDef, XmlError,
};

use crate::error::{NodeDevError, Result};
use crate::monitor::{publish, Change};
use crate::{mdev, Device, Host, Kind, NodeDevDriver};

/// How long a device may take to show (or go) after the write that makes (or removes)
/// it: the kernel does it during the write, a stand-in for it a moment later.
const KERNEL_WAIT: Duration = Duration::from_secs(10);
/// Attributes one device may have.
const MAX_ATTRS: usize = 64;
/// The driver of every mediated device.
const MDEV_DRIVER: &str = "vfio_mdev";
/// `VIR_NODE_DEVICE_CREATE_XML_VALIDATE`, `VIR_NODE_DEVICE_DEFINE_XML_VALIDATE`.
const VALIDATE: u32 = vireo_proto::nodedev::XML_VALIDATE;

/// What a mediated device is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MdevConfig {
    /// Lowercase, with dashes.
    pub(crate) uuid: String,
    /// The parent's name in sysfs (`0000:00:02.0`).
    pub(crate) parent_addr: String,
    pub(crate) type_id: String,
    /// Written into the device's files once made, in this order.
    pub(crate) attrs: Vec<(String, String)>,
}

impl MdevConfig {
    /// libvirt's name of the device (`mdev_UUID_0000_00_02_0`).
    pub(crate) fn name(&self) -> String {
        crate::device_name("mdev", &self.uuid, Some(&self.parent_addr))
    }

    fn xml_attrs(attrs: &[(String, String)]) -> Vec<NodeDevMdevAttr> {
        attrs
            .iter()
            .map(|(name, value)| NodeDevMdevAttr {
                name: name.clone(),
                value: value.clone(),
            })
            .collect()
    }

    /// Its `<capability type='mdev'>`, in IOMMU group `group` (0 when not made, as
    /// libvirt writes it).
    fn cap(&self, group: u32) -> NodeDevMdevCap {
        NodeDevMdevCap {
            cap_type: NodeDevCapType::Mdev,
            mdev_type: NodeDevMdevTypeId {
                id: self.type_id.clone(),
            },
            uuid: Some(self.uuid.clone()),
            parent_addr: Some(self.parent_addr.clone()),
            iommu_group: Some(NodeDevIommuGroup {
                number: group,
                address: Vec::new(),
            }),
            attrs: Self::xml_attrs(&self.attrs),
        }
    }

    /// Its definition's document: name, parent (by name, when known) and capability.
    fn document(&self, parent: Option<String>) -> String {
        let mut cap = self.cap(0);
        cap.iommu_group = None;
        NodeDeviceDef {
            name: self.name(),
            path: None,
            devnode: Vec::new(),
            parent,
            driver: None,
            capability: vec![NodeDevCapability::Mdev(cap)],
        }
        .format()
    }

    /// Read back from a definition's document.
    fn from_document(xml: &str) -> Result<MdevConfig> {
        let def = NodeDeviceDef::parse(xml)?;
        let bad = |why: &str| NodeDevError::Internal(format!("not a mediated device: {why}"));
        let Some(NodeDevCapability::Mdev(m)) = def.capability.first() else {
            return Err(bad("no <capability type='mdev'>"));
        };
        let uuid = m
            .uuid
            .as_deref()
            .and_then(parse_uuid)
            .ok_or_else(|| bad("no UUID"))?;
        let parent_addr = m.parent_addr.clone().ok_or_else(|| bad("no parent_addr"))?;
        Ok(MdevConfig {
            uuid: format_uuid(&uuid),
            parent_addr,
            type_id: m.mdev_type.id.clone(),
            attrs: m
                .attrs
                .iter()
                .map(|a| (a.name.clone(), a.value.clone()))
                .collect(),
        })
    }
}

/// One definition.
struct Defined {
    config: MdevConfig,
    autostart: bool,
}

/// The definitions, and what is known of the transient devices made here.
#[derive(Default)]
struct State {
    /// Where definitions are kept (none for a reading tool's driver: it defines nothing).
    dir: Option<PathBuf>,
    events: Option<EventBus<ObjectEvent>>,
    /// By name.
    defined: BTreeMap<String, Defined>,
    /// The attributes of transient devices made here, by name (their XML shows them).
    made: HashMap<String, Vec<(String, String)>>,
}

/// The driver's mediated devices.
#[derive(Default)]
pub(crate) struct Mdevs {
    state: Mutex<State>,
    /// One change of mediated devices at a time. Taken before `state`, never while it is
    /// held; `state` is only held for moments (a listing reads it).
    op: Mutex<()>,
}

impl Mdevs {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn op(&self) -> MutexGuard<'_, ()> {
        self.op.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every definition (a listing adds those not made now).
    pub(crate) fn defined(&self) -> Vec<MdevConfig> {
        self.state()
            .defined
            .values()
            .map(|d| d.config.clone())
            .collect()
    }

    /// The attributes of the device named `name`: its definition's, or those it was made
    /// with here.
    pub(crate) fn attrs_of(&self, name: &str) -> Vec<NodeDevMdevAttr> {
        let st = self.state();
        match st.defined.get(name) {
            Some(d) => MdevConfig::xml_attrs(&d.config.attrs),
            None => st
                .made
                .get(name)
                .map(|a| MdevConfig::xml_attrs(a))
                .unwrap_or_default(),
        }
    }
}

/// The XML of a defined device that is not made now: no path, libvirt's driver, IOMMU
/// group 0.
pub(crate) fn defined_def(host: &Host, dev: &Device, cfg: &MdevConfig) -> NodeDeviceDef {
    NodeDeviceDef {
        name: dev.name.clone(),
        path: None,
        devnode: Vec::new(),
        parent: host.parent(dev),
        driver: Some(NodeDevDriverName {
            name: MDEV_DRIVER.into(),
        }),
        capability: vec![NodeDevCapability::Mdev(cfg.cap(0))],
    }
}

/// Whether `name` may name a file of the device's own directory.
fn plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

/// libvirt's refusal of flags a call does not know.
fn check_flags(flags: u32, known: u32, function: &str) -> Result<()> {
    if flags & !known != 0 {
        return Err(NodeDevError::InvalidArg(format!(
            "unsupported flags (0x{:x}) in function {function}",
            flags & !known
        )));
    }
    Ok(())
}

impl NodeDevDriver {
    /// Keeps mediated device definitions in `dir` (read now: a definition that cannot be
    /// read is logged and left out) and publishes their events on `events`.
    pub fn with_mdev_definitions(
        self,
        dir: &Path,
        events: EventBus<ObjectEvent>,
    ) -> Result<NodeDevDriver> {
        let files = store::list_xml(dir)
            .map_err(|e| NodeDevError::OperationFailed(format!("mediated devices: {e}")))?;
        let mut defined = BTreeMap::new();
        for path in files {
            let read = std::fs::read_to_string(&path)
                .map_err(|e| NodeDevError::io(format!("cannot read '{}'", path.display()), e))
                .and_then(|x| MdevConfig::from_document(&x));
            let config = match read {
                Ok(c) => c,
                Err(e) => {
                    log::warn!("skipping mediated device {}: {e}", path.display());
                    continue;
                }
            };
            let name = config.name();
            let autostart = dir.join("autostart").join(&name).exists();
            defined.insert(name, Defined { config, autostart });
        }
        {
            let mut st = self.mdevs.state();
            st.dir = Some(dir.to_path_buf());
            st.events = Some(events);
            st.defined = defined;
        }
        Ok(self)
    }

    /// Makes every defined mediated device marked to autostart that is not made yet and
    /// whose parent is there (the daemon's start). A failure is logged, not fatal.
    pub fn autostart_mdevs(&self) {
        let wanted: Vec<String> = self
            .mdevs
            .state()
            .defined
            .iter()
            .filter(|(_, d)| d.autostart)
            .map(|(n, _)| n.clone())
            .collect();
        for name in wanted {
            match self.is_active(&name) {
                Ok(false) => match self.start(&name, 0) {
                    Ok(()) => log::info!("mediated device {name} autostarted"),
                    Err(e) => log::warn!("cannot autostart mediated device {name}: {e}"),
                },
                Ok(true) => {}
                Err(e) => log::warn!("mediated device {name}: {e}"),
            }
        }
    }

    /// `NODE_DEVICE_CREATE_XML`: makes the (transient) mediated device `xml` describes;
    /// returns its name.
    pub fn create_xml(&self, xml: &str, flags: u32) -> Result<String> {
        check_flags(flags, VALIDATE, "nodeDeviceCreateXML")?;
        let _op = self.mdevs.op();
        let host = self.scan()?;
        let (cfg, parent) = self.requested(&host, xml, "create")?;
        self.refuse_taken(&host, &cfg, None)?;
        self.make(&cfg, &parent)?;
        let name = cfg.name();
        if !cfg.attrs.is_empty() {
            self.mdevs.state().made.insert(name.clone(), cfg.attrs);
        }
        self.announce_from_kernel(Change::Created(name.clone()));
        Ok(name)
    }

    /// `NODE_DEVICE_DESTROY`: removes a mediated device (a defined one stays defined).
    /// One a domain holds is refused, naming the domain.
    pub fn destroy(&self, name: &str) -> Result<()> {
        let _op = self.mdevs.op();
        let host = self.scan()?;
        let dev = host.find(name)?;
        let uuid = match &dev.kind {
            Kind::Mdev(m) => m.uuid.clone(),
            Kind::Defined(_) => {
                return Err(NodeDevError::OperationInvalid(format!(
                    "Device '{name}' is not active"
                )))
            }
            _ => return Err(NodeDevError::Unsupported("Unsupported device type".into())),
        };
        if let Some(domain) = self.holder_of(name) {
            return Err(NodeDevError::OperationInvalid(format!(
                "mediated device {uuid} is in use by driver QEMU, domain {domain}"
            )));
        }
        self.unmake(&uuid)?;
        self.mdevs.state().made.remove(name);
        self.announce_from_kernel(Change::Deleted(name.to_string()));
        Ok(())
    }

    /// `NODE_DEVICE_DEFINE_XML`: keeps the mediated device `xml` describes, to be made
    /// later (or, defined again, its new type and attributes, for its next start). A
    /// transient device made already becomes persistent. Returns its name.
    pub fn define_xml(&self, xml: &str, flags: u32) -> Result<String> {
        check_flags(flags, VALIDATE, "nodeDeviceDefineXML")?;
        let _op = self.mdevs.op();
        let host = self.scan()?;
        let (cfg, parent) = self.requested(&host, xml, "define")?;
        let name = cfg.name();
        self.refuse_taken(&host, &cfg, Some(&name))?;
        let parent_name = host.by_path.get(&parent).cloned();
        let mut st = self.mdevs.state();
        let Some(dir) = st.dir.clone() else {
            return Err(NodeDevError::NotSupported(
                "this driver keeps no definitions".into(),
            ));
        };
        let change = match st.defined.get(&name) {
            Some(d) if d.config == cfg => None,
            Some(_) => Some(Change::Updated(name.clone())),
            None => Some(Change::Defined(name.clone())),
        };
        let file = dir.join(format!("{name}.xml"));
        store::write_atomic(&file, cfg.document(parent_name).as_bytes())
            .map_err(|e| NodeDevError::OperationFailed(e.to_string()))?;
        let autostart = st.defined.get(&name).is_some_and(|d| d.autostart);
        st.defined.insert(
            name.clone(),
            Defined {
                config: cfg,
                autostart,
            },
        );
        st.made.remove(&name);
        let events = st.events.clone();
        drop(st);
        if let (Some(bus), Some(c)) = (events, change) {
            publish(&bus, c);
        }
        Ok(name)
    }

    /// `NODE_DEVICE_UNDEFINE`: forgets a definition. A device made from it stays, as a
    /// transient one.
    pub fn undefine(&self, name: &str, flags: u32) -> Result<()> {
        check_flags(flags, 0, "nodeDeviceUndefine")?;
        let _op = self.mdevs.op();
        let host = self.scan()?;
        let dev = host.find(name)?;
        let active = !matches!(dev.kind, Kind::Defined(_));
        let mut st = self.mdevs.state();
        let (Some(dir), Some(d)) = (st.dir.clone(), st.defined.get(name)) else {
            return Err(NodeDevError::OperationInvalid(format!(
                "Node device '{name}' is not defined"
            )));
        };
        let attrs = d.config.attrs.clone();
        let store_err = |e: vireo_driver::DriverError| NodeDevError::OperationFailed(e.to_string());
        store::remove(&dir.join("autostart").join(name)).map_err(store_err)?;
        store::remove(&dir.join(format!("{name}.xml"))).map_err(store_err)?;
        st.defined.remove(name);
        if active && !attrs.is_empty() {
            st.made.insert(name.to_string(), attrs);
        }
        let events = st.events.clone();
        drop(st);
        if let Some(bus) = events {
            publish(&bus, Change::Undefined(name.to_string()));
        }
        Ok(())
    }

    /// `NODE_DEVICE_CREATE`: makes a defined mediated device.
    pub fn start(&self, name: &str, flags: u32) -> Result<()> {
        check_flags(flags, 0, "nodeDeviceCreate")?;
        let _op = self.mdevs.op();
        let host = self.scan()?;
        let dev = host.find(name)?;
        let Kind::Defined(cfg) = &dev.kind else {
            return Err(NodeDevError::OperationInvalid(
                "Device is already active".into(),
            ));
        };
        let Some((parent_name, parent)) = host.devices.iter().find_map(|d| {
            let p = d.path.as_ref()?;
            (p.file_name()? == cfg.parent_addr.as_str()).then(|| (d.name.clone(), p.clone()))
        }) else {
            return Err(NodeDevError::OperationInvalid(format!(
                "the parent device {} of {name} is not on this host",
                cfg.parent_addr
            )));
        };
        self.offered(&parent_name, &parent, &cfg.type_id)?;
        self.refuse_taken(&host, cfg, Some(name))?;
        self.make(cfg, &parent)?;
        self.announce_from_kernel(Change::Created(name.to_string()));
        Ok(())
    }

    /// `NODE_DEVICE_GET_AUTOSTART`: whether a defined device is made at the daemon's
    /// start (never any other device).
    pub fn autostart(&self, name: &str) -> Result<bool> {
        self.scan()?.find(name)?;
        Ok(self
            .mdevs
            .state()
            .defined
            .get(name)
            .is_some_and(|d| d.autostart))
    }

    /// `NODE_DEVICE_SET_AUTOSTART`, for a defined mediated device.
    pub fn set_autostart(&self, name: &str, on: bool) -> Result<()> {
        let _op = self.mdevs.op();
        let host = self.scan()?;
        let dev = host.find(name)?;
        if !matches!(dev.kind, Kind::Mdev(_) | Kind::Defined(_)) {
            return Err(NodeDevError::NotSupported("Unsupported device type".into()));
        }
        let mut st = self.mdevs.state();
        let (Some(dir), true) = (st.dir.clone(), st.defined.contains_key(name)) else {
            return Err(NodeDevError::OperationInvalid(
                "cannot set autostart for transient device".into(),
            ));
        };
        let mark = dir.join("autostart").join(name);
        let done = if on {
            store::write_atomic(&mark, b"")
        } else {
            store::remove(&mark)
        };
        done.map_err(|e| NodeDevError::OperationFailed(e.to_string()))?;
        if let Some(d) = st.defined.get_mut(name) {
            d.autostart = on;
        }
        Ok(())
    }

    /// `NODE_DEVICE_IS_ACTIVE`: every device is, but a defined one not made now.
    pub fn is_active(&self, name: &str) -> Result<bool> {
        let host = self.scan()?;
        Ok(!matches!(host.find(name)?.kind, Kind::Defined(_)))
    }

    /// `NODE_DEVICE_IS_PERSISTENT`: whether it is defined.
    pub fn is_persistent(&self, name: &str) -> Result<bool> {
        self.scan()?.find(name)?;
        Ok(self.mdevs.state().defined.contains_key(name))
    }

    /// The names of the devices listed that are not active (defined ones not made now).
    pub fn inactive(&self) -> Result<Vec<String>> {
        Ok(self
            .scan()?
            .devices
            .into_iter()
            .filter(|d| matches!(d.kind, Kind::Defined(_)))
            .map(|d| d.name)
            .collect())
    }

    /// The mediated device a client's `xml` describes, checked against the host: its
    /// parent listed and offering its type, its UUID (a new one when none is given).
    /// Returns it and its parent's directory.
    fn requested(&self, host: &Host, xml: &str, verb: &str) -> Result<(MdevConfig, PathBuf)> {
        let new = NewNodeDevice::parse(xml)?;
        let Some(m) = new.capability.iter().find_map(|c| match c {
            NodeDevCapability::Mdev(m) => Some(m),
            _ => None,
        }) else {
            return Err(NodeDevError::Unsupported("Unsupported device type".into()));
        };
        let Some(parent_name) = new.parent.as_deref() else {
            return Err(XmlError::Invalid(format!(
                "cannot {verb} a mediated device without a parent"
            ))
            .into());
        };
        let parent = host
            .devices
            .iter()
            .find(|d| d.name == parent_name)
            .and_then(|d| d.path.clone())
            .ok_or_else(|| {
                NodeDevError::Unsupported(format!("invalid parent device '{parent_name}'"))
            })?;
        let parent_addr = parent
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                NodeDevError::Unsupported(format!("invalid parent device '{parent_name}'"))
            })?
            .to_string();
        self.offered(parent_name, &parent, &m.mdev_type.id)?;
        let uuid = match m.uuid.as_deref() {
            Some(u) => parse_uuid(u).ok_or_else(|| {
                XmlError::Invalid(format!("invalid UUID '{u}' for a new mediated device"))
            })?,
            None => *uuid::Uuid::new_v4().as_bytes(),
        };
        if m.attrs.len() > MAX_ATTRS {
            return Err(NodeDevError::InvalidArg(format!(
                "a mediated device may have at most {MAX_ATTRS} attributes"
            )));
        }
        if let Some(a) = m.attrs.iter().find(|a| !plain_file_name(&a.name)) {
            return Err(NodeDevError::InvalidArg(format!(
                "invalid mediated device attribute name '{}'",
                a.name
            )));
        }
        Ok((
            MdevConfig {
                uuid: format_uuid(&uuid),
                parent_addr,
                type_id: m.mdev_type.id.clone(),
                attrs: m
                    .attrs
                    .iter()
                    .map(|a| (a.name.clone(), a.value.clone()))
                    .collect(),
            },
            parent,
        ))
    }

    /// Refuses a type the parent (named `parent_name`, in directory `parent`) does not
    /// offer, saying which it does.
    fn offered(&self, parent_name: &str, parent: &Path, type_id: &str) -> Result<()> {
        let types = mdev::types(&self.sysfs, parent);
        if types.is_empty() {
            return Err(NodeDevError::Unsupported(format!(
                "device '{parent_name}' offers no mediated device types"
            )));
        }
        if !types.iter().any(|t| t.id == type_id) {
            let ids: Vec<&str> = types.iter().map(|t| t.id.as_str()).collect();
            return Err(NodeDevError::Unsupported(format!(
                "mediated device type '{type_id}' is not one that device '{parent_name}' \
                 offers ({})",
                ids.join(", ")
            )));
        }
        Ok(())
    }

    /// Refuses `cfg`'s UUID when another device has it: one made now (on any parent), or
    /// a definition. The device named `itself` (being defined or started) may have it.
    fn refuse_taken(&self, host: &Host, cfg: &MdevConfig, itself: Option<&str>) -> Result<()> {
        let other = |n: &str| itself != Some(n);
        let made = host.devices.iter().find(|d| match &d.kind {
            Kind::Mdev(m) => m.uuid == cfg.uuid && other(&d.name),
            _ => false,
        });
        let taken_by = match made {
            Some(d) => Some(format!("mediated device {}", d.name)),
            // There, but not as a device this driver lists (being made or removed).
            None if itself.is_none() && self.mdev_dir(&cfg.uuid).is_some() => {
                Some("a mediated device".to_string())
            }
            None => self
                .mdevs
                .state()
                .defined
                .iter()
                .find(|(n, d)| d.config.uuid == cfg.uuid && other(n))
                .map(|(n, _)| format!("defined mediated device {n}")),
        };
        match taken_by {
            Some(by) => Err(NodeDevError::OperationInvalid(format!(
                "UUID {} is in use by {by}",
                cfg.uuid
            ))),
            None => Ok(()),
        }
    }

    /// The directory of the mediated device `uuid`, when it is there.
    fn mdev_dir(&self, uuid: &str) -> Option<PathBuf> {
        let link = Path::new(mdev::MDEV_DEVICES).join(uuid);
        self.sysfs
            .resolve(&link)
            .ok()
            .filter(|p| self.sysfs.host(p).is_dir())
    }

    /// Has the kernel make the device `cfg` describes under its parent (directory
    /// `parent`), and writes its attributes. Nothing is left made when this fails.
    fn make(&self, cfg: &MdevConfig, parent: &Path) -> Result<()> {
        let t = mdev::types(&self.sysfs, parent)
            .into_iter()
            .find(|t| t.id == cfg.type_id);
        if t.is_some_and(|t| t.available_instances == 0) {
            return Err(NodeDevError::OperationInvalid(format!(
                "no instance of mediated device type '{}' is available on {}",
                cfg.type_id, cfg.parent_addr
            )));
        }
        let create = parent
            .join("mdev_supported_types")
            .join(&cfg.type_id)
            .join("create");
        self.sysfs.write(&create, &cfg.uuid)?;
        let Some(dir) = self.wait_for(|| self.mdev_dir(&cfg.uuid)) else {
            return Err(NodeDevError::OperationFailed(format!(
                "mediated device {} did not appear after '{}' was written",
                cfg.uuid,
                create.display()
            )));
        };
        for (name, value) in &cfg.attrs {
            if let Err(e) = self.sysfs.write(&dir.join(name), value) {
                if let Err(u) = self.unmake(&cfg.uuid) {
                    log::warn!("cannot remove mediated device {}: {u}", cfg.uuid);
                }
                return Err(NodeDevError::OperationFailed(format!(
                    "cannot set attribute '{name}' of mediated device {}: {e}",
                    cfg.uuid
                )));
            }
        }
        Ok(())
    }

    /// Has the kernel remove the mediated device `uuid`.
    fn unmake(&self, uuid: &str) -> Result<()> {
        let dir = self.mdev_dir(uuid).ok_or_else(|| {
            NodeDevError::OperationFailed(format!("mediated device {uuid} is gone already"))
        })?;
        self.sysfs.write(&dir.join("remove"), "1")?;
        if self
            .wait_for(|| self.mdev_dir(uuid).is_none().then_some(()))
            .is_none()
        {
            return Err(NodeDevError::OperationFailed(format!(
                "mediated device {uuid} is still there after '{}' was written",
                dir.join("remove").display()
            )));
        }
        Ok(())
    }

    /// What `check` finds, as soon as it finds something (at once with the kernel, which
    /// does its work during the write; within [`KERNEL_WAIT`] with a slower stand-in).
    fn wait_for<T>(&self, check: impl Fn() -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + KERNEL_WAIT;
        let mut pause = Duration::from_millis(1);
        loop {
            if let Some(v) = check() {
                return Some(v);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Publishes a CREATED or DELETED this driver caused, when the kernel will not: the
    /// device monitor follows the host's own tree only.
    fn announce_from_kernel(&self, change: Change) {
        if self.reads_host() {
            return;
        }
        if let Some(bus) = self.mdevs.state().events.clone() {
            publish(&bus, change);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    const VGA: &str = "sys/devices/pci0000:00/0000:00:02.0";
    const LPC: &str = "sys/devices/pci0000:00/0000:00:1f.0";
    /// The device made already.
    const MADE: &str = "4b20d080-1b54-4048-85b3-a6a62d165c01";
    const MADE_NAME: &str = "mdev_4b20d080_1b54_4048_85b3_a6a62d165c01_0000_00_02_0";
    const NEW: &str = "11111111-2222-3333-4444-555555555555";
    const NEW_NAME: &str = "mdev_11111111_2222_3333_4444_555555555555_0000_00_02_0";

    fn file(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn link(root: &Path, rel: &str, target: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        symlink(target, p).unwrap();
    }

    /// A graphics device (`00:02.0`) offering `t1` (one instance left) and `t0` (none
    /// left), one device of `t1` made; an ISA bridge (`00:1f.0`) offering none.
    fn host() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for dir in [VGA, LPC] {
            file(r, &format!("{dir}/class"), "0x030000\n");
            let addr = dir.rsplit('/').next().unwrap();
            link(
                r,
                &format!("sys/bus/pci/devices/{addr}"),
                &format!("/{dir}"),
            );
        }
        for (id, n) in [("t1", "1"), ("t0", "0")] {
            let t = format!("{VGA}/mdev_supported_types/{id}");
            file(r, &format!("{t}/device_api"), "vfio-pci\n");
            file(r, &format!("{t}/available_instances"), &format!("{n}\n"));
            file(r, &format!("{t}/create"), "");
        }
        let m = format!("{VGA}/{MADE}");
        file(r, &format!("{m}/remove"), "");
        link(
            r,
            &format!("{m}/mdev_type"),
            &format!("/{VGA}/mdev_supported_types/t1"),
        );
        link(
            r,
            &format!("{m}/iommu_group"),
            "/sys/kernel/iommu_groups/12",
        );
        link(r, &format!("sys/bus/mdev/devices/{MADE}"), &format!("/{m}"));
        t
    }

    fn mdev_xml(parent: &str, type_id: &str, uuid: Option<&str>) -> String {
        let uuid = uuid
            .map(|u| format!("<uuid>{u}</uuid>"))
            .unwrap_or_default();
        format!(
            "<device><parent>{parent}</parent><capability type='mdev'>\
             <type id='{type_id}'/>{uuid}</capability></device>"
        )
    }

    /// A driver over `root` keeping definitions in `root/etc`, and its event bus.
    fn driver(root: &Path) -> (NodeDevDriver, EventBus<ObjectEvent>) {
        let bus = EventBus::default();
        let d = NodeDevDriver::open(root)
            .with_mdev_definitions(&root.join("etc"), bus.clone())
            .unwrap();
        (d, bus)
    }

    /// The lifecycle events published, as (name, event).
    fn lifecycle(mut next: impl FnMut() -> Option<ObjectEvent>) -> Vec<(String, i32)> {
        let mut out = Vec::new();
        while let Some(e) = next() {
            let b: vireo_proto::nodedev::NodeDeviceEventLifecycleBody =
                vireo_xdr::from_bytes(&e.body).unwrap();
            out.push((b.dev.name, b.event));
        }
        out
    }

    #[test]
    fn bad_requests_are_refused_and_change_nothing() {
        let t = host();
        let (d, _) = driver(t.path());
        let refused = |xml: &str| d.create_xml(xml, 0).unwrap_err().to_string();
        let cases = [
            (
                mdev_xml("pci_0000_00_03_0", "t1", None),
                "unsupported configuration: invalid parent device 'pci_0000_00_03_0'",
            ),
            (
                mdev_xml("pci_0000_00_1f_0", "t1", None),
                "unsupported configuration: device 'pci_0000_00_1f_0' offers no mediated \
                 device types",
            ),
            (
                mdev_xml("pci_0000_00_02_0", "t9", None),
                "unsupported configuration: mediated device type 't9' is not one that \
                 device 'pci_0000_00_02_0' offers (t0, t1)",
            ),
            (
                mdev_xml("pci_0000_00_02_0", "t0", None),
                "Requested operation is not valid: no instance of mediated device type 't0' \
                 is available on 0000:00:02.0",
            ),
            (
                mdev_xml("pci_0000_00_02_0", "t1", Some(&MADE.to_uppercase())),
                "Requested operation is not valid: UUID 4b20d080-1b54-4048-85b3-a6a62d165c01 \
                 is in use by mediated device mdev_4b20d080_1b54_4048_85b3_a6a62d165c01_0000_00_02_0",
            ),
            (
                mdev_xml("pci_0000_00_02_0", "t1", Some("nope")),
                "XML error: invalid UUID 'nope' for a new mediated device",
            ),
            (
                "<device><capability type='mdev'><type id='t1'/></capability></device>".into(),
                "XML error: cannot create a mediated device without a parent",
            ),
            (
                "<device><parent>computer</parent><capability type='drm'><type>primary</type>\
                 </capability></device>"
                    .into(),
                "unsupported configuration: Unsupported device type",
            ),
            (
                "<device><parent>pci_0000_00_02_0</parent><capability type='mdev'>\
                 <type id='t1'/><attr name='../remove' value='1'/></capability></device>"
                    .into(),
                "invalid argument: invalid mediated device attribute name '../remove'",
            ),
        ];
        // The types offered are in the order sysfs lists them (the file system's).
        for (xml, want) in cases {
            let got = refused(&xml);
            if want.contains("offers (") {
                assert!(got.contains("is not one that device 'pci_0000_00_02_0' offers"));
                assert!(got.contains("t0") && got.contains("t1"), "{got}");
            } else {
                assert_eq!(got, want);
            }
        }
        let e = d.create_xml(&mdev_xml("pci_0000_00_02_0", "t1", None), 2);
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("unsupported flags (0x2)"));
        let e = d.define_xml(&mdev_xml("pci_0000_00_02_0", "t1", Some(MADE)), 0);
        assert!(e.is_ok(), "a running device may be defined: {e:?}");
        d.undefine(MADE_NAME, 0).unwrap();
        // Nothing was written for the kernel, nothing kept.
        for id in ["t0", "t1"] {
            let create = t
                .path()
                .join(format!("{VGA}/mdev_supported_types/{id}/create"));
            assert_eq!(std::fs::read_to_string(create).unwrap(), "");
        }
        assert_eq!(
            store::list_xml(&t.path().join("etc")).unwrap(),
            Vec::<PathBuf>::new()
        );
        // Not a mediated device: neither destroyed nor marked.
        assert_eq!(
            d.destroy("pci_0000_00_1f_0").unwrap_err().to_string(),
            "unsupported configuration: Unsupported device type"
        );
        assert_eq!(
            d.set_autostart("pci_0000_00_1f_0", true)
                .unwrap_err()
                .to_string(),
            "Operation not supported: Unsupported device type"
        );
        assert_eq!(
            d.set_autostart(MADE_NAME, true).unwrap_err().to_string(),
            "Requested operation is not valid: cannot set autostart for transient device"
        );
        assert_eq!(
            d.undefine(MADE_NAME, 0).unwrap_err().to_string(),
            format!("Requested operation is not valid: Node device '{MADE_NAME}' is not defined")
        );
        assert_eq!(
            d.start(MADE_NAME, 0).unwrap_err().to_string(),
            "Requested operation is not valid: Device is already active"
        );
        assert!(d
            .destroy("mdev_nope")
            .unwrap_err()
            .to_string()
            .contains("not found"));
    }

    #[test]
    fn definitions_are_listed_inactive_kept_and_forgotten() {
        let t = host();
        let (d, bus) = driver(t.path());
        let mut rx = bus.subscribe();
        let name = d
            .define_xml(&mdev_xml("pci_0000_00_02_0", "t1", Some(NEW)), VALIDATE)
            .unwrap();
        assert_eq!(name, NEW_NAME);
        assert_eq!(
            lifecycle(|| rx.try_recv().ok()),
            [(NEW_NAME.to_string(), 2)]
        );
        // Defined again the same: nothing to say; with another type: an update.
        d.define_xml(&mdev_xml("pci_0000_00_02_0", "t1", Some(NEW)), 0)
            .unwrap();
        assert!(rx.try_recv().is_err());
        d.define_xml(&mdev_xml("pci_0000_00_02_0", "t0", Some(NEW)), 0)
            .unwrap();
        let e = rx.try_recv().unwrap();
        assert_eq!(e.event_id, vireo_proto::nodedev::event::ID_UPDATE);
        assert!(d
            .names(Some("mdev"))
            .unwrap()
            .contains(&NEW_NAME.to_string()));
        assert_eq!(d.inactive().unwrap(), [NEW_NAME]);
        assert!(!d.is_active(NEW_NAME).unwrap());
        assert!(d.is_persistent(NEW_NAME).unwrap());
        assert!(d.is_active(MADE_NAME).unwrap());
        assert!(!d.is_persistent(MADE_NAME).unwrap());
        assert_eq!(
            d.parent(NEW_NAME).unwrap().as_deref(),
            Some("pci_0000_00_02_0")
        );
        assert_eq!(d.caps(NEW_NAME).unwrap(), ["mdev"]);
        assert_eq!(
            d.xml(NEW_NAME).unwrap(),
            format!(
                "<device>
  <name>{NEW_NAME}</name>
  <parent>pci_0000_00_02_0</parent>
  <driver>
    <name>vfio_mdev</name>
  </driver>
  <capability type='mdev'>
    <type id='t0'/>
    <uuid>{NEW}</uuid>
    <parent_addr>0000:00:02.0</parent_addr>
    <iommuGroup number='0'/>
  </capability>
</device>
"
            )
        );
        assert_eq!(
            d.destroy(NEW_NAME).unwrap_err().to_string(),
            format!("Requested operation is not valid: Device '{NEW_NAME}' is not active")
        );
        // Not made: no domain may have it.
        let e = d.lease(NEW_NAME, [1; 16], "vm", 0, false).unwrap_err();
        assert!(e.to_string().contains("is defined but not active"), "{e}");
        // Its UUID is taken.
        let e = d.create_xml(&mdev_xml("pci_0000_00_02_0", "t1", Some(NEW)), 0);
        assert!(e.unwrap_err().to_string().contains(&format!(
            "UUID {NEW} is in use by defined mediated device {NEW_NAME}"
        )));
        assert!(!d.autostart(NEW_NAME).unwrap());
        d.set_autostart(NEW_NAME, true).unwrap();
        assert!(d.autostart(NEW_NAME).unwrap());
        assert!(t.path().join(format!("etc/autostart/{NEW_NAME}")).exists());
        // Read again by a new driver (the daemon restarted).
        drop(d);
        let (d, bus) = driver(t.path());
        let mut rx = bus.subscribe();
        assert!(d.autostart(NEW_NAME).unwrap());
        assert!(d.is_persistent(NEW_NAME).unwrap());
        assert_eq!(d.inactive().unwrap(), [NEW_NAME]);
        d.undefine(NEW_NAME, 0).unwrap();
        assert_eq!(
            lifecycle(|| rx.try_recv().ok()),
            [(NEW_NAME.to_string(), 3)]
        );
        assert!(d.inactive().unwrap().is_empty());
        assert!(d
            .xml(NEW_NAME)
            .unwrap_err()
            .to_string()
            .contains("not found"));
        assert_eq!(
            store::list_xml(&t.path().join("etc")).unwrap(),
            Vec::<PathBuf>::new()
        );
        assert!(!t.path().join(format!("etc/autostart/{NEW_NAME}")).exists());
    }

    #[test]
    fn a_defined_device_whose_parent_is_gone_is_the_computers() {
        let t = host();
        let (d, _) = driver(t.path());
        d.define_xml(&mdev_xml("pci_0000_00_02_0", "t1", Some(NEW)), 0)
            .unwrap();
        std::fs::remove_file(t.path().join("sys/bus/pci/devices/0000:00:02.0")).unwrap();
        assert_eq!(d.parent(NEW_NAME).unwrap().as_deref(), Some("computer"));
        assert_eq!(
            d.start(NEW_NAME, 0).unwrap_err().to_string(),
            format!(
                "Requested operation is not valid: the parent device 0000:00:02.0 of \
                 {NEW_NAME} is not on this host"
            )
        );
        // A reading tool's driver keeps nothing.
        let r = NodeDevDriver::open(t.path());
        assert!(r
            .define_xml(&mdev_xml("pci_0000_00_1f_0", "t1", None), 0)
            .is_err());
    }

    #[test]
    fn definitions_read_back_as_written() {
        let c = MdevConfig {
            uuid: "4b20d080-1b54-4048-85b3-a6a62d165c01".into(),
            parent_addr: "0000:00:02.0".into(),
            type_id: "i915-GVTg_V5_4".into(),
            attrs: vec![("assign_adapter".into(), "5".into())],
        };
        assert_eq!(
            c.name(),
            "mdev_4b20d080_1b54_4048_85b3_a6a62d165c01_0000_00_02_0"
        );
        let doc = c.document(Some("pci_0000_00_02_0".into()));
        assert_eq!(
            doc,
            "<device>
  <name>mdev_4b20d080_1b54_4048_85b3_a6a62d165c01_0000_00_02_0</name>
  <parent>pci_0000_00_02_0</parent>
  <capability type='mdev'>
    <type id='i915-GVTg_V5_4'/>
    <uuid>4b20d080-1b54-4048-85b3-a6a62d165c01</uuid>
    <parent_addr>0000:00:02.0</parent_addr>
    <attr name='assign_adapter' value='5'/>
  </capability>
</device>
"
        );
        assert_eq!(MdevConfig::from_document(&doc).unwrap(), c);
        assert!(MdevConfig::from_document("<device><name>x</name></device>").is_err());
    }

    #[test]
    fn attribute_names_stay_in_the_devices_directory() {
        assert!(plain_file_name("assign_adapter"));
        for bad in ["", ".", "..", "../remove", "a/b"] {
            assert!(!plain_file_name(bad), "{bad}");
        }
    }

    #[test]
    fn unknown_flags_are_refused_by_function() {
        assert!(check_flags(1, VALIDATE, "f").is_ok());
        assert_eq!(
            check_flags(2, 0, "nodeDeviceCreate")
                .unwrap_err()
                .to_string(),
            "invalid argument: unsupported flags (0x2) in function nodeDeviceCreate"
        );
    }
}
