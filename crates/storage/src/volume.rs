//! Volume calls: create (also as a copy of another volume), delete, wipe, resize, info,
//! XML, lookups, lists, and the reservations that uploads and downloads hold.

use std::fs::{self, File, OpenOptions};
use std::ops::Deref;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vireo_proto::storage::{
    delete_flags, resize_flags, vol_create_flags, vol_type, wipe_alg, Pool as PoolHandle,
    Vol as VolHandle, GET_PHYSICAL,
};
use vireo_xml::{
    BackingStore, Encryption, Format, Permissions, Size, VolFeatures, VolTarget, VolType, Volume,
};

use crate::backend::{self, Vol};
use crate::image::{self, CreateOpts, Prealloc};
use crate::{check_flags, find, find_mut, not_active, Result, StorageDriver, StorageError};

/// The work a reservation is for, in "volume 'x' is still being …" messages.
#[derive(Debug, Clone, Copy)]
pub enum Work {
    Created,
    Wiped,
    Resized,
    Uploaded,
    Downloaded,
    Deleted,
}

impl Work {
    fn verb(self) -> &'static str {
        match self {
            Work::Created => "created",
            Work::Wiped => "wiped",
            Work::Resized => "resized",
            Work::Uploaded => "uploaded to",
            Work::Downloaded => "downloaded",
            Work::Deleted => "deleted",
        }
    }
}

/// A volume name held for long work; released (and the volume read again from disk) when
/// dropped. `D` is how it holds the driver: borrowed for a call, shared for a transfer
/// that outlives it.
pub struct Reservation<D: Deref<Target = StorageDriver>> {
    driver: D,
    pool: PoolHandle,
    name: String,
    /// Where the volume is.
    pub path: PathBuf,
    /// The volume's format (as its header says).
    pub format: String,
    /// Its size in bytes (the file's, which is what uploads and downloads move).
    pub physical: u64,
}

impl<D: Deref<Target = StorageDriver>> Drop for Reservation<D> {
    fn drop(&mut self) {
        let mut pools = self.driver.lock();
        if let Ok(p) = find_mut(&mut pools, &self.pool) {
            p.busy.remove(&self.name);
            match backend::vol_at(&self.name, &self.path) {
                Ok(v) => {
                    p.vols.insert(self.name.clone(), v);
                }
                Err(_) => {
                    p.vols.remove(&self.name);
                }
            }
        }
    }
}

impl StorageDriver {
    /// Holds `name` in pool `h` for `work`: the pool must be active and no other long work
    /// may be under way on it. `must_exist` says whether the volume must be there already.
    fn reserve<D: Deref<Target = StorageDriver>>(
        driver: D,
        h: &PoolHandle,
        name: &str,
        work: Work,
        must_exist: bool,
    ) -> Result<Reservation<D>> {
        let mut pools = driver.lock();
        let p = find_mut(&mut pools, h)?;
        if !p.active {
            return Err(not_active(&h.name));
        }
        if p.busy.contains(name) {
            return Err(StorageError::Invalid(format!(
                "volume '{name}' is still in use by another job; it cannot be {} now",
                work.verb()
            )));
        }
        let path = backend::target(&p.def).join(name);
        let (format, physical) = match (p.vols.get(name), must_exist) {
            (Some(v), true) => (v.info.format.clone(), v.info.physical),
            (None, true) => return Err(no_vol_name(name)),
            (Some(_), false) => return Err(StorageError::VolExists(name.to_string())),
            (None, false) if path.symlink_metadata().is_ok() => {
                return Err(StorageError::VolExists(name.to_string()))
            }
            (None, false) => (String::new(), 0),
        };
        p.busy.insert(name.to_string());
        let pool = p.handle();
        drop(pools);
        Ok(Reservation {
            driver,
            pool,
            name: name.to_string(),
            path,
            format,
            physical,
        })
    }

    /// The pool a volume handle names, checked active.
    fn pool_of(&self, v: &VolHandle) -> Result<PoolHandle> {
        let pools = self.lock();
        let p = pools.get(&v.pool).ok_or_else(|| {
            StorageError::NoPool(format!("no storage pool with matching name '{}'", v.pool))
        })?;
        if !p.active {
            return Err(not_active(&v.pool));
        }
        Ok(p.handle())
    }

    fn with_vol<T>(&self, v: &VolHandle, f: impl FnOnce(&Vol) -> Result<T>) -> Result<T> {
        let pools = self.lock();
        let p = pools
            .get(&v.pool)
            .filter(|p| p.active)
            .ok_or_else(|| no_vol_name(&v.name))?;
        f(p.vols.get(&v.name).ok_or_else(|| no_vol_name(&v.name))?)
    }

    // ---------------------------------------------------------------------------------
    // Lookups and lists
    // ---------------------------------------------------------------------------------

    pub fn list_volumes(&self, h: &PoolHandle) -> Result<Vec<VolHandle>> {
        let pools = self.lock();
        let p = find(&pools, h)?;
        if !p.active {
            return Err(not_active(&h.name));
        }
        Ok(p.vols.values().map(|v| p.vol_handle(v)).collect())
    }

    pub fn vol_lookup_by_name(&self, h: &PoolHandle, name: &str) -> Result<VolHandle> {
        let pools = self.lock();
        let p = find(&pools, h)?;
        if !p.active {
            return Err(not_active(&h.name));
        }
        p.vols
            .get(name)
            .map(|v| p.vol_handle(v))
            .ok_or_else(|| no_vol_name(name))
    }

    /// By key: for file volumes the key is the path.
    pub fn vol_lookup_by_key(&self, key: &str) -> Result<VolHandle> {
        self.by_path(key)
            .ok_or_else(|| StorageError::NoVol(format!("no storage vol with matching key {key}")))
    }

    pub fn vol_lookup_by_path(&self, path: &str) -> Result<VolHandle> {
        let canon = fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path));
        self.by_path(&canon.to_string_lossy())
            .or_else(|| self.by_path(path))
            .ok_or_else(|| {
                StorageError::NoVol(format!("no storage vol with matching path '{path}'"))
            })
    }

    fn by_path(&self, path: &str) -> Option<VolHandle> {
        let pools = self.lock();
        pools.values().filter(|p| p.active).find_map(|p| {
            p.vols
                .values()
                .find(|v| v.path.as_os_str() == path)
                .map(|v| p.vol_handle(v))
        })
    }

    pub fn pool_lookup_by_volume(&self, v: &VolHandle) -> Result<PoolHandle> {
        self.lookup_by_name(&v.pool)
    }

    pub fn vol_path(&self, v: &VolHandle) -> Result<String> {
        self.with_vol(v, |x| Ok(x.path.to_string_lossy().into_owned()))
    }

    /// (type, capacity, allocation — or the file's size with GET_PHYSICAL).
    pub fn vol_info(&self, v: &VolHandle, flags: u32) -> Result<(i32, u64, u64)> {
        check_flags(flags, GET_PHYSICAL)?;
        self.with_vol(v, |x| {
            let ty = if x.info.is_block {
                vol_type::BLOCK
            } else {
                vol_type::FILE
            };
            let second = if flags & GET_PHYSICAL != 0 {
                x.info.physical
            } else {
                x.info.allocation
            };
            Ok((ty, x.info.capacity, second))
        })
    }

    /// The volume's XML, as libvirt writes it.
    pub fn vol_xml_desc(&self, v: &VolHandle, flags: u32) -> Result<String> {
        check_flags(flags, 0)?;
        self.with_vol(v, |x| Ok(vol_xml(x).format()))
    }

    // ---------------------------------------------------------------------------------
    // Making and removing
    // ---------------------------------------------------------------------------------

    /// `virStorageVolCreateXML`.
    pub fn vol_create_xml(&self, h: &PoolHandle, xml: &str, flags: u32) -> Result<VolHandle> {
        use vol_create_flags::*;
        check_flags(flags, PREALLOC_METADATA | VALIDATE)?;
        let def = Volume::parse(xml)?;
        let capacity = def
            .capacity
            .as_ref()
            .ok_or_else(|| {
                StorageError::Xml(vireo_xml::XmlError::Invalid(
                    "missing capacity element".into(),
                ))
            })?
            .in_bytes("capacity")?;
        let allocation = def
            .allocation
            .as_ref()
            .map(|a| a.in_bytes("allocation"))
            .transpose()?;
        let format = def.target_format().unwrap_or("raw").to_string();
        check_create(&def, &format)?;
        let r = Self::reserve(self, h, &def.name, Work::Created, false)?;
        self.check_space(h, allocation.unwrap_or(capacity).min(capacity))?;
        if let Some(pool) = self.logical_def(h)? {
            if format != "raw" || def.backing_store.is_some() {
                return Err(StorageError::Unsupported(
                    "volumes of a logical pool are raw, without a backing store".into(),
                ));
            }
            backend::logical::create_volume(&pool, &def.name, capacity)?;
            let out = handle_of(h, &r);
            drop(r);
            return Ok(out);
        }
        let passphrase = match def.target.as_ref().and_then(|t| t.encryption.as_ref()) {
            Some(e) => {
                let uuid = luks_secret(e)?;
                let src = self.secrets.get().ok_or_else(|| {
                    StorageError::Invalid("no secret driver is reachable for the passphrase".into())
                })?;
                Some(src.value(&uuid)?)
            }
            None => None,
        };
        let tmp = temp_path(&r.path);
        let made = (|| -> Result<()> {
            if format == "raw" && passphrase.is_none() {
                make_raw(&tmp, capacity, allocation.unwrap_or(capacity))?;
            } else {
                let backing = backing_of(&def)?;
                let opts = CreateOpts {
                    backing: backing.as_ref().map(|(p, f)| (p.as_str(), f.as_str())),
                    compat: def.target.as_ref().and_then(|t| t.compat.as_deref()),
                    cluster_size: def
                        .target
                        .as_ref()
                        .and_then(|t| t.cluster_size.as_ref())
                        .map(|c| c.in_bytes("clusterSize"))
                        .transpose()?,
                    lazy_refcounts: def
                        .target
                        .as_ref()
                        .and_then(|t| t.features.as_ref())
                        .is_some_and(|f| f.lazy_refcounts),
                    luks_passphrase: passphrase.as_deref().map(Vec::as_slice),
                };
                let prealloc = if flags & PREALLOC_METADATA != 0 {
                    Prealloc::Metadata
                } else if allocation.is_some_and(|a| a >= capacity) {
                    Prealloc::Full
                } else {
                    Prealloc::Off
                };
                image::create(&tmp, &format, capacity, prealloc, &opts)?;
            }
            Ok(())
        })();
        install(made, &tmp, &r.path, &def)?;
        let out = handle_of(h, &r);
        drop(r);
        Ok(out)
    }

    /// `virStorageVolCreateXMLFrom`: a copy of `src` (of any pool), in the new volume's
    /// format (the source's when none is given), at least as large as the source.
    pub fn vol_create_xml_from(
        &self,
        h: &PoolHandle,
        xml: &str,
        src: &VolHandle,
        flags: u32,
    ) -> Result<VolHandle> {
        use vol_create_flags::*;
        check_flags(flags, PREALLOC_METADATA | VALIDATE | REFLINK)?;
        let def = Volume::parse(xml)?;
        let src_pool = self.pool_of(src)?;
        let sr = Self::reserve(self, &src_pool, &src.name, Work::Downloaded, true)?;
        let src_info = image::probe(&sr.path)?;
        let format = def.target_format().unwrap_or(&src_info.format).to_string();
        check_create(&def, &format)?;
        // virsh vol-clone sends the source's own XML: a copy of an overlay is an overlay
        // on the same backing file.
        let backing = backing_of(&def)?;
        let capacity = def
            .capacity
            .as_ref()
            .map(|c| c.in_bytes("capacity"))
            .transpose()?
            .unwrap_or(src_info.capacity)
            .max(src_info.capacity);
        let r = Self::reserve(self, h, &def.name, Work::Created, false)?;
        self.check_space(h, src_info.allocation)?;
        if let Some(pool) = self.logical_def(h)? {
            // A new logical volume, then the copy into it.
            if format != "raw" || backing.is_some() {
                return Err(StorageError::Unsupported(
                    "volumes of a logical pool are raw, without a backing store".into(),
                ));
            }
            backend::logical::create_volume(&pool, &def.name, capacity)?;
            if let Err(e) = image::convert_into(&sr.path, &src_info.format, &r.path) {
                let _ = backend::logical::remove_volume(&pool, &def.name);
                return Err(e);
            }
            let out = handle_of(h, &r);
            drop(r);
            drop(sr);
            return Ok(out);
        }
        let tmp = temp_path(&r.path);
        let prealloc = if flags & PREALLOC_METADATA != 0 {
            Prealloc::Metadata
        } else {
            Prealloc::Off
        };
        let made = (|| -> Result<()> {
            image::convert(
                &sr.path,
                &src_info.format,
                &tmp,
                &format,
                prealloc,
                backing.as_ref().map(|(p, f)| (p.as_str(), f.as_str())),
            )?;
            if capacity > src_info.capacity {
                image::resize(&tmp, &format, capacity, false, false)?;
            }
            Ok(())
        })();
        install(made, &tmp, &r.path, &def)?;
        let out = handle_of(h, &r);
        drop(r);
        drop(sr);
        Ok(out)
    }

    /// `virStorageVolDelete` (ZEROED: wiped first).
    pub fn vol_delete(&self, v: &VolHandle, flags: u32) -> Result<()> {
        check_flags(flags, delete_flags::ZEROED)?;
        let h = self.pool_of(v)?;
        let r = Self::reserve(self, &h, &v.name, Work::Deleted, true)?;
        if flags & delete_flags::ZEROED != 0 {
            wipe_file(&r.path, &r.format, wipe_alg::ZERO)?;
        }
        if let Some(pool) = self.logical_def(&h)? {
            return backend::logical::remove_volume(&pool, &v.name);
        }
        fs::remove_file(&r.path).map_err(|e| {
            StorageError::io(format!("cannot unlink file '{}'", r.path.display()), e)
        })?;
        Ok(())
    }

    /// `virStorageVolWipePattern` (`virStorageVolWipe` is the ZERO algorithm).
    pub fn vol_wipe(&self, v: &VolHandle, algorithm: u32, flags: u32) -> Result<()> {
        check_flags(flags, 0)?;
        if algorithm > wipe_alg::TRIM {
            return Err(StorageError::InvalidArg(format!(
                "unsupported wipe algorithm {algorithm}"
            )));
        }
        let h = self.pool_of(v)?;
        let r = Self::reserve(self, &h, &v.name, Work::Wiped, true)?;
        wipe_file(&r.path, &r.format, algorithm)
    }

    /// `virStorageVolResize`.
    pub fn vol_resize(&self, v: &VolHandle, capacity: u64, flags: u32) -> Result<()> {
        use resize_flags::*;
        check_flags(flags, ALLOCATE | DELTA | SHRINK)?;
        let h = self.pool_of(v)?;
        let cur = self.with_vol(v, |x| Ok(x.info.capacity))?;
        let new = if flags & DELTA != 0 {
            if flags & SHRINK != 0 {
                cur.checked_sub(capacity)
            } else {
                cur.checked_add(capacity)
            }
            .ok_or_else(|| StorageError::InvalidArg("capacity out of range".into()))?
        } else {
            capacity
        };
        if new < cur && flags & SHRINK == 0 {
            return Err(StorageError::InvalidArg(
                "Can't shrink capacity below current capacity unless shrink flag explicitly specified".into(),
            ));
        }
        if new > cur && flags & SHRINK != 0 {
            return Err(StorageError::InvalidArg(
                "Can't use shrink flag without a smaller capacity".into(),
            ));
        }
        if new == 0 {
            return Err(StorageError::InvalidArg(
                "capacity must be larger than 0".into(),
            ));
        }
        let r = Self::reserve(self, &h, &v.name, Work::Resized, true)?;
        if flags & ALLOCATE != 0 && new > cur {
            self.check_space(&h, new - cur)?;
        }
        if let Some(pool) = self.logical_def(&h)? {
            return backend::logical::resize_volume(&pool, &v.name, new);
        }
        if r.format == "raw" {
            let f = OpenOptions::new()
                .write(true)
                .open(&r.path)
                .map_err(|e| StorageError::io(format!("cannot open '{}'", r.path.display()), e))?;
            f.set_len(new).map_err(|e| {
                StorageError::io(format!("cannot resize '{}'", r.path.display()), e)
            })?;
            if flags & ALLOCATE != 0 && new > cur {
                fallocate(&f, cur, new - cur, &r.path)?;
            }
            f.sync_all()
                .map_err(|e| StorageError::io(format!("cannot sync '{}'", r.path.display()), e))
        } else {
            image::resize(&r.path, &r.format, new, new < cur, flags & ALLOCATE != 0)
        }
    }

    /// Holds a volume for an upload or a download (refused while other long work runs),
    /// for as long as the returned reservation lives.
    pub fn begin_transfer(
        self: &Arc<Self>,
        v: &VolHandle,
        upload: bool,
    ) -> Result<Reservation<Arc<StorageDriver>>> {
        let h = self.pool_of(v)?;
        let work = if upload {
            Work::Uploaded
        } else {
            Work::Downloaded
        };
        Self::reserve(Arc::clone(self), &h, &v.name, work, true)
    }

    /// The definition of pool `h` when it is a logical pool (its volumes are LVs).
    fn logical_def(&self, h: &PoolHandle) -> Result<Option<vireo_xml::Pool>> {
        let pools = self.lock();
        let p = find(&pools, h)?;
        Ok((p.def.pool_type == vireo_xml::PoolType::Logical).then(|| p.def.clone()))
    }

    /// Refuses an allocation larger than what the pool has free.
    fn check_space(&self, h: &PoolHandle, bytes: u64) -> Result<()> {
        let info = self.info(h)?;
        if bytes > info.available {
            return Err(StorageError::InvalidArg(format!(
                "Not enough space left in storage pool '{}': {bytes} bytes needed, {} available",
                h.name, info.available
            )));
        }
        Ok(())
    }
}

/// Puts a volume made at `tmp` in its place (with the mode and owner its XML asks for), or
/// removes what was made when making it failed.
fn install(made: Result<()>, tmp: &Path, path: &Path, def: &Volume) -> Result<()> {
    let done = made
        .and_then(|()| {
            apply_perms(
                tmp,
                def.target.as_ref().and_then(|t| t.permissions.as_ref()),
            )
        })
        .and_then(|()| {
            fs::rename(tmp, path)
                .map_err(|e| StorageError::io(format!("cannot create {}", path.display()), e))
        });
    if done.is_err() {
        let _ = fs::remove_file(tmp);
    }
    done
}

/// The handle of the volume a reservation holds.
fn handle_of<D: Deref<Target = StorageDriver>>(h: &PoolHandle, r: &Reservation<D>) -> VolHandle {
    VolHandle {
        pool: h.name.clone(),
        name: r.name.clone(),
        key: r.path.to_string_lossy().into_owned(),
    }
}

fn no_vol_name(name: &str) -> StorageError {
    StorageError::NoVol(format!("no storage vol with matching name '{name}'"))
}

/// What Vireo can make: raw and qcow2, without encryption yet.
fn check_create(def: &Volume, format: &str) -> Result<()> {
    if !image::CREATABLE.contains(&format) {
        return Err(StorageError::Unsupported(format!(
            "creating volumes of format '{format}' is not supported (use raw or qcow2)"
        )));
    }
    if let Some(e) = def.target.as_ref().and_then(|t| t.encryption.as_ref()) {
        luks_secret(e)?;
    }
    if format == "raw" && def.backing_store.is_some() {
        return Err(StorageError::Unsupported(
            "backing storage not supported for raw volumes".into(),
        ));
    }
    Ok(())
}

/// The passphrase secret an `<encryption>` names: LUKS, one passphrase secret by UUID.
fn luks_secret(e: &Encryption) -> Result<[u8; 16]> {
    if e.format != "luks" {
        return Err(StorageError::Unsupported(format!(
            "volume encryption format '{}' is not supported (luks)",
            e.format
        )));
    }
    match e.secret.as_slice() {
        [s] if s.secret_type == "passphrase" => s.uuid.ok_or_else(|| {
            StorageError::Xml(vireo_xml::XmlError::Invalid(
                "the encryption secret needs a uuid".into(),
            ))
        }),
        _ => Err(StorageError::Xml(vireo_xml::XmlError::Invalid(
            "LUKS encryption needs exactly one <secret type='passphrase' uuid='…'/>".into(),
        ))),
    }
}

/// The backing file and its format: as given, or read from the backing file's header (the
/// administrator chose it as a base; the overlay records the format, so it is never
/// probed again).
fn backing_of(def: &Volume) -> Result<Option<(String, String)>> {
    let Some(b) = &def.backing_store else {
        return Ok(None);
    };
    let path = b.path.clone().ok_or_else(|| {
        StorageError::Xml(vireo_xml::XmlError::Invalid(
            "missing <path> in <backingStore>".into(),
        ))
    })?;
    if !path.starts_with('/') {
        return Err(StorageError::InvalidArg(format!(
            "backing store path '{path}' must be absolute"
        )));
    }
    let format = match b.format.as_ref() {
        Some(f) => f.format_type.clone(),
        None => image::probe(Path::new(&path))?.format,
    };
    Ok(Some((path, format)))
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".vireo-{name}.{}.tmp", std::process::id()))
}

/// A raw file of `capacity` bytes with `allocation` of them allocated (0: sparse).
fn make_raw(path: &Path, capacity: u64, allocation: u64) -> Result<()> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| StorageError::io(format!("cannot create '{}'", path.display()), e))?;
    f.set_len(capacity)
        .map_err(|e| StorageError::io(format!("cannot size '{}'", path.display()), e))?;
    let alloc = allocation.min(capacity);
    if alloc > 0 {
        fallocate(&f, 0, alloc, path)?;
    }
    f.sync_all()
        .map_err(|e| StorageError::io(format!("cannot sync '{}'", path.display()), e))
}

fn fallocate(f: &File, offset: u64, len: u64, path: &Path) -> Result<()> {
    let fail = |e: std::io::Error| {
        StorageError::io(
            format!("cannot allocate {len} bytes in '{}'", path.display()),
            e,
        )
    };
    match rustix::fs::fallocate(f, rustix::fs::FallocateFlags::empty(), offset, len) {
        Ok(()) => Ok(()),
        // A filesystem without fallocate: zeros written past the end, as posix_fallocate
        // does there (what is already in the file stays).
        Err(rustix::io::Errno::OPNOTSUPP) => {
            use std::os::unix::fs::FileExt;
            let end = offset
                .checked_add(len)
                .ok_or_else(|| fail(std::io::Error::from_raw_os_error(libc::EFBIG)))?;
            let mut pos = f.metadata().map_err(fail)?.len().max(offset);
            let zeros = vec![0u8; 1 << 20];
            while pos < end {
                let n = (end - pos).min(zeros.len() as u64) as usize;
                f.write_all_at(&zeros[..n], pos).map_err(fail)?;
                pos += n as u64;
            }
            Ok(())
        }
        Err(e) => Err(fail(e.into())),
    }
}

fn apply_perms(path: &Path, perms: Option<&Permissions>) -> Result<()> {
    let mode = perms
        .and_then(|p| p.mode.as_deref())
        .map(backend::parse_mode)
        .transpose()?
        .unwrap_or(0o600);
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| StorageError::io(format!("cannot set the mode of '{}'", path.display()), e))?;
    let id = |s: Option<&str>| -> Result<Option<u32>> {
        match s.map(str::trim) {
            None | Some("-1") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                StorageError::Xml(vireo_xml::XmlError::Invalid(format!(
                    "malformed owner or group '{v}'"
                )))
            }),
        }
    };
    let uid = id(perms.and_then(|p| p.owner.as_deref()))?;
    let gid = id(perms.and_then(|p| p.group.as_deref()))?;
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::chown(path, uid, gid)
            .map_err(|e| StorageError::io(format!("cannot chown '{}'", path.display()), e))?;
    }
    Ok(())
}

/// Overwrites a volume's contents. ZERO and TRIM: a raw file's blocks are released (it
/// then reads as zeros), another format is made anew, empty, with the same size and
/// backing file; the other algorithms are scrub's patterns.
fn wipe_file(path: &Path, format: &str, algorithm: u32) -> Result<()> {
    let pattern = match algorithm {
        wipe_alg::ZERO | wipe_alg::TRIM => None,
        wipe_alg::NNSA => Some("nnsa"),
        wipe_alg::DOD => Some("dod"),
        wipe_alg::BSI => Some("bsi"),
        wipe_alg::GUTMANN => Some("gutmann"),
        wipe_alg::SCHNEIER => Some("schneier"),
        wipe_alg::PFITZNER7 => Some("pfitzner7"),
        wipe_alg::PFITZNER33 => Some("pfitzner33"),
        _ => Some("random"),
    };
    if let Some(p) = pattern {
        let path = path
            .to_str()
            .ok_or_else(|| StorageError::InvalidArg("path is not UTF-8".into()))?;
        return backend::run("scrub", &["-f", "-p", p, path]);
    }
    // An encrypted raw volume (a LUKS image) is wiped like raw data: header and all.
    if format != "raw" && format != "luks" {
        let info = image::probe(path)?;
        let backing = info.backing.clone();
        let opts = CreateOpts {
            backing: backing
                .as_ref()
                .map(|b| (b.path.as_str(), b.format.as_deref().unwrap_or("raw"))),
            compat: info.compat.as_deref(),
            cluster_size: info.cluster_size,
            lazy_refcounts: info.lazy_refcounts,
            luks_passphrase: None,
        };
        let tmp = temp_path(path);
        image::create(&tmp, format, info.capacity, Prealloc::Off, &opts)?;
        let mode = fs::metadata(path).map(|m| m.permissions()).ok();
        if let Some(m) = mode {
            let _ = fs::set_permissions(&tmp, m);
        }
        return fs::rename(&tmp, path)
            .map_err(|e| StorageError::io(format!("cannot replace '{}'", path.display()), e));
    }
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| StorageError::io(format!("cannot open '{}'", path.display()), e))?;
    let len = f
        .metadata()
        .map_err(|e| StorageError::io(format!("cannot stat '{}'", path.display()), e))?
        .len();
    let punch = rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE;
    if rustix::fs::fallocate(&f, punch, 0, len).is_err() {
        // No hole punching here: write the zeros.
        use std::io::{Seek, Write};
        let mut f = f;
        f.seek(std::io::SeekFrom::Start(0))
            .map_err(|e| StorageError::io("cannot seek", e))?;
        let zeros = vec![0u8; 1 << 20];
        let mut left = len;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            f.write_all(&zeros[..n])
                .map_err(|e| StorageError::io(format!("cannot wipe '{}'", path.display()), e))?;
            left -= n as u64;
        }
        return f
            .sync_all()
            .map_err(|e| StorageError::io(format!("cannot sync '{}'", path.display()), e));
    }
    f.sync_all()
        .map_err(|e| StorageError::io(format!("cannot sync '{}'", path.display()), e))
}

/// A volume's XML, from what its header and the filesystem say.
fn vol_xml(v: &Vol) -> Volume {
    let i = &v.info;
    let path = v.path.to_string_lossy().into_owned();
    Volume {
        vol_type: Some(if i.is_block {
            VolType::Block
        } else {
            VolType::File
        }),
        name: v.name.clone(),
        key: Some(path.clone()),
        capacity: Some(Size::bytes(i.capacity)),
        allocation: Some(Size::bytes(i.allocation)),
        physical: Some(Size::bytes(i.physical)),
        target: Some(VolTarget {
            path: Some(path),
            // A LUKS image is a raw volume, encrypted (libvirt's spelling).
            format: Some(Format {
                format_type: if i.format == "luks" {
                    "raw".into()
                } else {
                    i.format.clone()
                },
            }),
            permissions: Some(Permissions {
                mode: Some(format!("{:04o}", v.perms.0)),
                owner: Some(v.perms.1.to_string()),
                group: Some(v.perms.2.to_string()),
                label: None,
            }),
            compat: i.compat.clone(),
            cluster_size: i.cluster_size.map(|c| Size {
                unit: Some("B".into()),
                value: c,
            }),
            nocow: false,
            features: (i.format == "qcow2").then_some(VolFeatures {
                lazy_refcounts: i.lazy_refcounts,
                extended_l2: false,
            }),
            encryption: i.encryption.as_ref().map(|f| Encryption {
                format: f.clone(),
                secret: Vec::new(),
            }),
        }),
        backing_store: i.backing.as_ref().map(|b| BackingStore {
            path: Some(b.path.clone()),
            format: Some(Format {
                format_type: b.format.clone().unwrap_or_else(|| "raw".into()),
            }),
            permissions: None,
        }),
    }
}
