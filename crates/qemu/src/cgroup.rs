//! The VM's own cgroup: QEMU goes into it at start, so that the domain's memory limits
//! (`<memtune>`), CPU share and bandwidth (`<cputune>` shares, global period and quota)
//! and block I/O weight (`<blkiotune>`) act on it, and `memtune` / `schedinfo` /
//! `blkiotune` change them while it runs. The VM's shim makes it and removes it; the QEMU
//! daemon removes what a shim that died left. cgroup v1 (a directory per controller,
//! under the shim's own cgroup of that controller) and v2 (one directory beside the
//! shim's own, with the controllers its parent hands down). Where the host gives none,
//! the VM runs without, and only asking for a tunable fails.

use std::path::{Path, PathBuf};

/// Where a value of libvirt's memory tunables means "no limit" (KiB).
pub const MEMORY_UNLIMITED: u64 = 9_007_199_254_740_991;

/// The controllers Vireo uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ctl {
    Cpu,
    Memory,
    Blkio,
}

impl Ctl {
    fn v1_name(self) -> &'static str {
        match self {
            Ctl::Cpu => "cpu",
            Ctl::Memory => "memory",
            Ctl::Blkio => "blkio",
        }
    }

    fn v2_name(self) -> &'static str {
        match self {
            Ctl::Cpu => "cpu",
            Ctl::Memory => "memory",
            Ctl::Blkio => "io",
        }
    }

    /// How libvirt names the controller in its errors.
    pub fn shown(self) -> &'static str {
        match self {
            Ctl::Cpu => "CPU",
            Ctl::Memory => "memory",
            Ctl::Blkio => "blkio",
        }
    }
}

/// The VM's cgroup: its directory per controller (v1) or its one directory (v2).
#[derive(Debug)]
pub struct Cgroup {
    v2: bool,
    dirs: Vec<(Ctl, PathBuf)>,
}

/// A mounted cgroup hierarchy: its mount point, the hierarchy path mounted there, and its
/// controllers (v1) or none (v2).
struct Mount {
    point: PathBuf,
    root: String,
    controllers: Vec<String>,
    v2: bool,
}

fn mounts(mountinfo: &str) -> Vec<Mount> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let f: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        let (Some(root), Some(point), Some(fstype)) = (f.get(3), f.get(4), r.first()) else {
            continue;
        };
        let v2 = *fstype == "cgroup2";
        if *fstype != "cgroup" && !v2 {
            continue;
        }
        let controllers = r
            .get(2)
            .map(|o| o.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        out.push(Mount {
            point: PathBuf::from(point.replace("\\040", " ")),
            root: root.to_string(),
            controllers,
            v2,
        });
    }
    out
}

/// `/proc/self/cgroup`: (hierarchy's controllers, path) per line; v2's line has none.
fn own_paths(cgroup: &str) -> Vec<(Vec<String>, String)> {
    cgroup
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            let ctls = it.next()?;
            let path = it.next()?;
            let ctls = ctls
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
            Some((ctls, path.to_string()))
        })
        .collect()
}

/// `path` (a hierarchy path) under a mount of `root` at `point`.
fn under(point: &Path, root: &str, path: &str) -> PathBuf {
    let rel = path.strip_prefix(root).unwrap_or(path);
    point.join(rel.trim_start_matches('/'))
}

/// Where the cgroup `name` of a VM started by this process goes: (controller, directory)
/// for v1, or the one v2 directory (and its parent); `None` without cgroups.
fn places(name: &str) -> Option<Places> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let ms = mounts(&info);
    let paths = own_paths(&own);
    let v1: Vec<&Mount> = ms.iter().filter(|m| !m.v2).collect();
    if v1
        .iter()
        .any(|m| m.controllers.iter().any(|c| c == "memory"))
    {
        let mut dirs = Vec::new();
        for ctl in [Ctl::Cpu, Ctl::Memory, Ctl::Blkio] {
            let want = ctl.v1_name();
            let Some(m) = v1.iter().find(|m| m.controllers.iter().any(|c| c == want)) else {
                continue;
            };
            let Some((_, path)) = paths.iter().find(|(c, _)| c.iter().any(|c| c == want)) else {
                continue;
            };
            dirs.push((ctl, under(&m.point, &m.root, path).join(name)));
        }
        return Some(Places::V1(dirs));
    }
    let m = ms.iter().find(|m| m.v2)?;
    let (_, own) = paths.iter().find(|(c, _)| c.is_empty())?;
    // A v2 cgroup with processes cannot hand controllers down: the VM's cgroup goes
    // beside this process's own (under the root when this process is in it).
    let own_dir = under(&m.point, &m.root, own);
    let parent = if own == "/" {
        own_dir
    } else {
        own_dir.parent()?.to_path_buf()
    };
    Some(Places::V2 {
        dir: parent.join(name),
        parent,
    })
}

enum Places {
    V1(Vec<(Ctl, PathBuf)>),
    V2 { parent: PathBuf, dir: PathBuf },
}

/// Removes what is left of the cgroup `name` of a VM whose shim died without removing it
/// (its QEMU gone or going); true when nothing is left.
pub fn remove_leftover(name: &str) -> bool {
    let dirs: Vec<PathBuf> = match places(name) {
        None => return true,
        Some(Places::V1(d)) => d.into_iter().map(|(_, d)| d).collect(),
        Some(Places::V2 { dir, .. }) => vec![dir],
    };
    let mut all = true;
    for d in dirs {
        remove_children(&d);
        match std::fs::remove_dir(&d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => all = false,
        }
    }
    all
}

/// Removes the cgroups under `dir` (the VM's threads' own).
fn remove_children(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir(e.path());
        }
    }
}

/// The name of the cgroup of the VM with this UUID.
pub fn name_of(uuid: &str) -> String {
    format!("vireo-qemu-{uuid}")
}

impl Cgroup {
    /// Makes the cgroup `name` for the process `pid` (a child of this one, in this
    /// process's cgroups) and moves it in, all its threads. `None` when the host gives
    /// this process no cgroup it may make children in.
    ///
    /// The VM's last run may have left its cgroup for a moment, removed by that run's
    /// shim (or by the daemon, for a shim that died) just after this one found it there:
    /// it is then made again.
    pub fn create(name: &str, pid: u32) -> Option<Cgroup> {
        for _ in 0..3 {
            let cg = match places(name)? {
                Places::V1(dirs) => Self::create_v1(dirs),
                Places::V2 { parent, dir } => Self::create_v2(&parent, dir),
            }?;
            match cg.add(pid) {
                Ok(()) => return Some(cg),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    eprintln!("cannot move QEMU into its cgroup: {e}");
                    return None;
                }
            }
        }
        eprintln!("cannot move QEMU into its cgroup: it was removed as it was made");
        None
    }

    fn create_v1(places: Vec<(Ctl, PathBuf)>) -> Option<Cgroup> {
        let mut dirs = Vec::new();
        for (ctl, dir) in places {
            match std::fs::create_dir(&dir) {
                Ok(()) => dirs.push((ctl, dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => dirs.push((ctl, dir)),
                Err(e) => eprintln!(
                    "no {} cgroup for the VM ({}: {e})",
                    ctl.v1_name(),
                    dir.display()
                ),
            }
        }
        (!dirs.is_empty()).then_some(Cgroup { v2: false, dirs })
    }

    fn create_v2(parent: &Path, dir: PathBuf) -> Option<Cgroup> {
        let enable = ["cpu", "memory", "io"]
            .iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(" ");
        // Controllers the parent has but does not hand down yet; refusals are fine.
        let _ = std::fs::write(parent.join("cgroup.subtree_control"), enable);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                eprintln!("no cgroup for the VM ({}: {e})", dir.display());
                return None;
            }
        }
        let have = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        let dirs = [Ctl::Cpu, Ctl::Memory, Ctl::Blkio]
            .into_iter()
            .filter(|c| have.split_whitespace().any(|h| h == c.v2_name()))
            .map(|c| (c, dir.clone()))
            .collect();
        Some(Cgroup { v2: true, dirs })
    }

    fn add(&self, pid: u32) -> std::io::Result<()> {
        let mut done: Vec<&Path> = Vec::new();
        for (_, d) in &self.dirs {
            if done.contains(&d.as_path()) {
                continue;
            }
            std::fs::write(d.join("cgroup.procs"), pid.to_string())?;
            done.push(d);
        }
        Ok(())
    }

    /// Removes the directories (the VM's processes are gone), the threads' first.
    pub fn remove(&self) {
        let mut done: Vec<&Path> = Vec::new();
        for (_, d) in &self.dirs {
            if done.contains(&d.as_path()) {
                continue;
            }
            remove_children(d);
            if let Err(e) = std::fs::remove_dir(d) {
                // Gone already, or (a shim ending before its QEMU) still in use.
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ResourceBusy
                ) {
                    eprintln!("cannot remove the VM's cgroup {}: {e}", d.display());
                }
            }
            done.push(d);
        }
    }

    /// The directory of controller `c`, if the VM has it.
    pub fn dir(&self, c: Ctl) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(x, _)| *x == c)
            .map(|(_, d)| d.as_path())
    }

    fn need(&self, c: Ctl) -> Result<&Path, String> {
        self.dir(c)
            .ok_or_else(|| format!("cgroup {} controller is not mounted", c.shown()))
    }

    fn write(&self, c: Ctl, file: &str, value: &str) -> Result<(), String> {
        let path = self.need(c)?.join(file);
        std::fs::write(&path, value).map_err(|e| format!("cannot set {}: {e}", path.display()))
    }

    fn read(&self, c: Ctl, file: &str) -> Result<String, String> {
        let path = self.need(c)?.join(file);
        std::fs::read_to_string(&path)
            .map(|s| s.trim().to_string())
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
    }

    /// The first of `files` this controller has.
    fn first_of<'a>(&self, c: Ctl, files: &[&'a str]) -> Result<&'a str, String> {
        let d = self.need(c)?;
        files
            .iter()
            .find(|f| d.join(f).exists())
            .copied()
            .ok_or_else(|| format!("cgroup {} controller has none of {files:?}", c.shown()))
    }

    /// Memory limits in KiB (hard, soft, swap hard: memory and swap together, as libvirt
    /// counts it); [`MEMORY_UNLIMITED`] for none.
    pub fn memory(&self) -> Result<(u64, u64, u64), String> {
        let kib = |v: &str| -> u64 {
            match v.parse::<u64>() {
                // The kernel's "no limit" is the largest page count it keeps, in bytes.
                Ok(b) if b < 1 << 62 => b / 1024,
                _ => MEMORY_UNLIMITED,
            }
        };
        if self.v2 {
            let hard = kib(&self.read(Ctl::Memory, "memory.max")?);
            let soft = kib(&self.read(Ctl::Memory, "memory.high")?);
            let swap = self
                .read(Ctl::Memory, "memory.swap.max")
                .map(|v| kib(&v))
                .unwrap_or(MEMORY_UNLIMITED);
            let swap = if hard == MEMORY_UNLIMITED || swap == MEMORY_UNLIMITED {
                MEMORY_UNLIMITED
            } else {
                hard + swap
            };
            return Ok((hard, soft, swap));
        }
        let hard = kib(&self.read(Ctl::Memory, "memory.limit_in_bytes")?);
        let soft = kib(&self.read(Ctl::Memory, "memory.soft_limit_in_bytes")?);
        let swap = self
            .read(Ctl::Memory, "memory.memsw.limit_in_bytes")
            .map(|v| kib(&v))
            .unwrap_or(MEMORY_UNLIMITED);
        Ok((hard, soft, swap))
    }

    /// Sets the memory limits given (KiB; [`MEMORY_UNLIMITED`] lifts one).
    pub fn set_memory(
        &self,
        hard: Option<u64>,
        soft: Option<u64>,
        swap: Option<u64>,
    ) -> Result<(), String> {
        let bytes = |kib: u64, none: &str| -> String {
            if kib >= MEMORY_UNLIMITED {
                none.to_string()
            } else {
                (kib.saturating_mul(1024)).to_string()
            }
        };
        if self.v2 {
            if let Some(h) = hard {
                self.write(Ctl::Memory, "memory.max", &bytes(h, "max"))?;
            }
            if let Some(s) = soft {
                self.write(Ctl::Memory, "memory.high", &bytes(s, "max"))?;
            }
            if let Some(sw) = swap {
                // v2 counts swap apart from memory.
                let hard = hard.unwrap_or(self.memory()?.0);
                let only_swap = if sw >= MEMORY_UNLIMITED || hard >= MEMORY_UNLIMITED {
                    MEMORY_UNLIMITED
                } else {
                    sw.saturating_sub(hard)
                };
                self.write(Ctl::Memory, "memory.swap.max", &bytes(only_swap, "max"))?;
            }
            return Ok(());
        }
        // memory and swap together may not be below memory alone: raise that first when
        // both grow, lower memory first when both shrink.
        let (cur_hard, _, _) = self.memory()?;
        let swap_first = matches!((hard, swap), (Some(h), Some(_)) if h > cur_hard);
        let set_swap =
            |sw: u64| self.write(Ctl::Memory, "memory.memsw.limit_in_bytes", &bytes(sw, "-1"));
        if swap_first {
            if let Some(sw) = swap {
                set_swap(sw)?;
            }
        }
        if let Some(h) = hard {
            self.write(Ctl::Memory, "memory.limit_in_bytes", &bytes(h, "-1"))?;
        }
        if !swap_first {
            if let Some(sw) = swap {
                set_swap(sw)?;
            }
        }
        if let Some(s) = soft {
            self.write(Ctl::Memory, "memory.soft_limit_in_bytes", &bytes(s, "-1"))?;
        }
        Ok(())
    }

    /// The CPU share, as cgroup v1 counts it (v2's weight converted as libvirt does).
    pub fn cpu_shares(&self) -> Result<u64, String> {
        if self.v2 {
            let w: u64 = self
                .read(Ctl::Cpu, "cpu.weight")?
                .parse()
                .map_err(|e| format!("cpu.weight: {e}"))?;
            return Ok(2 + (w.saturating_sub(1)) * 262_142 / 9_999);
        }
        self.read(Ctl::Cpu, "cpu.shares")?
            .parse()
            .map_err(|e| format!("cpu.shares: {e}"))
    }

    pub fn set_cpu_shares(&self, shares: u64) -> Result<(), String> {
        if self.v2 {
            let w = 1 + (shares.clamp(2, 262_144) - 2) * 9_999 / 262_142;
            return self.write(Ctl::Cpu, "cpu.weight", &w.to_string());
        }
        self.write(Ctl::Cpu, "cpu.shares", &shares.to_string())
    }

    /// The CPU bandwidth: (period µs, quota µs; -1 for none).
    pub fn cpu_bandwidth(&self) -> Result<(u64, i64), String> {
        if self.v2 {
            let v = self.read(Ctl::Cpu, "cpu.max")?;
            let mut it = v.split_whitespace();
            let quota = match it.next() {
                Some("max") | None => -1,
                Some(q) => q.parse().map_err(|e| format!("cpu.max: {e}"))?,
            };
            let period = it.next().and_then(|p| p.parse().ok()).unwrap_or(100_000);
            return Ok((period, quota));
        }
        let period = self
            .read(Ctl::Cpu, "cpu.cfs_period_us")?
            .parse()
            .map_err(|e| format!("cpu.cfs_period_us: {e}"))?;
        let quota = self
            .read(Ctl::Cpu, "cpu.cfs_quota_us")?
            .parse()
            .map_err(|e| format!("cpu.cfs_quota_us: {e}"))?;
        Ok((period, quota))
    }

    /// Sets the period and/or the quota (-1: none).
    pub fn set_cpu_bandwidth(&self, period: Option<u64>, quota: Option<i64>) -> Result<(), String> {
        if self.v2 {
            let (p0, q0) = self.cpu_bandwidth()?;
            let p = period.unwrap_or(p0);
            let q = quota.unwrap_or(q0);
            let q = if q < 0 {
                "max".to_string()
            } else {
                q.to_string()
            };
            return self.write(Ctl::Cpu, "cpu.max", &format!("{q} {p}"));
        }
        if let Some(p) = period {
            self.write(Ctl::Cpu, "cpu.cfs_period_us", &p.to_string())?;
        }
        if let Some(q) = quota {
            self.write(Ctl::Cpu, "cpu.cfs_quota_us", &q.max(-1).to_string())?;
        }
        Ok(())
    }

    fn weight_file(&self) -> Result<&'static str, String> {
        if self.v2 {
            self.first_of(Ctl::Blkio, &["io.weight", "io.bfq.weight"])
        } else {
            self.first_of(Ctl::Blkio, &["blkio.weight", "blkio.bfq.weight"])
        }
    }

    /// The block I/O weight.
    pub fn blkio_weight(&self) -> Result<u32, String> {
        let f = self.weight_file()?;
        let v = self.read(Ctl::Blkio, f)?;
        // v2 writes "default N" (and per-device lines).
        let n = v
            .lines()
            .next()
            .map(|l| l.trim_start_matches("default").trim())
            .unwrap_or("");
        n.parse().map_err(|e| format!("{f}: {e}"))
    }

    /// Whether the VM's threads can have cgroups of their own for CPU bandwidth (v1's cpu
    /// controller; v2's threaded cgroups are not used).
    pub fn has_thread_groups(&self) -> bool {
        !self.v2 && self.dir(Ctl::Cpu).is_some()
    }

    /// Moves each thread into the CPU cgroup `name` beside it (`vcpu0`, `emulator`,
    /// `iothread1`, as libvirt names them), made when missing.
    pub fn place_threads(&self, threads: &[(String, i32)]) -> Result<(), String> {
        if !self.has_thread_groups() {
            return Err("per-thread CPU cgroups need cgroup v1's cpu controller".into());
        }
        let cpu = self.need(Ctl::Cpu)?;
        for (name, tid) in threads {
            let dir = cpu.join(name);
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(format!("cannot make {}: {e}", dir.display())),
            }
            match std::fs::write(dir.join("tasks"), tid.to_string()) {
                Ok(()) => {}
                // The thread ended meanwhile.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) => {
                    return Err(format!(
                        "cannot move thread {tid} into {}: {e}",
                        dir.display()
                    ))
                }
            }
        }
        Ok(())
    }

    /// The thread cgroups there are whose names start with `prefix` (`vcpu`, `iothread`,
    /// `emulator`).
    pub fn thread_groups(&self, prefix: &str) -> Vec<String> {
        let Some(cpu) = self.dir(Ctl::Cpu) else {
            return Vec::new();
        };
        let mut v: Vec<String> = std::fs::read_dir(cpu)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| n.starts_with(prefix))
            .collect();
        v.sort();
        v
    }

    /// The bandwidth of thread cgroup `name`: (period µs, quota µs; -1 for none).
    pub fn thread_bandwidth(&self, name: &str) -> Result<(u64, i64), String> {
        let file = |f: &str| format!("{name}/{f}");
        let period = self
            .read(Ctl::Cpu, &file("cpu.cfs_period_us"))?
            .parse()
            .map_err(|e| format!("{name} cpu.cfs_period_us: {e}"))?;
        let quota = self
            .read(Ctl::Cpu, &file("cpu.cfs_quota_us"))?
            .parse()
            .map_err(|e| format!("{name} cpu.cfs_quota_us: {e}"))?;
        Ok((period, quota))
    }

    /// Sets the period and/or quota of thread cgroup `name`.
    pub fn set_thread_bandwidth(
        &self,
        name: &str,
        period: Option<u64>,
        quota: Option<i64>,
    ) -> Result<(), String> {
        if let Some(p) = period {
            self.write(
                Ctl::Cpu,
                &format!("{name}/cpu.cfs_period_us"),
                &p.to_string(),
            )?;
        }
        if let Some(q) = quota {
            self.write(
                Ctl::Cpu,
                &format!("{name}/cpu.cfs_quota_us"),
                &q.max(-1).to_string(),
            )?;
        }
        Ok(())
    }

    /// Sets per-device value `kind` (weight, read / write IOPS, read / write bytes per
    /// second, as [`crate::tune::DeviceValue`] numbers them) for the block device at
    /// `path`; 0 takes it away.
    pub fn set_device(&self, kind: usize, path: &str, value: u64) -> Result<(), String> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let m = std::fs::metadata(path).map_err(|e| format!("cannot stat {path}: {e}"))?;
        if !m.file_type().is_block_device() {
            return Err(format!("{path} is not a block device"));
        }
        let dev = m.rdev();
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
        let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
        let id = format!("{major}:{minor}");
        if self.v2 {
            if kind == 0 {
                let f = self.first_of(Ctl::Blkio, &["io.weight", "io.bfq.weight"])?;
                let v = if value == 0 {
                    "default".to_string()
                } else {
                    value.to_string()
                };
                return self.write(Ctl::Blkio, f, &format!("{id} {v}"));
            }
            let key = ["", "riops", "wiops", "rbps", "wbps"][kind.min(4)];
            let v = if value == 0 {
                "max".to_string()
            } else {
                value.to_string()
            };
            return self.write(Ctl::Blkio, "io.max", &format!("{id} {key}={v}"));
        }
        let file = match kind {
            0 => self.first_of(
                Ctl::Blkio,
                &["blkio.weight_device", "blkio.bfq.weight_device"],
            )?,
            1 => "blkio.throttle.read_iops_device",
            2 => "blkio.throttle.write_iops_device",
            3 => "blkio.throttle.read_bps_device",
            _ => "blkio.throttle.write_bps_device",
        };
        self.write(Ctl::Blkio, file, &format!("{id} {value}"))
    }

    pub fn set_blkio_weight(&self, w: u32) -> Result<(), String> {
        let f = self.weight_file()?;
        let v = if self.v2 && f == "io.weight" {
            format!("default {w}")
        } else {
            w.to_string()
        };
        self.write(Ctl::Blkio, f, &v)
    }
}

impl Drop for Cgroup {
    /// A start that failed, or a shim that ends: the directories go (QEMU is gone).
    fn drop(&mut self) {
        self.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_and_own_paths_are_read() {
        let info = "30 25 0:26 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                    31 25 0:27 /sub /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu,cpuacct\n\
                    32 25 0:28 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
                    33 25 0:29 / /proc rw - proc proc rw\n";
        let ms = mounts(info);
        assert_eq!(ms.len(), 3);
        assert!(ms[1].controllers.iter().any(|c| c == "cpuacct"));
        assert!(ms[2].v2);
        let own = own_paths("4:memory:/a/b\n1:cpu,cpuacct:/sub/x\n0::/\n");
        assert_eq!(own[1].0, ["cpu", "cpuacct"]);
        assert!(own[2].0.is_empty());
        assert_eq!(
            under(&ms[1].point, &ms[1].root, &own[1].1),
            PathBuf::from("/sys/fs/cgroup/cpu/x")
        );
        assert_eq!(
            under(&ms[0].point, &ms[0].root, "/a/b"),
            PathBuf::from("/sys/fs/cgroup/memory/a/b")
        );
    }
}
