//! CPU pinning: which host CPUs each vCPU thread, and QEMU's other threads (the
//! "emulator"), may run on — from `<cputune>` and `<vcpu cpuset>` at start, and changed on
//! the running VM (`virsh vcpupin`, `emulatorpin`).

use std::collections::BTreeSet;

use anyhow::{anyhow, bail};
use vireo_proto::error::{code, domain as errdom};
use vireo_proto::remote::*;
use vireo_proto::typed::TypedParam;
use vireo_proto::RemoteError;
use vireo_qmp::Qmp;
use vireo_xml::{format_cpuset, parse_cpuset, Cputune, Domain, EmulatorPin, VcpuPin};

use crate::serve::{args, check_uuid, ret};
use crate::stats::BadArg;
use crate::vm::{OpFailed, Vm};

/// Lets thread `tid` run on `cpus` only.
pub(crate) fn set_affinity(tid: i32, cpus: &BTreeSet<usize>) -> std::io::Result<()> {
    let mut set = rustix::thread::CpuSet::new();
    for &c in cpus {
        if c >= rustix::thread::CpuSet::MAX_CPU {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        set.set(c);
    }
    // Another user's threads, or root's with all capabilities: that takes CAP_SYS_NICE.
    let pid = rustix::process::Pid::from_raw(tid);
    crate::confine::privileged(|| rustix::thread::sched_setaffinity(pid, &set))?;
    Ok(())
}

/// (vCPU index, thread id) of every vCPU.
pub(crate) async fn vcpu_threads(qmp: &Qmp) -> anyhow::Result<Vec<(u32, i32)>> {
    let v = qmp.execute("query-cpus-fast", None).await?;
    Ok(v.as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .filter_map(|c| {
            Some((
                u32::try_from(c["cpu-index"].as_u64()?).ok()?,
                i32::try_from(c["thread-id"].as_u64()?).ok()?,
            ))
        })
        .collect())
}

/// QEMU's threads that are neither vCPUs nor I/O threads (those have pins of their own).
pub(crate) async fn emulator_threads(qmp: &Qmp, pid: u32, vcpus: &[(u32, i32)]) -> Vec<i32> {
    let io: Vec<i32> = crate::iothread::query(qmp)
        .await
        .unwrap_or_default()
        .iter()
        .map(|t| t.tid)
        .collect();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|t| !vcpus.iter().any(|(_, v)| v == t) && !io.contains(t))
        .collect()
}

/// The pinning of `def` (its `<cputune>`, else `<vcpu cpuset>`), applied to a VM that has
/// not run yet.
pub async fn apply(qmp: &Qmp, pid: u32, def: &Domain) -> anyhow::Result<()> {
    let tune = def.cputune.clone().unwrap_or_default();
    let all = def.vcpu_cpuset.as_deref();
    let vcpus = vcpu_threads(qmp).await?;
    for (i, tid) in &vcpus {
        if let Some(cs) = tune.vcpu(*i).or(all) {
            let set = parse_cpuset(cs).map_err(|e| anyhow!("{e}"))?;
            set_affinity(*tid, &set).map_err(|e| anyhow!("cannot pin vCPU {i} to {cs}: {e}"))?;
        }
    }
    if let Some(cs) = tune.emulatorpin.as_ref().map(|e| e.cpuset.as_str()).or(all) {
        let set = parse_cpuset(cs).map_err(|e| anyhow!("{e}"))?;
        for tid in emulator_threads(qmp, pid, &vcpus).await {
            // A thread may end meanwhile.
            let _ = set_affinity(tid, &set);
        }
    }
    Ok(())
}

/// The CPUs a libvirt CPU map names (bit N of byte N/8: CPU N).
pub(crate) fn cpus_of(map: &[u8]) -> anyhow::Result<BTreeSet<usize>> {
    let set: BTreeSet<usize> = (0..map.len() * 8)
        .filter(|i| map[i / 8] & (1 << (i % 8)) != 0)
        .collect();
    let host = num_cpus();
    if set.is_empty() || set.iter().any(|&c| c >= host) {
        bail!(BadArg(format!(
            "the CPU map must name host CPUs, from 0 to {}",
            host.saturating_sub(1)
        )));
    }
    Ok(set)
}

/// The host's CPUs as the kernel numbers them (online or not): the `cpuN` entries of
/// sysfs, as the C library counts them for `_SC_NPROCESSORS_CONF`.
fn num_cpus() -> usize {
    let Ok(dir) = std::fs::read_dir("/sys/devices/system/cpu") else {
        return 1;
    };
    dir.filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("cpu"))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .count()
        .max(1)
}

/// The length of a map of every host CPU.
pub(crate) fn host_maplen() -> usize {
    num_cpus().div_ceil(8)
}

/// A CPU set as a map `maplen` bytes long.
pub(crate) fn map_of(cpus: &[usize], maplen: usize) -> Vec<u8> {
    let mut m = vec![0u8; maplen];
    for &c in cpus {
        if let Some(b) = m.get_mut(c / 8) {
            *b |= 1 << (c % 8);
        }
    }
    m
}

pub(crate) fn affinity_of(tid: i32) -> Vec<usize> {
    crate::stats::affinity(u64::try_from(tid).unwrap_or(0))
}

impl Vm {
    /// `virsh vcpupin` on the running VM.
    async fn pin_vcpu(&self, vcpu: u32, cpus: BTreeSet<usize>) -> anyhow::Result<()> {
        let vcpus = vcpu_threads(self.qmp()).await?;
        let Some((_, tid)) = vcpus.iter().find(|(i, _)| *i == vcpu) else {
            bail!(BadArg(format!("vCPU {vcpu} is not online")));
        };
        set_affinity(*tid, &cpus)
            .map_err(|e| anyhow!(OpFailed(format!("cannot pin vCPU {vcpu}: {e}"))))?;
        let mut tune = self.cputune();
        tune.vcpupins.retain(|p| p.vcpu != vcpu);
        tune.vcpupins.push(VcpuPin {
            vcpu,
            cpuset: format_cpuset(&cpus),
        });
        tune.vcpupins.sort_by_key(|p| p.vcpu);
        Ok(())
    }

    /// `virsh emulatorpin` on the running VM.
    async fn pin_emulator(&self, cpus: BTreeSet<usize>) -> anyhow::Result<()> {
        let vcpus = vcpu_threads(self.qmp()).await?;
        for tid in emulator_threads(self.qmp(), self.qemu_pid(), &vcpus).await {
            let _ = set_affinity(tid, &cpus);
        }
        self.cputune().emulatorpin = Some(EmulatorPin {
            cpuset: format_cpuset(&cpus),
        });
        Ok(())
    }
}

/// PIN_VCPU_FLAGS, PIN_EMULATOR, GET_VCPU_PIN_INFO and GET_EMULATOR_PIN_INFO of the
/// running VM (the daemon answers for its definition).
pub async fn serve(vm: &Vm, p: i32, payload: &[u8]) -> Result<Vec<u8>, RemoteError> {
    let r = answer(vm, p, payload).await;
    r.map_err(crate::serve::remote_of)
}

async fn answer(vm: &Vm, p: i32, payload: &[u8]) -> anyhow::Result<Vec<u8>> {
    vm.require_running()?;
    match p {
        procs::DOMAIN_PIN_VCPU_FLAGS => {
            let a: DomainPinVcpuFlagsArgs = args(payload)?;
            check_uuid(vm, &a.dom.uuid)?;
            let cpus = cpus_of(&a.cpumap.0)?;
            let list = format_cpuset(&cpus);
            vm.pin_vcpu(a.vcpu, cpus).await?;
            vm.emit_tunable(vec![TypedParam::string(
                &format!("cputune.vcpupin{}", a.vcpu),
                list,
            )]);
            Ok(Vec::new())
        }
        procs::DOMAIN_PIN_EMULATOR => {
            let a: DomainPinEmulatorArgs = args(payload)?;
            check_uuid(vm, &a.dom.uuid)?;
            let cpus = cpus_of(&a.cpumap.0)?;
            let list = format_cpuset(&cpus);
            vm.pin_emulator(cpus).await?;
            vm.emit_tunable(vec![TypedParam::string("cputune.emulatorpin", list)]);
            Ok(Vec::new())
        }
        procs::DOMAIN_GET_VCPU_PIN_INFO => {
            let a: DomainGetVcpuPinInfoArgs = args(payload)?;
            check_uuid(vm, &a.dom.uuid)?;
            let (n, maplen) = sizes(a.ncpumaps, a.maplen)?;
            let vcpus = vcpu_threads(vm.qmp()).await?;
            let mut maps = Vec::new();
            let mut num = 0;
            for (_, tid) in vcpus.iter().take(n) {
                maps.extend(map_of(&affinity_of(*tid), maplen));
                num += 1;
            }
            Ok(ret(DomainGetVcpuPinInfoRet {
                cpumaps: vireo_xdr::Opaque(maps),
                num,
            })?)
        }
        _ => {
            let a: DomainGetEmulatorPinInfoArgs = args(payload)?;
            check_uuid(vm, &a.dom.uuid)?;
            let (_, maplen) = sizes(1, a.maplen)?;
            let pid = i32::try_from(vm.qemu_pid()).unwrap_or(0);
            Ok(ret(DomainGetEmulatorPinInfoRet {
                cpumaps: vireo_xdr::Opaque(map_of(&affinity_of(pid), maplen)),
                ret: 1,
            })?)
        }
    }
}

fn sizes(n: i32, maplen: i32) -> anyhow::Result<(usize, usize)> {
    let (Ok(n), Ok(maplen)) = (usize::try_from(n), usize::try_from(maplen)) else {
        bail!(RemoteError::new(
            code::INVALID_ARG,
            errdom::QEMU,
            "invalid argument: the counts must not be negative",
        ));
    };
    if n.saturating_mul(maplen) > CPUMAPS_MAX {
        bail!(BadArg("the CPU maps asked for are too long".into()));
    }
    Ok((n, maplen))
}

/// The procedures answered here.
pub fn serves(p: i32) -> bool {
    matches!(
        p,
        procs::DOMAIN_PIN_VCPU_FLAGS
            | procs::DOMAIN_PIN_EMULATOR
            | procs::DOMAIN_GET_VCPU_PIN_INFO
            | procs::DOMAIN_GET_EMULATOR_PIN_INFO
    )
}

/// The live `<cputune>` as the VM runs it (pins changed since the start included).
pub fn live(tune: &Cputune) -> Option<Cputune> {
    (!tune.is_empty()).then(|| tune.clone())
}

impl Vm {
    /// vCPUs online now (plugged since the start included).
    pub fn vcpus_now(&self) -> u32 {
        *self.vcpus_now.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `virsh setvcpus --live`: plugs vCPUs in, up to the maximum the VM was started with
    /// (QEMU's free CPU slots, lowest first), or unplugs the ones plugged in (the guest
    /// lets each go).
    pub async fn set_vcpus(&self, n: u32) -> anyhow::Result<()> {
        self.require_running()?;
        if n == 0 || n > self.def.vcpus {
            bail!(BadArg(format!(
                "requested vcpus is greater than max allowable vcpus for the domain: {n} > {}",
                self.def.vcpus
            )));
        }
        let cur = self.vcpus_now();
        let slots = self.qmp().execute("query-hotpluggable-cpus", None).await?;
        let slots = slots.as_array().cloned().unwrap_or_default();
        let key = |s: &serde_json::Value| {
            let p = &s["props"];
            ["socket-id", "die-id", "core-id", "thread-id"].map(|k| p[k].as_u64().unwrap_or(0))
        };
        if n > cur {
            let mut free: Vec<&serde_json::Value> = slots
                .iter()
                .filter(|s| s.get("qom-path").is_none())
                .collect();
            free.sort_by_key(|s| key(s));
            for (k, slot) in free.iter().take((n - cur) as usize).enumerate() {
                let mut dev = slot["props"].clone();
                dev["driver"] = slot["type"].clone();
                dev["id"] = serde_json::json!(format!("vcpu{}", cur as usize + k));
                self.qmp()
                    .execute("device_add", Some(dev))
                    .await
                    .map_err(|e| anyhow!(OpFailed(format!("cannot plug a vCPU in: {e}"))))?;
                *self.vcpus_now.lock().unwrap_or_else(|p| p.into_inner()) += 1;
            }
            // The new vCPUs' threads into cgroups of their own, with the vCPUs' bandwidth.
            crate::tune::place_threads(self)
                .await
                .map_err(|e| anyhow!(OpFailed(e.to_string())))?;
            return Ok(());
        }
        // Ours are the ones plugged by id (`/machine/peripheral/vcpuN`), newest first.
        let mut ours: Vec<(u64, String)> = slots
            .iter()
            .filter_map(|s| {
                let id = s["qom-path"]
                    .as_str()?
                    .strip_prefix("/machine/peripheral/")?;
                Some((id.strip_prefix("vcpu")?.parse().ok()?, id.to_string()))
            })
            .collect();
        ours.sort();
        let take = (cur - n) as usize;
        if ours.len() < take {
            bail!(crate::vm::OpInvalid(format!(
                "only the {} vCPUs plugged in while the domain ran can be unplugged",
                ours.len()
            )));
        }
        for (_, id) in ours.iter().rev().take(take) {
            self.qmp()
                .execute("device_del", Some(serde_json::json!({ "id": id })))
                .await
                .map_err(|e| anyhow!(OpFailed(format!("cannot unplug vCPU {id}: {e}"))))?;
            // The guest lets it go (ACPI); QEMU frees its slot then.
            let mut gone = false;
            for _ in 0..100 {
                let now = self.qmp().execute("query-hotpluggable-cpus", None).await?;
                let still = now.as_array().is_some_and(|a| {
                    a.iter().any(|s| {
                        s["qom-path"].as_str() == Some(&format!("/machine/peripheral/{id}"))
                    })
                });
                if !still {
                    gone = true;
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            if !gone {
                bail!(OpFailed(format!("vcpu unplug request timed out ({id})")));
            }
            *self.vcpus_now.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        }
        Ok(())
    }
}
