//! Domain snapshots (`virsh snapshot-*`): internal snapshots kept in the disks' qcow2
//! images — with the memory of a running guest (QEMU's snapshot jobs, run by the VM's
//! shim), or of the disks of a shut-off domain (`qemu-img snapshot`) — and their metadata:
//! the tree of snapshots of each domain, which one is current, and the definition each was
//! taken of. The metadata lives in `<config>/snapshot/<domain uuid>/NAME.xml` (libvirt's
//! `<domainsnapshot>` XML, written atomically) and `current` (the current one's name).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use vireo_driver::events::LifecycleEvent;
use vireo_driver::{store, DriverError, Result};
use vireo_proto::remote::snapshot_flags::*;
use vireo_proto::remote::{event, procs, state, Domain as Handle, DomainFlagsArgs, Uuid};
use vireo_proto::vireo::{procs as vprocs, snapshot_op, ShimSnapshotArgs};
use vireo_proto::vireo::{VIREO_PROGRAM, VIREO_VERSION};
use vireo_xml::{
    format_uuid, DiskDevice, DiskType, Domain, DomainSnapshot, SnapshotDisk, SnapshotDisks,
    SnapshotLocation, SnapshotMemory, SnapshotParent,
};

use crate::driver::{check_flags, no_domain_uuid, QemuDriver};
use crate::hotplug::shim_error;
use crate::lifecycle::{START_FROM_SNAPSHOT, START_PAUSED};

/// How long a shim may take to end once its VM was destroyed for a revert.
const SHIM_EXIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The snapshots of every domain that has been asked about, loaded from disk on first use.
#[derive(Default)]
pub struct Store {
    doms: Mutex<HashMap<Uuid, Snaps>>,
}

/// One domain's snapshots, oldest first (a parent is always before its children), and the
/// current one.
#[derive(Default, Clone)]
struct Snaps {
    list: Vec<DomainSnapshot>,
    current: Option<String>,
}

impl Snaps {
    fn get(&self, name: &str) -> Option<&DomainSnapshot> {
        self.list.iter().find(|s| s.name() == name)
    }

    fn children(&self, name: &str) -> Vec<&DomainSnapshot> {
        self.list
            .iter()
            .filter(|s| s.parent() == Some(name))
            .collect()
    }

    /// Every descendant of `name`, parents before their children.
    fn descendants(&self, name: &str) -> Vec<&DomainSnapshot> {
        let mut out: Vec<&DomainSnapshot> = Vec::new();
        let mut frontier = vec![name.to_string()];
        while let Some(n) = frontier.pop() {
            for c in self.children(&n) {
                frontier.push(c.name().to_string());
                out.push(c);
            }
        }
        out
    }
}

/// The snapshot was taken of a running or paused guest (it holds its memory).
fn has_memory(s: &DomainSnapshot) -> bool {
    matches!(s.head.state.as_deref(), Some("running" | "paused"))
}

/// Some disk or the memory of the snapshot is kept outside the images.
fn is_external(s: &DomainSnapshot) -> bool {
    let ext = |l: Option<SnapshotLocation>| {
        matches!(
            l,
            Some(SnapshotLocation::External | SnapshotLocation::Manual)
        )
    };
    s.head.memory.as_ref().is_some_and(|m| ext(m.snapshot))
        || s.head
            .disks
            .iter()
            .flat_map(|d| &d.disk)
            .any(|d| ext(d.snapshot))
}

/// The file an external memory snapshot goes into (None: the memory is not saved
/// outside the images); a missing, relative or existing file is refused.
fn memory_file(snap: &DomainSnapshot, flags: u32) -> Result<Option<String>> {
    let Some(m) = &snap.head.memory else {
        return Ok(None);
    };
    // A file without a location is an external memory snapshot, as libvirt reads it.
    let location = m
        .snapshot
        .or(m.file.is_some().then_some(SnapshotLocation::External));
    match location {
        Some(SnapshotLocation::Manual) => Err(DriverError::ConfigUnsupported(
            "manual memory snapshots are not supported by Vireo yet".into(),
        )),
        Some(SnapshotLocation::External) => {
            if flags & CREATE_DISK_ONLY != 0 {
                return Err(DriverError::ConfigUnsupported(
                    "memory state cannot be saved with offline or disk-only snapshot".into(),
                ));
            }
            let Some(f) = m.file.clone() else {
                return Err(DriverError::InvalidArg(
                    "an external memory snapshot needs a file (<memory file=...>)".into(),
                ));
            };
            if !f.starts_with('/') {
                return Err(DriverError::InvalidArg(format!(
                    "the memory snapshot file '{f}' is not an absolute path"
                )));
            }
            if std::path::Path::new(&f).exists() {
                return Err(DriverError::OperationInvalid(format!(
                    "external snapshot file for memory already exists: {f}"
                )));
            }
            Ok(Some(f))
        }
        _ => Ok(None),
    }
}

/// The targets of the disks whose images hold the snapshot.
fn internal_targets(s: &DomainSnapshot) -> Vec<String> {
    s.head
        .disks
        .iter()
        .flat_map(|d| &d.disk)
        .filter(|d| d.snapshot == Some(SnapshotLocation::Internal))
        .map(|d| d.name.clone())
        .collect()
}

/// Whether snapshot `s` passes the filter groups of `flags` (each group: none set lets
/// all through, else any of those set must hold). `children` says whether it has any.
fn passes(s: &DomainSnapshot, has_children: bool, flags: u32) -> bool {
    let group = |bits: &[(u32, bool)]| {
        let set: Vec<_> = bits.iter().filter(|(b, _)| flags & b != 0).collect();
        set.is_empty() || set.iter().any(|(_, holds)| *holds)
    };
    let st = s.head.state.as_deref().unwrap_or("");
    group(&[(LIST_LEAVES, !has_children), (LIST_NO_LEAVES, has_children)])
        // Every snapshot here has metadata.
        && group(&[(LIST_METADATA, true), (LIST_NO_METADATA, false)])
        && group(&[
            (LIST_INACTIVE, st == "shutoff"),
            (LIST_ACTIVE, st != "shutoff" && st != "disk-snapshot"),
            (LIST_DISK_ONLY, st == "disk-snapshot"),
        ])
        && group(&[
            (LIST_INTERNAL, !is_external(s)),
            (LIST_EXTERNAL, is_external(s)),
        ])
}

fn no_snapshot(name: &str) -> DriverError {
    DriverError::NoSnapshot(format!("no domain snapshot with matching name '{name}'"))
}

/// `qemu-img snapshot -OP NAME` on the qcow2 image at `path`, named with its format so
/// that nothing is probed.
async fn img_snapshot(op: &str, name: &str, path: &str) -> Result<()> {
    let spec = format!(
        "driver=qcow2,file.driver=file,file.filename={}",
        path.replace(',', ",,")
    );
    qemu_img(&["snapshot", "--image-opts", op, name, &spec]).await
}

/// Runs `qemu-img ARGS`; its complaint becomes the error.
pub(crate) async fn qemu_img(args: &[&str]) -> Result<()> {
    let out = tokio::process::Command::new("qemu-img")
        .args(args)
        .output()
        .await
        .map_err(|e| DriverError::OperationFailed(format!("cannot run qemu-img: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(DriverError::OperationFailed(format!(
        "qemu-img {}: {}",
        args.first().copied().unwrap_or_default(),
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

/// The `<disks>` a snapshot definition names; each must be one of the domain's.
fn asked_disks<'a>(
    def: &Domain,
    asked: Option<&'a SnapshotDisks>,
) -> Result<Vec<&'a SnapshotDisk>> {
    let asked: Vec<&SnapshotDisk> = asked.iter().flat_map(|d| &d.disk).collect();
    for a in &asked {
        if !def.devices.disks.iter().any(|d| d.target.dev == a.name) {
            return Err(DriverError::InvalidArg(format!(
                "no disk named '{}' in the domain",
                a.name
            )));
        }
    }
    Ok(asked)
}

/// Which disks of `def` (volumes resolved) an internal snapshot covers, as `<disks>`
/// records in the domain's order: writable qcow2 images are in it unless `asked` says
/// `no`; read-only disks and cdroms never are. Returns the records and the image paths
/// of the disks in it.
fn plan_disks(def: &Domain, asked: Option<&SnapshotDisks>) -> Result<(SnapshotDisks, Vec<String>)> {
    let asked = asked_disks(def, asked)?;
    let mut out = SnapshotDisks::default();
    let mut paths = Vec::new();
    for d in &def.devices.disks {
        let name = &d.target.dev;
        let want = asked
            .iter()
            .find(|a| a.name == *name)
            .and_then(|a| a.snapshot);
        let writable = !d.readonly && !matches!(d.device, DiskDevice::Cdrom | DiskDevice::Floppy);
        let loc = match want {
            Some(l @ (SnapshotLocation::External | SnapshotLocation::Manual)) => {
                return Err(DriverError::ConfigUnsupported(format!(
                    "disk '{name}': {l} snapshots are not supported by Vireo yet"
                )))
            }
            Some(SnapshotLocation::Internal) if !writable => {
                return Err(DriverError::ConfigUnsupported(format!(
                    "disk '{name}' is read-only: it has no internal snapshot"
                )))
            }
            Some(l) => l,
            None if writable => SnapshotLocation::Internal,
            None => SnapshotLocation::No,
        };
        if loc == SnapshotLocation::Internal {
            let fmt = d
                .driver
                .as_ref()
                .and_then(|x| x.format.as_deref())
                .unwrap_or("raw");
            let path = d.source.as_ref().and_then(|s| s.file.clone());
            let path = match (d.disk_type, path) {
                (DiskType::File, Some(p)) if fmt == "qcow2" => p,
                _ => {
                    return Err(DriverError::ConfigUnsupported(format!(
                        "internal snapshot for disk {name} unsupported for storage type {fmt}"
                    )))
                }
            };
            if d.encryption.is_some() {
                return Err(DriverError::ConfigUnsupported(format!(
                    "disk '{name}': internal snapshots of encrypted disks are not supported by \
                     Vireo yet"
                )));
            }
            paths.push(path);
        }
        out.disk.push(SnapshotDisk {
            name: name.clone(),
            snapshot: Some(loc),
            disk_type: None,
            driver: None,
            source: None,
        });
    }
    Ok((out, paths))
}

/// One disk of an external snapshot: its image and the overlay that goes on top.
struct Overlay {
    target: String,
    base: String,
    base_format: String,
    file: String,
}

/// libvirt's name for an overlay: the image's name with its extension replaced by the
/// snapshot's name (`/i/vm.qcow2` → `/i/vm.s1`), or with `.s1` added.
fn overlay_name(base: &str, snap: &str) -> String {
    let (dir, file) = base.rsplit_once('/').unwrap_or(("", base));
    let stem = file.rsplit_once('.').map_or(file, |(s, _)| s);
    if dir.is_empty() && !base.starts_with('/') {
        format!("{stem}.{snap}")
    } else {
        format!("{dir}/{stem}.{snap}")
    }
}

/// Which disks of `def` (volumes resolved) an external snapshot covers: writable disks
/// unless `asked` says otherwise; each with its overlay (the one asked for, or libvirt's
/// default name), which must not exist yet unless `reuse`.
fn plan_external(
    def: &Domain,
    asked: Option<&SnapshotDisks>,
    snap: &str,
    reuse: bool,
) -> Result<(SnapshotDisks, Vec<Overlay>)> {
    let asked = asked_disks(def, asked)?;
    let mut out = SnapshotDisks::default();
    let mut overlays: Vec<Overlay> = Vec::new();
    for d in &def.devices.disks {
        let name = &d.target.dev;
        let want = asked.iter().find(|a| a.name == *name);
        let writable = !d.readonly && !matches!(d.device, DiskDevice::Cdrom | DiskDevice::Floppy);
        let loc = match want.and_then(|a| a.snapshot) {
            Some(l) => l,
            None if writable => SnapshotLocation::External,
            None => SnapshotLocation::No,
        };
        match loc {
            SnapshotLocation::No => {
                out.disk.push(SnapshotDisk {
                    name: name.clone(),
                    snapshot: Some(loc),
                    disk_type: None,
                    driver: None,
                    source: None,
                });
                continue;
            }
            SnapshotLocation::Internal => {
                return Err(DriverError::ConfigUnsupported(
                    "mixing internal and external targets for a snapshot is not supported".into(),
                ))
            }
            SnapshotLocation::Manual => {
                return Err(DriverError::ConfigUnsupported(format!(
                    "disk '{name}': manual snapshots are not supported by Vireo yet"
                )))
            }
            SnapshotLocation::External => {}
        }
        if !writable {
            return Err(DriverError::ConfigUnsupported(format!(
                "disk '{name}' is read-only: it has no external snapshot"
            )));
        }
        let base = match (d.disk_type, d.source.as_ref().and_then(|s| s.file.clone())) {
            (DiskType::File, Some(p)) => p,
            _ => {
                return Err(DriverError::ConfigUnsupported(format!(
                    "external snapshot of disk '{name}': only file disks are supported by Vireo \
                     yet"
                )))
            }
        };
        if d.encryption.is_some() {
            return Err(DriverError::ConfigUnsupported(format!(
                "disk '{name}': external snapshots of encrypted disks are not supported by Vireo \
                 yet"
            )));
        }
        if let Some(f) = want
            .and_then(|a| a.driver.as_deref())
            .filter(|f| *f != "qcow2")
        {
            return Err(DriverError::ConfigUnsupported(format!(
                "disk '{name}': external snapshot format '{f}' is not supported (qcow2)"
            )));
        }
        let file = want
            .and_then(|a| a.source.as_ref())
            .and_then(|s| s.file.clone())
            .unwrap_or_else(|| overlay_name(&base, snap));
        if !file.starts_with('/') {
            return Err(DriverError::InvalidArg(format!(
                "disk '{name}': the overlay path '{file}' is not absolute"
            )));
        }
        let exists = std::path::Path::new(&file).exists();
        if exists && !reuse {
            return Err(DriverError::OperationInvalid(format!(
                "external snapshot file for disk {name} already exists and is not a block \
                 device: {file}"
            )));
        }
        if !exists && reuse {
            return Err(DriverError::InvalidArg(format!(
                "disk '{name}': the overlay {file} to reuse does not exist"
            )));
        }
        if overlays.iter().any(|o| o.file == file) || file == base {
            return Err(DriverError::InvalidArg(format!(
                "disk '{name}': overlay {file} is already used"
            )));
        }
        out.disk.push(SnapshotDisk {
            name: name.clone(),
            snapshot: Some(SnapshotLocation::External),
            disk_type: Some("file".into()),
            driver: Some("qcow2".into()),
            source: Some(vireo_xml::SnapshotSource {
                file: Some(file.clone()),
                dev: None,
            }),
        });
        overlays.push(Overlay {
            target: name.clone(),
            base,
            base_format: d
                .driver
                .as_ref()
                .and_then(|x| x.format.clone())
                .unwrap_or_else(|| "raw".into()),
            file,
        });
    }
    if overlays.is_empty() {
        return Err(DriverError::ConfigUnsupported(
            "the snapshot covers no disk".into(),
        ));
    }
    Ok((out, overlays))
}

/// The guest-visible size of an image, in bytes (read while QEMU may hold it).
/// A new qcow2 image `file` over `base` (of format `fmt`), `size` bytes (None: the base's).
pub(crate) async fn make_overlay(
    file: &str,
    base: &str,
    fmt: &str,
    size: Option<u64>,
) -> Result<()> {
    let size = match size {
        Some(s) => s,
        None => virtual_size(base, fmt).await?,
    }
    .to_string();
    qemu_img(&[
        "create", "-q", "-f", "qcow2", "-F", fmt, "-b", base, "-u", file, &size,
    ])
    .await
}

/// The backing image `image` records (an absolute path, relative ones taken from the
/// image's directory) and its format (raw when none is recorded); None without one.
pub(crate) fn backing_of(image: &str) -> Option<(String, String)> {
    let b = vireo_storagefile::probe(std::path::Path::new(image))
        .ok()?
        .backing?;
    let path = std::path::Path::new(&b.path);
    let abs = if path.is_absolute() {
        b.path.clone()
    } else {
        std::path::Path::new(image)
            .parent()
            .unwrap_or(std::path::Path::new("/"))
            .join(path)
            .display()
            .to_string()
    };
    Some((abs, b.format.unwrap_or_else(|| "raw".into())))
}

pub(crate) async fn virtual_size(path: &str, format: &str) -> Result<u64> {
    let out = tokio::process::Command::new("qemu-img")
        .args(["info", "-U", "--output=json", "-f", format, path])
        .output()
        .await
        .map_err(|e| DriverError::OperationFailed(format!("cannot run qemu-img: {e}")))?;
    if !out.status.success() {
        return Err(DriverError::OperationFailed(format!(
            "qemu-img info {path}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v.get("virtual-size")?.as_u64())
        .ok_or_else(|| DriverError::OperationFailed(format!("qemu-img info {path}: no size")))
}

/// The image paths (volumes resolved) of the disks `targets` of `def`.
fn paths_of(def: &Domain, targets: &[String]) -> Vec<String> {
    def.devices
        .disks
        .iter()
        .filter(|d| targets.contains(&d.target.dev))
        .filter_map(|d| d.source.as_ref().and_then(|s| s.file.clone()))
        .collect()
}

impl QemuDriver {
    fn snap_dir(&self, uuid: &Uuid) -> PathBuf {
        self.cfg.config_dir.join("snapshot").join(format_uuid(uuid))
    }

    /// Runs `f` on the domain's snapshots (read from disk the first time).
    fn with_snaps<T>(&self, uuid: &Uuid, f: impl FnOnce(&mut Snaps) -> T) -> T {
        let mut doms = self
            .snapshots
            .doms
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let snaps = doms.entry(*uuid).or_insert_with(|| self.load_snaps(uuid));
        f(snaps)
    }

    fn load_snaps(&self, uuid: &Uuid) -> Snaps {
        let dir = self.snap_dir(uuid);
        let mut list: Vec<(i64, DomainSnapshot)> = Vec::new();
        for path in store::list_xml(&dir).unwrap_or_default() {
            let parsed = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|x| DomainSnapshot::parse(&x).map_err(|e| e.to_string()));
            match parsed {
                Ok(s) => list.push((s.head.creation_time.unwrap_or(0), s)),
                Err(e) => log::warn!("{}: {e}", path.display()),
            }
        }
        list.sort_by_key(|(t, _)| *t);
        let mut snaps = Snaps {
            list: Vec::new(),
            current: std::fs::read_to_string(dir.join("current"))
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        };
        // Parents before children, whatever the clocks said.
        let names: Vec<String> = list.iter().map(|(_, s)| s.name().to_string()).collect();
        let mut left: Vec<DomainSnapshot> = list.into_iter().map(|(_, s)| s).collect();
        while !left.is_empty() {
            let (ready, rest): (Vec<_>, Vec<_>) = left.into_iter().partition(|s| {
                s.parent()
                    .is_none_or(|p| snaps.get(p).is_some() || !names.iter().any(|n| n == p))
            });
            if ready.is_empty() {
                // A loop of parents (files edited by hand): kept as they are.
                snaps.list.extend(rest);
                break;
            }
            snaps.list.extend(ready);
            left = rest;
        }
        snaps
    }

    fn write_snap(&self, uuid: &Uuid, s: &DomainSnapshot) -> Result<()> {
        let dir = self.snap_dir(uuid);
        std::fs::create_dir_all(&dir)
            .map_err(|e| DriverError::io(format!("cannot create {}", dir.display()), e))?;
        store::write_atomic(
            &dir.join(format!("{}.xml", s.name())),
            s.format().as_bytes(),
        )
    }

    fn write_current(&self, uuid: &Uuid, name: Option<&str>) -> Result<()> {
        let dir = self.snap_dir(uuid);
        std::fs::create_dir_all(&dir)
            .map_err(|e| DriverError::io(format!("cannot create {}", dir.display()), e))?;
        store::write_atomic(&dir.join("current"), name.unwrap_or("").as_bytes())
    }

    /// How many snapshots the domain has (for the HAS_SNAPSHOT list filter and undefine).
    pub(crate) fn snapshot_count(&self, uuid: &Uuid) -> usize {
        self.with_snaps(uuid, |s| s.list.len())
    }

    /// Forgets every snapshot of a domain (undefine with SNAPSHOTS_METADATA).
    pub(crate) fn drop_snapshot_metadata(&self, uuid: &Uuid) -> Result<()> {
        let dir = self.snap_dir(uuid);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| DriverError::io(format!("cannot remove {}", dir.display()), e))?;
        }
        self.snapshots
            .doms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uuid);
        Ok(())
    }

    /// Checks the domain exists and runs `f` on its snapshots.
    fn snaps_of<T>(&self, h: &Handle, f: impl FnOnce(&mut Snaps) -> Result<T>) -> Result<T> {
        self.with(h, |_| ())?;
        self.with_snaps(&h.uuid, f)
    }

    /// Checks snapshot `name` exists and runs `f` on it and its siblings.
    fn snap<T>(
        &self,
        h: &Handle,
        name: &str,
        f: impl FnOnce(&Snaps, &DomainSnapshot) -> T,
    ) -> Result<T> {
        self.snaps_of(h, |s| {
            let me = s.get(name).ok_or_else(|| no_snapshot(name))?;
            Ok(f(s, me))
        })
    }

    /// `virDomainSnapshotCreateXML`.
    pub async fn snapshot_create(
        self: &Arc<Self>,
        h: &Handle,
        xml: &str,
        flags: u32,
    ) -> Result<String> {
        check_flags(
            flags,
            CREATE_REDEFINE
                | CREATE_CURRENT
                | CREATE_NO_METADATA
                | CREATE_HALT
                | CREATE_DISK_ONLY
                | CREATE_REUSE_EXT
                | CREATE_QUIESCE
                | CREATE_ATOMIC
                | CREATE_LIVE
                | CREATE_VALIDATE,
        )?;
        if flags & CREATE_VALIDATE != 0 {
            let owned = xml.to_string();
            tokio::task::spawn_blocking(move || crate::validate::schema(&owned, "domainsnapshot"))
                .await
                .map_err(|e| DriverError::Internal(format!("schema validation: {e}")))??;
        }
        let mut snap = DomainSnapshot::parse_kept(xml).map_err(crate::driver::xml_error)?;
        if flags & CREATE_REDEFINE != 0 {
            return self.snapshot_redefine(h, snap, flags);
        }
        if flags & CREATE_CURRENT != 0 {
            return Err(DriverError::InvalidArg(
                "current flag is only valid with redefine".into(),
            ));
        }
        if flags & CREATE_QUIESCE != 0 && flags & CREATE_DISK_ONLY == 0 {
            return Err(DriverError::OperationInvalid(
                "quiesce requires disk-only".into(),
            ));
        }
        let memory_file = memory_file(&snap, flags)?;
        if flags & CREATE_LIVE != 0 && memory_file.is_none() {
            return Err(DriverError::OperationUnsupported(
                "live snapshot creation is supported only during full system snapshots".into(),
            ));
        }
        let external = flags & CREATE_DISK_ONLY != 0
            || memory_file.is_some()
            || snap
                .head
                .disks
                .iter()
                .flat_map(|d| &d.disk)
                .any(|d| d.snapshot == Some(SnapshotLocation::External));
        if !external && flags & CREATE_REUSE_EXT != 0 {
            return Err(DriverError::InvalidArg(
                "reuse-external applies to external snapshots only".into(),
            ));
        }
        let (active, persistent_def) = self.with(h, |o| (o.active(), o.def.clone()))?;
        let name = match snap.head.name.clone() {
            Some(n) => n,
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
                .to_string(),
        };
        if self.with_snaps(&h.uuid, |s| s.get(&name).is_some()) {
            return Err(DriverError::OperationInvalid(format!(
                "domain snapshot '{name}' already exists"
            )));
        }
        let memory = snap.head.memory.as_ref().and_then(|m| m.snapshot);
        let def = if active {
            self.live_def(h).await?
        } else {
            persistent_def
        };
        let resolved = crate::peers::resolve(&def, self.peers.get()).await?;
        snap.head.name = Some(name.clone());
        if external {
            return self
                .snapshot_external(h, snap, def, &resolved, active, memory_file, flags)
                .await;
        }
        let (disks, paths) = plan_disks(&resolved, snap.head.disks.as_ref())?;
        let state_name;
        if active {
            match memory {
                None | Some(SnapshotLocation::Internal) => {}
                Some(l) => {
                    return Err(DriverError::ConfigUnsupported(format!(
                        "memory snapshot '{l}' of a running domain is not supported by Vireo \
                         yet (internal only)"
                    )))
                }
            }
            let targets: Vec<String> = disks
                .disk
                .iter()
                .filter(|d| d.snapshot == Some(SnapshotLocation::Internal))
                .map(|d| d.name.clone())
                .collect();
            if targets.is_empty() {
                return Err(DriverError::ConfigUnsupported(
                    "an internal snapshot of a running domain needs a writable qcow2 disk to \
                     hold its memory"
                        .into(),
                ));
            }
            let st = self.state(h)?.0;
            state_name = if st == state::PAUSED {
                "paused"
            } else {
                "running"
            };
            self.shim_snapshot(h, snapshot_op::SAVE, &name, targets, false, Vec::new())
                .await?;
            snap.head.memory = Some(SnapshotMemory {
                snapshot: Some(SnapshotLocation::Internal),
                file: None,
            });
        } else {
            if matches!(
                memory,
                Some(SnapshotLocation::Internal | SnapshotLocation::External)
            ) {
                return Err(DriverError::ConfigUnsupported(
                    "memory state cannot be saved with offline or disk-only snapshot".into(),
                ));
            }
            if paths.is_empty() {
                return Err(DriverError::ConfigUnsupported(
                    "the domain has no writable qcow2 disk to take an internal snapshot of".into(),
                ));
            }
            for p in &paths {
                img_snapshot("-c", &name, p).await?;
            }
            state_name = "shutoff";
            snap.head.memory = Some(SnapshotMemory {
                snapshot: Some(SnapshotLocation::No),
                file: None,
            });
        }
        snap.head.state = Some(state_name.into());
        snap.head.disks = Some(disks);
        snap.domain = Some(def);
        self.record_new(h, snap, flags)?;
        if flags & CREATE_HALT != 0 && active {
            self.stop_for_snapshot(h).await?;
        }
        Ok(name)
    }

    /// Keeps a snapshot just taken (unless NO_METADATA): its time, its parent (the current
    /// snapshot), and it becomes the current one.
    fn record_new(&self, h: &Handle, mut snap: DomainSnapshot, flags: u32) -> Result<()> {
        snap.head.creation_time = Some(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                .unwrap_or(0),
        );
        if flags & CREATE_NO_METADATA != 0 {
            return Ok(());
        }
        let name = snap.name().to_string();
        let parent = self.with_snaps(&h.uuid, |s| s.current.clone());
        snap.head.parent = parent.map(|name| SnapshotParent { name });
        self.write_snap(&h.uuid, &snap)?;
        self.write_current(&h.uuid, Some(&name))?;
        self.with_snaps(&h.uuid, |s| {
            s.list.push(snap);
            s.current = Some(name);
        });
        Ok(())
    }

    /// An external snapshot: each disk in it goes on in a new qcow2 overlay backed by its
    /// image (which then stays as it is: that is the snapshot), and with `memory_file` the
    /// guest's memory state goes into that file (a save image) at the same instant. The
    /// definition follows: the disks are the overlays from now on.
    #[allow(clippy::too_many_arguments)]
    async fn snapshot_external(
        self: &Arc<Self>,
        h: &Handle,
        mut snap: DomainSnapshot,
        def: Domain,
        resolved: &Domain,
        active: bool,
        memory_file: Option<String>,
        flags: u32,
    ) -> Result<String> {
        if memory_file.is_some() && !active {
            return Err(DriverError::ConfigUnsupported(
                "memory state cannot be saved with offline or disk-only snapshot".into(),
            ));
        }
        let name = snap.name().to_string();
        let reuse = flags & CREATE_REUSE_EXT != 0;
        let (disks, overlays) = plan_external(resolved, snap.head.disks.as_ref(), &name, reuse)?;
        let mut made: Vec<String> = Vec::new();
        // The guest's state when the snapshot was taken (running or paused).
        let was = if self.state(h)?.0 == state::PAUSED {
            "paused"
        } else {
            "running"
        };
        let r = async {
            for o in overlays.iter().filter(|_| !reuse) {
                make_overlay(&o.file, &o.base, &o.base_format, None).await?;
                self.give_to_qemu(&h.uuid, &o.file);
                made.push(o.file.clone());
            }
            if let Some(mem) = &memory_file {
                let targets = overlays.iter().map(|o| o.target.clone()).collect();
                let files = overlays.iter().map(|o| o.file.clone()).collect();
                let image = crate::save::NewImage::create(
                    std::path::Path::new(mem),
                    &def.format(),
                    was == "running",
                )?;
                self.shim_conn(h)?
                    .call_sending_fds::<_, ()>(
                        VIREO_PROGRAM,
                        VIREO_VERSION,
                        vprocs::SHIM_SNAPSHOT,
                        &ShimSnapshotArgs {
                            op: snapshot_op::EXTERNAL_MEMORY,
                            tag: name.clone(),
                            disks: vireo_xdr::Array(targets),
                            run: i32::from(flags & CREATE_LIVE != 0),
                            files: vireo_xdr::Array(files),
                        },
                        vec![image.for_qemu()?],
                    )
                    .await
                    .map_err(shim_error)?;
                image.finish(false)?;
            } else if active {
                let targets = overlays.iter().map(|o| o.target.clone()).collect();
                let files = overlays.iter().map(|o| o.file.clone()).collect();
                // QUIESCE: the guest's filesystems are frozen by its agent meanwhile.
                let quiesce = flags & CREATE_QUIESCE != 0;
                if quiesce {
                    self.guest_freeze(h, procs::DOMAIN_FSFREEZE).await?;
                }
                let r = self
                    .shim_snapshot(h, snapshot_op::EXTERNAL, &name, targets, false, files)
                    .await;
                if quiesce {
                    if let Err(e) = self.guest_freeze(h, procs::DOMAIN_FSTHAW).await {
                        log::warn!("{}: the guest's filesystems stay frozen: {e}", h.name);
                    }
                }
                r?;
            } else if flags & CREATE_QUIESCE != 0 {
                return Err(DriverError::OperationInvalid(
                    "quiesce needs a running domain (its guest agent)".into(),
                ));
            }
            Ok(())
        }
        .await;
        if let Err(e) = r {
            for f in &made {
                let _ = std::fs::remove_file(f);
            }
            return Err(e);
        }
        // The definition's disks are the overlays now.
        let persistent = {
            let mut reg = self.write();
            let o = reg
                .by_uuid
                .get_mut(&h.uuid)
                .ok_or_else(|| no_domain_uuid(&h.uuid, &h.name))?;
            for ov in &overlays {
                if let Some(d) = o
                    .def
                    .devices
                    .disks
                    .iter_mut()
                    .find(|d| d.target.dev == ov.target)
                {
                    d.disk_type = DiskType::File;
                    d.source = Some(vireo_xml::DiskSource {
                        file: Some(ov.file.clone()),
                        ..Default::default()
                    });
                    d.driver.get_or_insert_with(Default::default).format = Some("qcow2".into());
                }
            }
            o.persistent.then(|| o.def.clone())
        };
        if let Some(p) = persistent {
            self.defs.put(&p.name, p.format().as_bytes())?;
        }
        snap.head.state = Some(
            match (active, &memory_file) {
                (true, Some(_)) => was,
                (true, None) => "disk-snapshot",
                (false, _) => "shutoff",
            }
            .into(),
        );
        snap.head.memory = Some(SnapshotMemory {
            snapshot: Some(if memory_file.is_some() {
                SnapshotLocation::External
            } else {
                SnapshotLocation::No
            }),
            file: memory_file,
        });
        snap.head.disks = Some(disks);
        snap.domain = Some(def);
        self.record_new(h, snap, flags)?;
        if flags & CREATE_HALT != 0 && active {
            self.stop_for_snapshot(h).await?;
        }
        Ok(name)
    }

    /// REDEFINE: metadata given back (as `snapshot-dumpxml` wrote it), images untouched.
    fn snapshot_redefine(
        &self,
        h: &Handle,
        mut snap: DomainSnapshot,
        flags: u32,
    ) -> Result<String> {
        if flags & !(CREATE_REDEFINE | CREATE_CURRENT | CREATE_VALIDATE) != 0 {
            return Err(DriverError::InvalidArg(format!(
                "unsupported flags (0x{:x}) with redefine",
                flags & !(CREATE_REDEFINE | CREATE_CURRENT | CREATE_VALIDATE)
            )));
        }
        let Some(name) = snap.head.name.clone() else {
            return Err(DriverError::InvalidArg(
                "a redefined snapshot needs a name".into(),
            ));
        };
        if snap.head.state.is_none() {
            return Err(DriverError::InvalidArg(format!(
                "snapshot '{name}': a redefined snapshot needs its state"
            )));
        }
        let uuid = self.with(h, |o| o.uuid)?;
        if let Some(d) = &snap.domain {
            if d.uuid.is_some_and(|u| u != uuid) {
                return Err(DriverError::InvalidArg(format!(
                    "snapshot '{name}' is of another domain (uuid {})",
                    format_uuid(&d.uuid.unwrap_or_default())
                )));
            }
        }
        if snap.head.creation_time.is_none() {
            snap.head.creation_time = Some(0);
        }
        self.snaps_of(h, |s| {
            if let Some(p) = snap.parent() {
                if p == name || s.get(p).is_none() {
                    return Err(DriverError::InvalidArg(format!(
                        "parent '{p}' of snapshot '{name}' does not exist"
                    )));
                }
                if s.descendants(&name).iter().any(|d| d.name() == p) {
                    return Err(DriverError::InvalidArg(format!(
                        "parent '{p}' would make snapshot '{name}' its own ancestor"
                    )));
                }
            }
            Ok(())
        })?;
        self.write_snap(&uuid, &snap)?;
        let current = flags & CREATE_CURRENT != 0;
        if current {
            self.write_current(&uuid, Some(&name))?;
        }
        self.with_snaps(&uuid, |s| {
            match s.list.iter_mut().find(|x| x.name() == name) {
                Some(old) => *old = snap,
                None => s.list.push(snap),
            }
            if current {
                s.current = Some(name.clone());
            }
        });
        Ok(name)
    }

    /// Runs a snapshot job in the VM's shim.
    async fn shim_snapshot(
        &self,
        h: &Handle,
        op: i32,
        tag: &str,
        disks: Vec<String>,
        run: bool,
        files: Vec<String>,
    ) -> Result<()> {
        let conn = self.shim_conn(h)?;
        conn.call_fds::<_, ()>(
            VIREO_PROGRAM,
            VIREO_VERSION,
            vprocs::SHIM_SNAPSHOT,
            &ShimSnapshotArgs {
                op,
                tag: tag.to_string(),
                disks: vireo_xdr::Array(disks),
                run: i32::from(run),
                files: vireo_xdr::Array(files),
            },
        )
        .await
        .map(|_| ())
        .map_err(shim_error)
    }

    /// Freezes (FSFREEZE) or thaws (FSTHAW) every filesystem of the guest through its
    /// agent, in the VM's shim.
    async fn guest_freeze(&self, h: &Handle, proc_: i32) -> Result<()> {
        let payload = vireo_xdr::to_bytes(&vireo_proto::remote::DomainFsfreezeArgs {
            dom: h.clone(),
            mountpoints: vireo_xdr::Array(Vec::new()),
            flags: 0,
        });
        self.forward(h, proc_, &payload)
            .await
            .map(|_| ())
            .map_err(|e| DriverError::Peer(Box::new(e)))
    }

    /// Destroys the running VM and waits until it is shut off.
    async fn stop_for_snapshot(&self, h: &Handle) -> Result<()> {
        let conn = self.shim_conn(h)?;
        if let Some(o) = self.write().by_uuid.get_mut(&h.uuid) {
            o.stopping_for_snapshot = true;
        }
        let args = DomainFlagsArgs {
            dom: h.clone(),
            flags: 0,
        };
        let payload = vireo_xdr::to_bytes(&args);
        if let Err(e) = self.forward(h, procs::DOMAIN_DESTROY_FLAGS, &payload).await {
            if let Some(o) = self.write().by_uuid.get_mut(&h.uuid) {
                o.stopping_for_snapshot = false;
            }
            return Err(DriverError::Peer(Box::new(e)));
        }
        if tokio::time::timeout(SHIM_EXIT, conn.closed())
            .await
            .is_err()
        {
            return Err(DriverError::OperationFailed(format!(
                "the VM of '{}' did not stop",
                h.name
            )));
        }
        Ok(())
    }

    /// `virDomainSnapshotGetXMLDesc`.
    pub fn snapshot_xml(&self, h: &Handle, name: &str, flags: u32) -> Result<String> {
        check_flags(flags, XML_SECURE)?;
        self.snap(h, name, |_, s| {
            let mut s = s.clone();
            if flags & XML_SECURE == 0 {
                if let Some(d) = &mut s.domain {
                    for g in &mut d.devices.graphics {
                        g.passwd = None;
                    }
                }
            }
            s.format()
        })
    }

    /// `virDomainListAllSnapshots` (and the names of SNAPSHOT_NUM / LIST_NAMES).
    pub fn snapshot_list(&self, h: &Handle, flags: u32) -> Result<Vec<String>> {
        check_flags(flags, 0x7ff)?;
        self.snaps_of(h, |s| {
            Ok(s.list
                .iter()
                .filter(|x| flags & LIST_ROOTS == 0 || x.parent().is_none())
                .filter(|x| passes(x, !s.children(x.name()).is_empty(), flags))
                .map(|x| x.name().to_string())
                .collect())
        })
    }

    /// `virDomainSnapshotListAllChildren` (and NUM_CHILDREN / LIST_CHILDREN_NAMES).
    pub fn snapshot_children(&self, h: &Handle, name: &str, flags: u32) -> Result<Vec<String>> {
        check_flags(flags, 0x7ff)?;
        self.snap(h, name, |s, _| {
            let all = if flags & LIST_DESCENDANTS != 0 {
                s.descendants(name)
            } else {
                s.children(name)
            };
            all.into_iter()
                .filter(|x| passes(x, !s.children(x.name()).is_empty(), flags))
                .map(|x| x.name().to_string())
                .collect()
        })
    }

    /// `virDomainSnapshotLookupByName`.
    pub fn snapshot_lookup(&self, h: &Handle, name: &str, flags: u32) -> Result<String> {
        check_flags(flags, 0)?;
        self.snap(h, name, |_, s| s.name().to_string())
    }

    /// `virDomainSnapshotCurrent` (None: there is no current snapshot).
    pub fn snapshot_current(&self, h: &Handle, flags: u32) -> Result<Option<String>> {
        check_flags(flags, 0)?;
        self.snaps_of(h, |s| Ok(s.current.clone().filter(|c| s.get(c).is_some())))
    }

    /// `virDomainSnapshotGetParent`.
    pub fn snapshot_parent(&self, h: &Handle, name: &str, flags: u32) -> Result<String> {
        check_flags(flags, 0)?;
        self.snap(h, name, |_, s| s.parent().map(str::to_string))?
            .ok_or_else(|| {
                DriverError::NoSnapshot(format!("snapshot '{name}' does not have a parent"))
            })
    }

    /// `virDomainSnapshotIsCurrent`.
    pub fn snapshot_is_current(&self, h: &Handle, name: &str, flags: u32) -> Result<bool> {
        check_flags(flags, 0)?;
        self.snap(h, name, |s, _| s.current.as_deref() == Some(name))
    }

    /// `virDomainSnapshotHasMetadata`: every snapshot Vireo knows of has.
    pub fn snapshot_has_metadata(&self, h: &Handle, name: &str, flags: u32) -> Result<bool> {
        check_flags(flags, 0)?;
        self.snap(h, name, |_, _| true)
    }

    /// `virDomainRevertToSnapshot`: the disks (and the memory, for a snapshot of a running
    /// guest) go back to the snapshot; the guest runs, is paused or is shut off as it was
    /// then, unless RUNNING or PAUSED say otherwise.
    pub async fn snapshot_revert(
        self: &Arc<Self>,
        h: &Handle,
        name: &str,
        flags: u32,
    ) -> Result<()> {
        check_flags(flags, REVERT_RUNNING | REVERT_PAUSED | REVERT_FORCE)?;
        if flags & REVERT_RUNNING != 0 && flags & REVERT_PAUSED != 0 {
            return Err(DriverError::InvalidArg(
                "flags 'running' and 'paused' are mutually exclusive".into(),
            ));
        }
        let snap = self.snap(h, name, |_, s| s.clone())?;
        let Some(snap_def) = snap.domain.clone() else {
            return Err(DriverError::InvalidSnapshot(format!(
                "snapshot '{name}' lacks domain '{}' rollback info",
                h.name
            )));
        };
        let targets = internal_targets(&snap);
        let active = self.with(h, |o| o.active())?;
        if is_external(&snap) {
            // With memory: the guest's state comes back from its file, into the machine
            // it was taken of.
            let memory = snap
                .head
                .memory
                .as_ref()
                .filter(|m| m.snapshot == Some(SnapshotLocation::External))
                .and_then(|m| m.file.clone());
            let image = match &memory {
                Some(f) => Some(crate::save::open_image(std::path::Path::new(f))?.0),
                None if has_memory(&snap) => {
                    return Err(DriverError::InvalidSnapshot(format!(
                        "snapshot '{name}' has no memory file to revert to"
                    )))
                }
                None => None,
            };
            // The images the overlays were put on hold the snapshot: each disk goes on in
            // a new overlay on its image, so that they stay as they are. Only the disks
            // change: the rest of the definition is today's.
            let mut new_def = self.with(h, |o| o.def.clone())?;
            let mut run_def = snap_def.clone();
            if active {
                self.stop_for_snapshot(h).await?;
            }
            let resolved = crate::peers::resolve(&snap_def, self.peers.get()).await?;
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let ext: Vec<&SnapshotDisk> = snap
                .head
                .disks
                .iter()
                .flat_map(|d| &d.disk)
                .filter(|d| d.snapshot == Some(SnapshotLocation::External))
                .collect();
            let mut made = Vec::new();
            for e in ext {
                let (Some(src), Some(d)) = (
                    resolved
                        .devices
                        .disks
                        .iter()
                        .find(|d| d.target.dev == e.name),
                    new_def
                        .devices
                        .disks
                        .iter_mut()
                        .find(|d| d.target.dev == e.name),
                ) else {
                    continue;
                };
                let (Some(base), fmt) = (
                    src.source.as_ref().and_then(|s| s.file.clone()),
                    src.driver
                        .as_ref()
                        .and_then(|x| x.format.clone())
                        .unwrap_or_else(|| "raw".into()),
                ) else {
                    continue;
                };
                let file = overlay_name(&base, &format!("{name}-{stamp}"));
                let r = make_overlay(&file, &base, &fmt, None).await;
                if r.is_ok() {
                    self.give_to_qemu(&h.uuid, &file);
                }
                if let Err(err) = r {
                    for f in &made {
                        let _ = std::fs::remove_file(f);
                    }
                    return Err(err);
                }
                made.push(file.clone());
                let onto = |d: &mut vireo_xml::Disk| {
                    d.disk_type = DiskType::File;
                    d.source = Some(vireo_xml::DiskSource {
                        file: Some(file.clone()),
                        ..Default::default()
                    });
                    d.driver.get_or_insert_with(Default::default).format = Some("qcow2".into());
                };
                onto(d);
                if let Some(r) = run_def
                    .devices
                    .disks
                    .iter_mut()
                    .find(|d| d.target.dev == e.name)
                {
                    onto(r);
                }
            }
            match image {
                Some(image) => {
                    self.restore_definition(h, &new_def)?;
                    let run = flags & REVERT_RUNNING != 0
                        || (flags & REVERT_PAUSED == 0
                            && snap.head.state.as_deref() == Some("running"));
                    let start = START_FROM_SNAPSHOT | if run { 0 } else { START_PAUSED };
                    self.run_transient(self.prepare(&run_def.format())?, start, Some(image.into()))
                        .await?;
                }
                None => self.restore_and_start(h, &new_def, flags).await?,
            }
        } else if has_memory(&snap) {
            let run = flags & REVERT_RUNNING != 0
                || (flags & REVERT_PAUSED == 0 && snap.head.state.as_deref() == Some("running"));
            let same = active
                && self
                    .live_def(h)
                    .await
                    .is_ok_and(|live| live.format() == snap_def.format());
            if !same {
                // QEMU loads a snapshot only into the machine it was taken of: a new one.
                if active {
                    self.stop_for_snapshot(h).await?;
                }
                let def = self.prepare(&snap_def.format())?;
                self.run_transient(def, START_PAUSED, None).await?;
            }
            self.shim_snapshot(h, snapshot_op::LOAD, name, targets, run, Vec::new())
                .await?;
        } else {
            if active {
                self.stop_for_snapshot(h).await?;
            }
            let resolved = crate::peers::resolve(&snap_def, self.peers.get()).await?;
            for p in paths_of(&resolved, &targets) {
                img_snapshot("-a", name, &p).await?;
            }
            self.restore_and_start(h, &snap_def, flags).await?;
        }
        self.write_current(&h.uuid, Some(name))?;
        self.with_snaps(&h.uuid, |s| s.current = Some(name.to_string()));
        Ok(())
    }

    /// After a revert of its disks: the domain's definition becomes `def`, and it starts
    /// (paused with REVERT_PAUSED) when REVERT_RUNNING or REVERT_PAUSED asks.
    async fn restore_and_start(
        self: &Arc<Self>,
        h: &Handle,
        def: &Domain,
        flags: u32,
    ) -> Result<()> {
        self.restore_definition(h, def)?;
        if flags & (REVERT_RUNNING | REVERT_PAUSED) != 0 {
            let start = if flags & REVERT_PAUSED != 0 {
                START_PAUSED
            } else {
                0
            };
            self.run_transient(self.prepare(&def.format())?, start, None)
                .await?;
        }
        Ok(())
    }

    /// A persistent domain's definition becomes the one a shut-off snapshot was taken of.
    fn restore_definition(&self, h: &Handle, def: &Domain) -> Result<()> {
        let changed = self.with(h, |o| o.persistent && o.def.format() != def.format())?;
        if !changed {
            return Ok(());
        }
        let def = self.prepare(&def.format())?;
        self.defs.put(&def.name, def.format().as_bytes())?;
        let handle = {
            let mut reg = self.write();
            let o = reg
                .by_uuid
                .get_mut(&h.uuid)
                .ok_or_else(|| no_domain_uuid(&h.uuid, &h.name))?;
            o.def = def;
            o.handle()
        };
        self.events.publish(LifecycleEvent {
            dom: handle,
            event: event::DEFINED,
            detail: event::DEFINED_FROM_SNAPSHOT,
        });
        Ok(())
    }

    /// `virDomainSnapshotDelete`: the snapshot (and with CHILDREN its descendants, with
    /// CHILDREN_ONLY only those) leaves the images and the metadata (METADATA_ONLY: the
    /// metadata only). The children of a deleted snapshot move up to its parent.
    pub async fn snapshot_delete(
        self: &Arc<Self>,
        h: &Handle,
        name: &str,
        flags: u32,
    ) -> Result<()> {
        check_flags(
            flags,
            DELETE_CHILDREN | DELETE_METADATA_ONLY | DELETE_CHILDREN_ONLY,
        )?;
        if flags & DELETE_CHILDREN != 0 && flags & DELETE_CHILDREN_ONLY != 0 {
            return Err(DriverError::InvalidArg(
                "flags 'children' and 'children-only' are mutually exclusive".into(),
            ));
        }
        let (mut doomed, snaps) = self.snap(h, name, |s, me| {
            let mut v: Vec<DomainSnapshot> = if flags & DELETE_CHILDREN_ONLY != 0 {
                Vec::new()
            } else {
                vec![me.clone()]
            };
            if flags & (DELETE_CHILDREN | DELETE_CHILDREN_ONLY) != 0 {
                v.extend(s.descendants(name).into_iter().cloned());
            }
            (v, s.clone())
        })?;
        // Leaves first.
        doomed.reverse();
        if flags & DELETE_METADATA_ONLY == 0 {
            let (active, persistent) = self.with(h, |o| (o.active(), o.def.clone()))?;
            let live = if active {
                Some(self.live_def(h).await?)
            } else {
                None
            };
            for s in &doomed {
                // Its overlays go down into the images it kept.
                if is_external(s) {
                    self.delete_external(h, s).await?;
                    continue;
                }
                let targets = internal_targets(s);
                match &live {
                    Some(live) => {
                        let here: Vec<String> = targets
                            .into_iter()
                            .filter(|t| live.devices.disks.iter().any(|d| d.target.dev == *t))
                            .collect();
                        if !here.is_empty() {
                            self.shim_snapshot(
                                h,
                                snapshot_op::DELETE,
                                s.name(),
                                here,
                                false,
                                Vec::new(),
                            )
                            .await?;
                        }
                    }
                    None => {
                        let of = s.domain.clone().unwrap_or_else(|| persistent.clone());
                        let resolved = crate::peers::resolve(&of, self.peers.get()).await?;
                        for p in paths_of(&resolved, &targets) {
                            img_snapshot("-d", s.name(), &p).await?;
                        }
                    }
                }
            }
        }
        // The metadata: children of the deleted ones move up; the current one too.
        let gone: Vec<String> = doomed.iter().map(|s| s.name().to_string()).collect();
        let up = |mut p: Option<String>| {
            while let Some(n) = p.clone().filter(|n| gone.contains(n)) {
                p = snaps.get(&n).and_then(|s| s.parent().map(str::to_string));
            }
            p
        };
        let mut moved = Vec::new();
        for s in &snaps.list {
            if gone.iter().any(|g| g == s.name()) {
                continue;
            }
            let p = s.parent().map(str::to_string);
            let np = up(p.clone());
            if np != p {
                let mut s = s.clone();
                s.head.parent = np.map(|name| SnapshotParent { name });
                moved.push(s);
            }
        }
        for s in &moved {
            self.write_snap(&h.uuid, s)?;
        }
        let current = up(snaps.current.clone());
        if current != snaps.current {
            self.write_current(&h.uuid, current.as_deref())?;
        }
        let dir = self.snap_dir(&h.uuid);
        for g in &gone {
            store::remove(&dir.join(format!("{g}.xml")))?;
        }
        self.with_snaps(&h.uuid, |s| {
            s.list.retain(|x| !gone.iter().any(|g| g == x.name()));
            for m in moved {
                if let Some(x) = s.list.iter_mut().find(|x| x.name() == m.name()) {
                    *x = m;
                }
            }
            s.current = current;
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(name: &str, parent: Option<&str>, state: &str) -> DomainSnapshot {
        let mut s = DomainSnapshot::parse("<domainsnapshot/>").unwrap();
        s.head.name = Some(name.into());
        s.head.state = Some(state.into());
        s.head.parent = parent.map(|p| SnapshotParent { name: p.into() });
        s
    }

    #[test]
    fn tree_and_filters() {
        let s = Snaps {
            list: vec![
                snap("a", None, "running"),
                snap("b", Some("a"), "shutoff"),
                snap("c", Some("b"), "running"),
                snap("d", Some("a"), "paused"),
            ],
            current: Some("c".into()),
        };
        let names =
            |v: Vec<&DomainSnapshot>| v.iter().map(|x| x.name().to_string()).collect::<Vec<_>>();
        assert_eq!(names(s.children("a")), ["b", "d"]);
        let mut d = names(s.descendants("a"));
        d.sort();
        assert_eq!(d, ["b", "c", "d"]);
        let leaf = |x: &DomainSnapshot| s.children(x.name()).is_empty();
        let pick = |flags: u32| {
            s.list
                .iter()
                .filter(|x| passes(x, !leaf(x), flags))
                .map(|x| x.name().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(pick(0), ["a", "b", "c", "d"]);
        assert_eq!(pick(LIST_LEAVES), ["c", "d"]);
        assert_eq!(pick(LIST_NO_LEAVES), ["a", "b"]);
        assert_eq!(pick(LIST_INACTIVE), ["b"]);
        assert_eq!(pick(LIST_ACTIVE | LIST_LEAVES), ["c", "d"]);
        assert!(pick(LIST_NO_METADATA).is_empty());
        assert!(pick(LIST_EXTERNAL).is_empty());
    }

    #[test]
    fn plans_only_writable_qcow2_disks() {
        let def = Domain::parse(
            "<domain type='qemu'><name>v</name><memory>65536</memory><os><type>hvm</type></os>\
             <devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
             <source file='/i/a.qcow2'/><target dev='vda' bus='virtio'/></disk>\
             <disk type='file' device='cdrom'><source file='/i/c.iso'/>\
             <target dev='hdc' bus='ide'/><readonly/></disk></devices></domain>",
        )
        .unwrap();
        let (disks, paths) = plan_disks(&def, None).unwrap();
        assert_eq!(paths, ["/i/a.qcow2"]);
        assert_eq!(disks.disk[0].snapshot, Some(SnapshotLocation::Internal));
        assert_eq!(disks.disk[1].snapshot, Some(SnapshotLocation::No));
        let raw = Domain::parse(&def.format().replace("qcow2'/>", "raw'/>")).unwrap();
        let e = plan_disks(&raw, None).unwrap_err().to_string();
        assert!(
            e.contains("internal snapshot for disk vda unsupported for storage type raw"),
            "{e}"
        );
        let asked = DomainSnapshot::parse(
            "<domainsnapshot><disks><disk name='vdz' snapshot='no'/></disks></domainsnapshot>",
        )
        .unwrap();
        let e = plan_disks(&def, asked.head.disks.as_ref())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no disk named 'vdz'"), "{e}");
    }
}
