//! The unmodified `virt-admin` (libvirt-clients) against `vireod`'s admin socket: servers,
//! clients, client credentials, disconnecting a client, the worker pool, log settings.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use vireo_proto::admin::{procs as admin_procs, ADMIN_PROGRAM, ADMIN_VERSION};
use vireo_proto::header::{encode_frame, Header};
use vireo_proto::remote::procs;
use vireo_proto::{RemoteError, Status, REMOTE_PROGRAM};
use vireo_tests::{fails, ok, run_cmd, Daemon};

fn admin_socket(d: &Daemon) -> PathBuf {
    d.root.join("run/vireo/vireod-admin-sock")
}

/// virt-admin accepts any scheme once the URI names the socket; the daemon's name reads best.
fn admin_uri(d: &Daemon) -> String {
    format!("vireod:///system?socket={}", admin_socket(d).display())
}

fn virt_admin(d: &Daemon, args: &[&str]) -> std::process::Output {
    let uri = admin_uri(d);
    run_cmd("virt-admin", &[&["-c", uri.as_str()], args].concat())
}

/// `key : value` lines of virt-admin's info commands.
fn fields(out: &str) -> HashMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Client ids in `srv-clients-list` output (the rows under the header).
fn client_ids(out: &str) -> Vec<u64> {
    out.lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

fn call(prog: u32, vers: u32, proc_: i32, serial: u32, payload: &[u8]) -> Vec<u8> {
    encode_frame(&Header::call(prog, vers, proc_, serial), payload)
}

fn read_frame(s: &mut UnixStream) -> Option<(Header, Vec<u8>)> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let n = (u32::from_be_bytes(len) as usize).checked_sub(4)?;
    let mut f = vec![0u8; n];
    s.read_exact(&mut f).ok()?;
    let h = Header::decode(f.get(..24)?.try_into().ok()?);
    Some((h, f[24..].to_vec()))
}

/// A raw client of the daemon's main socket (or read-only one), known to be registered:
/// it made a call and got the answer.
fn raw_client(path: PathBuf) -> UnixStream {
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&call(REMOTE_PROGRAM, 1, procs::AUTH_LIST, 0, &[]))
        .unwrap();
    let (h, _) = read_frame(&mut s).expect("AUTH_LIST reply");
    assert_eq!(h.status, Status::Ok as i32);
    s
}

fn expect_eof(s: &mut UnixStream) {
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the connection should be closed, got {other:?}"),
    }
}

#[test]
fn servers_clients_and_disconnect() {
    let d = Daemon::start();
    let meta = std::fs::metadata(admin_socket(&d)).expect("admin socket");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);

    let list = ok(&virt_admin(&d, &["srv-list"]));
    assert!(list.contains(" 0    vireod"), "{list}");
    assert!(list.contains(" 1    admin"), "{list}");
    let v = ok(&virt_admin(&d, &["version"]));
    assert!(v.contains("Running against daemon: 9.0.0"), "{v}");

    // No client yet on the daemon's own server.
    assert!(client_ids(&ok(&virt_admin(&d, &["srv-clients-list", "vireod"]))).is_empty());

    let mut rw = raw_client(d.socket());
    let out = ok(&virt_admin(&d, &["srv-clients-list", "vireod"]));
    let ids = client_ids(&out);
    assert_eq!(ids.len(), 1, "{out}");
    assert!(out.contains("unix"), "{out}");
    let id = ids[0].to_string();

    let info = fields(&ok(&virt_admin(&d, &["client-info", "vireod", &id])));
    let (uid, gid) = (
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw(),
    );
    assert_eq!(info["id"], id, "{info:?}");
    assert_eq!(info["transport"], "unix", "{info:?}");
    assert_eq!(info["readonly"], "no", "{info:?}");
    assert_eq!(info["unix_user_id"], uid.to_string(), "{info:?}");
    assert_eq!(info["unix_group_id"], gid.to_string(), "{info:?}");
    assert_eq!(
        info["unix_process_id"],
        std::process::id().to_string(),
        "{info:?}"
    );
    if uid == 0 {
        assert_eq!(info["unix_user_name"], "root", "{info:?}");
    }
    assert!(info.contains_key("connection_time"), "{info:?}");

    // A read-only client says so.
    let _ro = raw_client(d.socket_ro());
    let ids = client_ids(&ok(&virt_admin(&d, &["srv-clients-list", "vireod"])));
    assert_eq!(ids.len(), 2, "{ids:?}");
    let ro_id = ids.iter().find(|i| i.to_string() != id).expect("ro id");
    let info = fields(&ok(&virt_admin(
        &d,
        &["client-info", "vireod", &ro_id.to_string()],
    )));
    assert_eq!(info["readonly"], "yes", "{info:?}");

    // The admin server lists virt-admin itself (and perhaps an earlier virt-admin whose
    // hang-up the daemon has not read yet).
    let admins = client_ids(&ok(&virt_admin(&d, &["srv-clients-list", "admin"])));
    assert!(!admins.is_empty(), "{admins:?}");

    // Disconnecting really closes the connection.
    let out = ok(&virt_admin(&d, &["client-disconnect", "vireod", &id]));
    assert!(
        out.contains(&format!("Client '{id}' disconnected")),
        "{out}"
    );
    expect_eof(&mut rw);
    let ids = client_ids(&ok(&virt_admin(&d, &["srv-clients-list", "vireod"])));
    assert_eq!(ids, vec![*ro_id]);

    let e = fails(&virt_admin(&d, &["client-info", "vireod", &id]));
    assert!(e.contains("Client not found"), "{e}");
    let e = fails(&virt_admin(&d, &["client-disconnect", "vireod", &id]));
    assert!(e.contains("Client not found"), "{e}");
    let e = fails(&virt_admin(&d, &["srv-clients-list", "nosuch"]));
    assert!(e.contains("Server not found"), "{e}");

    // The daemon still serves everyone else.
    let mut again = raw_client(d.socket());
    again
        .write_all(&call(REMOTE_PROGRAM, 1, procs::AUTH_LIST, 1, &[]))
        .unwrap();
    assert!(read_frame(&mut again).is_some());
}

#[test]
fn threadpool_and_client_limits() {
    let d = Daemon::start();
    let _c = raw_client(d.socket());
    for server in ["vireod", "admin"] {
        let out = ok(&virt_admin(&d, &["srv-threadpool-info", server]));
        let f = fields(&out);
        let num = |k: &str| -> u64 {
            f.get(k)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{k} missing or not a number:\n{out}"))
        };
        let n = num("nWorkers");
        assert!(n >= 1, "{out}");
        assert_eq!(num("minWorkers"), n, "{out}");
        assert_eq!(num("maxWorkers"), n, "{out}");
        assert_eq!(num("prioWorkers"), 0, "{out}");
        assert!(num("freeWorkers") < n, "{out}");
        num("jobQueueDepth");
    }

    let out = ok(&virt_admin(&d, &["srv-clients-info", "vireod"]));
    let f = fields(&out);
    assert_eq!(f["nclients_max"], "5000", "{out}");
    assert_eq!(f["nclients"], "1", "{out}");

    let e = fails(&virt_admin(
        &d,
        &["srv-threadpool-set", "vireod", "--max-workers", "10"],
    ));
    assert!(e.contains("Operation not supported"), "{e}");
    let e = fails(&virt_admin(
        &d,
        &["srv-clients-set", "vireod", "--max-clients", "10"],
    ));
    assert!(e.contains("Operation not supported"), "{e}");
}

#[test]
fn log_filters_and_outputs_round_trip() {
    let d = Daemon::start();
    let get_filters = || ok(&virt_admin(&d, &["daemon-log-filters"]));
    let get_outputs = || ok(&virt_admin(&d, &["daemon-log-outputs"]));
    assert_eq!(get_filters().trim(), "Logging filters:");
    assert_eq!(get_outputs().trim(), "Logging outputs: 3:stderr");

    ok(&virt_admin(
        &d,
        &["daemon-log-filters", "--filters", "1:qemu  3:rpc 4:+util"],
    ));
    assert_eq!(
        get_filters().trim(),
        "Logging filters: 1:qemu 3:rpc 4:+util"
    );
    for bad in ["qemu", "7:qemu", "1:"] {
        let e = fails(&virt_admin(&d, &["daemon-log-filters", "--filters", bad]));
        assert!(e.contains("invalid argument"), "{bad}: {e}");
    }
    // A refused setting leaves the old one.
    assert_eq!(
        get_filters().trim(),
        "Logging filters: 1:qemu 3:rpc 4:+util"
    );
    ok(&virt_admin(&d, &["daemon-log-filters", "--filters", ""]));
    assert_eq!(get_filters().trim(), "Logging filters:");

    let file = d.root.join("vireod-debug.log");
    let outputs = format!("1:file:{} 3:stderr", file.display());
    ok(&virt_admin(
        &d,
        &["daemon-log-outputs", "--outputs", &outputs],
    ));
    assert_eq!(get_outputs().trim(), format!("Logging outputs: {outputs}"));
    for bad in ["1:stdout", "1:file:relative.log", "stderr"] {
        let e = fails(&virt_admin(&d, &["daemon-log-outputs", "--outputs", bad]));
        assert!(e.contains("invalid argument"), "{bad}: {e}");
    }
    // Empty means the default again.
    ok(&virt_admin(&d, &["daemon-log-outputs", "--outputs", ""]));
    assert_eq!(get_outputs().trim(), "Logging outputs: 3:stderr");
}

/// Sends `frame` and expects the error reply to `serial` saying `text`.
fn expect_error(s: &mut UnixStream, frame: Vec<u8>, serial: u32, text: &str) {
    s.write_all(&frame).unwrap();
    let (h, p) = read_frame(s).expect("an error reply");
    assert_eq!(h.serial, serial);
    assert_eq!(h.status, Status::Error as i32);
    let e: RemoteError = vireo_xdr::from_bytes(&p).unwrap();
    assert!(e.text().contains(text), "{:?} lacks {text:?}", e.text());
}

#[test]
fn raw_admin_protocol_errors() {
    let d = Daemon::start();
    let mut s = UnixStream::connect(admin_socket(&d)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Before CONNECT_OPEN.
    expect_error(
        &mut s,
        call(
            ADMIN_PROGRAM,
            ADMIN_VERSION,
            admin_procs::CONNECT_LIST_SERVERS,
            1,
            &[0; 8],
        ),
        1,
        "not open",
    );
    // Open with flags we do not know.
    expect_error(
        &mut s,
        call(
            ADMIN_PROGRAM,
            ADMIN_VERSION,
            admin_procs::CONNECT_OPEN,
            2,
            &[0, 0, 0, 1],
        ),
        2,
        "unsupported flags",
    );
    s.write_all(&call(
        ADMIN_PROGRAM,
        ADMIN_VERSION,
        admin_procs::CONNECT_OPEN,
        3,
        &[0; 4],
    ))
    .unwrap();
    let (h, _) = read_frame(&mut s).unwrap();
    assert_eq!(h.status, Status::Ok as i32);
    expect_error(
        &mut s,
        call(ADMIN_PROGRAM, ADMIN_VERSION, 9999, 4, &[]),
        4,
        "unknown procedure: 9999",
    );
    // A threadpool-set call whose params array claims more than it carries.
    let mut lie = vireo_xdr::to_bytes(&"vireod".to_string());
    lie.extend_from_slice(&u32::MAX.to_be_bytes());
    expect_error(
        &mut s,
        call(
            ADMIN_PROGRAM,
            ADMIN_VERSION,
            admin_procs::SERVER_SET_THREADPOOL_PARAMETERS,
            5,
            &lie,
        ),
        5,
        "Unable to decode",
    );
    // The admin program is not served on the main socket, nor REMOTE on the admin one.
    expect_error(
        &mut s,
        call(REMOTE_PROGRAM, 1, procs::AUTH_LIST, 6, &[]),
        6,
        "Cannot find program",
    );
    let mut main = raw_client(d.socket());
    main.write_all(&call(
        ADMIN_PROGRAM,
        ADMIN_VERSION,
        admin_procs::CONNECT_OPEN,
        7,
        &[0; 4],
    ))
    .unwrap();
    let (h, _) = read_frame(&mut main).unwrap();
    assert_eq!(h.status, Status::Error as i32);
}
