//! A network's DHCP and DNS server: Debian's `dnsmasq` (package dnsmasq-base), one per
//! network, configured entirely by one file the driver writes, supervised by the driver
//! and adopted by a restarted driver.
//!
//! dnsmasq reads its configuration and opens its lease file as root, then drops to
//! `nobody`; so every setting, static hosts included, is in the one file, and a change
//! (`net-update`) rewrites it and restarts dnsmasq. The leases survive a restart in the
//! lease file. dnsmasq writes no pid file (it could not, as `nobody`, in our directories):
//! the driver writes the pid, and knows dnsmasq is serving from its "started" log line.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{NetworkError, Result};

/// A DHCP range of one subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub start: IpAddr,
    pub end: IpAddr,
    pub prefix: u8,
    /// Lease time in seconds; `None` for dnsmasq's default (one hour), `Some(0)` infinite.
    pub lease: Option<u64>,
}

/// A static DHCP host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub mac: Option<String>,
    /// DHCPv6: the client's DUID.
    pub id: Option<String>,
    pub name: Option<String>,
    pub ip: Option<IpAddr>,
}

/// What dnsmasq is told.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub bridge: String,
    /// The bridge's own addresses (dnsmasq listens there).
    pub listen: Vec<IpAddr>,
    /// `<domain name=…>`, and whether names in it are answered only locally.
    pub domain: Option<(String, bool)>,
    /// DNS off (`<dns enable='no'>`): DHCP only.
    pub no_dns: bool,
    /// Upstream servers: (address, domain).
    pub forwarders: Vec<(Option<String>, Option<String>)>,
    /// `<dns><host ip>` names.
    pub dns_hosts: Vec<(IpAddr, Vec<String>)>,
    /// `<dns><txt name value>`.
    pub txt: Vec<(String, String)>,
    pub ranges: Vec<Range>,
    pub hosts: Vec<Host>,
    /// Whether IPv6 addresses are routed on the network (router advertisements).
    pub ipv6: bool,
}

impl Config {
    /// The text of the configuration file.
    pub fn render(&self, lease_file: &Path) -> String {
        let mut s = String::from("# Written by vireo-networkd; changes are overwritten.\n");
        // No pid file: the driver keeps the pid.
        s.push_str("pid-file=\n");
        let _ = writeln!(s, "dhcp-leasefile={}", lease_file.display());
        s.push_str("strict-order\nexcept-interface=lo\nbind-dynamic\n");
        let _ = writeln!(s, "interface={}", self.bridge);
        if self.no_dns {
            s.push_str("port=0\n");
        }
        if let Some((d, local)) = &self.domain {
            let _ = writeln!(s, "domain={d}");
            s.push_str("expand-hosts\n");
            if *local {
                let _ = writeln!(s, "local=/{d}/");
            }
        }
        for (addr, dom) in &self.forwarders {
            match (addr, dom) {
                (Some(a), Some(d)) => writeln!(s, "server=/{d}/{a}"),
                (Some(a), None) => writeln!(s, "server={a}"),
                (None, Some(d)) => writeln!(s, "server=/{d}/"),
                (None, None) => Ok(()),
            }
            .ok();
        }
        for (ip, names) in &self.dns_hosts {
            for n in names {
                let _ = writeln!(s, "host-record={n},{ip}");
            }
        }
        for (name, value) in &self.txt {
            let _ = writeln!(s, "txt-record={name},{value}");
        }
        let mut leases = 0u64;
        for r in &self.ranges {
            let lease = match r.lease {
                None => String::new(),
                Some(0) => ",infinite".into(),
                Some(secs) => format!(",{secs}"),
            };
            match (r.start, r.end) {
                (IpAddr::V4(a), IpAddr::V4(b)) => {
                    let mask = u32::MAX.checked_shl(32 - u32::from(r.prefix)).unwrap_or(0);
                    let _ = writeln!(
                        s,
                        "dhcp-range={a},{b},{}{lease}",
                        std::net::Ipv4Addr::from(mask)
                    );
                    leases += u64::from(u32::from(b).saturating_sub(u32::from(a))) + 1;
                }
                (a, b) => {
                    let _ = writeln!(s, "dhcp-range={a},{b},{}{lease}", r.prefix);
                    leases += 65536;
                }
            }
        }
        for h in &self.hosts {
            let mut parts: Vec<String> = Vec::new();
            if let Some(m) = &h.mac {
                parts.push(m.clone());
            }
            if let Some(id) = &h.id {
                parts.push(format!("id:{id}"));
            }
            if let Some(ip) = h.ip {
                parts.push(match ip {
                    IpAddr::V6(v6) => format!("[{v6}]"),
                    v4 => v4.to_string(),
                });
            }
            if let Some(n) = &h.name {
                parts.push(n.clone());
            }
            let _ = writeln!(s, "dhcp-host={}", parts.join(","));
        }
        if !self.ranges.is_empty() || !self.hosts.is_empty() {
            s.push_str("dhcp-no-override\ndhcp-authoritative\n");
            let _ = writeln!(s, "dhcp-lease-max={}", leases.clamp(1, 1_000_000));
        }
        if self.ipv6 {
            s.push_str("enable-ra\n");
        }
        s
    }
}

/// The files of one network's dnsmasq.
#[derive(Debug, Clone)]
pub struct Files {
    pub conf: PathBuf,
    pub pid: PathBuf,
    pub leases: PathBuf,
    pub log: PathBuf,
}

/// A running dnsmasq, restarted by its watcher thread if it dies while wanted.
pub struct Dnsmasq {
    files: Files,
    pid: Arc<Mutex<i32>>,
    wanted: Arc<AtomicBool>,
}

/// Opens a pidfd for `pid` (exit readiness without being its parent).
fn pidfd(pid: i32) -> Option<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid)?;
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
}

/// Waits until the process behind `fd` has ended, or `timeout` passed; true if it ended.
fn wait_pidfd(fd: &OwnedFd, timeout: Option<Duration>) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let limit = timeout.map(|t| {
        Timespec::try_from(t).unwrap_or(Timespec {
            tv_sec: i64::MAX,
            tv_nsec: 0,
        })
    });
    loop {
        let mut p = [PollFd::new(fd, PollFlags::IN)];
        match poll(&mut p, limit.as_ref()) {
            Err(rustix::io::Errno::INTR) => continue,
            r => return r.is_ok_and(|n| n > 0),
        }
    }
}

/// Whether `pid` is a dnsmasq started with the configuration file `conf`.
fn is_ours(pid: i32, conf: &Path) -> bool {
    let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let want = format!("--conf-file={}", conf.display());
    cmd.split(|&b| b == 0).any(|a| a == want.as_bytes())
}

fn spawn(files: &Files) -> Result<std::process::Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&files.log)
        .map_err(|e| NetworkError::io(format!("cannot open {}", files.log.display()), e))?;
    let path = vireo_hostprog::find("dnsmasq")?;
    let mut cmd = std::process::Command::new(path);
    cmd.arg(format!("--conf-file={}", files.conf.display()))
        .arg("--keep-in-foreground")
        .arg("--log-facility=-")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log);
    // SAFETY: fork/exec: setsid is async-signal-safe; it lets dnsmasq outlive the driver's
    // daemon.
    unsafe {
        cmd.pre_exec(|| {
            let _ = rustix::process::setsid();
            Ok(())
        });
    }
    cmd.spawn()
        .map_err(|e| NetworkError::io("cannot run dnsmasq", e))
}

/// dnsmasq exits at once when its configuration is wrong; give it that moment, and read
/// why from its log.
fn check_started(child: &mut std::process::Child, files: &Files) -> Result<()> {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(st)) = child.try_wait() {
            let log = std::fs::read_to_string(&files.log).unwrap_or_default();
            let last = log.lines().last().unwrap_or("").to_string();
            return Err(NetworkError::Command(format!(
                "dnsmasq exited ({st}): {last}"
            )));
        }
        // Serving: it says so once its sockets are bound.
        let started = format!("dnsmasq[{}]: started", child.id());
        if std::fs::read_to_string(&files.log).is_ok_and(|l| l.contains(&started)) {
            return vireo_driver::store::write_atomic(
                &files.pid,
                child.id().to_string().as_bytes(),
            )
            .map_err(Into::into);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Err(NetworkError::Internal("dnsmasq did not start".into()))
}

impl Dnsmasq {
    /// Writes the configuration and starts dnsmasq.
    pub fn start(files: Files, config: &str) -> Result<Dnsmasq> {
        vireo_driver::store::write_atomic(&files.conf, config.as_bytes())?;
        let _ = std::fs::remove_file(&files.pid);
        let mut child = spawn(&files)?;
        if let Err(e) = check_started(&mut child, &files) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        let d = Dnsmasq {
            files,
            pid: Arc::new(Mutex::new(child.id() as i32)),
            wanted: Arc::new(AtomicBool::new(true)),
        };
        d.watch(Some(child));
        Ok(d)
    }

    /// Finds the dnsmasq a previous daemon started for these files, if it still runs.
    pub fn adopt(files: Files) -> Option<Dnsmasq> {
        let pid: i32 = std::fs::read_to_string(&files.pid)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        if !is_ours(pid, &files.conf) {
            return None;
        }
        let d = Dnsmasq {
            files,
            pid: Arc::new(Mutex::new(pid)),
            wanted: Arc::new(AtomicBool::new(true)),
        };
        d.watch(None);
        Some(d)
    }

    pub fn pid(&self) -> i32 {
        *self.pid.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn lease_file(&self) -> &Path {
        &self.files.leases
    }

    /// Waits for the process to end and starts it again while it is wanted (at most five
    /// times a minute; then it stays down and says so in the log).
    fn watch(&self, child: Option<std::process::Child>) {
        let files = self.files.clone();
        let pid = Arc::clone(&self.pid);
        let wanted = Arc::clone(&self.wanted);
        let first = child;
        std::thread::spawn(move || {
            let mut child = first;
            let mut restarts: Vec<Instant> = Vec::new();
            loop {
                match child.take() {
                    Some(mut c) => {
                        let _ = c.wait();
                    }
                    None => {
                        let p = *pid.lock().unwrap_or_else(|e| e.into_inner());
                        if let Some(fd) = pidfd(p) {
                            wait_pidfd(&fd, None);
                        }
                    }
                }
                if !wanted.load(Ordering::SeqCst) {
                    return;
                }
                restarts.retain(|t| t.elapsed() < Duration::from_secs(60));
                if restarts.len() >= 5 {
                    log::error!(
                        "dnsmasq of {} keeps exiting; not restarting it",
                        files.conf.display()
                    );
                    return;
                }
                restarts.push(Instant::now());
                // The pid's lock is held while restarting, and `wanted` read under it: a
                // stop() either comes before (no restart) or waits and stops the new one.
                let mut current = pid.lock().unwrap_or_else(|e| e.into_inner());
                if !wanted.load(Ordering::SeqCst) {
                    return;
                }
                log::warn!("dnsmasq of {} exited; restarting it", files.conf.display());
                match spawn(&files).and_then(|mut c| {
                    check_started(&mut c, &files)?;
                    Ok(c)
                }) {
                    Ok(c) => {
                        *current = c.id() as i32;
                        child = Some(c);
                    }
                    Err(e) => {
                        log::error!("cannot restart dnsmasq: {e}");
                        return;
                    }
                }
            }
        });
    }

    /// Stops dnsmasq (SIGTERM, then SIGKILL after 5 s) and waits until it is gone.
    pub fn stop(&self) {
        self.wanted.store(false, Ordering::SeqCst);
        // Waits for a restart under way (see `watch`), then stops what runs.
        let pid = self.pid();
        let Some(fd) = pidfd(pid) else { return };
        use rustix::process::{pidfd_send_signal, Signal};
        let _ = pidfd_send_signal(&fd, Signal::TERM);
        if !wait_pidfd(&fd, Some(Duration::from_secs(5))) {
            let _ = pidfd_send_signal(&fd, Signal::KILL);
            wait_pidfd(&fd, Some(Duration::from_secs(5)));
        }
        let _ = std::fs::remove_file(&self.files.pid);
    }

    /// Rewrites the configuration and restarts dnsmasq with it (the leases stay).
    pub fn reconfigure(self, config: &str) -> Result<Dnsmasq> {
        self.stop();
        Dnsmasq::start(self.files.clone(), config)
    }
}

/// One DHCP lease, as dnsmasq's lease file has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Seconds since the epoch; 0 for an infinite lease.
    pub expiry: i64,
    pub mac: Option<String>,
    pub iaid: Option<String>,
    pub ip: IpAddr,
    pub hostname: Option<String>,
    pub client_id: Option<String>,
}

/// Reads dnsmasq's lease file (`expiry mac ip name clientid` lines for IPv4; after the
/// `duid` line, `expiry iaid ip name duid` for IPv6). Malformed lines are skipped.
pub fn read_leases(path: &Path) -> Vec<Lease> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let opt = |s: &str| (s != "*").then(|| s.to_string());
    let mut out = Vec::new();
    let mut v6 = false;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.first() == Some(&"duid") {
            v6 = true;
            continue;
        }
        if f.len() < 4 {
            continue;
        }
        let (Ok(expiry), Ok(ip)) = (f[0].parse::<i64>(), f[2].parse::<IpAddr>()) else {
            continue;
        };
        out.push(Lease {
            expiry,
            mac: (!v6).then(|| f[1].to_string()),
            iaid: v6.then(|| f[1].to_string()),
            ip,
            hostname: opt(f[3]),
            client_id: f.get(4).and_then(|s| opt(s)),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_ranges_hosts_and_names() {
        let c = Config {
            bridge: "virbr0".into(),
            listen: vec!["192.168.122.1".parse().unwrap()],
            domain: Some(("example.test".into(), true)),
            ranges: vec![Range {
                start: "192.168.122.2".parse().unwrap(),
                end: "192.168.122.254".parse().unwrap(),
                prefix: 24,
                lease: Some(3600),
            }],
            hosts: vec![Host {
                mac: Some("52:54:00:00:00:01".into()),
                id: None,
                name: Some("one".into()),
                ip: Some("192.168.122.10".parse().unwrap()),
            }],
            dns_hosts: vec![("192.168.122.1".parse().unwrap(), vec!["gw".into()])],
            ..Config::default()
        };
        let s = c.render(Path::new("/s/n.leases"));
        for want in [
            "pid-file=\n",
            "dhcp-leasefile=/s/n.leases\n",
            "interface=virbr0\n",
            "domain=example.test\n",
            "local=/example.test/\n",
            "dhcp-range=192.168.122.2,192.168.122.254,255.255.255.0,3600\n",
            "dhcp-host=52:54:00:00:00:01,192.168.122.10,one\n",
            "host-record=gw,192.168.122.1\n",
            "dhcp-lease-max=253\n",
        ] {
            assert!(s.contains(want), "{want} missing in\n{s}");
        }
    }

    #[test]
    fn leases_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l");
        std::fs::write(
            &p,
            "1700000000 52:54:00:aa:bb:cc 192.168.122.50 guest 01:52:54:00:aa:bb:cc\n\
             garbage\n0 52:54:00:aa:bb:cd 192.168.122.51 * *\n\
             duid 00:01:00:01\n1700000000 1234 fd00::5 g6 00:02\n",
        )
        .unwrap();
        let l = read_leases(&p);
        assert_eq!(l.len(), 3);
        assert_eq!(l[0].hostname.as_deref(), Some("guest"));
        assert_eq!(l[1].hostname, None);
        assert_eq!(l[1].expiry, 0);
        assert_eq!(l[2].iaid.as_deref(), Some("1234"));
        assert_eq!(l[2].mac, None);
    }
}
