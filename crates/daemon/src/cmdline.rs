//! The command line every daemon binary shares.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use vireo_rpc::server::ServerConfig;

use crate::paths::Paths;
use crate::role::Role;
use crate::run::{run, Options};

const OPTIONS: &str = "Runs the daemon in the foreground.
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

/// `main` of the daemon binary for `role`.
pub fn main(role: Role) -> ExitCode {
    let name = role.name();
    let usage = format!(
        "usage: {name} [--root DIR] [--max-clients N] [--keepalive-interval SECS]\n       [--keepalive-count N] [--busy-poll-us N]\n\n{OPTIONS}"
    );
    let fail = |msg: &str| {
        eprintln!("{name}: {msg}\n{usage}");
        ExitCode::from(2)
    };
    let mut root: Option<PathBuf> = None;
    let mut server = ServerConfig::default();
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
            "--max-clients" => match num("a number") {
                Ok(n) => server.max_clients = n as usize,
                Err(c) => return c,
            },
            "--keepalive-interval" => match num("a number of seconds") {
                Ok(n) => server.keepalive_interval = Duration::from_secs(n),
                Err(c) => return c,
            },
            "--keepalive-count" => match num("a number") {
                Ok(n) => server.keepalive_count = n as u32,
                Err(c) => return c,
            },
            "--busy-poll-us" => match num("a number of microseconds") {
                Ok(n) => server.busy_poll = Duration::from_micros(n),
                Err(c) => return c,
            },
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
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(Options {
        role,
        paths,
        server,
    })) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}
