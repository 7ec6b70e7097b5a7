//! The ADMIN program on `<daemon>-admin-sock`: what `virt-admin` talks to. It lists the
//! daemon's servers and their clients, shows a client's credentials, disconnects clients,
//! reports the worker pool and client limits, and gets and sets the log filters and outputs.
//!
//! Each daemon then has two servers, as libvirtd has: its own (named after the daemon) and
//! `admin`, the one answering these calls. `virt-admin` reaches it with any URI naming the
//! socket, e.g. `virt-admin -c 'vireod:///system?socket=/run/vireo/vireod-admin-sock'`.
//!
//! The log settings are kept and reported, in libvirt's syntax; the daemon's own messages
//! still go to standard error whatever they say.
//!
//! Beside it, the admin socket serves one procedure of Vireo's own program:
//! `DAEMON_METRICS`, the daemon's metrics in Prometheus' text format (`vireo admin-metrics`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use vireo_proto::admin::*;
use vireo_proto::error::{code, domain as errdom};
use vireo_proto::{Header, RemoteError};
use vireo_rpc::inspect::{ClientSummary, Named, ServerInfo};
use vireo_rpc::server::{bind_unix, Dispatch, Server as RpcServer, ServerConfig, Service};
use vireo_xdr::{Array, Decoder, Xdr};

/// The libvirt API level reported to admin clients, the same as the REMOTE program reports.
pub use vireo_proto::remote::LIB_VERSION;

/// The name under which the admin server lists itself, as in libvirtd.
pub const ADMIN_SERVER_NAME: &str = "admin";

/// libvirt's `VIR_FROM_ADMIN` error domain.
const ERRDOM_ADMIN: i32 = 62;
/// libvirt's `VIR_ERR_NO_SERVER` and `VIR_ERR_NO_CLIENT`.
const NO_SERVER: i32 = 95;
const NO_CLIENT: i32 = 96;

/// The admin socket is for the daemon's owner only.
const ADMIN_PERMS: u32 = 0o700;

/// Log output when none was set: the daemon writes its messages (warnings and errors) to
/// standard error.
pub const DEFAULT_LOG_OUTPUTS: &str = "3:stderr";

/// The daemon's log filters and outputs, in libvirt's syntax, as `virt-admin
/// daemon-log-filters` / `daemon-log-outputs` get and set them at run time.
///
/// Filters are `PRIORITY:NAME` (`NAME` may start with `+`, libvirt's "with stack trace"),
/// outputs `PRIORITY:stderr`, `PRIORITY:journald`, `PRIORITY:syslog:IDENT` or
/// `PRIORITY:file:/absolute/path`; priorities are 1 (debug) to 4 (error); entries are
/// separated by spaces. Both are stored normalised (single spaces).
pub struct LogSettings {
    state: Mutex<LogState>,
}

struct LogState {
    filters: Vec<String>,
    outputs: Vec<String>,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            state: Mutex::new(LogState {
                filters: Vec::new(),
                outputs: vec![DEFAULT_LOG_OUTPUTS.to_string()],
            }),
        }
    }
}

impl LogSettings {
    /// Settings from configuration text; an empty `outputs` means the default.
    pub fn new(filters: &str, outputs: &str) -> Result<Self, RemoteError> {
        let s = LogSettings::default();
        s.set_filters(filters)?;
        s.set_outputs(outputs)?;
        Ok(s)
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The filters and how many there are.
    /// The filters and outputs, one entry each (for the logger).
    pub fn parts(&self) -> (Vec<String>, Vec<String>) {
        let st = self.lock();
        (st.filters.clone(), st.outputs.clone())
    }

    pub fn filters(&self) -> (String, usize) {
        let st = self.lock();
        (st.filters.join(" "), st.filters.len())
    }

    /// The outputs and how many there are.
    pub fn outputs(&self) -> (String, usize) {
        let st = self.lock();
        (st.outputs.join(" "), st.outputs.len())
    }

    /// Replaces every filter; an empty text removes them all. Nothing changes on error.
    pub fn set_filters(&self, text: &str) -> Result<(), RemoteError> {
        let parsed = text
            .split_whitespace()
            .map(parse_filter)
            .collect::<Result<Vec<_>, _>>()?;
        self.lock().filters = parsed;
        Ok(())
    }

    /// Replaces every output; an empty text restores the default. Nothing changes on error.
    pub fn set_outputs(&self, text: &str) -> Result<(), RemoteError> {
        let mut parsed = text
            .split_whitespace()
            .map(parse_output)
            .collect::<Result<Vec<_>, _>>()?;
        if parsed.is_empty() {
            parsed.push(DEFAULT_LOG_OUTPUTS.to_string());
        }
        self.lock().outputs = parsed;
        Ok(())
    }
}

fn invalid_arg(msg: String) -> RemoteError {
    RemoteError::new(
        code::INVALID_ARG,
        errdom::NONE,
        format!("invalid argument: {msg}"),
    )
}

fn parse_priority(p: &str) -> Option<u8> {
    match p {
        "1" | "2" | "3" | "4" => p.parse().ok(),
        _ => None,
    }
}

fn parse_filter(f: &str) -> Result<String, RemoteError> {
    let Some((prio, name)) = f.split_once(':') else {
        return Err(invalid_arg(format!(
            "Malformed format for filter '{f}': expected PRIORITY:NAME"
        )));
    };
    let Some(prio) = parse_priority(prio) else {
        return Err(invalid_arg(format!(
            "Invalid priority '{prio}' for filter '{f}': expected 1 (debug) to 4 (error)"
        )));
    };
    let bare = name.strip_prefix('+').unwrap_or(name);
    if bare.is_empty() || bare.contains(':') {
        return Err(invalid_arg(format!(
            "Invalid match string '{name}' in filter '{f}'"
        )));
    }
    Ok(format!("{prio}:{name}"))
}

fn parse_output(o: &str) -> Result<String, RemoteError> {
    let mut parts = o.splitn(3, ':');
    let (prio, dest, arg) = (parts.next(), parts.next(), parts.next());
    let (Some(prio), Some(dest)) = (prio, dest) else {
        return Err(invalid_arg(format!(
            "Malformed format for output '{o}': expected PRIORITY:DESTINATION[:DATA]"
        )));
    };
    if parse_priority(prio).is_none() {
        return Err(invalid_arg(format!(
            "Invalid priority '{prio}' for output '{o}': expected 1 (debug) to 4 (error)"
        )));
    }
    let ok = match (dest, arg) {
        ("stderr" | "journald", None) => true,
        ("syslog", Some(ident)) => !ident.is_empty(),
        ("file", Some(path)) => path.starts_with('/'),
        ("stderr" | "journald" | "syslog" | "file", _) => false,
        _ => {
            return Err(invalid_arg(format!(
                "Invalid destination '{dest}' for output '{o}': expected stderr, journald, \
                 syslog or file"
            )))
        }
    };
    if !ok {
        return Err(invalid_arg(format!(
            "Output '{o}' does not meet the format requirements for destination type '{dest}' \
             (stderr and journald take nothing, syslog an identifier, file an absolute path)"
        )));
    }
    Ok(o.to_string())
}

/// Per-connection state of an admin client.
#[derive(Default)]
pub struct AdminClientData {
    open: AtomicBool,
}

type AdminClient = vireo_rpc::server::Client<AdminClientData>;
type ProcResult = Result<Vec<u8>, RemoteError>;

/// What renders the daemon's metrics (Prometheus' text format).
pub type MetricsSource = Arc<dyn Fn() -> String + Send + Sync>;

/// The ADMIN program: one instance serves every admin client of a daemon.
pub struct AdminService {
    servers: Vec<Arc<dyn ServerInfo>>,
    /// The admin server itself, once it exists (it owns this service, hence set later).
    own: OnceLock<Arc<dyn ServerInfo>>,
    log: Arc<LogSettings>,
    /// The daemon's metrics, once the daemon has said how to make them.
    metrics: OnceLock<MetricsSource>,
}

impl AdminService {
    pub fn new(servers: Vec<Arc<dyn ServerInfo>>, log: Arc<LogSettings>) -> Self {
        AdminService {
            servers,
            own: OnceLock::new(),
            log,
            metrics: OnceLock::new(),
        }
    }

    /// How `DAEMON_METRICS` gets the daemon's metrics. Only the first call has an effect.
    pub fn set_metrics(&self, source: MetricsSource) {
        let _ = self.metrics.set(source);
    }

    /// Vireo's own procedures on the admin socket.
    fn dispatch_vireo(&self, p: i32, payload: &[u8]) -> ProcResult {
        use vireo_proto::vireo::{procs as vprocs, DaemonMetricsArgs, DaemonMetricsRet};
        match p {
            vprocs::DAEMON_METRICS => {
                let a: DaemonMetricsArgs = args(payload)?;
                no_flags(a.flags, "vireoDaemonMetrics")?;
                let text = self.metrics.get().map(|m| m()).unwrap_or_default();
                ret(DaemonMetricsRet { text })
            }
            _ => Err(RemoteError::unknown_procedure(p)),
        }
    }

    /// Lists `server` (normally the admin server this service runs in) after the others.
    /// Only the first call has an effect.
    pub fn add_own_server(&self, server: Arc<dyn ServerInfo>) {
        let _ = self.own.set(server);
    }

    pub fn log(&self) -> &Arc<LogSettings> {
        &self.log
    }

    fn all_servers(&self) -> impl Iterator<Item = &Arc<dyn ServerInfo>> {
        self.servers.iter().chain(self.own.get())
    }

    fn server(&self, name: &str) -> Result<&Arc<dyn ServerInfo>, RemoteError> {
        self.all_servers()
            .find(|s| s.name() == name)
            .ok_or_else(|| {
                RemoteError::new(
                    NO_SERVER,
                    ERRDOM_ADMIN,
                    format!("Server not found: no server with matching name '{name}'"),
                )
            })
    }

    fn client(&self, h: &vireo_proto::admin::Client) -> Result<ClientSummary, RemoteError> {
        self.server(&h.srv.name)?
            .client(h.id)
            .ok_or_else(|| no_client(h.id))
    }

    fn dispatch(&self, client: &AdminClient, p: i32, payload: &[u8]) -> ProcResult {
        match p {
            procs::CONNECT_OPEN => {
                let a: FlagsArgs = args(payload)?;
                no_flags(a.flags, "virAdmConnectOpen")?;
                client.data.open.store(true, Ordering::Relaxed);
                void()
            }
            procs::CONNECT_CLOSE => {
                client.data.open.store(false, Ordering::Relaxed);
                void()
            }
            procs::CONNECT_GET_LIB_VERSION => ret(ConnectGetLibVersionRet {
                lib_ver: LIB_VERSION,
            }),
            procs::CONNECT_LIST_SERVERS => {
                let a: ConnectListServersArgs = args(payload)?;
                no_flags(a.flags, "virAdmConnectListServers")?;
                let all: Vec<Server> = self
                    .all_servers()
                    .map(|s| Server {
                        name: s.name().to_string(),
                    })
                    .collect();
                let n = count(all.len());
                ret(ConnectListServersRet {
                    servers: Array(if a.need_results != 0 { all } else { Vec::new() }),
                    ret: n,
                })
            }
            procs::CONNECT_LOOKUP_SERVER => {
                let a: ConnectLookupServerArgs = args(payload)?;
                no_flags(a.flags, "virAdmConnectLookupServer")?;
                let s = self.server(&a.name)?;
                ret(ConnectLookupServerRet {
                    srv: Server {
                        name: s.name().to_string(),
                    },
                })
            }
            procs::SERVER_GET_THREADPOOL_PARAMETERS => {
                let a: ServerFlagsArgs = args(payload)?;
                no_flags(a.flags, "virAdmServerGetThreadPoolParameters")?;
                let s = self.server(&a.srv.name)?;
                ret(ServerGetThreadpoolParametersRet {
                    params: Array(threadpool_params(s.as_ref())),
                })
            }
            procs::SERVER_SET_THREADPOOL_PARAMETERS => {
                let a: ServerSetThreadpoolParametersArgs = args(payload)?;
                self.server(&a.srv.name)?;
                Err(unsupported(
                    "the worker pool is the daemon's async runtime, sized at startup; it \
                     cannot be resized at run time",
                ))
            }
            procs::SERVER_LIST_CLIENTS => {
                let a: ServerListClientsArgs = args(payload)?;
                no_flags(a.flags, "virAdmServerListClients")?;
                let s = self.server(&a.srv.name)?;
                let clients = s.clients();
                let n = count(clients.len());
                let handles = if a.need_results != 0 {
                    clients.iter().map(|c| handle(s.name(), c)).collect()
                } else {
                    Vec::new()
                };
                ret(ServerListClientsRet {
                    clients: Array(handles),
                    ret: n,
                })
            }
            procs::SERVER_LOOKUP_CLIENT => {
                let a: ServerLookupClientArgs = args(payload)?;
                no_flags(a.flags, "virAdmServerLookupClient")?;
                let s = self.server(&a.srv.name)?;
                let c = s.client(a.id).ok_or_else(|| no_client(a.id))?;
                ret(ServerLookupClientRet {
                    clnt: handle(s.name(), &c),
                })
            }
            procs::CLIENT_GET_INFO => {
                let a: ClientFlagsArgs = args(payload)?;
                no_flags(a.flags, "virAdmClientGetInfo")?;
                let c = self.client(&a.clnt)?;
                ret(ClientGetInfoRet {
                    params: Array(client_params(&c)),
                })
            }
            procs::CLIENT_CLOSE => {
                let a: ClientFlagsArgs = args(payload)?;
                no_flags(a.flags, "virAdmClientClose")?;
                if !self.server(&a.clnt.srv.name)?.disconnect(a.clnt.id) {
                    return Err(no_client(a.clnt.id));
                }
                void()
            }
            procs::SERVER_GET_CLIENT_LIMITS => {
                let a: ServerFlagsArgs = args(payload)?;
                no_flags(a.flags, "virAdmServerGetClientLimits")?;
                let l = self.server(&a.srv.name)?.limits();
                ret(ServerGetClientLimitsRet {
                    params: Array(vec![
                        TypedParam::uint("nclients_max", count(l.max_clients)),
                        TypedParam::uint("nclients", count(l.clients)),
                        // No client ever waits for authentication: credentials come from
                        // the socket itself.
                        TypedParam::uint("nclients_unauth_max", count(l.max_clients)),
                        TypedParam::uint("nclients_unauth", 0),
                    ]),
                })
            }
            procs::SERVER_SET_CLIENT_LIMITS => {
                let a: ServerSetClientLimitsArgs = args(payload)?;
                self.server(&a.srv.name)?;
                Err(unsupported(
                    "client limits are set at startup (--max-clients) and cannot be changed \
                     at run time",
                ))
            }
            procs::CONNECT_GET_LOGGING_OUTPUTS => {
                let a: FlagsArgs = args(payload)?;
                no_flags(a.flags, "virAdmConnectGetLoggingOutputs")?;
                let (outputs, n) = self.log.outputs();
                ret(ConnectGetLoggingOutputsRet {
                    outputs,
                    noutputs: count(n),
                })
            }
            procs::CONNECT_GET_LOGGING_FILTERS => {
                let a: FlagsArgs = args(payload)?;
                no_flags(a.flags, "virAdmConnectGetLoggingFilters")?;
                let (filters, n) = self.log.filters();
                ret(ConnectGetLoggingFiltersRet {
                    filters: Some(filters),
                    nfilters: count(n),
                })
            }
            procs::CONNECT_SET_LOGGING_OUTPUTS => {
                let a: ConnectSetLoggingOutputsArgs = args(payload)?;
                no_flags(a.flags, "virAdmConnectSetLoggingOutputs")?;
                self.log.set_outputs(a.outputs.as_deref().unwrap_or(""))?;
                void()
            }
            procs::CONNECT_SET_LOGGING_FILTERS => {
                let a: ConnectSetLoggingFiltersArgs = args(payload)?;
                no_flags(a.flags, "virAdmConnectSetLoggingFilters")?;
                self.log.set_filters(a.filters.as_deref().unwrap_or(""))?;
                void()
            }
            procs::SERVER_UPDATE_TLS_FILES => {
                let a: ServerFlagsArgs = args(payload)?;
                let s = self.server(&a.srv.name)?;
                Err(unsupported(&format!(
                    "server '{}' has no TLS listener: it serves UNIX sockets only",
                    s.name()
                )))
            }
            procs::CONNECT_SET_DAEMON_TIMEOUT => {
                let _: ConnectSetDaemonTimeoutArgs = args(payload)?;
                Err(unsupported("the daemon does not exit when idle"))
            }
            _ => Err(RemoteError::unknown_procedure(p)),
        }
    }
}

impl Service for AdminService {
    type ClientData = AdminClientData;

    fn knows_program(&self, prog: u32, vers: u32) -> bool {
        use vireo_proto::vireo::{VIREO_PROGRAM, VIREO_VERSION};
        (prog == ADMIN_PROGRAM && vers == ADMIN_VERSION)
            || (prog == VIREO_PROGRAM && vers == VIREO_VERSION)
    }

    fn call(
        self: Arc<Self>,
        client: &Arc<AdminClient>,
        header: Header,
        payload: &[u8],
    ) -> Dispatch {
        let p = header.proc_;
        let vireo = header.prog == vireo_proto::vireo::VIREO_PROGRAM;
        let known = if vireo {
            (20..30).contains(&p) && vireo_proto::vireo::proc_name(p).is_some()
        } else {
            proc_name(p).is_some()
        };
        let r = if !known {
            Err(RemoteError::unknown_procedure(p))
        } else if client.identity.uid != euid() {
            // As libvirtd: only the daemon's own user may administer it.
            Err(RemoteError::new(
                code::OPERATION_DENIED,
                ERRDOM_ADMIN,
                format!(
                    "operation forbidden: client with uid {} may not administer a daemon \
                     running as uid {}",
                    client.identity.uid,
                    euid()
                ),
            ))
        } else if vireo {
            // Vireo's own calls need no admin connection opened first.
            self.dispatch_vireo(p, payload)
        } else if p != procs::CONNECT_OPEN && !client.data.open.load(Ordering::Relaxed) {
            Err(RemoteError::new(
                code::INTERNAL_ERROR,
                errdom::RPC,
                "internal error: admin connection not open",
            ))
        } else {
            self.dispatch(client, p, payload)
        };
        Dispatch::Now(r.into())
    }
}

/// The running admin server of a daemon.
pub struct AdminServer {
    pub(crate) server: Arc<RpcServer<AdminService>>,
    task: tokio::task::JoinHandle<()>,
    /// The socket file to remove at shutdown (None when systemd owns it).
    path: Option<PathBuf>,
}

impl AdminServer {
    pub fn service(&self) -> &Arc<AdminService> {
        self.server.service()
    }

    /// Stops accepting, disconnects every admin client and removes the socket.
    pub async fn shutdown(self) {
        self.server.shutdown();
        let _ = self.task.await;
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// libvirt's defaults for the admin server: a handful of clients and calls at once.
pub fn admin_server_config() -> ServerConfig {
    ServerConfig {
        max_clients: 5,
        max_client_requests: 5,
        ..ServerConfig::default()
    }
}

/// Binds the admin socket at `path` (0700) and serves the ADMIN program on it, listing
/// `servers` and then the admin server itself. Call it from within the tokio runtime.
pub fn serve_admin(
    path: &Path,
    servers: Vec<Arc<dyn ServerInfo>>,
    log: Arc<LogSettings>,
) -> anyhow::Result<AdminServer> {
    let listener = bind_unix(path, ADMIN_PERMS)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    Ok(serve_admin_on(
        listener,
        Some(path.to_path_buf()),
        servers,
        log,
    ))
}

/// Serves the ADMIN program on a listener already open (e.g. passed by systemd); `path`
/// is removed at shutdown when given.
pub fn serve_admin_on(
    listener: tokio::net::UnixListener,
    path: Option<PathBuf>,
    servers: Vec<Arc<dyn ServerInfo>>,
    log: Arc<LogSettings>,
) -> AdminServer {
    let service = Arc::new(AdminService::new(servers, log));
    let server = RpcServer::new(Arc::clone(&service), admin_server_config());
    service.add_own_server(Arc::new(Named::weak(ADMIN_SERVER_NAME, &server)));
    let s = Arc::clone(&server);
    let task = tokio::spawn(async move { s.serve(listener, false).await });
    AdminServer { server, task, path }
}

/// What the worker pool looks like now. The daemon runs on one tokio multi-thread runtime
/// shared by every server (libvirt gives each server its own pool), so every server reports
/// the same numbers. Each libvirt parameter means, here:
///
/// - `minWorkers`, `maxWorkers`, `nWorkers`: the runtime's worker threads. The pool is fixed
///   at startup (one per CPU by default), so all three are equal.
/// - `prioWorkers`: 0. There is no separate pool for high-priority calls: keepalive and
///   quick calls are answered by each connection's own task, slow calls get a task of
///   their own, so nothing queues behind a slow call.
/// - `freeWorkers`: workers parked at this instant with nothing to run (the one answering
///   this call is busy, so at most `nWorkers - 1`).
/// - `jobQueueDepth`: tasks waiting in the runtime's shared queue for a worker.
fn threadpool_params(_server: &dyn ServerInfo) -> Vec<TypedParam> {
    let (workers, free, queued) = match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            let m = h.metrics();
            let n = m.num_workers();
            (n, parked_workers(&m, n), m.global_queue_depth())
        }
        Err(_) => (0, 0, 0),
    };
    vec![
        TypedParam::uint("minWorkers", count(workers)),
        TypedParam::uint("maxWorkers", count(workers)),
        TypedParam::uint("prioWorkers", 0),
        TypedParam::uint("freeWorkers", count(free)),
        TypedParam::uint("nWorkers", count(workers)),
        TypedParam::uint("jobQueueDepth", count(queued)),
    ]
}

/// Workers parked now: tokio counts parks and unparks, an odd count meaning parked.
#[cfg(target_has_atomic = "64")]
fn parked_workers(m: &tokio::runtime::RuntimeMetrics, n: usize) -> usize {
    (0..n)
        .filter(|&w| m.worker_park_unpark_count(w) % 2 == 1)
        .count()
}

#[cfg(not(target_has_atomic = "64"))]
fn parked_workers(_m: &tokio::runtime::RuntimeMetrics, _n: usize) -> usize {
    0
}

/// A client's typed parameters, named as libvirt names them (`VIR_CLIENT_INFO_*`).
fn client_params(c: &ClientSummary) -> Vec<TypedParam> {
    let mut v = vec![TypedParam::boolean("readonly", c.readonly)];
    if let Some(u) = &c.sasl_user {
        v.push(TypedParam::string("sasl_user_name", u.clone()));
    }
    // A remote client: where it came from and its certificate, not UNIX credentials.
    if let Some(a) = &c.sock_addr {
        v.push(TypedParam::string("sock_addr", a.clone()));
        if let Some(dn) = &c.x509_dname {
            v.push(TypedParam::string("tls_x509_dname", dn.clone()));
        }
        return v;
    }
    v.push(TypedParam::int("unix_user_id", c.uid as i32));
    if let Some(n) = user_name(c.uid) {
        v.push(TypedParam::string("unix_user_name", n));
    }
    v.push(TypedParam::int("unix_group_id", c.gid as i32));
    if let Some(n) = group_name(c.gid) {
        v.push(TypedParam::string("unix_group_name", n));
    }
    if let Some(pid) = c.pid {
        v.push(TypedParam::int("unix_process_id", pid));
    }
    v
}

fn handle(server: &str, c: &ClientSummary) -> vireo_proto::admin::Client {
    vireo_proto::admin::Client {
        srv: Server {
            name: server.to_string(),
        },
        id: c.id,
        timestamp: epoch_secs(c.connected_at),
        transport: c.transport,
    }
}

fn epoch_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn no_client(id: u64) -> RemoteError {
    RemoteError::new(
        NO_CLIENT,
        ERRDOM_ADMIN,
        format!("Client not found: no client with matching id '{id}'"),
    )
}

fn unsupported(what: &str) -> RemoteError {
    RemoteError::new(
        code::OPERATION_UNSUPPORTED,
        ERRDOM_ADMIN,
        format!("Operation not supported: {what}"),
    )
}

/// Every admin call takes flags, and none is defined yet.
fn no_flags(flags: u32, func: &str) -> Result<(), RemoteError> {
    if flags == 0 {
        return Ok(());
    }
    Err(invalid_arg(format!(
        "unsupported flags (0x{flags:x}) in function {func}"
    )))
}

fn args<T: Xdr>(payload: &[u8]) -> Result<T, RemoteError> {
    let mut d = Decoder::new(payload);
    let v = T::decode(&mut d).map_err(bad_payload)?;
    d.finish().map_err(bad_payload)?;
    Ok(v)
}

fn bad_payload(e: vireo_xdr::XdrError) -> RemoteError {
    RemoteError::rpc(format!("Unable to decode message payload: {e}"))
}

fn ret<T: Xdr>(v: T) -> ProcResult {
    Ok(vireo_xdr::to_bytes(&v))
}

fn void() -> ProcResult {
    Ok(Vec::new())
}

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

fn user_name(uid: u32) -> Option<String> {
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok()??;
    Some(user.name)
}

fn group_name(gid: u32) -> Option<String> {
    let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)).ok()??;
    Some(group.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_validated_and_normalised() {
        let l = LogSettings::default();
        assert_eq!(l.filters(), (String::new(), 0));
        l.set_filters("1:qemu   3:rpc 4:+util.json").unwrap();
        assert_eq!(l.filters(), ("1:qemu 3:rpc 4:+util.json".into(), 3));
        for bad in ["qemu", "5:qemu", "0:qemu", "x:qemu", "1:", "1:+", "1:a:b"] {
            let e = l.set_filters(bad).unwrap_err();
            assert_eq!(e.code, code::INVALID_ARG, "{bad}");
            assert!(e.text().starts_with("invalid argument: "), "{}", e.text());
        }
        // A failed set changes nothing.
        assert_eq!(l.filters().1, 3);
        l.set_filters("").unwrap();
        assert_eq!(l.filters(), (String::new(), 0));
    }

    #[test]
    fn outputs_are_validated_and_default() {
        let l = LogSettings::default();
        assert_eq!(l.outputs(), (DEFAULT_LOG_OUTPUTS.into(), 1));
        l.set_outputs("1:stderr 2:file:/var/log/v.log 3:syslog:vireod 4:journald")
            .unwrap();
        assert_eq!(l.outputs().1, 4);
        for bad in [
            "stderr",
            "9:stderr",
            "1:stdout",
            "1:file",
            "1:file:relative",
            "1:syslog",
            "1:syslog:",
            "1:stderr:x",
        ] {
            assert!(l.set_outputs(bad).is_err(), "{bad}");
        }
        l.set_outputs(" ").unwrap();
        assert_eq!(l.outputs(), (DEFAULT_LOG_OUTPUTS.into(), 1));
        assert!(LogSettings::new("1:a", "").is_ok());
        assert!(LogSettings::new("a", "").is_err());
    }

    #[test]
    fn client_params_use_libvirt_names() {
        let c = ClientSummary {
            id: 3,
            connected_at: UNIX_EPOCH + std::time::Duration::from_secs(100),
            readonly: true,
            uid: 0,
            gid: 0,
            pid: Some(42),
            transport: 0,
            sock_addr: None,
            x509_dname: None,
            sasl_user: None,
        };
        let p = client_params(&c);
        let names: Vec<&str> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(names[..2], ["readonly", "unix_user_id"]);
        assert!(names.contains(&"unix_group_id"));
        assert_eq!(p.last(), Some(&TypedParam::int("unix_process_id", 42)));
        assert_eq!(user_name(0).as_deref(), Some("root"));
        let h = handle("vireod", &c);
        assert_eq!((h.id, h.timestamp, h.transport), (3, 100, 0));
    }
}
