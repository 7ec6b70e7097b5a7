//! Internal snapshots of the running VM: QEMU's `snapshot-save`, `snapshot-load` and
//! `snapshot-delete` jobs on the disks the QEMU daemon names (their qcow2 images hold the
//! snapshot; the first one also holds the memory). The daemon keeps the snapshots'
//! metadata; the shim only runs the jobs, one at a time, as the VM's job.

use std::os::fd::OwnedFd;
use std::time::Duration;

use anyhow::{anyhow, bail};
use serde_json::{json, Value};
use vireo_proto::remote::{event, job, state};
use vireo_proto::vireo::snapshot_op;
use vireo_qmp::Qmp;

use crate::vm::{Aborted, Lifecycle, OpFailed, OpInvalid, Vm};

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
        files: &[String],
    ) -> anyhow::Result<()> {
        self.require_running()?;
        if op == snapshot_op::EXTERNAL {
            self.begin_job(job::OPERATION_SNAPSHOT)?;
            let r = self.overlays(disks, files).await;
            self.end_job(r.is_ok());
            return r.map_err(|e| anyhow!(OpFailed(e.to_string())));
        }
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
        self.end_job(r.is_ok());
        r.map_err(|e| anyhow!(OpFailed(e.to_string())))
    }

    /// An external snapshot with the memory state: the guest's memory into `file` (as a
    /// save writes it), then the overlays, at one instant: the guest is paused first
    /// (unless `live`: QEMU then stops it only for the last pages), and goes on as it was
    /// afterwards, also when something failed.
    pub async fn snapshot_with_memory(
        &self,
        disks: &[String],
        files: &[String],
        live: bool,
        file: OwnedFd,
    ) -> anyhow::Result<()> {
        self.require_running()?;
        self.begin_job(job::OPERATION_SNAPSHOT)?;
        let was_running = self.state().0 == state::RUNNING;
        // The pauses are the shim's own: no client hears of them.
        self.set_pausing(true);
        let r = async {
            if was_running && !live {
                self.qmp()
                    .execute("stop", None)
                    .await
                    .map_err(|e| anyhow!("cannot pause the guest: {e}"))?;
            }
            self.write_memory(file)
                .await
                .map_err(|e| anyhow!("cannot save the memory state: {e}"))?;
            self.overlays(disks, files).await
        }
        .await;
        if was_running {
            let _ = self.qmp().execute("cont", None).await;
        }
        self.set_pausing(false);
        let job = self.end_job(r.is_ok());
        match r {
            Ok(()) => Ok(()),
            Err(_) if job.is_some_and(|j| j.aborted) => {
                Err(anyhow!(Aborted("snapshot job: canceled by client".into())))
            }
            Err(e) => Err(anyhow!(OpFailed(e.to_string()))),
        }
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
                    .map(|d| d.top_node())
                    .ok_or_else(|| anyhow!(OpInvalid(format!("the VM has no disk '{t}'"))))
            })
            .collect()
    }

    /// Opens each file as a qcow2 overlay and makes it the top of its disk, all disks at
    /// once (one QMP transaction): the guest's writes go to the overlays from then on.
    async fn overlays(&self, targets: &[String], files: &[String]) -> anyhow::Result<()> {
        if targets.len() != files.len() || targets.is_empty() {
            bail!("one overlay per disk is needed");
        }
        // (target, old top, new overlay's prefix)
        let mut plan = Vec::new();
        {
            let disks = self.disks();
            for t in targets {
                let d = disks
                    .iter()
                    .find(|d| !d.removing && d.shown.target.dev == *t)
                    .ok_or_else(|| anyhow!(OpInvalid(format!("the VM has no disk '{t}'"))))?;
                let prefix = format!("libvirt-{}-s{}", d.node, d.overlays + 1);
                plan.push((t.clone(), d.top_node(), prefix));
            }
        }
        let qmp = self.qmp();
        let mut added: Vec<String> = Vec::new();
        let mut actions = Vec::new();
        let mut failed = None;
        for ((_, top, prefix), file) in plan.iter().zip(files) {
            let storage = format!("{prefix}-storage");
            let format = format!("{prefix}-format");
            let nodes = [
                json!({"driver": "file", "filename": file, "node-name": storage}),
                json!({"driver": "qcow2", "file": storage, "node-name": format, "backing": null}),
            ];
            for n in nodes {
                let name = n["node-name"].as_str().unwrap_or_default().to_string();
                if let Err(e) = qmp.execute("blockdev-add", Some(n)).await {
                    failed = Some(format!("cannot open {file}: {e}"));
                    break;
                }
                added.push(name);
            }
            if failed.is_some() {
                break;
            }
            actions.push(
                json!({"type": "blockdev-snapshot", "data": {"node": top, "overlay": format}}),
            );
        }
        if failed.is_none() {
            if let Err(e) = qmp
                .execute("transaction", Some(json!({ "actions": actions })))
                .await
            {
                failed = Some(format!("cannot put the overlays on: {e}"));
            }
        }
        if let Some(why) = failed {
            for n in added.iter().rev() {
                let _ = qmp
                    .execute("blockdev-del", Some(json!({ "node-name": n })))
                    .await;
            }
            bail!(why);
        }
        let mut disks = self.disks();
        for ((t, _, _), file) in plan.iter().zip(files) {
            if let Some(d) = disks.iter_mut().find(|d| d.shown.target.dev == *t) {
                d.overlays += 1;
                d.top = format!("libvirt-{}-s{}-format", d.node, d.overlays);
                d.shown.disk_type = vireo_xml::DiskType::File;
                let src = d.shown.source.get_or_insert_with(Default::default);
                src.file = Some(file.clone());
                src.dev = None;
                src.pool = None;
                src.volume = None;
                src.mode = None;
                d.shown.driver.get_or_insert_with(Default::default).format = Some("qcow2".into());
            }
        }
        Ok(())
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
