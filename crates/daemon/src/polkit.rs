//! polkit on the UNIX sockets (`auth_unix_rw` / `auth_unix_ro` = "polkit"), as libvirt does
//! it: a client's AUTH_POLKIT has the daemon ask polkit whether the peer process (from
//! `SO_PEERCRED`: pid, its start time, uid) may do `org.libvirt.unix.manage` (read-write
//! socket) or `org.libvirt.unix.monitor` (read-only socket), with interactive authorization
//! allowed. polkit is asked through its own `pkcheck` (Debian's `polkitd` package), which
//! finds the system bus where every D-Bus client does (`DBUS_SYSTEM_BUS_ADDRESS`, else
//! `/run/dbus/system_bus_socket`). Each check is bounded in time, and only so many run at
//! once.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::Semaphore;
use vireo_proto::error::{code, domain as errdom};
use vireo_proto::RemoteError;

/// The action a client of the read-write socket needs.
pub const MANAGE: &str = "org.libvirt.unix.manage";
/// The action a client of the read-only socket needs.
pub const MONITOR: &str = "org.libvirt.unix.monitor";

/// How long polkit may take to answer (libvirt's D-Bus calls wait as long): an agent
/// asking a password counts, as it does for libvirt.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Checks running at once, daemon-wide; more wait for a turn.
const MAX_CHECKS: usize = 16;
static CHECKS: Semaphore = Semaphore::const_new(MAX_CHECKS);

/// Longest piece of pkcheck's own message passed on.
const MESSAGE_MAX: usize = 200;

/// Why polkit did not let a client in.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PolkitError {
    #[error("access denied by policy")]
    Denied,
    /// polkit wants the user to authenticate and no agent of theirs can ask.
    #[error("no polkit agent available to authenticate action '{0}'")]
    NoAgent(String),
    #[error("user cancelled authentication process")]
    Cancelled,
    #[error("the client's process id is unknown")]
    NoPid,
    #[error("cannot read the start time of the client's process {0}")]
    NoStartTime(i32),
    #[error("cannot ask polkit: {0}")]
    Unavailable(String),
}

impl PolkitError {
    /// libvirt's error for each case (its polkit code's codes and messages).
    pub fn to_remote(&self) -> RemoteError {
        let (c, prefix) = match self {
            PolkitError::NoAgent(_) => (code::AUTH_UNAVAILABLE, "authentication unavailable"),
            PolkitError::Cancelled => (code::AUTH_CANCELLED, "authentication cancelled"),
            _ => (code::AUTH_FAILED, "authentication failed"),
        };
        RemoteError::new(c, errdom::POLKIT, format!("{prefix}: {self}"))
    }
}

/// The action for a client of the read-only (`readonly`) or read-write socket.
pub fn action(readonly: bool) -> &'static str {
    if readonly {
        MONITOR
    } else {
        MANAGE
    }
}

/// polkit's `pkcheck`, or why not (not installed: which package carries it).
fn pkcheck() -> Result<PathBuf, vireo_hostprog::Missing> {
    vireo_hostprog::find("pkcheck")
}

/// Whether `pkcheck` is there (for the daemon's warning at start).
pub fn available() -> bool {
    pkcheck().is_ok()
}

/// A process's start time in clock ticks after boot (field 22 of `/proc/PID/stat`), which
/// polkit takes with the pid so that a pid reused by another process is not mistaken for
/// the client.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

fn parse_start_time(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold anything, ')' included:
    // the fields after the last ')' start at field 3.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// Asks polkit whether process `pid` of user `uid` may do `action`.
pub async fn check(action: &str, pid: Option<i32>, uid: u32) -> Result<(), PolkitError> {
    let pid = pid.filter(|p| *p > 0).ok_or(PolkitError::NoPid)?;
    let start = start_time(pid).ok_or(PolkitError::NoStartTime(pid))?;
    let _turn = CHECKS
        .acquire()
        .await
        .map_err(|_| PolkitError::Unavailable("shutting down".into()))?;
    let program = pkcheck().map_err(|e| PolkitError::Unavailable(e.to_string()))?;
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(["--action-id", action, "--process"])
        .arg(format!("{pid},{start},{uid}"))
        .arg("--allow-user-interaction")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let out = match tokio::time::timeout(TIMEOUT, cmd.output()).await {
        Err(_) => {
            return Err(PolkitError::Unavailable(format!(
                "no answer within {} s",
                TIMEOUT.as_secs()
            )))
        }
        Ok(Err(e)) => {
            return Err(PolkitError::Unavailable(format!(
                "cannot run {}: {e}",
                program.display()
            )))
        }
        Ok(Ok(out)) => out,
    };
    verdict(action, out.status.code(), &out.stdout, &out.stderr)
}

/// What pkcheck's exit status (and output) says: 0 authorized, 1 not, 2 not without an
/// authentication nobody can ask for, 3 dismissed by the user; anything else is pkcheck's
/// own failure (no bus, no polkitd), told on its standard error. A dismissal is told among
/// the details on standard output too, and wins, as in libvirt.
fn verdict(
    action: &str,
    status: Option<i32>,
    stdout: &[u8],
    stderr: &[u8],
) -> Result<(), PolkitError> {
    if status == Some(0) {
        return Ok(());
    }
    let details = String::from_utf8_lossy(stdout);
    // pkcheck escapes the '.' of detail keys as "\56".
    let dismissed = details.lines().any(|l| {
        let l = l.trim().replace("\\56", ".");
        l == "polkit.dismissed=true"
    });
    if dismissed || status == Some(3) {
        return Err(PolkitError::Cancelled);
    }
    match status {
        Some(1) => Err(PolkitError::Denied),
        Some(2) => Err(PolkitError::NoAgent(action.to_string())),
        _ => {
            let err = String::from_utf8_lossy(stderr);
            let first = err.lines().map(str::trim).find(|l| !l.is_empty());
            let mut why = match (first, status) {
                (Some(l), _) => l.to_string(),
                (None, Some(c)) => format!("pkcheck exited with status {c}"),
                (None, None) => "pkcheck was killed".to_string(),
            };
            if why.len() > MESSAGE_MAX {
                let mut end = MESSAGE_MAX;
                while !why.is_char_boundary(end) {
                    end -= 1;
                }
                why.truncate(end);
            }
            Err(PolkitError::Unavailable(why))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions() {
        assert_eq!(action(false), "org.libvirt.unix.manage");
        assert_eq!(action(true), "org.libvirt.unix.monitor");
    }

    #[test]
    fn start_time_is_field_22() {
        let stat = "4242 (a) b) (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 \
                    1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_start_time(stat), Some(987654));
        assert_eq!(parse_start_time("4242 (short) S 1 2"), None);
        assert_eq!(parse_start_time("no parenthesis"), None);
        // Our own process has one, and it does not change.
        let me = std::process::id() as i32;
        let t = start_time(me).expect("own start time");
        assert_eq!(start_time(me), Some(t));
        assert_eq!(start_time(-1), None);
    }

    #[test]
    fn pkcheck_verdicts() {
        let a = MANAGE;
        assert_eq!(verdict(a, Some(0), b"", b""), Ok(()));
        assert_eq!(
            verdict(a, Some(1), b"", b"Not authorized.\n"),
            Err(PolkitError::Denied)
        );
        assert_eq!(
            verdict(
                a,
                Some(2),
                b"polkit\\56retains_authorization_after_challenge=1\n",
                b"Authorization requires authentication but no agent is available.\n"
            ),
            Err(PolkitError::NoAgent(a.into()))
        );
        assert_eq!(verdict(a, Some(3), b"", b""), Err(PolkitError::Cancelled));
        assert_eq!(
            verdict(a, Some(2), b"polkit\\56dismissed=true\n", b""),
            Err(PolkitError::Cancelled)
        );
        assert_eq!(
            verdict(
                a,
                Some(126),
                b"",
                b"Error getting authority: Error initializing authority: Could not connect: No such file or directory\n"
            ),
            Err(PolkitError::Unavailable(
                "Error getting authority: Error initializing authority: Could not connect: No such file or directory".into()
            ))
        );
        assert_eq!(
            verdict(a, Some(127), b"", b""),
            Err(PolkitError::Unavailable(
                "pkcheck exited with status 127".into()
            ))
        );
        assert_eq!(
            verdict(a, None, b"", b""),
            Err(PolkitError::Unavailable("pkcheck was killed".into()))
        );
        let long = "é".repeat(300);
        match verdict(a, Some(127), b"", long.as_bytes()) {
            Err(PolkitError::Unavailable(m)) => assert!(m.len() <= MESSAGE_MAX, "{}", m.len()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn libvirt_errors() {
        let e = PolkitError::Denied.to_remote();
        assert_eq!((e.code, e.domain), (code::AUTH_FAILED, errdom::POLKIT));
        assert_eq!(
            e.message.as_deref(),
            Some("authentication failed: access denied by policy")
        );
        let e = PolkitError::NoAgent(MANAGE.into()).to_remote();
        assert_eq!((e.code, e.domain), (code::AUTH_UNAVAILABLE, errdom::POLKIT));
        assert_eq!(
            e.message.as_deref(),
            Some("authentication unavailable: no polkit agent available to authenticate action 'org.libvirt.unix.manage'")
        );
        let e = PolkitError::Cancelled.to_remote();
        assert_eq!((e.code, e.domain), (code::AUTH_CANCELLED, errdom::POLKIT));
        assert_eq!(
            e.message.as_deref(),
            Some("authentication cancelled: user cancelled authentication process")
        );
        let e = PolkitError::Unavailable("no bus".into()).to_remote();
        assert_eq!(e.code, code::AUTH_FAILED);
        assert_eq!(
            e.message.as_deref(),
            Some("authentication failed: cannot ask polkit: no bus")
        );
    }

    /// A client whose process is unknown is refused without asking.
    #[tokio::test]
    async fn no_pid_no_check() {
        assert_eq!(check(MANAGE, None, 1000).await, Err(PolkitError::NoPid));
        assert_eq!(check(MANAGE, Some(0), 1000).await, Err(PolkitError::NoPid));
    }
}
