//! Persistent objects as files, written atomically: a temp file in the same directory,
//! fdatasync (the data and size are on disk before the name points at them), rename over the
//! old file. A crash at any point leaves the old file or the new one, never a mix. As with
//! libvirt, the directory is not synced here: after a power loss (not a crash) the old file
//! may be the one found; callers that need the name on disk sync the directory themselves
//! (the definition journal does at every checkpoint).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{DriverError, Result};

/// Writes `data` to `path` atomically.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| DriverError::Internal(format!("{} has no directory", path.display())))?;
    fs::create_dir_all(dir)
        .map_err(|e| DriverError::io(format!("cannot create {}", dir.display()), e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let res = (|| -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_data()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(DriverError::io(
            format!("cannot write {}", path.display()),
            e,
        ));
    }
    Ok(())
}

/// Removes `path`. A missing file is not an error. Like libvirt, the removal is not synced:
/// after a power loss (not a crash) a just-removed definition may come back, whole.
pub fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DriverError::io(
            format!("cannot remove {}", path.display()),
            e,
        )),
    }
}

/// The `*.xml` files of a directory, sorted; leftover temp files from a crash are removed.
pub fn list_xml(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(DriverError::io(format!("cannot read {}", dir.display()), e)),
    };
    let mut out = Vec::new();
    for ent in rd.flatten() {
        let p = ent.path();
        let name = ent.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.contains(".tmp") {
            let _ = fs::remove_file(&p);
        } else if name.ends_with(".xml") && p.is_file() {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_cleans_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/a.xml");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        fs::write(d.path().join("sub/.b.xml.tmp99"), b"half").unwrap();
        let l = list_xml(&d.path().join("sub")).unwrap();
        assert_eq!(l, vec![p.clone()]);
        assert!(!d.path().join("sub/.b.xml.tmp99").exists());
        remove(&p).unwrap();
        remove(&p).unwrap();
        assert!(list_xml(&d.path().join("sub")).unwrap().is_empty());
    }
}
