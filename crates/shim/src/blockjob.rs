//! Block jobs on the running VM's disks: pull (`block-stream`), commit (`block-commit`;
//! of the active layer it waits, ready, for a pivot), and copy (`blockdev-mirror` into an
//! image the daemon made; ready, it waits for a pivot). Their progress, speed and end are
//! libvirt's calls (GET_BLOCK_JOB_INFO, BLOCK_JOB_SET_SPEED, BLOCK_JOB_ABORT), and each
//! step is a BLOCK_JOB / BLOCK_JOB_2 event to the clients.
//!
//! A disk's image chain is read from QEMU (`query-named-block-nodes`), starting at the
//! node the device uses: images are named by their files, as clients name them.

use std::time::Duration;

use anyhow::{anyhow, bail};
use serde_json::{json, Value};
use vireo_proto::remote::{
    block_job, procs, DomainEventBlockJob2Msg, DomainEventBlockJobMsg, DomainGetBlockJobInfoRet,
};
use vireo_proto::vireo::ShimBlockJobArgs;

use crate::hotplug::Missing;
use crate::stats::BadArg;
use crate::vm::{OpFailed, OpInvalid, Vm};

/// How long an abort or a pivot may take before the call gives up waiting.
const END_WAIT: Duration = Duration::from_secs(60);

/// A block job of one disk.
#[derive(Debug, Clone)]
pub struct BlockJob {
    /// The disk's target.
    pub disk: String,
    /// libvirt's block job type.
    pub kind: i32,
    /// QEMU's job id.
    id: String,
    ready: bool,
    /// A copy's destination: its node number (`libvirt-{n}-…`), file and format.
    copy: Option<(usize, String, String)>,
    /// An active commit's base: the image the device moves to at the pivot.
    base: Option<Layer>,
    /// Nodes that leave the chain when the job ends well.
    dropped: Vec<String>,
    /// Their files, deleted then (a commit with DELETE).
    delete_files: Vec<String>,
    /// A copy of the top image only, over the same backing layers (SHALLOW).
    shallow: bool,
    /// A client asked for the end: true to pivot, false to cancel.
    ending: Option<bool>,
}

/// One image of a disk's chain.
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    /// Its format node.
    pub node: String,
    pub file: String,
    format: String,
    /// The image's size as the guest sees it, and what it takes on the host (bytes).
    pub capacity: u64,
    pub allocation: u64,
}

fn job_id(disk: &str) -> String {
    format!("vireo-blockjob-{disk}")
}

impl Vm {
    /// The target of the disk a client names by target or by image file.
    fn disk_named(&self, path: &str) -> anyhow::Result<String> {
        let disks = self.disks();
        disks
            .iter()
            .filter(|d| !d.removing)
            .find(|d| {
                d.shown.target.dev == path
                    || d.shown.source.as_ref().and_then(|s| s.file.as_deref()) == Some(path)
            })
            .map(|d| d.shown.target.dev.clone())
            .ok_or_else(|| anyhow!(BadArg(format!("disk '{path}' not found in domain"))))
    }

    /// The disk's images, the one the device uses first.
    pub(crate) async fn chain(&self, target: &str) -> anyhow::Result<Vec<Layer>> {
        let top = {
            let disks = self.disks();
            let d = disks
                .iter()
                .find(|d| d.shown.target.dev == target)
                .ok_or_else(|| anyhow!(Missing(format!("disk {target} not found"))))?;
            d.top_node()
        };
        let nodes = self
            .qmp()
            .execute("query-named-block-nodes", None)
            .await
            .map_err(|e| anyhow!(OpFailed(format!("query-named-block-nodes: {e}"))))?;
        let nodes = nodes.as_array().cloned().unwrap_or_default();
        let find = |name: &str| nodes.iter().find(|n| n["node-name"] == name);
        let mut out: Vec<Layer> = Vec::new();
        let mut cur = Some(top);
        while let Some(name) = cur.take() {
            let Some(n) = find(&name) else { break };
            let file = n["file"].as_str().unwrap_or_default().to_string();
            out.push(Layer {
                node: name,
                file,
                format: n["drv"].as_str().unwrap_or_default().to_string(),
                capacity: n["image"]["virtual-size"].as_u64().unwrap_or(0),
                allocation: n["image"]["actual-size"].as_u64().unwrap_or(0),
            });
            let backing = n["image"]["backing-image"]["filename"]
                .as_str()
                .or_else(|| n["backing_file"].as_str());
            if let Some(b) = backing {
                cur = nodes
                    .iter()
                    .filter(|m| m["drv"] != "file")
                    .filter(|m| {
                        m["node-name"]
                            .as_str()
                            .is_some_and(|s| s.starts_with("libvirt-"))
                    })
                    .find(|m| m["file"] == b)
                    .and_then(|m| m["node-name"].as_str().map(str::to_string));
            }
            if out.len() > 64 {
                break;
            }
        }
        if out.is_empty() {
            bail!(OpFailed(format!("cannot read the images of disk {target}")));
        }
        Ok(out)
    }

    /// SHIM_BLOCK_JOB: starts a pull, commit or copy on a disk.
    pub async fn start_block_job(&self, a: ShimBlockJobArgs) -> anyhow::Result<()> {
        self.require_running()?;
        let target = self.disk_named(&a.disk)?;
        let id = job_id(&target);
        if self.jobs().iter().any(|j| j.disk == target) {
            bail!(OpInvalid(format!(
                "disk '{target}' already in active block job"
            )));
        }
        let chain = self.chain(&target).await?;
        let at = |file: &str| -> anyhow::Result<usize> {
            chain.iter().position(|l| l.file == file).ok_or_else(|| {
                anyhow!(BadArg(format!(
                    "could not find image '{file}' in chain for '{target}'"
                )))
            })
        };
        let speed = a.bandwidth;
        let mut job = BlockJob {
            disk: target.clone(),
            kind: a.kind,
            id: id.clone(),
            ready: false,
            copy: None,
            base: None,
            dropped: Vec::new(),
            delete_files: Vec::new(),
            shallow: false,
            ending: None,
        };
        let (cmd, args) = match a.kind {
            block_job::TYPE_PULL => {
                let mut args = json!({"job-id": id, "device": chain[0].node, "speed": speed});
                if let Some(b) = &a.base {
                    let i = at(b)?;
                    if i == 0 {
                        bail!(BadArg(format!("the base '{b}' is the disk's image itself")));
                    }
                    args["base-node"] = json!(chain[i].node);
                }
                ("block-stream", args)
            }
            block_job::TYPE_COMMIT | block_job::TYPE_ACTIVE_COMMIT => {
                let top = match &a.top {
                    Some(t) => at(t)?,
                    None => 0,
                };
                if top == 0 && a.kind == block_job::TYPE_COMMIT {
                    bail!(BadArg(format!(
                        "commit of '{target}' active layer requires the active flag"
                    )));
                }
                if top != 0 && a.kind == block_job::TYPE_ACTIVE_COMMIT {
                    bail!(BadArg(format!(
                        "active commit requested but '{}' is not active",
                        chain[top].file
                    )));
                }
                if top + 1 >= chain.len() {
                    bail!(BadArg(format!(
                        "top '{}' in chain for '{target}' has no backing file",
                        chain[top].file
                    )));
                }
                let base = match &a.base {
                    Some(b) => at(b)?,
                    None if a.shallow != 0 => top + 1,
                    None => chain.len() - 1,
                };
                if base <= top {
                    bail!(BadArg(format!(
                        "'{}' is not below '{}' in the chain of '{target}'",
                        chain[base].file, chain[top].file
                    )));
                }
                job.dropped = chain[top..base].iter().map(|l| l.node.clone()).collect();
                if a.delete != 0 {
                    job.delete_files = chain[top..base].iter().map(|l| l.file.clone()).collect();
                }
                if top == 0 {
                    job.base = Some(chain[base].clone());
                }
                let args = json!({
                    "job-id": id, "device": chain[0].node, "top-node": chain[top].node,
                    "base-node": chain[base].node, "speed": speed,
                });
                ("block-commit", args)
            }
            block_job::TYPE_COPY => {
                let (Some(dest), Some(fmt)) = (&a.dest, &a.dest_format) else {
                    bail!(BadArg("a copy needs its destination".into()));
                };
                let n = self.free_node();
                let storage = format!("libvirt-{n}-storage");
                let format = format!("libvirt-{n}-format");
                // SHALLOW: the copy is of the top image, over the layers the disk has.
                let backing = (a.shallow != 0).then(|| chain.get(1)).flatten();
                job.shallow = backing.is_some();
                let mut fmt_node = json!({"driver": fmt, "file": storage, "node-name": format});
                if let Some(b) = backing {
                    fmt_node["backing"] = json!(b.node);
                }
                let qmp = self.qmp();
                // A block device is QEMU's host_device.
                let driver = if vireo_qemu::blockjob::is_block_device(dest) {
                    "host_device"
                } else {
                    "file"
                };
                qmp.execute(
                    "blockdev-add",
                    Some(json!({"driver": driver, "filename": dest, "node-name": storage})),
                )
                .await
                .map_err(|e| anyhow!(OpFailed(format!("cannot open {dest}: {e}"))))?;
                if let Err(e) = qmp.execute("blockdev-add", Some(fmt_node)).await {
                    let _ = qmp
                        .execute("blockdev-del", Some(json!({ "node-name": storage })))
                        .await;
                    bail!(OpFailed(format!("cannot open {dest}: {e}")));
                }
                job.copy = Some((n, dest.clone(), fmt.clone()));
                let args = json!({
                    "job-id": id, "device": chain[0].node, "target": format,
                    "sync": if job.shallow { "top" } else { "full" }, "speed": speed,
                });
                ("blockdev-mirror", args)
            }
            k => bail!(BadArg(format!("unknown block job type {k}"))),
        };
        let copy = job.copy.clone();
        self.jobs().push(job);
        if let Err(e) = self.qmp().execute(cmd, Some(args)).await {
            self.jobs().retain(|j| j.id != id);
            if let Some((n, _, _)) = copy {
                self.remove_nodes(n).await;
            }
            bail!(OpFailed(format!("{cmd}: {e}")));
        }
        Ok(())
    }

    /// A node number no disk and no copy uses.
    fn free_node(&self) -> usize {
        let disks = self.disks().iter().map(|d| d.node).max().unwrap_or(0);
        let copies = self
            .jobs()
            .iter()
            .filter_map(|j| j.copy.as_ref().map(|c| c.0))
            .max()
            .unwrap_or(0);
        disks.max(copies) + 1
    }

    pub(crate) fn jobs(&self) -> std::sync::MutexGuard<'_, Vec<BlockJob>> {
        self.block_jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn job_of(&self, path: &str) -> anyhow::Result<BlockJob> {
        let target = self.disk_named(path)?;
        self.jobs()
            .iter()
            .find(|j| j.disk == target)
            .cloned()
            .ok_or_else(|| anyhow!(OpInvalid(format!("No active block job '{path}'"))))
    }

    /// GET_BLOCK_JOB_INFO: `found` 0 when the disk has no job.
    pub async fn block_job_info(
        &self,
        path: &str,
        bytes: bool,
    ) -> anyhow::Result<DomainGetBlockJobInfoRet> {
        self.require_running()?;
        let target = self.disk_named(path)?;
        let Some(job) = self.jobs().iter().find(|j| j.disk == target).cloned() else {
            return Ok(DomainGetBlockJobInfoRet::default());
        };
        let all = self
            .qmp()
            .execute("query-block-jobs", None)
            .await
            .map_err(|e| anyhow!(OpFailed(format!("query-block-jobs: {e}"))))?;
        let me = all
            .as_array()
            .and_then(|a| a.iter().find(|j| j["device"] == job.id.as_str()))
            .cloned()
            .unwrap_or(Value::Null);
        let num = |k: &str| me[k].as_u64().unwrap_or(0);
        let speed = num("speed");
        Ok(DomainGetBlockJobInfoRet {
            found: 1,
            type_: job.kind,
            bandwidth: if bytes { speed } else { speed >> 20 },
            cur: num("offset"),
            end: num("len"),
        })
    }

    /// BLOCK_JOB_SET_SPEED, in bytes per second.
    pub async fn block_job_set_speed(&self, path: &str, speed: u64) -> anyhow::Result<()> {
        let job = self.job_of(path)?;
        self.qmp()
            .execute(
                "block-job-set-speed",
                Some(json!({"device": job.id, "speed": speed})),
            )
            .await
            .map_err(|e| anyhow!(OpFailed(format!("block-job-set-speed: {e}"))))?;
        Ok(())
    }

    /// BLOCK_JOB_ABORT: cancels the job, or with `pivot` moves the disk to the copy (or
    /// the commit's base). Returns once the job is over unless `wait` is false.
    pub async fn block_job_abort(&self, path: &str, pivot: bool, wait: bool) -> anyhow::Result<()> {
        let job = self.job_of(path)?;
        if pivot {
            if !matches!(
                job.kind,
                block_job::TYPE_COPY | block_job::TYPE_ACTIVE_COMMIT
            ) {
                bail!(OpInvalid(format!(
                    "pivot of disk '{}' requires an active copy job",
                    job.disk
                )));
            }
            if !job.ready {
                bail!(OpInvalid(format!(
                    "disk '{}' not ready for pivot yet",
                    job.disk
                )));
            }
        }
        let mut done = self.block_done.subscribe();
        if let Some(j) = self.jobs().iter_mut().find(|j| j.id == job.id) {
            j.ending = Some(pivot);
        }
        let r = if pivot {
            self.qmp()
                .execute("job-complete", Some(json!({ "id": job.id })))
                .await
        } else {
            self.qmp()
                .execute(
                    "block-job-cancel",
                    Some(json!({"device": job.id, "force": true})),
                )
                .await
        };
        if let Err(e) = r {
            if let Some(j) = self.jobs().iter_mut().find(|j| j.id == job.id) {
                j.ending = None;
            }
            bail!(OpFailed(format!(
                "cannot end block job of '{}': {e}",
                job.disk
            )));
        }
        if wait {
            let gone = tokio::time::timeout(END_WAIT, async {
                loop {
                    if !self.jobs().iter().any(|j| j.id == job.id) {
                        return;
                    }
                    if done.changed().await.is_err() {
                        return;
                    }
                }
            })
            .await;
            if gone.is_err() {
                bail!(OpFailed(format!(
                    "block job of '{}' did not end in time",
                    job.disk
                )));
            }
        }
        Ok(())
    }

    /// QEMU's BLOCK_JOB_READY, _COMPLETED, _CANCELLED and _ERROR.
    pub async fn on_block_job_event(&self, name: &str, data: &Value) {
        let Some(id) = data["device"].as_str() else {
            return;
        };
        let Some(job) = self.jobs().iter().find(|j| j.id == id).cloned() else {
            return;
        };
        match name {
            "BLOCK_JOB_READY" => {
                if let Some(j) = self.jobs().iter_mut().find(|j| j.id == id) {
                    j.ready = true;
                }
                self.emit_block_job(&job, block_job::READY);
                return;
            }
            // An I/O error: QEMU reports the end, if it comes, with _COMPLETED.
            "BLOCK_JOB_ERROR" => return,
            _ => {}
        }
        self.jobs().retain(|j| j.id != id);
        let failed = data.get("error").is_some();
        let status = if name == "BLOCK_JOB_CANCELLED" || job.ending == Some(false) {
            block_job::CANCELED
        } else if failed {
            block_job::FAILED
        } else {
            block_job::COMPLETED
        };
        if status == block_job::COMPLETED {
            self.finish_block_job(&job).await;
        } else if let Some((n, _, _)) = &job.copy {
            self.remove_nodes(*n).await;
        }
        self.emit_block_job(&job, status);
        self.block_done.send_modify(|n| *n += 1);
    }

    /// A job that ended well: the disk is what the job made of it.
    async fn finish_block_job(&self, job: &BlockJob) {
        let mut drop_nodes = Vec::new();
        let mut old_nodes = Vec::new();
        {
            let mut disks = self.disks();
            let Some(d) = disks.iter_mut().find(|d| d.shown.target.dev == job.disk) else {
                return;
            };
            let mut show = |file: &str, format: &str| {
                d.shown.source = Some(if vireo_qemu::blockjob::is_block_device(file) {
                    d.shown.disk_type = vireo_xml::DiskType::Block;
                    vireo_xml::DiskSource {
                        dev: Some(file.to_string()),
                        ..Default::default()
                    }
                } else {
                    d.shown.disk_type = vireo_xml::DiskType::File;
                    vireo_xml::DiskSource {
                        file: Some(file.to_string()),
                        ..Default::default()
                    }
                });
                d.shown.driver.get_or_insert_with(Default::default).format =
                    Some(format.to_string());
            };
            match (job.kind, &job.copy, &job.base) {
                (block_job::TYPE_COPY, Some((n, file, format)), _) if job.shallow => {
                    // Only the old top goes; the disk goes on reading the layers under it.
                    show(file, format);
                    drop_nodes.push(d.top.clone());
                    d.kept.push(d.node);
                    d.set_node(*n);
                }
                (block_job::TYPE_COPY, Some((n, file, format)), _) => {
                    show(file, format);
                    old_nodes.push(d.node);
                    old_nodes.append(&mut d.kept);
                    d.set_node(*n);
                }
                (block_job::TYPE_ACTIVE_COMMIT, _, Some(base)) => {
                    show(&base.file, &base.format);
                    d.top = base.node.clone();
                    drop_nodes = job.dropped.clone();
                }
                (block_job::TYPE_COMMIT, _, _) => drop_nodes = job.dropped.clone(),
                _ => {}
            }
        }
        for n in old_nodes {
            self.remove_nodes(n).await;
        }
        let qmp = self.qmp();
        for n in drop_nodes {
            // Each image node and its file node.
            let file = n.replace("-format", "-storage");
            for name in [n, file] {
                if let Err(e) = qmp
                    .execute("blockdev-del", Some(json!({ "node-name": name })))
                    .await
                {
                    eprintln!("vireo-shim: cannot remove block node {name}: {e}");
                }
            }
        }
        // A commit with DELETE: the images committed away, now nobody's, go.
        for f in &job.delete_files {
            if let Err(e) = std::fs::remove_file(f) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    eprintln!("vireo-shim: cannot delete committed image {f}: {e}");
                }
            }
        }
    }

    /// BLOCK_JOB_2 (by target) and BLOCK_JOB (by image) to the clients.
    fn emit_block_job(&self, job: &BlockJob, status: i32) {
        let dom = crate::serve::handle(self);
        let path = {
            let disks = self.disks();
            disks
                .iter()
                .find(|d| d.shown.target.dev == job.disk)
                .and_then(|d| d.shown.source.as_ref()?.file.clone())
                .unwrap_or_else(|| job.disk.clone())
        };
        self.emit_message(
            procs::DOMAIN_EVENT_BLOCK_JOB_2,
            vireo_xdr::to_bytes(&DomainEventBlockJob2Msg {
                callback_id: 0,
                dom: dom.clone(),
                dst: job.disk.clone(),
                type_: job.kind,
                status,
            }),
        );
        self.emit_message(
            procs::DOMAIN_EVENT_BLOCK_JOB,
            vireo_xdr::to_bytes(&DomainEventBlockJobMsg {
                dom,
                path,
                type_: job.kind,
                status,
            }),
        );
    }
}
