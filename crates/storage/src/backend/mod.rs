//! What each pool type does to the host: where its volumes live, how it is built, started,
//! stopped and deleted, and how its volumes are found. `dir` pools are a directory; `fs`
//! pools are a filesystem on a block device (or image) mounted on the target directory;
//! both hold volumes as files. `logical` pools are an LVM volume group ([`logical`]).
//! Other types are refused with a clear error.

pub mod logical;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use vireo_xml::{Pool as PoolDef, PoolType};

use crate::error::{Result, StorageError};
use crate::image::{self, ImageInfo};
use vireo_proto::storage::build_flags;

/// Filesystems an `fs` pool may hold (what `mkfs` makes and `mount` takes).
pub const FS_FORMATS: &[&str] = &["auto", "ext2", "ext3", "ext4", "xfs", "vfat", "btrfs"];

/// A volume as found on disk.
#[derive(Debug, Clone)]
pub struct Vol {
    pub name: String,
    pub path: PathBuf,
    pub info: ImageInfo,
    /// mode, uid, gid
    pub perms: (u32, u32, u32),
}

/// Checks that Vireo can run a pool of this definition, and that it names what it needs.
pub fn check(def: &PoolDef) -> Result<()> {
    match def.pool_type {
        PoolType::Logical => return logical::check(def),
        PoolType::Dir => {}
        PoolType::Fs => {
            if def.source_devices().len() != 1 {
                return Err(StorageError::Xml(vireo_xml::XmlError::Invalid(
                    "an fs pool needs exactly one <source><device path='…'/>".into(),
                )));
            }
            if let Some(f) = def.source_format() {
                if !FS_FORMATS.contains(&f) {
                    return Err(StorageError::Unsupported(format!(
                        "filesystem format '{f}' is not supported (one of {})",
                        FS_FORMATS.join(", ")
                    )));
                }
            }
        }
        other => {
            return Err(StorageError::Unsupported(format!(
                "storage pools of type '{other}' are not supported by Vireo yet (dir, fs and logical are)"
            )))
        }
    }
    let target = def.target_path().ok_or_else(|| {
        StorageError::Xml(vireo_xml::XmlError::Invalid(
            "missing storage pool target path".into(),
        ))
    })?;
    if !target.starts_with('/') || target.split('/').any(|c| c == "..") {
        return Err(StorageError::Xml(vireo_xml::XmlError::Invalid(format!(
            "storage pool target path '{target}' must be absolute, without '..'"
        ))));
    }
    Ok(())
}

pub fn target(def: &PoolDef) -> PathBuf {
    if def.pool_type == PoolType::Logical {
        return logical::target(def);
    }
    PathBuf::from(def.target_path().unwrap_or("/nonexistent"))
}

/// Makes the pool's storage: the target directory (with the definition's mode), and for
/// `fs` pools a filesystem on the device (only where none is, unless OVERWRITE).
pub fn build(def: &PoolDef, flags: u32) -> Result<()> {
    if flags & build_flags::OVERWRITE != 0 && flags & build_flags::NO_OVERWRITE != 0 {
        return Err(StorageError::InvalidArg(
            "OVERWRITE and NO_OVERWRITE cannot be used together".into(),
        ));
    }
    if def.pool_type == PoolType::Logical {
        return logical::build(def, flags);
    }
    let t = target(def);
    fs::create_dir_all(&t)
        .map_err(|e| StorageError::io(format!("cannot create {}", t.display()), e))?;
    let mode = def
        .target
        .as_ref()
        .and_then(|t| t.permissions.as_ref())
        .and_then(|p| p.mode.as_deref())
        .map(parse_mode)
        .transpose()?
        .unwrap_or(0o755);
    fs::set_permissions(&t, fs::Permissions::from_mode(mode))
        .map_err(|e| StorageError::io(format!("cannot set the mode of {}", t.display()), e))?;
    if def.pool_type == PoolType::Fs {
        let dev = def.source_devices()[0];
        let existing = probe_fs(dev)?;
        match existing {
            Some(fs) if flags & build_flags::OVERWRITE == 0 => {
                return Err(StorageError::PoolBuilt(format!(
                    "device {dev} already holds a {fs} filesystem (build with --overwrite to replace it)"
                )))
            }
            _ => {}
        }
        let fmt = match def.source_format() {
            None | Some("auto") => "ext4",
            Some(f) => f,
        };
        let mkfs = format!("mkfs.{fmt}");
        let force: &[&str] = match fmt {
            "ext2" | "ext3" | "ext4" => &["-F", "-q"],
            "xfs" | "btrfs" => &["-f", "-q"],
            _ => &[],
        };
        let mut args: Vec<&str> = force.to_vec();
        args.push(dev);
        run(&mkfs, &args)?;
    }
    Ok(())
}

/// The filesystem (or other signature: an LVM label, a partition table) on `dev`, if any
/// (`blkid`).
pub(crate) fn probe_fs(dev: &str) -> Result<Option<String>> {
    let prog = vireo_hostprog::find("blkid")?;
    let out = Command::new(prog)
        .args(["-o", "value", "-s", "TYPE", dev])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| StorageError::io("cannot run blkid", e))?;
    // Exit 2: nothing found.
    let t = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok((!t.is_empty()).then_some(t))
}

/// Makes the pool usable: the target must be a directory; an `fs` pool's device is mounted
/// on it.
pub fn start(def: &PoolDef) -> Result<()> {
    if def.pool_type == PoolType::Logical {
        return logical::start(def);
    }
    let t = target(def);
    if !t.is_dir() {
        return Err(StorageError::Invalid(format!(
            "cannot open directory '{}': it does not exist (build the pool first)",
            t.display()
        )));
    }
    if def.pool_type == PoolType::Fs && !is_mounted(&t)? {
        let dev = def.source_devices()[0];
        let mut args = vec![];
        let fstype = def.source_format().filter(|f| *f != "auto");
        if let Some(f) = fstype {
            args.extend(["-t", f]);
        }
        let tstr = path_str(&t)?;
        args.extend([dev, tstr]);
        run("mount", &args)?;
    }
    Ok(())
}

/// Stops the pool: an `fs` pool is unmounted.
pub fn stop(def: &PoolDef) -> Result<()> {
    if def.pool_type == PoolType::Logical {
        return logical::stop(def);
    }
    let t = target(def);
    if def.pool_type == PoolType::Fs && is_mounted(&t)? {
        run("umount", &[path_str(&t)?])?;
    }
    Ok(())
}

/// Removes what `build` made: the (empty) target directory.
pub fn delete(def: &PoolDef) -> Result<()> {
    if def.pool_type == PoolType::Logical {
        return logical::delete(def);
    }
    let t = target(def);
    match fs::remove_dir(&t) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io(
            format!("cannot remove directory '{}'", t.display()),
            e,
        )),
    }
}

/// The volumes in the pool: every regular file (or block device) in the target directory.
pub fn scan(def: &PoolDef) -> Result<BTreeMap<String, Vol>> {
    if def.pool_type == PoolType::Logical {
        return logical::scan(def);
    }
    let t = target(def);
    let rd = fs::read_dir(&t)
        .map_err(|e| StorageError::io(format!("cannot open directory '{}'", t.display()), e))?;
    let mut vols = BTreeMap::new();
    for ent in rd.flatten() {
        let name = ent.file_name().to_string_lossy().into_owned();
        // Our own temp files, and what cannot be a volume.
        if name.starts_with(".vireo-") {
            continue;
        }
        let path = ent.path();
        let Ok(meta) = fs::metadata(&path) else {
            continue;
        };
        if !(meta.is_file() || meta.file_type().is_block_device()) {
            continue;
        }
        match vol_at(&name, &path) {
            Ok(v) => {
                vols.insert(name, v);
            }
            Err(e) => log::warn!("pool {}: skipping {}: {e}", def.name, path.display()),
        }
    }
    Ok(vols)
}

/// One volume's facts, read from disk.
pub fn vol_at(name: &str, path: &Path) -> Result<Vol> {
    let info = image::probe(path)?;
    let meta = fs::metadata(path)
        .map_err(|e| StorageError::io(format!("cannot stat '{}'", path.display()), e))?;
    Ok(Vol {
        name: name.to_string(),
        path: path.to_path_buf(),
        info,
        perms: (meta.mode() & 0o7777, meta.uid(), meta.gid()),
    })
}

/// (capacity, allocation, available) of the filesystem holding the target.
pub fn space(def: &PoolDef) -> (u64, u64, u64) {
    if def.pool_type == PoolType::Logical {
        return logical::space(def);
    }
    let Ok(s) = rustix::fs::statvfs(target(def).as_path()) else {
        return (0, 0, 0);
    };
    let f = s.f_frsize;
    let cap = s.f_blocks * f;
    let free = s.f_bfree * f;
    (cap, cap.saturating_sub(free), s.f_bavail * f)
}

/// Whether something is mounted on `dir` (per /proc/self/mountinfo).
fn is_mounted(dir: &Path) -> Result<bool> {
    let canon = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mi = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| StorageError::io("cannot read /proc/self/mountinfo", e))?;
    let want = canon.to_string_lossy();
    Ok(mi
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| unescape_mount(m) == want))
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mount(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

pub fn parse_mode(s: &str) -> Result<u32> {
    u32::from_str_radix(s.trim(), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| {
            StorageError::Xml(vireo_xml::XmlError::Invalid(format!(
                "malformed octal mode '{s}'"
            )))
        })
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .ok_or_else(|| StorageError::InvalidArg(format!("path {} is not UTF-8", p.display())))
}

/// Runs a host program; a failure carries what it printed.
pub fn run(program: &str, args: &[&str]) -> Result<()> {
    output(program, args).map(|_| ())
}

/// Runs a host program and returns what it printed on stdout; a failure carries what it
/// printed on stderr.
pub fn output(program: &str, args: &[&str]) -> Result<String> {
    let prog = vireo_hostprog::find(program)?;
    let out = Command::new(prog)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| StorageError::io(format!("cannot run {program}"), e))?;
    if !out.status.success() {
        return Err(StorageError::Command(format!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
