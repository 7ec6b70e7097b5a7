//! `vireo-saslpasswd`: adds, changes or deletes a user of the daemons' SASL users file, as
//! `saslpasswd2 -a libvirt` does for libvirt's. The file keeps SCRAM-SHA-256 verifiers
//! (salted and iterated), never passwords.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use vireo_daemon::paths::Paths;
use vireo_rpc::sasl::{Users, Verifier, DEFAULT_ITERATIONS};

const USAGE: &str = "usage: vireo-saslpasswd [--root DIR | --file FILE] [-p] [-d] [-i N] USER
Sets USER's password for SASL logins (SCRAM-SHA-256) to Vireo's daemons.
  --root DIR   the users file of the daemons run with --root DIR
  --file FILE  this users file (the daemons' sasl_users_file)
  -p           read the password from standard input, one line, without prompting
  -d           delete USER
  -i N         iterations of the password hash (default 4096)
Without --root or --file: sasl-users in the daemons' configuration directory
(/etc/vireo as root, $XDG_CONFIG_HOME/vireo otherwise).";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vireo-saslpasswd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let mut file: Option<PathBuf> = None;
    let mut pipe = false;
    let mut delete = false;
    let mut iterations = DEFAULT_ITERATIONS;
    let mut user = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--root" => {
                let d = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--root needs a directory"))?;
                file = Some(vireo_daemon::remote_access::default_users_file(
                    &Paths::under_root(std::path::Path::new(&d)),
                ));
            }
            "--file" => {
                file = Some(PathBuf::from(
                    args.next()
                        .ok_or_else(|| anyhow::anyhow!("--file needs a file"))?,
                ))
            }
            "-p" => pipe = true,
            "-d" => delete = true,
            "-i" => {
                iterations = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n >= 4096)
                    .ok_or_else(|| anyhow::anyhow!("-i needs a number of at least 4096"))?
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            u if !u.starts_with('-') && user.is_none() => user = Some(u.to_string()),
            other => anyhow::bail!("unexpected argument '{other}'\n{USAGE}"),
        }
    }
    let user = user.ok_or_else(|| anyhow::anyhow!("no user given\n{USAGE}"))?;
    if !Users::valid_name(&user) {
        anyhow::bail!("'{user}' cannot be a user name (no ':', '#', spaces or control characters)");
    }
    let file = file.unwrap_or_else(|| {
        vireo_daemon::remote_access::default_users_file(&Paths::default_for_user())
    });
    let mut users = Users::load(&file)?;
    if delete {
        if users.users.remove(&user).is_none() {
            anyhow::bail!("user '{user}' not found in {}", file.display());
        }
    } else {
        let password = read_password(pipe)?;
        users
            .users
            .insert(user, Verifier::new(&password, iterations)?);
    }
    users.save(&file)?;
    Ok(())
}

/// The password: one line of standard input, or typed twice at the terminal unseen.
fn read_password(pipe: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if pipe || !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        let p = line.trim_end_matches(['\n', '\r']).to_string();
        if p.is_empty() {
            anyhow::bail!("empty password");
        }
        return Ok(p);
    }
    let first = prompt("Password: ")?;
    let again = prompt("Again (for verification): ")?;
    if first != again {
        anyhow::bail!("passwords don't match");
    }
    if first.is_empty() {
        anyhow::bail!("empty password");
    }
    Ok(first)
}

/// Reads a line from the terminal with echo off.
fn prompt(what: &str) -> anyhow::Result<String> {
    eprint!("{what}");
    std::io::stderr().flush()?;
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    let stdin = std::io::stdin();
    let Ok(saved) = tcgetattr(&stdin) else {
        anyhow::bail!("cannot read the terminal's settings");
    };
    let mut t = saved.clone();
    t.local_modes.remove(LocalModes::ECHO);
    let _ = tcsetattr(&stdin, OptionalActions::Now, &t);
    let mut line = String::new();
    let r = stdin.lock().read_line(&mut line);
    // Echo is restored whatever happened to the read.
    let _ = tcsetattr(&stdin, OptionalActions::Now, &saved);
    eprintln!();
    r?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
