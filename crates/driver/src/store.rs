//! Persistent objects as files, written atomically: a temp file in the same directory,
//! fsync, rename over the old file, fsync the directory. A crash at any point leaves the old
//! file or the new one, never a mix.

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
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
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

/// Removes `path` and makes the removal durable. A missing file is not an error.
pub fn remove_durable(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(DriverError::io(
                format!("cannot remove {}", path.display()),
                e,
            ))
        }
    }
    if let Some(dir) = path.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
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
        remove_durable(&p).unwrap();
        remove_durable(&p).unwrap();
        assert!(list_xml(&d.path().join("sub")).unwrap().is_empty());
    }
}
