//! The running VM's I/O threads (`<iothreads>`): QEMU `iothread` objects, pinned where
//! `<cputune><iothreadpin>` (else `<vcpu cpuset>`) says at start, and `virsh
//! iothreadinfo / iothreadpin / iothreadadd / iothreaddel / iothreadset` on the live VM.
//! The definition's side is the daemon's (`crates/qemu/src/iothread.rs`).

use std::collections::BTreeSet;

use anyhow::{anyhow, bail};
use serde_json::{json, Value};
use vireo_proto::remote::*;
use vireo_proto::typed::{TypedParam, TypedValue};
use vireo_proto::RemoteError;
use vireo_qmp::Qmp;
use vireo_xml::{format_cpuset, parse_cpuset, Domain, IoThread, IoThreadPin};

use crate::pinning::{affinity_of, cpus_of, host_maplen, map_of, set_affinity};
use crate::serve::{args, check_uuid, ret};
use crate::stats::BadArg;
use crate::vm::{OpFailed, Vm};

/// One I/O thread as QEMU reports it.
pub struct Running {
    pub id: u32,
    pub tid: i32,
    pub poll_max_ns: u64,
    pub poll_grow: u64,
    pub poll_shrink: u64,
}

/// QEMU's I/O threads (those named `iothreadN`: ours).
pub async fn query(qmp: &Qmp) -> anyhow::Result<Vec<Running>> {
    let v = qmp.execute("query-iothreads", None).await?;
    let n = |t: &Value, k: &str| t[k].as_u64().unwrap_or(0);
    Ok(v.as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .filter_map(|t| {
            Some(Running {
                id: t["id"].as_str()?.strip_prefix("iothread")?.parse().ok()?,
                tid: i32::try_from(t["thread-id"].as_u64()?).ok()?,
                poll_max_ns: n(t, "poll-max-ns"),
                poll_grow: n(t, "poll-grow"),
                poll_shrink: n(t, "poll-shrink"),
            })
        })
        .collect())
}

/// Pins the I/O threads of a VM that has not run yet where `def` says.
pub async fn apply(qmp: &Qmp, def: &Domain) -> anyhow::Result<()> {
    if def.iothreads.is_empty() {
        return Ok(());
    }
    let tune = def.cputune.clone().unwrap_or_default();
    for t in query(qmp).await? {
        if let Some(cs) = tune.iothread(t.id).or(def.vcpu_cpuset.as_deref()) {
            let set = parse_cpuset(cs).map_err(|e| anyhow!("{e}"))?;
            set_affinity(t.tid, &set)
                .map_err(|e| anyhow!("cannot pin I/O thread {} to {cs}: {e}", t.id))?;
        }
    }
    Ok(())
}

impl Vm {
    async fn iothread(&self, id: u32) -> anyhow::Result<Running> {
        query(self.qmp())
            .await?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or_else(|| {
                anyhow!(BadArg(format!(
                    "cannot find IOThread '{id}' in iothreadids"
                )))
            })
    }

    /// `virsh iothreadpin` on the running VM.
    async fn pin_iothread(&self, id: u32, cpus: BTreeSet<usize>) -> anyhow::Result<()> {
        let t = self.iothread(id).await?;
        set_affinity(t.tid, &cpus)
            .map_err(|e| anyhow!(OpFailed(format!("cannot pin I/O thread {id}: {e}"))))?;
        let mut tune = self.cputune();
        tune.iothreadpins.retain(|p| p.iothread != id);
        tune.iothreadpins.push(IoThreadPin {
            iothread: id,
            cpuset: format_cpuset(&cpus),
        });
        tune.iothreadpins.sort_by_key(|p| p.iothread);
        Ok(())
    }

    /// `virsh iothreadadd` on the running VM: a new `iothread` object, placed where the
    /// VM's `<vcpu cpuset>` lets its threads run.
    async fn add_iothread(&self, id: u32) -> anyhow::Result<()> {
        if id == 0 {
            bail!(BadArg("IOThread id must not be 0".into()));
        }
        if self.iothreads().get(id).is_some() {
            bail!(BadArg(format!(
                "an IOThread is already using iothread_id '{id}'"
            )));
        }
        let t = IoThread::new(id);
        let obj: serde_json::Map<String, Value> = vireo_qemu::cmdline::iothread_object(&t)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        self.qmp()
            .execute("object-add", Some(Value::Object(obj)))
            .await
            .map_err(|e| anyhow!(OpFailed(format!("cannot add I/O thread {id}: {e}"))))?;
        if let Some(cs) = self.def.vcpu_cpuset.as_deref() {
            if let (Ok(set), Ok(r)) = (parse_cpuset(cs), self.iothread(id).await) {
                let _ = set_affinity(r.tid, &set);
            }
        }
        self.iothreads().add(t);
        // Its thread into a cgroup of its own, with the I/O threads' bandwidth.
        crate::tune::place_threads(self).await
    }

    /// `virsh iothreaddel` on the running VM; refused while a disk or controller uses it.
    async fn del_iothread(&self, id: u32) -> anyhow::Result<()> {
        if self.iothreads().get(id).is_none() {
            bail!(BadArg(format!(
                "cannot find IOThread '{id}' in iothreadids"
            )));
        }
        let disk_uses = self
            .disks()
            .iter()
            .any(|d| d.shown.driver.as_ref().and_then(|r| r.iothread) == Some(id));
        let controller_uses = self.def.devices.controllers.iter().any(|c| {
            c.driver_attrs
                .iter()
                .any(|(k, v)| k == "iothread" && v.parse() == Ok(id))
        });
        if disk_uses || controller_uses {
            bail!(BadArg(format!(
                "cannot remove IOThread {id} since it is being used by disk or controller"
            )));
        }
        self.qmp()
            .execute("object-del", Some(json!({ "id": format!("iothread{id}") })))
            .await
            .map_err(|e| anyhow!(OpFailed(format!("cannot remove I/O thread {id}: {e}"))))?;
        self.iothreads().remove(id);
        self.cputune().iothreadpins.retain(|p| p.iothread != id);
        Ok(())
    }

    /// `virsh iothreadset` on the running VM: polling and thread pool bounds, set on the
    /// `iothread` object.
    async fn set_iothread_params(&self, id: u32, params: &[TypedParam]) -> anyhow::Result<()> {
        self.iothread(id).await?;
        let p = vireo_qemu::iothread::Params::of(params).map_err(|m| anyhow!(BadArg(m)))?;
        if p.pool_min == Some(-1) || p.pool_max == Some(-1) {
            bail!(BadArg(
                "thread_pool_min and thread_pool_max cannot be unset on a running domain".into()
            ));
        }
        let cur = self
            .iothreads()
            .get(id)
            .cloned()
            .unwrap_or(IoThread::new(id));
        let (min, max) = (
            p.pool_min.or(cur.thread_pool_min),
            p.pool_max.or(cur.thread_pool_max),
        );
        vireo_xml::check_pool(min, max).map_err(|e| anyhow!(BadArg(e.detail())))?;
        let path = format!("/objects/iothread{id}");
        let mut sets: Vec<(&str, Value)> = Vec::new();
        for (k, v) in [
            ("poll-max-ns", p.poll_max_ns),
            ("poll-grow", p.poll_grow),
            ("poll-shrink", p.poll_shrink),
        ] {
            if let Some(v) = v {
                sets.push((k, json!(v)));
            }
        }
        // QEMU checks each bound against the other as it is set: lower the minimum
        // before the maximum, raise the maximum before the minimum.
        let lowering = min.zip(cur.thread_pool_min).is_some_and(|(a, b)| a < b);
        let pool = [
            ("thread-pool-min", p.pool_min),
            ("thread-pool-max", p.pool_max),
        ];
        let order: Vec<_> = if lowering {
            pool.to_vec()
        } else {
            pool.iter().rev().copied().collect()
        };
        for (k, v) in order {
            if let Some(v) = v {
                sets.push((k, json!(v)));
            }
        }
        for (k, v) in sets {
            self.qmp()
                .execute(
                    "qom-set",
                    Some(json!({ "path": path, "property": k, "value": v })),
                )
                .await
                .map_err(|e| {
                    anyhow!(OpFailed(format!("cannot set {k} of I/O thread {id}: {e}")))
                })?;
        }
        let mut all = self.iothreads();
        if let Some(t) = all.threads.iter_mut().find(|t| t.id == id) {
            (t.thread_pool_min, t.thread_pool_max) = (min, max);
        }
        Ok(())
    }

    /// The typed parameters of the `iothread` statistics group.
    pub async fn iothread_stats(&self) -> Vec<TypedParam> {
        let threads = query(self.qmp()).await.unwrap_or_default();
        let mut p = vec![TypedParam::uint("iothread.count", threads.len() as u32)];
        for t in threads {
            for (k, v) in [
                ("poll-max-ns", t.poll_max_ns),
                ("poll-grow", t.poll_grow),
                ("poll-shrink", t.poll_shrink),
            ] {
                p.push(TypedParam::new(
                    format!("iothread.{}.{k}", t.id),
                    TypedValue::ULLong(v),
                ));
            }
        }
        p
    }
}

/// The procedures answered here.
pub fn serves(p: i32) -> bool {
    matches!(
        p,
        procs::DOMAIN_GET_IOTHREAD_INFO
            | procs::DOMAIN_PIN_IOTHREAD
            | procs::DOMAIN_ADD_IOTHREAD
            | procs::DOMAIN_DEL_IOTHREAD
            | procs::DOMAIN_SET_IOTHREAD_PARAMS
    )
}

/// The I/O thread calls for the running VM (the daemon answers for its definition).
pub async fn serve(vm: &Vm, p: i32, payload: &[u8]) -> Result<Vec<u8>, RemoteError> {
    let r = answer(vm, p, payload).await;
    r.map_err(crate::serve::remote_of)
}

async fn answer(vm: &Vm, p: i32, payload: &[u8]) -> anyhow::Result<Vec<u8>> {
    vm.require_running()?;
    match p {
        procs::DOMAIN_GET_IOTHREAD_INFO => {
            let a: DomainGetIothreadInfoArgs = args(payload)?;
            check_uuid(vm, &a.dom.uuid)?;
            let maplen = host_maplen();
            let mut threads = query(vm.qmp()).await?;
            threads.sort_by_key(|t| t.id);
            let info: Vec<DomainIothreadInfo> = threads
                .iter()
                .map(|t| DomainIothreadInfo {
                    iothread_id: t.id,
                    cpumap: vireo_xdr::Opaque(map_of(&affinity_of(t.tid), maplen)),
                })
                .collect();
            let n = info.len() as u32;
            Ok(ret(DomainGetIothreadInfoRet {
                info: vireo_xdr::Array(info),
                ret: n,
            })?)
        }
        procs::DOMAIN_PIN_IOTHREAD => {
            let a: DomainPinIothreadArgs = args(payload)?;
            check_uuid(vm, &a.dom.uuid)?;
            let cpus = cpus_of(&a.cpumap.0)?;
            let list = vireo_xml::format_cpuset(&cpus);
            vm.pin_iothread(a.iothreads_id, cpus).await?;
            vm.emit_tunable(vec![vireo_proto::typed::TypedParam::string(
                &format!("cputune.iothreadpin{}", a.iothreads_id),
                list,
            )]);
            Ok(Vec::new())
        }
        procs::DOMAIN_ADD_IOTHREAD => {
            let a: DomainIothreadIdArgs = args(payload)?;
            check_uuid(vm, &a.dom.uuid)?;
            vm.add_iothread(a.iothread_id).await?;
            Ok(Vec::new())
        }
        procs::DOMAIN_DEL_IOTHREAD => {
            let a: DomainIothreadIdArgs = args(payload)?;
            check_uuid(vm, &a.dom.uuid)?;
            vm.del_iothread(a.iothread_id).await?;
            Ok(Vec::new())
        }
        _ => {
            let a: DomainSetIothreadParamsArgs = args(payload)?;
            check_uuid(vm, &a.dom.uuid)?;
            vm.set_iothread_params(a.iothread_id, &a.params.0).await?;
            Ok(Vec::new())
        }
    }
}
