//! One QEMU process: launch, the QMP monitor, the lifecycle state machine, and the
//! operations the shim serves.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::Value;
use tokio::process::Child;
use tokio::sync::watch;
use vireo_proto::remote::{event, state};
use vireo_qemu::caps::{Machine, QemuCaps};
use vireo_qemu::cmdline::{self, LaunchConfig};
use vireo_qmp::{Event, Qmp};
use vireo_xml::{format_uuid, Domain};

use crate::Args;

/// How long QEMU may take to greet us.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a monitor command waits for QEMU's reply (as libvirt waits for a job):
/// a QEMU stopped or stuck fails the call with a timeout instead of holding it forever.
pub(crate) const MONITOR_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a destroy waits for QEMU to exit after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(10);
/// QEMU reads the first encrypted disk's passphrase here, the next at the next fd, ….
const FIRST_SECRET_FD: i32 = 100;
/// Where QEMU finds the taps of the interfaces on networks: fds 200, 201, …
const FIRST_TAP_FD: i32 = 200;
/// QEMU's USB host devices: fds 300, 301, … (`-add-fd` puts each in its fd set).
const FIRST_USB_FD: i32 = 300;

/// A lifecycle event (`virDomainEventType`, detail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifecycle {
    pub event: i32,
    pub detail: i32,
}

/// What the shim itself asked QEMU to do, so that what follows is read correctly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intent {
    None,
    /// destroy: SIGTERM (then SIGKILL).
    Destroy,
    /// The guest powered off and on_poweroff said destroy.
    PowerOff,
    /// reboot: an ACPI power-down that we turn into a reset.
    FakeReboot,
    /// save: the state is in a file, QEMU ends.
    Save,
    /// migration: the guest runs on the destination, QEMU ends.
    Migrated,
}

#[derive(Debug, Clone, Copy)]
struct Status {
    state: i32,
    reason: i32,
    intent: Intent,
    /// A stop or cont we sent is in flight: its STOP/RESUME event is ours, not news.
    pausing: bool,
}

pub struct Vm {
    pub def: Domain,
    /// Files given to QEMU's user while it runs (qemu.conf's `dynamic_ownership`).
    pub(crate) owners: Mutex<crate::owner::Owners>,
    /// Write thresholds armed (`domblkthreshold`).
    pub(crate) thresholds: Mutex<Vec<crate::threshold::Armed>>,
    /// What was done to the VM that libvirt calls tainting it.
    taints: crate::taint::Taints,
    /// QEMU's user, when the VM's files are given to it (qemu.conf's `user` and
    /// `dynamic_ownership`): disks plugged in go to it too.
    pub(crate) owning_for: Option<vireo_qemu::QemuUser>,
    /// `<memballoon><stats period>` as it is now (changed by SET_MEMORY_STATS_PERIOD).
    balloon_period: Mutex<Option<u32>>,
    /// The memory the guest is asked to have now, in KiB (changed by SET_MEMORY_FLAGS).
    memory_kib: Mutex<u64>,
    /// Title, description and `<metadata>` as they are now (changed by SET_METADATA).
    meta: Mutex<(Option<String>, Option<String>, Option<String>)>,
    pub uuid: [u8; 16],
    pub id: i32,
    pid: u32,
    qmp: Qmp,
    status: Mutex<Status>,
    /// Chardev label → pty path, from query-chardev.
    ptys: Vec<(String, String)>,
    vnc_port: Option<i32>,
    child: tokio::sync::Mutex<Option<Child>>,
    events: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Event>>>,
    exited: watch::Sender<bool>,
    emit: OnceLock<Box<dyn Fn(Lifecycle) + Send + Sync>>,
    /// `<run>/shim/<uuid>.status`: this VM's runtime status for anyone to read.
    status_file: std::path::PathBuf,
    /// The guest's interfaces as they are now (hotplug changes them), with their QEMU ids.
    nics: Mutex<Vec<crate::hotplug::Nic>>,
    /// The guest's disks as they are now.
    disks: Mutex<Vec<crate::hotplug::LiveDisk>>,
    /// Its input devices and channels as they are now.
    inputs: Mutex<Vec<crate::hotplug::LiveInput>>,
    channels: Mutex<Vec<crate::hotplug::LiveChannel>>,
    /// `<run>/qemu/<uuid>`: the VM's sockets.
    qemu_dir: std::path::PathBuf,
    /// Counts the devices the guest let go (unplugs wait on it).
    removed: watch::Sender<u64>,
    /// The devices (QEMU ids) whose unplug the guest refused since it was last asked.
    rejected: Mutex<Vec<String>>,
    /// Tells the clients a device came or went: (event message procedure, alias).
    emit_device: OnceLock<DeviceEmitter>,
    /// The job in progress (a save), if any.
    job: Mutex<Option<crate::job::Job>>,
    /// What the last job that ended did.
    completed: Mutex<Option<crate::job::Finished>>,
    /// The block jobs running on its disks.
    pub(crate) block_jobs: Mutex<Vec<crate::blockjob::BlockJob>>,
    /// `<cputune>` as it is now (pins changed live included).
    cputune: Mutex<vireo_xml::Cputune>,
    /// The VM's own cgroup, when the host gives one.
    cgroup: Option<vireo_qemu::cgroup::Cgroup>,
    /// `<memtune>` and `<blkiotune>` as they are now (changed live).
    memtune: Mutex<Option<vireo_xml::Memtune>>,
    blkiotune: Mutex<Option<vireo_xml::Blkiotune>>,
    /// The controllers as they are now (a SCSI controller can be plugged in and out).
    controllers: Mutex<Vec<vireo_xml::Controller>>,
    /// The memory devices as they are now (hotplug changes them).
    memories: Mutex<Vec<crate::memdev::LiveMemory>>,
    /// The host devices as they are now (hotplug changes them).
    hostdevs: Mutex<Vec<crate::hostdev::LiveHostdev>>,
    /// The I/O threads as they are now (iothreadadd/del change them).
    iothreads: Mutex<vireo_xml::IoThreads>,
    /// vCPUs online now (setvcpus --live changes it).
    pub(crate) vcpus_now: Mutex<u32>,
    /// The guest agent, when the VM has its channel.
    pub(crate) agent: crate::agent::Agent,
    /// Counts the block jobs that ended (an abort waits on it).
    pub(crate) block_done: watch::Sender<u64>,
    /// Sends an event message (REMOTE program procedure, payload) to every client.
    emit_message: OnceLock<MessageEmitter>,
    /// The migration settings and the outgoing migration.
    pub(crate) migration: crate::migrate::Migration,
}

type MessageEmitter = Box<dyn Fn(i32, Vec<u8>) + Send + Sync>;

type DeviceEmitter = Box<dyn Fn(i32, String) + Send + Sync>;

impl Vm {
    /// Execs QEMU paused, completes the QMP handshake and starts the CPUs.
    pub async fn launch(def: Domain, args: &Args) -> anyhow::Result<Arc<Vm>> {
        let uuid = def.uuid.context("definition has no uuid")?;
        let dir = args.run_dir.join("qemu").join(format_uuid(&uuid));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        if let Some(u) = &args.qemu_user {
            give_vm_dir(&dir, u)?;
        }
        let mon_path = dir.join("monitor.sock");
        let _ = std::fs::remove_file(&mon_path);
        let mon = std::os::unix::net::UnixListener::bind(&mon_path)
            .with_context(|| format!("cannot listen on {}", mon_path.display()))?;
        let caps = caps_for(&def, args.hv_version);
        cmdline::check(&def, &caps).map_err(|e| anyhow!("{e}"))?;
        // An emulated TPM (swtpm) and shared directories (virtiofsd) run beside QEMU,
        // ready before it connects to them.
        crate::helpers::start(&def, &dir, args.tpm_state.as_deref()).await?;
        if let Some(u) = &args.qemu_user {
            crate::helpers::give_sockets(&dir, u)?;
        }
        // The files QEMU opens by path, its user's while it runs (restored when this
        // is dropped, a failed start included).
        let owners = match &args.qemu_user {
            Some(u) if args.dynamic_ownership => {
                crate::owner::Owners::new(&args.run_dir, &format_uuid(&uuid)).take(&def, u)
            }
            _ => crate::owner::Owners::default(),
        };
        // Each passphrase reaches QEMU as a pipe at fd 100, 101, …, read by its secret
        // object: never a command-line argument or a file.
        let mut secret_pipes: Vec<(OwnedFd, i32)> = Vec::new();
        let mut secret_fds = std::collections::BTreeMap::new();
        for (i, (uuid, value)) in args.secrets.iter().enumerate() {
            let target = FIRST_SECRET_FD + i as i32;
            let pipe = vireo_fdpass::pipe_with(value)
                .with_context(|| format!("cannot pass secret {uuid} to QEMU"))?;
            secret_fds.insert(uuid.clone(), target);
            secret_pipes.push((pipe, target));
        }
        let argv = cmdline::build(
            &def,
            &caps,
            &LaunchConfig {
                monitor_fd: 3,
                run_dir: dir.clone(),
                sandbox: !args.no_sandbox,
                secret_fds: Some(secret_fds),
                tap_fds: Some(
                    (0..args.taps.len())
                        .map(|i| FIRST_TAP_FD + i as i32)
                        .collect(),
                ),
                // Leased by the daemon from the node device driver.
                usb_host_fds: Some(
                    (0..args.usb.len())
                        .map(|i| FIRST_USB_FD + i as i32)
                        .collect(),
                ),
            },
        )
        .map_err(|e| anyhow!("{e}"))?;
        let secret_dups: Vec<(i32, i32)> = secret_pipes
            .iter()
            .map(|(p, t)| (p.as_raw_fd(), *t))
            .chain(
                args.taps
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (t.as_raw_fd(), FIRST_TAP_FD + i as i32)),
            )
            .chain(
                args.usb
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (t.as_raw_fd(), FIRST_USB_FD + i as i32)),
            )
            .collect();
        // QEMU writes to our log (stderr), never to stdout, which the daemon reads.
        let log: OwnedFd = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .context("cannot duplicate the log fd")?;
        // VFIO devices map the guest's memory for DMA: QEMU must be allowed to lock it.
        if let Some(kib) = cmdline::vfio_memlock_kib(&def) {
            raise_memlock(kib.saturating_mul(1024));
        }
        let mut cmd = tokio::process::Command::new(&caps.emulator);
        cmd.args(&argv)
            .args(
                args.incoming
                    .is_some()
                    .then_some(["-incoming", "defer"])
                    .into_iter()
                    .flatten(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .kill_on_drop(false);
        let mon_fd = mon.as_raw_fd();
        // QEMU's own user (qemu.conf), and its groups (its own first, then the user's: kvm,
        // for /dev/kvm), made here: nothing is allocated between fork and exec.
        let user: Option<(libc::uid_t, libc::gid_t, Vec<libc::gid_t>)> =
            args.qemu_user.as_ref().map(|u| {
                let mut groups = vec![u.gid];
                groups.extend(&u.groups);
                (u.uid, u.gid, groups)
            });
        let shim_pid = std::process::id() as libc::pid_t;
        // SAFETY: between fork and exec only async-signal-safe calls are made (dup2, fcntl,
        // setgroups, setresgid, setresuid, umask, prctl, getppid), on fds open in the child
        // and on memory made before the fork.
        unsafe {
            cmd.pre_exec(move || {
                vireo_fdpass::inherit_as(mon_fd, 3)?;
                for &(from, to) in &secret_dups {
                    vireo_fdpass::inherit_as(from, to)?;
                }
                // QEMU's own user: its groups, its group, then the user; its sockets in
                // the VM's directory open to the shim's group.
                if let Some((uid, gid, groups)) = &user {
                    if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                        || libc::setresgid(*gid, *gid, *gid) != 0
                        || libc::setresuid(*uid, *uid, *uid) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::umask(0o007);
                }
                // A VM whose shim is gone has no owner: it goes too (the daemon reports it
                // crashed). The shim forks from its only thread, so this is its lifetime.
                // Set after the change of user, which would clear it; and a shim that died
                // before it was set (killed right after the fork) is seen here.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() != shim_pid {
                    return Err(std::io::Error::other("the shim is gone"));
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot run {}", caps.emulator.display()))?;
        drop(secret_pipes);
        let pid = child.id().unwrap_or(0);
        // Into its own cgroup before it allocates the guest's memory.
        let cgroup = (pid > 0)
            .then(|| {
                vireo_qemu::cgroup::Cgroup::create(
                    &vireo_qemu::cgroup::name_of(&format_uuid(&uuid)),
                    pid,
                )
            })
            .flatten();
        // The listening socket exists already, so this connect waits in its backlog until
        // QEMU accepts: the greeting is the readiness signal, no polling.
        let stream = tokio::net::UnixStream::connect(&mon_path)
            .await
            .context("cannot connect to the QEMU monitor")?;
        drop(mon);
        let handshake = tokio::select! {
            r = Qmp::handshake(stream, HANDSHAKE_TIMEOUT) => r,
            st = child.wait() => {
                let st = st.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                bail!("QEMU exited during startup ({st}); see the domain log for its message");
            }
        };
        let (qmp, _greeting, events) = match handshake {
            Ok(h) => h,
            Err(e) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                bail!("QEMU monitor handshake failed: {e}");
            }
        };
        qmp.set_reply_limit(Some(MONITOR_TIMEOUT));
        let ptys = query_ptys(&qmp).await;
        if args.qemu_user.is_some() {
            // QEMU made them, as its user: the shim opens them for a console.
            for (_, p) in &ptys {
                let _ = std::os::unix::fs::chown(p, Some(0), None);
            }
        }
        let vnc_port = if def.devices.graphics.is_empty() {
            None
        } else {
            query_vnc_port(&qmp).await
        };
        // The guest's memory statistics, every N seconds (set before the CPUs run).
        let balloon_period = def
            .devices
            .memballoon
            .as_ref()
            .filter(|m| m.model == vireo_xml::MemballoonModel::Virtio)
            .and_then(|m| m.stats_period);
        if let Some(p) = balloon_period {
            if let Err(e) = set_polling(&qmp, p).await {
                let _ = child.start_kill();
                let _ = child.wait().await;
                bail!("cannot set the balloon's statistics period: {e}");
            }
        }
        // Less memory than the maximum at boot: the balloon holds the rest from the start.
        if virtio_balloon(&def) && def.current_memory_kib < def.memory_kib {
            let bytes = def.current_memory_kib * 1024;
            if let Err(e) = qmp
                .execute("balloon", Some(serde_json::json!({ "value": bytes })))
                .await
            {
                let _ = child.start_kill();
                let _ = child.wait().await;
                bail!("cannot set the balloon to the current memory: {e}");
            }
        }
        // vCPUs and QEMU's own threads where <cputune> puts them, before the guest runs.
        let pinned = async {
            crate::tune::apply_at_start(cgroup.as_ref(), &qmp, pid, &def).await?;
            crate::pinning::apply(&qmp, pid, &def).await?;
            crate::iothread::apply(&qmp, &def).await?;
            // Cards whose link starts down (QEMU's devices start with theirs up).
            for (i, n) in def.devices.interfaces.iter().enumerate() {
                if n.link_state == Some(vireo_xml::LinkState::Down) {
                    qmp.execute(
                        "set_link",
                        Some(serde_json::json!({ "name": format!("net{i}"), "up": false })),
                    )
                    .await
                    .map_err(|e| anyhow!("cannot set the link of net{i} down: {e}"))?;
                }
            }
            anyhow::Ok(())
        };
        if let Err(e) = pinned.await {
            let _ = child.start_kill();
            let _ = child.wait().await;
            bail!("{e}");
        }
        let restored = args.incoming.is_some();
        if let Some(image) = &args.incoming {
            let r = if args.migrated {
                crate::migrate::incoming(&qmp, image, args.postcopy, args.nbd.as_ref(), &def).await
            } else {
                load_stream(&qmp, image, false).await
            };
            if let Err(e) = r {
                let _ = child.start_kill();
                let _ = child.wait().await;
                if args.migrated {
                    bail!("the incoming migration failed: {e}");
                }
                bail!("cannot restore the saved state: {e}");
            }
        }
        let (state0, reason0) = if args.paused {
            if restored && args.migrated {
                (
                    state::PAUSED,
                    vireo_proto::migrate::reason::PAUSED_MIGRATION,
                )
            } else if restored && args.from_snapshot {
                (state::PAUSED, state::PAUSED_FROM_SNAPSHOT)
            } else {
                (state::PAUSED, state::PAUSED_USER)
            }
        } else {
            if let Err(e) = qmp.execute("cont", None).await {
                let _ = child.start_kill();
                let _ = child.wait().await;
                bail!("cannot start the CPUs: {e}");
            }
            if restored && args.from_snapshot {
                (state::RUNNING, state::RUNNING_FROM_SNAPSHOT)
            } else if restored {
                (state::RUNNING, state::RUNNING_RESTORED)
            } else {
                (state::RUNNING, state::RUNNING_BOOTED)
            }
        };
        let nics = crate::hotplug::initial_nics(&def.devices.interfaces);
        let inputs = crate::hotplug::initial_inputs(&def.devices.inputs);
        let channels = crate::hotplug::initial_channels(&def.devices.channels);
        let disks = {
            let mut shown = def.clone();
            if let Some(defined) = &args.defined {
                vireo_qemu::peers::show_volumes(&mut shown, defined);
            }
            crate::hotplug::initial_disks(&shown.devices.disks, &def.devices.disks)
        };
        let meta = (
            def.title.clone(),
            def.description.clone(),
            def.metadata.clone(),
        );
        let memory_kib = Mutex::new(def.current_memory_kib);
        let cputune = def.cputune.clone().unwrap_or_default();
        let iothreads = Mutex::new(def.iothreads.clone());
        let memories = Mutex::new(crate::memdev::initial(&def.devices.memories));
        let hostdevs = Mutex::new(crate::hostdev::initial(&def.devices.hostdevs));
        let controllers = Mutex::new(def.devices.controllers.clone());
        let vcpus_now = def.current_vcpus();
        let memtune = Mutex::new(def.memtune.clone());
        let blkiotune = Mutex::new(def.blkiotune.clone());
        let (qemu_uid, qemu_gid) = match &args.qemu_user {
            Some(u) => (u.uid, u.gid),
            None => (
                rustix::process::geteuid().as_raw(),
                rustix::process::getegid().as_raw(),
            ),
        };
        let taints = crate::taint::Taints::at_start(&def, qemu_uid, qemu_gid);
        let vm = Arc::new(Vm {
            def,
            owners: Mutex::new(owners),
            thresholds: Mutex::new(Vec::new()),
            taints,
            owning_for: args.qemu_user.clone().filter(|_| args.dynamic_ownership),
            uuid,
            id: args.id,
            pid,
            qmp,
            status: Mutex::new(Status {
                state: state0,
                reason: reason0,
                intent: Intent::None,
                pausing: false,
            }),
            ptys,
            vnc_port,
            child: tokio::sync::Mutex::new(Some(child)),
            events: Mutex::new(Some(events)),
            exited: watch::channel(false).0,
            emit: OnceLock::new(),
            status_file: args
                .run_dir
                .join("shim")
                .join(format!("{}.status", format_uuid(&uuid))),
            nics: Mutex::new(nics),
            disks: Mutex::new(disks),
            inputs: Mutex::new(inputs),
            channels: Mutex::new(channels),
            qemu_dir: dir.clone(),
            removed: watch::channel(0).0,
            rejected: Mutex::new(Vec::new()),
            emit_device: OnceLock::new(),
            job: Mutex::new(None),
            completed: Mutex::new(None),
            block_jobs: Mutex::new(Vec::new()),
            block_done: watch::channel(0).0,
            agent: Default::default(),
            cputune: Mutex::new(cputune),
            memtune,
            blkiotune,
            cgroup,
            iothreads,
            memories,
            hostdevs,
            controllers,
            vcpus_now: Mutex::new(vcpus_now),
            emit_message: OnceLock::new(),
            migration: Default::default(),
            balloon_period: Mutex::new(balloon_period),
            memory_kib,
            meta: Mutex::new(meta),
        });
        for t in vm.taints.marked() {
            vm.log_taint(t);
        }
        Ok(vm.with_status_written())
    }

    pub(crate) fn nics(&self) -> std::sync::MutexGuard<'_, Vec<crate::hotplug::Nic>> {
        self.nics.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn disks(&self) -> std::sync::MutexGuard<'_, Vec<crate::hotplug::LiveDisk>> {
        self.disks.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn inputs(&self) -> std::sync::MutexGuard<'_, Vec<crate::hotplug::LiveInput>> {
        self.inputs.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn cputune(&self) -> std::sync::MutexGuard<'_, vireo_xml::Cputune> {
        self.cputune.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The VM's own cgroup, when the host gave one.
    pub(crate) fn cgroup(&self) -> Option<&vireo_qemu::cgroup::Cgroup> {
        self.cgroup.as_ref()
    }

    /// The memory limits set live.
    pub(crate) fn set_memtune(&self, m: vireo_xml::Memtune) {
        *self.memtune.lock().unwrap_or_else(|p| p.into_inner()) = (!m.is_empty()).then_some(m);
    }

    /// `<blkiotune>` as it is now.
    pub(crate) fn blkiotune(&self) -> Option<vireo_xml::Blkiotune> {
        self.blkiotune
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Changes `<blkiotune>` (values set live).
    pub(crate) fn update_blkiotune(&self, f: impl FnOnce(&mut vireo_xml::Blkiotune)) {
        let mut b = self.blkiotune.lock().unwrap_or_else(|p| p.into_inner());
        let mut t = b.take().unwrap_or_default();
        f(&mut t);
        *b = (!t.is_empty()).then_some(t);
    }

    pub(crate) fn controllers(&self) -> std::sync::MutexGuard<'_, Vec<vireo_xml::Controller>> {
        self.controllers.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn memories(&self) -> std::sync::MutexGuard<'_, Vec<crate::memdev::LiveMemory>> {
        self.memories.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn hostdevs(&self) -> std::sync::MutexGuard<'_, Vec<crate::hostdev::LiveHostdev>> {
        self.hostdevs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The memory the guest has grows (or shrinks) by a memory device's.
    pub(crate) fn add_memory_kib(&self, delta: i64) {
        let mut m = self.memory_kib.lock().unwrap_or_else(|p| p.into_inner());
        *m = m.saturating_add_signed(delta);
    }

    pub(crate) fn iothreads(&self) -> std::sync::MutexGuard<'_, vireo_xml::IoThreads> {
        self.iothreads.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn channels(&self) -> std::sync::MutexGuard<'_, Vec<crate::hotplug::LiveChannel>> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn qemu_dir(&self) -> &std::path::Path {
        &self.qemu_dir
    }

    /// QEMU's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    pub(crate) fn qmp(&self) -> &Qmp {
        &self.qmp
    }

    pub(crate) fn removed_rx(&self) -> watch::Receiver<u64> {
        self.removed.subscribe()
    }

    pub(crate) fn bump_removed(&self) {
        self.removed.send_modify(|n| *n += 1);
    }

    /// The devices whose unplug the guest refused (unplugs waiting on `removed` look).
    pub(crate) fn rejected(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.rejected.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How device events reach the clients (set once, before [`Vm::run`]).
    pub fn set_device_emitter(&self, f: impl Fn(i32, String) + Send + Sync + 'static) {
        let _ = self.emit_device.set(Box::new(f));
    }

    /// How other event messages reach the clients (set once, before [`Vm::run`]).
    pub fn set_message_emitter(&self, f: impl Fn(i32, Vec<u8>) + Send + Sync + 'static) {
        let _ = self.emit_message.set(Box::new(f));
    }

    pub(crate) fn emit_message(&self, proc_: i32, payload: Vec<u8>) {
        if let Some(f) = self.emit_message.get() {
            f(proc_, payload);
        }
    }

    pub(crate) fn emit_device(&self, proc_: i32, alias: String) {
        if let Some(f) = self.emit_device.get() {
            f(proc_, alias);
        }
    }

    pub fn qemu_pid(&self) -> u32 {
        self.pid
    }

    fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// (state, reason)
    pub fn state(&self) -> (i32, i32) {
        let s = self.status();
        (s.state, s.reason)
    }

    fn with_status_written(self: Arc<Self>) -> Arc<Self> {
        self.write_status();
        self
    }

    /// Rewrites the status file (temp file and rename, so readers see a whole one).
    fn write_status(&self) {
        let (st, reason) = self.state();
        let text = serde_json::json!({
            "shim_pid": std::process::id(),
            "qemu_pid": self.pid,
            "id": self.id,
            "name": self.def.name,
            "state": st,
            "reason": reason,
        })
        .to_string();
        let tmp = self.status_file.with_extension("status.tmp");
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, &self.status_file);
        }
    }

    /// Removes the status file (QEMU is gone).
    fn remove_status(&self) {
        let _ = std::fs::remove_file(&self.status_file);
    }

    pub(crate) fn set(&self, st: i32, reason: i32, ev: Option<Lifecycle>) {
        {
            let mut s = self.status();
            s.state = st;
            s.reason = reason;
        }
        if st == state::SHUTOFF {
            self.remove_status();
        } else {
            self.write_status();
        }
        if let (Some(ev), Some(emit)) = (ev, self.emit.get()) {
            emit(ev);
        }
    }

    /// Writes the VM's state into `file` (QEMU's migration stream, from the descriptor's
    /// offset on), then ends QEMU: the domain stops, saved. On failure the VM goes on as
    /// it was.
    pub async fn save(self: &Arc<Self>, file: OwnedFd) -> anyhow::Result<()> {
        self.require_running()?;
        self.begin_job(vireo_proto::remote::job::OPERATION_SAVE)?;
        let r = self.save_job(file).await;
        let job = self.end_job(r.is_ok());
        match r {
            Err(_) if job.is_some_and(|j| j.aborted) => Err(anyhow!(Aborted(
                "domain save job: canceled by client".into()
            ))),
            r => r,
        }
    }

    /// Marks a job of operation `op` as running; refused while another runs.
    pub(crate) fn begin_job(&self, op: i32) -> anyhow::Result<()> {
        let mut job = self.job.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(j) = job.as_ref() {
            bail!(OpInvalid(format!(
                "another job (operation {}) is active on the domain",
                j.op
            )));
        }
        *job = Some(crate::job::Job::new(op));
        Ok(())
    }

    /// The job ended (well, when `ok`): it is taken away and returned, and what it did is
    /// kept for GET_JOB_STATS with COMPLETED.
    pub(crate) fn end_job(&self, ok: bool) -> Option<crate::job::Job> {
        let j = self.job.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(j) = &j {
            *self.completed.lock().unwrap_or_else(|p| p.into_inner()) = Some(j.finished(ok));
        }
        j
    }

    /// The statistics of the last job that ended; taken unless `keep`.
    pub(crate) fn completed_job(&self, keep: bool) -> Option<crate::job::Finished> {
        let mut c = self.completed.lock().unwrap_or_else(|p| p.into_inner());
        if keep {
            c.clone()
        } else {
            c.take()
        }
    }

    /// Marks the QMP `STOP`/`RESUME` events to come as caused by the shim itself.
    pub(crate) fn set_pausing(&self, on: bool) {
        self.status().pausing = on;
    }

    /// Changes the running job (its progress), if one runs.
    pub(crate) fn job_mut<T>(&self, f: impl FnOnce(&mut crate::job::Job) -> T) -> Option<T> {
        self.job
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
            .map(f)
    }

    /// What a job reports, while one runs.
    pub fn job<T>(&self, f: impl FnOnce(&crate::job::Job) -> T) -> Option<T> {
        self.job
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(f)
    }

    /// Cancels the running job: its call then fails, and the VM goes on as before it. The
    /// job sees the mark at its next step (a save polls QEMU every few milliseconds and
    /// cancels the migration then), so this never waits for QEMU.
    pub fn abort_job(&self) -> anyhow::Result<()> {
        let mut job = self.job.lock().unwrap_or_else(|p| p.into_inner());
        match job.as_mut() {
            Some(j) => j.aborted = true,
            None => bail!(OpInvalid("no job is active on the domain".into())),
        }
        Ok(())
    }

    /// QEMU writes the VM's state (its migration stream) into `file`, from the
    /// descriptor's offset on; the job follows its progress and may cancel it. The guest
    /// is stopped once this ends well (QEMU stops it for the last pages); on failure it is
    /// as it was.
    pub(crate) async fn write_memory(&self, file: OwnedFd) -> anyhow::Result<()> {
        // As fast as the disk takes it.
        let _ = self
            .qmp
            .execute(
                "migrate-set-parameters",
                Some(serde_json::json!({ "max-bandwidth": 1u64 << 40 })),
            )
            .await;
        self.qmp
            .execute_with_fd(
                "getfd",
                Some(serde_json::json!({"fdname": "vireo-save"})),
                file.as_fd(),
            )
            .await
            .map_err(|e| anyhow!("cannot give the file to QEMU: {e}"))?;
        drop(file);
        if self.job(|j| j.aborted).unwrap_or(false) {
            bail!("cancelled before it began");
        }
        self.qmp
            .execute("migrate", Some(serde_json::json!({"uri": "fd:vireo-save"})))
            .await?;
        // Each answer of QEMU's is the job's progress; an abort that came too early for
        // QEMU to see is made again.
        let progress = |v: &Value| {
            let mut job = self.job.lock().unwrap_or_else(|p| p.into_inner());
            job.as_mut().is_some_and(|j| {
                j.update(v);
                !j.aborted
            })
        };
        wait_migration(&self.qmp, false, progress).await
    }

    async fn save_job(self: &Arc<Self>, file: OwnedFd) -> anyhow::Result<()> {
        let was_running = {
            let mut s = self.status();
            let r = s.state == state::RUNNING;
            if r {
                s.pausing = true;
            }
            r
        };
        let undo = |e: String| async move {
            if was_running {
                let _ = self.qmp.execute("cont", None).await;
            }
            self.status().pausing = false;
            anyhow!(OpFailed(e))
        };
        if was_running {
            if let Err(e) = self.qmp.execute("stop", None).await {
                return Err(undo(format!("cannot pause the guest: {e}")).await);
            }
        }
        if let Err(e) = self.write_memory(file).await {
            return Err(undo(format!("cannot save: {e}")).await);
        }
        // QEMU ends now; the reply goes out first, then the STOPPED (saved) event, and
        // the shim ends with QEMU.
        self.end_qemu(Intent::Save);
        Ok(())
    }

    /// Ends QEMU after its state went elsewhere (`intent` says where): SIGTERM, SIGKILL
    /// after a grace period; the STOPPED event and the shim's end follow.
    pub(crate) fn end_qemu(self: &Arc<Self>, intent: Intent) {
        self.status().intent = intent;
        self.signal(rustix::process::Signal::TERM);
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut exited = me.exited.subscribe();
            if tokio::time::timeout(TERM_GRACE, exited.wait_for(|e| *e))
                .await
                .is_err()
            {
                me.signal(rustix::process::Signal::KILL);
            }
        });
    }

    /// Changes the live title, description or a `<metadata>` element.
    pub fn set_metadata(
        &self,
        kind: i32,
        value: Option<&str>,
        key: Option<&str>,
        uri: Option<&str>,
    ) -> anyhow::Result<()> {
        let mut meta = self.meta.lock().unwrap_or_else(|p| p.into_inner());
        let mut d = self.def.clone();
        (d.title, d.description, d.metadata) = meta.clone();
        d.set_metadata(kind, value, key, uri)
            .map_err(|e| anyhow!(crate::stats::BadArg(e.to_string())))?;
        *meta = (d.title, d.description, d.metadata);
        Ok(())
    }

    /// The memory the guest is asked to have now (its balloon's target), in KiB.
    pub fn memory_kib(&self) -> u64 {
        *self.memory_kib.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks the guest's balloon driver to leave it `kib` of memory.
    pub async fn set_memory(&self, kib: u64) -> anyhow::Result<()> {
        self.require_running()?;
        if !virtio_balloon(&self.def) {
            bail!(OpInvalid(
                "Unable to change memory of active domain without the balloon device and \
                 guest OS balloon driver"
                    .into()
            ));
        }
        if kib == 0 || kib > self.def.max_memory_kib() {
            bail!(crate::stats::BadArg(format!(
                "cannot set memory to {kib} KiB: it must be between 1 and the maximum ({} KiB)",
                self.def.max_memory_kib()
            )));
        }
        self.qmp
            .execute("balloon", Some(serde_json::json!({ "value": kib * 1024 })))
            .await
            .map_err(|e| anyhow!(OpFailed(format!("cannot set the balloon: {e}"))))?;
        *self.memory_kib.lock().unwrap_or_else(|p| p.into_inner()) = kib;
        Ok(())
    }

    /// Sets how often the guest's balloon driver reports statistics (0: never).
    pub async fn set_balloon_period(&self, period: i32) -> anyhow::Result<()> {
        self.require_running()?;
        if !virtio_balloon(&self.def) {
            bail!(OpInvalid(
                "No memory balloon device configured, can not set the collection period".into()
            ));
        }
        let p = u32::try_from(period).map_err(|_| {
            anyhow::anyhow!(crate::stats::BadArg(format!(
                "invalid period {period}: it must not be negative"
            )))
        })?;
        set_polling(&self.qmp, p)
            .await
            .map_err(|e| anyhow::anyhow!(OpFailed(format!("cannot set the period: {e}"))))?;
        *self
            .balloon_period
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = (p > 0).then_some(p);
        Ok(())
    }

    /// CPU time used by QEMU, in nanoseconds.
    pub fn cpu_time_ns(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        // Fields after the command name (which may contain spaces) end with ')'.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after ')'.
        let hz = rustix::param::clock_ticks_per_second().max(1);
        (ticks(11) + ticks(12)) * (1_000_000_000 / hz)
    }

    /// The live definition: id, pty paths and the VNC port filled in.
    pub fn live_xml(&self) -> String {
        let mut def = self.def.clone();
        def.current_memory_kib = self.memory_kib();
        def.cputune = crate::pinning::live(&self.cputune());
        def.memtune = self
            .memtune
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        def.blkiotune = self
            .blkiotune
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        def.iothreads = self.iothreads().clone();
        // Each controller with its alias, as libvirt shows them.
        let family = def
            .os
            .os_type
            .machine
            .as_deref()
            .and_then(vireo_qemu::pci::machine_family)
            .unwrap_or(vireo_qemu::pci::Family::Pc);
        def.devices.controllers = self
            .controllers()
            .iter()
            .map(|c| {
                let mut c = c.clone();
                c.alias = Some(vireo_qemu::cmdline::live_alias(&c, family));
                c
            })
            .collect();
        let initial = def.initial_memory_kib();
        def.devices.memories = self
            .memories()
            .iter()
            .map(|m| {
                let mut d = m.def.clone();
                d.alias = Some(m.id.clone());
                d
            })
            .collect();
        def.memory_kib = initial
            + def
                .devices
                .memories
                .iter()
                .map(|m| m.size_kib())
                .sum::<u64>();
        let now = self.vcpus_now();
        def.vcpu_current = (now != def.vcpus).then_some(now);
        (def.title, def.description, def.metadata) =
            self.meta.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(m) = def.devices.memballoon.as_mut() {
            m.stats_period = *self
                .balloon_period
                .lock()
                .unwrap_or_else(|p| p.into_inner());
        }
        // The interfaces the guest has now, each with its alias.
        def.devices.interfaces = self
            .nics()
            .iter()
            .map(|n| {
                let mut d = n.def.clone();
                d.alias = Some(n.alias().to_string());
                d
            })
            .collect();
        let pty = |label: &str| {
            self.ptys
                .iter()
                .find(|(l, _)| l == label)
                .map(|(_, p)| p.clone())
        };
        for (i, s) in def.devices.serials.iter_mut().enumerate() {
            if let Some(p) = pty(&format!("charserial{i}")) {
                s.tty = Some(p.clone());
                set_source_path(s, p);
            }
        }
        let serial0 = def.devices.serials.first().and_then(|s| s.tty.clone());
        for c in def.devices.consoles.iter_mut() {
            if let Some(p) = serial0.clone() {
                c.tty = Some(p.clone());
                set_source_path(c, p);
            }
        }
        if let (Some(port), Some(g)) = (self.vnc_port, def.devices.graphics.first_mut()) {
            g.port = Some(port);
        }
        def.devices.inputs = self
            .inputs()
            .iter()
            .map(|i| {
                let mut d = i.def.clone();
                if d.alias.is_none() {
                    d.alias.clone_from(&i.id);
                }
                d
            })
            .collect();
        def.devices.channels = self
            .channels()
            .iter()
            .map(|c| {
                let mut d = c.def.clone();
                d.alias.get_or_insert_with(|| c.id.clone());
                d
            })
            .collect();
        def.devices.disks = self
            .disks()
            .iter()
            .map(|d| {
                let mut s = d.shown.clone();
                s.alias = Some(d.alias().to_string());
                s
            })
            .collect();
        def.devices.hostdevs = self
            .hostdevs()
            .iter()
            .map(|h| {
                let mut d = h.def.clone();
                d.alias = Some(h.id.clone());
                d
            })
            .collect();
        def.format_with_id(Some(self.id))
    }

    pub(crate) fn require(&self, ok: &[i32], what: &str) -> anyhow::Result<()> {
        let st = self.status().state;
        if ok.contains(&st) {
            Ok(())
        } else {
            Err(anyhow!(OpInvalid(format!("domain is not {what}"))))
        }
    }

    /// Runs stop or cont (with the QMP event it causes marked as ours), then records the
    /// new state and tells the clients.
    async fn pause_cmd(
        &self,
        cmd: &str,
        from: (i32, &str),
        to: (i32, i32),
        ev: Lifecycle,
    ) -> anyhow::Result<()> {
        self.require(&[from.0], from.1)?;
        self.status().pausing = true;
        let r = self.qmp.execute(cmd, None).await;
        self.status().pausing = false;
        r?;
        self.set(to.0, to.1, Some(ev));
        Ok(())
    }

    pub async fn suspend(&self) -> anyhow::Result<()> {
        let ev = Lifecycle {
            event: event::SUSPENDED,
            detail: event::SUSPENDED_PAUSED,
        };
        let to = (state::PAUSED, state::PAUSED_USER);
        self.pause_cmd("stop", (state::RUNNING, "running"), to, ev)
            .await
    }

    pub async fn resume(&self) -> anyhow::Result<()> {
        let ev = Lifecycle {
            event: event::RESUMED,
            detail: event::RESUMED_UNPAUSED,
        };
        let to = (state::RUNNING, state::RUNNING_UNPAUSED);
        self.pause_cmd("cont", (state::PAUSED, "paused"), to, ev)
            .await
    }

    /// ACPI power button; the guest decides.
    pub async fn shutdown(&self) -> anyhow::Result<()> {
        self.require(&[state::RUNNING], "running")?;
        self.qmp.execute("system_powerdown", None).await?;
        Ok(())
    }

    /// A graceful reboot: ACPI power-down, turned into a reset when the guest powers off.
    pub async fn reboot(&self) -> anyhow::Result<()> {
        self.require(&[state::RUNNING], "running")?;
        self.status().intent = Intent::FakeReboot;
        self.qmp.execute("system_powerdown", None).await?;
        Ok(())
    }

    pub async fn reset(&self) -> anyhow::Result<()> {
        self.require(&[state::RUNNING, state::PAUSED], "running")?;
        self.qmp.execute("system_reset", None).await?;
        Ok(())
    }

    /// Stops QEMU: SIGTERM, and SIGKILL if it has not exited after a grace period (unless
    /// `graceful`). Returns once the process is gone.
    pub async fn destroy(&self, graceful: bool) -> anyhow::Result<()> {
        {
            let mut s = self.status();
            if s.intent != Intent::PowerOff {
                s.intent = Intent::Destroy;
            }
        }
        self.signal(rustix::process::Signal::TERM);
        let mut exited = self.exited.subscribe();
        let done = tokio::time::timeout(TERM_GRACE, exited.wait_for(|e| *e))
            .await
            .is_ok();
        if !done {
            if graceful {
                bail!(OpFailed("QEMU did not exit after SIGTERM".into()));
            }
            self.signal(rustix::process::Signal::KILL);
            let _ = exited.wait_for(|e| *e).await;
        }
        Ok(())
    }

    /// Signals QEMU, our own child: its pid is not reaped before `exited` is set.
    fn signal(&self, sig: rustix::process::Signal) {
        if *self.exited.borrow() {
            return;
        }
        if let Some(pid) = i32::try_from(self.pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = crate::confine::privileged(|| rustix::process::kill_process(pid, sig));
        }
    }

    /// Serves QMP events and watches QEMU until it exits; `emit` sends lifecycle events to
    /// every connected client.
    pub async fn run(self: &Arc<Self>, emit: impl Fn(Lifecycle) + Send + Sync + 'static) {
        let _ = self.emit.set(Box::new(emit));
        let mut events = self.events.lock().ok().and_then(|mut e| e.take());
        let mut child = self.child.lock().await.take();
        loop {
            tokio::select! {
                // What QEMU said comes before noticing that it ended.
                biased;
                ev = async {
                    match events.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => match ev {
                    Some(ev) => self.on_event(ev).await,
                    None => events = None,
                },
                _ = async {
                    match child.as_mut() {
                        Some(c) => { let _ = c.wait().await; }
                        None => std::future::pending::<()>().await,
                    }
                } => break,
            }
        }
        // QEMU has gone: what it said on its way out (its SHUTDOWN) is reported first. The
        // events end when its monitor closes; a second is the most they are waited for.
        if let Some(rx) = events.as_mut() {
            while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
                self.on_event(ev).await;
            }
        }
        // No new client should find a shim whose VM is gone: the files go before the last
        // event, so whoever sees that event sees them gone. So do the VM's cgroup and its
        // files' ownership: a start that follows the event at once (a reboot) must not
        // find the old cgroup there, removed under it a moment later.
        let _ = std::fs::remove_file(self.status_file.with_extension("sock"));
        if let Some(c) = &self.cgroup {
            crate::confine::privileged(|| c.remove());
        }
        if let Ok(mut o) = self.owners.lock() {
            o.restore();
        }
        let intent = self.status().intent;
        let (reason, detail) = match intent {
            Intent::Destroy => (state::SHUTOFF_DESTROYED, event::STOPPED_DESTROYED),
            Intent::PowerOff => (state::SHUTOFF_SHUTDOWN, event::STOPPED_SHUTDOWN),
            Intent::Save => (state::SHUTOFF_SAVED, event::STOPPED_SAVED),
            Intent::Migrated => (
                vireo_proto::migrate::reason::SHUTOFF_MIGRATED,
                vireo_proto::migrate::event::STOPPED_MIGRATED,
            ),
            Intent::None | Intent::FakeReboot => (state::SHUTOFF_CRASHED, event::STOPPED_FAILED),
        };
        self.set(
            state::SHUTOFF,
            reason,
            Some(Lifecycle {
                event: event::STOPPED,
                detail,
            }),
        );
        self.exited.send_replace(true);
    }

    async fn on_event(&self, ev: Event) {
        match ev.name.as_str() {
            "SHUTDOWN" => {
                let guest = ev
                    .data
                    .get("guest")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let (intent, st) = {
                    let s = self.status();
                    (s.intent, s.state)
                };
                // Killing QEMU after the guest powered off brings a second SHUTDOWN.
                if st == state::SHUTDOWN {
                    return;
                }
                if intent == Intent::FakeReboot && guest {
                    self.status().intent = Intent::None;
                    let _ = self.qmp.execute("system_reset", None).await;
                    let _ = self.qmp.execute("cont", None).await;
                    self.set(state::RUNNING, state::RUNNING_BOOTED, None);
                    return;
                }
                // A saved (or migrated) VM just ends: no shutdown to report.
                if matches!(intent, Intent::Save | Intent::Migrated) {
                    return;
                }
                let detail = if guest {
                    event::SHUTDOWN_GUEST
                } else {
                    event::SHUTDOWN_HOST
                };
                self.set(
                    state::SHUTDOWN,
                    state::SHUTDOWN_USER,
                    Some(Lifecycle {
                        event: event::SHUTDOWN,
                        detail,
                    }),
                );
                if intent == Intent::Destroy {
                    return;
                }
                // The guest powered off (QEMU stays, stopped, thanks to -no-shutdown).
                match self.def.on_poweroff.as_str() {
                    "restart" => {
                        let _ = self.qmp.execute("system_reset", None).await;
                        let _ = self.qmp.execute("cont", None).await;
                        self.set(state::RUNNING, state::RUNNING_BOOTED, None);
                    }
                    "preserve" => self.set(state::PAUSED, state::PAUSED_SHUTTING_DOWN, None),
                    _ => {
                        self.status().intent = Intent::PowerOff;
                        self.signal(rustix::process::Signal::TERM);
                    }
                }
            }
            "STOP" => {
                let (st, ours) = {
                    let s = self.status();
                    (s.state, s.pausing)
                };
                if st == state::RUNNING && !ours {
                    self.set(
                        state::PAUSED,
                        state::PAUSED_UNKNOWN,
                        Some(Lifecycle {
                            event: event::SUSPENDED,
                            detail: event::SUSPENDED_PAUSED,
                        }),
                    );
                }
            }
            "RESUME" => {
                let (st, ours) = {
                    let s = self.status();
                    (s.state, s.pausing)
                };
                if st == state::PAUSED && !ours {
                    self.set(
                        state::RUNNING,
                        state::RUNNING_UNPAUSED,
                        Some(Lifecycle {
                            event: event::RESUMED,
                            detail: event::RESUMED_UNPAUSED,
                        }),
                    );
                }
            }
            "DEVICE_DELETED" => self.on_device_deleted(&ev.data).await,
            "MEMORY_DEVICE_SIZE_CHANGE" => self.on_memory_size_change(&ev.data),
            "VSERPORT_CHANGE" => self.on_vserport_change(&ev.data).await,
            "BLOCK_JOB_READY"
            | "BLOCK_JOB_COMPLETED"
            | "BLOCK_JOB_CANCELLED"
            | "BLOCK_JOB_ERROR" => self.on_block_job_event(&ev.name, &ev.data).await,
            "DEVICE_UNPLUG_GUEST_ERROR" => self.on_unplug_error(&ev.data),
            "ACPI_DEVICE_OST" => self.on_acpi_ost(&ev.data),
            "MIGRATION" => self.migration.status_changed(),
            name => {
                self.on_other_event(name, &ev.data);
            }
        }
    }
}

/// The operation is not valid in the domain's state.
#[derive(Debug)]
pub struct OpInvalid(pub String);
impl std::fmt::Display for OpInvalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Requested operation is not valid: {}", self.0)
    }
}
impl std::error::Error for OpInvalid {}

/// The operation failed.
#[derive(Debug)]
pub struct OpFailed(pub String);
impl std::fmt::Display for OpFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "operation failed: {}", self.0)
    }
}
impl std::error::Error for OpFailed {}

/// A job a client cancelled (`VIR_ERR_OPERATION_ABORTED`).
#[derive(Debug)]
pub struct Aborted(pub String);
impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "operation aborted: {}", self.0)
    }
}
impl std::error::Error for Aborted {}

fn set_source_path(c: &mut vireo_xml::Chardev, p: String) {
    match c.sources.first_mut() {
        Some(s) => s.path = Some(p),
        None => c.sources.push(vireo_xml::ChardevSource {
            path: Some(p),
            ..Default::default()
        }),
    }
}

/// What the shim needs of QEMU's capabilities: the daemon already checked the rest.
fn caps_for(def: &Domain, version: u64) -> QemuCaps {
    let emulator = def
        .devices
        .emulator
        .clone()
        .unwrap_or_else(|| "/usr/bin/qemu-system-x86_64".into());
    let machine = def
        .os
        .os_type
        .machine
        .clone()
        .unwrap_or_else(|| "pc".into());
    QemuCaps {
        emulator: emulator.into(),
        version,
        machines: vec![Machine {
            name: machine,
            canonical: None,
            max_cpus: 255,
        }],
        kvm: std::path::Path::new("/dev/kvm").exists(),
    }
}

async fn query_ptys(qmp: &Qmp) -> Vec<(String, String)> {
    let Ok(v) = qmp.execute("query-chardev", None).await else {
        return Vec::new();
    };
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| {
                    let label = c.get("label")?.as_str()?;
                    let file = c.get("filename")?.as_str()?;
                    let pty = file.strip_prefix("pty:")?;
                    Some((label.to_string(), pty.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn query_vnc_port(qmp: &Qmp) -> Option<i32> {
    let v = qmp.execute("query-vnc", None).await.ok()?;
    v.get("service")?.as_str()?.parse().ok()
}

/// `guest-stats-polling-interval` of the balloon device, in seconds.
async fn set_polling(qmp: &Qmp, seconds: u32) -> Result<(), vireo_qmp::QmpError> {
    qmp.execute(
        "qom-set",
        Some(serde_json::json!({
            "path": "/machine/peripheral/balloon0",
            "property": "guest-stats-polling-interval",
            "value": seconds,
        })),
    )
    .await
    .map(|_| ())
}

/// Whether the guest has a virtio memory balloon (the only model that takes requests).
pub(crate) fn virtio_balloon(def: &Domain) -> bool {
    def.devices
        .memballoon
        .as_ref()
        .is_some_and(|m| m.model == vireo_xml::MemballoonModel::Virtio)
}

/// Waits until QEMU's migration (to or from a file or socket) ends: Ok when it completed
/// (or, with `postcopy`, once it is in post-copy: the guest may run). Each `query-migrate`
/// answer goes to `progress`, which says whether to go on: when it says no, the migration
/// is cancelled.
async fn wait_migration(
    qmp: &Qmp,
    postcopy: bool,
    mut progress: impl FnMut(&Value) -> bool,
) -> anyhow::Result<()> {
    let mut cancelled = false;
    loop {
        let v = qmp
            .execute("query-migrate", None)
            .await
            .map_err(|e| anyhow!("query-migrate: {e}"))?;
        if !progress(&v) && !cancelled {
            cancelled = true;
            let _ = qmp.execute("migrate_cancel", None).await;
        }
        match v.get("status").and_then(Value::as_str) {
            Some("completed") => return Ok(()),
            Some("postcopy-active") if postcopy => return Ok(()),
            Some(s @ ("failed" | "cancelled")) => {
                let why = v
                    .get("error-desc")
                    .and_then(Value::as_str)
                    .unwrap_or("no reason given");
                bail!("migration {s}: {why}");
            }
            // QEMU reports no event for each step here; its state is asked for again.
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Loads a VM's state from `stream` (a save image, at its stream's offset, or a migration's
/// socket; QEMU started with `-incoming defer`): Ok once QEMU has it all, or with
/// `postcopy` once the guest may run here.
pub(crate) async fn load_stream(qmp: &Qmp, stream: &OwnedFd, postcopy: bool) -> anyhow::Result<()> {
    qmp.execute_with_fd(
        "getfd",
        Some(serde_json::json!({"fdname": "vireo-incoming"})),
        stream.as_fd(),
    )
    .await
    .map_err(|e| anyhow!("cannot give the incoming stream to QEMU: {e}"))?;
    qmp.execute(
        "migrate-incoming",
        Some(serde_json::json!({"uri": "fd:vireo-incoming"})),
    )
    .await
    .map_err(|e| anyhow!("migrate-incoming: {e}"))?;
    wait_migration(qmp, postcopy, |_| true).await
}

/// Raises this process's locked-memory limit (QEMU inherits it) to `bytes`, soft and
/// hard. Raising the hard limit needs CAP_SYS_RESOURCE: without it the limit stays and
/// the log says so (QEMU then fails to map the device, naming the reason).
fn raise_memlock(bytes: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    // No limit (None) is above any.
    if getrlimit(Resource::Memlock).current.unwrap_or(u64::MAX) >= bytes {
        return;
    }
    let lim = Rlimit {
        current: Some(bytes),
        maximum: Some(bytes),
    };
    if let Err(e) = setrlimit(Resource::Memlock, lim) {
        eprintln!(
            "vireo-shim: cannot raise the locked-memory limit to {bytes} bytes for VFIO \
             devices: {}",
            std::io::Error::from(e)
        );
    }
}

/// The VM's runtime directory, for QEMU's user: root's with QEMU's group, which may make
/// its sockets there (0770); the shim joins that group to reach them.
fn give_vm_dir(dir: &std::path::Path, u: &vireo_qemu::QemuUser) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::chown(dir, Some(0), Some(u.gid))
        .with_context(|| format!("cannot give {} to QEMU's group", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o770))
        .with_context(|| format!("cannot set the mode of {}", dir.display()))?;
    let mut groups = nix::unistd::getgroups().context("getgroups")?;
    let g = nix::unistd::Gid::from_raw(u.gid);
    if !groups.contains(&g) {
        groups.push(g);
        nix::unistd::setgroups(&groups).context("cannot join QEMU's group")?;
    }
    Ok(())
}

impl Vm {
    /// Marks the VM tainted by `t`; the first time, the domain's log says so.
    pub(crate) fn taint(&self, t: crate::taint::Taint) {
        if self.taints.mark(t) {
            self.log_taint(t);
        }
    }

    /// The domain log's line for a taint.
    fn log_taint(&self, t: crate::taint::Taint) {
        let uuid = format_uuid(&self.uuid);
        let line = crate::taint::Taints::log_line(t, self.id, &self.def.name, &uuid);
        eprintln!("{line}");
    }

    /// `virDomainGetMessages`.
    pub(crate) fn messages(&self, flags: u32) -> Vec<String> {
        self.taints.messages(flags)
    }

    /// Files of a disk unplugged or a medium ejected that QEMU no longer opens: back to
    /// their owners, but for those the VM boots from (kernel, initrd, device tree, NVRAM).
    pub(crate) fn give_back(&self, files: &[std::path::PathBuf]) {
        if self.owning_for.is_none() || files.is_empty() {
            return;
        }
        let boot = crate::owner::boot_files(&self.def.os);
        if let Ok(mut o) = self.owners.lock() {
            for p in files.iter().filter(|p| !boot.contains(p)) {
                o.give_back(p);
            }
        }
    }

    /// A disk plugged in or a medium inserted: its files to QEMU's user (see
    /// [`crate::owner`]), given back when it is unplugged or ejected, or the VM ends.
    pub(crate) fn give_disk(&self, disk: &vireo_xml::Disk) {
        let Some(u) = &self.owning_for else { return };
        if let Ok(mut o) = self.owners.lock() {
            for p in crate::owner::disk_files(std::slice::from_ref(disk)) {
                o.give(&p, u);
            }
        }
    }
}
