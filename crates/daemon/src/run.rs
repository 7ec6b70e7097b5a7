//! Starting and stopping a daemon: bind its sockets, serve, tell systemd it is ready, and
//! shut down cleanly on SIGTERM/SIGINT.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};
use vireo_driver::events::EventBus;
use vireo_qemu::{QemuConfig, QemuDriver};
use vireo_rpc::server::{bind_unix, Server, ServerConfig};

use crate::identity;
use crate::paths::Paths;
use crate::proxy::Proxy;
use crate::remote::RemoteService;
use crate::role::Role;
use tokio::sync::watch;
use vireo_proto::family::Family;

/// Socket permissions libvirt uses by default.
const RW_PERMS: u32 = 0o700;
const RO_PERMS: u32 = 0o777;

pub struct Options {
    pub role: Role,
    pub paths: Paths,
    pub server: ServerConfig,
}

/// Runs a daemon until SIGTERM or SIGINT.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    let paths = opts.paths;
    let role = opts.role;
    let name = role.name();
    // Catch the signals before announcing readiness, so an early SIGTERM is a clean stop.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    for d in [&paths.run_dir, &paths.config_dir, &paths.state_dir] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let token = identity::load_or_create(&paths.config_dir)
        .context("cannot read or create the identity token")?;
    let rw_path = paths.socket(role.socket_name());
    let ro_path = paths.socket_ro(role.socket_name());

    if role == Role::Proxy {
        let rw = bind_unix(&rw_path, RW_PERMS)
            .with_context(|| format!("cannot listen on {}", rw_path.display()))?;
        let ro = bind_unix(&ro_path, RO_PERMS)
            .with_context(|| format!("cannot listen on {}", ro_path.display()))?;
        let proxy = Proxy::new(paths.clone(), token);
        let (stop_tx, stop) = watch::channel(false);
        let t1 = tokio::spawn(Arc::clone(&proxy).serve(rw, false, stop.clone()));
        let t2 = tokio::spawn(Arc::clone(&proxy).serve(ro, true, stop));
        notify_ready();
        eprintln!("{name}: listening on {}", rw_path.display());
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!("{name}: shutting down");
        let _ = stop_tx.send(true);
        let _ = t1.await;
        let _ = t2.await;
        for p in [rw_path, ro_path] {
            let _ = std::fs::remove_file(p);
        }
        return Ok(());
    }

    let events = EventBus::default();
    let qemu = if role.hosts(Family::Hypervisor) {
        let qemu_cfg = QemuConfig::new(
            paths.config_dir.join("qemu"),
            paths.run_dir.clone(),
            paths.state_dir.join("log/qemu"),
        );
        let q = Arc::new(
            QemuDriver::open(qemu_cfg, events.clone()).context("cannot load domain definitions")?,
        );
        // VMs that kept running while no daemon was there, then autostart.
        q.recover().await;
        Some(q)
    } else {
        None
    };
    let rw = bind_unix(&rw_path, RW_PERMS)
        .with_context(|| format!("cannot listen on {}", rw_path.display()))?;
    let ro = bind_unix(&ro_path, RO_PERMS)
        .with_context(|| format!("cannot listen on {}", ro_path.display()))?;
    let service = Arc::new(RemoteService::new(role, paths.clone(), qemu, events, token));
    let server = Server::new(service, opts.server);
    let s1 = Arc::clone(&server);
    let s2 = Arc::clone(&server);
    let t1 = tokio::spawn(async move { s1.serve(rw, false).await });
    let t2 = tokio::spawn(async move { s2.serve(ro, true).await });
    notify_ready();
    eprintln!("{name}: listening on {}", rw_path.display());

    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    eprintln!("{name}: shutting down");
    server.shutdown();
    let _ = t1.await;
    let _ = t2.await;
    for p in [rw_path, ro_path] {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
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
