//! Running domains: starting a `vireo-shim` per VM, forwarding calls to it unchanged,
//! following its lifecycle events, and finding every shim again after a restart.

use std::os::fd::AsRawFd;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use tokio::io::{AsyncBufReadExt, BufReader};
use vireo_driver::events::LifecycleEvent;
use vireo_driver::{store, DriverError, Result};
use vireo_proto::remote::{
    event, procs, state, Domain as Handle, DomainEventLifecycleMsg, DomainFlagsArgs,
    DomainGetStateRet, DomainGetXmlDescRet, DomainLookupByUuidArgs, DomainRet,
};
use vireo_proto::{RemoteError, REMOTE_PROGRAM, REMOTE_VERSION};
use vireo_rpc::client::{CallError, Connection};
use vireo_rpc::Frame;
use vireo_xml::{format_uuid, Domain};

use crate::driver::{check_flags, no_domain_uuid, DomainObj, QemuDriver};

/// The fd the shim reads the disks' passphrases from (`--secrets-fd`).
const SHIM_SECRETS_FD: i32 = 3;
/// The fd of the save image a restored VM reads its state from (`--incoming-fd`).
const SHIM_INCOMING_FD: i32 = 4;
/// The listening socket of a migrated VM's NBD server, for the disks copied to it
/// (`--nbd-fd`).
const SHIM_NBD_FD: i32 = 5;
/// Where the shim finds the taps of its interfaces on networks: fds 10, 11, …, then the
/// nodes of its USB host devices.
const SHIM_FIRST_TAP_FD: i32 = 10;

/// The devices a VM's shim gets as descriptors, for QEMU.
#[derive(Default)]
struct DeviceFds {
    /// The taps of its interfaces, in interface order.
    taps: Vec<OwnedFd>,
    /// The nodes of its USB host devices, in the order of `cmdline::usb_host_devices`.
    usb: Vec<OwnedFd>,
}

/// `VIR_DOMAIN_START_PAUSED`.
pub const START_PAUSED: u32 = 1;
/// The start flags libvirt defines (PAUSED, AUTODESTROY, BYPASS_CACHE, FORCE_BOOT,
/// VALIDATE, RESET_NVRAM): a client's others are refused.
const CLIENT_START_FLAGS: u32 = 0x3f;
/// Vireo's own (no client can give it): the state restored is a snapshot's, which the
/// state's reason and the events say.
pub const START_FROM_SNAPSHOT: u32 = 1 << 31;
/// Vireo's own: the incoming state is a live migration's stream (STARTED, MIGRATED; the
/// guest waits paused for the migration's end), with post-copy (`START_POSTCOPY`).
pub const START_MIGRATED: u32 = 1 << 30;
pub const START_POSTCOPY: u32 = 1 << 29;

impl QemuDriver {
    fn shim_dir(&self) -> PathBuf {
        self.cfg.run_dir.join("shim")
    }

    fn shim_socket(&self, uuid: &[u8; 16]) -> PathBuf {
        self.shim_dir().join(format!("{}.sock", format_uuid(uuid)))
    }

    /// Starts a defined domain.
    pub async fn start(self: &Arc<Self>, h: &Handle, flags: u32) -> Result<Handle> {
        check_flags(flags, CLIENT_START_FLAGS)?;
        let def = {
            let mut reg = self.write();
            let obj = reg
                .by_uuid
                .get_mut(&h.uuid)
                .ok_or_else(|| no_domain_uuid(&h.uuid, &h.name))?;
            if obj.active() || obj.starting {
                return Err(DriverError::OperationInvalid(
                    "domain is already running".into(),
                ));
            }
            obj.starting = true;
            (obj.def.clone(), obj.managed_save)
        };
        let (def, managed_save) = def;
        let r = if managed_save && flags & crate::save::START_FORCE_BOOT == 0 {
            self.start_from_managed_save(h.uuid, &def.name, flags).await
        } else {
            // A forced boot drops the saved state: it would never match the guest again.
            let dropped = if managed_save {
                self.drop_managed_save(&h.uuid, &def.name)
            } else {
                Ok(())
            };
            match dropped {
                Ok(()) => self.launch(def, flags, None).await,
                Err(e) => Err(e),
            }
        };
        let mut reg = self.write();
        if let Some(o) = reg.by_uuid.get_mut(&h.uuid) {
            o.starting = false;
        }
        drop(reg);
        r
    }

    /// Starts a transient domain from XML.
    pub async fn create_xml(self: &Arc<Self>, xml: &str, flags: u32) -> Result<Handle> {
        check_flags(flags, CLIENT_START_FLAGS)?;
        if flags & crate::validate::START_VALIDATE != 0 {
            let owned = xml.to_string();
            tokio::task::spawn_blocking(move || crate::validate::domain_schema(&owned))
                .await
                .map_err(|e| DriverError::Internal(format!("schema validation: {e}")))??;
        }
        let flags = flags & !crate::validate::START_VALIDATE;
        let def = self.prepare(xml)?;
        self.run_transient(def, flags, None).await
    }

    /// Runs `def` as a transient domain (or a defined one of the same name and uuid, with
    /// this definition), booted or restored from `incoming`.
    pub(crate) async fn run_transient(
        self: &Arc<Self>,
        def: Domain,
        flags: u32,
        incoming: Option<OwnedFd>,
    ) -> Result<Handle> {
        let uuid = def.uuid.unwrap_or_default();
        {
            let mut reg = self.write();
            reg.check_identity(&def.name, &uuid)?;
            if reg
                .by_uuid
                .get(&uuid)
                .is_some_and(|o| o.active() || o.starting)
            {
                return Err(DriverError::OperationInvalid(format!(
                    "domain '{}' is already active",
                    def.name
                )));
            }
            // A defined domain of the same name and uuid runs with the new definition, as
            // in libvirt; otherwise the domain is transient.
            let obj = reg
                .by_uuid
                .entry(uuid)
                .or_insert_with(|| DomainObj::new(def.clone(), uuid, false));
            obj.starting = true;
            reg.by_name.insert(def.name.clone(), uuid);
        }
        let r = self.launch(def, flags, incoming).await;
        let mut reg = self.write();
        if let Some(o) = reg.by_uuid.get_mut(&uuid) {
            o.starting = false;
            if r.is_err() && !o.persistent {
                let name = o.def.name.clone();
                reg.by_uuid.remove(&uuid);
                reg.by_name.remove(&name);
            }
        }
        r
    }

    /// Spawns the shim and waits for its `READY` line; with `incoming`, the VM's state
    /// comes from that save image (at its stream's offset) instead of a boot.
    pub(crate) async fn launch(
        self: &Arc<Self>,
        def: Domain,
        flags: u32,
        incoming: Option<OwnedFd>,
    ) -> Result<Handle> {
        // A restore is a job: how far QEMU has read the image, while it does.
        let _restore = incoming
            .as_ref()
            .and_then(|fd| self.track_restore(def.uuid.unwrap_or_default(), fd));
        // Volumes become the files they are, through the storage driver's public API; the
        // shim keeps the definition as written too, to show the volumes in the live XML.
        let defined = crate::peers::has_volumes(&def).then(|| def.clone());
        let mut def = crate::peers::resolve(&def, self.peers.get()).await?;
        vsock_cid(&mut def)?;
        crate::firmware::prepare(&mut def, &self.nvram_dir())?;
        if def
            .cpu
            .as_ref()
            .is_some_and(|c| c.mode == Some(vireo_xml::CpuMode::HostModel))
        {
            // Probing QEMU's models (once per accelerator) blocks for a while.
            let me = Arc::clone(self);
            let kvm = def.dom_type == "kvm";
            let mut cpu = def.cpu.take();
            cpu = tokio::task::spawn_blocking(move || {
                if let Some(c) = cpu.as_mut() {
                    me.cpu_defs_for(kvm).expand_host_model(c);
                }
                cpu
            })
            .await
            .map_err(|e| DriverError::Internal(format!("CPU model probe failed: {e}")))?;
            def.cpu = cpu;
        }
        // Encrypted disks' passphrases go to the shim through a pipe, never a file.
        let secrets = crate::peers::disk_secrets(&def, self.peers.get()).await?;
        let secrets_pipe = if secrets.is_empty() {
            None
        } else {
            Some(vireo_fdpass::pipe_with(&secrets).map_err(|e| {
                DriverError::OperationFailed(format!(
                    "cannot hand the disks' passphrases to the shim ({e}; 64 KiB at most)"
                ))
            })?)
        };
        if let Some(why) = crate::tune::unsupported_in(&def) {
            return Err(DriverError::ConfigUnsupported(why));
        }
        crate::cmdline::check(&def, self.caps()).map_err(|e| {
            DriverError::ConfigUnsupported(e.to_string().replace("unsupported configuration: ", ""))
        })?;
        // Host devices: leased from the node device driver (USB ones come open).
        let crate::devlease::Leased { usb, held } = self.lease_hostdevs(&mut def).await?;
        let leased = !def.devices.hostdevs.is_empty();
        let owner = def.uuid.unwrap_or_default();
        // Interfaces on networks: a port and a tap each, from the network driver; the
        // taps reach the shim (and QEMU) as descriptors.
        let ports = match crate::peers::network_ports(&mut def, self.peers.get()).await {
            Ok(p) => p,
            Err(e) => {
                if leased {
                    self.release_hostdevs(owner).await;
                }
                return Err(e);
            }
        };
        let ids: Vec<(String, crate::peers::PortRef)> = ports
            .iter()
            .map(|(a, r, _)| (a.clone(), r.clone()))
            .collect();
        let fds = DeviceFds {
            taps: ports.into_iter().map(|(_, _, p)| p.fd).collect(),
            usb,
        };
        match self
            .spawn_shim(def, defined, flags, secrets_pipe, fds, incoming)
            .await
        {
            Ok(h) => {
                if let Some(o) = self.write().by_uuid.get_mut(&h.uuid) {
                    o.ports = ids;
                    o.leased = leased;
                    o.hostdevs = held;
                }
                Ok(h)
            }
            Err(e) => {
                let refs: Vec<_> = ids.into_iter().map(|(_, r)| r).collect();
                crate::peers::release_ports(&refs, self.peers.get()).await;
                if leased {
                    self.release_hostdevs(owner).await;
                }
                Err(e)
            }
        }
    }

    /// Starts the shim for the (resolved) definition, with the passphrases' pipe, the
    /// taps and USB devices, and waits for its `READY` line.
    async fn spawn_shim(
        self: &Arc<Self>,
        def: Domain,
        defined: Option<Domain>,
        flags: u32,
        secrets_pipe: Option<OwnedFd>,
        fds: DeviceFds,
        incoming: Option<OwnedFd>,
    ) -> Result<Handle> {
        let uuid = def.uuid.unwrap_or_default();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let dir = self.shim_dir();
        let def_path = dir.join(format!("{}.xml", format_uuid(&uuid)));
        store::write_atomic(&def_path, def.format().as_bytes())?;
        let defined_path = dir.join(format!("{}.defined.xml", format_uuid(&uuid)));
        if let Some(d) = &defined {
            store::write_atomic(&defined_path, d.format().as_bytes())?;
        }
        std::fs::create_dir_all(&self.cfg.log_dir).map_err(|e| {
            DriverError::io(format!("cannot create {}", self.cfg.log_dir.display()), e)
        })?;
        let log_path = self.cfg.log_dir.join(format!("{}.log", def.name));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| DriverError::io(format!("cannot open {}", log_path.display()), e))?;
        // An emulated TPM keeps its state with the domain's, apart from its runs.
        let tpm_state = def
            .devices
            .tpms
            .iter()
            .any(|t| t.backend.backend_type == vireo_xml::TpmBackendType::Emulator)
            .then(|| self.tpm_state_dir(&format_uuid(&def.uuid.unwrap_or_default())));
        let mut cmd = tokio::process::Command::new(&self.cfg.shim);
        cmd.arg("--run-dir")
            .arg(&self.cfg.run_dir)
            .arg("--def")
            .arg(&def_path)
            .arg("--id")
            .arg(id.to_string())
            .arg("--hv-version")
            .arg(self.hypervisor_version().to_string())
            .arg("--vm-sock-perms")
            .arg(format!(
                "{:o},{:o}",
                self.cfg.vm_sock_perms.0, self.cfg.vm_sock_perms.1
            ))
            .args(
                self.cfg
                    .vm_sock_group
                    .map(|g| ["--vm-sock-group".to_string(), g.to_string()])
                    .into_iter()
                    .flatten(),
            )
            .args(
                self.cfg
                    .qemu_user
                    .as_ref()
                    .map(|u| ["--qemu-user".to_string(), u.to_arg()])
                    .into_iter()
                    .flatten(),
            )
            .args(
                (self.cfg.qemu_user.is_some() && self.cfg.dynamic_ownership)
                    .then_some("--dynamic-ownership"),
            )
            .args((!self.cfg.seccomp_sandbox).then_some("--no-sandbox"))
            .args(defined.is_some().then_some("--defined"))
            .args(defined.is_some().then_some(&defined_path))
            .args(
                tpm_state
                    .iter()
                    .flat_map(|p| [std::ffi::OsStr::new("--tpm-state"), p.as_os_str()]),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        if flags & START_PAUSED != 0 {
            cmd.arg("--paused");
        }
        if flags & START_FROM_SNAPSHOT != 0 {
            cmd.arg("--from-snapshot");
        }
        if flags & START_MIGRATED != 0 {
            cmd.arg("--migrated");
        }
        if flags & START_POSTCOPY != 0 {
            cmd.arg("--postcopy");
        }
        let nbd = (flags & START_MIGRATED != 0)
            .then(|| self.take_nbd_start(&uuid))
            .flatten();
        if let Some((_, disks)) = &nbd {
            cmd.arg("--nbd-fd")
                .arg(SHIM_NBD_FD.to_string())
                .arg("--nbd-disks")
                .arg(disks.join(","));
        }
        let nbd_fd = nbd.as_ref().map(|(f, _)| f.as_raw_fd());
        let secrets_fd = secrets_pipe.as_ref().map(|p| p.as_raw_fd());
        if secrets_fd.is_some() {
            cmd.arg("--secrets-fd").arg(SHIM_SECRETS_FD.to_string());
        }
        let incoming_fd = incoming.as_ref().map(|f| f.as_raw_fd());
        if incoming_fd.is_some() {
            cmd.arg("--incoming-fd").arg(SHIM_INCOMING_FD.to_string());
        }
        let tap_fds: Vec<i32> = fds
            .taps
            .iter()
            .chain(&fds.usb)
            .map(|t| t.as_raw_fd())
            .collect();
        if !fds.taps.is_empty() {
            cmd.arg("--tap-fds")
                .arg(format!("{SHIM_FIRST_TAP_FD}:{}", fds.taps.len()));
        }
        if !fds.usb.is_empty() {
            let first = SHIM_FIRST_TAP_FD + fds.taps.len() as i32;
            cmd.arg("--usb-fds")
                .arg(format!("{first}:{}", fds.usb.len()));
        }
        // SAFETY: setsid, fcntl and dup2 are async-signal-safe; setsid detaches the shim
        // from our session so that it outlives this daemon; inherit_as gives it the
        // passphrases' pipe, the save image, the taps and the USB devices.
        unsafe {
            cmd.pre_exec(move || {
                libc::setsid();
                if let Some(fd) = secrets_fd {
                    vireo_fdpass::inherit_as(fd, SHIM_SECRETS_FD)?;
                }
                if let Some(fd) = incoming_fd {
                    vireo_fdpass::inherit_as(fd, SHIM_INCOMING_FD)?;
                }
                if let Some(fd) = nbd_fd {
                    vireo_fdpass::inherit_as(fd, SHIM_NBD_FD)?;
                }
                for (i, &fd) in tap_fds.iter().enumerate() {
                    vireo_fdpass::inherit_as(fd, SHIM_FIRST_TAP_FD + i as i32)?;
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| {
            DriverError::Internal(format!("cannot run {}: {e}", self.cfg.shim.display()))
        })?;
        drop(secrets_pipe);
        drop(fds);
        let restored = incoming.is_some();
        drop(incoming);
        drop(nbd);
        let line = match child.stdout.take() {
            Some(out) => {
                let mut out = BufReader::new(out);
                let mut l = String::new();
                loop {
                    l.clear();
                    let _ = out.read_line(&mut l).await;
                    // A migrated VM's NBD server has the disks' exports: their copies may
                    // come in now.
                    if l.trim_end() != crate::migrate::NBD_READY {
                        break;
                    }
                    self.nbd_ready(&uuid);
                }
                l
            }
            None => String::new(),
        };
        // Reap the shim whenever it ends (if this daemon is gone by then, init does), and
        // give back the files it alone held, if it could not.
        let store = crate::owners::Store::new(&self.cfg.run_dir);
        tokio::spawn(async move {
            let _ = child.wait().await;
            let _ = tokio::task::spawn_blocking(move || store.sweep()).await;
        });
        let line = line.trim_end();
        if let Some(msg) = line.strip_prefix("ERROR ") {
            let _ = std::fs::remove_file(&def_path);
            let _ = std::fs::remove_file(&defined_path);
            let _ = std::fs::remove_dir_all(self.cfg.run_dir.join("qemu").join(format_uuid(&uuid)));
            return Err(DriverError::Internal(format!(
                "failed to start domain '{}': {msg}",
                def.name
            )));
        }
        if !line.starts_with("READY") {
            // Killed before it was ready: what it made is left to us.
            self.abandon_shim(&uuid, &def.name);
            return Err(DriverError::Internal(format!(
                "vireo-shim for '{}' exited without starting it; see {}",
                def.name,
                log_path.display()
            )));
        }
        let conn = match Connection::connect(&self.shim_socket(&uuid)).await {
            Ok(c) => c,
            Err(e) => {
                // Ready, then killed before it was reached: its QEMU died with it.
                self.abandon_shim(&uuid, &def.name);
                return Err(DriverError::Internal(format!("cannot reach the shim: {e}")));
            }
        };
        let conn = Arc::new(conn);
        self.shim_counters.track(&conn);
        let paused = flags & START_PAUSED != 0;
        let from_snapshot = flags & START_FROM_SNAPSHOT != 0;
        let migrated = restored && flags & START_MIGRATED != 0;
        let handle = {
            let mut reg = self.write();
            let obj = reg
                .by_uuid
                .get_mut(&uuid)
                .ok_or_else(|| no_domain_uuid(&uuid, &def.name))?;
            obj.id = Some(id);
            obj.state = match (paused, restored, from_snapshot) {
                _ if migrated => (
                    state::PAUSED,
                    vireo_proto::migrate::reason::PAUSED_MIGRATION,
                ),
                (true, true, true) => (state::PAUSED, state::PAUSED_FROM_SNAPSHOT),
                (true, _, _) => (state::PAUSED, state::PAUSED_USER),
                (false, true, true) => (state::RUNNING, state::RUNNING_FROM_SNAPSHOT),
                (false, true, false) => (state::RUNNING, state::RUNNING_RESTORED),
                (false, false, _) => (state::RUNNING, state::RUNNING_BOOTED),
            };
            obj.shim = Some(Arc::clone(&conn));
            obj.handle()
        };
        self.follow(uuid, &conn);
        if migrated {
            // The guest runs once the migration's Finish says so (RESUMED, MIGRATED).
            self.publish(
                &handle,
                event::STARTED,
                vireo_proto::migrate::event::STARTED_MIGRATED,
            );
            return Ok(handle);
        }
        if restored && from_snapshot {
            self.publish(&handle, event::STARTED, event::STARTED_FROM_SNAPSHOT);
            if paused {
                self.publish(&handle, event::SUSPENDED, event::SUSPENDED_FROM_SNAPSHOT);
            }
            return Ok(handle);
        }
        if restored {
            self.publish(&handle, event::STARTED, event::STARTED_RESTORED);
            if paused {
                self.publish(&handle, event::SUSPENDED, event::SUSPENDED_RESTORED);
            }
            return Ok(handle);
        }
        if !paused {
            self.publish(&handle, event::RESUMED, event::RESUMED_UNPAUSED);
        }
        self.publish(&handle, event::STARTED, event::STARTED_BOOTED);
        if paused {
            self.publish(&handle, event::SUSPENDED, event::SUSPENDED_PAUSED);
        }
        Ok(handle)
    }

    fn publish(&self, dom: &Handle, ev: i32, detail: i32) {
        self.events.publish(LifecycleEvent {
            dom: dom.clone(),
            event: ev,
            detail,
        });
    }

    /// Follows a shim: its events update the domain and go to our clients; when the shim
    /// goes away, the domain is stopped.
    fn follow(self: &Arc<Self>, uuid: [u8; 16], conn: &Arc<Connection>) {
        let me: Weak<Self> = Arc::downgrade(self);
        conn.on_message(move |f: Frame| {
            let Some(d) = me.upgrade() else { return };
            match f.header.proc_ {
                procs::DOMAIN_EVENT_LIFECYCLE => {
                    if let Ok(m) = vireo_xdr::from_bytes::<DomainEventLifecycleMsg>(&f.payload) {
                        d.on_shim_event(uuid, m.event, m.detail);
                    }
                }
                procs::DOMAIN_EVENT_CALLBACK_DEVICE_REMOVED => {
                    if let Ok(m) = vireo_xdr::from_bytes::<
                        vireo_proto::remote::DomainEventCallbackDeviceRemovedMsg,
                    >(&f.payload)
                    {
                        d.device_removed(uuid, m.msg.dev_alias);
                    }
                }
                procs::DOMAIN_EVENT_CALLBACK_AGENT_LIFECYCLE => {
                    if let Ok(m) = vireo_xdr::from_bytes::<
                        vireo_proto::remote::DomainEventCallbackAgentLifecycleMsg,
                    >(&f.payload)
                    {
                        d.publish_device_status(
                            uuid,
                            event::ID_AGENT_LIFECYCLE,
                            String::new(),
                            m.state,
                            m.reason,
                        );
                    }
                }
                procs::DOMAIN_EVENT_MEMORY_DEVICE_SIZE_CHANGE => {
                    if let Ok(m) = vireo_xdr::from_bytes::<
                        vireo_proto::remote::DomainEventMemoryDeviceSizeChangeMsg,
                    >(&f.payload)
                    {
                        d.publish_memory_size(uuid, m.alias, m.size);
                    }
                }
                procs::DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION => {
                    if let Ok(m) =
                        vireo_xdr::from_bytes::<vireo_proto::migrate::IterationMsg>(&f.payload)
                    {
                        d.publish_device_status(
                            uuid,
                            vireo_proto::migrate::event::ID_MIGRATION_ITERATION,
                            String::new(),
                            m.iteration,
                            0,
                        );
                    }
                }
                procs::DOMAIN_EVENT_CALLBACK_JOB_COMPLETED => {
                    if let Ok(m) =
                        vireo_xdr::from_bytes::<vireo_proto::migrate::JobCompletedMsg>(&f.payload)
                    {
                        d.job_completed(uuid, m.params.0);
                    }
                }
                procs::DOMAIN_EVENT_BLOCK_JOB_2 => {
                    if let Ok(m) = vireo_xdr::from_bytes::<
                        vireo_proto::remote::DomainEventBlockJob2Msg,
                    >(&f.payload)
                    {
                        d.publish_device_status(
                            uuid,
                            event::ID_BLOCK_JOB_2,
                            m.dst,
                            m.type_,
                            m.status,
                        );
                    }
                }
                procs::DOMAIN_EVENT_BLOCK_JOB => {
                    if let Ok(m) = vireo_xdr::from_bytes::<
                        vireo_proto::remote::DomainEventBlockJobMsg,
                    >(&f.payload)
                    {
                        d.publish_device_status(
                            uuid,
                            event::ID_BLOCK_JOB,
                            m.path,
                            m.type_,
                            m.status,
                        );
                    }
                }
                p if vireo_proto::domevent::by_callback_proc(p).is_some() => {
                    if let Some((event_id, forms)) = vireo_proto::domevent::by_callback_proc(p) {
                        if let Some(body) = forms.body_of(&f.payload) {
                            d.publish_event_body(uuid, event_id, body.to_vec());
                        }
                    }
                }
                procs::DOMAIN_EVENT_CALLBACK_DEVICE_REMOVAL_FAILED => {
                    if let Ok(m) = vireo_xdr::from_bytes::<
                        vireo_proto::remote::DomainEventCallbackDeviceMsg,
                    >(&f.payload)
                    {
                        d.publish_device(uuid, event::ID_DEVICE_REMOVAL_FAILED, m.dev_alias);
                    }
                }
                _ => {}
            }
        });
        let me = Arc::downgrade(self);
        let c = Arc::clone(conn);
        tokio::spawn(async move {
            c.closed().await;
            if let Some(d) = me.upgrade() {
                d.shim_gone(uuid, &c);
            }
        });
    }

    fn on_shim_event(&self, uuid: [u8; 16], ev: i32, mut detail: i32) {
        let handle = {
            let mut reg = self.write();
            let Some(o) = reg.by_uuid.get_mut(&uuid) else {
                return;
            };
            if ev == event::STOPPED && std::mem::take(&mut o.stopping_for_snapshot) {
                detail = event::STOPPED_FROM_SNAPSHOT;
            }
            let migration = crate::migrate::migration_state(ev, detail);
            o.state = match (ev, detail) {
                _ if migration.is_some() => migration.unwrap_or(o.state),
                (event::SUSPENDED, event::SUSPENDED_FROM_SNAPSHOT) => {
                    (state::PAUSED, state::PAUSED_FROM_SNAPSHOT)
                }
                (event::SUSPENDED, event::SUSPENDED_IOERROR) => {
                    (state::PAUSED, state::PAUSED_IOERROR)
                }
                (event::SUSPENDED, event::SUSPENDED_WATCHDOG) => {
                    (state::PAUSED, state::PAUSED_WATCHDOG)
                }
                (event::SUSPENDED, _) => (state::PAUSED, state::PAUSED_USER),
                (event::PMSUSPENDED, _) => (state::PMSUSPENDED, state::PMSUSPENDED_UNKNOWN),
                (event::STARTED, event::STARTED_WAKEUP) => (state::RUNNING, state::RUNNING_WAKEUP),
                (event::RESUMED, event::RESUMED_FROM_SNAPSHOT) => {
                    (state::RUNNING, state::RUNNING_FROM_SNAPSHOT)
                }
                (event::RESUMED, _) => (state::RUNNING, state::RUNNING_UNPAUSED),
                (event::SHUTDOWN, _) => (state::SHUTDOWN, state::SHUTDOWN_USER),
                (event::STOPPED, event::STOPPED_DESTROYED) => {
                    (state::SHUTOFF, state::SHUTOFF_DESTROYED)
                }
                (event::STOPPED, event::STOPPED_SHUTDOWN) => {
                    (state::SHUTOFF, state::SHUTOFF_SHUTDOWN)
                }
                (event::STOPPED, event::STOPPED_SAVED) => (state::SHUTOFF, state::SHUTOFF_SAVED),
                (event::STOPPED, event::STOPPED_FROM_SNAPSHOT) => {
                    (state::SHUTOFF, state::SHUTOFF_FROM_SNAPSHOT)
                }
                (event::STOPPED, _) => (state::SHUTOFF, state::SHUTOFF_CRASHED),
                _ => o.state,
            };
            let h = o.handle();
            let gone = ev == event::STOPPED && self.stopped(&mut reg, uuid);
            (h, gone)
        };
        let (handle, gone) = handle;
        if gone {
            self.vanished(&uuid);
        }
        self.publish(&handle, ev, detail);
    }

    /// Forgets the running part of a domain (and a transient domain altogether: then
    /// true).
    fn stopped(&self, reg: &mut crate::driver::Registry, uuid: [u8; 16]) -> bool {
        let Some(o) = reg.by_uuid.get_mut(&uuid) else {
            return false;
        };
        o.id = None;
        o.shim = None;
        // The interfaces' ports go back to their networks.
        let ports: Vec<_> = std::mem::take(&mut o.ports)
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        let held = !std::mem::take(&mut o.hostdevs).is_empty();
        let leased = std::mem::take(&mut o.leased) || held || !o.def.devices.hostdevs.is_empty();
        if !ports.is_empty() || leased {
            if let (Some(peers), Ok(rt)) = (
                self.peers.get().cloned(),
                tokio::runtime::Handle::try_current(),
            ) {
                let pending = Arc::clone(&self.pending_releases);
                if leased {
                    pending.add(uuid);
                }
                rt.spawn(async move {
                    crate::peers::release_ports(&ports, Some(&peers)).await;
                    // Its host devices go back to the node device driver.
                    if leased {
                        crate::devlease::release_when_ended(peers, pending, uuid).await;
                    }
                });
            }
        }
        if o.state.0 != state::SHUTOFF {
            o.state = (state::SHUTOFF, state::SHUTOFF_UNKNOWN);
        }
        for suffix in ["xml", "defined.xml"] {
            let _ = std::fs::remove_file(
                self.shim_dir()
                    .join(format!("{}.{suffix}", format_uuid(&uuid))),
            );
        }
        // QEMU's own directory (its monitor's socket): QEMU is gone.
        let _ = std::fs::remove_dir_all(self.cfg.run_dir.join("qemu").join(format_uuid(&uuid)));
        if !o.persistent {
            let name = o.def.name.clone();
            reg.by_uuid.remove(&uuid);
            reg.by_name.remove(&name);
            return true;
        }
        false
    }

    /// A transient domain that vanished takes its snapshots' metadata with it (the images
    /// keep what is theirs). Called without the registry's lock.
    fn vanished(&self, uuid: &[u8; 16]) {
        if let Err(e) = self.drop_snapshot_metadata(uuid) {
            log::warn!(
                "cannot remove the snapshot metadata of {}: {e}",
                format_uuid(uuid)
            );
        }
    }

    /// The shim's connection closed. If the domain still looks alive, the shim died: the
    /// domain is crashed.
    fn shim_gone(&self, uuid: [u8; 16], conn: &Arc<Connection>) {
        let handle = {
            let mut reg = self.write();
            let Some(o) = reg.by_uuid.get_mut(&uuid) else {
                return;
            };
            let same = o.shim.as_ref().is_some_and(|s| Arc::ptr_eq(s, conn));
            if !same || !o.active() {
                return;
            }
            o.state = (state::SHUTOFF, state::SHUTOFF_CRASHED);
            self.shim_counters
                .lost
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let h = o.handle();
            // Under the registry's lock: no new shim of this VM can have started yet.
            self.remove_dead_shim_files(&uuid, &h.name);
            (h, self.stopped(&mut reg, uuid))
        };
        let (handle, gone) = handle;
        if gone {
            self.vanished(&uuid);
        }
        self.publish(&handle, event::STOPPED, event::STOPPED_FAILED);
        remove_leftovers_later(&uuid, &self.cfg.run_dir);
    }

    /// Everything of a shim that died while it started the VM `uuid`: its definitions in
    /// `<run>/shim`, what it could not remove itself, QEMU's directory, the VM's cgroup.
    fn abandon_shim(&self, uuid: &[u8; 16], name: &str) {
        let u = format_uuid(uuid);
        for suffix in ["xml", "defined.xml"] {
            let _ = std::fs::remove_file(self.shim_dir().join(format!("{u}.{suffix}")));
        }
        self.remove_dead_shim_files(uuid, name);
        let _ = std::fs::remove_dir_all(self.cfg.run_dir.join("qemu").join(&u));
        remove_leftovers_later(uuid, &self.cfg.run_dir);
    }

    /// What a shim that died (SIGKILL) could not remove: its socket and status file, and
    /// the VM's own endpoint (`<run>/vm/NAME-sock`, `-sock-ro`).
    fn remove_dead_shim_files(&self, uuid: &[u8; 16], name: &str) {
        let u = format_uuid(uuid);
        let vm = self.cfg.run_dir.join("vm");
        let files = ["sock", "status", "status.tmp"]
            .map(|suffix| self.shim_dir().join(format!("{u}.{suffix}")))
            .into_iter()
            .chain([
                vm.join(format!("{name}-sock")),
                vm.join(format!("{name}-sock-ro")),
            ]);
        for f in files {
            let _ = std::fs::remove_file(f);
        }
    }

    pub(crate) fn shim_of(&self, h: &Handle) -> Result<Arc<Connection>> {
        let reg = self.read();
        let o = reg
            .by_uuid
            .get(&h.uuid)
            .ok_or_else(|| no_domain_uuid(&h.uuid, &h.name))?;
        o.shim
            .clone()
            .ok_or_else(|| DriverError::OperationInvalid("domain is not running".into()))
    }

    /// Sends a call to the domain's shim as it came (payload untouched) and returns the
    /// shim's reply payload.
    pub async fn forward(
        &self,
        h: &Handle,
        proc_: i32,
        payload: &[u8],
    ) -> std::result::Result<Vec<u8>, RemoteError> {
        self.forward_program(h, REMOTE_PROGRAM, REMOTE_VERSION, proc_, payload)
            .await
    }

    /// [`Self::forward`] for a call of another program (libvirt's QEMU program).
    pub async fn forward_program(
        &self,
        h: &Handle,
        prog: u32,
        vers: u32,
        proc_: i32,
        payload: &[u8],
    ) -> std::result::Result<Vec<u8>, RemoteError> {
        let conn = self.shim_of(h)?;
        match conn
            .call_raw(prog, vers, proc_, |o| o.extend_from_slice(payload))
            .await
        {
            Ok(p) => Ok(p),
            Err(CallError::Remote(e)) => Err(e),
            // The shim went away while answering a destroy: that is what was asked.
            Err(CallError::Closed)
                if matches!(proc_, procs::DOMAIN_DESTROY | procs::DOMAIN_DESTROY_FLAGS) =>
            {
                Ok(Vec::new())
            }
            Err(e) => Err(crate::hotplug::shim_error(e).into()),
        }
    }

    /// Finds the shims of VMs that kept running while no daemon was there, and follows
    /// them again. (The daemon then starts the autostart domains, [`Self::autostart_all`],
    /// once it serves: their volumes may be resolved through its own socket.)
    pub async fn recover(self: &Arc<Self>) {
        let dir = self.shim_dir();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let mut max_id = 0;
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "sock") {
                continue;
            }
            match self.reattach(&path).await {
                Ok(id) => max_id = max_id.max(id),
                Err(err) => {
                    log::warn!("{}: {err}; removing", path.display());
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let _ = self.next_id.fetch_max(max_id + 1, Ordering::Relaxed);
        self.sweep_dead_shims();
    }

    /// Removes what shims that died while no daemon was there left behind (nobody answers
    /// on their sockets, which [`Self::recover`] removed): their files in `<run>/shim`, the
    /// VM's endpoint, QEMU's directory and the VM's cgroup, and the files they had given to
    /// QEMU's user. Runs before the daemon serves, so no start races it.
    fn sweep_dead_shims(&self) {
        let live: std::collections::HashSet<String> = self
            .read()
            .by_uuid
            .iter()
            .filter(|(_, o)| o.active())
            .map(|(u, _)| format_uuid(u))
            .collect();
        let Ok(entries) = std::fs::read_dir(self.shim_dir()) else {
            return;
        };
        let mut dead = std::collections::BTreeMap::new();
        for e in entries.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            // Half a definition a daemon killed while writing it left (`.UUID.xml.tmpPID`):
            // this daemon has written nothing here yet.
            if file.starts_with('.') && file.contains(".tmp") {
                let _ = std::fs::remove_file(e.path());
                continue;
            }
            let stem = file.split('.').next().unwrap_or_default().to_string();
            let Some(uuid) = vireo_xml::parse_uuid(&stem) else {
                continue;
            };
            if live.contains(&stem) {
                continue;
            }
            if file == format!("{stem}.xml") {
                let name = std::fs::read_to_string(e.path())
                    .ok()
                    .and_then(|x| Domain::parse(&x).ok())
                    .map(|d| d.name);
                dead.insert(uuid, name);
            } else {
                dead.entry(uuid).or_insert(None);
            }
            let _ = std::fs::remove_file(e.path());
        }
        for (uuid, name) in dead {
            log::warn!("removing what the dead shim of {} left", format_uuid(&uuid));
            if let Some(n) = name {
                self.remove_dead_shim_files(&uuid, &n);
            }
            let _ = std::fs::remove_dir_all(self.cfg.run_dir.join("qemu").join(format_uuid(&uuid)));
            remove_leftovers_later(&uuid, &self.cfg.run_dir);
        }
        // Files that shims gone meanwhile held, whatever else they left.
        let n = crate::owners::Store::new(&self.cfg.run_dir).sweep();
        if n > 0 {
            log::warn!("gave back {n} files that dead shims had given to QEMU's user");
        }
    }

    async fn reattach(self: &Arc<Self>, sock: &Path) -> std::result::Result<i32, String> {
        // Connecting is the test: a stale socket file has nobody behind it.
        let conn = Arc::new(Connection::connect(sock).await.map_err(|e| e.to_string())?);
        self.shim_counters.track(&conn);
        let stem = sock
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let uuid = vireo_xml::parse_uuid(&stem).ok_or("not a domain socket")?;
        let lookup: DomainRet = conn
            .call(
                procs::DOMAIN_LOOKUP_BY_UUID,
                &DomainLookupByUuidArgs { uuid },
            )
            .await
            .map_err(|e| e.to_string())?;
        let dom = lookup.dom;
        let st: DomainGetStateRet = conn
            .call(
                procs::DOMAIN_GET_STATE,
                &DomainFlagsArgs {
                    dom: dom.clone(),
                    flags: 0,
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        if st.state == state::SHUTOFF || dom.id < 0 {
            return Err("the VM has stopped".into());
        }
        let xml: DomainGetXmlDescRet = conn
            .call(
                procs::DOMAIN_GET_XML_DESC,
                &DomainFlagsArgs {
                    dom: dom.clone(),
                    flags: 0,
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        let live = Domain::parse(&xml.xml).map_err(|e| e.to_string())?;
        let leased = !live.devices.hostdevs.is_empty();
        // Its host devices by alias; their node devices are found again at their release.
        let held: Vec<crate::devlease::HeldDevice> = live
            .devices
            .hostdevs
            .iter()
            .enumerate()
            .map(|(i, h)| crate::devlease::HeldDevice {
                alias: h
                    .alias
                    .clone()
                    .unwrap_or_else(|| crate::cmdline::hostdev_alias(h, i)),
                dev: h.clone(),
                name: None,
            })
            .collect();
        // The live XML names its interfaces' ports.
        let ports: Vec<(String, crate::peers::PortRef)> = live
            .devices
            .interfaces
            .iter()
            .enumerate()
            .filter_map(|(n, i)| {
                let alias = i.alias.clone().unwrap_or_else(|| format!("net{n}"));
                Some((alias, crate::peers::PortRef::of_live(uuid, i)?))
            })
            .collect();
        {
            let mut reg = self.write();
            let obj = reg
                .by_uuid
                .entry(uuid)
                .or_insert_with(|| DomainObj::new(live, uuid, false));
            obj.id = Some(dom.id);
            obj.state = (st.state, st.reason);
            obj.shim = Some(Arc::clone(&conn));
            obj.ports = ports;
            obj.leased = leased;
            obj.hostdevs = held;
            let name = obj.def.name.clone();
            reg.by_name.insert(name, uuid);
        }
        self.follow(uuid, &conn);
        Ok(dom.id)
    }

    pub async fn autostart_all(self: &Arc<Self>) {
        let todo: Vec<Handle> = {
            let reg = self.read();
            reg.by_uuid
                .values()
                .filter(|o| o.autostart && !o.active())
                .map(DomainObj::handle)
                .collect()
        };
        for h in todo {
            if let Err(e) = self.start(&h, 0).await {
                log::warn!("autostart of '{}' failed: {e}", h.name);
            }
        }
    }

    /// Asks the shim for the live XML of a running domain.
    pub async fn live_xml(&self, h: &Handle) -> std::result::Result<Vec<u8>, RemoteError> {
        let args = DomainFlagsArgs {
            dom: h.clone(),
            flags: 0,
        };
        self.forward(h, procs::DOMAIN_GET_XML_DESC, &vireo_xdr::to_bytes(&args))
            .await
    }

    /// After a call to the VM's shim failed: waits (a little) for the shim's connection to
    /// close and the daemon to see the VM's end; true when it has ended.
    pub async fn settle_end(&self, h: &Handle) -> bool {
        let Ok(conn) = self.shim_of(h) else {
            return true;
        };
        // The daemon marks the VM ended, then says so (STOPPED), once its shim's
        // connection closed.
        let mut stops = self.events.subscribe();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
        if tokio::time::timeout_at(deadline, conn.closed())
            .await
            .is_err()
        {
            return false;
        }
        while self.is_running(h).unwrap_or(false) {
            match tokio::time::timeout_at(deadline, stops.recv()).await {
                Ok(Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                _ => return false,
            }
        }
        true
    }

    /// Whether a domain is running (has a shim).
    pub fn is_running(&self, h: &Handle) -> Result<bool> {
        self.with(h, |o| o.shim.is_some())
    }
}

/// A `<vsock>` without a CID gets one (`auto`), from the domain's UUID: the live XML shows
/// it. The host needs `/dev/vhost-vsock` (module vhost_vsock).
fn vsock_cid(def: &mut Domain) -> Result<()> {
    let uuid = def.uuid.unwrap_or_default();
    let Some(v) = def.devices.vsock.as_mut() else {
        return Ok(());
    };
    if !std::path::Path::new("/dev/vhost-vsock").exists() {
        return Err(DriverError::ConfigUnsupported(
            "<vsock> needs /dev/vhost-vsock on the host (kernel module vhost_vsock)".into(),
        ));
    }
    let cid = v.cid.get_or_insert_with(Default::default);
    if cid.address.is_none() || cid.auto == Some(true) {
        let n = u32::from_le_bytes([uuid[0], uuid[1], uuid[2], uuid[3]]);
        // 3 and up, below u32::MAX (VMADDR_CID_ANY).
        cid.address = Some(3 + n % (u32::MAX - 4));
        cid.auto = Some(true);
    }
    Ok(())
}

/// What a shim that died leaves behind, once its QEMU has gone too (QEMU dies with its
/// shim; nothing tells when it has): the VM's cgroup, and the files only dead shims held
/// (given back to their owners: see [`crate::owners`]).
fn remove_leftovers_later(uuid: &[u8; 16], run_dir: &Path) {
    let name = crate::cgroup::name_of(&format_uuid(uuid));
    let store = crate::owners::Store::new(run_dir);
    tokio::spawn(async move {
        for _ in 0..100 {
            if crate::cgroup::remove_leftover(&name) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let _ = tokio::task::spawn_blocking(move || store.sweep()).await;
    });
}
