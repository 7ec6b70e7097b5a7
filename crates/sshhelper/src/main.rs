//! `virt-ssh-helper [-r|--readonly] URI` — what `virsh -c qemu+ssh://HOST/system` (and any
//! libvirt client, and Vireo's own) runs on the remote host, found there in `PATH`: libvirt's
//! client runs `sh -c 'which virt-ssh-helper …; if …; then virt-ssh-helper URI; else nc -U
//! SOCKET; fi'` over ssh, URI being the connection's URI without its host (`qemu:///system`).
//!
//! It connects to the socket of the Vireo daemon that serves URI, by the same rules as
//! Vireo's client (`socket=`, `mode=`, system or session, `VIREO_RUN_DIR`, the driver's own
//! daemon first, then the legacy socket of `vireod` / `vireo-proxyd`), then libvirt's own
//! socket paths (`/var/run/libvirt/virtqemud-sock`, `libvirt-sock`: a drop-in Vireo, or
//! libvirt's daemons), and relays bytes between its standard input and output and that
//! socket until either side closes. It never looks at the bytes.

use std::fs::File;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vireo_proto::error::os_text;

use thiserror::Error;
use vireo_client::Uri;

const USAGE: &str = "Usage:
  virt-ssh-helper [OPTION…] URI - libvirt socket proxy

Help Options:
  -h, --help        Show help options

Application Options:
  -r, --readonly    Connect read-only
  -V, --version     Display version information";

#[derive(Debug, Error)]
enum HelperError {
    #[error("option parsing failed: {0}")]
    Option(String),
    #[error("expected a URI")]
    NoUri,
    #[error("cannot parse '{uri}': {why}")]
    Parse { uri: String, why: String },
    #[error("unexpected URI transport '{0}'")]
    Transport(String),
    #[error("cannot connect to '{path}': Failed to connect socket to '{path}': {err}")]
    Connect { path: String, err: String },
    #[error("could not proxy traffic: {0}")]
    Relay(String),
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    Relay { uri: String, readonly: bool },
    Help,
    Version,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Action, HelperError> {
    let mut readonly = false;
    let mut version = false;
    let mut rest = Vec::new();
    let mut options = true;
    for a in args {
        match a.as_str() {
            "--" if options => options = false,
            "-r" | "--readonly" if options => readonly = true,
            "-V" | "--version" if options => version = true,
            "-h" | "--help" | "-?" if options => return Ok(Action::Help),
            s if options && s.starts_with('-') && s.len() > 1 => {
                return Err(HelperError::Option(format!("Unknown option {s}")))
            }
            _ => rest.push(a),
        }
    }
    if version {
        return Ok(Action::Version);
    }
    match <[String; 1]>::try_from(rest) {
        Ok([uri]) => Ok(Action::Relay { uri, readonly }),
        Err(_) => Err(HelperError::NoUri),
    }
}

/// The sockets to try for `uri`, in order.
fn candidates(uri_text: &str, readonly: bool) -> Result<Vec<PathBuf>, HelperError> {
    let uri = Uri::parse(uri_text).map_err(|e| HelperError::Parse {
        uri: uri_text.to_string(),
        why: e.to_string(),
    })?;
    match uri.transport.as_deref() {
        None | Some("unix") if uri.host.is_none() => {}
        _ => return Err(HelperError::Transport(uri_text.to_string())),
    }
    let mut v: Vec<PathBuf> = uri
        .sockets(readonly)
        .map_err(|e| HelperError::Parse {
            uri: uri_text.to_string(),
            why: e.to_string(),
        })?
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    if uri.param("socket").is_none() {
        v.extend(libvirt_sockets(&uri, readonly));
    }
    Ok(v)
}

/// libvirt's own socket paths for a system URI: the driver's daemon (`virtqemud-sock`),
/// then the monolithic / proxy socket (`libvirt-sock`), as libvirt's helper picks them.
fn libvirt_sockets(uri: &Uri, readonly: bool) -> Vec<PathBuf> {
    if uri.path != "/system" {
        return Vec::new();
    }
    let suffix = if readonly { "sock-ro" } else { "sock" };
    let dir = Path::new("/var/run/libvirt");
    vec![
        dir.join(format!("virt{}d-{suffix}", uri.driver)),
        dir.join(format!("libvirt-{suffix}")),
    ]
}

/// The first of `paths` that accepts a connection.
fn connect(paths: &[PathBuf]) -> Result<UnixStream, HelperError> {
    let mut first = None;
    for p in paths {
        match UnixStream::connect(p) {
            Ok(s) => return Ok(s),
            Err(e) => {
                first.get_or_insert(HelperError::Connect {
                    path: p.display().to_string(),
                    err: os_text(&e),
                });
            }
        }
    }
    Err(first.unwrap_or(HelperError::NoUri))
}

/// What one read may take (libvirt's helper buffers 1 MiB each way).
const CHUNK: usize = 256 * 1024;

/// Copies `from` to `to` as the bytes come, until `from` ends. Plain reads and writes:
/// `std::io::copy` would splice between a pipe and the socket, and a splice may hold what it
/// has read while it waits for more — a request sits in the kernel while its sender waits for
/// the reply.
fn pump(mut from: impl Read, mut to: impl Write) -> std::io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
    }
}

/// Copies `input` to the socket and the socket to `output` (unbuffered) until either side
/// reaches its end or fails.
fn relay(input: File, output: File, sock: UnixStream) -> Result<(), HelperError> {
    let to_daemon = sock
        .try_clone()
        .map_err(|e| HelperError::Relay(os_text(&e)))?;
    let from_daemon = sock;
    let (tx, rx) = std::sync::mpsc::channel();
    let tx_in = tx.clone();
    std::thread::spawn(move || {
        let r = pump(input, &to_daemon);
        let _ = to_daemon.shutdown(Shutdown::Write);
        let _ = tx_in.send(r.map_err(|e| format!("cannot read from stdin: {}", os_text(&e))));
    });
    std::thread::spawn(move || {
        let r = pump(&from_daemon, output);
        let _ = tx.send(r.map_err(|e| format!("cannot write to stdout: {}", os_text(&e))));
    });
    // The first side to end ends the session (the other thread goes with the process).
    match rx.recv() {
        Ok(Err(e)) => Err(HelperError::Relay(e)),
        _ => Ok(()),
    }
}

/// Our standard input and output as files of their own (no buffering in between).
fn stdio() -> Result<(File, File), HelperError> {
    let dup = |fd: std::os::fd::BorrowedFd<'_>| {
        fd.try_clone_to_owned()
            .map(File::from)
            .map_err(|e| HelperError::Relay(os_text(&e)))
    };
    Ok((
        dup(std::io::stdin().as_fd())?,
        dup(std::io::stdout().as_fd())?,
    ))
}

fn run(args: Vec<String>) -> Result<(), HelperError> {
    match parse_args(args)? {
        Action::Help => {
            println!("{USAGE}");
            Ok(())
        }
        Action::Version => {
            println!("virt-ssh-helper (vireo) {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Action::Relay { uri, readonly } => {
            let sock = connect(&candidates(&uri, readonly)?)?;
            let (input, output) = stdio()?;
            relay(input, output, sock)
        }
    }
}

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("virt-ssh-helper: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn command_line_as_libvirt_gives_it() {
        assert_eq!(
            parse_args(args(&["qemu:///system"])).unwrap(),
            Action::Relay {
                uri: "qemu:///system".into(),
                readonly: false
            }
        );
        assert_eq!(
            parse_args(args(&["-r", "qemu:///system"])).unwrap(),
            Action::Relay {
                uri: "qemu:///system".into(),
                readonly: true
            }
        );
        assert_eq!(parse_args(args(&["-V"])).unwrap(), Action::Version);
        assert!(matches!(parse_args(args(&[])), Err(HelperError::NoUri)));
        assert!(matches!(
            parse_args(args(&["a:///", "b:///"])),
            Err(HelperError::NoUri)
        ));
        assert!(matches!(
            parse_args(args(&["-x", "qemu:///system"])),
            Err(HelperError::Option(_))
        ));
    }

    #[test]
    fn sockets_follow_the_client_then_libvirt() {
        let v = candidates("qemu:///system?socket=/x/y", false).unwrap();
        assert_eq!(v, [PathBuf::from("/x/y")]);
        let v = candidates("qemu:///system?mode=legacy", true).unwrap();
        assert_eq!(v.len(), 3);
        assert!(v[0].ends_with("vireod-sock-ro"));
        assert_eq!(v[1], PathBuf::from("/var/run/libvirt/virtqemud-sock-ro"));
        assert_eq!(v[2], PathBuf::from("/var/run/libvirt/libvirt-sock-ro"));
        let v = candidates("network:///system?mode=direct", false).unwrap();
        assert!(v[0].ends_with("vireo-networkd-sock"));
        assert_eq!(v[1], PathBuf::from("/var/run/libvirt/virtnetworkd-sock"));
        assert!(matches!(
            candidates("qemu+ssh://h/system", false),
            Err(HelperError::Transport(_))
        ));
        assert!(matches!(
            candidates("qemu+tcp:///system", false),
            Err(HelperError::Transport(_))
        ));
        assert!(candidates("nonsense", false).is_err());
    }

    #[test]
    fn relays_both_ways_until_a_side_closes() {
        use std::os::fd::OwnedFd;
        let file = |s: UnixStream| File::from(OwnedFd::from(s));
        let (mut client_in, helper_in) = UnixStream::pair().unwrap();
        let (mut client_out, helper_out) = UnixStream::pair().unwrap();
        let (sock, mut daemon) = UnixStream::pair().unwrap();
        let helper = std::thread::spawn(move || relay(file(helper_in), file(helper_out), sock));
        client_in.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        daemon.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        daemon.write_all(b"HELLO").unwrap();
        client_out.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"HELLO");
        // The daemon closes: the helper ends, and the client sees the end too.
        drop(daemon);
        helper.join().unwrap().unwrap();
        let mut rest = Vec::new();
        client_out.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());

        // The client closes its side: the daemon sees the end of its input.
        let (client_in, helper_in) = UnixStream::pair().unwrap();
        let (_client_out, helper_out) = UnixStream::pair().unwrap();
        let (sock, mut daemon) = UnixStream::pair().unwrap();
        let helper = std::thread::spawn(move || relay(file(helper_in), file(helper_out), sock));
        drop(client_in);
        let mut rest = Vec::new();
        daemon.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        helper.join().unwrap().unwrap();
    }

    #[test]
    fn connect_errors_name_the_socket() {
        let e = connect(&[PathBuf::from("/nonexistent/vireo-sock")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot connect to '/nonexistent/vireo-sock': Failed to connect socket to \
             '/nonexistent/vireo-sock': No such file or directory"
        );
    }
}
