//! The QMP client against a real QEMU (qemu-system-x86_64, TCG, paused with -S).
//!
//! The monitor is a listening socket this test creates and hands to QEMU as an inherited
//! fd (`-chardev socket,fd=N,server=on,wait=off`); the test connects to it right away, the
//! connection waiting in the backlog until QEMU accepts. No polling anywhere.

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::net::UnixStream;
use tokio::process::{Child, Command};
use tokio::sync::mpsc::UnboundedReceiver;
use vireo_qmp::{Event, Qmp, QmpError};

const QEMU: &str = "/usr/bin/qemu-system-x86_64";
const STEP: Duration = Duration::from_secs(30);

/// Kills QEMU on every path out of the test.
struct QemuGuard {
    child: Child,
    log: PathBuf,
}

impl QemuGuard {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for QemuGuard {
    fn drop(&mut self) {
        // SIGKILL if still running; tokio reaps the child in the background.
        let _ = self.child.start_kill();
    }
}

/// Starts QEMU with the listening socket `listener` as its QMP monitor.
fn spawn_qemu(listener: &UnixListener, dir: &Path) -> QemuGuard {
    let fd = listener.as_raw_fd();
    let log = dir.join("qemu.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(QEMU);
    cmd.args(["-accel", "tcg", "-S", "-nodefaults", "-display", "none"])
        .args(["-machine", "pc", "-m", "64"])
        .arg("-chardev")
        .arg(format!("socket,id=mon,fd={fd},server=on,wait=off"))
        .args(["-mon", "chardev=mon,mode=control"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_file))
        .kill_on_drop(true);
    // SAFETY: the closure runs in the child between fork and exec and only calls fcntl,
    // which is async-signal-safe, on `fd`, which is open there (inherited from the parent,
    // where `listener` outlives the spawn). Clearing FD_CLOEXEC in the child only keeps
    // this one fd across exec without leaking it into other processes spawned
    // concurrently by the parent.
    unsafe {
        cmd.pre_exec(move || {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    QemuGuard { child, log }
}

async fn step<F: std::future::Future>(what: &str, qemu: &QemuGuard, fut: F) -> F::Output {
    match tokio::time::timeout(STEP, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: timed out; QEMU log:\n{}", qemu.log()),
    }
}

async fn next_event(events: &mut UnboundedReceiver<Event>, name: &str, qemu: &QemuGuard) -> Event {
    loop {
        match step(name, qemu, events.recv()).await {
            Some(e) if e.name == name => return e,
            Some(_) => {}
            None => panic!(
                "event stream ended before {name}; QEMU log:\n{}",
                qemu.log()
            ),
        }
    }
}

async fn status(qmp: &Qmp, qemu: &QemuGuard) -> String {
    let st = step("query-status", qemu, qmp.execute("query-status", None))
        .await
        .unwrap();
    st["status"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_qemu() {
    vireo_hostprog::require(QEMU);
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("mon.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let mut qemu = spawn_qemu(&listener, dir.path());
    // QEMU has its own copy of the listening socket now.
    drop(listener);
    // Waits in the backlog until QEMU accepts (refused at once if QEMU already died).
    let stream = UnixStream::connect(&sock)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}; QEMU log:\n{}", qemu.log()));
    let (qmp, greeting, mut events) = match Qmp::handshake(stream, STEP).await {
        Ok(h) => h,
        Err(e) => panic!("handshake: {e}; QEMU log:\n{}", qemu.log()),
    };
    assert!(greeting.version.0 >= 7, "{greeting:?}");
    assert!(!greeting.package.is_empty() || greeting.version.0 > 0);

    assert_eq!(status(&qmp, &qemu).await, "prelaunch");

    // Many commands at once from several tasks.
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let q = qmp.clone();
        tasks.push(tokio::spawn(async move {
            q.execute("query-status", None).await
        }));
    }
    for t in tasks {
        let st = step("concurrent query-status", &qemu, t)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(st["running"], json!(false));
    }

    // QMP errors.
    match step("nonexistent", &qemu, qmp.execute("no-such-command", None)).await {
        Err(QmpError::Command { class, .. }) => assert_eq!(class, "CommandNotFound"),
        r => panic!("{r:?}"),
    }
    match step(
        "getfd without fd",
        &qemu,
        qmp.execute("getfd", Some(json!({"fdname": "x"}))),
    )
    .await
    {
        Err(QmpError::Command { class, desc }) => {
            assert_eq!(class, "GenericError");
            assert!(desc.contains("SCM_RIGHTS"), "{desc}");
        }
        r => panic!("{r:?}"),
    }

    // cont → RESUME, running.
    let r = step("cont", &qemu, qmp.execute("cont", None))
        .await
        .unwrap();
    assert_eq!(r, json!({}));
    let ev = next_event(&mut events, "RESUME", &qemu).await;
    assert!(ev.seconds > 0);
    assert_eq!(status(&qmp, &qemu).await, "running");

    // stop → STOP, paused.
    step("stop", &qemu, qmp.execute("stop", None))
        .await
        .unwrap();
    next_event(&mut events, "STOP", &qemu).await;
    assert_eq!(status(&qmp, &qemu).await, "paused");

    // fd passing: getfd/closefd, and add-fd into an fd set.
    let (mine, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let r = step(
        "getfd",
        &qemu,
        qmp.execute_with_fd(
            "getfd",
            Some(json!({"fdname": "vireo-test"})),
            theirs.as_fd(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(r, json!({}));
    step(
        "closefd",
        &qemu,
        qmp.execute("closefd", Some(json!({"fdname": "vireo-test"}))),
    )
    .await
    .unwrap();
    match step(
        "closefd again",
        &qemu,
        qmp.execute("closefd", Some(json!({"fdname": "vireo-test"}))),
    )
    .await
    {
        Err(QmpError::Command { class, .. }) => assert_eq!(class, "GenericError"),
        r => panic!("{r:?}"),
    }
    let r = step(
        "add-fd",
        &qemu,
        qmp.execute_with_fd(
            "add-fd",
            Some(json!({"fdset-id": 7, "opaque": "vireo"})),
            theirs.as_fd(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(r["fdset-id"], json!(7));
    assert!(r["fd"].as_i64().is_some(), "{r}");
    let sets = step("query-fdsets", &qemu, qmp.execute("query-fdsets", None))
        .await
        .unwrap();
    let set = sets
        .as_array()
        .and_then(|a| a.iter().find(|s| s["fdset-id"] == json!(7)))
        .unwrap_or_else(|| panic!("fd set 7 missing: {sets}"));
    assert_eq!(set["fds"][0]["opaque"], "vireo");
    assert_eq!(set["fds"][0]["fd"], r["fd"]);
    step(
        "remove-fd",
        &qemu,
        qmp.execute("remove-fd", Some(json!({"fdset-id": 7}))),
    )
    .await
    .unwrap();
    drop((mine, theirs));

    // quit: the reply may or may not beat the hang-up.
    match step("quit", &qemu, qmp.execute("quit", None)).await {
        Ok(v) => assert_eq!(v, json!({})),
        Err(QmpError::Closed) => {}
        Err(e) => panic!("quit: {e}"),
    }
    step("closed", &qemu, qmp.closed()).await;
    assert!(qmp.is_closed());
    let ev = next_event(&mut events, "SHUTDOWN", &qemu).await;
    assert_eq!(ev.data["reason"], "host-qmp-quit");
    assert!(step("events end", &qemu, events.recv()).await.is_none());
    assert!(matches!(
        qmp.execute("query-status", None).await,
        Err(QmpError::Closed)
    ));
    let exit = match tokio::time::timeout(STEP, qemu.child.wait()).await {
        Ok(r) => r.unwrap(),
        Err(_) => panic!("QEMU did not exit after quit; log:\n{}", qemu.log()),
    };
    assert!(
        exit.success(),
        "QEMU exited with {exit}; log:\n{}",
        qemu.log()
    );
}
