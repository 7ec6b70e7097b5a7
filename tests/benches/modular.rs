//! The modular daemons: what a call through vireo-proxyd costs next to the same call made
//! directly to vireo-qemud, and the memory all daemons use at idle (summed), next to
//! monolithic vireod.
//!
//! Run: `cargo build --release --bins && cargo bench -p vireo-tests --bench modular`

use std::time::{Duration, Instant};

use vireo_client::Connect;
use vireo_tests::{Daemon, Layout};

fn main() {
    // Run the daemons the way the install command lays them out: one multi-call executable
    // under every daemon's name.
    let links = tempfile::tempdir().expect("tempdir");
    let real = vireo_tests::bin("vireod");
    for name in vireo_tests::DRIVER_DAEMONS
        .iter()
        .chain(["vireo-proxyd", "vireod"].iter())
    {
        std::os::unix::fs::symlink(&real, links.path().join(name)).expect("symlink");
    }
    std::env::set_var("VIREO_BIN_DIR", links.path());
    let d = Daemon::start_in(Layout::Proxied);
    let direct = format!(
        "qemu+unix:///system?socket={}",
        d.run_dir().join("vireo-qemud-sock").display()
    );
    let proxied = format!(
        "qemu+unix:///system?socket={}",
        d.run_dir().join("vireod-sock").display()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let n = 20_000;
    let (rate_direct, rate_proxy) = rt.block_on(async {
        let a = calls_per_sec(&direct, n).await;
        let b = calls_per_sec(&proxied, n).await;
        (a, b)
    });
    println!("getLibVersion direct to vireo-qemud   {rate_direct:>10.0} calls/s");
    println!("getLibVersion through vireo-proxyd    {rate_proxy:>10.0} calls/s");
    println!(
        "proxy cost: {:.2}x the direct call's time",
        rate_direct / rate_proxy
    );
    let (c_direct, c_proxy) =
        rt.block_on(async { (connect_close(&direct).await, connect_close(&proxied).await) });
    println!(
        "connect+close direct {:>8.3} ms, through the proxy {:>8.3} ms",
        c_direct.as_secs_f64() * 1e3,
        c_proxy.as_secs_f64() * 1e3
    );
    let pids = d.pids();
    let rss: u64 = pids.iter().map(|p| mem_kib(*p, "Rss:")).sum();
    let pss: u64 = pids.iter().map(|p| mem_kib(*p, "Pss:")).sum();
    drop(d);
    let m = Daemon::start_in(Layout::Monolithic);
    let mono = m.pid() as i32;
    println!(
        "idle memory, all 8 modular daemons together: {:.1} MiB (sum of PSS: shared pages counted once), \
         {:.1} MiB (sum of RSS: the executable and libc counted in every process)",
        pss as f64 / 1024.0,
        rss as f64 / 1024.0
    );
    println!(
        "idle memory, monolithic vireod: {:.1} MiB PSS, {:.1} MiB RSS",
        mem_kib(mono, "Pss:") as f64 / 1024.0,
        mem_kib(mono, "Rss:") as f64 / 1024.0
    );
}

async fn calls_per_sec(uri: &str, n: usize) -> f64 {
    let c = Connect::open(uri, false).await.expect("open");
    for _ in 0..1000 {
        c.get_lib_version().await.expect("call");
    }
    let t = Instant::now();
    for _ in 0..n {
        c.get_lib_version().await.expect("call");
    }
    n as f64 / t.elapsed().as_secs_f64()
}

async fn connect_close(uri: &str) -> Duration {
    let mut v = Vec::new();
    for _ in 0..500 {
        let t = Instant::now();
        let c = Connect::open(uri, false).await.expect("open");
        c.close().await.expect("close");
        v.push(t.elapsed());
    }
    v.sort();
    v[v.len() / 2]
}

/// A field of /proc/PID/smaps_rollup, in KiB.
fn mem_kib(pid: i32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
