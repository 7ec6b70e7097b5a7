//! The VM's statistics, gathered where they are: QEMU's monitor (block counters, image
//! sizes, the balloon, vCPU threads), `/proc` (QEMU's CPU time and memory) and the host
//! side of each tap (`/proc/net/dev`). One [`Vm::stats`] call gives the typed parameters
//! of `virConnectGetAllDomainStats`; the single-purpose calls (block, interface and
//! memory statistics, block info) read the same sources.

use serde_json::Value;
use vireo_proto::typed::{TypedParam, TypedValue};

use crate::serve::{args, ret, to_remote};
use crate::vm::Vm;
use vireo_proto::remote::*;
use vireo_proto::RemoteError;

/// A call's argument names nothing this VM has: libvirt's "invalid argument".
#[derive(Debug)]
pub struct BadArg(pub String);
impl std::fmt::Display for BadArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid argument: {}", self.0)
    }
}
impl std::error::Error for BadArg {}

/// `VIR_DOMAIN_BLOCK_STATS` field names (`virDomainBlockStatsFlags`).
const BLOCK_FIELDS: [&str; 8] = [
    "rd_operations",
    "rd_bytes",
    "rd_total_times",
    "wr_operations",
    "wr_bytes",
    "wr_total_times",
    "flush_operations",
    "flush_total_times",
];

/// The statistics calls, for this shim's domain.
pub async fn serve(vm: &Vm, p: i32, payload: &[u8]) -> Result<Vec<u8>, RemoteError> {
    let mine = |dom: &Domain| crate::serve::check_uuid(vm, &dom.uuid);
    let err = |e: anyhow::Error| to_remote(&e);
    match p {
        procs::CONNECT_GET_ALL_DOMAIN_STATS => {
            let a: ConnectGetAllDomainStatsArgs = args(payload)?;
            let [dom] = a.doms.0.as_slice() else {
                return Err(RemoteError::rpc("a shim reports its own domain only"));
            };
            mine(dom)?;
            let groups = if a.stats == 0 {
                stats_group::SUPPORTED
            } else {
                a.stats
            };
            let backing = a.flags & stats_flag::BACKING != 0;
            ret(ConnectGetAllDomainStatsRet {
                ret_stats: vireo_xdr::Array(vec![DomainStatsRecord {
                    dom: dom.clone(),
                    params: vireo_xdr::Array(vm.stats(groups, backing).await),
                }]),
            })
        }
        procs::DOMAIN_SET_BLOCK_THRESHOLD => {
            let a: vireo_proto::domevent::DomainSetBlockThresholdArgs = args(payload)?;
            mine(&a.dom)?;
            vm.set_block_threshold(&a).await.map_err(err)?;
            Ok(Vec::new())
        }
        procs::DOMAIN_BLOCK_STATS => {
            let a: DomainPathArgs = args(payload)?;
            mine(&a.dom)?;
            let b = vm.block_stat(&a.path).await.map_err(err)?;
            let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            ret(DomainBlockStatsRet {
                rd_req: i(b.rd_reqs),
                rd_bytes: i(b.rd_bytes),
                wr_req: i(b.wr_reqs),
                wr_bytes: i(b.wr_bytes),
                errs: -1,
            })
        }
        procs::DOMAIN_BLOCK_STATS_FLAGS => {
            let a: DomainBlockStatsFlagsArgs = args(payload)?;
            mine(&a.dom)?;
            // TYPED_PARAM_STRING_OKAY is the only flag, and no value here is a string.
            if a.flags & !4 != 0 {
                return Err(err(anyhow::anyhow!(BadArg(format!(
                    "unsupported flags (0x{:x})",
                    a.flags & !4
                )))));
            }
            let b = vm.block_stat(&a.path).await.map_err(err)?;
            if a.nparams == 0 {
                return ret(DomainBlockStatsFlagsRet {
                    params: vireo_xdr::Array(Vec::new()),
                    nparams: BLOCK_FIELDS.len() as i32,
                });
            }
            let values = [
                b.rd_reqs, b.rd_bytes, b.rd_times, b.wr_reqs, b.wr_bytes, b.wr_times, b.fl_reqs,
                b.fl_times,
            ];
            let n = usize::try_from(a.nparams)
                .unwrap_or(0)
                .min(BLOCK_FIELDS.len());
            let params: Vec<TypedParam> = BLOCK_FIELDS
                .iter()
                .zip(values)
                .take(n)
                .map(|(f, v)| {
                    TypedParam::new(*f, TypedValue::LLong(i64::try_from(v).unwrap_or(i64::MAX)))
                })
                .collect();
            let nparams = params.len() as i32;
            ret(DomainBlockStatsFlagsRet {
                params: vireo_xdr::Array(params),
                nparams,
            })
        }
        procs::DOMAIN_INTERFACE_STATS => {
            let a: DomainPathArgs = args(payload)?;
            mine(&a.dom)?;
            let n = vm.interface_stat(&a.path).map_err(err)?;
            let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            ret(DomainInterfaceStatsRet {
                rx_bytes: i(n.rx_bytes),
                rx_packets: i(n.rx_pkts),
                rx_errs: i(n.rx_errs),
                rx_drop: i(n.rx_drop),
                tx_bytes: i(n.tx_bytes),
                tx_packets: i(n.tx_pkts),
                tx_errs: i(n.tx_errs),
                tx_drop: i(n.tx_drop),
            })
        }
        procs::DOMAIN_MEMORY_STATS => {
            let a: DomainMemoryStatsArgs = args(payload)?;
            mine(&a.dom)?;
            if a.flags != 0 {
                return Err(err(anyhow::anyhow!(BadArg(format!(
                    "unsupported flags (0x{:x})",
                    a.flags
                )))));
            }
            let mut stats = vm.memory_stats().await;
            stats.truncate(a.max_stats as usize);
            ret(DomainMemoryStatsRet {
                stats: vireo_xdr::Array(stats),
            })
        }
        procs::DOMAIN_GET_VCPUS => {
            let a: DomainGetVcpusArgs = args(payload)?;
            mine(&a.dom)?;
            let (Ok(maxinfo), Ok(maplen)) = (usize::try_from(a.maxinfo), usize::try_from(a.maplen))
            else {
                return Err(err(anyhow::anyhow!(BadArg(
                    "maxinfo and maplen must not be negative".into()
                ))));
            };
            if maxinfo > VCPUINFO_MAX || maxinfo.saturating_mul(maplen) > CPUMAPS_MAX {
                return Err(err(anyhow::anyhow!(BadArg(
                    "too many vCPUs or too long a CPU map asked for".into()
                ))));
            }
            let mut info = Vec::new();
            let mut maps = Vec::new();
            for v in vm.vcpu_threads().await.into_iter().take(maxinfo) {
                info.push(VcpuInfo {
                    number: v.index,
                    state: VCPU_RUNNING,
                    cpu_time: v.time_ns,
                    cpu: v.processor,
                });
                let mut map = vec![0u8; maplen];
                for cpu in &v.affinity {
                    if let Some(b) = map.get_mut(cpu / 8) {
                        *b |= 1 << (cpu % 8);
                    }
                }
                maps.extend(map);
            }
            ret(DomainGetVcpusRet {
                info: vireo_xdr::Array(info),
                cpumaps: vireo_xdr::Opaque(maps),
            })
        }
        _ => {
            let a: DomainGetBlockInfoArgs = args(payload)?;
            mine(&a.dom)?;
            let b = vm.block_stat(&a.path).await.map_err(err)?;
            ret(DomainGetBlockInfoRet {
                allocation: b.allocation,
                capacity: b.capacity,
                physical: b.physical,
            })
        }
    }
}

/// `VIR_VCPU_RUNNING`.
const VCPU_RUNNING: i32 = 1;

/// One disk's counters and sizes.
#[derive(Debug, Default, Clone)]
pub struct BlockStat {
    /// The target (`vda`).
    pub name: String,
    /// The image QEMU has open (the top of a chain); none for an empty drive.
    pub path: Option<String>,
    pub rd_reqs: u64,
    pub rd_bytes: u64,
    pub rd_times: u64,
    pub wr_reqs: u64,
    pub wr_bytes: u64,
    pub wr_times: u64,
    pub fl_reqs: u64,
    pub fl_times: u64,
    /// Bytes of the host file in use, the guest-visible size, and the host file's size.
    pub allocation: u64,
    pub capacity: u64,
    pub physical: u64,
}

/// One interface's counters, from the guest's side.
#[derive(Debug, Default, Clone)]
pub struct IfStat {
    /// The host device (`vnet0`).
    pub name: String,
    pub rx_bytes: u64,
    pub rx_pkts: u64,
    pub rx_errs: u64,
    pub rx_drop: u64,
    pub tx_bytes: u64,
    pub tx_pkts: u64,
    pub tx_errs: u64,
    pub tx_drop: u64,
}

fn ullong(field: impl Into<String>, v: u64) -> TypedParam {
    TypedParam::new(field, TypedValue::ULLong(v))
}

fn num(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// One vCPU's thread, as `virDomainGetVcpus` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VcpuThread {
    pub index: u32,
    pub time_ns: u64,
    /// The host CPU it ran on last.
    pub processor: i32,
    /// The host CPUs it may run on.
    pub affinity: Vec<usize>,
}

/// The host CPUs thread `tid` may run on (none if it cannot be read).
pub(crate) fn affinity(tid: u64) -> Vec<usize> {
    let Ok(tid) = libc::pid_t::try_from(tid) else {
        return Vec::new();
    };
    let Ok(set) = rustix::thread::sched_getaffinity(rustix::process::Pid::from_raw(tid)) else {
        return Vec::new();
    };
    (0..rustix::thread::CpuSet::MAX_CPU)
        .filter(|&i| set.is_set(i))
        .collect()
}

/// Field `i` after the command name of a `/proc/…/stat` line (0 is the state).
fn stat_field(stat: &str, i: usize) -> Option<u64> {
    // The fields after the command name (which may hold spaces) follow the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r)?;
    rest.split_whitespace().nth(i)?.parse().ok()
}

/// `utime + stime` of a `/proc/…/stat` file, in nanoseconds: (total, user, system).
fn proc_cpu_ns(path: &str) -> (u64, u64, u64) {
    stat_cpu_ns(&std::fs::read_to_string(path).unwrap_or_default())
}

/// `utime + stime` of a `/proc/…/stat` line, in nanoseconds: (total, user, system).
fn stat_cpu_ns(stat: &str) -> (u64, u64, u64) {
    let ticks = |i: usize| stat_field(stat, i).unwrap_or(0);
    let hz = rustix::param::clock_ticks_per_second().max(1);
    let ns = 1_000_000_000 / hz;
    let (user, system) = (ticks(11) * ns, ticks(12) * ns);
    (user + system, user, system)
}

/// A host device's counters from `/proc/net/dev` (of the shim's own network namespace,
/// where its taps are): (rx bytes, packets, errors, drops, tx bytes, packets, errors, drops).
fn net_counters(dev: &str) -> Option<[u64; 8]> {
    let text = std::fs::read_to_string("/proc/net/dev").ok()?;
    let line = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(dev)?.strip_prefix(':'))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    // receive: bytes packets errs drop fifo frame compressed multicast; transmit: bytes …
    Some([at(0), at(1), at(2), at(3), at(8), at(9), at(10), at(11)])
}

/// A vCPU thread's times in nanoseconds.
struct VcpuTimes {
    index: u64,
    time: u64,
    /// Waiting on a run queue (`schedstat`'s second field).
    delay: Option<u64>,
    /// The scheduler's `wait_sum` (kernels with scheduler debugging).
    wait: Option<u64>,
}

/// The run-queue wait of a `schedstat` line ("run_ns wait_ns slices").
fn schedstat_delay(text: &str) -> Option<u64> {
    text.split_whitespace().nth(1)?.parse().ok()
}

/// `wait_sum` (milliseconds, with a fraction) of a task's `sched` file, in nanoseconds.
fn sched_wait_ns(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| {
        l.trim_start().starts_with("se.statistics.wait_sum")
            || l.trim_start().starts_with("wait_sum")
    })?;
    let ms: f64 = line.split(':').nth(1)?.trim().parse().ok()?;
    (ms.is_finite() && ms >= 0.0).then_some((ms * 1_000_000.0) as u64)
}

impl Vm {
    /// CPU time of QEMU as a whole: (total, user, system) in nanoseconds.
    pub fn cpu_times(&self) -> (u64, u64, u64) {
        proc_cpu_ns(&format!("/proc/{}/stat", self.qemu_pid()))
    }

    /// QEMU's resident memory in KiB (`VmRSS`).
    fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.qemu_pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    }

    /// Every disk the guest has, in definition order, with QEMU's counters.
    pub async fn block_stats(&self) -> Vec<BlockStat> {
        let disks: Vec<(String, String)> = self
            .disks()
            .iter()
            .filter(|d| !d.removing)
            .map(|d| (d.shown.target.dev.clone(), d.id.clone()))
            .collect();
        let qmp = self.qmp();
        let stats = qmp.execute("query-blockstats", None).await.ok();
        let block = qmp.execute("query-block", None).await.ok();
        // A device is named by its qdev id, or by its QOM path under /machine/peripheral.
        let is_dev = |v: &Value, id: &str| {
            v.get("qdev")
                .and_then(Value::as_str)
                .is_some_and(|q| q == id || q.starts_with(&format!("/machine/peripheral/{id}/")))
        };
        let find = |list: &Option<Value>, id: &str| -> Option<Value> {
            list.as_ref()?
                .as_array()?
                .iter()
                .find(|v| is_dev(v, id))
                .cloned()
        };
        disks
            .into_iter()
            .map(|(name, id)| {
                let mut b = BlockStat {
                    name,
                    ..Default::default()
                };
                if let Some(s) = find(&stats, &id).and_then(|v| v.get("stats").cloned()) {
                    b.rd_reqs = num(&s, "rd_operations");
                    b.rd_bytes = num(&s, "rd_bytes");
                    b.rd_times = num(&s, "rd_total_time_ns");
                    b.wr_reqs = num(&s, "wr_operations");
                    b.wr_bytes = num(&s, "wr_bytes");
                    b.wr_times = num(&s, "wr_total_time_ns");
                    b.fl_reqs = num(&s, "flush_operations");
                    b.fl_times = num(&s, "flush_total_time_ns");
                }
                if let Some(ins) = find(&block, &id).and_then(|v| v.get("inserted").cloned()) {
                    b.path = ins.get("file").and_then(Value::as_str).map(str::to_string);
                    if let Some(img) = ins.get("image") {
                        b.capacity = num(img, "virtual-size");
                        b.allocation = num(img, "actual-size");
                    }
                    b.physical = b
                        .path
                        .as_deref()
                        .and_then(|p| std::fs::metadata(p).ok())
                        .map_or(b.allocation, |m| {
                            use std::os::unix::fs::FileTypeExt;
                            if m.file_type().is_block_device() {
                                b.capacity
                            } else {
                                m.len()
                            }
                        });
                }
                b
            })
            .collect()
    }

    /// The interfaces with a host device (a tap), with that device's counters turned to the
    /// guest's side (what the tap sent, the guest received).
    pub fn interface_stats(&self) -> Vec<IfStat> {
        self.nics()
            .iter()
            .filter(|n| !n.removing)
            .filter_map(|n| n.def.target_dev.clone())
            .map(|dev| {
                let [hrx, hrxp, hrxe, hrxd, htx, htxp, htxe, htxd] =
                    net_counters(&dev).unwrap_or_default();
                IfStat {
                    rx_bytes: htx,
                    rx_pkts: htxp,
                    rx_errs: htxe,
                    rx_drop: htxd,
                    tx_bytes: hrx,
                    tx_pkts: hrxp,
                    tx_errs: hrxe,
                    tx_drop: hrxd,
                    name: dev,
                }
            })
            .collect()
    }

    /// The balloon's size and, when the guest reports them, its memory statistics, as
    /// `virDomainMemoryStats` tags (values in KiB, LAST_UPDATE in seconds).
    pub async fn memory_stats(&self) -> Vec<DomainMemoryStat> {
        let mut out = Vec::new();
        if crate::vm::virtio_balloon(&self.def) {
            if let Ok(g) = self
                .qmp()
                .execute(
                    "qom-get",
                    Some(serde_json::json!({
                        "path": "/machine/peripheral/balloon0",
                        "property": "guest-stats",
                    })),
                )
                .await
            {
                let stats = g.get("stats").cloned().unwrap_or(Value::Null);
                // QEMU reports bytes and counts, for what the guest gave.
                let guest = [
                    ("stat-swap-in", memory_stat::SWAP_IN, 1024),
                    ("stat-swap-out", memory_stat::SWAP_OUT, 1024),
                    ("stat-major-faults", memory_stat::MAJOR_FAULT, 1),
                    ("stat-minor-faults", memory_stat::MINOR_FAULT, 1),
                    ("stat-free-memory", memory_stat::UNUSED, 1024),
                    ("stat-total-memory", memory_stat::AVAILABLE, 1024),
                    ("stat-available-memory", memory_stat::USABLE, 1024),
                    ("stat-disk-caches", memory_stat::DISK_CACHES, 1024),
                    ("stat-htlb-pgalloc", memory_stat::HUGETLB_PGALLOC, 1),
                    ("stat-htlb-pgfail", memory_stat::HUGETLB_PGFAIL, 1),
                ];
                for (key, tag, div) in guest {
                    // QEMU's "not reported" is -1 as an unsigned 64-bit number.
                    let given = stats
                        .get(key)
                        .and_then(Value::as_u64)
                        .filter(|v| *v != u64::MAX);
                    if let Some(v) = given {
                        out.push(DomainMemoryStat { tag, val: v / div });
                    }
                }
                if let Some(t) = g.get("last-update").and_then(Value::as_u64) {
                    if t > 0 {
                        out.push(DomainMemoryStat {
                            tag: memory_stat::LAST_UPDATE,
                            val: t,
                        });
                    }
                }
            }
        }
        out.push(DomainMemoryStat {
            tag: memory_stat::ACTUAL_BALLOON,
            val: self.balloon_kib().await,
        });
        if let Some(rss) = self.rss_kib() {
            out.push(DomainMemoryStat {
                tag: memory_stat::RSS,
                val: rss,
            });
        }
        out
    }

    /// The guest's memory now, in KiB: the balloon's size, or the boot size without one.
    pub async fn balloon_kib(&self) -> u64 {
        match self.qmp().execute("query-balloon", None).await {
            Ok(v) => v
                .get("actual")
                .and_then(Value::as_u64)
                .map_or(self.memory_kib(), |b| b / 1024),
            Err(_) => self.memory_kib(),
        }
    }

    /// Each vCPU's thread: its CPU time, the host CPU it ran on last, and the host CPUs it
    /// may run on, by vCPU index.
    pub async fn vcpu_threads(&self) -> Vec<VcpuThread> {
        let Ok(v) = self.qmp().execute("query-cpus-fast", None).await else {
            return Vec::new();
        };
        let pid = self.qemu_pid();
        let mut out: Vec<VcpuThread> = v
            .as_array()
            .map(|cpus| {
                cpus.iter()
                    .map(|c| {
                        let tid = num(c, "thread-id");
                        let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat"))
                            .unwrap_or_default();
                        VcpuThread {
                            index: u32::try_from(num(c, "cpu-index")).unwrap_or(u32::MAX),
                            time_ns: stat_cpu_ns(&stat).0,
                            processor: stat_field(&stat, 36)
                                .and_then(|p| i32::try_from(p).ok())
                                .unwrap_or(-1),
                            affinity: affinity(tid),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort_unstable_by_key(|t| t.index);
        out
    }

    /// vCPU threads' CPU time in nanoseconds, by vCPU index.
    async fn vcpu_times(&self) -> Vec<VcpuTimes> {
        let Ok(v) = self.qmp().execute("query-cpus-fast", None).await else {
            return Vec::new();
        };
        let pid = self.qemu_pid();
        let mut out: Vec<VcpuTimes> = v
            .as_array()
            .map(|cpus| {
                cpus.iter()
                    .map(|c| {
                        let tid = num(c, "thread-id");
                        let task = format!("/proc/{pid}/task/{tid}");
                        VcpuTimes {
                            index: num(c, "cpu-index"),
                            time: proc_cpu_ns(&format!("{task}/stat")).0,
                            delay: std::fs::read_to_string(format!("{task}/schedstat"))
                                .ok()
                                .and_then(|t| schedstat_delay(&t)),
                            wait: std::fs::read_to_string(format!("{task}/sched"))
                                .ok()
                                .and_then(|t| sched_wait_ns(&t)),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort_unstable_by_key(|t| t.index);
        out
    }

    /// The typed parameters of `virConnectGetAllDomainStats` for the groups in `groups`
    /// (libvirt's field names and types).
    pub async fn stats(&self, groups: u32, backing: bool) -> Vec<TypedParam> {
        let mut p = Vec::new();
        if groups & stats_group::STATE != 0 {
            let (state, reason) = self.state();
            p.push(TypedParam::int("state.state", state));
            p.push(TypedParam::int("state.reason", reason));
        }
        if groups & stats_group::CPU_TOTAL != 0 {
            let (total, user, system) = self.cpu_times();
            p.push(ullong("cpu.time", total));
            p.push(ullong("cpu.user", user));
            p.push(ullong("cpu.system", system));
        }
        if groups & stats_group::BALLOON != 0 {
            p.push(ullong("balloon.current", self.balloon_kib().await));
            p.push(ullong("balloon.maximum", self.def.max_memory_kib()));
            for s in self.memory_stats().await {
                let name = match s.tag {
                    memory_stat::SWAP_IN => "swap_in",
                    memory_stat::SWAP_OUT => "swap_out",
                    memory_stat::MAJOR_FAULT => "major_fault",
                    memory_stat::MINOR_FAULT => "minor_fault",
                    memory_stat::UNUSED => "unused",
                    memory_stat::AVAILABLE => "available",
                    memory_stat::USABLE => "usable",
                    memory_stat::LAST_UPDATE => "last-update",
                    memory_stat::DISK_CACHES => "disk_caches",
                    memory_stat::HUGETLB_PGALLOC => "hugetlb_pgalloc",
                    memory_stat::HUGETLB_PGFAIL => "hugetlb_pgfail",
                    memory_stat::RSS => "rss",
                    _ => continue,
                };
                p.push(ullong(format!("balloon.{name}"), s.val));
            }
        }
        if groups & stats_group::VCPU != 0 {
            p.push(TypedParam::uint("vcpu.current", self.vcpus_now()));
            p.push(TypedParam::uint("vcpu.maximum", self.def.vcpus));
            for t in self.vcpu_times().await {
                let i = t.index;
                p.push(TypedParam::int(&format!("vcpu.{i}.state"), VCPU_RUNNING));
                p.push(ullong(format!("vcpu.{i}.time"), t.time));
                // As libvirt: the time spent waiting for a host CPU (the scheduler's
                // statistics, where the host kernel keeps them) and queued behind others.
                if let Some(w) = t.wait {
                    p.push(ullong(format!("vcpu.{i}.wait"), w));
                }
                if let Some(d) = t.delay {
                    p.push(ullong(format!("vcpu.{i}.delay"), d));
                }
            }
        }
        if groups & stats_group::INTERFACE != 0 {
            let nets = self.interface_stats();
            p.push(TypedParam::uint("net.count", nets.len() as u32));
            for (i, n) in nets.into_iter().enumerate() {
                p.push(TypedParam::string(&format!("net.{i}.name"), &n.name));
                for (k, v) in [
                    ("rx.bytes", n.rx_bytes),
                    ("rx.pkts", n.rx_pkts),
                    ("rx.errs", n.rx_errs),
                    ("rx.drop", n.rx_drop),
                    ("tx.bytes", n.tx_bytes),
                    ("tx.pkts", n.tx_pkts),
                    ("tx.errs", n.tx_errs),
                    ("tx.drop", n.tx_drop),
                ] {
                    p.push(ullong(format!("net.{i}.{k}"), v));
                }
            }
        }
        if groups & stats_group::IOTHREAD != 0 {
            p.extend(self.iothread_stats().await);
        }
        if groups & stats_group::BLOCK != 0 {
            p.extend(self.block_group(backing).await);
        }
        p
    }

    /// The `block.*` statistics: each disk (its counters, sizes and write threshold), and
    /// with `backing` each image below it in its chain (`backingIndex` 1, 2, … down).
    async fn block_group(&self, backing: bool) -> Vec<TypedParam> {
        let mut p = Vec::new();
        let blocks = self.block_stats().await;
        // (entry, backing index, layer) for the images below each disk's own.
        let mut below = Vec::new();
        if backing {
            for (i, b) in blocks.iter().enumerate() {
                if let Ok(chain) = self.chain(&b.name).await {
                    below.extend(
                        chain
                            .into_iter()
                            .enumerate()
                            .skip(1)
                            .map(|(k, l)| (i, k, l)),
                    );
                }
            }
        }
        let tops: Vec<Option<String>> = blocks
            .iter()
            .map(|b| {
                self.disks()
                    .iter()
                    .find(|d| d.shown.target.dev == b.name)
                    .map(|d| d.top_node())
            })
            .collect();
        p.push(TypedParam::uint(
            "block.count",
            (blocks.len() + below.len()) as u32,
        ));
        let mut n = 0;
        for (i, b) in blocks.into_iter().enumerate() {
            let at = n;
            n += 1;
            p.push(TypedParam::string(&format!("block.{at}.name"), &b.name));
            if let Some(path) = &b.path {
                p.push(TypedParam::string(&format!("block.{at}.path"), path));
                for (k, v) in [
                    ("rd.reqs", b.rd_reqs),
                    ("rd.bytes", b.rd_bytes),
                    ("rd.times", b.rd_times),
                    ("wr.reqs", b.wr_reqs),
                    ("wr.bytes", b.wr_bytes),
                    ("wr.times", b.wr_times),
                    ("fl.reqs", b.fl_reqs),
                    ("fl.times", b.fl_times),
                    ("allocation", b.allocation),
                    ("capacity", b.capacity),
                    ("physical", b.physical),
                ] {
                    p.push(ullong(format!("block.{at}.{k}"), v));
                }
                if let Some(t) = tops[i].as_deref().and_then(|t| self.block_threshold(t)) {
                    p.push(ullong(format!("block.{at}.threshold"), t));
                }
            }
            for (_, k, l) in below.iter().filter(|(j, _, _)| *j == i) {
                let at = n;
                n += 1;
                p.push(TypedParam::string(&format!("block.{at}.name"), &b.name));
                p.push(TypedParam::string(&format!("block.{at}.path"), &l.file));
                p.push(TypedParam::uint(
                    &format!("block.{at}.backingIndex"),
                    u32::try_from(*k).unwrap_or(u32::MAX),
                ));
                let physical = std::fs::metadata(&l.file).map_or(l.allocation, |m| m.len());
                for (key, v) in [
                    ("allocation", l.allocation),
                    ("capacity", l.capacity),
                    ("physical", physical),
                ] {
                    p.push(ullong(format!("block.{at}.{key}"), v));
                }
                if let Some(t) = self.block_threshold(&l.node) {
                    p.push(ullong(format!("block.{at}.threshold"), t));
                }
            }
        }
        p
    }

    /// The disk a statistics call names: its target (`vda`) or the image path.
    pub async fn block_stat(&self, path: &str) -> anyhow::Result<BlockStat> {
        self.block_stats()
            .await
            .into_iter()
            .find(|b| b.name == path || b.path.as_deref() == Some(path))
            .ok_or_else(|| anyhow::anyhow!(BadArg(format!("invalid path: {path}"))))
    }

    /// The interface a statistics call names: its host device or its MAC address.
    pub fn interface_stat(&self, device: &str) -> anyhow::Result<IfStat> {
        let by_mac = self
            .nics()
            .iter()
            .find(|n| n.def.mac.as_deref() == Some(&device.to_ascii_lowercase()))
            .and_then(|n| n.def.target_dev.clone());
        let want = by_mac.as_deref().unwrap_or(device);
        self.interface_stats()
            .into_iter()
            .find(|n| n.name == want)
            .ok_or_else(|| {
                anyhow::anyhow!(BadArg(format!(
                    "invalid path, '{device}' is not a known interface"
                )))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_name_with_spaces() {
        // pid (comm) state ppid … utime(11) stime(12) … processor(36)
        let mut f: Vec<String> = (0..40).map(|i| i.to_string()).collect();
        f[0] = "S".into();
        let line = format!("42 (CPU 0/TCG) {}", f.join(" "));
        assert_eq!(stat_field(&line, 36), Some(36));
        assert_eq!(stat_field(&line, 11), Some(11));
        assert_eq!(stat_field("garbage", 3), None);
        let (total, user, system) = stat_cpu_ns(&line);
        assert_eq!(total, user + system);
        assert!(user > 0 && system > user);
    }

    #[test]
    fn scheduler_waits_in_nanoseconds() {
        assert_eq!(schedstat_delay("169632 3113842 2\n"), Some(3113842));
        assert_eq!(schedstat_delay("garbage"), None);
        let sched = "qemu (42, #threads: 3)\n------\nse.exec_start : 1.0\n\
                     se.statistics.wait_sum                       :            12.500000\n";
        assert_eq!(sched_wait_ns(sched), Some(12_500_000));
        assert_eq!(sched_wait_ns("wait_sum : 2.0"), Some(2_000_000));
        assert_eq!(sched_wait_ns("nothing here"), None);
    }

    #[test]
    fn our_own_affinity_is_readable() {
        let tid = rustix::thread::gettid().as_raw_nonzero().get();
        assert!(!affinity(tid as u64).is_empty());
    }
}
