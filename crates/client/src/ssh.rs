//! The `ssh` transport, `driver+ssh://[user@]host[:port]/path[?…]`, as libvirt's client does
//! it: the system's OpenSSH client runs a command on the remote host that relays the session
//! to the daemon's socket there — `virt-ssh-helper URI` (Vireo's, or libvirt's), else
//! `nc -U SOCKET` — and the RPC connection runs over the child's standard input and output
//! (one end of a socket pair). What `ssh` says on its standard error becomes the error when
//! the session ends, as libvirt reports it ("End of file while reading data: …").
//!
//! URI parameters, as libvirt 9's: `keyfile=` (`-i`), `no_verify=1` (no host key check),
//! `no_tty=1` (batch mode), `command=` (the ssh program), `proxy=auto|netcat|native`,
//! `netcat=` (the remote nc), `socket=` (the remote socket for nc), `mode=`, `name=`; and
//! `known_hosts=` (ours for OpenSSH: its `UserKnownHostsFile`; libvirt reads it only for
//! its libssh transports). Any other parameter goes to the remote end in the URI.

use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use vireo_proto::error::os_text;
use vireo_rpc::client::Connection;

use crate::uri::{Mode, Uri};
use crate::ClientError;

/// How the remote end reaches its daemon (`proxy=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proxy {
    /// `virt-ssh-helper` if the remote host has it, else `nc`.
    Auto,
    /// `nc -U SOCKET`.
    Netcat,
    /// `virt-ssh-helper URI` only.
    Native,
}

/// The parameters libvirt's client takes for itself; the rest go to the remote end.
const CLIENT_PARAMS: [&str; 17] = [
    "name",
    "command",
    "socket",
    "auth",
    "sshauth",
    "netcat",
    "keyfile",
    "pkipath",
    "known_hosts",
    "known_hosts_verify",
    "tls_priority",
    "mode",
    "proxy",
    "no_sanity",
    "no_verify",
    "no_tty",
    "authfile",
];

/// Most of the ssh client's standard error kept for a report (libvirt reads 1 KiB).
const STDERR_KEPT: usize = 1024;

/// How long a report waits for `ssh` to finish saying why it ended.
const STDERR_WAIT: Duration = Duration::from_secs(5);

/// The program and arguments run for a URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshCommand {
    pub program: String,
    pub args: Vec<String>,
}

/// A parameter as libvirt's client reads it: the name in any case, the last one given.
fn param<'a>(uri: &'a Uri, name: &str) -> Option<&'a str> {
    uri.params
        .iter()
        .rev()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A boolean parameter (`no_verify=1`): an integer, non-zero for yes.
fn flag(uri: &Uri, name: &str) -> Result<bool, ClientError> {
    match param(uri, name) {
        None => Ok(false),
        Some(v) => v.trim().parse::<i64>().map(|n| n != 0).map_err(|_| {
            ClientError::Uri(format!("Failed to parse value of URI component {name}"))
        }),
    }
}

/// Quotes `s` for `sh` only when it holds a character the shell would read (libvirt's rule:
/// `'…'`, each `'` as `'\''`; the empty string as `''`).
fn shell_quote(s: &str) -> String {
    const SPECIAL: &str = "\r\t\n !\"#$&'()*;<>?[\\]^`{|}~";
    if s.is_empty() {
        return "''".into();
    }
    if !s.chars().any(|c| SPECIAL.contains(c)) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\'");
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// Quoted twice: the remote user's shell runs `sh -c '…'`, which runs the words again.
fn shell_quote_twice(s: &str) -> String {
    shell_quote(&shell_quote(s))
}

/// A parameter's value in a URI (the unreserved characters as they are).
fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The command the remote host runs, exactly as libvirt's client writes it.
pub fn remote_command(
    proxy: Proxy,
    netcat: Option<&str>,
    socket: &str,
    driver_uri: &str,
    readonly: bool,
) -> Result<String, ClientError> {
    // A netcat path given means the legacy proxy.
    let proxy = match (proxy, netcat) {
        (Proxy::Auto, Some(_)) => Proxy::Netcat,
        (p, _) => p,
    };
    let nc = shell_quote_twice(netcat.unwrap_or("nc"));
    let nccmd = format!(
        "if '{nc}' -q 2>&1 | grep \"requires an argument\" >/dev/null 2>&1; then \
         ARG=-q0;else ARG=;fi;'{nc}' $ARG -U {socket}"
    );
    let helper = format!(
        "virt-ssh-helper{}'{}'",
        if readonly { " -r " } else { " " },
        shell_quote_twice(driver_uri)
    );
    Ok(match proxy {
        Proxy::Auto => format!(
            "sh -c 'which virt-ssh-helper 1>/dev/null 2>&1; if test $? = 0; then     \
             {helper}; else    {nccmd}; fi'"
        ),
        Proxy::Netcat => format!("sh -c '{nccmd}'"),
        Proxy::Native if netcat.is_some() => {
            return Err(ClientError::Uri(
                "netcat path not valid with native proxy mode".into(),
            ))
        }
        Proxy::Native => format!("sh -c '{helper}'"),
    })
}

/// Whether libvirt's client would use the user's session daemon for this URI.
fn user_session(uri: &Uri) -> bool {
    let euid = rustix::process::geteuid().as_raw();
    euid > 0 && (uri.path == "/session" || uri.driver == "test")
}

/// The URI the remote end is given: `name=` if set, else the driver, the path and the
/// parameters that are not the client's.
fn driver_uri(uri: &Uri) -> String {
    if let Some(n) = param(uri, "name") {
        return n.to_string();
    }
    let rest: Vec<String> = uri
        .params
        .iter()
        .filter(|(k, _)| !CLIENT_PARAMS.iter().any(|c| c.eq_ignore_ascii_case(k)))
        .map(|(k, v)| format!("{k}={}", uri_encode(v)))
        .collect();
    let mut s = format!("{}://{}", uri.driver, uri.path);
    if !rest.is_empty() {
        s.push('?');
        s.push_str(&rest.join("&"));
    }
    s
}

impl SshCommand {
    /// The `ssh` command line libvirt's client runs for `uri`.
    pub fn for_uri(uri: &Uri, readonly: bool) -> Result<SshCommand, ClientError> {
        let user_session = user_session(uri);
        let socket = param(uri, "socket");
        let proxy = match param(uri, "proxy") {
            Some("auto") => Proxy::Auto,
            Some("netcat") => Proxy::Netcat,
            Some("native") => Proxy::Native,
            // (libvirt 9's spelling of this message.)
            Some(other) => return Err(ClientError::Uri(format!("Unnkown proxy type '{other}'"))),
            // An explicit socket needs nc; a session's path is known only remotely.
            None if socket.is_some() => Proxy::Netcat,
            None if user_session => Proxy::Native,
            None => Proxy::Auto,
        };
        let socket = match socket {
            Some(s) => s.to_string(),
            None => {
                if uri.mode()? == Mode::Direct {
                    return Err(ClientError::Uri(
                        "Cannot use direct socket mode for ssh transport".into(),
                    ));
                }
                let suffix = if readonly { "sock-ro" } else { "sock" };
                if user_session {
                    format!("{}/libvirt-sock", user_runtime_dir())
                } else {
                    format!("/var/run/libvirt/libvirt-{suffix}")
                }
            }
        };
        let command = remote_command(
            proxy,
            param(uri, "netcat"),
            &socket,
            &driver_uri(uri),
            readonly,
        )?;
        let mut args = Vec::new();
        if let Some(p) = uri.port {
            args.extend(["-p".to_string(), p.to_string()]);
        }
        if let Some(u) = &uri.user {
            args.extend(["-l".to_string(), u.clone()]);
        }
        if let Some(k) = param(uri, "keyfile") {
            args.extend(["-i".to_string(), k.to_string()]);
        }
        args.extend(["-T", "-e", "none"].map(String::from));
        if flag(uri, "no_tty")? {
            args.extend(["-o", "BatchMode=yes"].map(String::from));
        }
        if flag(uri, "no_verify")? {
            args.extend(["-o", "StrictHostKeyChecking=no"].map(String::from));
        }
        if let Some(k) = param(uri, "known_hosts") {
            args.extend(["-o".to_string(), format!("UserKnownHostsFile={k}")]);
        }
        let host = uri.host.as_deref().unwrap_or("localhost");
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        args.extend(["--".to_string(), host.to_string(), command]);
        Ok(SshCommand {
            program: param(uri, "command").unwrap_or("ssh").to_string(),
            args,
        })
    }
}

/// libvirt's runtime directory for this user (`$XDG_RUNTIME_DIR/libvirt`, else
/// `~/.cache/libvirt`), where its session sockets are.
fn user_runtime_dir() -> String {
    match std::env::var("XDG_RUNTIME_DIR") {
        Ok(d) if !d.is_empty() => format!("{d}/libvirt"),
        _ => format!(
            "{}/.cache/libvirt",
            std::env::var("HOME").unwrap_or_default()
        ),
    }
}

/// The running `ssh` of a connection: ended (SIGKILL) when the connection is dropped.
pub(crate) struct Tunnel {
    _child: tokio::process::Child,
    /// The first [`STDERR_KEPT`] bytes `ssh` wrote to its standard error.
    stderr: Arc<Mutex<Vec<u8>>>,
    /// Becomes true once `ssh` closed its standard error (it has exited).
    stderr_done: tokio::sync::watch::Receiver<bool>,
}

impl Tunnel {
    /// The error for a session that ended: what `ssh` said, as libvirt reports it.
    pub(crate) async fn ended(&self) -> ClientError {
        let mut done = self.stderr_done.clone();
        let _ = tokio::time::timeout(STDERR_WAIT, done.wait_for(|d| *d)).await;
        let said = self
            .stderr
            .lock()
            .map(|b| String::from_utf8_lossy(&b).trim_end().to_string())
            .unwrap_or_default();
        ClientError::Ssh(if said.is_empty() {
            "End of file while reading data: Input/output error".into()
        } else {
            format!("End of file while reading data: {said}: Input/output error")
        })
    }
}

/// Starts `ssh` for `uri` and returns the RPC connection over it.
pub(crate) async fn connect(
    uri: &Uri,
    readonly: bool,
) -> Result<(Connection, Tunnel), ClientError> {
    let cmd = SshCommand::for_uri(uri, readonly)?;
    let io = |e: std::io::Error| ClientError::Ssh(format!("Cannot run ssh: {}", os_text(&e)));
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(io)?;
    let theirs_out = theirs.try_clone().map_err(io)?;
    let mut child = tokio::process::Command::new(&cmd.program)
        .args(&cmd.args)
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::from(OwnedFd::from(theirs_out)))
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            ClientError::Ssh(format!(
                "Cannot find '{}' in path: {}",
                cmd.program,
                os_text(&e)
            ))
        })?;
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let (done_tx, stderr_done) = tokio::sync::watch::channel(false);
    if let Some(mut err) = child.stderr.take() {
        let kept = Arc::clone(&stderr);
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            while let Ok(n) = err.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                if let Ok(mut k) = kept.lock() {
                    let room = STDERR_KEPT.saturating_sub(k.len());
                    k.extend_from_slice(&buf[..n.min(room)]);
                }
            }
            done_tx.send_replace(true);
        });
    } else {
        done_tx.send_replace(true);
    }
    ours.set_nonblocking(true).map_err(io)?;
    let stream = tokio::net::UnixStream::from_std(ours).map_err(io)?;
    Ok((
        Connection::from_stream(stream),
        Tunnel {
            _child: child,
            stderr,
            stderr_done,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(uri: &str, readonly: bool) -> SshCommand {
        SshCommand::for_uri(&Uri::parse(uri).unwrap(), readonly).unwrap()
    }

    const NC: &str = "if 'nc' -q 2>&1 | grep \"requires an argument\" >/dev/null 2>&1; \
                      then ARG=-q0;else ARG=;fi;'nc' $ARG -U ";

    // The command lines below are what virsh 9.0 (Debian 12) ran for these URIs, seen
    // through `command=` pointing at a script that printed its arguments.
    #[test]
    fn command_lines_as_virsh_runs_them() {
        let c = cmd("qemu+ssh://root@h:2222/system?x=1", false);
        assert_eq!(c.program, "ssh");
        assert_eq!(
            c.args,
            [
                "-p",
                "2222",
                "-l",
                "root",
                "-T",
                "-e",
                "none",
                "--",
                "h",
                &format!(
                    "sh -c 'which virt-ssh-helper 1>/dev/null 2>&1; if test $? = 0; then     \
                     virt-ssh-helper '''\\''qemu:///system?x=1'\\''''; else    \
                     {NC}/var/run/libvirt/libvirt-sock; fi'"
                )
            ]
        );
        let c = cmd("qemu+ssh://h/system", true);
        assert_eq!(
            c.args[5],
            format!(
                "sh -c 'which virt-ssh-helper 1>/dev/null 2>&1; if test $? = 0; then     \
                 virt-ssh-helper -r 'qemu:///system'; else    \
                 {NC}/var/run/libvirt/libvirt-sock-ro; fi'"
            )
        );
        let c = cmd("qemu+ssh://h/system?socket=/x/y", false);
        assert_eq!(c.args[5], format!("sh -c '{NC}/x/y'"));
        let c = cmd("qemu+ssh://h/system?netcat=/bin/nc2", false);
        assert_eq!(
            c.args[5],
            "sh -c 'if '/bin/nc2' -q 2>&1 | grep \"requires an argument\" >/dev/null 2>&1; \
             then ARG=-q0;else ARG=;fi;'/bin/nc2' $ARG -U /var/run/libvirt/libvirt-sock'"
        );
        let c = cmd("qemu+ssh://h/system?proxy=native&socket=/x/y", false);
        assert_eq!(c.args[5], "sh -c 'virt-ssh-helper 'qemu:///system''");
        let c = cmd(
            "qemu+ssh://h/system?keyfile=/k&no_verify=1&no_tty=1&known_hosts=/kh",
            false,
        );
        assert_eq!(
            c.args[..11],
            [
                "-i",
                "/k",
                "-T",
                "-e",
                "none",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/kh"
            ]
        );
        let c = cmd(
            "qemu+ssh://[::1]:22/system?a=b%20c&command=/bin/myssh",
            false,
        );
        assert_eq!(c.program, "/bin/myssh");
        assert_eq!(c.args[..5], ["-p", "22", "-T", "-e", "none"]);
        assert_eq!(c.args[6], "::1");
        assert!(c.args[7].contains("virt-ssh-helper '''\\''qemu:///system?a=b%20c'\\''''"));
        let c = cmd("qemu+ssh://h/system?mode=legacy", false);
        assert!(c.args[5].contains("virt-ssh-helper 'qemu:///system';"));
    }

    #[test]
    fn refusals_as_virsh_says_them() {
        let err = |u: &str| {
            SshCommand::for_uri(&Uri::parse(u).unwrap(), false)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("qemu+ssh://h/system?netcat=/bin/nc2&proxy=native"),
            "netcat path not valid with native proxy mode"
        );
        assert_eq!(
            err("qemu+ssh://h/system?proxy=bogus"),
            "Unnkown proxy type 'bogus'"
        );
        assert_eq!(
            err("qemu+ssh://h/system?mode=direct"),
            "Cannot use direct socket mode for ssh transport"
        );
        assert_eq!(
            err("qemu+ssh://h/system?no_verify=yes"),
            "Failed to parse value of URI component no_verify"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("qemu:///system"), "qemu:///system");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote_twice("a b"), "''\\''a b'\\'''");
        assert_eq!(uri_encode("b c/d"), "b%20c%2Fd");
    }
}
