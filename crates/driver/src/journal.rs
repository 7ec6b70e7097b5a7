//! A directory of `NAME.xml` definitions made durable through a journal, with the files
//! written just behind the caller.
//!
//! A define must be on disk when the client hears "done". Writing `NAME.xml` through a temp
//! file, fdatasync and rename costs a new file's metadata commit every time (hundreds of µs
//! on a plain ext4 disk, most of a define). Instead each change is one record in a journal
//! file that was filled with zeros once and is overwritten in place, so its fdatasync
//! flushes data and no metadata. A worker thread then writes the `NAME.xml` files a moment
//! later, without syncing each, and skips what a later change undid (a define followed by
//! its undefine writes nothing). Removals are not synced (as with libvirt's unlink) but are
//! applied at once, so a removed file is gone when the call returns.
//!
//! At open, and whenever the journal fills, every file is brought up to date and synced,
//! then the journal starts over under a new generation number: records of an older
//! generation, or after the first torn or damaged one, are not replayed.
//!
//! Layout: a header block (magic, version, generation, CRC) and from `HEADER` on, records:
//! magic, generation, kind, name length, data length, name, data, CRC of all before it.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{DriverError, Result};
use crate::store;

const MAGIC: &[u8; 8] = b"VIREOJNL";
const VERSION: u32 = 1;
const HEADER: u64 = 4096;
const REC_MAGIC: u32 = 0x5652_4543;
/// magic, generation, kind, name length, data length.
const REC_HEAD: usize = 4 + 8 + 1 + 2 + 4;
const PUT: u8 = 1;
const REMOVE: u8 = 2;
/// The default journal size: about a thousand typical definitions between checkpoints.
pub const DEFAULT_CAPACITY: u64 = 1 << 20;
/// How long the worker waits for more changes before writing files (and so how long a
/// define undone in that time costs no file at all).
const LINGER: Duration = Duration::from_millis(5);
/// How long the writer waits before trying again a file it could not write.
const RETRY: Duration = Duration::from_secs(1);

struct State {
    journal: File,
    generation: u64,
    pos: u64,
    capacity: u64,
    /// Definitions journaled but not yet written to their files, by name.
    pending: HashMap<String, Vec<u8>>,
    /// Files written since the last checkpoint (not synced yet).
    written: HashSet<String>,
    stop: bool,
}

struct Shared {
    dir: PathBuf,
    /// Held while files are written or removed, so a removal never races a write.
    apply: Mutex<()>,
    state: Mutex<State>,
    wake: Condvar,
}

/// The definitions of one directory.
pub struct DefStore {
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
}

impl DefStore {
    /// Opens the store of `dir` with the journal at `journal`: replays what the journal
    /// holds into the files (synced), starts a new generation and the file writer.
    pub fn open(dir: &Path, journal: &Path) -> Result<DefStore> {
        Self::open_with(dir, journal, DEFAULT_CAPACITY, true)
    }

    fn open_with(dir: &Path, path: &Path, capacity: u64, worker: bool) -> Result<DefStore> {
        let io = |what: &str, e| DriverError::io(format!("{what} {}", path.display()), e);
        fs::create_dir_all(dir)
            .map_err(|e| DriverError::io(format!("cannot create {}", dir.display()), e))?;
        let journal = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| io("cannot open", e))?;
        let len = journal.metadata().map_err(|e| io("cannot stat", e))?.len();
        let capacity = capacity.max(HEADER * 2);
        let (generation, end, changes) = replay(&journal, len)?;
        // What cannot be written now (a full disk) stays in the journal, pending: the
        // daemon starts all the same and the writer tries again.
        let mut pending = HashMap::new();
        for (name, data) in changes {
            let file = dir.join(format!("{name}.xml"));
            match data {
                Some(d) => {
                    if let Err(e) = write_replayed(&file, &d) {
                        log::warn!("{e}; kept in the journal");
                        pending.insert(name, d);
                    }
                }
                None => store::remove(&file)?,
            }
        }
        sync_dir(dir)?;
        if len < capacity {
            // Zeros written for real: later overwrites change no extent or size.
            let zeros = vec![0u8; (capacity - len) as usize];
            journal
                .write_all_at(&zeros, len)
                .and_then(|()| journal.sync_all())
                .map_err(|e| io("cannot extend", e))?;
            if let Some(parent) = path.parent() {
                sync_dir(parent)?;
            }
        }
        let capacity = capacity.max(len);
        let mut st = State {
            journal,
            generation,
            pos: end,
            capacity,
            pending,
            written: HashSet::new(),
            stop: false,
        };
        if st.pending.is_empty() {
            st.new_generation(path)?;
        }
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            apply: Mutex::new(()),
            state: Mutex::new(st),
            wake: Condvar::new(),
        });
        let worker = if worker {
            let s = Arc::clone(&shared);
            Some(
                std::thread::Builder::new()
                    .name("defs-writer".into())
                    .spawn(move || s.run())
                    .map_err(|e| DriverError::io("cannot start the file writer", e))?,
            )
        } else {
            None
        };
        Ok(DefStore { shared, worker })
    }

    /// The definitions the journal holds that are not in their files yet (the disk was
    /// full when the store was opened): newer than the files of the same names.
    pub fn unwritten(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let st = self.shared.state()?;
        Ok(st
            .pending
            .iter()
            .map(|(n, d)| (n.clone(), d.clone()))
            .collect())
    }

    /// Stores `data` as `name`'s definition: on disk (in the journal) when this returns,
    /// in `NAME.xml` a moment later.
    pub fn put(&self, name: &str, data: &[u8]) -> Result<()> {
        check_name(name)?;
        let rec = record(0, PUT, name, data);
        let mut st = self.shared.state()?;
        if HEADER + rec.len() as u64 > st.capacity {
            // Larger than the whole journal: written the plain way, after a checkpoint so
            // that no older record of it can be replayed over it.
            drop(st);
            let _a = self.shared.apply()?;
            let mut st = self.shared.state()?;
            self.shared.checkpoint(&mut st)?;
            return store::write_atomic(&self.shared.file(name), data);
        }
        if st.pos + rec.len() as u64 > st.capacity {
            drop(st);
            let a = self.shared.apply()?;
            st = self.shared.state()?;
            if st.pos + rec.len() as u64 > st.capacity {
                self.shared.checkpoint(&mut st)?;
            }
            drop(a);
        }
        st.append(rec, true)?;
        st.pending.insert(name.to_string(), data.to_vec());
        drop(st);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Removes `name`'s definition; its file is gone when this returns. Like
    /// `store::remove`, not synced: after a power loss it may come back, whole.
    pub fn remove(&self, name: &str) -> Result<()> {
        check_name(name)?;
        let _a = self.shared.apply()?;
        let mut st = self.shared.state()?;
        let rec = record(0, REMOVE, name, &[]);
        if st.pos + rec.len() as u64 > st.capacity {
            self.shared.checkpoint(&mut st)?;
        }
        st.append(rec, false)?;
        st.pending.remove(name);
        st.written.remove(name);
        drop(st);
        store::remove(&self.shared.file(name))
    }

    /// Writes every pending file now.
    #[cfg(test)]
    fn flush(&self) -> Result<()> {
        let _a = self.shared.apply()?;
        let batch = std::mem::take(&mut self.shared.state()?.pending);
        self.shared.write_files(batch)
    }
}

impl Drop for DefStore {
    fn drop(&mut self) {
        if let Ok(mut st) = self.shared.state.lock() {
            st.stop = true;
        }
        self.shared.wake.notify_one();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

impl Shared {
    fn state(&self) -> Result<MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| DriverError::Internal("definition store poisoned".into()))
    }

    fn apply(&self) -> Result<MutexGuard<'_, ()>> {
        self.apply
            .lock()
            .map_err(|_| DriverError::Internal("definition store poisoned".into()))
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.xml"))
    }

    /// The writer thread: waits for changes, lets them settle, writes the files.
    fn run(&self) {
        let mut failing = false;
        loop {
            {
                let Ok(mut st) = self.state() else { return };
                while st.pending.is_empty() {
                    if st.stop {
                        return;
                    }
                    st = match self.wake.wait(st) {
                        Ok(s) => s,
                        Err(_) => return,
                    };
                }
                if !st.stop {
                    drop(st);
                    // Let more changes come (and undo each other) before touching files.
                    std::thread::sleep(LINGER);
                }
            }
            // Locks in the one order used everywhere: apply, then state.
            let Ok(a) = self.apply() else { return };
            let batch = match self.state() {
                Ok(mut st) => std::mem::take(&mut st.pending),
                Err(_) => return,
            };
            match self.write_files(batch) {
                Ok(()) => failing = false,
                Err(e) => {
                    // Kept pending (and in the journal): tried again a little later,
                    // said once until it works.
                    if !failing {
                        log::warn!("{e}; tried again every {RETRY:?}");
                    }
                    failing = true;
                    drop(a);
                    std::thread::sleep(RETRY);
                }
            }
        }
    }

    /// Writes `batch` to its files (not synced: the journal holds it). Call with `apply`.
    /// What could not be written goes back to `pending`, to be tried again.
    fn write_files(&self, batch: HashMap<String, Vec<u8>>) -> Result<()> {
        let mut done = Vec::with_capacity(batch.len());
        let mut failed = Vec::new();
        let mut res = Ok(());
        for (name, data) in batch {
            match write_unsynced(&self.file(&name), &data) {
                Ok(()) => done.push(name),
                Err(e) => {
                    failed.push((name, data));
                    res = Err(e);
                }
            }
        }
        let mut st = self.state()?;
        st.written.extend(done);
        for (name, data) in failed {
            st.pending.entry(name).or_insert(data);
        }
        res
    }

    /// Makes every file current and synced, then starts a new journal generation. Call
    /// with `apply` held; `st` is the state. On failure nothing is forgotten: the journal
    /// still holds every change and the next checkpoint starts over.
    fn checkpoint(&self, st: &mut State) -> Result<()> {
        let batch = std::mem::take(&mut st.pending);
        let res = (|| {
            for (name, data) in &batch {
                write_unsynced(&self.file(name), data)?;
            }
            for name in st.written.iter().chain(batch.keys()) {
                let file = self.file(name);
                match File::open(&file) {
                    Ok(f) => f.sync_data().map_err(|e| {
                        DriverError::io(format!("cannot sync {}", file.display()), e)
                    })?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(DriverError::io(
                            format!("cannot open {}", file.display()),
                            e,
                        ))
                    }
                }
            }
            sync_dir(&self.dir)
        })();
        match res {
            Ok(()) => {
                st.written.clear();
                st.new_generation(&self.dir)
            }
            Err(e) => {
                st.pending = batch;
                Err(e)
            }
        }
    }
}

impl State {
    /// Appends a record (its generation filled in here), synced when `sync`.
    fn append(&mut self, mut rec: Vec<u8>, sync: bool) -> Result<()> {
        rec[4..12].copy_from_slice(&self.generation.to_be_bytes());
        let n = rec.len();
        let crc = crc32fast::hash(&rec[..n - 4]);
        rec[n - 4..].copy_from_slice(&crc.to_be_bytes());
        self.journal
            .write_all_at(&rec, self.pos)
            .and_then(|()| {
                if sync {
                    self.journal.sync_data()
                } else {
                    Ok(())
                }
            })
            .map_err(|e| DriverError::io("cannot write the definition journal", e))?;
        self.pos += n as u64;
        Ok(())
    }

    /// Starts a new generation: what the journal held before no longer counts.
    fn new_generation(&mut self, what: &Path) -> Result<()> {
        let next = self.generation + 1;
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(MAGIC);
        h.extend_from_slice(&VERSION.to_be_bytes());
        h.extend_from_slice(&next.to_be_bytes());
        let crc = crc32fast::hash(&h);
        h.extend_from_slice(&crc.to_be_bytes());
        self.journal
            .write_all_at(&h, 0)
            .and_then(|()| self.journal.sync_data())
            .map_err(|e| {
                DriverError::io(format!("cannot reset the journal of {}", what.display()), e)
            })?;
        self.generation = next;
        self.pos = HEADER;
        Ok(())
    }
}

/// A name a record can hold, and a file name.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > u16::MAX as usize || name.contains('/') {
        return Err(DriverError::InvalidArg(format!("unusable name '{name}'")));
    }
    Ok(())
}

/// A record with its generation and CRC left blank (filled in by `append`).
fn record(generation: u64, kind: u8, name: &str, data: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(REC_HEAD + name.len() + data.len() + 4);
    r.extend_from_slice(&REC_MAGIC.to_be_bytes());
    r.extend_from_slice(&generation.to_be_bytes());
    r.push(kind);
    r.extend_from_slice(&(name.len() as u16).to_be_bytes());
    r.extend_from_slice(&(data.len() as u32).to_be_bytes());
    r.extend_from_slice(name.as_bytes());
    r.extend_from_slice(data);
    r.extend_from_slice(&[0; 4]);
    r
}

/// Reads the journal: its generation, where its valid records end, and the last change it
/// holds for each name (in the order first seen). Stops at the first record that is not
/// whole, valid and current.
#[allow(clippy::type_complexity)]
fn replay(journal: &File, len: u64) -> Result<(u64, u64, Vec<(String, Option<Vec<u8>>)>)> {
    let mut buf = vec![0u8; len as usize];
    journal
        .read_exact_at(&mut buf, 0)
        .map_err(|e| DriverError::io("cannot read the definition journal", e))?;
    let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let be64 = |b: &[u8]| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[..8]);
        u64::from_be_bytes(a)
    };
    if buf.len() < 24
        || &buf[..8] != MAGIC
        || be32(&buf[8..]) != VERSION
        || be32(&buf[20..]) != crc32fast::hash(&buf[..20])
    {
        return Ok((0, HEADER, Vec::new()));
    }
    let generation = be64(&buf[12..]);
    let mut order: Vec<String> = Vec::new();
    let mut last: HashMap<String, Option<Vec<u8>>> = HashMap::new();
    let mut at = HEADER as usize;
    while at + REC_HEAD + 4 <= buf.len() {
        let r = &buf[at..];
        if be32(r) != REC_MAGIC || be64(&r[4..]) != generation {
            break;
        }
        let kind = r[12];
        let nlen = u16::from_be_bytes([r[13], r[14]]) as usize;
        let dlen = be32(&r[15..]) as usize;
        let total = REC_HEAD + nlen + dlen + 4;
        if at + total > buf.len() || be32(&r[total - 4..]) != crc32fast::hash(&r[..total - 4]) {
            break;
        }
        let Ok(name) = std::str::from_utf8(&r[REC_HEAD..REC_HEAD + nlen]) else {
            break;
        };
        let data = &r[REC_HEAD + nlen..REC_HEAD + nlen + dlen];
        let change = match kind {
            PUT => Some(data.to_vec()),
            REMOVE => None,
            _ => break,
        };
        if last.insert(name.to_string(), change).is_none() {
            order.push(name.to_string());
        }
        at += total;
    }
    let changes = order
        .into_iter()
        .filter_map(|n| last.remove(&n).map(|c| (n, c)))
        .collect();
    Ok((generation, at as u64, changes))
}

/// A replayed definition into its file, synced: left as it is when it already holds it
/// (so that a full disk does not refuse what needs no room).
fn write_replayed(path: &Path, data: &[u8]) -> Result<()> {
    if fs::read(path).is_ok_and(|old| old == data) {
        return File::open(path)
            .and_then(|f| f.sync_data())
            .map_err(|e| DriverError::io(format!("cannot sync {}", path.display()), e));
    }
    store::write_atomic(path, data)
}

/// Temp file and rename, not synced: the journal keeps the data until a checkpoint.
fn write_unsynced(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let res = File::create(&tmp)
        .and_then(|mut f| f.write_all(data))
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(DriverError::io(
            format!("cannot write {}", path.display()),
            e,
        ));
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| DriverError::io(format!("cannot sync {}", dir.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read_to_string(e.path()).unwrap_or_default(),
                )
            })
            .collect();
        v.sort();
        v
    }

    fn pair(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    #[test]
    fn what_was_journaled_survives_a_crash_before_the_files_were_written() {
        let t = tempfile::tempdir().unwrap();
        let (dir, j) = (t.path().join("qemu"), t.path().join("qemu.journal"));
        let s = DefStore::open_with(&dir, &j, DEFAULT_CAPACITY, false).unwrap();
        s.put("a", b"one").unwrap();
        s.put("b", b"two").unwrap();
        s.put("a", b"three").unwrap();
        s.put("c", b"four").unwrap();
        s.remove("c").unwrap();
        // No writer ran: nothing but the journal has it.
        assert!(files(&dir).is_empty());
        std::mem::forget(s); // a crash: nothing flushed
        let s = DefStore::open_with(&dir, &j, DEFAULT_CAPACITY, false).unwrap();
        assert_eq!(files(&dir), [pair("a.xml", "three"), pair("b.xml", "two")]);
        // The journal started over: opening again changes nothing.
        s.remove("b").unwrap();
        drop(s);
        let _s = DefStore::open_with(&dir, &j, DEFAULT_CAPACITY, false).unwrap();
        assert_eq!(files(&dir), [pair("a.xml", "three")]);
    }

    #[test]
    fn a_torn_or_stale_tail_is_not_replayed() {
        let t = tempfile::tempdir().unwrap();
        let (dir, j) = (t.path().join("qemu"), t.path().join("qemu.journal"));
        let s = DefStore::open_with(&dir, &j, DEFAULT_CAPACITY, false).unwrap();
        s.put("a", b"one").unwrap();
        let end = s.shared.state().unwrap().pos;
        s.put("b", b"two").unwrap();
        std::mem::forget(s);
        // Damage the last record's last byte, as a torn write would.
        let f = OpenOptions::new().write(true).open(&j).unwrap();
        let len = (record(0, PUT, "b", b"two").len()) as u64;
        f.write_all_at(&[0xff], end + len - 1).unwrap();
        let s = DefStore::open_with(&dir, &j, DEFAULT_CAPACITY, false).unwrap();
        assert_eq!(files(&dir), [pair("a.xml", "one")]);
        // A new generation: the old records behind the new ones are ignored.
        s.put("c", b"x").unwrap();
        std::mem::forget(s);
        let _s = DefStore::open_with(&dir, &j, DEFAULT_CAPACITY, false).unwrap();
        assert_eq!(files(&dir), [pair("a.xml", "one"), pair("c.xml", "x")]);
    }

    #[test]
    fn a_full_journal_checkpoints_and_oversized_definitions_still_store() {
        let t = tempfile::tempdir().unwrap();
        let (dir, j) = (t.path().join("qemu"), t.path().join("qemu.journal"));
        let s = DefStore::open_with(&dir, &j, 2 * HEADER, false).unwrap();
        for i in 0..200 {
            s.put(&format!("d{}", i % 7), format!("v{i}").as_bytes())
                .unwrap();
        }
        s.put("big", &vec![b'x'; 3 * HEADER as usize]).unwrap();
        std::mem::forget(s);
        let _s = DefStore::open_with(&dir, &j, 2 * HEADER, false).unwrap();
        let f = files(&dir);
        assert_eq!(f.len(), 8);
        assert_eq!(f[0].0, "big.xml");
        assert_eq!(f[0].1.len(), 3 * HEADER as usize);
        assert!(f.contains(&pair("d0.xml", "v196")));
        assert!(f.contains(&pair("d6.xml", "v195")));
    }

    #[test]
    fn what_cannot_be_written_at_open_stays_journaled_and_pending() {
        let t = tempfile::tempdir().unwrap();
        let (dir, j) = (t.path().join("qemu"), t.path().join("qemu.journal"));
        let s = DefStore::open_with(&dir, &j, DEFAULT_CAPACITY, false).unwrap();
        s.put("a", b"one").unwrap();
        s.put("b", b"two").unwrap();
        std::mem::forget(s);
        // b.xml cannot be made (as on a full disk): the store opens all the same.
        fs::create_dir_all(dir.join("b.xml/x")).unwrap();
        let s = DefStore::open_with(&dir, &j, DEFAULT_CAPACITY, false).unwrap();
        assert_eq!(s.unwritten().unwrap(), [("b".to_string(), b"two".to_vec())]);
        s.put("c", b"three").unwrap();
        std::mem::forget(s);
        // Nothing was forgotten: once it can be, everything is written.
        fs::remove_dir_all(dir.join("b.xml")).unwrap();
        let s = DefStore::open_with(&dir, &j, DEFAULT_CAPACITY, false).unwrap();
        assert!(s.unwritten().unwrap().is_empty());
        assert_eq!(
            files(&dir),
            [
                pair("a.xml", "one"),
                pair("b.xml", "two"),
                pair("c.xml", "three")
            ]
        );
    }

    #[test]
    fn names_that_cannot_be_files_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let (dir, j) = (t.path().join("qemu"), t.path().join("qemu.journal"));
        let s = DefStore::open_with(&dir, &j, DEFAULT_CAPACITY, false).unwrap();
        for bad in ["", "a/b", &"x".repeat(70_000)] {
            assert!(matches!(s.put(bad, b"x"), Err(DriverError::InvalidArg(_))));
            assert!(matches!(s.remove(bad), Err(DriverError::InvalidArg(_))));
        }
    }

    #[test]
    fn the_writer_writes_files_and_skips_what_was_undone() {
        let t = tempfile::tempdir().unwrap();
        let (dir, j) = (t.path().join("qemu"), t.path().join("qemu.journal"));
        let s = DefStore::open(&dir, &j).unwrap();
        s.put("gone", b"soon").unwrap();
        s.remove("gone").unwrap();
        s.put("kept", b"yes").unwrap();
        s.flush().unwrap();
        assert_eq!(files(&dir), [pair("kept.xml", "yes")]);
        s.put("later", b"too").unwrap();
        drop(s); // the writer finishes what is pending
        assert_eq!(
            files(&dir),
            [pair("kept.xml", "yes"), pair("later.xml", "too")]
        );
    }
}
