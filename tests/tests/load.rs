//! Load: a thousand clients calling at once and a hundred event listeners while domains are
//! defined, started (paused TCG guests), destroyed and undefined; every call answered with
//! no error but the expected ones, every listener hearing every lifecycle event, the
//! daemon's memory back near where it was once the load is gone. And a client that never
//! reads its events: the daemon's memory stays bounded and the client is dropped, with
//! the reason in the daemon's log. Figures are printed, never asserted.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use vireo_client::{ClientError, Connect, Domain};
use vireo_proto::error::code;
use vireo_proto::header::{encode_frame, Header};
use vireo_proto::remote::{
    event, procs, ConnectOpenArgs, DomainEventCallbackLifecycleMsg, EventCallbackRegisterAnyArgs,
    EventCallbackRegisterAnyRet,
};
use vireo_proto::{MessageType, REMOTE_PROGRAM, REMOTE_VERSION};
use vireo_rpc::frame::Frame;
use vireo_tests::{guest_xml, rss_kib, Daemon, Layout};

/// Clients calling at once.
const CLIENTS: usize = 1000;
/// Event listeners.
const LISTENERS: usize = 100;
/// Rounds of calls each client makes (each: version, lookup, list, info, and a lookup and
/// info of the domain the churn made last).
const ROUNDS: usize = 20;
/// Domains the churn makes at least (define, start paused, destroy, undefine).
const CHURN_MIN: usize = 4;
/// The churn's last domain: listeners are done once its undefinition reaches them.
const LAST: &str = "load-last";
/// The name in the guest XML the churn replaces.
const NAME: &str = "LOADNAME";

/// The tests here take the machine's two cores: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Lets this process, and the daemons it starts, hold a few thousand descriptors (a
/// thousand clients are a thousand sockets at each end), as a user would with
/// `ulimit -n` or `LimitNOFILE=`.
fn raise_nofile() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut r = getrlimit(Resource::Nofile);
    // None is no limit.
    let (cur, max) = (r.current.unwrap_or(u64::MAX), r.maximum.unwrap_or(u64::MAX));
    if cur < max {
        r.current = Some(max.min(65536));
        setrlimit(Resource::Nofile, r).expect("setrlimit");
    }
    assert!(
        r.current.unwrap_or(u64::MAX) >= 4 * (CLIENTS + LISTENERS) as u64,
        "the load test needs {} descriptors; the hard limit is {max}",
        4 * (CLIENTS + LISTENERS),
    );
}

/// The daemons that carry the clients: their names and pids.
fn carriers(d: &Daemon) -> Vec<(&'static str, i32)> {
    let names: &[&'static str] = match d.layout {
        Layout::Monolithic => &["vireod"],
        Layout::Modular => &["vireo-qemud"],
        Layout::Proxied => &["vireo-qemud", "vireo-proxyd"],
    };
    names
        .iter()
        .map(|n| (*n, d.pid_of(n).expect("daemon running")))
        .collect()
}

/// Samples the RSS of `pids` every 100 ms until dropped; keeps the peak of each.
struct RssSampler {
    peak: Arc<Mutex<Vec<u64>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start(pids: Vec<i32>) -> RssSampler {
        let peak: Arc<Mutex<Vec<u64>>> =
            Arc::new(Mutex::new(pids.iter().map(|p| rss_kib(*p)).collect()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (Arc::clone(&peak), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let now: Vec<u64> = pids.iter().map(|p| rss_kib(*p)).collect();
                if let Ok(mut peak) = p.lock() {
                    for (m, n) in peak.iter_mut().zip(now) {
                        *m = (*m).max(n);
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        RssSampler {
            peak,
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let peak = self.peak.lock().map(|p| p.clone()).unwrap_or_default();
        peak
    }
}

/// What one client saw: each call's time, the errors expected (by kind) and any other.
#[derive(Default)]
struct Seen {
    micros: Vec<u32>,
    expected: BTreeMap<&'static str, usize>,
    unexpected: Vec<String>,
}

impl Seen {
    /// Times `call`; its error, if any, is given back.
    async fn time<T>(
        &mut self,
        call: impl std::future::Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        let t = Instant::now();
        let r = call.await;
        self.micros
            .push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
        r
    }

    /// A call that may fail only because the churn's domain went away meanwhile.
    fn may_be_gone<T>(&mut self, what: &'static str, r: Result<T, ClientError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) if e.code() == Some(code::NO_DOMAIN) => {
                *self.expected.entry(what).or_default() += 1;
                None
            }
            Err(e) => {
                self.unexpected.push(format!("{what}: {e}"));
                None
            }
        }
    }

    fn must<T>(&mut self, what: &str, r: Result<T, ClientError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.unexpected.push(format!("{what}: {e}"));
                None
            }
        }
    }

    fn merge(&mut self, other: Seen) {
        self.micros.extend(other.micros);
        for (k, v) in other.expected {
            *self.expected.entry(k).or_default() += v;
        }
        self.unexpected.extend(other.unexpected);
    }
}

/// One client: connects, waits for the start, makes its rounds of calls, leaves.
async fn client(
    uri: String,
    resident: Domain,
    latest: Arc<Mutex<Option<String>>>,
    mut go: watch::Receiver<bool>,
    connected: Arc<AtomicUsize>,
) -> Seen {
    let mut seen = Seen::default();
    let c = match Connect::open(&uri, false).await {
        Ok(c) => c,
        Err(e) => {
            seen.unexpected.push(format!("connect: {e}"));
            connected.fetch_add(1, Ordering::Relaxed);
            return seen;
        }
    };
    connected.fetch_add(1, Ordering::Relaxed);
    let _ = go.wait_for(|g| *g).await;
    for _ in 0..ROUNDS {
        let r = seen.time(c.get_lib_version()).await;
        seen.must("getLibVersion", r);
        let r = seen.time(c.lookup_by_name("resident")).await;
        if let Some(d) = seen.must("lookupByName", r) {
            if d.uuid != resident.uuid {
                seen.unexpected.push("lookupByName: another domain".into());
            }
        }
        let r = seen.time(c.list_all_domains(0)).await;
        if let Some(all) = seen.must("listAllDomains", r) {
            if !all.iter().any(|d| d.uuid == resident.uuid) {
                seen.unexpected
                    .push("listAllDomains: the resident domain is missing".into());
            }
        }
        let r = seen.time(c.info(&resident)).await;
        if let Some(info) = seen.must("getInfo", r) {
            if info.state != 3 {
                seen.unexpected
                    .push(format!("getInfo: state {} of a paused domain", info.state));
            }
        }
        // The domain the churn made last: it may be gone by the time we ask.
        let name = latest.lock().ok().and_then(|l| l.clone());
        if let Some(name) = name {
            let r = seen.time(c.lookup_by_name(&name)).await;
            if let Some(d) = seen.may_be_gone("lookupByName of a churned domain", r) {
                let r = seen.time(c.info(&d)).await;
                seen.may_be_gone("getInfo of a churned domain", r);
            }
        }
    }
    let r = c.close().await;
    seen.must("close", r);
    seen
}

/// A lifecycle event as listeners record it: the domain's name, the event, its detail.
type Lifecycle = (String, i32, i32);

/// A registration for every domain's lifecycle events.
const LIFECYCLE_OF_ALL: EventCallbackRegisterAnyArgs = EventCallbackRegisterAnyArgs {
    event_id: event::ID_LIFECYCLE,
    dom: None,
};

/// Registers `c` for every domain's lifecycle events (what each listener hears).
async fn register_lifecycle(c: &Connect) -> Result<(), ClientError> {
    let _: EventCallbackRegisterAnyRet = c
        .call(
            procs::CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY,
            &LIFECYCLE_OF_ALL,
        )
        .await?;
    Ok(())
}

/// One listener: registered for every domain's lifecycle events before `ready` is told;
/// records the churn's events until the last domain's undefinition.
async fn listener(uri: String, ready: mpsc::Sender<()>) -> Result<Vec<Lifecycle>, String> {
    let c = Connect::open(&uri, false)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut rx = c.connection().events();
    register_lifecycle(&c)
        .await
        .map_err(|e| format!("register: {e}"))?;
    let _ = ready.send(()).await;
    let mut got = Vec::new();
    loop {
        let f: Frame = match tokio::time::timeout(Duration::from_secs(300), rx.recv()).await {
            Ok(Some(f)) => f,
            Ok(None) => return Err(format!("connection lost after {} events", got.len())),
            Err(_) => return Err(format!("no event for 5 minutes after {got:?}")),
        };
        if f.header.proc_ != procs::DOMAIN_EVENT_CALLBACK_LIFECYCLE {
            continue;
        }
        let m: DomainEventCallbackLifecycleMsg =
            vireo_xdr::from_bytes(&f.payload).map_err(|e| format!("event: {e}"))?;
        let name = m.msg.dom.name.clone();
        if !name.starts_with("load-") {
            continue;
        }
        let last = name == LAST && m.msg.event == event::UNDEFINED;
        got.push((name, m.msg.event, m.msg.detail));
        if last {
            let _ = c.close().await;
            return Ok(got);
        }
    }
}

/// Defines, starts paused, destroys and undefines domains until the clients are done (and
/// at least `CHURN_MIN`), then `LAST`; returns their names.
async fn churn(
    uri: String,
    xml: String,
    latest: Arc<Mutex<Option<String>>>,
    clients_done: Arc<AtomicBool>,
) -> Result<Vec<String>, String> {
    let c = Connect::open(&uri, false)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut names = Vec::new();
    loop {
        let name = if names.len() >= CHURN_MIN && clients_done.load(Ordering::Relaxed) {
            LAST.to_string()
        } else {
            format!("load-{}", names.len())
        };
        let step = |what: &str, e: ClientError| format!("{what} {name}: {e}");
        let dom = c
            .define_xml(&xml.replace(NAME, &name))
            .await
            .map_err(|e| step("define", e))?;
        if let Ok(mut l) = latest.lock() {
            *l = Some(name.clone());
        }
        let dom = c.start(&dom, 1).await.map_err(|e| step("start", e))?;
        c.destroy(&dom).await.map_err(|e| step("destroy", e))?;
        c.undefine(&dom).await.map_err(|e| step("undefine", e))?;
        let last = name == LAST;
        names.push(name);
        if last {
            let _ = c.close().await;
            return Ok(names);
        }
    }
}

/// Runs `clients` clients of `rounds` rounds with `listeners` listeners and the churn;
/// returns what the clients saw, the listeners heard, the churn made, and the wall time.
async fn run_load(
    uri: &str,
    xml: &str,
    clients: usize,
    listeners: usize,
) -> (Seen, Vec<Vec<Lifecycle>>, Vec<String>, Duration) {
    let boss = Connect::open(uri, false).await.expect("open");
    let resident = boss.lookup_by_name("resident").await.expect("resident");
    // Listeners first, each registered before anything happens.
    let (ready_tx, mut ready) = mpsc::channel(listeners.max(1));
    let listening: Vec<_> = (0..listeners)
        .map(|_| tokio::spawn(listener(uri.to_string(), ready_tx.clone())))
        .collect();
    drop(ready_tx);
    for _ in 0..listeners {
        ready.recv().await.expect("a listener failed to register");
    }
    // Clients connect, then start together.
    let latest = Arc::new(Mutex::new(None));
    let (go_tx, go) = watch::channel(false);
    let connected = Arc::new(AtomicUsize::new(0));
    let calling: Vec<_> = (0..clients)
        .map(|_| {
            tokio::spawn(client(
                uri.to_string(),
                resident.clone(),
                Arc::clone(&latest),
                go.clone(),
                Arc::clone(&connected),
            ))
        })
        .collect();
    while connected.load(Ordering::Relaxed) < clients {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let clients_done = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let churning = tokio::spawn(churn(
        uri.to_string(),
        xml.to_string(),
        Arc::clone(&latest),
        Arc::clone(&clients_done),
    ));
    go_tx.send_replace(true);
    let mut seen = Seen::default();
    for c in calling {
        seen.merge(c.await.expect("client task"));
    }
    clients_done.store(true, Ordering::Relaxed);
    let wall = t0.elapsed();
    let names = churning
        .await
        .expect("churn task")
        .unwrap_or_else(|e| panic!("churn: {e}"));
    let mut heard = Vec::new();
    for l in listening {
        heard.push(
            l.await
                .expect("listener task")
                .unwrap_or_else(|e| panic!("listener: {e}")),
        );
    }
    let _ = boss.close().await;
    (seen, heard, names, wall)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn load(layout: Layout) {
    let _one = one_at_a_time();
    raise_nofile();
    let xml = guest_xml(NAME);
    let d = Daemon::start_in(layout);
    let uri = d.uri();
    let watched = carriers(&d);
    let pids: Vec<i32> = watched.iter().map(|(_, p)| *p).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // The resident domain: running, paused, asked about by every client.
    rt.block_on(async {
        let c = Connect::open(&uri, false).await.expect("open");
        let dom = c
            .define_xml(&xml.replace(NAME, "resident"))
            .await
            .expect("define resident");
        c.start(&dom, 1).await.expect("start resident paused");
        let _ = c.close().await;
    });
    // A first, small round: what the daemons make once (caches, channels, worker threads)
    // is then made before the figure to return to is taken.
    rt.block_on(run_load(&uri, &xml, 100, 10));
    let before: Vec<u64> = pids.iter().map(|p| rss_kib(*p)).collect();
    let sampler = RssSampler::start(pids.clone());
    let (seen, heard, names, wall) = rt.block_on(run_load(&uri, &xml, CLIENTS, LISTENERS));
    let peak = sampler.finish();

    // Every call answered, no error but a churned domain gone meanwhile.
    assert!(
        seen.unexpected.is_empty(),
        "{} unexpected errors, e.g. {:?}",
        seen.unexpected.len(),
        &seen.unexpected[..seen.unexpected.len().min(10)]
    );
    let calls = seen.micros.len();
    assert!(calls >= CLIENTS * ROUNDS * 4, "{calls} calls answered");
    // Every listener heard every lifecycle event of every churned domain, in one order.
    let first = &heard[0];
    for name in &names {
        for ev in [
            event::DEFINED,
            event::STARTED,
            event::SUSPENDED,
            event::STOPPED,
            event::UNDEFINED,
        ] {
            assert!(
                first.iter().any(|(n, e, _)| n == name && *e == ev),
                "no event {ev} of {name} in {first:?}"
            );
        }
    }
    for (i, h) in heard.iter().enumerate() {
        assert_eq!(h, first, "listener {i} heard otherwise than listener 0");
    }
    // The memory the load took is given back (a generous margin: the allocator keeps some).
    let limit: Vec<u64> = before
        .iter()
        .map(|b| (b + 20 * 1024).max(b + b / 2))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let after = loop {
        let now: Vec<u64> = pids.iter().map(|p| rss_kib(*p)).collect();
        if now.iter().zip(&limit).all(|(n, l)| n <= l) || Instant::now() > deadline {
            break now;
        }
        std::thread::sleep(Duration::from_millis(200));
    };

    let mut us = seen.micros;
    us.sort_unstable();
    let events: usize = heard.iter().map(Vec::len).sum();
    println!("load, {layout:?}: {CLIENTS} clients x {ROUNDS} rounds, {LISTENERS} listeners");
    println!(
        "  {calls} calls in {:.1} s: {:.0} calls/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        wall.as_secs_f64(),
        calls as f64 / wall.as_secs_f64(),
        percentile(&us, 0.5),
        percentile(&us, 0.99),
        percentile(&us, 1.0)
    );
    println!(
        "  errors expected (a churned domain gone meanwhile): {:?}; unexpected: 0",
        seen.expected
    );
    println!(
        "  {} domains defined, started paused, destroyed, undefined; {events} lifecycle events \
         delivered ({} to each of {LISTENERS} listeners)",
        names.len(),
        first.len()
    );
    for (i, (name, _)) in watched.iter().enumerate() {
        println!(
            "  {name} RSS: before {:.1} MiB, peak {:.1} MiB, after {:.1} MiB",
            mib(before[i]),
            mib(peak[i]),
            mib(after[i])
        );
    }
    for (i, (name, _)) in watched.iter().enumerate() {
        assert!(
            after[i] <= limit[i],
            "{name}: RSS {:.1} MiB after the load, {:.1} MiB before",
            mib(after[i]),
            mib(before[i])
        );
    }
}

#[test]
fn load_monolithic() {
    load(Layout::Monolithic)
}

#[test]
fn load_proxied() {
    load(Layout::Proxied)
}

/// One call on a raw connection: its reply's status and payload.
fn raw_call(s: &mut UnixStream, proc_: i32, serial: u32, payload: &[u8]) -> (i32, Vec<u8>) {
    let h = Header::call(REMOTE_PROGRAM, REMOTE_VERSION, proc_, serial);
    s.write_all(&encode_frame(&h, payload)).expect("write");
    loop {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).expect("reply");
        let n = u32::from_be_bytes(len) as usize;
        let mut f = vec![0u8; n - 4];
        s.read_exact(&mut f).expect("reply");
        let h = Header::decode(f[..24].try_into().expect("header"));
        if h.mtype == MessageType::Reply as i32 && h.serial == serial {
            return (h.status, f[24..].to_vec());
        }
    }
}

/// Callback registrations the slow client makes: each event comes to it this many times.
const SLOW_CALLBACKS: usize = 512;
/// Domains defined and undefined while it does not read.
const SLOW_CYCLES: usize = 40;

/// `forwarded`: the proxy passes the client's frames on itself (as it does for remote
/// clients) instead of handing its connection to vireo-qemud.
fn slow_listener(layout: Layout, forwarded: bool) {
    let _one = one_at_a_time();
    let xml = guest_xml(NAME);
    let d = Daemon::start_in(layout);
    if forwarded {
        std::fs::remove_file(d.run_dir().join("vireo-qemud-handoff-sock")).expect("handoff");
    }
    let watched = carriers(&d);
    let pids: Vec<i32> = watched.iter().map(|(_, p)| *p).collect();
    // The slow client: opens, registers, and from then on never reads.
    let mut slow = UnixStream::connect(d.socket()).expect("connect");
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    assert_eq!(raw_call(&mut slow, procs::AUTH_LIST, 0, &[]).0, 0);
    let open = vireo_xdr::to_bytes(&ConnectOpenArgs {
        name: Some("qemu:///system".into()),
        flags: 0,
    });
    assert_eq!(raw_call(&mut slow, procs::CONNECT_OPEN, 1, &open).0, 0);
    let reg = vireo_xdr::to_bytes(&LIFECYCLE_OF_ALL);
    for i in 0..SLOW_CALLBACKS {
        let (st, _) = raw_call(
            &mut slow,
            procs::CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY,
            2 + i as u32,
            &reg,
        );
        assert_eq!(st, 0, "registration {i}");
    }
    let before: Vec<u64> = pids.iter().map(|p| rss_kib(*p)).collect();
    let sampler = RssSampler::start(pids.clone());
    let uri = d.uri();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Events in volume, heard in full by a listener that reads.
    let heard = rt.block_on(async {
        let c = Connect::open(&uri, false).await.expect("open");
        let mut rx = c.connection().events();
        register_lifecycle(&c).await.expect("register");
        for i in 0..SLOW_CYCLES {
            let dom = c
                .define_xml(&xml.replace(NAME, &format!("load-{i}")))
                .await
                .expect("define");
            c.undefine(&dom).await.expect("undefine");
        }
        let mut heard = 0;
        while heard < 2 * SLOW_CYCLES {
            let f = tokio::time::timeout(Duration::from_secs(60), rx.recv())
                .await
                .expect("an event")
                .expect("connection");
            if f.header.proc_ == procs::DOMAIN_EVENT_CALLBACK_LIFECYCLE {
                heard += 1;
            }
        }
        let _ = c.close().await;
        heard
    });
    let peak = sampler.finish();
    // The slow client's socket holds what was written before the drop, then ends.
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match slow.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the slow client was not dropped ({got} bytes read): {e}"),
        }
    }
    let log = d.log();
    let me = format!("pid {}", std::process::id());
    let why = log
        .lines()
        .find(|l| l.contains("too slow to read its messages") && l.contains(&me))
        .unwrap_or_else(|| panic!("no reason for the drop in the log:\n{log}"));
    let sent = SLOW_CALLBACKS * 2 * SLOW_CYCLES;
    let how = if forwarded { ", frames forwarded" } else { "" };
    println!(
        "slow listener, {layout:?}{how}: {SLOW_CALLBACKS} registrations, {sent} event \
         messages due; {got} bytes read after the drop; {heard} events heard by a reading \
         listener; the log: {why}"
    );
    for (i, (name, _)) in watched.iter().enumerate() {
        println!(
            "  {name} RSS before {:.1} MiB, peak {:.1} MiB",
            mib(before[i]),
            mib(peak[i])
        );
        // What the daemon held for it stayed within its bound (and some noise).
        assert!(
            peak[i] <= before[i] + 32 * 1024,
            "{name} RSS grew from {:.1} to {:.1} MiB",
            mib(before[i]),
            mib(peak[i])
        );
    }
    // Everyone else is still served.
    vireo_tests::ok(&d.virsh(&["list", "--all"]));
}

#[test]
fn slow_listener_monolithic() {
    slow_listener(Layout::Monolithic, false)
}

#[test]
fn slow_listener_proxied() {
    slow_listener(Layout::Proxied, false)
}

#[test]
fn slow_listener_proxied_forwarded() {
    slow_listener(Layout::Proxied, true)
}
