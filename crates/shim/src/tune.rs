//! The running VM's resource tuning, in its cgroup (`cgroup.rs`): `memtune`, `schedinfo`
//! and `blkiotune` read and change it (the QEMU daemon checks the parameters and keeps
//! the definition's part); the limits the definition asks for are set at start.

use anyhow::anyhow;
use vireo_proto::remote::*;
use vireo_proto::RemoteError;
use vireo_qemu::tune::{BlkioParams, MemoryParams, SchedParams};
use vireo_xml::{Domain, MemSize};

use crate::serve::{args, check_uuid, ret};
use crate::stats::BadArg;
use crate::vm::{OpFailed, OpInvalid, Vm};
use vireo_qemu::cgroup::{Cgroup, MEMORY_UNLIMITED};

/// The procedures answered here.
pub fn serves(p: i32) -> bool {
    matches!(
        p,
        procs::DOMAIN_GET_SCHEDULER_PARAMETERS
            | procs::DOMAIN_GET_SCHEDULER_PARAMETERS_FLAGS
            | procs::DOMAIN_SET_SCHEDULER_PARAMETERS
            | procs::DOMAIN_SET_SCHEDULER_PARAMETERS_FLAGS
            | procs::DOMAIN_GET_MEMORY_PARAMETERS
            | procs::DOMAIN_SET_MEMORY_PARAMETERS
            | procs::DOMAIN_GET_BLKIO_PARAMETERS
            | procs::DOMAIN_SET_BLKIO_PARAMETERS
    )
}

/// Puts QEMU's threads in CPU cgroups of their own under the VM's (`vcpuN`, `iothreadN`,
/// `emulator` for the rest), as libvirt does, and gives the vCPUs' and I/O threads' the
/// bandwidth the VM has now. Nothing to do where the host has no such cgroups.
pub async fn place_threads(vm: &Vm) -> anyhow::Result<()> {
    let Some(cg) = vm.cgroup().filter(|c| c.has_thread_groups()) else {
        return Ok(());
    };
    let tune = vm.cputune().clone();
    place(vm.qmp(), vm.pid(), cg, &tune).await
}

async fn place(
    qmp: &vireo_qmp::Qmp,
    pid: u32,
    cg: &Cgroup,
    tune: &vireo_xml::Cputune,
) -> anyhow::Result<()> {
    let vcpus = crate::pinning::vcpu_threads(qmp).await?;
    let io = crate::iothread::query(qmp).await.unwrap_or_default();
    let mut threads: Vec<(String, i32)> = crate::pinning::emulator_threads(qmp, pid, &vcpus)
        .await
        .into_iter()
        .map(|t| ("emulator".to_string(), t))
        .collect();
    threads.extend(vcpus.iter().map(|(i, t)| (format!("vcpu{i}"), *t)));
    threads.extend(io.iter().map(|t| (format!("iothread{}", t.id), t.tid)));
    cg.place_threads(&threads)
        .map_err(|e| anyhow!(OpFailed(e)))?;
    let groups = |prefix: &str| cg.thread_groups(prefix);
    for (prefix, period, quota) in [
        ("vcpu", tune.period, tune.quota),
        ("emulator", tune.emulator_period, tune.emulator_quota),
        ("iothread", tune.iothread_period, tune.iothread_quota),
    ] {
        if period.is_none() && quota.is_none() {
            continue;
        }
        for g in groups(prefix) {
            cg.set_thread_bandwidth(&g, period, quota)
                .map_err(|e| anyhow!(OpFailed(e)))?;
        }
    }
    Ok(())
}

/// Sets what the definition asks of the VM's cgroup; without one, asking is an error.
pub async fn apply_at_start(
    cg: Option<&Cgroup>,
    qmp: &vireo_qmp::Qmp,
    pid: u32,
    def: &Domain,
) -> anyhow::Result<()> {
    let tune = def.cputune.clone().unwrap_or_default();
    if let Some(cg) = cg.filter(|c| c.has_thread_groups()) {
        place(qmp, pid, cg, &tune).await?;
    } else if tune.has_thread_bandwidth() {
        return Err(anyhow!(
            "the domain's per-vCPU, emulator or I/O thread CPU bandwidth needs cgroup v1's \
             cpu controller for its threads, which this host does not give Vireo"
        ));
    }
    apply_limits(cg, def)
}

/// The VM-wide limits of `def`.
fn apply_limits(cg: Option<&Cgroup>, def: &Domain) -> anyhow::Result<()> {
    let mem = def.memtune.as_ref().filter(|m| !m.is_empty());
    let blkio = def.blkiotune.as_ref().and_then(|b| b.weight);
    let devices = def
        .blkiotune
        .as_ref()
        .map(|b| b.devices.as_slice())
        .unwrap_or_default();
    let cpu = def
        .cputune
        .as_ref()
        .map(|c| (c.shares, c.global_period, c.global_quota))
        .filter(|c| *c != (None, None, None));
    if mem.is_none() && blkio.is_none() && cpu.is_none() && devices.is_empty() {
        return Ok(());
    }
    let Some(cg) = cg else {
        return Err(anyhow!(
            "the domain's <memtune>, <cputune> shares or bandwidth, or <blkiotune> need a cgroup \
             of its own, which this host does not give Vireo"
        ));
    };
    let r = (|| -> Result<(), String> {
        if let Some(m) = mem {
            let v = |s: &Option<MemSize>| s.as_ref().map(|s| s.value);
            cg.set_memory(v(&m.hard_limit), v(&m.soft_limit), v(&m.swap_hard_limit))?;
        }
        if let Some((shares, period, quota)) = cpu {
            if let Some(s) = shares {
                cg.set_cpu_shares(s)?;
            }
            if period.is_some() || quota.is_some() {
                cg.set_cpu_bandwidth(period, quota)?;
            }
        }
        if let Some(w) = blkio {
            cg.set_blkio_weight(w)?;
        }
        for d in devices {
            for kind in 0..5 {
                let v = vireo_qemu::tune::device_value(d, kind);
                if v != 0 {
                    cg.set_device(kind, &d.path, v)?;
                }
            }
        }
        Ok(())
    })();
    r.map_err(|e| anyhow!("cannot apply the domain's tuning: {e}"))
}

fn bad<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!(BadArg(e.to_string()))
}

/// The tuning calls for the running VM.
pub async fn serve(vm: &Vm, p: i32, payload: &[u8]) -> Result<Vec<u8>, RemoteError> {
    answer(vm, p, payload).map_err(crate::serve::remote_of)
}

fn answer(vm: &Vm, p: i32, payload: &[u8]) -> anyhow::Result<Vec<u8>> {
    vm.require_running()?;
    let cg = vm
        .cgroup()
        .ok_or_else(|| anyhow!(OpInvalid("cgroup is not available for this domain".into())))?;
    let failed = |e: String| anyhow!(OpFailed(e));
    match p {
        procs::DOMAIN_GET_SCHEDULER_PARAMETERS | procs::DOMAIN_GET_SCHEDULER_PARAMETERS_FLAGS => {
            let dom = if p == procs::DOMAIN_GET_SCHEDULER_PARAMETERS {
                args::<DomainGetSchedulerParametersArgs>(payload)?.dom
            } else {
                args::<DomainGetSchedulerParametersFlagsArgs>(payload)?.dom
            };
            check_uuid(vm, &dom.uuid)?;
            let shares = cg.cpu_shares().map_err(failed)?;
            let global = cg.cpu_bandwidth().map_err(failed)?;
            // Each kind of thread as its first cgroup has it (all of a kind are set alike).
            let of = |prefix: &str| -> anyhow::Result<(u64, i64)> {
                match cg.thread_groups(prefix).first() {
                    Some(g) => cg.thread_bandwidth(g).map_err(failed),
                    None => Ok((0, 0)),
                }
            };
            Ok(ret(DomainGetSchedulerParametersRet {
                params: vireo_xdr::Array(SchedParams::list(
                    shares,
                    of("vcpu")?,
                    of("emulator")?,
                    global,
                    of("iothread")?,
                )),
            })?)
        }
        procs::DOMAIN_GET_MEMORY_PARAMETERS | procs::DOMAIN_GET_BLKIO_PARAMETERS => {
            let a: DomainGetTuneParametersArgs = args(payload)?;
            check_uuid(vm, &a.dom.uuid)?;
            let list = if p == procs::DOMAIN_GET_MEMORY_PARAMETERS {
                let (hard, soft, swap) = cg.memory().map_err(failed)?;
                MemoryParams::list(hard, soft, swap)
            } else {
                // Per-device values as they were set: the cgroup knows devices by number.
                let devices = vm.blkiotune().map(|b| b.devices).unwrap_or_default();
                BlkioParams::list(cg.blkio_weight().map_err(failed)?, &devices)
            };
            Ok(ret(
                vireo_qemu::tune::counted(list, a.nparams).map_err(bad)?
            )?)
        }
        _ => {
            let (dom, params) = if p == procs::DOMAIN_SET_SCHEDULER_PARAMETERS {
                let a: DomainSetSchedulerParametersArgs = args(payload)?;
                (a.dom, a.params.0)
            } else {
                let a: DomainSetTuneParametersArgs = args(payload)?;
                (a.dom, a.params.0)
            };
            check_uuid(vm, &dom.uuid)?;
            match p {
                procs::DOMAIN_SET_MEMORY_PARAMETERS => {
                    let m = MemoryParams::of(&params).map_err(bad)?;
                    cg.set_memory(m.hard, m.soft, m.swap).map_err(failed)?;
                    let (hard, soft, swap) = cg.memory().map_err(failed)?;
                    let kept = |v: u64| (v < MEMORY_UNLIMITED).then(|| MemSize::kib(v));
                    vm.set_memtune(vireo_xml::Memtune {
                        hard_limit: kept(hard),
                        soft_limit: kept(soft),
                        swap_hard_limit: kept(swap),
                        min_guarantee: None,
                    });
                }
                procs::DOMAIN_SET_BLKIO_PARAMETERS => {
                    let b = BlkioParams::of(&params).map_err(bad)?;
                    if let Some(w) = b.weight {
                        cg.set_blkio_weight(w).map_err(failed)?;
                    }
                    for d in &b.devices {
                        cg.set_device(d.kind, &d.path, d.value).map_err(failed)?;
                    }
                    vm.update_blkiotune(|t| b.apply_to(t));
                }
                _ => {
                    let s = SchedParams::of(&params).map_err(bad)?;
                    if !cg.has_thread_groups() {
                        s.only_global().map_err(bad)?;
                    }
                    if let Some(v) = s.shares {
                        cg.set_cpu_shares(v).map_err(failed)?;
                    }
                    if s.global_period.is_some() || s.global_quota.is_some() {
                        cg.set_cpu_bandwidth(s.global_period, s.global_quota)
                            .map_err(failed)?;
                    }
                    for (prefix, period, quota) in [
                        ("vcpu", s.period, s.quota),
                        ("emulator", s.emulator_period, s.emulator_quota),
                        ("iothread", s.iothread_period, s.iothread_quota),
                    ] {
                        if period.is_none() && quota.is_none() {
                            continue;
                        }
                        for g in cg.thread_groups(prefix) {
                            cg.set_thread_bandwidth(&g, period, quota).map_err(failed)?;
                        }
                    }
                    s.apply_to(&mut vm.cputune());
                    vm.emit_tunable(s.tunable());
                }
            }
            Ok(Vec::new())
        }
    }
}
