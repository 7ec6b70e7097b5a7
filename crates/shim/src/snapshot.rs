//! Internal snapshots of the running VM: QEMU's `snapshot-save`, `snapshot-load` and
//! `snapshot-delete` jobs on the disks the QEMU daemon names (their qcow2 images hold the
//! snapshot; the first one also holds the memory). The daemon keeps the snapshots'
//! metadata; the shim only runs the jobs, one at a time, as the VM's job.

use std::time::Duration;

use anyhow::{anyhow, bail};
use serde_json::{json, Value};
use vireo_proto::remote::{event, job, state};
use vireo_proto::vireo::snapshot_op;
use vireo_qmp::Qmp;

use crate::vm::{Lifecycle, OpFailed, OpInvalid, Vm};

/// The id of the QMP job: one runs at a time.
const JOB_ID: &str = "vireo-snapshot";

impl Vm {
    /// Runs snapshot operation `op` (a [`snapshot_op`]) named `tag` on the disks with
    /// targets `disks`. After a load, the guest runs when `run`, else stays paused.
    pub async fn snapshot(
        &self,
        op: i32,
        tag: &str,
        disks: &[String],
        run: bool,
    ) -> anyhow::Result<()> {
        self.require_running()?;
        let nodes = self.snapshot_nodes(disks)?;
        let job_op = match op {
            snapshot_op::SAVE => job::OPERATION_SNAPSHOT,
            snapshot_op::LOAD => job::OPERATION_SNAPSHOT_REVERT,
            snapshot_op::DELETE => job::OPERATION_SNAPSHOT_DELETE,
            _ => bail!(crate::stats::BadArg(format!(
                "unknown snapshot operation {op}"
            ))),
        };
        self.begin_job(job_op)?;
        let r = match op {
            snapshot_op::SAVE => self.snapshot_save(tag, &nodes).await,
            snapshot_op::LOAD => self.snapshot_load(tag, &nodes, run).await,
            _ => {
                let args = json!({"job-id": JOB_ID, "tag": tag, "devices": nodes});
                run_job(self.qmp(), "snapshot-delete", args).await
            }
        };
        self.end_job();
        r.map_err(|e| anyhow!(OpFailed(e.to_string())))
    }

    /// The format nodes of the disks with these targets, in that order.
    fn snapshot_nodes(&self, targets: &[String]) -> anyhow::Result<Vec<String>> {
        let disks = self.disks();
        targets
            .iter()
            .map(|t| {
                disks
                    .iter()
                    .find(|d| !d.removing && d.shown.target.dev == *t)
                    .map(|d| format!("libvirt-{}-format", d.node))
                    .ok_or_else(|| anyhow!(OpInvalid(format!("the VM has no disk '{t}'"))))
            })
            .collect()
    }

    /// QEMU stops the guest for the time it writes, and lets it go on after; those pauses
    /// are the shim's own, no client hears of them.
    async fn snapshot_save(&self, tag: &str, nodes: &[String]) -> anyhow::Result<()> {
        let Some(vmstate) = nodes.first() else {
            bail!("no disk to hold the memory state");
        };
        self.set_pausing(true);
        let args = json!({"job-id": JOB_ID, "tag": tag, "vmstate": vmstate, "devices": nodes});
        let r = run_job(self.qmp(), "snapshot-save", args).await;
        if self.state().0 == state::RUNNING {
            // A failed save may leave the guest stopped.
            let _ = self.qmp().execute("cont", None).await;
        }
        self.set_pausing(false);
        r
    }

    /// The guest is paused, its memory and disks loaded, and let go when `run`.
    async fn snapshot_load(&self, tag: &str, nodes: &[String], run: bool) -> anyhow::Result<()> {
        let was_running = self.state().0 == state::RUNNING;
        self.set_pausing(true);
        let r = async {
            if was_running {
                self.qmp().execute("stop", None).await?;
                self.set(
                    state::PAUSED,
                    state::PAUSED_FROM_SNAPSHOT,
                    Some(Lifecycle {
                        event: event::SUSPENDED,
                        detail: event::SUSPENDED_FROM_SNAPSHOT,
                    }),
                );
            }
            let Some(vmstate) = nodes.first() else {
                bail!("no disk holds the memory state");
            };
            let args = json!({"job-id": JOB_ID, "tag": tag, "vmstate": vmstate, "devices": nodes});
            run_job(self.qmp(), "snapshot-load", args).await?;
            if run {
                self.qmp().execute("cont", None).await?;
                self.set(
                    state::RUNNING,
                    state::RUNNING_FROM_SNAPSHOT,
                    Some(Lifecycle {
                        event: event::RESUMED,
                        detail: event::RESUMED_FROM_SNAPSHOT,
                    }),
                );
            } else if !was_running {
                self.set(
                    state::PAUSED,
                    state::PAUSED_FROM_SNAPSHOT,
                    Some(Lifecycle {
                        event: event::SUSPENDED,
                        detail: event::SUSPENDED_FROM_SNAPSHOT,
                    }),
                );
            }
            Ok(())
        }
        .await;
        self.set_pausing(false);
        r
    }
}

/// Starts QMP job command `cmd` and waits for it to end (QEMU reports a job's steps as
/// events, but `query-jobs` is what says how it ended); the job is dismissed either way.
async fn run_job(qmp: &Qmp, cmd: &str, args: Value) -> anyhow::Result<()> {
    qmp.execute(cmd, Some(args))
        .await
        .map_err(|e| anyhow!("{cmd}: {e}"))?;
    loop {
        let jobs = qmp
            .execute("query-jobs", None)
            .await
            .map_err(|e| anyhow!("query-jobs: {e}"))?;
        let me = jobs
            .as_array()
            .and_then(|a| a.iter().find(|j| j["id"] == JOB_ID))
            .cloned();
        let Some(me) = me else {
            bail!("{cmd}: the job disappeared");
        };
        if me["status"] == "concluded" {
            let _ = qmp
                .execute("job-dismiss", Some(json!({ "id": JOB_ID })))
                .await;
            return match me.get("error").and_then(Value::as_str) {
                Some(e) => Err(anyhow!("{e}")),
                None => Ok(()),
            };
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
