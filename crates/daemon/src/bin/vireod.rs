//! `vireod`: the monolithic daemon, every driver in one process.

use std::path::PathBuf;
use std::process::ExitCode;

use vireo_daemon::paths::Paths;
use vireo_daemon::run::{run, Options};
use vireo_rpc::server::ServerConfig;

const USAGE: &str = "usage: vireod [--root DIR] [--max-clients N] [--keepalive-interval SECS]
              [--keepalive-count N] [--busy-poll-us N]

Runs the Vireo daemon in the foreground.
  --root DIR        keep sockets, configuration and state under DIR
                    (DIR/run/vireo, DIR/etc/vireo, DIR/var/lib/vireo)
  --max-clients N   refuse connections beyond N clients (default 5000)
  --keepalive-interval SECS
                    ping a client that asked for keepalive after SECS idle
                    (default 5; 0 disables)
  --keepalive-count N
                    drop it after N unanswered pings (default 5)
  --busy-poll-us N  after answering a client that calls back-to-back, poll its
                    socket N microseconds before sleeping (default 50; 0 = off)
Without --root: system paths as root, XDG paths otherwise.";

fn main() -> ExitCode {
    let mut root: Option<PathBuf> = None;
    let mut server = ServerConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--root" => match args.next() {
                Some(d) => root = Some(PathBuf::from(d)),
                None => return usage("--root needs a directory"),
            },
            "--max-clients" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) => server.max_clients = n,
                None => return usage("--max-clients needs a number"),
            },
            "--keepalive-interval" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) => server.keepalive_interval = std::time::Duration::from_secs(n),
                None => return usage("--keepalive-interval needs a number of seconds"),
            },
            "--busy-poll-us" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) => server.busy_poll = std::time::Duration::from_micros(n),
                None => return usage("--busy-poll-us needs a number of microseconds"),
            },
            "--keepalive-count" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) => server.keepalive_count = n,
                None => return usage("--keepalive-count needs a number"),
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "-V" | "--version" => {
                println!("vireod {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            other => return usage(&format!("unknown option '{other}'")),
        }
    }
    let paths = match root {
        Some(r) => Paths::under_root(&r),
        None => Paths::default_for_user(),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vireod: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = Options {
        name: "vireod".into(),
        paths,
        server,
    };
    match rt.block_on(run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vireod: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("vireod: {msg}\n{USAGE}");
    ExitCode::from(2)
}
