//! Remote access, as libvirtd offers it with `--listen`: TLS on `tls_port` (`listen_tls`,
//! on by default) and plain TCP on `tcp_port` (`listen_tcp`), each with its `auth_tls` /
//! `auth_tcp` policy, and the SASL exchange that the REMOTE program's AUTH_* calls run:
//! SCRAM-SHA-256 against the users file `vireo-saslpasswd` writes (TLS only, as it has no
//! security layer), and GSSAPI (Kerberos) with the service keys of `sasl_keytab` (on plain
//! TCP with its confidentiality layer under every later byte). vireod serves its TCP
//! clients itself; vireo-proxyd is the modular layout's one remote-facing daemon.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use vireo_conf::{DaemonConfig, RemoteAccess};
use vireo_proto::auth::*;
use vireo_proto::error::{code, domain as errdom};
use vireo_proto::RemoteError;
use vireo_rpc::gssapi::{GssServer, Step, GSSAPI};
use vireo_rpc::layer::Layer;
use vireo_rpc::sasl::{ScramServer, Users, SCRAM_SHA_256};
use vireo_rpc::server::{AuthPolicy, Identity};
use vireo_rpc::tls::{wildcard_match, ServerFiles, ServerPolicy, TlsAcceptor};
use vireo_xdr::Xdr;

use crate::paths::Paths;

/// A listening socket for remote clients and what it asks of them.
pub struct RemoteListener {
    pub listener: TcpListener,
    /// The TLS side, for `listen_tls`.
    pub tls: Option<Arc<TlsAcceptor>>,
    pub auth: AuthPolicy,
}

/// The SASL side of the daemon: who may log in.
pub struct Sasl {
    /// The users file (`sasl_users_file`).
    pub users_file: PathBuf,
    /// `sasl_allowed_username_list` (`None`: any user the file knows).
    pub allowed: Option<Vec<String>>,
    /// The Kerberos keytab with the `libvirt/HOST` service keys GSSAPI accepts tickets for.
    pub keytab: PathBuf,
    /// GSSAPI's replay cache (in the runtime directory).
    pub rcache: String,
}

impl Sasl {
    pub fn from_conf(paths: &Paths, r: &RemoteAccess) -> Sasl {
        Sasl {
            users_file: r
                .sasl_users_file
                .clone()
                .unwrap_or_else(|| default_users_file(paths)),
            allowed: r.sasl_allowed_username_list.clone(),
            keytab: keytab(paths, r),
            rcache: format!("file2:{}", paths.run_dir.join("krb5.rcache2").display()),
        }
    }

    /// Whether GSSAPI can be offered: the GSS-API library loads and the keytab is readable
    /// (looked at each time, as the users file is: a keytab put in place later is used).
    pub fn gssapi(&self) -> Result<(), String> {
        vireo_rpc::gssapi::available().map_err(|e| e.to_string())?;
        std::fs::File::open(&self.keytab)
            .map(|_| ())
            .map_err(|e| format!("cannot read the keytab {}: {e}", self.keytab.display()))
    }
}

/// The keytab: `sasl_keytab`, else `$KRB5_KTNAME` (a `FILE:` one), else `krb5.tab` in the
/// configuration directory (`/etc/vireo/krb5.tab`, as libvirt's `/etc/libvirt/krb5.tab`).
pub fn keytab(paths: &Paths, r: &RemoteAccess) -> PathBuf {
    if let Some(k) = &r.sasl_keytab {
        return k.clone();
    }
    if let Some(k) = std::env::var_os("KRB5_KTNAME") {
        let k = k.to_string_lossy();
        let k = k.strip_prefix("FILE:").unwrap_or(&k);
        if !k.is_empty() {
            return PathBuf::from(k);
        }
    }
    paths.config_dir.join("krb5.tab")
}

/// Where the SASL users are kept by default: `sasl-users` in the configuration directory.
pub fn default_users_file(paths: &Paths) -> PathBuf {
    paths.config_dir.join("sasl-users")
}

/// The server's TLS files: the .conf's, else libvirt's places — `/etc/pki/...` for a
/// system daemon (`ROOT/etc/pki/...` under `--root`), `$HOME/.pki/libvirt/...` for a
/// session one.
pub fn server_files(paths: &Paths, r: &RemoteAccess) -> ServerFiles {
    let base = if paths.embedded || paths.privileged {
        // config_dir is ETC/vireo.
        let etc = paths
            .config_dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/etc"));
        ServerFiles::system(&etc.join("pki"))
    } else {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/"));
        ServerFiles::in_dir(&home.join(".pki/libvirt"))
    };
    ServerFiles {
        ca: r.ca_file.clone().unwrap_or(base.ca),
        cert: r.cert_file.clone().unwrap_or(base.cert),
        key: r.key_file.clone().unwrap_or(base.key),
        crl: r.crl_file.clone().or(base.crl),
    }
}

fn policy(auth: &str) -> AuthPolicy {
    match auth {
        "sasl" => AuthPolicy::Sasl,
        _ => AuthPolicy::None,
    }
}

/// Binds `listen_addr:port` (every address when none is set).
fn bind(addr: Option<&str>, port: u16) -> anyhow::Result<TcpListener> {
    let candidates: Vec<SocketAddr> = match addr {
        Some(a) => {
            use std::net::ToSocketAddrs;
            (a.trim_start_matches('[').trim_end_matches(']'), port)
                .to_socket_addrs()
                .with_context(|| format!("listen_addr '{a}' is not an address"))?
                .collect()
        }
        None => vec![
            SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)),
            SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port)),
        ],
    };
    let mut last = None;
    for a in candidates {
        match std::net::TcpListener::bind(a) {
            Ok(l) => {
                l.set_nonblocking(true)?;
                return Ok(TcpListener::from_std(l)?);
            }
            Err(e) => last = Some((a, e)),
        }
    }
    match last {
        Some((a, e)) => Err(e).with_context(|| format!("cannot listen on {a}")),
        None => anyhow::bail!("listen_addr resolves to no address"),
    }
}

/// The remote listeners the .conf asks for (none without `--listen`), bound now so that
/// the daemon is reachable by the time it says it is ready.
pub fn listeners(
    name: &str,
    paths: &Paths,
    conf: &DaemonConfig,
) -> anyhow::Result<Vec<RemoteListener>> {
    let r = &conf.remote;
    let mut out = Vec::new();
    if !r.listen {
        return Ok(out);
    }
    if r.listen_tls {
        let files = server_files(paths, r);
        let acceptor = TlsAcceptor::new(
            &files,
            ServerPolicy {
                no_verify: r.tls_no_verify_certificate,
                allowed_dn: r.tls_allowed_dn_list.clone(),
                no_sanity: r.tls_no_sanity_certificate,
            },
        )
        .context("cannot set up TLS")?;
        out.push(RemoteListener {
            listener: bind(r.listen_addr.as_deref(), r.tls_port)?,
            tls: Some(Arc::new(acceptor)),
            auth: policy(&r.auth_tls),
        });
    }
    if r.listen_tcp {
        if r.auth_tcp == "sasl" {
            // libvirt wants a security layer on plain TCP: GSSAPI's; SCRAM has none. Say
            // now whether TCP clients can log in rather than at each refusal.
            let sasl = Sasl::from_conf(paths, r);
            match sasl.gssapi() {
                Ok(()) => eprintln!(
                    "{name}: SASL GSSAPI (Kerberos) on plain TCP with the keys of {}",
                    sasl.keytab.display()
                ),
                Err(why) => eprintln!(
                    "{name}: warning: auth_tcp = \"sasl\" needs GSSAPI (Kerberos) on plain TCP, the one SASL mechanism with a security layer Vireo has, and GSSAPI is not offered ({why}): TCP clients will be refused; put the libvirt/HOST keys in the keytab (sasl_keytab), use TLS (listen_tls, auth_tls = \"sasl\") or auth_tcp = \"none\" on a trusted network"
                ),
            }
        }
        out.push(RemoteListener {
            listener: bind(r.listen_addr.as_deref(), r.tcp_port)?,
            tls: None,
            auth: policy(&r.auth_tcp),
        });
    }
    Ok(out)
}

/// Serves `server`'s program to the remote clients of each listener, until the server
/// shuts down.
pub fn serve<S: vireo_rpc::server::Service>(
    server: &Arc<vireo_rpc::server::Server<S>>,
    listeners: Vec<RemoteListener>,
) -> Vec<tokio::task::JoinHandle<()>> {
    listeners
        .into_iter()
        .map(|l| {
            let s = Arc::clone(server);
            tokio::spawn(async move { s.serve_tcp(l.listener, l.tls, l.auth).await })
        })
        .collect()
}

/// libvirt's answer to any failed authentication step.
pub fn auth_failed() -> RemoteError {
    RemoteError::new(code::AUTH_FAILED, errdom::RPC, "authentication failed")
}

/// What an AUTH_* call did.
pub enum AuthAnswer {
    /// The reply payload; the client is not (yet) authenticated.
    Reply(Vec<u8>),
    /// The reply payload, and the client is now authenticated as this user; the security
    /// layer SASL negotiated, if any, starts right after this reply.
    Authenticated(Vec<u8>, String, Option<Layer>),
    Error(RemoteError),
}

/// A client's SASL exchange.
pub enum Session {
    /// AUTH_SASL_INIT listed the mechanisms; START picks one.
    Init,
    Scram(ScramServer),
    Gssapi(GssServer),
}

/// AUTH_SASL_START / STEP's answer: go on with `data`.
fn more(data: Vec<u8>) -> AuthAnswer {
    AuthAnswer::Reply(vireo_xdr::to_bytes(&AuthSaslStartRet {
        complete: 0,
        nil: 0,
        data: SaslData(data),
    }))
}

/// Whether `sasl_allowed_username_list` lets `user` in (libvirt's shell wildcards).
fn allowed(sasl: &Sasl, user: &str) -> Result<(), String> {
    match &sasl.allowed {
        Some(list) if !list.iter().any(|w| wildcard_match(w, user)) => Err(format!(
            "SASL client identity '{user}' not allowed by sasl_allowed_username_list"
        )),
        _ => Ok(()),
    }
}

/// One GSSAPI message from the client: the next to send, or the end — the identity
/// checked against `sasl_allowed_username_list` and, on plain TCP, a layer of at least 56
/// bits (libvirt's minimum), which starts after this reply. The reply that completes the
/// exchange carries no data (`nil`), as cyrus-sasl's.
fn gss_step(sasl: &Sasl, g: &mut GssServer, msg: &[u8], secure: bool) -> AuthAnswer {
    let refuse = |why: String| {
        log::warn!("SASL authentication refused: {why}");
        AuthAnswer::Error(auth_failed())
    };
    match g.step(msg) {
        Ok(Step::Continue(data)) => more(data),
        Ok(Step::Done(o)) => {
            if !secure && (o.layer.is_none() || o.ssf() < 56) {
                return refuse(format!("negotiated SSF {} was not strong enough", o.ssf()));
            }
            if let Err(why) = allowed(sasl, &o.user) {
                return refuse(why);
            }
            log::info!(
                "SASL client '{}' authenticated with GSSAPI, SSF {}",
                o.user,
                o.ssf()
            );
            let reply = vireo_xdr::to_bytes(&AuthSaslStartRet {
                complete: 1,
                nil: 1,
                data: SaslData(Vec::new()),
            });
            AuthAnswer::Authenticated(reply, o.user, o.layer.map(|l| l as Layer))
        }
        Ok(Step::Finish(..)) => refuse("GSSAPI: a client's step on the server".into()),
        Err(e) => refuse(format!("GSSAPI: {e}")),
    }
}

/// Answers AUTH_LIST, AUTH_SASL_INIT, AUTH_SASL_START and AUTH_SASL_STEP for a client
/// whose listener asks `policy`; `secure` is whether its transport is (TLS or UNIX: SCRAM
/// is offered only there); `session` is its SASL exchange in progress. Any refusal ends the
/// exchange (the client may start another). AUTH_POLKIT is [`polkit`]'s.
pub fn answer(
    sasl: &Sasl,
    session: &mut Option<Session>,
    policy: AuthPolicy,
    secure: bool,
    proc_: i32,
    payload: &[u8],
) -> AuthAnswer {
    let fail = |session: &mut Option<Session>, why: &str| {
        if !why.is_empty() {
            log::warn!("SASL authentication refused: {why}");
        }
        *session = None;
        AuthAnswer::Error(auth_failed())
    };
    match proc_ {
        procs::AUTH_LIST => {
            AuthAnswer::Reply(vireo_xdr::to_bytes(&vireo_xdr::Array::<
                i32,
                { vireo_proto::remote::AUTH_TYPE_LIST_MAX },
            >(vec![policy.auth_type()])))
        }
        procs::AUTH_SASL_INIT => {
            if policy != AuthPolicy::Sasl || session.is_some() {
                return fail(session, "client tried invalid SASL init request");
            }
            // As cyrus-sasl lists them: SCRAM where the transport is secure, GSSAPI
            // wherever it can be used.
            let mut mechs = Vec::new();
            if secure {
                mechs.push(SCRAM_SHA_256);
            }
            let gss = sasl.gssapi();
            if gss.is_ok() {
                mechs.push(GSSAPI);
            }
            if mechs.is_empty() {
                let why = gss.err().unwrap_or_default();
                return fail(
                    session,
                    &format!("no SASL mechanism with a security layer for a plain TCP client: GSSAPI is not offered ({why})"),
                );
            }
            *session = Some(Session::Init);
            AuthAnswer::Reply(vireo_xdr::to_bytes(&AuthSaslInitRet {
                mechlist: mechs.join(","),
            }))
        }
        procs::AUTH_SASL_START => {
            if policy != AuthPolicy::Sasl || !matches!(session, Some(Session::Init)) {
                return fail(session, "client tried invalid SASL start request");
            }
            let a: AuthSaslStartArgs = match vireo_xdr::from_bytes(payload) {
                Ok(a) => a,
                Err(_) => return fail(session, "malformed SASL start"),
            };
            if a.mech == GSSAPI && sasl.gssapi().is_ok() {
                // A security layer is required where the transport is not secure.
                let mut g = match GssServer::new(&sasl.keytab, Some(&sasl.rcache), !secure) {
                    Ok(g) => g,
                    Err(e) => return fail(session, &e.to_string()),
                };
                let r = gss_step(sasl, &mut g, &a.data.0, secure);
                if matches!(r, AuthAnswer::Reply(_)) {
                    *session = Some(Session::Gssapi(g));
                } else {
                    *session = None;
                }
                return r;
            }
            if a.mech != SCRAM_SHA_256 || a.nil != 0 || !secure {
                return fail(session, &format!("mechanism '{}' not offered", a.mech));
            }
            let mut s = ScramServer::new();
            let users = match Users::load(&sasl.users_file) {
                Ok(u) => u,
                Err(e) => return fail(session, &e.to_string()),
            };
            match s.start(&a.data.0, |u| users.users.get(u).cloned()) {
                Ok(first) => {
                    *session = Some(Session::Scram(s));
                    more(first)
                }
                Err(e) => fail(session, &e.to_string()),
            }
        }
        procs::AUTH_SASL_STEP => {
            let a: AuthSaslStepArgs = match vireo_xdr::from_bytes(payload) {
                Ok(a) => a,
                Err(_) => return fail(session, "malformed SASL step"),
            };
            let s = match session.as_mut().filter(|_| policy == AuthPolicy::Sasl) {
                Some(Session::Scram(s)) => s,
                Some(Session::Gssapi(g)) => {
                    let r = gss_step(sasl, g, &a.data.0, secure);
                    if !matches!(r, AuthAnswer::Reply(_)) {
                        *session = None;
                    }
                    return r;
                }
                _ => return fail(session, "client tried invalid SASL step request"),
            };
            let (fin, user) = match s.finish(&a.data.0) {
                Ok(r) => r,
                Err(e) => return fail(session, &e.to_string()),
            };
            *session = None;
            if let Err(why) = allowed(sasl, &user) {
                return fail(session, &why);
            }
            let mut out = Vec::new();
            AuthSaslStartRet {
                complete: 1,
                nil: 0,
                data: SaslData(fin),
            }
            .encode(&mut out);
            AuthAnswer::Authenticated(out, user, None)
        }
        _ => AuthAnswer::Error(auth_failed()),
    }
}

/// Answers AUTH_POLKIT for a UNIX socket's client whose socket asks `policy` (after
/// [`AuthPolicy::for_local_peer`]): polkit is asked whether the peer `who` may use the
/// read-only (`readonly`) or read-write socket. `Ok` carries the reply, and the client is
/// then authenticated.
pub async fn polkit(
    policy: AuthPolicy,
    who: Identity,
    readonly: bool,
) -> Result<Vec<u8>, RemoteError> {
    if policy != AuthPolicy::Polkit {
        log::warn!("client tried invalid PolicyKit init request");
        return Err(auth_failed());
    }
    let action = crate::polkit::action(readonly);
    let pid = who.pid.unwrap_or(-1);
    match crate::polkit::check(action, who.pid, who.uid).await {
        Ok(()) => {
            log::info!("polkit allowed {action} from pid {pid}, uid {}", who.uid);
            Ok(vireo_xdr::to_bytes(&AuthPolkitRet { complete: 1 }))
        }
        Err(e) => {
            log::warn!(
                "polkit refused {action} from pid {pid}, uid {}: {e}",
                who.uid
            );
            Err(e.to_remote())
        }
    }
}

/// What a UNIX socket's clients must prove (`auth_unix_rw` / `auth_unix_ro`).
pub fn unix_policy(auth: &str) -> AuthPolicy {
    match auth {
        "polkit" => AuthPolicy::Polkit,
        _ => AuthPolicy::None,
    }
}

/// At start: a daemon told to ask polkit says so when polkit's `pkcheck` is missing (every
/// user but root and the daemon's own would be refused).
pub fn check_polkit(name: &str, conf: &DaemonConfig) {
    let wanted = [&conf.auth_unix_rw, &conf.auth_unix_ro]
        .iter()
        .any(|a| a.as_str() == "polkit");
    if wanted && !crate::polkit::available() {
        eprintln!(
            "{name}: warning: auth_unix_rw / auth_unix_ro = \"polkit\" but polkit's pkcheck is not installed (Debian: polkitd): clients other than root will be refused"
        );
    }
}
