//! `vireo-shim`: one per running VM. Started by the QEMU driver, it execs QEMU, completes the
//! QMP handshake (the readiness signal), starts the CPUs, reports `READY <pid>` on stdout,
//! and then serves this VM's domain API over libvirt's RPC protocol on
//! `<run>/shim/<uuid>.sock` until QEMU exits. It outlives any daemon.

mod agent;
mod blockjob;
mod confine;
mod events;
mod guest;
mod helpers;
mod hostdev;
mod hotplug;
mod iothread;
mod job;
mod memdev;
mod migrate;
mod monitor;
mod owner;
mod pinning;
mod public;
mod screen;
mod serve;
mod snapshot;
mod stats;
mod taint;
mod threshold;
mod tune;
mod vm;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use vireo_rpc::server::{bind_unix, Server, ServerConfig};
use vireo_xml::{format_uuid, Domain};
use zeroize::Zeroizing;

pub struct Args {
    run_dir: PathBuf,
    def: PathBuf,
    /// The definition before its volumes were resolved (`--defined`), when it has any:
    /// the live XML shows them as volumes.
    pub defined: Option<Domain>,
    id: i32,
    hv_version: u64,
    paused: bool,
    /// The restored state is a snapshot's (`--from-snapshot`): the state's reason says so.
    from_snapshot: bool,
    /// `--incoming-fd` is a live migration's stream (`--migrated`), with post-copy
    /// (`--postcopy`).
    migrated: bool,
    postcopy: bool,
    /// The listening socket of the NBD server the disks copied here are served on, and
    /// their targets (`--nbd-fd N --nbd-disks vda,vdb`).
    pub nbd: Option<(std::os::fd::OwnedFd, Vec<String>)>,
    /// Encrypted disks' passphrases by secret UUID (from `--secrets-fd`).
    secrets: BTreeMap<String, Zeroizing<Vec<u8>>>,
    /// The taps of the interfaces on networks, in interface order (`--tap-fds FIRST:N`).
    pub taps: Vec<std::os::fd::OwnedFd>,
    /// The nodes of the USB host devices, leased by the daemon (`--usb-fds FIRST:N`).
    pub usb: Vec<std::os::fd::OwnedFd>,
    /// A save image to restore the VM from, at its stream's offset (`--incoming-fd N`).
    pub incoming: Option<std::os::fd::OwnedFd>,
    /// Where the emulated TPM keeps its state (`--tpm-state DIR`).
    pub tpm_state: Option<PathBuf>,
    /// Modes of the VM's own sockets, read-write and read-only (`--vm-sock-perms RW,RO`,
    /// octal: the daemon's own), and their group (`--vm-sock-group GID`).
    vm_sock_perms: (u32, u32),
    vm_sock_group: Option<u32>,
    /// Whom QEMU runs as (`--qemu-user UID:GID:GROUPS`); `None`: as the shim.
    pub qemu_user: Option<vireo_qemu::QemuUser>,
    /// The VM's files go to QEMU's user while it runs (`--dynamic-ownership`).
    pub dynamic_ownership: bool,
    /// QEMU without its own seccomp filter (`--no-sandbox`: qemu.conf's
    /// `seccomp_sandbox = 0`).
    pub no_sandbox: bool,
}

/// Whether descriptor number `fd` is open in this process (asked of procfs, so that no
/// number is used as a descriptor before it is known to be one).
fn fd_is_open(fd: i32) -> bool {
    std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_ok()
}

/// The descriptors `FIRST:COUNT` names (`--tap-fds`, `--usb-fds`): open, each for us
/// alone.
fn fd_range(opt: &str, v: Option<String>) -> anyhow::Result<Vec<std::os::fd::OwnedFd>> {
    let (first, n) = v
        .as_deref()
        .and_then(|v| v.split_once(':'))
        .and_then(|(a, b)| Some((a.parse::<i32>().ok()?, b.parse::<i32>().ok()?)))
        .filter(|(a, n)| *a > 2 && (0..=32).contains(n))
        .with_context(|| format!("{opt} needs FIRST:COUNT"))?;
    let mut fds = Vec::new();
    for fd in first..first + n {
        if !fd_is_open(fd) {
            bail!("{opt}: descriptor {fd} is not open");
        }
        // SAFETY: inherited-fd passing: the daemon started us with this descriptor open
        // (checked above), for us alone; nothing else here owns it.
        let owned = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        // QEMU gets it only where the launcher puts it (no stray copy that would keep a
        // device open after it is unplugged), nor do the helpers.
        if let Err(e) = rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC) {
            std::mem::forget(owned);
            bail!("{opt}: descriptor {fd}: {}", std::io::Error::from(e));
        }
        fds.push(owned);
    }
    Ok(fds)
}

fn parse_args() -> anyhow::Result<Args> {
    let mut run_dir = None;
    let mut def = None;
    let mut defined = None;
    let mut tpm_state = None;
    let mut id = None;
    let mut hv_version = 0;
    let mut paused = false;
    let mut from_snapshot = false;
    let mut migrated = false;
    let mut postcopy = false;
    let mut nbd_fd = None;
    let mut nbd_disks = Vec::new();
    let mut secrets = BTreeMap::new();
    let mut taps = Vec::new();
    let mut usb = Vec::new();
    let mut incoming = None;
    let mut vm_sock_perms = (0o700, 0o777);
    let mut vm_sock_group = None;
    let mut qemu_user = None;
    let mut dynamic_ownership = false;
    let mut no_sandbox = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--run-dir" => run_dir = it.next().map(PathBuf::from),
            "--def" => def = it.next().map(PathBuf::from),
            "--defined" => {
                let path = PathBuf::from(it.next().context("--defined needs a path")?);
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                defined = Some(Domain::parse(&text).map_err(|e| anyhow::anyhow!("{e}"))?);
            }
            "--id" => id = it.next().and_then(|v| v.parse().ok()),
            "--hv-version" => hv_version = it.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            "--vm-sock-perms" => {
                let v = it.next().context("--vm-sock-perms needs RW,RO")?;
                let (rw, ro) = v
                    .split_once(',')
                    .and_then(|(a, b)| {
                        Some((
                            u32::from_str_radix(a, 8).ok()?,
                            u32::from_str_radix(b, 8).ok()?,
                        ))
                    })
                    .context("--vm-sock-perms needs two octal modes, RW,RO")?;
                vm_sock_perms = (rw & 0o777, ro & 0o777);
            }
            "--vm-sock-group" => {
                vm_sock_group = Some(
                    it.next()
                        .and_then(|g| g.parse().ok())
                        .context("--vm-sock-group needs a group id")?,
                );
            }
            "--paused" => paused = true,
            "--from-snapshot" => from_snapshot = true,
            "--migrated" => migrated = true,
            "--postcopy" => postcopy = true,
            "--nbd-fd" => {
                let fd = fd_range("--nbd-fd", it.next().map(|n| format!("{n}:1")))?;
                nbd_fd = fd.into_iter().next();
            }
            "--nbd-disks" => {
                nbd_disks = it
                    .next()
                    .context("--nbd-disks needs disk targets")?
                    .split(',')
                    .filter(|d| !d.is_empty())
                    .map(str::to_string)
                    .collect();
            }
            "--tap-fds" => taps = fd_range("--tap-fds", it.next())?,
            "--usb-fds" => usb = fd_range("--usb-fds", it.next())?,
            "--incoming-fd" => {
                let fd: i32 = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|fd| *fd > 2)
                    .context("--incoming-fd needs a descriptor number")?;
                if !fd_is_open(fd) {
                    bail!("--incoming-fd: descriptor {fd} is not open");
                }
                // SAFETY: inherited-fd passing: the daemon started us with this descriptor
                // open (checked above), the save image for us alone; nothing else here owns
                // it.
                incoming = Some(unsafe {
                    <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)
                });
            }
            "--secrets-fd" => {
                let fd: i32 = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .context("--secrets-fd needs a descriptor number")?;
                secrets = read_secrets(fd)?;
            }
            "--tpm-state" => tpm_state = it.next().map(PathBuf::from),
            "--qemu-user" => {
                let v = it.next().context("--qemu-user needs UID:GID:GROUPS")?;
                qemu_user = Some(
                    vireo_qemu::QemuUser::from_arg(&v)
                        .with_context(|| format!("--qemu-user: '{v}' is not UID:GID:GROUPS"))?,
                );
            }
            "--dynamic-ownership" => dynamic_ownership = true,
            "--no-sandbox" => no_sandbox = true,
            other => bail!("unknown argument '{other}'"),
        }
    }
    Ok(Args {
        run_dir: run_dir.context("--run-dir is required")?,
        def: def.context("--def is required")?,
        defined,
        id: id.context("--id is required")?,
        hv_version,
        paused,
        from_snapshot,
        migrated,
        postcopy,
        nbd: nbd_fd.map(|fd| (fd, nbd_disks)),
        secrets,
        taps,
        usb,
        incoming,
        tpm_state,
        vm_sock_perms,
        vm_sock_group,
        qemu_user,
        dynamic_ownership,
        no_sandbox,
    })
}

/// Listens on the VM's own sockets (`crate::public`), with the daemon's modes and group.
fn bind_public(
    args: &Args,
    name: &str,
) -> anyhow::Result<(tokio::net::UnixListener, tokio::net::UnixListener)> {
    let (rw_path, ro_path) = public::socket_paths(&args.run_dir, name);
    let bind = |path: &std::path::Path, mode: u32| -> anyhow::Result<tokio::net::UnixListener> {
        let l = bind_unix(path, mode).with_context(|| {
            format!(
                "cannot listen on {} (does another running domain have this name?)",
                path.display()
            )
        })?;
        if let Some(gid) = args.vm_sock_group {
            std::os::unix::fs::chown(path, None, Some(gid))
                .with_context(|| format!("cannot give {} to group {gid}", path.display()))?;
        }
        Ok(l)
    };
    let rw = bind(&rw_path, args.vm_sock_perms.0)?;
    let ro = bind(&ro_path, args.vm_sock_perms.1)?;
    Ok((rw, ro))
}

/// Reads the passphrases the daemon put in the pipe at `fd` (to its end), then closes it.
fn read_secrets(fd: i32) -> anyhow::Result<BTreeMap<String, Zeroizing<Vec<u8>>>> {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    if fd < 3 {
        bail!("--secrets-fd {fd} is not a pipe the daemon gave");
    }
    // SAFETY: inherited-fd passing: the daemon made `fd` (a pipe's read end) for this
    // process alone, with --secrets-fd naming it; nothing else here owns it, so the File
    // may close it.
    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut buf = Zeroizing::new(Vec::new());
    Read::by_ref(&mut f)
        .take(1 << 20)
        .read_to_end(&mut buf)
        .context("cannot read the disks' passphrases")?;
    vireo_qemu::peers::unpack_secrets(&buf).map_err(|e| anyhow::anyhow!("passphrases: {e}"))
}

fn main() -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return report_error(&format!("cannot start runtime: {e}")),
    };
    match rt.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report_error(&format!("{e:#}")),
    }
}

/// Tells the starting daemon what went wrong (it reads our stdout), and logs it.
fn report_error(msg: &str) -> ExitCode {
    eprintln!("vireo-shim: {msg}");
    let mut out = std::io::stdout();
    let _ = writeln!(out, "ERROR {}", msg.replace('\n', " "));
    let _ = out.flush();
    ExitCode::FAILURE
}

async fn run() -> anyhow::Result<()> {
    let args = parse_args()?;
    let text = std::fs::read_to_string(&args.def)
        .with_context(|| format!("cannot read {}", args.def.display()))?;
    let def = Domain::parse(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let uuid = def.uuid.context("definition has no uuid")?;
    let sock_path = args
        .run_dir
        .join("shim")
        .join(format!("{}.sock", format_uuid(&uuid)));
    let listener = bind_unix(&sock_path, 0o700)
        .with_context(|| format!("cannot listen on {}", sock_path.display()))?;
    let (pub_rw_path, pub_ro_path) = public::socket_paths(&args.run_dir, &def.name);
    let remove_sockets = || {
        for p in [&sock_path, &pub_rw_path, &pub_ro_path] {
            let _ = std::fs::remove_file(p);
        }
    };
    let (pub_rw, pub_ro) = match bind_public(&args, &def.name) {
        Ok(l) => l,
        Err(e) => {
            let _ = std::fs::remove_file(&sock_path);
            return Err(e);
        }
    };

    // QEMU's own directory (its monitor's socket, its helpers' sockets): made by the
    // launch, gone with the VM, whatever ended it, as far as this shim still runs.
    let qemu_dir = args.run_dir.join("qemu").join(format_uuid(&uuid));
    let vm = match vm::Vm::launch(def, &args).await {
        Ok(vm) => vm,
        Err(e) => {
            remove_sockets();
            let _ = std::fs::remove_dir_all(&qemu_dir);
            return Err(e);
        }
    };
    let config = ServerConfig {
        // The daemon and a few tools talk to a shim; nothing polls it back-to-back.
        busy_poll: std::time::Duration::ZERO,
        ..ServerConfig::default()
    };
    let server = Server::new(
        Arc::new(serve::ShimService::new(Arc::clone(&vm))),
        config.clone(),
    );
    let s = Arc::clone(&server);
    let accept = tokio::spawn(async move { s.serve(listener, false).await });
    // The VM's own endpoint: clients other than the daemon, read-write and read-only.
    let public_server = Server::new(
        Arc::new(serve::ShimService::new_public(
            Arc::clone(&vm),
            args.hv_version,
        )),
        config.clone(),
    );
    let s = Arc::clone(&public_server);
    let accept_rw = tokio::spawn(async move { s.serve(pub_rw, false).await });
    let s = Arc::clone(&public_server);
    let accept_ro = tokio::spawn(async move { s.serve(pub_ro, true).await });
    let audience = Arc::new(serve::Audience {
        daemon: Arc::clone(&server),
        public: vec![Arc::clone(&public_server)],
    });

    // QEMU and its helpers run: from here on the shim has no privilege in effect. A shim
    // that cannot drop its privileges does not serve the VM: QEMU is stopped and the start
    // fails.
    if let Err(e) = confine::confine(args.qemu_user.as_ref().map(|u| u.uid)) {
        let _ = tokio::join!(vm.destroy(false), vm.run(|_| {}));
        remove_sockets();
        let _ = std::fs::remove_dir_all(&qemu_dir);
        public_server.shutdown();
        server.shutdown();
        return Err(e.context("cannot drop the shim's privileges"));
    }

    // Ready: the daemon is waiting for this line.
    println!("READY {}", vm.qemu_pid());
    let _ = std::io::stdout().flush();
    detach_stdout();

    let vm2 = Arc::clone(&vm);
    let to = Arc::clone(&audience);
    vm.set_device_emitter(move |proc_, alias| serve::broadcast_device(&to, &vm2, proc_, alias));
    let to = Arc::clone(&audience);
    vm.set_message_emitter(move |proc_, payload| serve::broadcast_raw(&to, proc_, &payload));
    // Whether qemu-ga already runs (a shim that follows a VM again after a restart).
    vm.probe_agent().await;
    let vm2 = Arc::clone(&vm);
    let to = Arc::clone(&audience);
    vm.run(move |ev| serve::broadcast(&to, &vm2, ev)).await;

    // QEMU is gone and the last events are queued: let them out, then leave.
    let _ = std::fs::remove_file(&pub_rw_path);
    let _ = std::fs::remove_file(&pub_ro_path);
    let _ = std::fs::remove_dir_all(&qemu_dir);
    public_server.shutdown();
    server.shutdown();
    let _ = accept.await;
    let _ = accept_rw.await;
    let _ = accept_ro.await;
    public_server.wait_idle().await;
    server.wait_idle().await;
    Ok(())
}

/// After READY nobody reads our stdout any more; point it at /dev/null so a later write
/// cannot fail with EPIPE.
fn detach_stdout() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = rustix::stdio::dup2_stdout(&null);
    }
}
