//! Starting and stopping a daemon: take its sockets (from systemd or by binding them with
//! the .conf's permissions), serve, tell systemd it is ready, leave when idle if asked to,
//! and shut down cleanly on SIGTERM/SIGINT.

use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use vireo_conf::DaemonConfig;
use vireo_driver::events::EventBus;
use vireo_interface::InterfaceDriver;
use vireo_network::{DefaultNetwork, NetworkDriver};
use vireo_nodedev::{DeviceMonitor, NodeDevDriver};
use vireo_nwfilter::NwFilterDriver;
use vireo_proto::family::Family;
use vireo_qemu::{QemuConfig, QemuDriver};
use vireo_rpc::handoff;
use vireo_rpc::server::{bind_unix, Server, ServerConfig};
use vireo_secret::SecretDriver;
use vireo_storage::StorageDriver;

use crate::activation::Kind;
use crate::admin::{serve_admin, serve_admin_on, AdminServer, LogSettings};
use crate::identity;
use crate::paths::Paths;
use crate::proxy::Proxy;
use crate::remote::{Drivers, RemoteService};
use crate::role::Role;
use vireo_rpc::inspect::{Named, ServerInfo};

pub struct Options {
    pub role: Role,
    pub paths: Paths,
    pub server: ServerConfig,
    /// The daemon's .conf settings (socket permissions, group, directory, logging).
    pub conf: DaemonConfig,
    /// Leave after this long with no client and no running VM.
    pub timeout: Option<Duration>,
    /// Sockets systemd passed (see [`activation::take`]).
    pub inherited: Vec<(Kind, OwnedFd)>,
}

/// The daemon's listening sockets.
struct Sockets {
    rw: UnixListener,
    ro: UnixListener,
    /// The admin socket, when systemd passed it.
    admin: Option<UnixListener>,
    /// Files to remove at exit (none when systemd owns the sockets).
    ours: Vec<PathBuf>,
}

/// Takes the sockets from systemd if it passed them, else binds them as the .conf says.
fn sockets(
    role: Role,
    paths: &Paths,
    conf: &DaemonConfig,
    inherited: Vec<(Kind, OwnedFd)>,
) -> anyhow::Result<Sockets> {
    let dir = conf
        .unix_sock_dir
        .clone()
        .unwrap_or_else(|| paths.run_dir.clone());
    let name = role.socket_name();
    if !inherited.is_empty() {
        let pick = |k: Kind| -> Option<OwnedFd> {
            inherited
                .iter()
                .find(|(kind, _)| *kind == k)
                .and_then(|(_, fd)| fd.try_clone().ok())
        };
        let customised = conf.unix_sock_group.is_some()
            || conf.unix_sock_dir.is_some()
            || conf.unix_sock_rw_perms != DaemonConfig::default().unix_sock_rw_perms
            || conf.unix_sock_ro_perms != DaemonConfig::default().unix_sock_ro_perms;
        if customised {
            eprintln!(
                "{}: sockets come from systemd; unix_sock_group/dir/perms in the .conf are overridden by the socket units",
                role.name()
            );
        }
        let listener = |fd: OwnedFd| -> anyhow::Result<UnixListener> {
            let l = std::os::unix::net::UnixListener::from(fd);
            l.set_nonblocking(true)?;
            Ok(UnixListener::from_std(l)?)
        };
        let rw = pick(Kind::ReadWrite).context("systemd passed no read-write socket")?;
        let ro = match pick(Kind::ReadOnly) {
            Some(fd) => listener(fd)?,
            None => bind(
                &dir.join(format!("{name}-sock-ro")),
                conf.unix_sock_ro_perms,
                conf,
            )?,
        };
        let admin = pick(Kind::Admin).map(listener).transpose()?;
        return Ok(Sockets {
            rw: listener(rw)?,
            ro,
            admin,
            ours: Vec::new(),
        });
    }
    let rw_path = dir.join(format!("{name}-sock"));
    let ro_path = dir.join(format!("{name}-sock-ro"));
    Ok(Sockets {
        rw: bind(&rw_path, conf.unix_sock_rw_perms, conf)?,
        ro: bind(&ro_path, conf.unix_sock_ro_perms, conf)?,
        admin: None,
        ours: vec![rw_path, ro_path],
    })
}

fn bind(path: &Path, perms: u32, conf: &DaemonConfig) -> anyhow::Result<UnixListener> {
    let l =
        bind_unix(path, perms).with_context(|| format!("cannot listen on {}", path.display()))?;
    if let Some(group) = &conf.unix_sock_group {
        chgrp(path, group)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(perms))?;
    }
    Ok(l)
}

fn chgrp(path: &Path, group: &str) -> anyhow::Result<()> {
    let gid = group_id(group)?;
    std::os::unix::fs::chown(path, None, Some(gid))
        .with_context(|| format!("cannot give {} to group {group}", path.display()))
}

/// The id of the group named `group` (`unix_sock_group`).
fn group_id(group: &str) -> anyhow::Result<u32> {
    let gid = nix::unistd::Group::from_name(group)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw());
    gid.with_context(|| format!("unix_sock_group: no group named '{group}'"))
}

/// Runs a daemon until SIGTERM or SIGINT (or, with a timeout, until it has been idle).
pub async fn run(opts: Options) -> anyhow::Result<()> {
    let Options {
        role,
        paths,
        server: server_cfg,
        conf,
        timeout,
        inherited,
    } = opts;
    let name = role.name();
    // Catch the signals before announcing readiness, so an early SIGTERM is a clean stop.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    for d in [&paths.run_dir, &paths.config_dir, &paths.state_dir] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let token = identity::load_or_create(&paths.config_dir)
        .context("cannot read or create the identity token")?;
    let log = Arc::new(
        LogSettings::new(
            conf.log_filters.as_deref().unwrap_or(""),
            conf.log_outputs.as_deref().unwrap_or(""),
        )
        .map_err(|e| anyhow::anyhow!("log_filters/log_outputs: {e}"))?,
    );
    crate::logging::init(name, Arc::clone(&log));
    crate::remote_access::check_polkit(name, &conf);
    let rw_auth = crate::remote_access::unix_policy(&conf.auth_unix_rw);
    let ro_auth = crate::remote_access::unix_policy(&conf.auth_unix_ro);
    let admin_path = conf
        .unix_sock_dir
        .clone()
        .unwrap_or_else(|| paths.run_dir.clone())
        .join(format!("{name}-admin-sock"));
    // The metrics port first: one that cannot be had stops the daemon before it serves.
    let metrics_http = match &conf.metrics_listen {
        Some(a) => {
            let addr = crate::metrics::check_listen(a, conf.metrics_allow_remote)
                .map_err(anyhow::Error::msg)?;
            Some(crate::metrics::bind(addr).await?)
        }
        None => None,
    };
    let (metrics_stop_tx, metrics_stop) = watch::channel(false);

    if role == Role::Proxy {
        let mut socks = sockets(role, &paths, &conf, inherited)?;
        let admin = admin_on(&mut socks, &admin_path, Vec::new(), Arc::clone(&log), &conf)?;
        let links = libvirt_links(role, &paths, &conf, &admin_path)?;
        let remote = crate::remote_access::listeners(name, &paths, &conf)?;
        let proxy = Proxy::new(paths.clone(), token);
        serve_metrics(
            name,
            &admin,
            Arc::clone(&proxy.metrics),
            None,
            metrics_http,
            metrics_stop,
        );
        let (stop_tx, stop) = watch::channel(false);
        let sasl = Arc::new(crate::remote_access::Sasl::from_conf(&paths, &conf.remote));
        for l in remote {
            tokio::spawn(Arc::clone(&proxy).serve_remote(l, Arc::clone(&sasl), stop.clone()));
        }
        let t1 = tokio::spawn(Arc::clone(&proxy).serve(socks.rw, false, rw_auth, stop.clone()));
        let t2 = tokio::spawn(Arc::clone(&proxy).serve(socks.ro, true, ro_auth, stop));
        notify_ready();
        eprintln!("{name}: ready");
        let live = proxy.live.subscribe();
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = idle(live, timeout, || true) => eprintln!("{name}: idle, leaving"),
        }
        stop_tx.send_replace(true);
        metrics_stop_tx.send_replace(true);
        admin.shutdown().await;
        let _ = t1.await;
        let _ = t2.await;
        remove_all(&socks.ours);
        if let Some(l) = links {
            l.remove();
        }
        return Ok(());
    }

    let events = EventBus::default();
    let qemu = if role.hosts(Family::Hypervisor) {
        let mut qemu_cfg = QemuConfig::new(
            paths.config_dir.join("qemu"),
            paths.run_dir.clone(),
            paths.state_dir.join("log/qemu"),
            paths.state_dir.join("qemu/save"),
        );
        // Each VM's own endpoint is reached as this daemon's sockets are; where polkit
        // decides for a socket (which a shim cannot ask), the VM's is its owner's alone.
        let mode = |auth: &str, perms: u32| if auth == "polkit" { 0o700 } else { perms };
        qemu_cfg.vm_sock_perms = (
            mode(&conf.auth_unix_rw, conf.unix_sock_rw_perms),
            mode(&conf.auth_unix_ro, conf.unix_sock_ro_perms),
        );
        qemu_cfg.vm_sock_group = conf.unix_sock_group.as_deref().map(group_id).transpose()?;
        let (qconf, warnings) = vireo_conf::QemuConf::load(&paths.config_dir.join("qemu.conf"))?;
        for w in warnings {
            eprintln!("{name}: {w}");
        }
        qemu_cfg.qemu_user = crate::qemu_user::resolve(&qconf, &paths)?;
        if let Some(u) = &qemu_cfg.qemu_user {
            eprintln!("{name}: QEMU runs as uid {} gid {}", u.uid, u.gid);
        }
        qemu_cfg.dynamic_ownership = qconf.dynamic_ownership;
        qemu_cfg.seccomp_sandbox = qconf.seccomp_sandbox;
        let q = Arc::new(
            QemuDriver::open(qemu_cfg, events.clone()).context("cannot load domain definitions")?,
        );
        q.set_peers(Arc::new(crate::peers::DaemonPeers::new(
            role,
            paths.clone(),
            token.clone(),
        )));
        // VMs that kept running while no daemon was there.
        q.recover().await;
        Some(q)
    } else {
        None
    };
    let objects = EventBus::default();
    let secret = if role.hosts(Family::Secret) {
        Some(Arc::new(
            SecretDriver::open(&paths.config_dir, &paths.state_dir, objects.clone())
                .context("cannot load secrets")?,
        ))
    } else {
        None
    };
    let storage = if role.hosts(Family::Storage) {
        Some(Arc::new(
            StorageDriver::open(
                &paths.config_dir,
                &paths.run_dir,
                &paths.state_dir,
                objects.clone(),
            )
            .context("cannot load storage pools")?,
        ))
    } else {
        None
    };
    if let Some(s) = &storage {
        s.set_secrets(Arc::new(crate::peers::DaemonPeers::new(
            role,
            paths.clone(),
            token.clone(),
        )));
    }
    let network = if role.hosts(Family::Network) {
        let default = match (paths.privileged, paths.embedded) {
            (false, _) => DefaultNetwork::None,
            (true, true) => DefaultNetwork::Defined,
            (true, false) => DefaultNetwork::Autostart,
        };
        Some(Arc::new(
            NetworkDriver::open(
                &paths.config_dir,
                &paths.run_dir,
                &paths.state_dir,
                objects.clone(),
                default,
            )
            .context("cannot load networks")?,
        ))
    } else {
        None
    };
    if let Some(n) = &network {
        n.set_filters(Arc::new(crate::peers::DaemonPeers::new(
            role,
            paths.clone(),
            token.clone(),
        )));
    }
    let nwfilter = if role.hosts(Family::NwFilter) {
        Some(Arc::new(
            NwFilterDriver::open(&paths.config_dir, &paths.run_dir)
                .context("cannot load network filters")?,
        ))
    } else {
        None
    };
    let nodedev = if role.hosts(Family::NodeDev) {
        let state = paths.state_dir.join("nodedev");
        Some(Arc::new(
            NodeDevDriver::open_with_leases(conf.sysfs_root.clone(), &state)
                .context("cannot load the node device leases")?
                .with_mdev_definitions(&paths.config_dir.join("nodedev"), objects.clone())
                .context("cannot load the mediated device definitions")?,
        ))
    } else {
        None
    };
    let mut socks = sockets(role, &paths, &conf, inherited)?;
    let interface = if role.hosts(Family::Interface) {
        Some(Arc::new(
            InterfaceDriver::open(&paths.config_dir, &paths.run_dir, &paths.state_dir)
                .context("cannot load the interface definitions")?,
        ))
    } else {
        None
    };
    let drivers = Drivers {
        qemu: qemu.clone(),
        secret: secret.clone(),
        storage,
        network,
        nwfilter,
        nodedev,
        interface,
        events,
        objects,
    };
    let service = Arc::new(RemoteService::new(role, paths.clone(), drivers, token));
    let remote = crate::remote_access::listeners(name, &paths, &conf)?;
    let _ = service
        .sasl
        .set(crate::remote_access::Sasl::from_conf(&paths, &conf.remote));
    // The kernel's device events are followed from before the daemon says it is ready
    // (the node device driver's own tree only: a synthetic one has none), until it ends.
    let _device_events = service.nodedev.as_ref().and_then(|nd| {
        DeviceMonitor::start(Arc::clone(nd), service.objects.clone())
            .inspect_err(|e| log::warn!("no node device events: {e}"))
            .ok()
            .flatten()
    });
    let mdev_autostart = service.nodedev.clone();
    let server = Server::new(service, server_cfg);
    let listed: Vec<Arc<dyn ServerInfo>> = vec![Arc::new(Named::new(name, &server))];
    let admin = admin_on(&mut socks, &admin_path, listed, log, &conf)?;
    serve_metrics(
        name,
        &admin,
        Arc::clone(server.metrics()),
        qemu.clone(),
        metrics_http,
        metrics_stop,
    );
    let links = libvirt_links(role, &paths, &conf, &admin_path)?;
    let handoff_path = admin_path.with_file_name(format!("{name}-handoff-sock"));
    let handoff = bind_unix(&handoff_path, 0o700)
        .with_context(|| format!("cannot listen on {}", handoff_path.display()))?;
    let t0 = tokio::spawn(take_handoffs(handoff, Arc::clone(&server)));
    let s1 = Arc::clone(&server);
    let s2 = Arc::clone(&server);
    let t1 = tokio::spawn(async move { s1.serve_unix(socks.rw, false, rw_auth).await });
    let t2 = tokio::spawn(async move { s2.serve_unix(socks.ro, true, ro_auth).await });
    let _remote = crate::remote_access::serve(&server, remote);
    // Defined mediated devices marked so are made before domains start (one may use them).
    if let Some(nd) = mdev_autostart {
        if let Err(e) = tokio::task::spawn_blocking(move || nd.autostart_mdevs()).await {
            log::warn!("mediated device autostart: {e}");
        }
    }
    // Serving already: an autostarted domain's volumes may be resolved through this very
    // daemon.
    if let Some(q) = &qemu {
        // Devices still leased to domains that ended while this daemon was away go back.
        q.reconcile_leases().await;
        q.autostart_all().await;
    }
    notify_ready();
    eprintln!("{name}: ready");

    // Running VMs, and ephemeral secrets (kept nowhere else), keep the daemon up.
    let no_vms = move || {
        qemu.as_ref().is_none_or(|q| q.active_ids().is_empty())
            && secret.as_ref().is_none_or(|s| !s.has_ephemeral())
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = idle(server.live(), timeout, no_vms) => eprintln!("{name}: idle, leaving"),
    }
    eprintln!("{name}: shutting down");
    metrics_stop_tx.send_replace(true);
    server.shutdown();
    admin.shutdown().await;
    t0.abort();
    let _ = t1.await;
    let _ = t2.await;
    remove_all(&socks.ours);
    let _ = std::fs::remove_file(&handoff_path);
    if let Some(l) = links {
        l.remove();
    }
    Ok(())
}

/// The daemon's metrics: on the admin socket, and over HTTP on `http` if it listens.
fn serve_metrics(
    name: &'static str,
    admin: &AdminServer,
    main: Arc<vireo_rpc::metrics::ServerMetrics>,
    qemu: Option<Arc<QemuDriver>>,
    http: Option<tokio::net::TcpListener>,
    stop: watch::Receiver<bool>,
) {
    let exporter = Arc::new(crate::metrics::Exporter::new(
        name,
        vec![(main, false), (Arc::clone(admin.server.metrics()), true)],
        qemu,
    ));
    let e = Arc::clone(&exporter);
    admin.service().set_metrics(Arc::new(move || e.render()));
    if let Some(l) = http {
        tokio::spawn(crate::metrics::serve_http(l, exporter, stop));
    }
}

/// With `libvirt_socket_paths`, our sockets under libvirt's names too.
fn libvirt_links(
    role: Role,
    paths: &Paths,
    conf: &DaemonConfig,
    admin_path: &Path,
) -> anyhow::Result<Option<crate::dropin::Links>> {
    if !conf.libvirt_socket_paths {
        return Ok(None);
    }
    let dir = admin_path.parent().unwrap_or(&paths.run_dir);
    let name = role.socket_name();
    crate::dropin::link(
        paths,
        role,
        &dir.join(format!("{name}-sock")),
        &dir.join(format!("{name}-sock-ro")),
        admin_path,
    )
    .map(Some)
}

/// Takes over the connections `vireo-proxyd` hands us (only from our own user: root for
/// the system daemons) and serves them like our own.
async fn take_handoffs<S: vireo_rpc::server::Service>(
    listener: UnixListener,
    server: Arc<Server<S>>,
) {
    let me = rustix::process::geteuid().as_raw();
    while let Ok((mut chan, _)) = listener.accept().await {
        if !chan.peer_cred().map(|c| c.uid() == me).unwrap_or(false) {
            continue;
        }
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            // Bounded: a peer that sends half a message does not hold a task forever.
            let got =
                tokio::time::timeout(Duration::from_secs(5), handoff::receive(&mut chan)).await;
            let Ok(Ok(h)) = got else { return };
            if h.stream.set_nonblocking(true).is_err() {
                return;
            }
            if let Ok(stream) = UnixStream::from_std(h.stream) {
                // Served right here: no second task to schedule before the OPEN is answered.
                server
                    .serve_handed(stream, h.readonly, h.initial, h.keepalive)
                    .await;
            }
        });
    }
}

/// Resolves once no client has been connected for `timeout` and `quiet()` holds (no VM
/// runs); never without a timeout.
async fn idle(
    mut live: watch::Receiver<usize>,
    timeout: Option<Duration>,
    quiet: impl Fn() -> bool,
) {
    let Some(timeout) = timeout else {
        return std::future::pending().await;
    };
    loop {
        // Wait for the last client to leave, then give it `timeout` to stay that way.
        if live.wait_for(|n| *n == 0).await.is_err() {
            return std::future::pending().await;
        }
        tokio::select! {
            _ = live.wait_for(|n| *n > 0) => continue,
            _ = tokio::time::sleep(timeout) => {}
        }
        if quiet() {
            return;
        }
        // A VM runs: look again after another period.
    }
}

/// The admin socket: systemd's if it passed one, else bound at `path`.
fn admin_on(
    socks: &mut Sockets,
    path: &Path,
    listed: Vec<Arc<dyn ServerInfo>>,
    log: Arc<LogSettings>,
    conf: &DaemonConfig,
) -> anyhow::Result<AdminServer> {
    if let Some(l) = socks.admin.take() {
        return Ok(serve_admin_on(l, None, listed, log));
    }
    let admin = serve_admin(path, listed, log)?;
    set_perms(path, conf.unix_sock_admin_perms)?;
    Ok(admin)
}

fn set_perms(path: &Path, mode: u32) -> anyhow::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the permissions of {}", path.display()))
}

fn remove_all(paths: &[PathBuf]) {
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
}

/// Sends `READY=1` to systemd when it asked for notification.
fn notify_ready() {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sock = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(_) => return,
    };
    let bytes = path.as_encoded_bytes();
    let r = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|a| sock.send_to_addr(b"READY=1", &a))
    } else {
        sock.send_to(b"READY=1", PathBuf::from(path))
    };
    if let Err(e) = r {
        eprintln!("vireo: cannot notify systemd: {e}");
    }
}
