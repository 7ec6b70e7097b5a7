//! VM start and destroy latency through vireod and its shim, next to bare QEMU doing the
//! same work (QEMU with -S, QMP handshake, cont) on the same machine in the same run.
//!
//! Run: `cargo build --release --bins && cargo bench -p vireo-tests --bench lifecycle`
//! Uses KVM when /dev/kvm is there (the guest has no disk and no kernel: only QEMU's own
//! start and stop are measured, and it is destroyed at once), TCG otherwise.

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use vireo_client::Connect;
use vireo_tests::Daemon;

const ROUNDS: usize = 15;

fn main() {
    let kvm = std::path::Path::new("/dev/kvm").exists();
    let ty = if kvm { "kvm" } else { "qemu" };
    let d = Daemon::start();
    let uri = d.uri();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let c = Connect::open(&uri, false).await.expect("open");
        let xml = format!(
            "<domain type='{ty}'><name>bench</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
             <os><type>hvm</type></os><devices><memballoon model='none'/></devices></domain>"
        );
        let dom = c.define_xml(&xml).await.expect("define");
        let mut start = Vec::new();
        let mut destroy = Vec::new();
        for _ in 0..ROUNDS + 2 {
            let t = Instant::now();
            c.start(&dom, 0).await.expect("start");
            let t1 = Instant::now();
            c.destroy(&dom).await.expect("destroy");
            let t2 = Instant::now();
            start.push(t1 - t);
            destroy.push(t2 - t1);
        }
        let mut bare = Vec::new();
        for _ in 0..ROUNDS + 2 {
            bare.push(bare_qemu(kvm).await);
        }
        // The first two rounds warm caches.
        println!("domain type: {ty}");
        report("start -> running (vireod)", &mut start[2..]);
        report("destroy (vireod)", &mut destroy[2..]);
        report("bare QEMU: -S, QMP, cont", &mut bare[2..]);
    });
}

/// QEMU started paused, QMP handshake, `cont`: the floor for a start.
async fn bare_qemu(kvm: bool) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("qmp.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    let fd = listener.as_raw_fd();
    let t = Instant::now();
    let mut cmd = std::process::Command::new(vireo_hostprog::require("qemu-system-x86_64"));
    cmd.args([
        "-S",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-m",
        "64",
    ])
    .args(["-machine", "pc", "-accel", if kvm { "kvm" } else { "tcg" }])
    .args(["-chardev", "socket,id=mon,fd=3,server=on,wait=off"])
    .args(["-mon", "chardev=mon,mode=control"]);
    // SAFETY: dup2 is async-signal-safe; fd is an open listening socket.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("qemu");
    let stream = tokio::net::UnixStream::connect(&sock)
        .await
        .expect("connect");
    let (qmp, _, _events) = vireo_qmp::Qmp::handshake(stream, Duration::from_secs(30))
        .await
        .expect("handshake");
    qmp.execute("cont", None).await.expect("cont");
    let took = t.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    took
}

fn report(what: &str, v: &mut [Duration]) {
    v.sort();
    let med = v[v.len() / 2];
    println!(
        "{what:<28} {:>8.1} ms median  {:>8.1} ms min  {:>8.1} ms max",
        med.as_secs_f64() * 1e3,
        v[0].as_secs_f64() * 1e3,
        v[v.len() - 1].as_secs_f64() * 1e3
    );
}
