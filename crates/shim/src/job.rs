//! The VM's running job (a save, for now): its progress as QEMU's `query-migrate` last
//! reported it, for `virsh domjobinfo` (GET_JOB_INFO, GET_JOB_STATS), and its abort
//! (ABORT_JOB, `virsh domjobabort`).

use std::time::Instant;

use serde_json::Value;
use vireo_proto::error::{code, domain as errdom};
use vireo_proto::remote::{
    job, procs, DomainArgs, DomainFlagsArgs, DomainGetJobInfoRet, DomainGetJobStatsRet,
};
use vireo_proto::typed::{TypedParam, TypedValue};
use vireo_proto::RemoteError;

use crate::serve::{args, check_uuid, ret};
use crate::vm::Vm;

/// A job in progress.
#[derive(Debug)]
pub struct Job {
    /// `VIR_DOMAIN_JOB_OPERATION_*`.
    pub op: i32,
    started: Instant,
    /// The last `query-migrate` answer.
    last: Value,
    /// A client asked for its end.
    pub aborted: bool,
}

impl Job {
    pub fn new(op: i32) -> Job {
        Job {
            op,
            started: Instant::now(),
            last: Value::Null,
            aborted: false,
        }
    }

    pub fn update(&mut self, v: &Value) {
        self.last = v.clone();
    }

    fn ram(&self, key: &str) -> u64 {
        self.last
            .get("ram")
            .and_then(|r| r.get(key))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// `virDomainJobInfo`: memory is all the data a save moves.
    pub fn info(&self) -> DomainGetJobInfoRet {
        let (total, done, left) = (
            self.ram("total"),
            self.ram("transferred"),
            self.ram("remaining"),
        );
        DomainGetJobInfoRet {
            type_: job::UNBOUNDED,
            time_elapsed: self.elapsed_ms(),
            data_total: total,
            data_processed: done,
            data_remaining: left,
            mem_total: total,
            mem_processed: done,
            mem_remaining: left,
            ..Default::default()
        }
    }

    /// The typed parameters of `virDomainGetJobStats`, named as libvirt names them.
    pub fn stats(&self) -> Vec<TypedParam> {
        let u = |f: &str, v: u64| TypedParam::new(f, TypedValue::ULLong(v));
        let mut p = vec![
            TypedParam::int("operation", self.op),
            u("time_elapsed", self.elapsed_ms()),
            u("data_total", self.ram("total")),
            u("data_processed", self.ram("transferred")),
            u("data_remaining", self.ram("remaining")),
            u("memory_total", self.ram("total")),
            u("memory_processed", self.ram("transferred")),
            u("memory_remaining", self.ram("remaining")),
            u("memory_constant", self.ram("duplicate")),
            u("memory_normal", self.ram("normal")),
            u("memory_normal_bytes", self.ram("normal-bytes")),
            u("memory_dirty_rate", self.ram("dirty-pages-rate")),
            u("memory_iteration", self.ram("dirty-sync-count")),
        ];
        if let Some(mbps) = self
            .last
            .get("ram")
            .and_then(|r| r.get("mbps"))
            .and_then(Value::as_f64)
        {
            // QEMU counts in megabits per second; libvirt in bytes.
            p.push(u("memory_bps", (mbps * 1e6 / 8.0) as u64));
        }
        let page = self.ram("page-size");
        if page > 0 {
            p.push(u("memory_page_size", page));
        }
        if let Some(t) = self.last.get("setup-time").and_then(Value::as_u64) {
            p.push(u("setup_time", t));
        }
        // The guest's pause at the switch-over, once a migration has completed.
        if let Some(t) = self.last.get("downtime").and_then(Value::as_u64) {
            p.push(u("downtime", t));
        }
        p
    }
}

/// What a job that ended did: its type (COMPLETED or FAILED) and statistics.
#[derive(Debug, Clone)]
pub struct Finished {
    pub type_: i32,
    pub params: Vec<TypedParam>,
}

impl Job {
    /// The job's last statistics, as an ended job reports them.
    pub fn finished(&self, ok: bool) -> Finished {
        Finished {
            type_: if ok { JOB_COMPLETED } else { JOB_FAILED },
            params: self.stats(),
        }
    }
}

use job::{
    COMPLETED as JOB_COMPLETED, FAILED as JOB_FAILED, STATS_COMPLETED, STATS_KEEP_COMPLETED,
};

/// GET_JOB_INFO, GET_JOB_STATS and ABORT_JOB.
pub async fn serve(vm: &Vm, p: i32, payload: &[u8]) -> Result<Vec<u8>, RemoteError> {
    match p {
        procs::DOMAIN_GET_JOB_INFO => {
            let a: DomainArgs = args(payload)?;
            check_uuid(vm, &a.dom.uuid)?;
            ret(vm.job(Job::info).unwrap_or_default())
        }
        procs::DOMAIN_GET_JOB_STATS => {
            let a: DomainFlagsArgs = args(payload)?;
            check_uuid(vm, &a.dom.uuid)?;
            let unknown = a.flags & !(STATS_COMPLETED | STATS_KEEP_COMPLETED);
            if unknown != 0 {
                return Err(RemoteError::new(
                    code::INVALID_ARG,
                    errdom::QEMU,
                    format!("invalid argument: unsupported flags (0x{unknown:x})"),
                ));
            }
            // With COMPLETED: the last job that ended (a snapshot; a finished save ends
            // the VM, and its shim with it).
            let got = if a.flags & STATS_COMPLETED != 0 {
                vm.completed_job(a.flags & STATS_KEEP_COMPLETED != 0)
                    .map(|f| (f.type_, f.params))
            } else {
                vm.job(|j| (j.info().type_, j.stats()))
            };
            let (type_, params) = got.unwrap_or((job::NONE, Vec::new()));
            ret(DomainGetJobStatsRet {
                type_,
                params: vireo_xdr::Array(params),
            })
        }
        _ => {
            let a: DomainArgs = args(payload)?;
            check_uuid(vm, &a.dom.uuid)?;
            vm.abort_job().map_err(|e| crate::serve::to_remote(&e))?;
            Ok(Vec::new())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vireo_proto::typed::find;

    #[test]
    fn progress_reads_as_libvirt_names_it() {
        let mut j = Job::new(job::OPERATION_SAVE);
        assert_eq!(j.info().data_total, 0);
        j.update(&serde_json::json!({
            "status": "active",
            "setup-time": 3,
            "ram": {"total": 1000, "transferred": 400, "remaining": 600, "duplicate": 7,
                    "normal": 9, "normal-bytes": 36864, "mbps": 8.0, "page-size": 4096,
                    "dirty-sync-count": 1, "dirty-pages-rate": 0}
        }));
        let i = j.info();
        assert_eq!(i.type_, job::UNBOUNDED);
        assert_eq!(
            (i.data_total, i.data_processed, i.data_remaining),
            (1000, 400, 600)
        );
        assert_eq!(
            (i.mem_total, i.mem_processed, i.mem_remaining),
            (1000, 400, 600)
        );
        let p = j.stats();
        let get = |f: &str| find(&p, f).and_then(TypedValue::as_u64);
        assert_eq!(get("operation"), Some(job::OPERATION_SAVE as u64));
        assert_eq!(get("memory_constant"), Some(7));
        assert_eq!(get("memory_normal_bytes"), Some(36864));
        // 8 Mbit/s is a million bytes a second.
        assert_eq!(get("memory_bps"), Some(1_000_000));
        assert_eq!(get("memory_page_size"), Some(4096));
        assert_eq!(get("setup_time"), Some(3));
    }
}
