//! `logical` pools: an LVM volume group. Built with `pvcreate` on each source device and
//! `vgcreate`; started and stopped by activating the group; its volumes are logical
//! volumes (`lvcreate`, `lvremove`, `lvresize`), raw block devices under `/dev/VG`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vireo_xml::Pool as PoolDef;

use super::{run, Vol};
use crate::error::{Result, StorageError};
use crate::image::ImageInfo;
use vireo_proto::storage::build_flags;

/// The volume group's name: `<source><name>`, else the pool's name.
pub fn vg(def: &PoolDef) -> &str {
    def.source
        .as_ref()
        .and_then(|s| s.name.as_deref())
        .unwrap_or(&def.name)
}

/// `/dev/VG`, where the group's volumes appear.
pub fn target(def: &PoolDef) -> PathBuf {
    PathBuf::from(format!("/dev/{}", vg(def)))
}

pub fn check(def: &PoolDef) -> Result<()> {
    let name = vg(def);
    let ok = !name.is_empty()
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+_.-".contains(c));
    if !ok {
        return Err(StorageError::Xml(vireo_xml::XmlError::Invalid(format!(
            "'{name}' is not a valid volume group name"
        ))));
    }
    if let Some(t) = def.target_path() {
        if target(def) != Path::new(t) {
            return Err(StorageError::Xml(vireo_xml::XmlError::Invalid(format!(
                "a logical pool's target path is /dev/{name}, not '{t}'"
            ))));
        }
    }
    if let Some(f) = def.source_format() {
        if f != "lvm2" && f != "auto" {
            return Err(StorageError::Unsupported(format!(
                "logical pool format '{f}' is not supported (lvm2)"
            )));
        }
    }
    Ok(())
}

/// `pvcreate` on every source device (refusing one that holds data, unless OVERWRITE),
/// then `vgcreate`.
pub fn build(def: &PoolDef, flags: u32) -> Result<()> {
    let devs = def.source_devices();
    if devs.is_empty() {
        return Err(StorageError::Xml(vireo_xml::XmlError::Invalid(
            "building a logical pool needs at least one <source><device path='…'/>".into(),
        )));
    }
    for d in &devs {
        if flags & build_flags::OVERWRITE == 0 {
            if let Some(t) = super::probe_fs(d)? {
                return Err(StorageError::PoolBuilt(format!(
                    "device {d} already holds {t} (build with --overwrite to replace it)"
                )));
            }
            run("pvcreate", &["-y", d])?;
        } else {
            run("pvcreate", &["-ff", "-y", d])?;
        }
    }
    let mut args = vec![vg(def)];
    args.extend(devs.iter().copied());
    run("vgcreate", &args)
}

pub fn start(def: &PoolDef) -> Result<()> {
    run("vgchange", &["-aly", vg(def)])
}

pub fn stop(def: &PoolDef) -> Result<()> {
    run("vgchange", &["-aln", vg(def)])
}

/// Removes the group and the physical volume labels.
pub fn delete(def: &PoolDef) -> Result<()> {
    run("vgremove", &["-f", vg(def)])?;
    for d in def.source_devices() {
        run("pvremove", &["-y", d])?;
    }
    Ok(())
}

/// Output lines of an LVM report, fields split on `|`.
fn report(program: &str, args: &[&str]) -> Result<Vec<Vec<String>>> {
    let mut all = vec![
        "--noheadings",
        "--units",
        "b",
        "--nosuffix",
        "--separator",
        "|",
    ];
    all.extend_from_slice(args);
    Ok(super::output(program, &all)?
        .lines()
        .map(|l| l.trim().split('|').map(|f| f.trim().to_string()).collect())
        .filter(|f: &Vec<String>| f.iter().any(|x| !x.is_empty()))
        .collect())
}

/// The group's logical volumes.
pub fn scan(def: &PoolDef) -> Result<BTreeMap<String, Vol>> {
    let mut vols = BTreeMap::new();
    for f in report("lvs", &["-o", "lv_name,lv_path,lv_size", vg(def)])? {
        let [name, path, size] = f.as_slice() else {
            continue;
        };
        let size: u64 = size.parse().unwrap_or(0);
        let path = if path.is_empty() {
            target(def).join(name)
        } else {
            PathBuf::from(path)
        };
        // An active volume is read like any image; an inactive one is what LVM says.
        let vol = super::vol_at(name, &path).unwrap_or_else(|_| Vol {
            name: name.clone(),
            path: path.clone(),
            info: ImageInfo {
                format: "raw".into(),
                capacity: size,
                allocation: size,
                physical: size,
                is_block: true,
                ..ImageInfo::default()
            },
            perms: (0o600, 0, 0),
        });
        vols.insert(name.clone(), vol);
    }
    Ok(vols)
}

/// (capacity, allocation, available) of the group.
pub fn space(def: &PoolDef) -> (u64, u64, u64) {
    let Ok(rows) = report("vgs", &["-o", "vg_size,vg_free", vg(def)]) else {
        return (0, 0, 0);
    };
    let Some([size, free]) = rows.first().map(Vec::as_slice) else {
        return (0, 0, 0);
    };
    let size: u64 = size.parse().unwrap_or(0);
    let free: u64 = free.parse().unwrap_or(0);
    (size, size.saturating_sub(free), free)
}

pub fn create_volume(def: &PoolDef, name: &str, capacity: u64) -> Result<()> {
    let size = format!("{capacity}b");
    run("lvcreate", &["-y", "-n", name, "-L", &size, vg(def)])
}

pub fn remove_volume(def: &PoolDef, name: &str) -> Result<()> {
    let lv = format!("{}/{name}", vg(def));
    run("lvremove", &["-f", &lv])
}

pub fn resize_volume(def: &PoolDef, name: &str, capacity: u64) -> Result<()> {
    let lv = format!("{}/{name}", vg(def));
    let size = format!("{capacity}b");
    run("lvresize", &["-f", "-L", &size, &lv])
}

/// The volume groups on this host and their devices, as libvirt's
/// `find-storage-pool-sources logical` gives them.
pub fn find_sources() -> Result<String> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in report("pvs", &["-o", "pv_name,vg_name"])? {
        if let [pv, vg] = f.as_slice() {
            if !vg.is_empty() {
                groups.entry(vg.clone()).or_default().push(pv.clone());
            }
        }
    }
    let mut out = String::from("<sources>\n");
    for (vg, pvs) in groups {
        out.push_str("  <source>\n");
        for pv in pvs {
            out.push_str(&format!(
                "    <device path='{}'/>\n",
                vireo_xml::escape(&pv)
            ));
        }
        out.push_str(&format!("    <name>{}</name>\n", vireo_xml::escape(&vg)));
        out.push_str("    <format type='lvm2'/>\n  </source>\n");
    }
    out.push_str("</sources>\n");
    Ok(out)
}
