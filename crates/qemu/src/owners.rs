//! qemu.conf's `dynamic_ownership`, remembered (libvirt's `remember_owner`): who owned
//! each file before it was given to QEMU's user, and which shims hold it now. One record
//! per file, named by its device and inode, in `RUN/owners/`. With it:
//! - a file several VMs use (a shared disk, one kernel) goes back when the last one stops;
//! - a shim killed outright does not leave its files with QEMU's user for good: the daemon
//!   gives back what only dead shims held, when it sees a shim die and when it starts;
//! - a VM started again after that still knows the first owner, not QEMU's user.
//!
//! libvirt keeps the same in extended attributes of the `trusted` namespace, which needs
//! CAP_SYS_ADMIN; a shim has none. Every change is made under an exclusive lock of
//! `RUN/owners/lock`, and every record is written atomically.

use std::fs::File;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A shim holding files: its pid and start time (so that a reused pid is not taken for
/// it), and its VM's UUID (for the reader).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pid: i32,
    start: u64,
    vm: String,
}

impl Holder {
    /// This process, for the VM `vm` (a UUID).
    pub fn me(vm: &str) -> Holder {
        let pid = std::process::id() as i32;
        Holder {
            pid,
            start: start_time(pid).unwrap_or(0),
            vm: vm.to_string(),
        }
    }

    /// Process `pid` (a VM's shim, for the VM `vm`), if it runs.
    pub fn of(pid: i32, vm: &str) -> Option<Holder> {
        Some(Holder {
            pid,
            start: start_time(pid)?,
            vm: vm.to_string(),
        })
    }

    /// Whether the process recorded still runs (a zombie has ended).
    fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start)
    }
}

/// When process `pid` started (clock ticks after boot: `/proc/PID/stat`'s 22nd field);
/// None when there is no such process, or it has ended (a zombie, not yet reaped).
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: count from its end.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    if matches!(fields.next()?, "Z" | "X") {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// One file's record.
#[derive(Debug, PartialEq, Eq)]
struct Record {
    path: PathBuf,
    uid: u32,
    gid: u32,
    holders: Vec<Holder>,
}

impl Record {
    fn to_text(&self) -> String {
        let mut s = format!(
            "path={}\nowner={}:{}\n",
            self.path.display(),
            self.uid,
            self.gid
        );
        for h in &self.holders {
            s.push_str(&format!("holder={}:{}:{}\n", h.pid, h.start, h.vm));
        }
        s
    }

    fn parse(text: &str) -> Option<Record> {
        let mut path = None;
        let mut owner = None;
        let mut holders = Vec::new();
        for line in text.lines() {
            let (k, v) = line.split_once('=')?;
            match k {
                "path" => path = Some(PathBuf::from(v)),
                "owner" => {
                    let (u, g) = v.split_once(':')?;
                    owner = Some((u.parse().ok()?, g.parse().ok()?));
                }
                "holder" => {
                    let mut f = v.splitn(3, ':');
                    holders.push(Holder {
                        pid: f.next()?.parse().ok()?,
                        start: f.next()?.parse().ok()?,
                        vm: f.next()?.to_string(),
                    });
                }
                _ => return None,
            }
        }
        let (uid, gid) = owner?;
        Some(Record {
            path: path?,
            uid,
            gid,
            holders,
        })
    }
}

/// The records of one run directory.
pub struct Store {
    dir: PathBuf,
}

/// A file's record name: its device and inode.
fn key(m: &std::fs::Metadata) -> String {
    format!("{:x}-{:x}", m.dev(), m.ino())
}

fn chown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
}

impl Store {
    /// The store of the daemon (and its shims) whose run directory is `run_dir`.
    pub fn new(run_dir: &Path) -> Store {
        Store {
            dir: run_dir.join("owners"),
        }
    }

    /// The store's lock, held until dropped.
    fn lock(&self) -> io::Result<File> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.dir.join("lock"))?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)?;
        Ok(f)
    }

    fn read(&self, key: &str) -> Option<Record> {
        let text = std::fs::read_to_string(self.dir.join(key)).ok()?;
        let r = Record::parse(&text);
        if r.is_none() {
            log::warn!("ignoring a malformed owner record {key}");
        }
        r
    }

    fn write(&self, key: &str, r: &Record) -> io::Result<()> {
        vireo_driver::store::write_atomic(&self.dir.join(key), r.to_text().as_bytes())
            .map_err(io::Error::other)
    }

    fn remove(&self, key: &str) {
        let _ = std::fs::remove_file(self.dir.join(key));
    }

    /// Gives `path` to `uid:gid` for `me`, remembering its owner. False when there was
    /// nothing to give: no such file, or already theirs with nobody's record of another
    /// owner.
    pub fn give(&self, path: &Path, uid: u32, gid: u32, me: &Holder) -> io::Result<bool> {
        if path.as_os_str().as_encoded_bytes().contains(&b'\n') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a path with a new line",
            ));
        }
        let _lock = self.lock()?;
        let Ok(m) = std::fs::metadata(path) else {
            return Ok(false);
        };
        let k = key(&m);
        let mut r = match self.read(&k) {
            Some(mut r) => {
                r.holders.retain(|h| h != me && h.alive());
                r.path = path.to_path_buf();
                r
            }
            None if (m.uid(), m.gid()) == (uid, gid) => return Ok(false),
            None => Record {
                path: path.to_path_buf(),
                uid: m.uid(),
                gid: m.gid(),
                holders: Vec::new(),
            },
        };
        r.holders.push(me.clone());
        // The record first: a crash before the chown leaves a record of the owner the
        // file still has.
        self.write(&k, &r)?;
        if (m.uid(), m.gid()) != (uid, gid) {
            if let Err(e) = chown(path, uid, gid) {
                r.holders.pop();
                if r.holders.is_empty() {
                    self.remove(&k);
                } else {
                    let _ = self.write(&k, &r);
                }
                return Err(e);
            }
        }
        Ok(true)
    }

    /// `me` no longer holds anything: what it held (whoever gave it) goes back to its
    /// first owner, unless someone else alive holds it.
    pub fn release(&self, me: &Holder) -> io::Result<()> {
        self.settle_all(|h| h != me).map(|_| ())
    }

    /// `me` no longer holds `path` (a disk unplugged, a medium ejected): it goes back to its
    /// first owner unless someone else alive holds it. True when it went back.
    pub fn release_file(&self, path: &Path, me: &Holder) -> io::Result<bool> {
        let _lock = self.lock()?;
        let Ok(m) = std::fs::metadata(path) else {
            return Ok(false);
        };
        let k = key(&m);
        let Some(mut r) = self.read(&k) else {
            return Ok(false);
        };
        if !r.holders.contains(me) {
            return Ok(false);
        }
        r.holders.retain(|h| h != me && h.alive());
        let back = r.holders.is_empty();
        self.settle(&k, r, path)?;
        Ok(back)
    }

    /// Gives back every file that only dead shims held; returns how many.
    pub fn sweep(&self) -> usize {
        self.settle_all(|_| true).unwrap_or_else(|e| {
            log::warn!("cannot read the owner records: {e}");
            0
        })
    }

    /// Drops from every record the holders `keep` refuses and those that have ended;
    /// returns how many files then go back.
    fn settle_all(&self, keep: impl Fn(&Holder) -> bool) -> io::Result<usize> {
        let mut given_back = 0;
        let _lock = self.lock()?;
        for e in std::fs::read_dir(&self.dir)?.flatten() {
            let k = e.file_name().to_string_lossy().into_owned();
            if k == "lock" || k.starts_with('.') {
                continue;
            }
            let Some(mut r) = self.read(&k) else {
                self.remove(&k);
                continue;
            };
            let before = r.holders.len();
            r.holders.retain(|h| keep(h) && h.alive());
            if r.holders.len() == before {
                continue;
            }
            let path = r.path.clone();
            // The file the record is of, still at its path? Otherwise nothing to give back.
            if std::fs::metadata(&path).is_ok_and(|m| key(&m) == k) {
                if r.holders.is_empty() {
                    given_back += 1;
                }
                if let Err(e) = self.settle(&k, r, &path) {
                    log::warn!("cannot give {} back: {e}", path.display());
                }
            } else {
                self.remove(&k);
            }
        }
        Ok(given_back)
    }

    /// Writes record `k` back, or, with nobody holding the file, gives it back to its
    /// first owner and removes the record.
    fn settle(&self, k: &str, r: Record, path: &Path) -> io::Result<()> {
        if !r.holders.is_empty() {
            return self.write(k, &r);
        }
        match chown(path, r.uid, r.gid) {
            Ok(()) => {
                self.remove(k);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.remove(k);
                Ok(())
            }
            // Kept, holders and all dropped, with the first owner: whoever may give the
            // file back (the next shim to hold it) still knows to whom.
            Err(e) => {
                let _ = self.write(k, &r);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(p: &Path) -> (u32, u32) {
        let m = std::fs::metadata(p).expect("stat");
        (m.uid(), m.gid())
    }

    /// A store in a temp directory and a file there, with its first owner; None unless
    /// root (the files change owners).
    fn fixture() -> Option<(tempfile::TempDir, Store, PathBuf, (u32, u32))> {
        if !rustix::process::geteuid().is_root() {
            return None;
        }
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::new(dir.path());
        let f = dir.path().join("disk");
        std::fs::write(&f, b"x").expect("write");
        let first = owner(&f);
        Some((dir, store, f, first))
    }

    #[test]
    fn records_read_back() {
        let r = Record {
            path: "/a b/c".into(),
            uid: 0,
            gid: 7,
            holders: vec![Holder {
                pid: 12,
                start: 345,
                vm: "u:u".into(),
            }],
        };
        assert_eq!(Record::parse(&r.to_text()), Some(r));
        assert_eq!(Record::parse("path=/x\n"), None);
        assert_eq!(Record::parse("path=/x\nowner=1:2\nfoo=1\n"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_stranger_is_not() {
        let me = Holder::me("vm");
        assert!(me.alive());
        let other = Holder {
            start: me.start + 1,
            ..me.clone()
        };
        assert!(!other.alive());
    }

    #[test]
    fn shared_files_go_back_with_their_last_holder() {
        let Some((dir, store, f, first)) = fixture() else {
            return;
        };
        let a = Holder::me("a");
        let b = Holder::me("b");
        assert!(store.give(&f, 65534, 65534, &a).expect("give"));
        assert!(store.give(&f, 65534, 65534, &b).expect("give"));
        assert_eq!(owner(&f), (65534, 65534));
        store.release(&a).expect("release");
        assert_eq!(owner(&f), (65534, 65534), "b still holds it");
        store.release(&b).expect("release");
        assert_eq!(owner(&f), first);
        assert_eq!(
            std::fs::read_dir(dir.path().join("owners"))
                .unwrap()
                .count(),
            1
        );
    }

    /// [`fixture`]'s file `f`, given for holder a (`me`), and a second file `g`, given for
    /// a and for b (`other`).
    struct Shared {
        _dir: tempfile::TempDir,
        store: Store,
        f: PathBuf,
        g: PathBuf,
        first: (u32, u32),
        me: Holder,
        other: Holder,
    }

    fn shared() -> Option<Shared> {
        let (dir, store, f, first) = fixture()?;
        let g = dir.path().join("other");
        std::fs::write(&g, b"y").expect("write");
        let me = Holder::me("a");
        let other = Holder::me("b");
        for p in [&f, &g] {
            assert!(store.give(p, 65534, 65534, &me).expect("give"));
        }
        assert!(store.give(&g, 65534, 65534, &other).expect("give"));
        Some(Shared {
            _dir: dir,
            store,
            f,
            g,
            first,
            me,
            other,
        })
    }

    #[test]
    fn a_holder_releases_what_others_gave_it() {
        let Some(s) = shared() else {
            return;
        };
        s.store.release(&s.me).expect("release");
        assert_eq!(owner(&s.f), s.first);
        assert_eq!(owner(&s.g), (65534, 65534), "still held by b");
        s.store.release(&s.other).expect("release");
        assert_eq!(owner(&s.g), s.first);
    }

    #[test]
    fn one_file_is_released_and_the_rest_kept() {
        let Some(s) = shared() else {
            return;
        };
        assert!(s.store.release_file(&s.f, &s.me).expect("release f"));
        assert_eq!(owner(&s.f), s.first);
        assert!(
            !s.store.release_file(&s.g, &s.me).expect("release g"),
            "b holds g"
        );
        assert_eq!(owner(&s.g), (65534, 65534));
        assert!(
            !s.store.release_file(&s.f, &s.me).expect("again"),
            "no longer held"
        );
        // What is left of me: nothing but the record b holds.
        s.store.release(&s.me).expect("release");
        assert_eq!(owner(&s.g), (65534, 65534));
        s.store.release(&s.other).expect("release");
        assert_eq!(owner(&s.g), s.first);
    }

    #[test]
    fn what_dead_holders_held_goes_back() {
        let Some((_dir, store, f, first)) = fixture() else {
            return;
        };
        let me = Holder::me("a");
        let dead = Holder {
            start: me.start + 1,
            ..me.clone()
        };
        assert!(store.give(&f, 65534, 65534, &dead).expect("give"));
        // A holder that lives keeps it through a sweep.
        assert!(store.give(&f, 65534, 65534, &me).expect("give"));
        assert_eq!(store.sweep(), 0);
        assert_eq!(owner(&f), (65534, 65534));
        // Given again after its holder died: the first owner is still known.
        store.release(&me).expect("release");
        assert_eq!(owner(&f), first);
        assert!(store.give(&f, 65534, 65534, &dead).expect("give"));
        assert!(store.give(&f, 65534, 65534, &me).expect("give"));
        store.release(&me).expect("release");
        assert_eq!(owner(&f), first, "the dead holder does not count");
        // Only dead holders: the sweep gives it back.
        assert!(store.give(&f, 65534, 65534, &dead).expect("give"));
        assert_eq!(store.sweep(), 1);
        assert_eq!(owner(&f), first);
    }
}
