//! The storage driver (`vireo-storaged`, and `vireod`): storage pools and their volumes.
//!
//! Pool definitions live in `CONFIG/storage/NAME.xml` (written atomically, synced before
//! the call returns), autostart marks in `CONFIG/storage/autostart/NAME`, and which pools
//! are active in `RUN/storage/NAME.xml`, so a restarted daemon finds them active again.
//! What the host holds (directories, filesystems, images) is done in [`backend`]; images
//! are made and read in [`image`]. At the very first start a `default` dir pool is made
//! under the state directory, as libvirt's packages make one.
//!
//! Long work on a volume (making, copying, wiping, uploading) runs without the driver's
//! lock: the volume's name is reserved first, so other calls go on and a second call on
//! the same volume is refused until the first is done.

pub mod backend;
mod error;
pub mod image;
mod volume;

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use vireo_driver::events::{EventBus, ObjectEvent};
use vireo_driver::store;
use vireo_proto::remote::{procs, Uuid};
use vireo_proto::storage::{
    event, pool_list_flags, pool_state, Pool as PoolHandle, PoolEventLifecycleBody,
    PoolEventRefreshBody, Vol as VolHandle, XML_INACTIVE,
};
use vireo_xml::{format_uuid, Pool as PoolDef, PoolTarget, PoolType, Size};

pub use backend::Vol;

/// Where the storage driver gets a secret's value (an encrypted volume's passphrase):
/// the secret driver's public API, supplied by the daemon. Called from a blocking thread.
pub trait Secrets: Send + Sync {
    fn value(&self, uuid: &Uuid) -> Result<zeroize::Zeroizing<Vec<u8>>>;
}
pub use error::{Result, StorageError};
pub use volume::Reservation;

/// Pools one host may define.
pub const MAX_POOLS: usize = vireo_proto::storage::POOL_LIST_MAX;

/// `virStoragePoolInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolInfo {
    pub state: u32,
    pub capacity: u64,
    pub allocation: u64,
    pub available: u64,
}

struct PoolObj {
    /// The definition in force (its UUID always set).
    def: PoolDef,
    persistent: bool,
    active: bool,
    autostart: bool,
    vols: BTreeMap<String, Vol>,
    /// Volumes with long work under way, by name.
    busy: HashSet<String>,
}

impl PoolObj {
    /// A pool not running, not autostarted, with no volumes known.
    fn new(def: PoolDef, persistent: bool) -> PoolObj {
        PoolObj {
            def,
            persistent,
            active: false,
            autostart: false,
            vols: BTreeMap::new(),
            busy: HashSet::new(),
        }
    }

    fn uuid(&self) -> Uuid {
        self.def.uuid.unwrap_or_default()
    }

    fn handle(&self) -> PoolHandle {
        PoolHandle {
            name: self.def.name.clone(),
            uuid: self.uuid(),
        }
    }

    fn vol_handle(&self, v: &Vol) -> VolHandle {
        VolHandle {
            pool: self.def.name.clone(),
            name: v.name.clone(),
            key: v.path.to_string_lossy().into_owned(),
        }
    }
}

pub struct StorageDriver {
    cfg_dir: PathBuf,
    run_dir: PathBuf,
    pools: Mutex<BTreeMap<String, PoolObj>>,
    events: EventBus<ObjectEvent>,
    secrets: std::sync::OnceLock<std::sync::Arc<dyn Secrets>>,
}

impl StorageDriver {
    /// Loads the pool definitions, finds the pools that were active, makes the `default`
    /// pool at the very first start, and starts the autostart pools.
    pub fn open(
        config_dir: &Path,
        run_dir: &Path,
        state_dir: &Path,
        events: EventBus<ObjectEvent>,
    ) -> Result<StorageDriver> {
        let cfg_dir = config_dir.join("storage");
        let first_start = !cfg_dir.exists();
        let d = StorageDriver {
            cfg_dir,
            run_dir: run_dir.join("storage"),
            pools: Mutex::new(BTreeMap::new()),
            events,
            secrets: std::sync::OnceLock::new(),
        };
        d.load()?;
        if first_start {
            let images = state_dir.join("images");
            let xml = format!(
                "<pool type='dir'><name>default</name><target><path>{}</path>\
                 <permissions><mode>0711</mode></permissions></target></pool>",
                vireo_xml::escape(&images.to_string_lossy())
            );
            let h = d.define_xml(&xml, 0)?;
            d.build(&h, 0)?;
            d.set_autostart(&h, true)?;
        }
        d.autostart();
        Ok(d)
    }

    /// Gives the driver its way to secret values (once; later calls are ignored).
    pub fn set_secrets(&self, s: std::sync::Arc<dyn Secrets>) {
        let _ = self.secrets.set(s);
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, PoolObj>> {
        self.pools.lock().unwrap_or_else(|p| p.into_inner())
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

    fn load(&self) -> Result<()> {
        let mut pools = self.lock();
        for (path, persistent) in store::list_xml(&self.cfg_dir)?
            .into_iter()
            .map(|p| (p, true))
            .chain(
                store::list_xml(&self.run_dir)?
                    .into_iter()
                    .map(|p| (p, false)),
            )
        {
            let def = match fs::read_to_string(&path)
                .map_err(|e| StorageError::io(format!("cannot read {}", path.display()), e))
                .and_then(|x| Ok(PoolDef::parse(&x)?))
            {
                Ok(d) if d.uuid.is_some() => d,
                Ok(_) => {
                    log::warn!("skipping pool {}: no UUID", path.display());
                    continue;
                }
                Err(e) => {
                    log::warn!("skipping pool {}: {e}", path.display());
                    continue;
                }
            };
            let name = def.name.clone();
            if persistent {
                let autostart = self.autostart_path(&name).exists();
                let mut obj = PoolObj::new(def, true);
                obj.autostart = autostart;
                pools.insert(name, obj);
                continue;
            }
            // A state file: the pool was active when the last daemon left. It is still,
            // if its storage is there.
            let obj = pools
                .entry(name.clone())
                .or_insert_with(|| PoolObj::new(def.clone(), false));
            obj.def = def;
            match backend::start(&obj.def).and_then(|_| backend::scan(&obj.def)) {
                Ok(vols) => {
                    obj.vols = vols;
                    obj.active = true;
                }
                Err(e) => {
                    log::warn!("pool {name} was active but cannot be used now: {e}");
                    let _ = store::remove(&path);
                    if !obj.persistent {
                        pools.remove(&name);
                    }
                }
            }
        }
        Ok(())
    }

    fn autostart(&self) {
        let names: Vec<PoolHandle> = self
            .lock()
            .values()
            .filter(|p| p.autostart && !p.active)
            .map(PoolObj::handle)
            .collect();
        for h in names {
            if let Err(e) = self.create(&h, 0) {
                log::warn!("cannot autostart pool {}: {e}", h.name);
            }
        }
    }

    // ---------------------------------------------------------------------------------
    // Pools
    // ---------------------------------------------------------------------------------

    /// Checks a new definition against the pools there are: names and UUIDs are unique,
    /// and no two pools share a target. Returns the UUID it will have.
    fn admit(pools: &BTreeMap<String, PoolObj>, def: &PoolDef) -> Result<(Uuid, Option<bool>)> {
        backend::check(def)?;
        if let Some(u) = def.uuid {
            if let Some(other) = pools
                .values()
                .find(|p| p.uuid() == u && p.def.name != def.name)
            {
                return Err(StorageError::Exists(format!(
                    "pool '{}' is already defined with uuid {}",
                    other.def.name,
                    format_uuid(&u)
                )));
            }
        }
        let existing = pools.get(&def.name);
        if let (Some(e), Some(u)) = (existing, def.uuid) {
            if e.uuid() != u {
                return Err(StorageError::Exists(format!(
                    "pool '{}' is already defined with uuid {}",
                    def.name,
                    format_uuid(&e.uuid())
                )));
            }
        }
        if let Some(other) = pools
            .values()
            .find(|p| p.def.name != def.name && p.def.target_path() == def.target_path())
        {
            return Err(StorageError::Exists(format!(
                "Storage source conflict with pool: '{}'",
                other.def.name
            )));
        }
        if existing.is_none() && pools.len() >= MAX_POOLS {
            return Err(StorageError::InvalidArg(format!(
                "too many storage pools (limit {MAX_POOLS})"
            )));
        }
        let uuid = existing
            .map(PoolObj::uuid)
            .or(def.uuid)
            .unwrap_or_else(|| *uuid::Uuid::new_v4().as_bytes());
        Ok((uuid, existing.map(|e| e.active)))
    }

    /// `virStoragePoolDefineXML`.
    pub fn define_xml(&self, xml: &str, flags: u32) -> Result<PoolHandle> {
        check_flags(flags, 1)?; // VALIDATE: our parser always validates.
        let mut def = PoolDef::parse(xml)?;
        let mut pools = self.lock();
        let (uuid, was) = Self::admit(&pools, &def)?;
        if was == Some(true)
            && pools
                .get(&def.name)
                .is_some_and(|p| p.def.pool_type != def.pool_type)
        {
            return Err(StorageError::Invalid(format!(
                "pool '{}' is active: its type cannot change",
                def.name
            )));
        }
        def.uuid = Some(uuid);
        strip_sizes(&mut def);
        store::write_atomic(&self.def_path(&def.name), def.format().as_bytes())?;
        let obj = pools
            .entry(def.name.clone())
            .or_insert_with(|| PoolObj::new(def.clone(), true));
        obj.persistent = true;
        if !obj.active {
            obj.def = def;
        }
        let h = obj.handle();
        drop(pools);
        self.lifecycle(&h, event::DEFINED);
        Ok(h)
    }

    /// `virStoragePoolCreateXML`: a transient pool, started at once (built first with
    /// WITH_BUILD, 1; OVERWRITE 2 and NO_OVERWRITE 4 as for build).
    pub fn create_xml(&self, xml: &str, flags: u32) -> Result<PoolHandle> {
        check_flags(flags, 7)?;
        let mut def = PoolDef::parse(xml)?;
        let h = {
            let mut pools = self.lock();
            if pools.contains_key(&def.name) {
                return Err(StorageError::Exists(format!(
                    "pool '{}' already exists",
                    def.name
                )));
            }
            let (uuid, _) = Self::admit(&pools, &def)?;
            def.uuid = Some(uuid);
            strip_sizes(&mut def);
            let obj = PoolObj::new(def, false);
            let h = obj.handle();
            pools.insert(h.name.clone(), obj);
            h
        };
        match self.start_pool(&h, flags) {
            Ok(()) => Ok(h),
            Err(e) => {
                self.lock().remove(&h.name);
                Err(e)
            }
        }
    }

    /// `virStoragePoolCreate` (start), with the same build flags as `create_xml`.
    pub fn create(&self, h: &PoolHandle, flags: u32) -> Result<()> {
        check_flags(flags, 7)?;
        self.start_pool(h, flags)
    }

    fn start_pool(&self, h: &PoolHandle, flags: u32) -> Result<()> {
        let def = self.def_when(h, false)?;
        if flags & 7 != 0 {
            // WITH_BUILD 1, WITH_BUILD_OVERWRITE 2, WITH_BUILD_NO_OVERWRITE 4: the same
            // OVERWRITE (8) and NO_OVERWRITE (4) choice as build.
            let bflags = (flags & 2) << 2 | (flags & 4);
            backend::build(&def, bflags)?;
            self.lifecycle(h, event::CREATED);
        }
        backend::start(&def)?;
        let vols = match backend::scan(&def) {
            Ok(v) => v,
            Err(e) => {
                let _ = backend::stop(&def);
                return Err(e);
            }
        };
        store::write_atomic(&self.state_path(&def.name), def.format().as_bytes())?;
        let mut pools = self.lock();
        let p = find_mut(&mut pools, h)?;
        p.active = true;
        p.vols = vols;
        let h = p.handle();
        drop(pools);
        self.lifecycle(&h, event::STARTED);
        Ok(())
    }

    /// The definition of pool `h`, which must be active (or must not be).
    fn def_when(&self, h: &PoolHandle, active: bool) -> Result<PoolDef> {
        let pools = self.lock();
        let p = find(&pools, h)?;
        match (p.active, active) {
            (false, true) => Err(not_active(&h.name)),
            (true, false) => Err(StorageError::Invalid(format!(
                "storage pool '{}' is already active",
                h.name
            ))),
            _ => Ok(p.def.clone()),
        }
    }

    /// `virStoragePoolBuild`.
    pub fn build(&self, h: &PoolHandle, flags: u32) -> Result<()> {
        check_flags(flags, 0xf)?;
        let def = self.def_when(h, false)?;
        backend::build(&def, flags)?;
        self.lifecycle(h, event::CREATED);
        Ok(())
    }

    /// `virStoragePoolDestroy`: stopped; a transient pool is gone.
    pub fn destroy(&self, h: &PoolHandle) -> Result<()> {
        let def = {
            let pools = self.lock();
            let p = find(&pools, h)?;
            if !p.active {
                return Err(not_active(&h.name));
            }
            if !p.busy.is_empty() {
                return Err(StorageError::Invalid(format!(
                    "pool '{}' has asynchronous jobs running",
                    h.name
                )));
            }
            p.def.clone()
        };
        backend::stop(&def)?;
        store::remove(&self.state_path(&def.name))?;
        let mut pools = self.lock();
        let h = {
            let p = find_mut(&mut pools, h)?;
            p.active = false;
            p.vols.clear();
            p.handle()
        };
        if !pools.get(&h.name).is_some_and(|p| p.persistent) {
            pools.remove(&h.name);
        } else if let Ok(x) = fs::read_to_string(self.def_path(&h.name)) {
            // A definition changed while the pool ran takes effect now.
            if let (Ok(d), Some(p)) = (PoolDef::parse(&x), pools.get_mut(&h.name)) {
                p.def = d;
            }
        }
        drop(pools);
        self.lifecycle(&h, event::STOPPED);
        Ok(())
    }

    /// `virStoragePoolDelete`: removes the pool's storage (it must be inactive).
    pub fn delete(&self, h: &PoolHandle, flags: u32) -> Result<()> {
        check_flags(flags, 1)?;
        let def = self.def_when(h, false)?;
        backend::delete(&def)?;
        self.lifecycle(h, event::DELETED);
        Ok(())
    }

    /// `virStoragePoolUndefine` (it must be inactive).
    pub fn undefine(&self, h: &PoolHandle) -> Result<()> {
        let mut pools = self.lock();
        let p = find(&pools, h)?;
        if p.active {
            return Err(StorageError::Invalid(format!(
                "storage pool '{}' is still active",
                h.name
            )));
        }
        if !p.persistent {
            return Err(StorageError::Invalid(format!(
                "storage pool '{}' is not persistent",
                h.name
            )));
        }
        let h = p.handle();
        store::remove(&self.autostart_path(&h.name))?;
        store::remove(&self.def_path(&h.name))?;
        pools.remove(&h.name);
        drop(pools);
        self.lifecycle(&h, event::UNDEFINED);
        Ok(())
    }

    /// `virStoragePoolRefresh`: the volumes are read from disk again.
    pub fn refresh(&self, h: &PoolHandle, flags: u32) -> Result<()> {
        check_flags(flags, 0)?;
        let def = self.def_when(h, true)?;
        let vols = backend::scan(&def)?;
        let mut pools = self.lock();
        let p = find_mut(&mut pools, h)?;
        // Volumes with work under way keep what we know of them.
        let mut vols = vols;
        for b in &p.busy {
            vols.remove(b);
        }
        p.vols = vols;
        let h = p.handle();
        drop(pools);
        self.publish(
            &h,
            event::ID_REFRESH,
            procs::STORAGE_POOL_EVENT_REFRESH,
            vireo_xdr::to_bytes(&PoolEventRefreshBody { pool: h.clone() }),
        );
        Ok(())
    }

    pub fn set_autostart(&self, h: &PoolHandle, on: bool) -> Result<()> {
        let mut pools = self.lock();
        let p = find_mut(&mut pools, h)?;
        if !p.persistent {
            return Err(StorageError::Invalid(
                "cannot set autostart for transient pool".into(),
            ));
        }
        let path = self.autostart_path(&h.name);
        if on {
            store::write_atomic(&path, b"")?;
        } else {
            store::remove(&path)?;
        }
        p.autostart = on;
        Ok(())
    }

    pub fn autostart_of(&self, h: &PoolHandle) -> Result<bool> {
        Ok(find(&self.lock(), h)?.autostart)
    }

    pub fn is_active(&self, h: &PoolHandle) -> Result<bool> {
        Ok(find(&self.lock(), h)?.active)
    }

    pub fn is_persistent(&self, h: &PoolHandle) -> Result<bool> {
        Ok(find(&self.lock(), h)?.persistent)
    }

    pub fn info(&self, h: &PoolHandle) -> Result<PoolInfo> {
        let pools = self.lock();
        let p = find(&pools, h)?;
        if !p.active {
            return Ok(PoolInfo {
                state: pool_state::INACTIVE,
                capacity: 0,
                allocation: 0,
                available: 0,
            });
        }
        let (capacity, allocation, available) = backend::space(&p.def);
        Ok(PoolInfo {
            state: pool_state::RUNNING,
            capacity,
            allocation,
            available,
        })
    }

    /// The pool's XML: sizes filled in while it runs; with INACTIVE, the definition that
    /// will be used at the next start.
    pub fn xml_desc(&self, h: &PoolHandle, flags: u32) -> Result<String> {
        check_flags(flags, XML_INACTIVE)?;
        let pools = self.lock();
        let p = find(&pools, h)?;
        let mut def = if flags & XML_INACTIVE != 0 && p.persistent {
            fs::read_to_string(self.def_path(&h.name))
                .ok()
                .and_then(|x| PoolDef::parse(&x).ok())
                .unwrap_or_else(|| p.def.clone())
        } else {
            p.def.clone()
        };
        let (c, a, v) = if p.active {
            backend::space(&p.def)
        } else {
            (0, 0, 0)
        };
        def.capacity = Some(Size::bytes(c));
        def.allocation = Some(Size::bytes(a));
        def.available = Some(Size::bytes(v));
        if def.source.is_none() {
            def.source = Some(vireo_xml::PoolSource {
                host: Vec::new(),
                device: Vec::new(),
                dir: None,
                name: None,
                format: None,
            });
        }
        let t = def.target.get_or_insert(PoolTarget {
            path: None,
            permissions: None,
        });
        if p.active && t.permissions.is_none() {
            if let Ok(m) = fs::metadata(backend::target(&p.def)) {
                use std::os::unix::fs::MetadataExt;
                t.permissions = Some(vireo_xml::Permissions {
                    mode: Some(format!("{:04o}", m.mode() & 0o7777)),
                    owner: Some(m.uid().to_string()),
                    group: Some(m.gid().to_string()),
                    label: None,
                });
            }
        }
        Ok(def.format())
    }

    pub fn lookup_by_name(&self, name: &str) -> Result<PoolHandle> {
        self.lock().get(name).map(PoolObj::handle).ok_or_else(|| {
            StorageError::NoPool(format!("no storage pool with matching name '{name}'"))
        })
    }

    pub fn lookup_by_uuid(&self, uuid: &Uuid) -> Result<PoolHandle> {
        self.lock()
            .values()
            .find(|p| p.uuid() == *uuid)
            .map(PoolObj::handle)
            .ok_or_else(|| {
                StorageError::NoPool(format!(
                    "no storage pool with matching uuid '{}'",
                    format_uuid(uuid)
                ))
            })
    }

    pub fn lookup_by_target_path(&self, path: &str) -> Result<PoolHandle> {
        let want = Path::new(path);
        self.lock()
            .values()
            .find(|p| p.active && backend::target(&p.def) == want)
            .map(PoolObj::handle)
            .ok_or_else(|| {
                StorageError::NoPool(format!(
                    "no storage pool with matching target path '{path}'"
                ))
            })
    }

    /// `virConnectListAllStoragePools` with its filters, by name.
    pub fn list_all(&self, flags: u32) -> Result<Vec<PoolHandle>> {
        use pool_list_flags::*;
        check_flags(flags, (ISCSI_DIRECT << 1) - 1)?;
        let pair = |yes: u32, no: u32, v: bool| {
            flags & (yes | no) == 0 || flags & if v { yes } else { no } != 0
        };
        let types =
            flags & !(INACTIVE | ACTIVE | PERSISTENT | TRANSIENT | AUTOSTART | NO_AUTOSTART);
        Ok(self
            .lock()
            .values()
            .filter(|p| pair(ACTIVE, INACTIVE, p.active))
            .filter(|p| pair(PERSISTENT, TRANSIENT, p.persistent))
            .filter(|p| pair(AUTOSTART, NO_AUTOSTART, p.autostart))
            .filter(|p| types == 0 || types & type_flag(p.def.pool_type) != 0)
            .map(PoolObj::handle)
            .collect())
    }

    /// `virConnectGetStoragePoolCapabilities`: which pool types run here, and the formats
    /// their sources and volumes take.
    pub fn capabilities(&self, flags: u32) -> Result<String> {
        check_flags(flags, 0)?;
        let file_vols = "    <volOptions>\n      <defaultFormat type='raw'/>\n      \
                         <enum name='targetFormatType'>\n        <value>raw</value>\n        \
                         <value>qcow2</value>\n      </enum>\n    </volOptions>\n";
        let mut out = String::from("<storagepoolCapabilities>\n");
        for t in PoolType::ALL {
            match t {
                PoolType::Dir => {
                    out.push_str("  <pool type='dir' supported='yes'>\n");
                    out.push_str(file_vols);
                    out.push_str("  </pool>\n");
                }
                PoolType::Fs => {
                    out.push_str(
                        "  <pool type='fs' supported='yes'>\n    <poolOptions>\n      \
                         <defaultFormat type='auto'/>\n      <enum name='sourceFormatType'>\n",
                    );
                    for f in backend::FS_FORMATS {
                        out.push_str(&format!("        <value>{f}</value>\n"));
                    }
                    out.push_str("      </enum>\n    </poolOptions>\n");
                    out.push_str(file_vols);
                    out.push_str("  </pool>\n");
                }
                PoolType::Logical => out.push_str(
                    "  <pool type='logical' supported='yes'>\n    <poolOptions>\n      \
                     <defaultFormat type='lvm2'/>\n      <enum name='sourceFormatType'>\n        \
                     <value>auto</value>\n        <value>lvm2</value>\n      </enum>\n    \
                     </poolOptions>\n  </pool>\n",
                ),
                other => out.push_str(&format!("  <pool type='{other}' supported='no'/>\n")),
            }
        }
        out.push_str("</storagepoolCapabilities>\n");
        Ok(out)
    }

    /// `virConnectFindStoragePoolSources`: the volume groups of this host for `logical`.
    pub fn find_pool_sources(
        &self,
        pool_type: &str,
        _spec: Option<&str>,
        flags: u32,
    ) -> Result<String> {
        check_flags(flags, 0)?;
        match pool_type {
            "logical" => backend::logical::find_sources(),
            other => Err(StorageError::Unsupported(format!(
                "finding the sources of '{other}' pools is not supported (logical is)"
            ))),
        }
    }

    pub fn num_of_pools(&self, active: bool) -> usize {
        self.lock().values().filter(|p| p.active == active).count()
    }

    pub fn pool_names(&self, active: bool) -> Vec<String> {
        self.lock()
            .values()
            .filter(|p| p.active == active)
            .map(|p| p.def.name.clone())
            .collect()
    }

    fn lifecycle(&self, h: &PoolHandle, ev: i32) {
        let body = PoolEventLifecycleBody {
            pool: h.clone(),
            event: ev,
            detail: 0,
        };
        self.publish(
            h,
            event::ID_LIFECYCLE,
            procs::STORAGE_POOL_EVENT_LIFECYCLE,
            vireo_xdr::to_bytes(&body),
        );
    }

    fn publish(&self, h: &PoolHandle, event_id: i32, proc_: i32, body: Vec<u8>) {
        self.events.publish(ObjectEvent {
            register_proc: procs::CONNECT_STORAGE_POOL_EVENT_REGISTER_ANY,
            event_id,
            key: h.uuid.to_vec(),
            proc_,
            body,
        });
    }
}

fn type_flag(t: PoolType) -> u32 {
    use pool_list_flags::*;
    match t {
        PoolType::Dir => DIR,
        PoolType::Fs => FS,
        PoolType::Netfs => NETFS,
        PoolType::Logical => LOGICAL,
        PoolType::Disk => DISK,
        PoolType::Iscsi => ISCSI,
        PoolType::Scsi => SCSI,
        PoolType::Mpath => MPATH,
        PoolType::Rbd => RBD,
        PoolType::Sheepdog => SHEEPDOG,
        PoolType::Gluster => GLUSTER,
        PoolType::Zfs => ZFS,
        PoolType::Vstorage => VSTORAGE,
        PoolType::IscsiDirect => ISCSI_DIRECT,
    }
}

/// Sizes are facts of a running pool, never part of a stored definition.
fn strip_sizes(def: &mut PoolDef) {
    def.capacity = None;
    def.allocation = None;
    def.available = None;
}

fn find<'a>(pools: &'a BTreeMap<String, PoolObj>, h: &PoolHandle) -> Result<&'a PoolObj> {
    pools
        .get(&h.name)
        .filter(|p| p.uuid() == h.uuid)
        .ok_or_else(|| no_pool(h))
}

fn find_mut<'a>(
    pools: &'a mut BTreeMap<String, PoolObj>,
    h: &PoolHandle,
) -> Result<&'a mut PoolObj> {
    pools
        .get_mut(&h.name)
        .filter(|p| p.uuid() == h.uuid)
        .ok_or_else(|| no_pool(h))
}

fn no_pool(h: &PoolHandle) -> StorageError {
    StorageError::NoPool(format!(
        "no storage pool with matching uuid '{}' ({})",
        format_uuid(&h.uuid),
        h.name
    ))
}

fn not_active(name: &str) -> StorageError {
    StorageError::Invalid(format!("storage pool '{name}' is not active"))
}

fn check_flags(flags: u32, allowed: u32) -> Result<()> {
    if flags & !allowed != 0 {
        return Err(StorageError::InvalidArg(format!(
            "unsupported flags (0x{:x})",
            flags & !allowed
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
