//! The split into per-driver daemons: routing, secondary drivers with forwarded identity,
//! configuration files, socket activation and idle exit.

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use vireo_proto::remote::{procs, ConnectOpenArgs, ConnectSetIdentityArgs};
use vireo_proto::typed::{TypedParam, TypedValue};
use vireo_rpc::client::{CallError, Connection};
use vireo_tests::{bin, fails, ok, run_cmd, wait_exit, Daemon, Layout};

#[test]
fn stopping_networkd_fails_only_network_calls() {
    let mut d = Daemon::start_in(Layout::Modular);
    ok(&d.virsh(&["define", vireo_tests::data("minimal.xml").to_str().unwrap()]));
    // Network calls reach vireo-networkd.
    let list = ok(&d.virsh(&["net-list", "--all"]));
    assert!(list.contains(" default "), "{list}");
    d.stop_one("vireo-networkd");
    let err = fails(&d.virsh(&["net-list", "--all"]));
    assert!(err.contains("cannot reach vireo-networkd"), "{err}");
    assert!(err.contains("is it running?"), "{err}");
    // Everything else still works.
    assert!(ok(&d.virsh(&["list", "--all"])).contains("vec1"));
    assert!(ok(&d.virsh(&["dominfo", "vec1"])).contains("shut off"));
    // Starting it again heals, with nothing else restarted.
    d.start_one("vireo-networkd", &[]);
    let list = ok(&d.virsh(&["net-list", "--all"]));
    assert!(list.contains(" default "), "{list}");
}

#[test]
fn routing_by_driver_and_mode_survives_stale_sockets() {
    let d = Daemon::start_in(Layout::Monolithic);
    let run = d.run_dir();
    // A socket file with nobody behind it where vireo-qemud would listen.
    let stale = run.join("vireo-qemud-sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let vireo = bin("vireo");
    let routed = |uri: &str| {
        Command::new(&vireo)
            .args(["-c", uri, "list", "--all"])
            .env("VIREO_RUN_DIR", &run)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // auto: vireo-qemud does not answer, so the legacy socket (vireod) is used.
    ok(&routed("qemu:///system"));
    // direct: only vireo-qemud, and the error says so.
    let err = fails(&routed("qemu:///system?mode=direct"));
    assert!(err.contains("cannot connect to vireo-qemud"), "{err}");
    assert!(err.contains("start it with `vireo-qemud`"), "{err}");
    ok(&routed("qemu:///system?mode=legacy"));
    // The mode can come from the client configuration too.
    let conf = d.root.join("client.conf");
    std::fs::write(&conf, "remote_mode = \"direct\"\n").unwrap();
    let o = Command::new(&vireo)
        .args(["-c", "qemu:///system", "list"])
        .env("VIREO_RUN_DIR", &run)
        .env("VIREO_CLIENT_CONF", &conf)
        .output()
        .unwrap();
    assert!(!o.status.success());
}

#[test]
fn network_uri_goes_to_networkd() {
    let d = Daemon::start_in(Layout::Modular);
    let run = d.run_dir();
    let o = Command::new(bin("vireo"))
        .args(["-c", "network:///system?mode=direct", "hostname"])
        .env("VIREO_RUN_DIR", &run)
        .output()
        .unwrap();
    assert!(!ok(&o).trim().is_empty());
    // networkd is not the hypervisor daemon.
    let o = Command::new(bin("vireo"))
        .args(["-c", "network:///system?mode=direct", "list"])
        .env("VIREO_RUN_DIR", &run)
        .output()
        .unwrap();
    let err = fails(&o);
    assert!(err.contains("served by vireo-qemud"), "{err}");
}

fn identity(token: Option<&str>, uid: u64) -> ConnectSetIdentityArgs {
    let mut params = vec![TypedParam::new("unix-user-id", TypedValue::ULLong(uid))];
    if let Some(t) = token {
        params.push(TypedParam::new(
            "vireo.identity-token",
            TypedValue::String(t.into()),
        ));
    }
    ConnectSetIdentityArgs {
        params: params.into(),
        flags: 0,
    }
}

#[test]
fn forged_identities_are_refused() {
    let d = Daemon::start_in(Layout::Modular);
    let token = std::fs::read_to_string(d.config_dir().join("identity-token")).unwrap();
    let sock = d.run_dir().join("vireo-networkd-sock");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for forged in [None, Some("not-the-token")] {
            let c = Connection::connect(&sock).await.unwrap();
            let r = c
                .call::<_, ()>(procs::CONNECT_SET_IDENTITY, &identity(forged, 4242))
                .await;
            match r {
                Err(CallError::Remote(e)) => {
                    assert!(e.text().contains("forged identity"), "{e}");
                    assert_eq!(e.code, 29);
                }
                other => panic!("forged identity accepted: {other:?}"),
            }
        }
        // With the token it is accepted, but only before CONNECT_OPEN.
        let c = Connection::connect(&sock).await.unwrap();
        c.call::<_, ()>(
            procs::CONNECT_SET_IDENTITY,
            &identity(Some(token.trim()), 4242),
        )
        .await
        .unwrap();
        c.call::<_, ()>(
            procs::CONNECT_OPEN,
            &ConnectOpenArgs {
                name: Some("network:///system".into()),
                flags: 0,
            },
        )
        .await
        .unwrap();
        let late = c
            .call::<_, ()>(
                procs::CONNECT_SET_IDENTITY,
                &identity(Some(token.trim()), 1),
            )
            .await;
        assert!(late.is_err());
    });
    // The token file is for root's eyes only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.config_dir().join("identity-token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn config_file_settings_apply_and_bad_values_are_reported() {
    let mut d = Daemon::start_in(Layout::Monolithic);
    d.terminate();
    let conf = d.config_dir().join("vireod.conf");
    std::fs::write(
        &conf,
        "# test settings\nunix_sock_ro_perms = \"0700\"\nmax_clients = 1\nfrobnicate = 3\n",
    )
    .unwrap();
    d.restart();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.socket_ro())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    assert!(
        d.log()
            .contains("vireod.conf:4: unknown setting 'frobnicate'"),
        "{}",
        d.log()
    );
    // max_clients = 1: a second client is turned away.
    let mut a = std::os::unix::net::UnixStream::connect(d.socket()).unwrap();
    let hello = vireo_proto::header::encode_frame(
        &vireo_proto::Header::call(0x2000_8086, 1, procs::AUTH_LIST, 0),
        &[],
    );
    use std::io::{Read, Write};
    a.write_all(&hello).unwrap();
    let mut buf = [0u8; 64];
    assert!(a.read(&mut buf).unwrap() > 0);
    let mut b = std::os::unix::net::UnixStream::connect(d.socket()).unwrap();
    let _ = b.write_all(&hello);
    b.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(b.read(&mut buf).unwrap_or(0), 0);
    drop(a);
    d.terminate();
    // A bad value stops the daemon with the file and line.
    std::fs::write(&conf, "max_clients = \"many\"\n").unwrap();
    let o = Command::new(bin("vireod"))
        .arg("--root")
        .arg(&d.root)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("vireod.conf:1: max_clients: expected an integer"),
        "{err}"
    );
}

#[test]
fn idle_exit_and_socket_activation() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let run = root.join("run/vireo");
    std::fs::create_dir_all(&run).unwrap();
    // The sockets systemd would hold.
    let rw = std::os::unix::net::UnixListener::bind(run.join("vireo-networkd-sock")).unwrap();
    let ro = std::os::unix::net::UnixListener::bind(run.join("vireo-networkd-sock-ro")).unwrap();
    let start = || {
        let (rw_fd, ro_fd) = (rw.as_raw_fd(), ro.as_raw_fd());
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("LISTEN_PID=$$ LISTEN_FDS=2 LISTEN_FDNAMES=vireo-networkd.socket:vireo-networkd-ro.socket exec \"$0\" \"$@\"")
            .arg(bin("vireo-networkd"))
            .args(["--root", root.to_str().unwrap(), "--timeout", "1"])
            .stdin(Stdio::null());
        // SAFETY: dup2 is async-signal-safe; both fds are open listening sockets.
        unsafe {
            cmd.pre_exec(move || {
                // Through fds 5 and 6 first, in case the listeners already sit on 3 or 4.
                for (from, tmp) in [(rw_fd, 5), (ro_fd, 6)] {
                    if libc::dup2(from, tmp) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                for (tmp, to) in [(5, 3), (6, 4)] {
                    // dup2 leaves the new fd without FD_CLOEXEC, so it survives exec.
                    if libc::dup2(tmp, to) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        cmd.spawn().unwrap()
    };
    let mut daemon = start();
    // Served on the inherited socket.
    let uri = format!(
        "network+unix:///system?socket={}",
        run.join("vireo-networkd-sock").display()
    );
    let vireo = bin("vireo");
    ok(&run_cmd(vireo.to_str().unwrap(), &["-c", &uri, "hostname"]));
    // Idle for the timeout: it leaves, cleanly, leaving the sockets to systemd.
    assert!(
        wait_exit(daemon.id() as i32, Duration::from_secs(20)),
        "no idle exit"
    );
    assert!(daemon.wait().unwrap().success());
    assert!(run.join("vireo-networkd-sock").exists());
    // A client arrives while nobody serves: its connection waits in the socket's backlog,
    // the way systemd sees it, and a new daemon on the same socket answers it.
    let client = std::thread::spawn({
        let uri = uri.clone();
        let vireo = vireo.clone();
        move || run_cmd(vireo.to_str().unwrap(), &["-c", &uri, "hostname"])
    });
    let mut daemon = start();
    ok(&client.join().unwrap());
    let _ = daemon.kill();
    let _ = daemon.wait();
}

#[test]
fn forwarded_calls_carry_the_callers_uid() {
    let d = Daemon::start_in(Layout::Modular);
    // Let an unprivileged user reach the read-only socket.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&d.root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = vireo_tests::tests_dir().join("python/hold_network_call.py");
    let mut held = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            vireo_tests::python3(),
        ])
        .arg(&script)
        .arg(d.uri_ro())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(held.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "READY");
    // vireo-networkd sees vireo-qemud's connection as the unprivileged caller.
    let admin = format!(
        "vireod:///system?socket={}",
        d.run_dir().join("vireo-networkd-admin-sock").display()
    );
    let list = ok(&run_cmd(
        "virt-admin",
        &["-c", &admin, "srv-clients-list", "vireo-networkd"],
    ));
    let ids: Vec<String> = list
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect();
    let infos: Vec<String> = ids
        .iter()
        .map(|id| {
            ok(&run_cmd(
                "virt-admin",
                &["-c", &admin, "client-info", "vireo-networkd", id],
            ))
        })
        .collect();
    assert!(
        infos
            .iter()
            .any(|i| i.contains("unix_user_id") && i.contains("65534")),
        "no client acting for uid 65534 in {infos:?}"
    );
    drop(held.stdin.take());
    let _ = held.wait();
}

#[test]
fn proxy_falls_back_to_forwarding_frames() {
    let d = Daemon::start_in(Layout::Proxied);
    ok(&d.virsh(&["define", vireo_tests::data("minimal.xml").to_str().unwrap()]));
    // Without vireo-qemud's handoff socket the proxy passes every frame on itself.
    std::fs::remove_file(d.run_dir().join("vireo-qemud-handoff-sock")).unwrap();
    let list = ok(&d.virsh(&["list", "--all"]));
    assert!(list.contains("vec1"), "{list}");
    assert!(ok(&d.virsh(&["dominfo", "vec1"])).contains("shut off"));
    let list = ok(&d.virsh(&["net-list", "--all"]));
    assert!(list.contains(" default "), "{list}");
    // And the host interfaces, from vireo-interfaced.
    let list = ok(&d.virsh(&["iface-list", "--all"]));
    assert!(list.contains(" lo "), "{list}");
}

#[test]
fn log_filters_and_outputs_set_live_steer_the_log() {
    let d = Daemon::start_in(Layout::Monolithic);
    let admin = format!(
        "vireod:///system?socket={}",
        d.run_dir().join("vireod-admin-sock").display()
    );
    let file = d.root.join("debug.log");
    let out = format!("1:file:{}", file.display());
    ok(&run_cmd(
        "virt-admin",
        &["-c", &admin, "daemon-log-outputs", "--outputs", &out],
    ));
    ok(&run_cmd(
        "virt-admin",
        &["-c", &admin, "daemon-log-filters", "--filters", "1:rpc"],
    ));
    ok(&d.virsh(&["list", "--all"]));
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(text.contains("DEBUG: vireo_rpc::server: client"), "{text}");
    // Raised to errors only: connections are no longer logged.
    ok(&run_cmd(
        "virt-admin",
        &["-c", &admin, "daemon-log-filters", "--filters", "4:rpc"],
    ));
    let before = std::fs::read_to_string(&file).unwrap_or_default().len();
    ok(&d.virsh(&["list", "--all"]));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap_or_default().len(),
        before
    );
}
