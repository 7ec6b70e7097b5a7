//! Live migration between two hosts, the QEMU driver's part of libvirt's migration
//! protocol version 3 (Begin, Prepare, Perform, Finish, Confirm with typed parameters).
//!
//! The migration stream goes between the two QEMUs over a TCP connection the *daemons*
//! make, handed to the shims as a descriptor (a shim never listens on the network):
//! - Prepare (destination) binds a listener (libvirt's port range 49152–49215, or the
//!   port of `migrate_uri`) and answers `tcp:HOST:PORT`; a task accepts one connection
//!   and starts the domain's shim with it as its incoming stream (`-incoming defer`,
//!   `migrate-incoming fd:`), paused.
//! - Perform (source) connects to that address and gives the socket to the VM's shim
//!   (`SHIM_MIGRATE`), which migrates the guest live as a job (`domjobinfo`,
//!   `domjobabort`) and returns once the destination has it all (the guest is paused
//!   here) or the migration failed (the guest goes on here).
//! - Finish (destination) waits for that start, makes the domain persistent if asked and
//!   runs the guest; cancelled, it makes sure the half-started VM is gone.
//! - Confirm (source) ends the VM here (STOPPED, MIGRATED), or, cancelled, lets the
//!   guest go on here.
//!
//! Both sockets get keepalives and a user timeout: a network cut ends the migration (and
//! the guest goes on at the source) instead of leaving it hanging.
//!
//! The cookies travel through the client untouched: small XML documents of Vireo's own
//! (`<vireo-migration>`), naming the domain and the host that wrote them.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use vireo_driver::{DriverError, Result};
use vireo_proto::error::{code, domain as errdom};
use vireo_proto::migrate::{
    flags as mf, param, reason, MAX_SPEED_POSTCOPY, OPERATION_MIGRATION_IN,
};
use vireo_proto::remote::job::{
    STATS_COMPLETED as JOB_STATS_COMPLETED, STATS_KEEP_COMPLETED as JOB_STATS_KEEP_COMPLETED,
};
use vireo_proto::remote::{
    procs, state, Domain as Handle, DomainArgs, DomainFlagsArgs, DomainGetJobStatsRet, Uuid,
};
use vireo_proto::typed::{TypedParam, TypedValue};
use vireo_proto::vireo::{
    migrate_end, procs as vprocs, ShimMigrateArgs, ShimMigrateEndArgs, ShimMigrateRet,
    VIREO_PROGRAM, VIREO_VERSION,
};
use vireo_proto::RemoteError;
use vireo_xml::{format_uuid, Domain};

use crate::driver::{no_domain_uuid, xml_error, QemuDriver};
use crate::lifecycle::{START_MIGRATED, START_PAUSED, START_POSTCOPY};

/// The line a migrated VM's shim prints (before READY) once its NBD server has the
/// exports of the disks copied to it.
pub const NBD_READY: &str = "NBD-READY";

/// libvirt's range of ports for incoming migrations.
const PORT_MIN: u16 = 49152;
const PORT_MAX: u16 = 49215;
/// How long a prepared destination waits for the source to connect.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the source may take to connect to the destination.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long Finish waits for the destination's VM once the source is done with it.
const FINISH_WAIT: Duration = Duration::from_secs(120);
/// How long a confirmed source's shim may take to end.
const SHIM_EXIT: Duration = Duration::from_secs(30);
/// Unacknowledged data older than this (the network is gone) ends the migration.
const USER_TIMEOUT_MS: u32 = 20_000;
/// Keepalive probes of an idle migration socket: after 10 s, every 5 s, 3 of them.
const KEEPIDLE_S: u64 = 10;
const KEEPINTVL_S: u64 = 5;
const KEEPCNT: u32 = 3;
/// libvirt's default (and largest) migration speed, MiB/s.
pub const MAX_SPEED_MIB: u64 = (i64::MAX as u64) >> 20;

/// `VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | VIR_DOMAIN_UNDEFINE_KEEP_NVRAM`: what the
/// source's undefine after a migration with UNDEFINE_SOURCE keeps and drops.
const UNDEFINE_AFTER_MIGRATION: u32 = 2 | 8;

/// The flags this driver migrates with; the others are refused.
const KNOWN_FLAGS: u32 = mf::LIVE
    | mf::PEER2PEER
    | mf::TUNNELLED
    | mf::PERSIST_DEST
    | mf::UNDEFINE_SOURCE
    | mf::PAUSED
    | mf::CHANGE_PROTECTION
    | mf::UNSAFE
    | mf::ABORT_ON_ERROR
    | mf::AUTO_CONVERGE
    | mf::POSTCOPY
    | mf::NON_SHARED_DISK
    | mf::NON_SHARED_INC;

/// Copying the disks (NBD) with the memory.
const NON_SHARED: u32 = mf::NON_SHARED_DISK | mf::NON_SHARED_INC;

/// The parameters this driver knows (others are refused, as libvirt does).
const KNOWN_PARAMS: &[&str] = &[
    param::URI,
    param::DEST_NAME,
    param::DEST_XML,
    param::PERSIST_XML,
    param::BANDWIDTH,
    param::BANDWIDTH_POSTCOPY,
    param::GRAPHICS_URI,
    param::LISTEN_ADDRESS,
    param::AUTO_CONVERGE_INITIAL,
    param::AUTO_CONVERGE_INCREMENT,
    param::MIGRATE_DISKS,
    param::DISKS_PORT,
    param::DISKS_URI,
];

/// The incoming migrations being prepared, and the migration speeds of domains that do
/// not run.
#[derive(Default)]
pub(crate) struct Migrations {
    incoming: Mutex<HashMap<String, Incoming>>,
    /// `migrate-setspeed` of domains that do not run, MiB/s (normal, post-copy).
    speeds: Mutex<HashMap<Uuid, (u64, u64)>>,
    next: AtomicU64,
    /// This daemon's own id in cookies: a migration to itself is refused.
    host_id: std::sync::OnceLock<Uuid>,
    /// The listening socket of the NBD server (and the disks it serves) that the start of
    /// an incoming domain hands its shim, by domain UUID.
    nbd_start: Mutex<HashMap<Uuid, (OwnedFd, Vec<String>)>>,
    /// Says when an incoming domain's NBD server has its exports, by domain UUID.
    nbd_ready: Mutex<HashMap<Uuid, tokio::sync::watch::Sender<bool>>>,
}

/// A destination waiting for (or receiving) its domain.
struct Incoming {
    id: u64,
    /// Stops the wait for the source's connection (Finish with `cancelled`).
    cancel: Option<oneshot::Sender<()>>,
    /// The start of the domain from the stream.
    task: tokio::task::JoinHandle<Result<Handle>>,
    /// The disks being copied here: the relay of their NBD connections, and the NBD
    /// server's socket file.
    nbd: Option<(tokio::task::JoinHandle<()>, PathBuf)>,
}

impl Incoming {
    /// The NBD relay stops and its socket goes (the migration ended, either way).
    fn end_nbd(&mut self) {
        if let Some((relay, path)) = self.nbd.take() {
            relay.abort();
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Migrations {
    fn incoming(&self) -> std::sync::MutexGuard<'_, HashMap<String, Incoming>> {
        self.incoming.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn speeds(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (u64, u64)>> {
        self.speeds.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn nbd_start(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (OwnedFd, Vec<String>)>> {
        self.nbd_start.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn host_id(&self) -> Uuid {
        *self
            .host_id
            .get_or_init(|| *uuid::Uuid::new_v4().as_bytes())
    }
}

/// The typed parameters of a migration call, checked.
pub struct Params<'a>(&'a [TypedParam]);

impl<'a> Params<'a> {
    /// Refuses unknown parameters, parameters given twice and values of the wrong type.
    pub fn new(params: &'a [TypedParam]) -> Result<Params<'a>> {
        for (i, p) in params.iter().enumerate() {
            if !KNOWN_PARAMS.contains(&p.field.as_str()) {
                return Err(DriverError::ArgUnsupported(format!(
                    "parameter '{}' not supported",
                    p.field
                )));
            }
            // migrate_disks names one disk each time it is given.
            if p.field != param::MIGRATE_DISKS && params[..i].iter().any(|q| q.field == p.field) {
                return Err(DriverError::InvalidArg(format!(
                    "parameter '{}' occurs multiple times",
                    p.field
                )));
            }
            let want_string = !matches!(
                p.field.as_str(),
                param::BANDWIDTH
                    | param::BANDWIDTH_POSTCOPY
                    | param::AUTO_CONVERGE_INITIAL
                    | param::AUTO_CONVERGE_INCREMENT
                    | param::DISKS_PORT
            );
            let ok = match &p.value {
                TypedValue::String(_) => want_string,
                TypedValue::ULLong(_) => {
                    matches!(
                        p.field.as_str(),
                        param::BANDWIDTH | param::BANDWIDTH_POSTCOPY
                    )
                }
                TypedValue::Int(_) => matches!(
                    p.field.as_str(),
                    param::AUTO_CONVERGE_INITIAL
                        | param::AUTO_CONVERGE_INCREMENT
                        | param::DISKS_PORT
                ),
                _ => false,
            };
            if !ok {
                return Err(DriverError::InvalidArg(format!(
                    "invalid type for parameter '{}'",
                    p.field
                )));
            }
        }
        Ok(Params(params))
    }

    pub fn string(&self, name: &str) -> Option<&'a str> {
        self.0
            .iter()
            .find(|p| p.field == name)
            .and_then(|p| match &p.value {
                TypedValue::String(s) => Some(s.as_str()),
                _ => None,
            })
    }

    fn ullong(&self, name: &str) -> Option<u64> {
        self.0
            .iter()
            .find(|p| p.field == name)
            .and_then(|p| p.value.as_u64())
    }

    /// Every value of a string parameter given more than once (`migrate_disks`).
    fn strings(&self, name: &str) -> Vec<&'a str> {
        self.0
            .iter()
            .filter(|p| p.field == name)
            .filter_map(|p| match &p.value {
                TypedValue::String(s) => Some(s.as_str()),
                _ => None,
            })
            .collect()
    }

    fn int(&self, name: &str) -> Option<i32> {
        self.0
            .iter()
            .find(|p| p.field == name)
            .and_then(|p| match p.value {
                TypedValue::Int(v) => Some(v),
                _ => None,
            })
    }
}

/// Replaces (or adds) the string parameter `name`.
pub fn set_string(params: &mut Vec<TypedParam>, name: &str, value: &str) {
    params.retain(|p| p.field != name);
    params.push(TypedParam::string(name, value));
}

fn check_migrate_flags(flags: u32) -> Result<()> {
    if flags & mf::TUNNELLED != 0 && flags & mf::POSTCOPY != 0 {
        return Err(DriverError::ArgUnsupported(
            "post-copy is not supported with tunnelled migration".into(),
        ));
    }
    if flags & NON_SHARED == NON_SHARED {
        return Err(DriverError::InvalidArg(
            "flags 'copy-storage-all' and 'copy-storage-inc' are mutually exclusive".into(),
        ));
    }
    if flags & NON_SHARED != 0 && flags & (mf::TUNNELLED | mf::POSTCOPY) != 0 {
        return Err(DriverError::ArgUnsupported(
            "copying the disks is not supported by Vireo with tunnelled or post-copy migration \
             yet"
            .into(),
        ));
    }
    let unknown = flags & !KNOWN_FLAGS;
    if unknown == 0 {
        return Ok(());
    }
    let what = if unknown & mf::OFFLINE != 0 {
        "offline migration is not supported by Vireo yet".to_string()
    } else if unknown & mf::TLS != 0 {
        "migration over TLS is not supported by Vireo yet".to_string()
    } else {
        format!("unsupported flags (0x{unknown:x})")
    };
    Err(DriverError::ArgUnsupported(what))
}

/// A tunnelled migration's stream goes through the daemons' connection, never a direct one.
fn not_tunnelled(flags: u32) -> Result<()> {
    if flags & mf::TUNNELLED != 0 {
        return Err(DriverError::OperationInvalid(
            "a tunnelled migration goes peer to peer, through the destination's daemon".into(),
        ));
    }
    Ok(())
}

/// The cookie a migration step hands the next: who wrote it, for which domain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cookie {
    pub name: String,
    pub uuid: Option<Uuid>,
    pub hostname: String,
    pub host_id: Option<Uuid>,
    /// The destination's NBD server for the disks being copied.
    pub nbd_port: Option<u16>,
    /// Perform's answer: the source's statistics of the migration (its job's counters),
    /// which the destination keeps as its own completed job (and Finish's answer: the
    /// same, with the downtime as the destination counted it).
    pub stats: Vec<(String, u64)>,
    /// Perform's answer: when the source paused the guest for the switch-over (ms since
    /// the epoch), the start of the downtime the destination counts to its resume.
    pub stopped_at_ms: Option<u64>,
}

impl Cookie {
    pub fn format(&self) -> Vec<u8> {
        let esc = vireo_xml::util::escape;
        let mut s = String::from("<vireo-migration>\n");
        s += &format!("  <name>{}</name>\n", esc(&self.name));
        if let Some(u) = &self.uuid {
            s += &format!("  <uuid>{}</uuid>\n", format_uuid(u));
        }
        s += &format!("  <hostname>{}</hostname>\n", esc(&self.hostname));
        if let Some(u) = &self.host_id {
            s += &format!("  <hostuuid>{}</hostuuid>\n", format_uuid(u));
        }
        if let Some(p) = self.nbd_port {
            s += &format!("  <nbd port='{p}'/>\n");
        }
        if let Some(ms) = self.stopped_at_ms {
            s += &format!("  <stopped ms='{ms}'/>\n");
        }
        if !self.stats.is_empty() {
            s += "  <statistics>\n";
            for (name, v) in &self.stats {
                s += &format!("    <stat name='{}'>{v}</stat>\n", esc(name));
            }
            s += "  </statistics>\n";
        }
        s += "</vireo-migration>\n";
        s.into_bytes()
    }

    /// Reads a cookie; an empty one is no cookie (a client that drives the steps itself).
    pub fn parse(bytes: &[u8]) -> Result<Option<Cookie>> {
        let bad = |why: String| DriverError::InvalidArg(format!("bad migration cookie: {why}"));
        let text = std::str::from_utf8(bytes).map_err(|e| bad(e.to_string()))?;
        let text = text.trim_end_matches('\0').trim();
        if text.is_empty() {
            return Ok(None);
        }
        let doc = roxmltree::Document::parse(text).map_err(|e| bad(e.to_string()))?;
        let root = doc.root_element();
        if root.tag_name().name() != "vireo-migration" {
            return Err(bad(format!(
                "<{}> is not a Vireo migration cookie",
                root.tag_name().name()
            )));
        }
        let child = |n: &str| {
            root.children()
                .find(|c| c.has_tag_name(n))
                .and_then(|c| c.text())
                .map(str::to_string)
        };
        let uuid = |n: &str| -> Result<Option<Uuid>> {
            child(n)
                .map(|u| vireo_xml::parse_uuid(&u).ok_or_else(|| bad(format!("bad <{n}> {u}"))))
                .transpose()
        };
        Ok(Some(Cookie {
            name: child("name").unwrap_or_default(),
            uuid: uuid("uuid")?,
            hostname: child("hostname").unwrap_or_default(),
            host_id: uuid("hostuuid")?,
            nbd_port: root
                .children()
                .find(|c| c.has_tag_name("nbd"))
                .and_then(|c| c.attribute("port"))
                .map(|p| p.parse().map_err(|_| bad(format!("bad NBD port {p}"))))
                .transpose()?,
            stopped_at_ms: root
                .children()
                .find(|c| c.has_tag_name("stopped"))
                .and_then(|c| c.attribute("ms"))
                .map(|p| p.parse().map_err(|_| bad(format!("bad stop time {p}"))))
                .transpose()?,
            stats: match root.children().find(|c| c.has_tag_name("statistics")) {
                None => Vec::new(),
                Some(st) => {
                    let mut out = Vec::new();
                    for c in st.children().filter(|c| c.has_tag_name("stat")) {
                        if out.len() == vireo_proto::remote::DOMAIN_JOB_STATS_MAX {
                            return Err(bad("too many statistics".into()));
                        }
                        let name = c.attribute("name").unwrap_or_default();
                        let v = c.text().unwrap_or_default().trim();
                        let v = v
                            .parse()
                            .map_err(|_| bad(format!("bad statistic {name}: '{v}'")))?;
                        out.push((name.to_string(), v));
                    }
                    out
                }
            },
        }))
    }
}

/// Where a migration stream goes: `tcp:HOST:PORT`, `tcp://HOST:PORT` (a port is
/// optional where the caller supplies one), IPv6 addresses in brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateUri {
    pub host: Option<String>,
    pub port: Option<u16>,
}

impl MigrateUri {
    pub fn parse(uri: &str) -> Result<MigrateUri> {
        let bad =
            |why: &str| DriverError::InvalidArg(format!("invalid migration URI '{uri}': {why}"));
        let rest = uri
            .strip_prefix("tcp://")
            .or_else(|| uri.strip_prefix("tcp:"))
            .ok_or_else(|| bad("only tcp: migration URIs are supported"))?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(bad("junk after the address")),
            };
            (h.to_string(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h.to_string(), Some(p)),
                _ => (rest.to_string(), None),
            }
        };
        let port = port
            .map(|p| p.parse::<u16>().map_err(|_| bad("bad port")))
            .transpose()?;
        if port == Some(0) {
            return Err(bad("bad port"));
        }
        Ok(MigrateUri {
            host: Some(host).filter(|h| !h.is_empty()),
            port,
        })
    }

    /// `tcp:HOST:PORT` (brackets around an IPv6 address).
    pub fn format(host: &str, port: u16) -> String {
        if host.contains(':') {
            format!("tcp:[{host}]:{port}")
        } else {
            format!("tcp:{host}:{port}")
        }
    }
}

/// Keepalives and a user timeout on a migration socket: a dead peer or a cut network
/// fails the migration within seconds instead of hanging it.
pub fn tune_socket(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    use rustix::net::sockopt;
    use std::time::Duration;
    sockopt::set_socket_keepalive(fd, true)?;
    sockopt::set_tcp_keepidle(fd, Duration::from_secs(KEEPIDLE_S))?;
    sockopt::set_tcp_keepintvl(fd, Duration::from_secs(KEEPINTVL_S))?;
    sockopt::set_tcp_keepcnt(fd, KEEPCNT)?;
    sockopt::set_tcp_user_timeout(fd, USER_TIMEOUT_MS)?;
    Ok(())
}

/// A listener for the incoming stream: on `addr` (all addresses: None), on `port` or the
/// first free one of libvirt's range.
fn listen(addr: Option<IpAddr>, port: Option<u16>) -> Result<std::net::TcpListener> {
    let addrs: Vec<IpAddr> = match addr {
        Some(a) => vec![a],
        // Both families where the host has IPv6, else IPv4 only.
        None => vec![
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        ],
    };
    let ports: Vec<u16> = match port {
        Some(p) => vec![p],
        None => (PORT_MIN..=PORT_MAX).collect(),
    };
    let mut last = None;
    for a in &addrs {
        for p in &ports {
            match std::net::TcpListener::bind(SocketAddr::new(*a, *p)) {
                Ok(l) => return Ok(l),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last = Some(e),
                // This family is not there (no IPv6): try the next.
                Err(e) => {
                    last = Some(e);
                    break;
                }
            }
        }
    }
    let what = match port {
        Some(p) => format!("cannot listen for the incoming migration on port {p}"),
        None => format!(
            "cannot listen for the incoming migration: no free port in {PORT_MIN}-{PORT_MAX}"
        ),
    };
    Err(match last {
        Some(e) => DriverError::io(what, e),
        None => DriverError::OperationFailed(what),
    })
}

/// This host's address towards `peer` (the one a connection from it came in on): the
/// kernel's choice of a source address for a datagram socket connected to it; nothing is
/// sent.
pub fn local_address_towards(peer: IpAddr) -> Option<IpAddr> {
    let any: IpAddr = match peer {
        IpAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    let s = std::net::UdpSocket::bind(SocketAddr::new(any, 0)).ok()?;
    s.connect(SocketAddr::new(peer, 9)).ok()?;
    let local = s.local_addr().ok()?.ip();
    (!local.is_unspecified()).then_some(local)
}

/// A TCP connection to the destination (its migration or NBD port), set up as a
/// migration socket.
async fn connect(host: &str, port: u16) -> Result<OwnedFd> {
    let stream = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    .map_err(|_| {
        DriverError::OperationFailed(format!(
            "cannot reach the destination at {host}:{port}: no answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        ))
    })?
    .map_err(|e| {
        DriverError::OperationFailed(format!(
            "cannot reach the destination at {host}:{port}: {e}"
        ))
    })?;
    let sock: OwnedFd = stream
        .into_std()
        .map_err(|e| DriverError::io("cannot take the migration socket", e))?
        .into();
    tune_socket(sock.as_fd())
        .map_err(|e| DriverError::io("cannot set up the migration socket", e))?;
    Ok(sock)
}

/// The disks (targets) a migration with NON_SHARED_DISK / _INC copies: those
/// `migrate_disks` names, else every writable, unshared disk with an image.
pub fn disks_to_copy(def: &Domain, params: &Params<'_>) -> Result<Vec<String>> {
    let named = params.strings(param::MIGRATE_DISKS);
    if !named.is_empty() {
        for n in &named {
            if !def.devices.disks.iter().any(|d| d.target.dev == *n) {
                return Err(DriverError::InvalidArg(format!(
                    "disk target {n} not found"
                )));
            }
        }
        return Ok(named.into_iter().map(str::to_string).collect());
    }
    Ok(def
        .devices
        .disks
        .iter()
        .filter(|d| d.device == vireo_xml::DiskDevice::Disk)
        .filter(|d| !d.readonly && !d.shareable)
        .filter(|d| d.disk_type != vireo_xml::DiskType::Network)
        .filter(|d| d.source.is_some())
        .map(|d| d.target.dev.clone())
        .collect())
}

/// The images the disks copied here are written into must be there (as libvirt, Vireo
/// does not make them: create them first, as large as the source's).
fn check_images_exist(def: &Domain, disks: &[String]) -> Result<()> {
    for d in def
        .devices
        .disks
        .iter()
        .filter(|d| disks.contains(&d.target.dev))
    {
        let path = d
            .source
            .as_ref()
            .and_then(|s| s.file.as_deref().or(s.dev.as_deref()));
        if let Some(p) = path.filter(|p| !std::path::Path::new(p).exists()) {
            return Err(DriverError::OperationInvalid(format!(
                "the image {p} of disk {} must exist on the destination to copy the disk \
                 into it",
                d.target.dev
            )));
        }
    }
    Ok(())
}

/// The `bandwidth` parameter (MiB/s; 0: the VM's own setting).
fn speed_of(params: &Params<'_>) -> Result<u64> {
    match params.ullong(param::BANDWIDTH) {
        Some(b) if b > MAX_SPEED_MIB => Err(DriverError::InvalidArg(format!(
            "bandwidth must be less than {}",
            MAX_SPEED_MIB + 1
        ))),
        Some(b) => Ok(b),
        None => Ok(0),
    }
}

/// Now, in milliseconds since the epoch.
fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// libvirt's answer of a Finish that cleaned up after a cancelled migration.
fn finish_ok() -> DriverError {
    DriverError::Peer(Box::new(RemoteError::new(
        93, // VIR_ERR_MIGRATE_FINISH_OK
        errdom::QEMU,
        "migration successfully aborted",
    )))
}

impl QemuDriver {
    fn cookie_for(&self, name: &str, uuid: Option<Uuid>) -> Vec<u8> {
        self.cookie_with(name, uuid, None)
    }

    fn cookie_with(&self, name: &str, uuid: Option<Uuid>, nbd_port: Option<u16>) -> Vec<u8> {
        Cookie {
            nbd_port,
            ..self.cookie(name, uuid)
        }
        .format()
    }

    fn cookie(&self, name: &str, uuid: Option<Uuid>) -> Cookie {
        Cookie {
            name: name.to_string(),
            uuid,
            hostname: vireo_driver::host::hostname(),
            host_id: Some(self.migrations.host_id()),
            nbd_port: None,
            stats: Vec::new(),
            stopped_at_ms: None,
        }
    }

    /// Begin (source): the definition the destination starts the domain with (the live
    /// one, or the caller's `destination_xml` for the same domain) and the first cookie.
    pub async fn migrate_begin(
        self: &Arc<Self>,
        h: &Handle,
        params: &[TypedParam],
        flags: u32,
    ) -> Result<(Vec<u8>, String)> {
        check_migrate_flags(flags)?;
        let params = Params::new(params)?;
        if !self.is_running(h)? {
            return Err(DriverError::OperationInvalid(
                "domain is not running".into(),
            ));
        }
        let live = self.live_def(h).await?;
        let def = match params.string(param::DEST_XML) {
            Some(x) => {
                let mut d = Domain::parse(x).map_err(xml_error)?;
                if d.uuid.is_some() && d.uuid != live.uuid {
                    return Err(DriverError::InvalidArg(
                        "the destination XML describes another domain (its uuid differs)".into(),
                    ));
                }
                d.uuid = live.uuid;
                d
            }
            None => live,
        };
        let cookie = self.cookie_for(&h.name, Some(h.uuid));
        Ok((cookie, def.format()))
    }

    /// The definition an incoming migration starts (the caller's destination XML, named
    /// `destination_name` if given), checked against the cookie and against this host's
    /// domains; and the start flags.
    fn arrival(&self, params: &Params<'_>, cookie: &[u8], flags: u32) -> Result<(Domain, u32)> {
        let xml = params.string(param::DEST_XML).ok_or_else(|| {
            DriverError::InvalidArg("no domain XML passed to the migration".into())
        })?;
        let mut def = self.prepare(xml)?;
        if let Some(dname) = params.string(param::DEST_NAME).filter(|n| !n.is_empty()) {
            def.name = dname.to_string();
        }
        if let Some(c) = Cookie::parse(cookie)? {
            if c.host_id == Some(self.migrations.host_id()) {
                return Err(DriverError::InvalidArg(
                    "Attempt to migrate guest to the same host".into(),
                ));
            }
            if c.uuid.is_some() && c.uuid != def.uuid {
                return Err(DriverError::InvalidArg(
                    "the migration cookie is for another domain".into(),
                ));
            }
        }
        let uuid = def.uuid.unwrap_or_default();
        let reg = self.read();
        reg.check_identity(&def.name, &uuid)?;
        if reg
            .by_uuid
            .get(&uuid)
            .is_some_and(|o| o.active() || o.starting)
        {
            return Err(DriverError::OperationInvalid(format!(
                "domain '{}' is already active",
                def.name
            )));
        }
        let mut start = START_PAUSED | START_MIGRATED;
        if flags & mf::POSTCOPY != 0 {
            start |= START_POSTCOPY;
        }
        Ok((def, start))
    }

    /// Registers the incoming migration of `name`, its start made by `task` (spawned here,
    /// only when no other migration of that name is under way).
    fn expect_incoming<F>(
        self: &Arc<Self>,
        name: &str,
        cancel: Option<oneshot::Sender<()>>,
        nbd: Option<(tokio::task::JoinHandle<()>, PathBuf)>,
        task: impl FnOnce(u64) -> F,
    ) -> Result<()>
    where
        F: std::future::Future<Output = Result<Handle>> + Send + 'static,
    {
        let mut incoming = self.migrations.incoming();
        if incoming.get(name).is_some_and(|i| !i.task.is_finished()) {
            if let Some((relay, path)) = nbd {
                relay.abort();
                let _ = std::fs::remove_file(path);
            }
            return Err(DriverError::OperationInvalid(format!(
                "domain '{name}' is already being migrated here"
            )));
        }
        let id = self.migrations.next.fetch_add(1, Ordering::Relaxed);
        let task = tokio::spawn(task(id));
        let old = incoming.insert(
            name.to_string(),
            Incoming {
                id,
                cancel,
                task,
                nbd,
            },
        );
        if let Some(mut old) = old {
            old.end_nbd();
        }
        Ok(())
    }

    /// Prepare (destination): the listener for the stream and the task that starts the
    /// domain from it. Answers the cookie and `tcp:HOST:PORT`: HOST is `migrate_uri`'s,
    /// else the listen address, else `local` (the address the caller's connection came in
    /// on, when it came over the network), else this host's name.
    pub async fn migrate_prepare(
        self: &Arc<Self>,
        params: &[TypedParam],
        cookie: &[u8],
        flags: u32,
        local: Option<IpAddr>,
    ) -> Result<(Vec<u8>, String)> {
        check_migrate_flags(flags)?;
        not_tunnelled(flags)?;
        let params = Params::new(params)?;
        let (def, start) = self.arrival(&params, cookie, flags)?;
        let uuid = def.uuid.unwrap_or_default();
        let target = params
            .string(param::URI)
            .map(MigrateUri::parse)
            .transpose()?;
        let listen_addr = params
            .string(param::LISTEN_ADDRESS)
            .filter(|a| !a.is_empty() && *a != "*")
            .map(|a| {
                a.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .map_err(|_| DriverError::InvalidArg(format!("invalid listen address '{a}'")))
            })
            .transpose()?;
        let listener = listen(listen_addr, target.as_ref().and_then(|t| t.port))?;
        let port = listener
            .local_addr()
            .map_err(|e| DriverError::io("cannot read the migration listener's port", e))?
            .port();
        listener
            .set_nonblocking(true)
            .map_err(|e| DriverError::io("cannot set up the migration listener", e))?;
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| DriverError::io("cannot set up the migration listener", e))?;
        let host = target
            .and_then(|t| t.host)
            .or_else(|| {
                listen_addr
                    .filter(|a| !a.is_unspecified())
                    .map(|a| a.to_string())
            })
            .or_else(|| local.map(|a| a.to_string()))
            .unwrap_or_else(vireo_driver::host::hostname);

        let name = def.name.clone();
        // The disks copied here come first, over NBD.
        let nbd = if flags & NON_SHARED != 0 {
            let disks = disks_to_copy(&def, &params)?;
            check_images_exist(&def, &disks)?;
            Some(self.nbd_endpoint(uuid, disks, params.int(param::DISKS_PORT), listen_addr)?)
        } else {
            None
        };
        let nbd_port = nbd.as_ref().map(|(port, _, _)| *port);
        let (cancel, cancelled) = oneshot::channel();
        let me = Arc::clone(self);
        let task_name = name.clone();
        let nbd = nbd.map(|(_, relay, path)| (relay, path));
        self.expect_incoming(&name, Some(cancel), nbd, move |id| async move {
            let sock = tokio::select! {
                r = tokio::time::timeout(ACCEPT_TIMEOUT, listener.accept()) => match r {
                    Ok(Ok((s, peer))) => {
                        log::info!("incoming migration of '{task_name}' from {peer}");
                        s
                    }
                    Ok(Err(e)) => {
                        return Err(DriverError::io("cannot accept the migration stream", e))
                    }
                    Err(_) => {
                        me.forget_incoming(&task_name, id);
                        return Err(DriverError::OperationFailed(format!(
                            "the source did not connect within {} s",
                            ACCEPT_TIMEOUT.as_secs()
                        )));
                    }
                },
                _ = cancelled => {
                    return Err(DriverError::OperationFailed("migration cancelled".into()))
                }
            };
            // One connection only: nobody else may reach this VM's stream.
            drop(listener);
            let sock: OwnedFd = sock
                .into_std()
                .map_err(|e| DriverError::io("cannot take the migration socket", e))?
                .into();
            tune_socket(sock.as_fd())
                .map_err(|e| DriverError::io("cannot set up the migration socket", e))?;
            me.run_transient(def, start, Some(sock)).await
        })?;
        Ok((
            self.cookie_with(&name, Some(uuid), nbd_port),
            MigrateUri::format(&host, port),
        ))
    }

    /// The NBD side of an incoming migration that copies disks: a listening UNIX socket
    /// for the domain's QEMU (its NBD server, handed to its shim at the start), and a TCP
    /// listener (`port`, or the next free one of the range) whose connections, one per
    /// disk, this daemon relays to it. Answers the TCP port, the relay, the socket's path.
    fn nbd_endpoint(
        &self,
        uuid: Uuid,
        disks: Vec<String>,
        port: Option<i32>,
        addr: Option<IpAddr>,
    ) -> Result<(u16, tokio::task::JoinHandle<()>, PathBuf)> {
        let port = port
            .map(|p| {
                u16::try_from(p)
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| DriverError::InvalidArg(format!("invalid disks port {p}")))
            })
            .transpose()?;
        let dir = self.cfg.run_dir.join("migrate");
        std::fs::create_dir_all(&dir)
            .map_err(|e| DriverError::io(format!("cannot create {}", dir.display()), e))?;
        let path = dir.join(format!("{}.nbd", format_uuid(&uuid)));
        let _ = std::fs::remove_file(&path);
        let unix = std::os::unix::net::UnixListener::bind(&path)
            .map_err(|e| DriverError::io(format!("cannot listen on {}", path.display()), e))?;
        let tcp = listen(addr, port)?;
        let tcp_port = tcp
            .local_addr()
            .and_then(|a| tcp.set_nonblocking(true).map(|_| a.port()))
            .map_err(|e| DriverError::io("cannot set up the NBD listener", e))?;
        let tcp = tokio::net::TcpListener::from_std(tcp)
            .map_err(|e| DriverError::io("cannot set up the NBD listener", e))?;
        let n = disks.len();
        self.migrations
            .nbd_start()
            .insert(uuid, (OwnedFd::from(unix), disks));
        let (ready_tx, ready) = tokio::sync::watch::channel(false);
        self.migrations
            .nbd_ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uuid, ready_tx);
        let to = path.clone();
        let relay = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            for _ in 0..n {
                let Ok(Ok((mut tcp, peer))) =
                    tokio::time::timeout(ACCEPT_TIMEOUT, tcp.accept()).await
                else {
                    break;
                };
                log::info!("NBD connection for a migrated disk from {peer}");
                let _ = tune_socket(tcp.as_fd());
                let to = to.clone();
                let mut ready = ready.clone();
                conns.spawn(async move {
                    // Its QEMU answers for the exports only once they are there.
                    let up = tokio::time::timeout(ACCEPT_TIMEOUT, ready.wait_for(|r| *r))
                        .await
                        .is_ok_and(|r| r.is_ok());
                    if !up {
                        return;
                    }
                    if let Ok(mut unix) = tokio::net::UnixStream::connect(&to).await {
                        let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
                    }
                });
            }
            drop(tcp);
            while conns.join_next().await.is_some() {}
        });
        Ok((tcp_port, relay, path))
    }

    /// The shim of the migrated domain `uuid` says its NBD server has the exports.
    pub(crate) fn nbd_ready(&self, uuid: &Uuid) {
        let ready = self
            .migrations
            .nbd_ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uuid);
        if let Some(r) = ready {
            r.send_replace(true);
        }
    }

    /// The NBD server's socket for the shim of a migrated domain starting now, if its
    /// disks are copied here.
    pub(crate) fn take_nbd_start(&self, uuid: &Uuid) -> Option<(OwnedFd, Vec<String>)> {
        self.migrations.nbd_start().remove(uuid)
    }

    /// Prepare of a tunnelled migration (destination): the stream comes through the
    /// client's connection, and the daemon writes it into the returned socket, whose
    /// other end is the incoming stream of the domain's new shim.
    pub async fn migrate_prepare_tunnel(
        self: &Arc<Self>,
        params: &[TypedParam],
        cookie: &[u8],
        flags: u32,
    ) -> Result<(Vec<u8>, OwnedFd)> {
        check_migrate_flags(flags | mf::TUNNELLED)?;
        let params = Params::new(params)?;
        let (def, start) = self.arrival(&params, cookie, flags)?;
        let uuid = def.uuid.unwrap_or_default();
        let name = def.name.clone();
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()
            .map_err(|e| DriverError::io("cannot make the migration tunnel's socket", e))?;
        let me = Arc::clone(self);
        self.expect_incoming(&name, None, None, move |_| async move {
            me.run_transient(def, start, Some(theirs.into())).await
        })?;
        Ok((self.cookie_for(&name, Some(uuid)), ours.into()))
    }

    /// A migration of domain `name` into this host is prepared and not finished yet.
    pub fn incoming_pending(&self, name: &str) -> bool {
        self.migrations.incoming().contains_key(name)
    }

    fn forget_incoming(&self, name: &str, id: u64) {
        let mut m = self.migrations.incoming();
        if m.get(name).is_some_and(|i| i.id == id) {
            if let Some(mut i) = m.remove(name) {
                i.end_nbd();
            }
        }
    }

    /// Perform (source), the client driving: the stream to `uri` (Prepare's answer) as a
    /// job of the VM's shim. Ok once the destination has the guest (paused here).
    pub async fn migrate_perform(
        self: &Arc<Self>,
        h: &Handle,
        uri: &str,
        params: &[TypedParam],
        cookie: &[u8],
        flags: u32,
    ) -> Result<Vec<u8>> {
        check_migrate_flags(flags)?;
        not_tunnelled(flags)?;
        let params = Params::new(params)?;
        let target = MigrateUri::parse(uri)?;
        let (host, port) = match (target.host, target.port) {
            (Some(h), Some(p)) => (h, p),
            _ => {
                return Err(DriverError::InvalidArg(format!(
                    "the migration URI '{uri}' needs a host and a port"
                )))
            }
        };
        self.shim_of(h)?;
        let speed = speed_of(&params)?;
        // The disks to copy: one connection each to the destination's NBD server.
        let nbd = if flags & NON_SHARED != 0 {
            let offered = Cookie::parse(cookie)?.and_then(|c| c.nbd_port);
            let given = params
                .string(param::DISKS_URI)
                .map(MigrateUri::parse)
                .transpose()?;
            let nbd_host = given
                .as_ref()
                .and_then(|u| u.host.clone())
                .unwrap_or_else(|| host.clone());
            let nbd_port = given.and_then(|u| u.port).or(offered).ok_or_else(|| {
                DriverError::OperationFailed(
                    "the destination offers no NBD server for the disks".into(),
                )
            })?;
            let disks = disks_to_copy(&self.live_def(h).await?, &params)?;
            let mut socks = Vec::new();
            for _ in &disks {
                socks.push(connect(&nbd_host, nbd_port).await?);
            }
            (disks, socks)
        } else {
            (Vec::new(), Vec::new())
        };
        let sock = connect(&host, port).await?;
        self.migrate_perform_over(h, sock, nbd, &params, flags, speed)
            .await
    }

    /// Perform of a tunnelled migration (source, peer to peer): the stream goes into
    /// `sock`, whose other end the daemon sends through its connection to the destination.
    pub async fn migrate_perform_tunnelled(
        self: &Arc<Self>,
        h: &Handle,
        sock: OwnedFd,
        params: &[TypedParam],
        flags: u32,
    ) -> Result<Vec<u8>> {
        check_migrate_flags(flags)?;
        let params = Params::new(params)?;
        let speed = speed_of(&params)?;
        self.migrate_perform_over(h, sock, (Vec::new(), Vec::new()), &params, flags, speed)
            .await
    }

    /// Perform over a socket already connected to the destination (or to the daemon's end
    /// of a tunnel): the VM's shim migrates it (`SHIM_MIGRATE`).
    async fn migrate_perform_over(
        self: &Arc<Self>,
        h: &Handle,
        sock: OwnedFd,
        (disks, nbd): (Vec<String>, Vec<OwnedFd>),
        params: &Params<'_>,
        flags: u32,
        speed: u64,
    ) -> Result<Vec<u8>> {
        let conn = self.shim_of(h)?;
        let args = ShimMigrateArgs {
            flags,
            bandwidth: speed,
            bandwidth_postcopy: params.ullong(param::BANDWIDTH_POSTCOPY).unwrap_or(0),
            downtime_ms: 0,
            auto_converge_initial: params.int(param::AUTO_CONVERGE_INITIAL).unwrap_or(-1),
            auto_converge_increment: params.int(param::AUTO_CONVERGE_INCREMENT).unwrap_or(-1),
            disks: vireo_xdr::Array(disks),
        };
        let mut fds = vec![sock];
        fds.extend(nbd);
        let r = conn
            .call_sending_fds::<_, ShimMigrateRet>(
                VIREO_PROGRAM,
                VIREO_VERSION,
                vprocs::SHIM_MIGRATE,
                &args,
                fds,
            )
            .await;
        self.refresh_state(h).await;
        let r = r.map_err(crate::hotplug::shim_error)?;
        let mut cookie = self.cookie(&h.name, Some(h.uuid));
        cookie.stats = self.migration_stats(h).await;
        cookie.stopped_at_ms = Some(r.0.stopped_at_ms).filter(|ms| *ms > 0);
        Ok(cookie.format())
    }

    /// The counters of the VM's migration that has just completed, as its shim keeps them
    /// (none in post-copy: the job goes on after Perform).
    async fn migration_stats(&self, h: &Handle) -> Vec<(String, u64)> {
        let payload = vireo_xdr::to_bytes(&DomainFlagsArgs {
            dom: h.clone(),
            flags: JOB_STATS_COMPLETED | JOB_STATS_KEEP_COMPLETED,
        });
        let Ok(reply) = self.forward(h, procs::DOMAIN_GET_JOB_STATS, &payload).await else {
            return Vec::new();
        };
        let Ok(r) = vireo_xdr::from_bytes::<DomainGetJobStatsRet>(&reply) else {
            return Vec::new();
        };
        r.params
            .0
            .into_iter()
            .filter_map(|p| match p.value {
                TypedValue::ULLong(v) => Some((p.field, v)),
                _ => None,
            })
            .collect()
    }

    /// Cancels the domain's running migration (its shim's job), as `domjobabort` does.
    pub async fn migrate_abort(&self, h: &Handle) -> Result<()> {
        let payload = vireo_xdr::to_bytes(&DomainArgs { dom: h.clone() });
        self.forward(h, procs::DOMAIN_ABORT_JOB, &payload)
            .await
            .map(|_| ())
            .map_err(|e| DriverError::Peer(Box::new(e)))
    }

    /// Finish (destination): waits for the domain's start from the stream, then makes it
    /// persistent if asked and runs the guest (unless PAUSED). With `cancelled` (the
    /// source failed), whatever started here is stopped.
    pub async fn migrate_finish(
        self: &Arc<Self>,
        params: &[TypedParam],
        cookie: &[u8],
        flags: u32,
        cancelled: bool,
    ) -> Result<(Handle, Vec<u8>)> {
        let params = Params::new(params)?;
        let name = match params.string(param::DEST_NAME) {
            Some(n) => n.to_string(),
            None => Cookie::parse(cookie)?
                .map(|c| c.name)
                .ok_or_else(|| DriverError::InvalidArg("no domain name given".into()))?,
        };
        let Some(mut inc) = self.migrations.incoming().remove(&name) else {
            return Err(DriverError::NoDomain(format!(
                "no incoming migration of domain '{name}'"
            )));
        };
        if cancelled {
            if let Some(c) = inc.cancel.take() {
                let _ = c.send(());
            }
        }
        // The disks' copies are over either way (the source ended them first).
        inc.end_nbd();
        if let Some(u) = self.lookup_by_name(&name).ok().map(|h| h.uuid) {
            self.migrations.nbd_start().remove(&u);
            self.migrations
                .nbd_ready
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&u);
        }
        let started = match tokio::time::timeout(FINISH_WAIT, &mut inc.task).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(DriverError::Internal(format!("incoming migration: {e}"))),
            Err(_) => {
                // It may still come up: then it goes at once.
                let me = Arc::clone(self);
                tokio::spawn(async move {
                    if let Ok(Ok(h)) = inc.task.await {
                        me.kill_incoming(&h).await;
                    }
                });
                return Err(DriverError::OperationFailed(format!(
                    "the domain did not arrive within {} s",
                    FINISH_WAIT.as_secs()
                )));
            }
        };
        if cancelled {
            if let Ok(h) = started {
                self.kill_incoming(&h).await;
            }
            return Err(finish_ok());
        }
        let h = started?;
        if flags & mf::PERSIST_DEST != 0 {
            let xml = match params.string(param::PERSIST_XML) {
                Some(x) => x.to_string(),
                None => self.live_def(&h).await?.format(),
            };
            if let Err(e) = self.define_xml(&xml) {
                self.kill_incoming(&h).await;
                return Err(DriverError::Peer(Box::new(RemoteError::new(
                    69, // VIR_ERR_MIGRATE_PERSIST_FAILED
                    errdom::QEMU,
                    format!("Failed to make domain persistent after migration: {e}"),
                ))));
            }
        }
        let end = if flags & mf::PAUSED == 0 {
            migrate_end::RESUME
        } else {
            migrate_end::STAY_PAUSED
        };
        if let Err(e) = self.end_call(&h, end).await {
            self.kill_incoming(&h).await;
            return Err(e);
        }
        // The guest runs here again (its shim answers once QEMU was told to go on).
        let resumed_at = epoch_ms();
        self.refresh_state(&h).await;
        if self.state(&h).ok() == Some((state::RUNNING, reason::RUNNING_POSTCOPY)) {
            // The guest runs here while the rest of its memory still comes.
            let me = Arc::clone(self);
            let h2 = h.clone();
            tokio::spawn(async move {
                if let Err(e) = me.end_call(&h2, migrate_end::COMPLETE).await {
                    log::warn!("post-copy migration of '{}': {e}", h2.name);
                }
                me.refresh_state(&h2).await;
            });
        }
        // The source's statistics are this end's completed job (JOB_COMPLETED here too),
        // with the downtime counted as libvirt counts it: from the source's pause to the
        // resume here. They go back to the source in the answer.
        let mut back = self.cookie(&h.name, Some(h.uuid));
        if let Some(c) = Cookie::parse(cookie).ok().flatten() {
            back.stats = c.stats;
            if let Some(stopped) = c.stopped_at_ms.filter(|_| flags & mf::PAUSED == 0) {
                let downtime = resumed_at.saturating_sub(stopped);
                back.stats.retain(|(f, _)| f != "downtime");
                back.stats.push(("downtime".into(), downtime));
            }
        }
        if !back.stats.is_empty() {
            let mut params = vec![TypedParam::int("operation", OPERATION_MIGRATION_IN)];
            params.extend(
                back.stats
                    .iter()
                    .map(|(f, v)| TypedParam::new(f.as_str(), TypedValue::ULLong(*v))),
            );
            self.job_completed(h.uuid, params);
        }
        Ok((self.lookup_by_uuid(&h.uuid).unwrap_or(h), back.format()))
    }

    /// Stops a domain that arrived but must not run here.
    async fn kill_incoming(&self, h: &Handle) {
        let payload = vireo_xdr::to_bytes(&DomainArgs { dom: h.clone() });
        if let Err(e) = self.forward(h, procs::DOMAIN_DESTROY, &payload).await {
            log::warn!("cannot stop the migrated domain '{}': {}", h.name, e.text());
        }
        self.settle_end(h).await;
    }

    /// Confirm (source): the destination runs the guest, so it ends here (and, with
    /// UNDEFINE_SOURCE, its definition goes); cancelled, the guest goes on here.
    pub async fn migrate_confirm(
        self: &Arc<Self>,
        h: &Handle,
        params: &[TypedParam],
        cookie: &[u8],
        flags: u32,
        cancelled: bool,
    ) -> Result<()> {
        Params::new(params)?;
        if cancelled {
            self.end_call(h, migrate_end::CANCEL).await?;
            self.refresh_state(h).await;
            return Ok(());
        }
        let conn = self.shim_of(h)?;
        // The downtime the destination counted replaces QEMU's in the statistics the shim
        // reports at its end.
        let downtime = Cookie::parse(cookie)
            .ok()
            .flatten()
            .and_then(|c| c.stats.into_iter().find(|(f, _)| f == "downtime"))
            .map(|(_, v)| v);
        if let Some(o) = self.write().by_uuid.get_mut(&h.uuid) {
            o.downtime_seen_there = downtime;
        }
        self.end_call(h, migrate_end::CONFIRM).await?;
        // The shim ends with its QEMU; once it is gone, the domain is shut off here.
        if tokio::time::timeout(SHIM_EXIT, conn.closed())
            .await
            .is_err()
        {
            log::warn!("the shim of '{}' outlived its migrated VM", h.name);
        }
        self.settle_end(h).await;
        if flags & mf::UNDEFINE_SOURCE != 0 && self.is_persistent(h).unwrap_or(false) {
            self.undefine(h, UNDEFINE_AFTER_MIGRATION)?;
        }
        Ok(())
    }

    async fn end_call(&self, h: &Handle, op: i32) -> Result<()> {
        let conn = self.shim_of(h)?;
        conn.call_raw(
            VIREO_PROGRAM,
            VIREO_VERSION,
            vprocs::SHIM_MIGRATE_END,
            |o| o.extend_from_slice(&vireo_xdr::to_bytes(&ShimMigrateEndArgs { op })),
        )
        .await
        .map(|_| ())
        .map_err(crate::hotplug::shim_error)
    }

    /// The running domain's state as its shim has it now (a migration's steps change it
    /// in ways the events alone do not tell apart).
    async fn refresh_state(&self, h: &Handle) {
        let Ok(conn) = self.shim_of(h) else { return };
        let args = DomainFlagsArgs {
            dom: h.clone(),
            flags: 0,
        };
        let r: std::result::Result<vireo_proto::remote::DomainGetStateRet, _> =
            conn.call(procs::DOMAIN_GET_STATE, &args).await;
        if let Ok(st) = r {
            if st.state == state::SHUTOFF {
                return;
            }
            if let Some(o) = self.write().by_uuid.get_mut(&h.uuid) {
                if o.shim.as_ref().is_some_and(|s| Arc::ptr_eq(s, &conn)) {
                    o.state = (st.state, st.reason);
                }
            }
        }
    }

    /// `virDomainMigrateSetMaxSpeed` of a domain that does not run (a running one's
    /// shim answers).
    pub fn migrate_set_speed_inactive(&self, h: &Handle, mib: u64, flags: u32) -> Result<()> {
        self.check_speed_call(h, flags)?;
        if mib > MAX_SPEED_MIB {
            return Err(DriverError::Peer(Box::new(RemoteError::new(
                code::OVERFLOW,
                errdom::QEMU,
                format!(
                    "value too large: bandwidth must be less than {}",
                    MAX_SPEED_MIB + 1
                ),
            ))));
        }
        let mut speeds = self.migrations.speeds();
        let e = speeds.entry(h.uuid).or_insert((MAX_SPEED_MIB, 0));
        if flags & MAX_SPEED_POSTCOPY != 0 {
            e.1 = mib;
        } else {
            e.0 = mib;
        }
        Ok(())
    }

    /// `virDomainMigrateGetMaxSpeed` of a domain that does not run.
    pub fn migrate_get_speed_inactive(&self, h: &Handle, flags: u32) -> Result<u64> {
        self.check_speed_call(h, flags)?;
        let (speed, postcopy) = self
            .migrations
            .speeds()
            .get(&h.uuid)
            .copied()
            .unwrap_or((MAX_SPEED_MIB, 0));
        Ok(if flags & MAX_SPEED_POSTCOPY != 0 {
            postcopy
        } else {
            speed
        })
    }

    fn check_speed_call(&self, h: &Handle, flags: u32) -> Result<()> {
        if flags & !MAX_SPEED_POSTCOPY != 0 {
            return Err(DriverError::InvalidArg(format!(
                "unsupported flags (0x{:x})",
                flags & !MAX_SPEED_POSTCOPY
            )));
        }
        self.with(h, |_| ())
    }

    /// The domain (any state) exists here.
    pub fn check_domain(&self, h: &Handle) -> Result<()> {
        let reg = self.read();
        reg.by_uuid
            .get(&h.uuid)
            .map(|_| ())
            .ok_or_else(|| no_domain_uuid(&h.uuid, &h.name))
    }
}

/// The state a migration's lifecycle event (event, detail) leaves the domain in; None for
/// the events of everything else.
pub(crate) fn migration_state(ev: i32, detail: i32) -> Option<(i32, i32)> {
    use vireo_proto::migrate::event as me;
    use vireo_proto::remote::event;
    Some(match (ev, detail) {
        (event::SUSPENDED, me::SUSPENDED_MIGRATED) => (state::PAUSED, reason::PAUSED_MIGRATION),
        (event::SUSPENDED, me::SUSPENDED_POSTCOPY) => (state::PAUSED, reason::PAUSED_POSTCOPY),
        (event::RESUMED, me::RESUMED_MIGRATED) => (state::RUNNING, reason::RUNNING_MIGRATED),
        (event::RESUMED, me::RESUMED_POSTCOPY) => (state::RUNNING, reason::RUNNING_POSTCOPY),
        (event::STOPPED, me::STOPPED_MIGRATED) => (state::SHUTOFF, reason::SHUTOFF_MIGRATED),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_uris() {
        let u = MigrateUri::parse("tcp:10.0.0.2:49152").unwrap();
        assert_eq!((u.host.as_deref(), u.port), (Some("10.0.0.2"), Some(49152)));
        let u = MigrateUri::parse("tcp://10.0.0.2").unwrap();
        assert_eq!((u.host.as_deref(), u.port), (Some("10.0.0.2"), None));
        let u = MigrateUri::parse("tcp://[fd00::2]:49200/").unwrap();
        assert_eq!((u.host.as_deref(), u.port), (Some("fd00::2"), Some(49200)));
        let u = MigrateUri::parse("tcp:[fd00::2]").unwrap();
        assert_eq!((u.host.as_deref(), u.port), (Some("fd00::2"), None));
        let u = MigrateUri::parse("tcp://host.example:1234").unwrap();
        assert_eq!(
            (u.host.as_deref(), u.port),
            (Some("host.example"), Some(1234))
        );
        assert!(MigrateUri::parse("rdma://h:1").is_err());
        assert!(MigrateUri::parse("tcp://h:0").is_err());
        assert!(MigrateUri::parse("tcp://h:99999").is_err());
        assert!(MigrateUri::parse("tcp:[fd00::2").is_err());
        assert_eq!(MigrateUri::format("10.0.0.2", 49152), "tcp:10.0.0.2:49152");
        assert_eq!(MigrateUri::format("fd00::2", 49152), "tcp:[fd00::2]:49152");
    }

    #[test]
    fn cookies_round_trip() {
        let c = Cookie {
            name: "a<b".into(),
            uuid: Some([1; 16]),
            hostname: "h1".into(),
            host_id: Some([2; 16]),
            nbd_port: Some(49153),
            stats: vec![("downtime".into(), 12), ("time_elapsed".into(), 3400)],
            stopped_at_ms: Some(1_764_000_000_123),
        };
        assert_eq!(Cookie::parse(&c.format()).unwrap(), Some(c));
        assert_eq!(Cookie::parse(b"").unwrap(), None);
        assert_eq!(Cookie::parse(b"\0").unwrap(), None);
        assert!(Cookie::parse(b"<qemu-migration/>").is_err());
        assert!(Cookie::parse(b"<vireo-migration><uuid>zz</uuid></vireo-migration>").is_err());
        assert!(Cookie::parse(&[0xff, 0xfe]).is_err());
        let bad = "<vireo-migration><statistics><stat name='downtime'>-1</stat></statistics>\
                   </vireo-migration>";
        assert!(Cookie::parse(bad.as_bytes()).is_err());
        let many = format!(
            "<vireo-migration><statistics>{}</statistics></vireo-migration>",
            "<stat name='x'>1</stat>".repeat(65)
        );
        assert!(Cookie::parse(many.as_bytes()).is_err());
    }

    #[test]
    fn parameters_are_checked() {
        let ok = [
            TypedParam::string(param::URI, "tcp:a:1"),
            TypedParam::new(param::BANDWIDTH, TypedValue::ULLong(5)),
            TypedParam::int(param::AUTO_CONVERGE_INITIAL, 20),
        ];
        let p = Params::new(&ok).unwrap();
        assert_eq!(p.string(param::URI), Some("tcp:a:1"));
        assert_eq!(p.ullong(param::BANDWIDTH), Some(5));
        assert_eq!(p.int(param::AUTO_CONVERGE_INITIAL), Some(20));
        let e = Params::new(&[TypedParam::string("compression", "xbzrle")])
            .err()
            .unwrap();
        assert!(e.to_string().contains("not supported"), "{e}");
        let e = Params::new(&[TypedParam::new(param::URI, TypedValue::Int(1))])
            .err()
            .unwrap();
        assert!(e.to_string().contains("invalid type"), "{e}");
        let twice = [
            TypedParam::string(param::URI, "tcp:a:1"),
            TypedParam::string(param::URI, "tcp:b:1"),
        ];
        assert!(Params::new(&twice).is_err());
        let mut v = ok.to_vec();
        set_string(&mut v, param::URI, "tcp:c:2");
        assert_eq!(Params::new(&v).unwrap().string(param::URI), Some("tcp:c:2"));
    }

    #[test]
    fn flags_are_checked() {
        assert!(check_migrate_flags(mf::LIVE | mf::PEER2PEER | mf::PERSIST_DEST).is_ok());
        assert!(check_migrate_flags(mf::TUNNELLED | mf::PEER2PEER).is_ok());
        let e = check_migrate_flags(mf::TUNNELLED | mf::POSTCOPY).unwrap_err();
        assert!(e.to_string().contains("post-copy"), "{e}");
        assert!(check_migrate_flags(mf::NON_SHARED_DISK | mf::LIVE).is_ok());
        let e = check_migrate_flags(mf::NON_SHARED_DISK | mf::NON_SHARED_INC).unwrap_err();
        assert!(e.to_string().contains("mutually exclusive"), "{e}");
        let e = check_migrate_flags(mf::NON_SHARED_INC | mf::TUNNELLED).unwrap_err();
        assert!(e.to_string().contains("copying the disks"), "{e}");
        let e = check_migrate_flags(1 << 30).unwrap_err();
        assert!(e.to_string().contains("0x40000000"), "{e}");
        let e = check_migrate_flags(mf::TLS).unwrap_err();
        assert!(e.to_string().contains("over TLS"), "{e}");
    }

    #[test]
    fn a_listener_in_the_range() {
        let l = listen(Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)), None).unwrap();
        let port = l.local_addr().unwrap().port();
        assert!((PORT_MIN..=PORT_MAX).contains(&port));
        // The next one takes another port.
        let l2 = listen(Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)), None).unwrap();
        assert_ne!(l2.local_addr().unwrap().port(), port);
        // A port that is taken is refused when asked for by number.
        assert!(listen(Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)), Some(port)).is_err());
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        tune_socket(c.as_fd()).unwrap();
        // The address a peer on loopback reaches us on is loopback.
        let lo = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
        assert_eq!(local_address_towards(lo), Some(lo));
    }
}
