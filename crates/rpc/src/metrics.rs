//! What a server counts about itself, and Prometheus' text exposition format (0.0.4) to
//! show it in.
//!
//! Counting is on every call's path, so it is kept to a few relaxed atomic additions: each
//! (program, procedure) has its counters in a slot of a table made when the server starts
//! (allocated the first time the procedure is called), found by indexing, never by a
//! lock. Only a failed call takes a (short, never awaited) lock, to count its error code.
//! Procedure numbers that have no name, and programs that are not libvirt's or Vireo's,
//! are counted together as `unknown`: a client cannot make the tables grow.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vireo_proto::vireo::VIREO_PROGRAM;
use vireo_proto::{ADMIN_PROGRAM, QEMU_PROGRAM, REMOTE_PROGRAM};

/// Upper bounds of the call latency histogram's buckets, in nanoseconds: 50 µs to 10 s.
pub const BUCKETS_NS: [u64; 17] = [
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Distinct error codes counted per procedure; any further ones are counted as `other`.
const MAX_ERROR_CODES: usize = 32;

/// The counters of one procedure.
pub struct ProcStats {
    ok: AtomicU64,
    /// Calls per latency bucket (not cumulative); the last is above 10 s.
    buckets: [AtomicU64; BUCKETS_NS.len() + 1],
    sum_ns: AtomicU64,
    /// Failed calls by libvirt error code (`None`: beyond [`MAX_ERROR_CODES`] codes).
    errors: Mutex<Vec<(Option<i32>, u64)>>,
}

impl ProcStats {
    fn new() -> Self {
        ProcStats {
            ok: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
            errors: Mutex::new(Vec::new()),
        }
    }

    fn record(&self, result: Result<(), i32>, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let b = BUCKETS_NS
            .iter()
            .position(|&le| ns <= le)
            .unwrap_or(BUCKETS_NS.len());
        self.buckets[b].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        match result {
            Ok(()) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(code) => {
                let mut errs = self.errors.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(e) = errs.iter_mut().find(|(c, _)| *c == Some(code)) {
                    e.1 += 1;
                } else if errs.len() < MAX_ERROR_CODES {
                    errs.push((Some(code), 1));
                } else if let Some(e) = errs.iter_mut().find(|(c, _)| c.is_none()) {
                    e.1 += 1;
                } else {
                    errs.push((None, 1));
                }
            }
        }
    }
}

/// The procedures of one program.
struct ProgramTable {
    prog: u32,
    label: &'static str,
    name: fn(i32) -> Option<&'static str>,
    /// By procedure number, made when the program is first called (a server that never
    /// sees a program spends nothing on it); slot 0 (no procedure has number 0) counts the
    /// unknown ones.
    slots: OnceLock<Box<[OnceLock<Box<ProcStats>>]>>,
}

impl ProgramTable {
    fn new(prog: u32, label: &'static str, name: fn(i32) -> Option<&'static str>) -> Self {
        ProgramTable {
            prog,
            label,
            name,
            slots: OnceLock::new(),
        }
    }

    fn slots(&self) -> &[OnceLock<Box<ProcStats>>] {
        self.slots.get_or_init(|| {
            // Procedure numbers are dense from 1: the table ends past the highest named one.
            let len = (1..4096)
                .rev()
                .find(|&p| (self.name)(p).is_some())
                .unwrap_or(0)
                + 1;
            (0..len).map(|_| OnceLock::new()).collect()
        })
    }

    fn slot(&self, proc_: i32) -> &ProcStats {
        let slots = self.slots();
        // A slot in use is a named procedure's (or, at 0, the unknown ones'): no name
        // lookup on the way.
        let used = usize::try_from(proc_)
            .ok()
            .and_then(|i| slots.get(i))
            .and_then(OnceLock::get);
        if let Some(s) = used {
            return s;
        }
        let i = usize::try_from(proc_)
            .ok()
            .filter(|&i| i < slots.len() && (self.name)(proc_).is_some())
            .unwrap_or(0);
        slots[i].get_or_init(|| Box::new(ProcStats::new()))
    }
}

fn no_name(_: i32) -> Option<&'static str> {
    None
}

/// Calls by program, procedure and result, with their latencies.
pub struct CallMetrics {
    /// libvirt's REMOTE, QEMU and ADMIN programs, Vireo's own, and then every other.
    tables: [ProgramTable; 5],
}

impl Default for CallMetrics {
    fn default() -> Self {
        CallMetrics {
            tables: [
                ProgramTable::new(REMOTE_PROGRAM, "remote", vireo_proto::remote::proc_name),
                ProgramTable::new(QEMU_PROGRAM, "qemu", vireo_proto::qemu::proc_name),
                ProgramTable::new(ADMIN_PROGRAM, "admin", vireo_proto::admin::proc_name),
                ProgramTable::new(VIREO_PROGRAM, "vireo", vireo_proto::vireo::proc_name),
                ProgramTable::new(0, "unknown", no_name),
            ],
        }
    }
}

impl CallMetrics {
    /// Counts one answered call: `Err(code)` for an error reply with libvirt's code.
    pub fn record(&self, prog: u32, proc_: i32, result: Result<(), i32>, elapsed: Duration) {
        let t = self
            .tables
            .iter()
            .find(|t| t.prog == prog)
            .unwrap_or(&self.tables[4]);
        t.slot(proc_).record(result, elapsed);
    }

    /// Every procedure called so far: (program, procedure name, its counters).
    fn each(&self) -> impl Iterator<Item = (&'static str, &'static str, &ProcStats)> {
        self.tables.iter().flat_map(|t| {
            let slots = t.slots.get().map(|s| &s[..]).unwrap_or_default();
            slots.iter().enumerate().filter_map(move |(i, s)| {
                let stats = s.get()?;
                let name = i32::try_from(i)
                    .ok()
                    .and_then(|p| (t.name)(p))
                    .unwrap_or("unknown");
                Some((t.label, name, &**stats))
            })
        })
    }
}

/// How a client is connected, for the `socket` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Socket {
    /// The read-write UNIX socket (or, on the admin server, the admin socket).
    ReadWrite = 0,
    ReadOnly = 1,
    Tcp = 2,
    Tls = 3,
}

const SOCKETS: [Socket; 4] = [
    Socket::ReadWrite,
    Socket::ReadOnly,
    Socket::Tcp,
    Socket::Tls,
];

impl Socket {
    fn label(self, admin: bool) -> &'static str {
        match self {
            Socket::ReadWrite if admin => "admin",
            Socket::ReadWrite => "rw",
            Socket::ReadOnly => "ro",
            Socket::Tcp => "tcp",
            Socket::Tls => "tls",
        }
    }
}

/// What one server (a daemon's main server, its admin server, the proxy) counts.
#[derive(Default)]
pub struct ServerMetrics {
    pub calls: CallMetrics,
    connected: [AtomicU64; 4],
    accepted: [AtomicU64; 4],
    auth_failed: [AtomicU64; 4],
    /// The TCP and TLS sockets listened on (a bit per [`Socket`]): only those are shown.
    listening: AtomicU64,
}

/// A connected client, counted until dropped.
pub struct Connected<'a> {
    m: &'a ServerMetrics,
    socket: Socket,
}

impl Drop for Connected<'_> {
    fn drop(&mut self) {
        self.m.connected[self.socket as usize].fetch_sub(1, Ordering::Relaxed);
    }
}

impl ServerMetrics {
    /// A client connected through `socket`: counted as connected until the guard goes.
    pub fn connected(&self, socket: Socket) -> Connected<'_> {
        self.connected[socket as usize].fetch_add(1, Ordering::Relaxed);
        self.accepted[socket as usize].fetch_add(1, Ordering::Relaxed);
        Connected { m: self, socket }
    }

    /// The server listens on `socket` (TCP or TLS; the UNIX sockets are always shown).
    pub fn listening(&self, socket: Socket) {
        self.listening
            .fetch_or(1 << socket as u64, Ordering::Relaxed);
    }

    fn shown(&self, socket: Socket, admin: bool) -> bool {
        match socket {
            Socket::ReadWrite => true,
            Socket::ReadOnly => !admin,
            Socket::Tcp | Socket::Tls => {
                self.listening.load(Ordering::Relaxed) & (1 << socket as u64) != 0
            }
        }
    }

    /// A client on `socket` failed to authenticate (SASL, polkit, a TLS certificate).
    pub fn auth_failed(&self, socket: Socket) {
        self.auth_failed[socket as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Clients connected now through `socket`.
    pub fn clients(&self, socket: Socket) -> u64 {
        self.connected[socket as usize].load(Ordering::Relaxed)
    }
}

/// Writes several servers' counters (`admin`: the admin server, whose UNIX socket is
/// labelled `admin`) as the `vireo_rpc_*`, `vireo_clients*` and `vireo_auth_*` families.
pub fn write_servers(t: &mut Text, servers: &[(&ServerMetrics, bool)]) {
    t.family(
        "vireo_rpc_calls_total",
        "counter",
        "RPC calls answered, by program, procedure (libvirt's name) and result (ok, or \
         libvirt's error code name)",
    );
    for (s, _) in servers {
        for (prog, name, p) in s.calls.each() {
            let ok = p.ok.load(Ordering::Relaxed);
            if ok > 0 {
                t.sample(
                    "vireo_rpc_calls_total",
                    &[("program", prog), ("procedure", name), ("result", "ok")],
                    ok,
                );
            }
            let errs = p.errors.lock().unwrap_or_else(|e| e.into_inner()).clone();
            for (code, n) in errs {
                let label = match code {
                    Some(c) => vireo_proto::error::code_name(c)
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("error_{c}")),
                    None => "other".to_string(),
                };
                t.sample(
                    "vireo_rpc_calls_total",
                    &[("program", prog), ("procedure", name), ("result", &label)],
                    n,
                );
            }
        }
    }
    t.family(
        "vireo_rpc_call_duration_seconds",
        "histogram",
        "Time from a call's arrival to its reply, by program and procedure",
    );
    for (s, _) in servers {
        for (prog, name, p) in s.calls.each() {
            let mut cumulative = 0;
            for (i, b) in p.buckets.iter().enumerate() {
                cumulative += b.load(Ordering::Relaxed);
                let le = match BUCKETS_NS.get(i) {
                    Some(ns) => seconds(*ns),
                    None => "+Inf".to_string(),
                };
                t.sample(
                    "vireo_rpc_call_duration_seconds_bucket",
                    &[("program", prog), ("procedure", name), ("le", &le)],
                    cumulative,
                );
            }
            let labels = [("program", prog), ("procedure", name)];
            t.sample_f(
                "vireo_rpc_call_duration_seconds_sum",
                &labels,
                p.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
            );
            t.sample("vireo_rpc_call_duration_seconds_count", &labels, cumulative);
        }
    }
    let per_socket = |t: &mut Text, name: &str, pick: fn(&ServerMetrics) -> &[AtomicU64; 4]| {
        for (s, admin) in servers {
            for sock in SOCKETS {
                // The admin server has only its UNIX socket; TCP and TLS are shown where
                // the server listens on them.
                if !s.shown(sock, *admin) {
                    continue;
                }
                let v = pick(s)[sock as usize].load(Ordering::Relaxed);
                t.sample(name, &[("socket", sock.label(*admin))], v);
            }
        }
    };
    t.family(
        "vireo_clients",
        "gauge",
        "Clients connected now, by socket (rw, ro, admin, tcp, tls)",
    );
    per_socket(t, "vireo_clients", |s| &s.connected);
    t.family(
        "vireo_clients_connected_total",
        "counter",
        "Clients that connected since the daemon started, by socket",
    );
    per_socket(t, "vireo_clients_connected_total", |s| &s.accepted);
    t.family(
        "vireo_auth_failures_total",
        "counter",
        "Clients refused for failing to authenticate (SASL, polkit, TLS certificate), by \
         socket",
    );
    per_socket(t, "vireo_auth_failures_total", |s| &s.auth_failed);
}

/// A number of nanoseconds as seconds, as short as it can be written.
fn seconds(ns: u64) -> String {
    format!("{}", ns as f64 / 1e9)
}

/// Prometheus' text exposition format being written.
#[derive(Default)]
pub struct Text {
    out: String,
}

impl Text {
    pub fn new() -> Self {
        Text::default()
    }

    /// Starts a metric family: its HELP and TYPE lines.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample with an integer value.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: u64) {
        self.head(name, labels);
        let _ = writeln!(self.out, " {v}");
    }

    /// One sample with a floating-point value.
    pub fn sample_f(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.head(name, labels);
        if v.is_finite() {
            let _ = writeln!(self.out, " {v}");
        } else if v.is_nan() {
            self.out.push_str(" NaN\n");
        } else if v > 0.0 {
            self.out.push_str(" +Inf\n");
        } else {
            self.out.push_str(" -Inf\n");
        }
    }

    fn head(&mut self, name: &str, labels: &[(&str, &str)]) {
        self.out.push_str(name);
        if labels.is_empty() {
            return;
        }
        self.out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(k);
            self.out.push_str("=\"");
            for ch in v.chars() {
                match ch {
                    '\\' => self.out.push_str("\\\\"),
                    '"' => self.out.push_str("\\\""),
                    '\n' => self.out.push_str("\\n"),
                    c => self.out.push(c),
                }
            }
            self.out.push('"');
        }
        self.out.push('}');
    }

    pub fn into_string(self) -> String {
        self.out
    }
}

/// When the process started (set by [`mark_start`], else when first asked).
static STARTED: OnceLock<SystemTime> = OnceLock::new();

/// Notes the process's start time: call it first thing in `main`.
pub fn mark_start() {
    STARTED.get_or_init(SystemTime::now);
}

/// The process's own figures, from `/proc/self`: resident and virtual memory, threads,
/// open descriptors and their limit, start time and uptime.
pub fn write_process(t: &mut Text) {
    let started = *STARTED.get_or_init(SystemTime::now);
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    if let Some(kib) = field("VmRSS:") {
        t.family(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes",
        );
        t.sample("process_resident_memory_bytes", &[], kib * 1024);
    }
    if let Some(kib) = field("VmSize:") {
        t.family(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes",
        );
        t.sample("process_virtual_memory_bytes", &[], kib * 1024);
    }
    if let Some(n) = field("Threads:") {
        t.family("process_threads", "gauge", "Threads of the process");
        t.sample("process_threads", &[], n);
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        // The directory being read is one of them.
        let n = dir.count().saturating_sub(1);
        t.family("process_open_fds", "gauge", "Open file descriptors");
        t.sample("process_open_fds", &[], n as u64);
    }
    if let Some(max) = max_fds() {
        t.family(
            "process_max_fds",
            "gauge",
            "Limit of open file descriptors (RLIMIT_NOFILE)",
        );
        t.sample("process_max_fds", &[], max);
    }
    let since_epoch = started
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    t.family(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since the epoch, in seconds",
    );
    t.sample_f("process_start_time_seconds", &[], since_epoch);
    t.family(
        "vireo_uptime_seconds",
        "gauge",
        "Seconds since the daemon started",
    );
    t.sample_f(
        "vireo_uptime_seconds",
        &[],
        started.elapsed().unwrap_or_default().as_secs_f64(),
    );
}

/// The soft limit of open files, from `/proc/self/limits`.
fn max_fds() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_by_procedure_and_result() {
        let m = ServerMetrics::default();
        let ms = Duration::from_millis(1);
        m.calls
            .record(REMOTE_PROGRAM, 157, Ok(()), Duration::from_micros(10));
        m.calls.record(REMOTE_PROGRAM, 157, Ok(()), ms * 3);
        m.calls.record(REMOTE_PROGRAM, 23, Err(42), ms);
        // Unknown procedures and programs are counted together, not one by one.
        m.calls.record(REMOTE_PROGRAM, 100_000, Err(39), ms);
        m.calls.record(REMOTE_PROGRAM, -5, Err(39), ms);
        m.calls.record(0x1234, 1, Err(39), ms);
        m.calls
            .record(ADMIN_PROGRAM, 3, Ok(()), Duration::from_secs(20));
        let mut t = Text::new();
        write_servers(&mut t, &[(&m, false)]);
        let s = t.into_string();
        let want = [
            r#"vireo_rpc_calls_total{program="remote",procedure="CONNECT_GET_LIB_VERSION",result="ok"} 2"#,
            r#"vireo_rpc_calls_total{program="remote",procedure="DOMAIN_LOOKUP_BY_NAME",result="VIR_ERR_NO_DOMAIN"} 1"#,
            r#"vireo_rpc_calls_total{program="remote",procedure="unknown",result="VIR_ERR_RPC"} 2"#,
            r#"vireo_rpc_calls_total{program="unknown",procedure="unknown",result="VIR_ERR_RPC"} 1"#,
            r#"vireo_rpc_call_duration_seconds_bucket{program="remote",procedure="CONNECT_GET_LIB_VERSION",le="0.00005"} 1"#,
            r#"vireo_rpc_call_duration_seconds_bucket{program="remote",procedure="CONNECT_GET_LIB_VERSION",le="0.0025"} 1"#,
            r#"vireo_rpc_call_duration_seconds_bucket{program="remote",procedure="CONNECT_GET_LIB_VERSION",le="0.005"} 2"#,
            r#"vireo_rpc_call_duration_seconds_bucket{program="remote",procedure="CONNECT_GET_LIB_VERSION",le="+Inf"} 2"#,
            r#"vireo_rpc_call_duration_seconds_count{program="remote",procedure="CONNECT_GET_LIB_VERSION"} 2"#,
            r#"vireo_rpc_call_duration_seconds_bucket{program="admin",procedure="CONNECT_GET_LIB_VERSION",le="10"} 0"#,
            r#"vireo_rpc_call_duration_seconds_bucket{program="admin",procedure="CONNECT_GET_LIB_VERSION",le="+Inf"} 1"#,
            "# TYPE vireo_rpc_call_duration_seconds histogram",
        ];
        for w in want {
            assert!(s.lines().any(|l| l == w), "no {w} in\n{s}");
        }
        assert!(s.contains(
            r#"vireo_rpc_call_duration_seconds_sum{program="remote",procedure="CONNECT_GET_LIB_VERSION"} 0.00301"#
        ));
    }

    #[test]
    fn error_codes_per_procedure_are_bounded() {
        let m = CallMetrics::default();
        for code in 0..100 {
            m.record(REMOTE_PROGRAM, 1, Err(code), Duration::ZERO);
        }
        let (_, _, p) = m.each().next().expect("counted");
        let errs = p.errors.lock().unwrap();
        assert_eq!(errs.len(), MAX_ERROR_CODES + 1);
        assert_eq!(errs.last(), Some(&(None, 100 - MAX_ERROR_CODES as u64)));
    }

    #[test]
    fn clients_by_socket() {
        let m = ServerMetrics::default();
        let a = m.connected(Socket::ReadOnly);
        {
            let _b = m.connected(Socket::ReadOnly);
            assert_eq!(m.clients(Socket::ReadOnly), 2);
        }
        m.auth_failed(Socket::Tls);
        m.listening(Socket::Tls);
        let adm = ServerMetrics::default();
        let _c = adm.connected(Socket::ReadWrite);
        let mut t = Text::new();
        write_servers(&mut t, &[(&m, false), (&adm, true)]);
        let s = t.into_string();
        for w in [
            r#"vireo_clients{socket="ro"} 1"#,
            r#"vireo_clients{socket="rw"} 0"#,
            r#"vireo_clients{socket="admin"} 1"#,
            r#"vireo_clients_connected_total{socket="ro"} 2"#,
            r#"vireo_auth_failures_total{socket="tls"} 1"#,
        ] {
            assert!(s.lines().any(|l| l == w), "no {w} in\n{s}");
        }
        // The admin server has its one socket only.
        assert_eq!(s.matches("socket=\"admin\"").count(), 3);
        assert!(!s.contains(r#"vireo_clients{socket="ro"} 0"#));
        // Not listening on TCP: not shown.
        assert!(!s.contains("socket=\"tcp\""));
        drop(a);
        assert_eq!(m.clients(Socket::ReadOnly), 0);
    }

    #[test]
    fn labels_are_escaped_and_process_figures_read() {
        let mut t = Text::new();
        t.sample("x", &[("a", "q\"b\\c\nd")], 1);
        assert_eq!(t.into_string(), "x{a=\"q\\\"b\\\\c\\nd\"} 1\n");
        let mut t = Text::new();
        write_process(&mut t);
        let s = t.into_string();
        for name in [
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_threads ",
            "vireo_uptime_seconds ",
        ] {
            assert!(s.lines().any(|l| l.starts_with(name)), "no {name} in\n{s}");
        }
    }
}
