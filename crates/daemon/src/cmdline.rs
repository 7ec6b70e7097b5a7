//! The command line every daemon binary shares.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use vireo_conf::DaemonConfig;
use vireo_rpc::server::ServerConfig;

use crate::paths::Paths;
use crate::role::Role;
use crate::run::{run, Options};
use vireo_proto::family::Family;

const OPTIONS: &str = "Runs the daemon in the foreground.
  --root DIR        keep sockets, configuration and state under DIR
                    (DIR/run/vireo, DIR/etc/vireo, DIR/var/lib/vireo)
  --config FILE     settings in libvirt's .conf syntax (default: NAME.conf in the
                    configuration directory, if it exists)
  --timeout SECS    exit after SECS with no client connected and no VM running
                    (for socket activation)
  --listen          listen for remote clients on TCP as the .conf says (listen_tls
                    on tls_port 16514 by default, listen_tcp on tcp_port 16509);
                    vireod and vireo-proxyd only, as libvirtd and virtproxyd
  --libvirt-paths   also answer on libvirt's socket paths (/run/libvirt/libvirt-sock,
                    virtqemud-sock …; $XDG_RUNTIME_DIR/libvirt in session mode), as
                    libvirt_socket_paths = 1 in the .conf does
The options below override the .conf.
  --metrics-listen ADDR:PORT
                    serve the metrics as GET /metrics over HTTP there (as
                    metrics_listen = \"ADDR:PORT\" does; a loopback address unless
                    metrics_allow_remote = 1)
  --max-clients N   refuse connections beyond N clients (default 5000)
  --keepalive-interval SECS
                    ping a client that asked for keepalive after SECS idle
                    (default 5; 0 disables)
  --keepalive-count N
                    drop it after N unanswered pings (default 5)
  --busy-poll-us N  after answering a client that calls back-to-back, poll its
                    socket N microseconds before sleeping (default 50; 0 = off)
Without --root: system paths as root, XDG paths otherwise.";

/// `main` of the daemon binary for `role`. Every daemon binary is also a multi-call
/// binary: started under another daemon's name (a hard or symbolic link, as the install
/// command makes them), it becomes that daemon, so one executable's pages serve them all.
pub fn main(role: Role) -> ExitCode {
    vireo_rpc::metrics::mark_start();
    // First, while fds from 3 on are still systemd's.
    let inherited = crate::activation::take();
    let role = std::env::args_os()
        .next()
        .and_then(|a| {
            let p = std::path::PathBuf::from(a);
            Role::from_name(&p.file_name()?.to_string_lossy())
        })
        .unwrap_or(role);
    let name = role.name();
    let usage = format!(
        "usage: {name} [--root DIR] [--config FILE] [--timeout SECS] [--listen] [--libvirt-paths]\n       [--metrics-listen ADDR:PORT] [--max-clients N] [--keepalive-interval SECS]\n       [--keepalive-count N] [--busy-poll-us N]\n\n{OPTIONS}"
    );
    let fail = |msg: &str| {
        eprintln!("{name}: {msg}\n{usage}");
        ExitCode::from(2)
    };
    let mut root: Option<PathBuf> = None;
    let mut config: Option<PathBuf> = None;
    let mut timeout = None;
    let mut libvirt_paths = false;
    let mut listen = false;
    let mut metrics_listen: Option<String> = None;
    let mut over = Overrides::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |what: &str| -> Result<u64, ExitCode> {
            args.next()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| fail(&format!("{a} needs {what}")))
        };
        match a.as_str() {
            "--root" => match args.next() {
                Some(d) => root = Some(PathBuf::from(d)),
                None => return fail("--root needs a directory"),
            },
            "--config" => match args.next() {
                Some(f) => config = Some(PathBuf::from(f)),
                None => return fail("--config needs a file"),
            },
            "--timeout" => match num("a number of seconds") {
                Ok(n) => timeout = Some(Duration::from_secs(n)),
                Err(c) => return c,
            },
            "--max-clients" => match num("a number") {
                Ok(n) => over.max_clients = Some(n as usize),
                Err(c) => return c,
            },
            "--keepalive-interval" => match num("a number of seconds") {
                Ok(n) => over.keepalive_interval = Some(Duration::from_secs(n)),
                Err(c) => return c,
            },
            "--keepalive-count" => match num("a number") {
                Ok(n) => over.keepalive_count = Some(n as u32),
                Err(c) => return c,
            },
            "--busy-poll-us" => match num("a number of microseconds") {
                Ok(n) => over.busy_poll = Some(Duration::from_micros(n)),
                Err(c) => return c,
            },
            "--metrics-listen" => match args.next() {
                Some(a) => metrics_listen = Some(a),
                None => return fail("--metrics-listen needs ADDRESS:PORT"),
            },
            "--libvirt-paths" => libvirt_paths = true,
            "--listen" | "-l" => listen = true,
            "-h" | "--help" => {
                println!("{usage}");
                return ExitCode::SUCCESS;
            }
            "-V" | "--version" => {
                println!("{name} {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            other => return fail(&format!("unknown option '{other}'")),
        }
    }
    let paths = match root {
        Some(r) => Paths::under_root(&r),
        None => Paths::default_for_user(),
    };
    let conf_path = config.unwrap_or_else(|| paths.config_dir.join(format!("{name}.conf")));
    let mut conf = match DaemonConfig::load(&conf_path) {
        Ok((conf, warnings)) => {
            for w in warnings {
                eprintln!("{name}: warning: {w}");
            }
            conf
        }
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if listen {
        if matches!(role, Role::Monolithic | Role::Proxy) {
            conf.remote.listen = true;
        } else {
            eprintln!("{name}: --listen ignored: vireo-proxyd serves the remote clients of the modular daemons");
        }
    }
    if libvirt_paths {
        conf.libvirt_socket_paths = true;
    }
    if metrics_listen.is_some() {
        conf.metrics_listen = metrics_listen;
    }
    // A metrics address that may not be used stops the daemon before it starts.
    if let Some(addr) = &conf.metrics_listen {
        if let Err(e) = crate::metrics::check_listen(addr, conf.metrics_allow_remote) {
            eprintln!("{name}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let server = over.apply(server_config(&conf));
    // The hypervisor daemons run VMs and slow calls side by side: a worker per CPU. The
    // others (and the proxy) do little at a time: one thread keeps them small and, with no
    // thread hand-offs, quick (the storage daemon's slow calls go to the blocking pool).
    let rt = match role {
        Role::Monolithic | Role::Driver(Family::Hypervisor) => {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
        }
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = Options {
        role,
        paths,
        server,
        conf,
        timeout,
        inherited,
    };
    match rt.block_on(run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Command-line settings, which win over the .conf.
#[derive(Default)]
struct Overrides {
    max_clients: Option<usize>,
    keepalive_interval: Option<Duration>,
    keepalive_count: Option<u32>,
    busy_poll: Option<Duration>,
}

impl Overrides {
    fn apply(self, mut s: ServerConfig) -> ServerConfig {
        if let Some(v) = self.max_clients {
            s.max_clients = v;
        }
        if let Some(v) = self.keepalive_interval {
            s.keepalive_interval = v;
        }
        if let Some(v) = self.keepalive_count {
            s.keepalive_count = v;
        }
        if let Some(v) = self.busy_poll {
            s.busy_poll = v;
        }
        s
    }
}

/// The server settings a .conf gives.
fn server_config(c: &DaemonConfig) -> ServerConfig {
    ServerConfig {
        max_clients: c.max_clients,
        max_client_requests: c.max_client_requests.max(1),
        // libvirt: an interval of 0 or less sends no keepalives.
        keepalive_interval: Duration::from_secs(c.keepalive_interval.max(0) as u64),
        keepalive_count: c.keepalive_count,
        ..ServerConfig::default()
    }
}
