//! Reading a sysfs tree under a root directory, as if the root were `/`: paths are
//! given and returned as seen inside the root (`/sys/devices/…`), and symbolic links
//! are followed without ever leaving it, even when they are absolute or climb with `..`.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::error::{NodeDevError, Result};

/// Links followed in one resolution before giving up, as the kernel does (`ELOOP`).
const MAX_LINKS: usize = 40;

/// One step of a path being resolved.
enum Step {
    Up,
    Name(OsString),
}

/// The steps of `p`, `.` and the root left out.
fn steps(p: &Path) -> impl DoubleEndedIterator<Item = Step> + '_ {
    p.components().filter_map(|c| match c {
        Component::ParentDir => Some(Step::Up),
        Component::Normal(n) => Some(Step::Name(n.to_os_string())),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
}

/// A sysfs tree under `root`.
pub(crate) struct Sysfs {
    root: PathBuf,
}

impl Sysfs {
    pub(crate) fn new(root: PathBuf) -> Sysfs {
        Sysfs { root }
    }

    /// Where the inside path `inside` is on the host.
    pub(crate) fn host(&self, inside: &Path) -> PathBuf {
        self.root.join(inside.strip_prefix("/").unwrap_or(inside))
    }

    /// `inside` with every symbolic link in it followed, as an inside path.
    pub(crate) fn resolve(&self, inside: &Path) -> io::Result<PathBuf> {
        let mut out = PathBuf::from("/");
        let mut todo: VecDeque<Step> = steps(inside).collect();
        let mut links = 0;
        while let Some(step) = todo.pop_front() {
            let name = match step {
                Step::Up => {
                    // `..` of the root is the root.
                    out.pop();
                    continue;
                }
                Step::Name(n) => n,
            };
            out.push(&name);
            let host = self.host(&out);
            if !fs::symlink_metadata(&host)?.file_type().is_symlink() {
                continue;
            }
            links += 1;
            if links > MAX_LINKS {
                return Err(io::Error::other("too many levels of symbolic links"));
            }
            let target = fs::read_link(&host)?;
            out.pop();
            if target.is_absolute() {
                out = PathBuf::from("/");
            }
            for s in steps(&target).rev() {
                todo.push_front(s);
            }
        }
        Ok(out)
    }

    /// The names in the directory `dir` (an inside path), sorted; a directory that is
    /// not there has none.
    pub(crate) fn list(&self, dir: &Path) -> Result<Vec<String>> {
        let host = self.host(dir);
        let what = || format!("cannot read directory '{}'", host.display());
        let rd = match fs::read_dir(&host) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(NodeDevError::io(what(), e)),
        };
        let mut names = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| NodeDevError::io(what(), e))?;
            // sysfs names are ASCII; anything else is not a device of ours.
            if let Ok(n) = entry.file_name().into_string() {
                names.push(n);
            }
        }
        names.sort();
        Ok(names)
    }

    /// The file `name` in the directory `dir` (an inside path, already resolved), trimmed;
    /// `None` when it is not there, cannot be read or says nothing.
    pub(crate) fn attr(&self, dir: &Path, name: &str) -> Option<String> {
        let path = self.host(&dir.join(name));
        match fs::read(&path) {
            Ok(bytes) => {
                let s = String::from_utf8_lossy(&bytes).trim().to_string();
                (!s.is_empty()).then_some(s)
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    log::debug!("cannot read {}: {e}", path.display());
                }
                None
            }
        }
    }

    /// Where the link `name` in the directory `dir` leads (an inside path); `None` when
    /// there is no such link or it leads nowhere.
    pub(crate) fn link(&self, dir: &Path, name: &str) -> Option<PathBuf> {
        let path = dir.join(name);
        let meta = fs::symlink_metadata(self.host(&path)).ok()?;
        if !meta.file_type().is_symlink() {
            return None;
        }
        self.resolve(&path).ok()
    }

    /// Writes `value` into the existing file `inside` (a sysfs attribute: `unbind`,
    /// `driver_override`); a file that is not there is an error naming it.
    pub(crate) fn write(&self, inside: &Path, value: &str) -> Result<()> {
        let host = self.host(inside);
        let r = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&host)
            .and_then(|mut f| std::io::Write::write_all(&mut f, value.as_bytes()));
        r.map_err(|e| NodeDevError::io(format!("cannot write '{}'", inside.display()), e))
    }

    /// Whether this is the host's own tree (`/`), where a missing kernel module may be
    /// loaded.
    pub(crate) fn is_host(&self) -> bool {
        self.root == Path::new("/")
    }

    /// The last name in the target of the link `name` in `dir` (a driver's name, a
    /// group's number), whether or not the target is there.
    pub(crate) fn link_name(&self, dir: &Path, name: &str) -> Option<String> {
        let target = fs::read_link(self.host(&dir.join(name))).ok()?;
        target.file_name()?.to_str().map(str::to_string)
    }
}
