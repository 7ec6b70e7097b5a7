//! RPC benchmark against a real `vireod` (release build) under a temp root, driven by the
//! Rust client: call rate on one and four connections, connect+close latency,
//! define+undefine rate, and listAllDomains with 1,000 domains.
//!
//! Run: `cargo build --release --bins && cargo bench -p vireo-tests --bench rpc`
//! With `VIREO_BENCH_URI=URI` it measures the daemon at URI instead (libvirtd, say: the same
//! thin client on both sides shows what each server costs, without python's share).

use std::time::{Duration, Instant};

use vireo_client::Connect;
use vireo_proto::feature;
use vireo_proto::remote::{procs, ConnectSupportsFeatureArgs, ConnectSupportsFeatureRet};
use vireo_tests::Daemon;

const XML: &str = "<domain type='qemu'><name>NAME</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>";

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 10 } else { 1 };
    let external = std::env::var("VIREO_BENCH_URI").ok();
    let d = match external {
        Some(_) => None,
        None => Some(Daemon::start()),
    };
    let uri = match (&external, &d) {
        (Some(u), _) => u.clone(),
        (None, Some(d)) => d.uri(),
        (None, None) => unreachable!("a daemon was started"),
    };
    // A single-threaded client, as virsh and python are.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let c = Connect::open(&uri, false).await.expect("open");
        // warm up
        for _ in 0..1000 {
            c.get_lib_version().await.expect("call");
        }

        let n = 50_000 / scale;
        let t = Instant::now();
        for _ in 0..n {
            c.get_lib_version().await.expect("call");
        }
        report_rate("getLibVersion, 1 connection", n, t.elapsed(), "calls/s");

        let mut conns = Vec::new();
        for _ in 0..4 {
            conns.push(Connect::open(&uri, false).await.expect("open"));
        }
        let t = Instant::now();
        let mut tasks = Vec::new();
        for c4 in conns {
            tasks.push(tokio::spawn(async move {
                for _ in 0..n / 4 {
                    c4.get_lib_version().await.expect("call");
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        report_rate(
            "getLibVersion, 4 connections",
            n / 4 * 4,
            t.elapsed(),
            "calls/s",
        );

        // Open and close as python-libvirt does: AUTH_LIST, OPEN, two feature probes, CLOSE.
        let m = 2000 / scale;
        let mut lat = Vec::with_capacity(m);
        for _ in 0..m {
            let t = Instant::now();
            let cc = Connect::open(&uri, false).await.expect("open");
            for f in [
                feature::REMOTE_EVENT_CALLBACK,
                feature::REMOTE_CLOSE_CALLBACK,
            ] {
                let _: ConnectSupportsFeatureRet = cc
                    .call(
                        procs::CONNECT_SUPPORTS_FEATURE,
                        &ConnectSupportsFeatureArgs { feature: f },
                    )
                    .await
                    .expect("feature");
            }
            cc.close().await.expect("close");
            lat.push(t.elapsed());
        }
        report_latency("connect+close", &mut lat);

        let pairs = 2000 / scale;
        let t = Instant::now();
        for i in 0..pairs {
            let dom = c
                .define_xml(&XML.replace("NAME", &format!("pair{i}")))
                .await
                .expect("define");
            c.undefine(&dom).await.expect("undefine");
        }
        report_rate("define+undefine", pairs, t.elapsed(), "pairs/s");

        for i in 0..1000 {
            c.define_xml(&XML.replace("NAME", &format!("list{i:04}")))
                .await
                .expect("define");
        }
        let mut lat = Vec::new();
        for _ in 0..(200 / scale).max(5) {
            let t = Instant::now();
            let doms = c.list_all_domains(0).await.expect("list");
            lat.push(t.elapsed());
            assert_eq!(doms.len(), 1000);
        }
        report_latency("listAllDomains, 1000 domains", &mut lat);
        for dom in c.list_all_domains(0).await.expect("list") {
            c.undefine(&dom).await.expect("undefine");
        }
    });
}

fn report_rate(what: &str, n: usize, took: Duration, unit: &str) {
    println!("{what:<34} {:>12.0} {unit}", n as f64 / took.as_secs_f64());
}

fn report_latency(what: &str, lat: &mut [Duration]) {
    lat.sort();
    let med = lat[lat.len() / 2];
    let p99 = lat[(lat.len() * 99 / 100).min(lat.len() - 1)];
    println!(
        "{what:<34} {:>9.3} ms median  {:.3} ms p99",
        med.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
}
