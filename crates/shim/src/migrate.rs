//! Live migration in the shim. Out: QEMU's migration stream goes into a socket the daemon
//! connected to the destination (`SHIM_MIGRATE`, the socket comes with the call), as a job
//! the clients follow and may cancel; the guest keeps running until QEMU's last pass, and
//! waits paused for the daemon's word (`SHIM_MIGRATE_END`): confirmed, QEMU ends (STOPPED,
//! MIGRATED); cancelled, the guest goes on. In: a new shim's QEMU reads the stream from the
//! accepted socket (`--incoming-fd` with `--migrated`), and the guest runs once the daemon
//! says the migration is over. The migration tuning calls (speed, downtime, post-copy)
//! are answered here while the VM runs.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail};
use serde_json::{json, Value};
use tokio::sync::watch;
use vireo_proto::error::{code, domain as errdom};
use vireo_proto::migrate::{
    event as mevent, flags as mflags, reason, GetMaxDowntimeRet, GetMaxSpeedRet, IterationMsg,
    JobCompletedMsg, SetMaxDowntimeArgs, SetMaxSpeedArgs, MAX_SPEED_POSTCOPY,
    OPERATION_MIGRATION_OUT,
};
use vireo_proto::remote::{procs, state, DomainFlagsArgs};
use vireo_proto::vireo::{migrate_end, ShimMigrateArgs};
use vireo_proto::RemoteError;
use vireo_qmp::Qmp;

use crate::serve::{args, check_uuid, ret, to_remote};
use crate::vm::{Aborted, Intent, Lifecycle, OpFailed, OpInvalid, Vm};

/// libvirt's largest (and default) migration speed in MiB/s: `INT64_MAX` bytes a second.
pub const MAX_SPEED_MIB: u64 = (i64::MAX as u64) >> 20;
/// What QEMU is given for "as fast as it goes" (1 TiB/s).
const UNLIMITED_BYTES: u64 = 1 << 40;
/// How often QEMU is asked how far the migration is.
const POLL: Duration = Duration::from_millis(50);

/// Where an outgoing migration is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Copying memory while the guest runs.
    Active,
    /// Switched to post-copy: the destination runs the guest and pulls what is missing.
    Postcopy,
    Completed,
    Failed(String),
    /// A client cancelled it (`domjobabort`, or the migration's own caller).
    Aborted,
}

impl Phase {
    /// The source's part in the guest's run is over (or failed): the call can return.
    fn settled(&self) -> bool {
        !matches!(self, Phase::Active)
    }

    fn ended(&self) -> bool {
        matches!(self, Phase::Completed | Phase::Failed(_) | Phase::Aborted)
    }
}

/// The VM's migration settings and its outgoing migration.
pub struct Migration {
    inner: Mutex<Inner>,
    /// QEMU said the migration's status changed (its MIGRATION event): the follower looks
    /// at once instead of at its next poll (the switch-over's end is part of the downtime).
    changed: tokio::sync::Notify,
}

struct Inner {
    /// `migrate-setspeed`, MiB/s.
    speed_mib: u64,
    /// The post-copy phase's speed, MiB/s (0: unlimited).
    postcopy_speed_mib: u64,
    /// The outgoing migration (from its start to its confirmation or cancel).
    out: Option<Outgoing>,
    /// The last outgoing migration switched to post-copy (seen while it ran, or counted in
    /// its post-copy bytes when it had already completed by the next look).
    postcopied: bool,
    /// When the last outgoing migration was asked of QEMU, and when QEMU paused the guest
    /// for its switch-over (ms since the epoch; 0: unknown).
    issued_at_ms: u64,
    stopped_at_ms: u64,
}

/// Now, in milliseconds since the epoch.
fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

struct Outgoing {
    phase: watch::Receiver<Phase>,
    /// It was started with VIR_MIGRATE_POSTCOPY.
    postcopy: bool,
    /// The guest ran when the migration began (it runs again if it is cancelled).
    was_running: bool,
}

impl Default for Migration {
    fn default() -> Self {
        Migration {
            inner: Mutex::new(Inner {
                speed_mib: MAX_SPEED_MIB,
                postcopy_speed_mib: 0,
                out: None,
                postcopied: false,
                issued_at_ms: 0,
                stopped_at_ms: 0,
            }),
            changed: tokio::sync::Notify::new(),
        }
    }
}

impl Migration {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// QEMU's MIGRATION event came.
    pub(crate) fn status_changed(&self) {
        self.changed.notify_one();
    }
}

/// MiB/s as QEMU's bytes a second (the largest meaning "unlimited").
fn bytes_per_second(mib: u64) -> u64 {
    if mib == 0 || mib >= MAX_SPEED_MIB {
        UNLIMITED_BYTES
    } else {
        (mib << 20).min(UNLIMITED_BYTES)
    }
}

fn capability(name: &str, on: bool) -> Value {
    json!({ "capability": name, "state": on })
}

/// The destination side: QEMU (started with `-incoming defer`) serves the disks being
/// copied here over NBD (on the listening socket `nbd` gives, with the disks' targets) and
/// reads the stream from the accepted socket; Ok once it has it all (or, in post-copy, once
/// the guest may run here).
pub(crate) async fn incoming(
    qmp: &Qmp,
    sock: &OwnedFd,
    postcopy: bool,
    nbd: Option<&(OwnedFd, Vec<String>)>,
    def: &vireo_xml::Domain,
) -> anyhow::Result<()> {
    if let Some((listener, disks)) = nbd {
        serve_nbd(qmp, listener, disks, def).await?;
    }
    // The capabilities both sides must agree on.
    qmp.execute(
        "migrate-set-capabilities",
        Some(json!({ "capabilities": [capability("postcopy-ram", postcopy)] })),
    )
    .await
    .map_err(|e| anyhow!("cannot set the migration capabilities: {e}"))?;
    crate::vm::load_stream(qmp, sock, postcopy).await
}

/// The destination's NBD server, on the listening (UNIX) socket the daemon made, with one
/// writable export per disk copied here, named by its target.
async fn serve_nbd(
    qmp: &Qmp,
    listener: &OwnedFd,
    disks: &[String],
    def: &vireo_xml::Domain,
) -> anyhow::Result<()> {
    qmp.execute_with_fd(
        "getfd",
        Some(json!({"fdname": "vireo-nbd-server"})),
        listener.as_fd(),
    )
    .await
    .map_err(|e| anyhow!("cannot give the NBD socket to QEMU: {e}"))?;
    qmp.execute(
        "nbd-server-start",
        Some(json!({"addr": {"type": "fd", "data": {"str": "vireo-nbd-server"}}})),
    )
    .await
    .map_err(|e| anyhow!("nbd-server-start: {e}"))?;
    let live = crate::hotplug::initial_disks(&def.devices.disks, &def.devices.disks);
    for dev in disks {
        let node = live
            .iter()
            .find(|d| d.shown.target.dev == *dev)
            .map(|d| d.top_node())
            .ok_or_else(|| anyhow!("no disk '{dev}' to take the copy"))?;
        qmp.execute(
            "block-export-add",
            Some(json!({
                "type": "nbd", "id": format!("migrate-{dev}"), "node-name": node,
                "name": dev, "writable": true,
            })),
        )
        .await
        .map_err(|e| anyhow!("cannot serve disk {dev} over NBD: {e}"))?;
    }
    // The daemon waits for this line (before READY) to let the disks' copies in.
    let mut out = std::io::stdout();
    writeln!(out, "{}", vireo_qemu::migrate::NBD_READY)
        .and_then(|_| out.flush())
        .map_err(|e| anyhow!("cannot tell the daemon the NBD server is ready: {e}"))?;
    Ok(())
}

impl Vm {
    /// SHIM_MIGRATE: the VM goes, live, into `sock` (connected to the destination's
    /// QEMU). Returns once the destination has all it needs to run the guest (the guest is
    /// paused here then), or the migration failed or was cancelled (the guest as it was).
    /// A caller that goes away (`caller_gone`: its daemon died) while the memory is still
    /// being copied cancels it: nobody could finish it, and the destination cannot have run
    /// the guest, so it goes on here. Answers when QEMU paused the guest for the
    /// switch-over (ms since the epoch; 0: unknown).
    pub async fn migrate_out(
        self: &Arc<Self>,
        sock: OwnedFd,
        nbd: Vec<OwnedFd>,
        a: ShimMigrateArgs,
        caller_gone: Box<dyn Fn() -> bool + Send + Sync>,
    ) -> anyhow::Result<u64> {
        self.require(&[state::RUNNING, state::PAUSED], "running")?;
        if self.migration.lock().out.is_some() {
            bail!(OpInvalid("the domain is being migrated".into()));
        }
        self.begin_job(OPERATION_MIGRATION_OUT)?;
        let was_running = self.state().0 == state::RUNNING;
        let postcopy = a.flags & mflags::POSTCOPY != 0;
        // The disks first: once their copies follow the guest's writes, the memory.
        let disks = a.disks.0.clone();
        if !disks.is_empty() {
            let incremental = a.flags & mflags::NON_SHARED_INC != 0;
            if let Err(e) = self.mirror_disks(&disks, nbd, incremental).await {
                let _ = self.stop_mirrors(&disks, true).await;
                let job = self.end_job(false);
                if job.is_some_and(|j| j.aborted) {
                    bail!(Aborted("migration out job: canceled by client".into()));
                }
                bail!(OpFailed(format!("cannot copy the disks: {e}")));
            }
        }
        // The guest's stop at the end is the migration's, not news.
        self.set_pausing(true);
        if let Err(e) = self.start_migration(sock, &a).await {
            let _ = self.stop_mirrors(&disks, true).await;
            self.set_pausing(false);
            let job = self.end_job(false);
            if job.is_some_and(|j| j.aborted) {
                bail!(Aborted("migration out job: canceled by client".into()));
            }
            bail!(OpFailed(format!("cannot start the migration: {e}")));
        }
        let (tx, mut rx) = watch::channel(Phase::Active);
        {
            let mut m = self.migration.lock();
            m.postcopied = false;
            m.out = Some(Outgoing {
                phase: rx.clone(),
                postcopy,
                was_running,
            });
        }
        let me = Arc::clone(self);
        tokio::spawn(async move { me.follow_migration(tx, caller_gone).await });
        let phase = match rx.wait_for(Phase::settled).await {
            Ok(p) => p.clone(),
            Err(_) => Phase::Failed("the migration's follower ended".into()),
        };
        // The guest is paused: the disks' copies end with its last writes.
        let phase = match phase {
            Phase::Completed if !disks.is_empty() => match self.stop_mirrors(&disks, false).await {
                Ok(()) => Phase::Completed,
                Err(e) => Phase::Failed(format!("the disks' copies did not end well: {e}")),
            },
            Phase::Failed(_) | Phase::Aborted => {
                let _ = self.stop_mirrors(&disks, true).await;
                phase
            }
            p => p,
        };
        match phase {
            Phase::Completed | Phase::Postcopy => {
                // A short post-copy may have completed before the follower's next look.
                let postcopied = phase == Phase::Postcopy || self.migration.lock().postcopied;
                if was_running {
                    let (reason, detail) = if postcopied {
                        (reason::PAUSED_POSTCOPY, mevent::SUSPENDED_POSTCOPY)
                    } else {
                        (reason::PAUSED_MIGRATION, mevent::SUSPENDED_MIGRATED)
                    };
                    self.set(
                        state::PAUSED,
                        reason,
                        Some(Lifecycle {
                            event: vireo_proto::remote::event::SUSPENDED,
                            detail,
                        }),
                    );
                }
                self.set_pausing(false);
                let m = self.migration.lock();
                Ok(if postcopied { 0 } else { m.stopped_at_ms })
            }
            Phase::Failed(_) | Phase::Aborted => {
                self.migration.lock().out = None;
                self.keep_running(was_running).await;
                self.set_pausing(false);
                if let Phase::Failed(why) = phase {
                    bail!(OpFailed(format!("migration failed: {why}")));
                }
                bail!(Aborted("migration out job: canceled by client".into()));
            }
            Phase::Active => unreachable!("waited for a settled phase"),
        }
    }

    /// Each disk is mirrored into its connection to the destination's NBD server (the
    /// whole disk, or with `incremental` its top image only); Ok once every copy is
    /// ready (it follows the guest's writes).
    async fn mirror_disks(
        &self,
        disks: &[String],
        nbd: Vec<OwnedFd>,
        incremental: bool,
    ) -> anyhow::Result<()> {
        let qmp = self.qmp();
        for (dev, fd) in disks.iter().zip(nbd) {
            let top = self
                .disks()
                .iter()
                .find(|d| d.shown.target.dev == *dev && !d.removing)
                .map(|d| d.top_node())
                .ok_or_else(|| anyhow!(OpInvalid(format!("disk '{dev}' not found"))))?;
            let fdname = format!("vireo-nbd-{dev}");
            qmp.execute_with_fd("getfd", Some(json!({ "fdname": fdname })), fd.as_fd())
                .await
                .map_err(|e| anyhow!("cannot give the NBD connection to QEMU: {e}"))?;
            drop(fd);
            let node = mirror_node(dev);
            qmp.execute(
                "blockdev-add",
                Some(json!({
                    "driver": "nbd", "node-name": node, "export": dev,
                    "server": {"type": "fd", "str": fdname},
                })),
            )
            .await
            .map_err(|e| anyhow!("cannot reach the destination's copy of {dev}: {e}"))?;
            qmp.execute(
                "blockdev-mirror",
                Some(json!({
                    "job-id": node, "device": top, "target": node,
                    "sync": if incremental { "top" } else { "full" },
                })),
            )
            .await
            .map_err(|e| anyhow!("cannot start the copy of {dev}: {e}"))?;
        }
        loop {
            if self.job(|j| j.aborted).unwrap_or(false) {
                bail!(Aborted("migration out job: canceled by client".into()));
            }
            let jobs = qmp
                .execute("query-block-jobs", None)
                .await
                .map_err(|e| anyhow!("query-block-jobs: {e}"))?;
            let jobs = jobs.as_array().cloned().unwrap_or_default();
            let mut ready = true;
            for dev in disks {
                let id = mirror_node(dev);
                let Some(j) = jobs.iter().find(|j| j["device"] == id.as_str()) else {
                    bail!("the copy of disk {dev} stopped");
                };
                ready &= j["ready"].as_bool().unwrap_or(false);
            }
            if ready {
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Ends the disks' copies (`force`: at once, the migration failed; else each once its
    /// last writes are out) and lets their connections go.
    async fn stop_mirrors(&self, disks: &[String], force: bool) -> anyhow::Result<()> {
        if disks.is_empty() {
            return Ok(());
        }
        let qmp = self.qmp();
        for dev in disks {
            let _ = qmp
                .execute(
                    "block-job-cancel",
                    Some(json!({ "device": mirror_node(dev), "force": force })),
                )
                .await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut result = Ok(());
        loop {
            let jobs = qmp
                .execute("query-block-jobs", None)
                .await
                .map_err(|e| anyhow!("query-block-jobs: {e}"))?;
            let left = jobs.as_array().is_some_and(|a| {
                a.iter().any(|j| {
                    j["device"]
                        .as_str()
                        .is_some_and(|d| disks.iter().any(|dev| mirror_node(dev) == d))
                })
            });
            if !left {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                result = Err(anyhow!("the disks' copies did not end within a minute"));
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        for dev in disks {
            let _ = qmp
                .execute(
                    "blockdev-del",
                    Some(json!({ "node-name": mirror_node(dev) })),
                )
                .await;
            let _ = qmp
                .execute(
                    "closefd",
                    Some(json!({ "fdname": format!("vireo-nbd-{dev}") })),
                )
                .await;
        }
        result
    }

    /// Capabilities and parameters for this migration, then QEMU starts it into `sock`.
    async fn start_migration(&self, sock: OwnedFd, a: &ShimMigrateArgs) -> anyhow::Result<()> {
        let qmp = self.qmp();
        let auto_converge = a.flags & mflags::AUTO_CONVERGE != 0;
        let postcopy = a.flags & mflags::POSTCOPY != 0;
        qmp.execute(
            "migrate-set-capabilities",
            Some(json!({ "capabilities": [
                capability("auto-converge", auto_converge),
                capability("postcopy-ram", postcopy),
                // MIGRATION events: the follower learns of the end at once.
                capability("events", true),
            ]})),
        )
        .await
        .map_err(|e| anyhow!("migrate-set-capabilities: {e}"))?;
        let (speed, postcopy_speed) = {
            let m = self.migration.lock();
            (m.speed_mib, m.postcopy_speed_mib)
        };
        let speed = if a.bandwidth > 0 { a.bandwidth } else { speed };
        let postcopy_speed = if a.bandwidth_postcopy > 0 {
            a.bandwidth_postcopy
        } else {
            postcopy_speed
        };
        let mut params = json!({ "max-bandwidth": bytes_per_second(speed) });
        if postcopy {
            params["max-postcopy-bandwidth"] = json!(if postcopy_speed == 0 {
                0
            } else {
                bytes_per_second(postcopy_speed)
            });
        }
        if a.downtime_ms > 0 {
            params["downtime-limit"] = json!(a.downtime_ms);
        }
        if auto_converge {
            if a.auto_converge_initial >= 0 {
                params["cpu-throttle-initial"] = json!(a.auto_converge_initial);
            }
            if a.auto_converge_increment >= 0 {
                params["cpu-throttle-increment"] = json!(a.auto_converge_increment);
            }
        }
        qmp.execute("migrate-set-parameters", Some(params))
            .await
            .map_err(|e| anyhow!("migrate-set-parameters: {e}"))?;
        if a.bandwidth > 0 {
            self.migration.lock().speed_mib = a.bandwidth;
        }
        qmp.execute_with_fd(
            "getfd",
            Some(json!({"fdname": "vireo-migrate"})),
            sock.as_fd(),
        )
        .await
        .map_err(|e| anyhow!("cannot give the migration socket to QEMU: {e}"))?;
        drop(sock);
        if self.job(|j| j.aborted).unwrap_or(false) {
            let _ = qmp
                .execute("closefd", Some(json!({"fdname": "vireo-migrate"})))
                .await;
            bail!("cancelled before it began");
        }
        {
            let mut m = self.migration.lock();
            m.issued_at_ms = epoch_ms();
            m.stopped_at_ms = 0;
        }
        qmp.execute("migrate", Some(json!({"uri": "fd:vireo-migrate"})))
            .await
            .map_err(|e| anyhow!("migrate: {e}"))?;
        Ok(())
    }

    /// Follows QEMU's migration to its end: the job's progress, an iteration event per
    /// pass over memory, a cancel when the job is aborted. The job ends with it.
    async fn follow_migration(
        self: Arc<Self>,
        tx: watch::Sender<Phase>,
        caller_gone: Box<dyn Fn() -> bool + Send + Sync>,
    ) {
        let qmp = self.qmp();
        let mut cancelled = false;
        let mut iteration = 0u64;
        let end = loop {
            let v = match qmp.execute("query-migrate", None).await {
                Ok(v) => v,
                Err(e) => break Phase::Failed(format!("query-migrate: {e}")),
            };
            let aborted = self
                .job_mut(|j| {
                    j.update(&v);
                    j.aborted
                })
                .unwrap_or(false);
            let status = v.get("status").and_then(Value::as_str).unwrap_or("");
            let orphaned = !aborted && status == "active" && caller_gone();
            if orphaned {
                eprintln!(
                    "vireo-shim: the migration's caller has gone: the migration is cancelled"
                );
                self.job_mut(|j| j.aborted = true);
            }
            if (aborted || orphaned)
                && !cancelled
                && !matches!(status, "completed" | "postcopy-active")
            {
                cancelled = true;
                let _ = qmp.execute("migrate_cancel", None).await;
            }
            let passes = v
                .get("ram")
                .and_then(|r| r.get("dirty-sync-count"))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            // One event per pass over memory, none skipped (a client may wait for a given
            // one: virsh switches to post-copy at the second).
            while passes > iteration && status == "active" {
                iteration += 1;
                self.emit_message(
                    procs::DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION,
                    vireo_xdr::to_bytes(&IterationMsg {
                        callback_id: 0,
                        dom: crate::serve::handle(&self),
                        iteration: i32::try_from(iteration).unwrap_or(i32::MAX),
                    }),
                );
            }
            match status {
                "completed" => {
                    let postcopy_bytes = v
                        .get("ram")
                        .and_then(|r| r.get("postcopy-bytes"))
                        .and_then(Value::as_u64)
                        .unwrap_or(0);
                    let ms = |k: &str| v.get(k).and_then(Value::as_u64);
                    let mut m = self.migration.lock();
                    if postcopy_bytes > 0 {
                        m.postcopied = true;
                    } else if let (Some(total), Some(down)) = (ms("total-time"), ms("downtime")) {
                        // QEMU counts both from its start of the migration, which followed
                        // our `migrate` at once: the guest stopped `downtime` before the end.
                        m.stopped_at_ms = m.issued_at_ms + total.saturating_sub(down);
                    }
                    drop(m);
                    break Phase::Completed;
                }
                "cancelled" if cancelled => break Phase::Aborted,
                "failed" | "cancelled" => {
                    let why = v
                        .get("error-desc")
                        .and_then(Value::as_str)
                        .unwrap_or("the stream to the destination broke off");
                    break Phase::Failed(why.to_string());
                }
                "postcopy-active" | "postcopy-paused" | "postcopy-recover"
                    if *tx.borrow() == Phase::Active =>
                {
                    self.migration.lock().postcopied = true;
                    tx.send_replace(Phase::Postcopy);
                }
                _ => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = self.migration.changed.notified() => {}
            }
        };
        let ok = end == Phase::Completed;
        self.end_job(ok);
        tx.send_replace(end);
    }

    /// After a failed migration: the guest runs again if it ran before (QEMU restarts it
    /// itself when it had stopped it; this makes sure).
    async fn keep_running(&self, was_running: bool) {
        if !was_running {
            return;
        }
        let running = self
            .qmp()
            .execute("query-status", None)
            .await
            .ok()
            .and_then(|v| v.get("running").and_then(Value::as_bool))
            .unwrap_or(false);
        if !running {
            let _ = self.qmp().execute("cont", None).await;
        }
        if self.state().0 != state::RUNNING {
            self.set(
                state::RUNNING,
                reason::RUNNING_MIGRATION_CANCELED,
                Some(Lifecycle {
                    event: vireo_proto::remote::event::RESUMED,
                    detail: mevent::RESUMED_MIGRATED,
                }),
            );
        }
    }

    /// SHIM_MIGRATE_END.
    pub async fn migrate_end(self: &Arc<Self>, op: i32) -> anyhow::Result<()> {
        match op {
            migrate_end::CONFIRM => self.confirm().await,
            migrate_end::CANCEL => self.cancel_migration().await,
            migrate_end::RESUME => self.resume_migrated().await,
            migrate_end::COMPLETE => self.incoming_complete().await,
            migrate_end::STAY_PAUSED => self.stay_paused().await,
            _ => bail!(OpInvalid(format!("unknown migration end {op}"))),
        }
    }

    /// The destination runs the guest: once the stream is complete, QEMU here ends.
    async fn confirm(self: &Arc<Self>) -> anyhow::Result<()> {
        let Some(mut phase) = self.migration.lock().out.as_ref().map(|o| o.phase.clone()) else {
            bail!(OpInvalid("no outgoing migration to confirm".into()));
        };
        // In post-copy the destination may still be pulling pages from here.
        let end = match phase.wait_for(Phase::ended).await {
            Ok(p) => p.clone(),
            Err(_) => Phase::Failed("the migration's follower ended".into()),
        };
        match end {
            Phase::Failed(why) => {
                bail!(OpFailed(format!(
                    "migration failed after the switch-over: {why}"
                )))
            }
            Phase::Aborted => bail!(Aborted("migration out job: canceled by client".into())),
            _ => {}
        }
        // JOB_COMPLETED with the migration's statistics, before the VM ends here (its
        // daemon keeps them for `domjobinfo --completed`).
        if let Some(done) = self.completed_job(true) {
            self.emit_message(
                procs::DOMAIN_EVENT_CALLBACK_JOB_COMPLETED,
                vireo_xdr::to_bytes(&JobCompletedMsg {
                    callback_id: 0,
                    dom: crate::serve::handle(self),
                    params: vireo_xdr::Array(done.params),
                }),
            );
        }
        self.end_qemu(Intent::Migrated);
        Ok(())
    }

    /// The migration failed elsewhere (or was given up): it stops if it still runs, and
    /// the guest goes on here as it was.
    async fn cancel_migration(self: &Arc<Self>) -> anyhow::Result<()> {
        let out = self.migration.lock().out.take();
        let Some(out) = out else {
            // Nothing in progress: the guest is already as it was.
            return Ok(());
        };
        let mut phase = out.phase.clone();
        if !phase.borrow().ended() {
            if out.postcopy && *phase.borrow() == Phase::Postcopy {
                bail!(OpFailed(
                    "the migration is in post-copy: the guest runs on the destination and \
                     cannot go back"
                        .into()
                ));
            }
            let _ = self.abort_job();
            let _ = phase.wait_for(Phase::ended).await;
        }
        if out.was_running && self.state() == (state::PAUSED, reason::PAUSED_MIGRATION) {
            self.set_pausing(true);
            let r = self.qmp().execute("cont", None).await;
            self.set_pausing(false);
            r.map_err(|e| anyhow!(OpFailed(format!("cannot resume the guest: {e}"))))?;
            self.set(
                state::RUNNING,
                reason::RUNNING_MIGRATION_CANCELED,
                Some(Lifecycle {
                    event: vireo_proto::remote::event::RESUMED,
                    detail: mevent::RESUMED_MIGRATED,
                }),
            );
        } else {
            self.keep_running(out.was_running).await;
        }
        Ok(())
    }

    /// Destination: the guest runs here. In post-copy the rest of its memory still comes
    /// (RUNNING_POSTCOPY, RESUMED POSTCOPY) until the stream completes (RUNNING_MIGRATED).
    async fn resume_migrated(self: &Arc<Self>) -> anyhow::Result<()> {
        if self.state() != (state::PAUSED, reason::PAUSED_MIGRATION) {
            bail!(OpInvalid(
                "the domain is not waiting for its migration to end".into()
            ));
        }
        let postcopy = self
            .qmp()
            .execute("query-migrate", None)
            .await
            .ok()
            .and_then(|v| v.get("status").and_then(Value::as_str).map(str::to_string))
            .is_some_and(|s| s.starts_with("postcopy"));
        // The disks copied here are the guest's again (no NBD server was started if none
        // were copied: that is the error to ignore).
        let _ = self.qmp().execute("nbd-server-stop", None).await;
        self.set_pausing(true);
        let r = self.qmp().execute("cont", None).await;
        self.set_pausing(false);
        r.map_err(|e| anyhow!(OpFailed(format!("cannot resume the guest: {e}"))))?;
        let (reason, detail) = if postcopy {
            (reason::RUNNING_POSTCOPY, mevent::RESUMED_POSTCOPY)
        } else {
            (reason::RUNNING_MIGRATED, mevent::RESUMED_MIGRATED)
        };
        self.set(
            state::RUNNING,
            reason,
            Some(Lifecycle {
                event: vireo_proto::remote::event::RESUMED,
                detail,
            }),
        );
        Ok(())
    }

    /// Destination, VIR_MIGRATE_PAUSED: the migration is over, the guest stays paused as
    /// a user's pause.
    async fn stay_paused(&self) -> anyhow::Result<()> {
        if self.state() != (state::PAUSED, reason::PAUSED_MIGRATION) {
            bail!(OpInvalid(
                "the domain is not waiting for its migration to end".into()
            ));
        }
        let _ = self.qmp().execute("nbd-server-stop", None).await;
        self.set(
            state::PAUSED,
            state::PAUSED_USER,
            Some(Lifecycle {
                event: vireo_proto::remote::event::SUSPENDED,
                detail: vireo_proto::remote::event::SUSPENDED_PAUSED,
            }),
        );
        Ok(())
    }

    /// Destination: returns once the incoming stream is complete (at once unless in
    /// post-copy); the guest is then simply migrated.
    async fn incoming_complete(&self) -> anyhow::Result<()> {
        loop {
            let v = self
                .qmp()
                .execute("query-migrate", None)
                .await
                .map_err(|e| anyhow!(OpFailed(format!("query-migrate: {e}"))))?;
            match v.get("status").and_then(Value::as_str) {
                Some("completed") | None => break,
                Some(s @ ("failed" | "cancelled")) => {
                    bail!(OpFailed(format!("the incoming post-copy migration {s}")))
                }
                _ => tokio::time::sleep(POLL).await,
            }
        }
        if self.state() == (state::RUNNING, reason::RUNNING_POSTCOPY) {
            self.set(state::RUNNING, reason::RUNNING_MIGRATED, None);
        }
        Ok(())
    }

    fn set_speed(&self, mib: u64, postcopy: bool) {
        let mut m = self.migration.lock();
        if postcopy {
            m.postcopy_speed_mib = mib;
        } else {
            m.speed_mib = mib;
        }
    }

    fn migrating(&self) -> bool {
        self.migration
            .lock()
            .out
            .as_ref()
            .is_some_and(|o| !o.phase.borrow().ended())
    }
}

/// The node (and job) that copies disk `dev` to the destination.
fn mirror_node(dev: &str) -> String {
    format!("migrate-{dev}")
}

/// The migration tuning calls of the REMOTE program this shim answers.
pub fn serves(p: i32) -> bool {
    matches!(
        p,
        procs::DOMAIN_MIGRATE_SET_MAX_SPEED
            | procs::DOMAIN_MIGRATE_GET_MAX_SPEED
            | procs::DOMAIN_MIGRATE_SET_MAX_DOWNTIME
            | procs::DOMAIN_MIGRATE_GET_MAX_DOWNTIME
            | procs::DOMAIN_MIGRATE_START_POST_COPY
    )
}

fn unsupported_flags(flags: u32, known: u32) -> Result<(), RemoteError> {
    if flags & !known != 0 {
        return Err(RemoteError::new(
            code::INVALID_ARG,
            errdom::QEMU,
            format!(
                "invalid argument: unsupported flags (0x{:x})",
                flags & !known
            ),
        ));
    }
    Ok(())
}

fn qemu_failed(what: &str, e: impl std::fmt::Display) -> RemoteError {
    to_remote(&anyhow!(OpFailed(format!("{what}: {e}"))))
}

pub async fn serve(vm: &Arc<Vm>, p: i32, payload: &[u8]) -> Result<Vec<u8>, RemoteError> {
    match p {
        procs::DOMAIN_MIGRATE_SET_MAX_SPEED => {
            let a: SetMaxSpeedArgs = args(payload)?;
            check_uuid(vm, &a.dom.uuid)?;
            unsupported_flags(a.flags, MAX_SPEED_POSTCOPY)?;
            check_speed(a.bandwidth)?;
            let postcopy = a.flags & MAX_SPEED_POSTCOPY != 0;
            if vm.migrating() {
                let key = if postcopy {
                    "max-postcopy-bandwidth"
                } else {
                    "max-bandwidth"
                };
                vm.qmp()
                    .execute(
                        "migrate-set-parameters",
                        Some(json!({ key: bytes_per_second(a.bandwidth) })),
                    )
                    .await
                    .map_err(|e| qemu_failed("cannot set the migration speed", e))?;
            }
            vm.set_speed(a.bandwidth, postcopy);
            Ok(Vec::new())
        }
        procs::DOMAIN_MIGRATE_GET_MAX_SPEED => {
            let a: DomainFlagsArgs = args(payload)?;
            check_uuid(vm, &a.dom.uuid)?;
            unsupported_flags(a.flags, MAX_SPEED_POSTCOPY)?;
            let m = vm.migration.lock();
            let bandwidth = if a.flags & MAX_SPEED_POSTCOPY != 0 {
                m.postcopy_speed_mib
            } else {
                m.speed_mib
            };
            ret(GetMaxSpeedRet { bandwidth })
        }
        procs::DOMAIN_MIGRATE_SET_MAX_DOWNTIME => {
            let a: SetMaxDowntimeArgs = args(payload)?;
            check_uuid(vm, &a.dom.uuid)?;
            unsupported_flags(a.flags, 0)?;
            vm.qmp()
                .execute(
                    "migrate-set-parameters",
                    Some(json!({ "downtime-limit": a.downtime })),
                )
                .await
                .map_err(|e| qemu_failed("cannot set the maximum downtime", e))?;
            Ok(Vec::new())
        }
        procs::DOMAIN_MIGRATE_GET_MAX_DOWNTIME => {
            let a: DomainFlagsArgs = args(payload)?;
            check_uuid(vm, &a.dom.uuid)?;
            unsupported_flags(a.flags, 0)?;
            let v = vm
                .qmp()
                .execute("query-migrate-parameters", None)
                .await
                .map_err(|e| qemu_failed("cannot get the maximum downtime", e))?;
            let downtime = v
                .get("downtime-limit")
                .and_then(Value::as_u64)
                .ok_or_else(|| {
                    qemu_failed("cannot get the maximum downtime", "QEMU did not say")
                })?;
            ret(GetMaxDowntimeRet { downtime })
        }
        _ => {
            let a: DomainFlagsArgs = args(payload)?;
            check_uuid(vm, &a.dom.uuid)?;
            unsupported_flags(a.flags, 0)?;
            let postcopy = {
                let m = vm.migration.lock();
                match m.out.as_ref().filter(|o| !o.phase.borrow().ended()) {
                    None => {
                        return Err(to_remote(&anyhow!(OpInvalid(
                            "post-copy can only be started while outgoing migration is in \
                             progress"
                                .into()
                        ))))
                    }
                    Some(o) => o.postcopy,
                }
            };
            if !postcopy {
                return Err(to_remote(&anyhow!(OpInvalid(
                    "switching to post-copy requires migration to be started with \
                     VIR_MIGRATE_POSTCOPY flag"
                        .into()
                ))));
            }
            vm.qmp()
                .execute("migrate-start-postcopy", None)
                .await
                .map_err(|e| qemu_failed("cannot switch to post-copy", e))?;
            Ok(Vec::new())
        }
    }
}

/// libvirt's limit on a migration speed.
pub fn check_speed(mib: u64) -> Result<(), RemoteError> {
    if mib > MAX_SPEED_MIB {
        return Err(RemoteError::new(
            code::OVERFLOW,
            errdom::QEMU,
            format!(
                "value too large: bandwidth must be less than {}",
                MAX_SPEED_MIB + 1
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_as_qemu_takes_them() {
        assert_eq!(MAX_SPEED_MIB, 8_796_093_022_207);
        assert_eq!(bytes_per_second(MAX_SPEED_MIB), UNLIMITED_BYTES);
        assert_eq!(bytes_per_second(0), UNLIMITED_BYTES);
        assert_eq!(bytes_per_second(1), 1 << 20);
        assert_eq!(bytes_per_second(5_000_000), UNLIMITED_BYTES);
        assert!(check_speed(MAX_SPEED_MIB).is_ok());
        let e = check_speed(MAX_SPEED_MIB + 1).unwrap_err();
        assert!(e.text().contains("less than 8796093022208"), "{}", e.text());
    }

    #[test]
    fn phases() {
        assert!(!Phase::Active.settled());
        assert!(Phase::Postcopy.settled() && !Phase::Postcopy.ended());
        assert!(Phase::Completed.ended());
        assert!(Phase::Failed("x".into()).ended());
    }
}
