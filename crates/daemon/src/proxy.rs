//! `vireo-proxyd`: the one legacy socket (`vireod-sock`). Each client's calls go, frame by
//! frame and payload untouched, to the daemon that serves their API family; replies,
//! events and stream packets come back the same way. The proxy keeps no state beyond the
//! connections of its current clients.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use std::os::fd::AsFd;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use vireo_proto::error::{code, domain as errdom};
use vireo_proto::family::{family_of, Family};
use vireo_proto::feature;
use vireo_proto::header::{encode_frame, frame_into, keepalive_frame, Header};
use vireo_proto::remote::*;
use vireo_proto::typed::{TypedParam, TypedValue};
use vireo_proto::{
    MessageType, RemoteError, Status, KEEPALIVE_PING, KEEPALIVE_PONG, KEEPALIVE_PROGRAM,
    REMOTE_PROGRAM, REMOTE_VERSION,
};
use vireo_rpc::frame::{read_frame, Frame};
use vireo_rpc::handoff;
use vireo_rpc::layer::{Layer, LayerReader, LayerWriter};
use vireo_rpc::metrics::{ServerMetrics, Socket};
use vireo_rpc::server::{allowed_before_auth, own_identity, AuthPolicy, Identity};
use vireo_xdr::{Array, Xdr};

use crate::identity::TOKEN_PARAM;
use crate::paths::Paths;
use crate::remote_access::{answer, AuthAnswer, RemoteListener, Sasl, Session};

/// Serials the proxy uses for its own calls on a backend (identity, opening secondaries);
/// clients count up from 0, so the two never meet in practice.
const OWN_SERIAL_BASE: u32 = 0xC000_0000;

/// Streams one client may have open through the proxy.
const MAX_STREAMS: usize = 256;

pub struct Proxy {
    pub paths: Paths,
    pub token: String,
    /// Connections still being served.
    pub live: watch::Sender<usize>,
    /// Clients, authentication failures and the calls answered here.
    pub metrics: Arc<ServerMetrics>,
}

impl Proxy {
    pub fn new(paths: Paths, token: String) -> Arc<Proxy> {
        Arc::new(Proxy {
            paths,
            token,
            live: watch::channel(0).0,
            metrics: Arc::new(ServerMetrics::default()),
        })
    }

    /// Accepts clients until `stop` turns true; `auth` is what each must prove first (see
    /// [`AuthPolicy::for_local_peer`]): the check is made here, where the client connects,
    /// before its connection goes to a driver daemon.
    pub async fn serve(
        self: Arc<Self>,
        listener: UnixListener,
        readonly: bool,
        auth: AuthPolicy,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                r = listener.accept() => if let Ok((s, _)) = r {
                    let me = Arc::clone(&self);
                    let stop = stop.clone();
                    self.live.send_modify(|n| *n += 1);
                    tokio::spawn(async move {
                        {
                            let socket = if readonly { Socket::ReadOnly } else { Socket::ReadWrite };
                            let _counted = me.metrics.connected(socket);
                            Client::run(&me, s, readonly, auth, stop).await;
                        }
                        me.live.send_modify(|n| *n -= 1);
                    });
                },
            }
        }
    }
}

impl Proxy {
    /// Accepts remote clients on `l` until `stop` turns true: each completes its TLS
    /// handshake (if the listener has TLS) in a task of its own, authenticates as the
    /// listener asks, and has its calls forwarded frame by frame like a local client's
    /// (a TLS session cannot be handed to another process).
    pub async fn serve_remote(
        self: Arc<Self>,
        l: RemoteListener,
        sasl: Arc<Sasl>,
        mut stop: watch::Receiver<bool>,
    ) {
        self.metrics.listening(if l.tls.is_some() {
            Socket::Tls
        } else {
            Socket::Tcp
        });
        loop {
            let (tcp, addr) = tokio::select! {
                _ = stop.changed() => return,
                r = l.listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        log::warn!("accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let me = Arc::clone(&self);
            let tls = l.tls.clone();
            let sasl = Arc::clone(&sasl);
            let mut stop = stop.clone();
            let auth = l.auth;
            self.live.send_modify(|n| *n += 1);
            let socket = if tls.is_some() {
                Socket::Tls
            } else {
                Socket::Tcp
            };
            tokio::spawn(async move {
                let counted = me.metrics.connected(socket);
                let mut remote = Remote {
                    auth,
                    secure: tls.is_some(),
                    authenticated: auth == AuthPolicy::None,
                    sasl,
                    session: None,
                    dname: None,
                    user: None,
                };
                match tls {
                    None => {
                        let (rd, wr) = tokio::io::split(tcp);
                        Client::serve_frames(
                            &me,
                            rd,
                            wr,
                            own_identity(),
                            false,
                            stop,
                            Vec::new(),
                            Some(remote),
                        )
                        .await
                    }
                    Some(acceptor) => {
                        let accepted = tokio::select! {
                            _ = stop.changed() => None,
                            r = acceptor.accept(tcp) => Some(r),
                        };
                        match accepted {
                            Some(Ok((stream, peer))) => {
                                remote.dname = peer.dname;
                                let (rd, wr) = tokio::io::split(stream);
                                Client::serve_frames(
                                    &me,
                                    rd,
                                    wr,
                                    own_identity(),
                                    false,
                                    stop,
                                    Vec::new(),
                                    Some(remote),
                                )
                                .await
                            }
                            Some(Err(e)) => {
                                me.metrics.auth_failed(Socket::Tls);
                                log::warn!("TLS client {addr} refused: {e}")
                            }
                            None => {}
                        }
                    }
                }
                drop(counted);
                me.live.send_modify(|n| *n -= 1);
            });
        }
    }
}

/// What a remote (TCP, TLS) client must prove, and what it proved.
struct Remote {
    auth: AuthPolicy,
    /// TLS (SCRAM is offered only there).
    secure: bool,
    authenticated: bool,
    sasl: Arc<Sasl>,
    session: Option<Session>,
    /// Its certificate's distinguished name.
    dname: Option<String>,
    /// The user SASL authenticated.
    user: Option<String>,
}

/// How a daemon's connection for a client ends the client's: `gone` is told when the
/// client must go (its primary daemon hung up, or it does not read its events).
struct Hangup {
    gone: Arc<Notify>,
    primary: bool,
    /// The client, for the log.
    who: String,
}

/// A daemon behind the proxy, for one client.
struct Backend {
    tx: mpsc::Sender<Vec<u8>>,
    pending: Arc<Mutex<HashMap<u32, oneshot::Sender<Frame>>>>,
    /// Set once the client uses it: the primary daemon's end then ends the client's
    /// connection.
    serving: Arc<AtomicBool>,
    /// Cleared when the daemon hangs up: another daemon's is then connected again at the
    /// client's next call for it.
    alive: Arc<AtomicBool>,
    /// Dropped with the backend (the client left): its reader stops, and with it the last
    /// holders of the connection's writer and of the client's queue, so the daemon's
    /// connection closes and the client's writer (and its security layer) ends.
    _stop: oneshot::Sender<()>,
}

impl Backend {
    /// Connects; everything the daemon sends goes to the client except replies to the
    /// proxy's own calls and keepalive, which the proxy answers itself. Replies and
    /// stream packets wait for room in the client's queue (the daemon then waits too);
    /// an event that finds it full drops the client, as the daemons drop one that does
    /// not read.
    async fn connect(
        path: &std::path::Path,
        to_client: mpsc::Sender<Vec<u8>>,
        hangup: Hangup,
    ) -> std::io::Result<Backend> {
        let s = UnixStream::connect(path).await?;
        let (mut rd, wr) = s.into_split();
        let (tx, rx) = mpsc::channel::<Vec<u8>>(256);
        tokio::spawn(write_loop(wr, rx));
        let pending: Arc<Mutex<HashMap<u32, oneshot::Sender<Frame>>>> = Arc::default();
        let p2 = Arc::clone(&pending);
        let tx2 = tx.clone();
        let serving = Arc::new(AtomicBool::new(false));
        let alive = Arc::new(AtomicBool::new(true));
        let (serving2, alive2) = (Arc::clone(&serving), Arc::clone(&alive));
        let (stop, mut stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            loop {
                let f = tokio::select! {
                    _ = &mut stopped => return,
                    f = read_frame(&mut rd) => match f {
                        Ok(f) => f,
                        Err(_) => break,
                    },
                };
                let h = f.header;
                if h.prog == KEEPALIVE_PROGRAM {
                    if h.proc_ == KEEPALIVE_PING {
                        let _ = tx2.send(keepalive_frame(KEEPALIVE_PONG)).await;
                    }
                    continue;
                }
                if h.serial >= OWN_SERIAL_BASE && h.mtype == MessageType::Reply as i32 {
                    let w = p2.lock().ok().and_then(|mut m| m.remove(&h.serial));
                    if let Some(w) = w {
                        let _ = w.send(f);
                    }
                    continue;
                }
                let frame = encode_frame(&h, &f.payload);
                if h.mtype != MessageType::Message as i32 {
                    if to_client.send(frame).await.is_err() {
                        return;
                    }
                    continue;
                }
                match to_client.try_send(frame) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        log::warn!(
                            "client ({}) dropped: too slow to read its messages: {} \
                             messages left unread",
                            hangup.who,
                            to_client.max_capacity()
                        );
                        hangup.gone.notify_one();
                        return;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
            // The daemon hung up (it stopped, or dropped a client too slow to read what it
            // was sent). The primary one's end is the client's, as its own connection to
            // that daemon would end.
            alive2.store(false, Ordering::Release);
            if hangup.primary && serving2.load(Ordering::Acquire) {
                hangup.gone.notify_one();
            }
        });
        Ok(Backend {
            tx,
            pending,
            serving,
            alive,
            _stop: stop,
        })
    }

    async fn call<A: Xdr>(&self, serial: u32, proc_: i32, args: &A) -> Result<(), RemoteError> {
        let (w, r) = oneshot::channel();
        if let Ok(mut m) = self.pending.lock() {
            m.insert(serial, w);
        }
        let h = Header::call(REMOTE_PROGRAM, REMOTE_VERSION, proc_, serial);
        let mut f = Vec::new();
        frame_into(&mut f, &h, |o| args.encode(o));
        if self.tx.send(f).await.is_err() {
            return Err(RemoteError::rpc("the daemon closed the connection"));
        }
        let reply = r
            .await
            .map_err(|_| RemoteError::rpc("the daemon closed the connection"))?;
        if reply.header.status == Status::Ok as i32 {
            Ok(())
        } else {
            Err(vireo_xdr::from_bytes(&reply.payload)
                .unwrap_or_else(|_| RemoteError::rpc("malformed error from the daemon")))
        }
    }
}

struct Client<'a> {
    proxy: &'a Proxy,
    identity: Identity,
    /// A remote client's authentication (None: a local one).
    remote: Option<Remote>,
    readonly: bool,
    out: mpsc::Sender<Vec<u8>>,
    /// The SASL security layer to start on the reading side once this call is handled.
    read_layer: Option<Layer>,
    /// Where the writer finds the layer to start at the next empty frame.
    write_layer: Arc<Mutex<Option<Layer>>>,
    backends: HashMap<Family, Backend>,
    primary: Option<Family>,
    mode: &'static str,
    streams: HashMap<u32, Family>,
    own_serial: AtomicU32,
    /// Told when the client must go: its primary daemon's connection ended, or it does
    /// not read its events.
    backend_gone: Arc<Notify>,
}

impl<'a> Client<'a> {
    async fn run(
        proxy: &'a Proxy,
        stream: UnixStream,
        readonly: bool,
        auth: AuthPolicy,
        mut stop: watch::Receiver<bool>,
    ) {
        let Ok(cred) = stream.peer_cred() else { return };
        let identity = Identity {
            uid: cred.uid(),
            gid: cred.gid(),
            pid: cred.pid(),
        };
        let auth = auth.for_local_peer(identity.uid);
        let mut stream = stream;
        let pending = match hand_over(proxy, &mut stream, readonly, auth, identity, &mut stop).await
        {
            None => return,
            Some(p) => p,
        };
        // The daemon could not take the connection: pass its frames on one by one.
        let stream = match stream.into_std().and_then(UnixStream::from_std) {
            Ok(s) => s,
            Err(_) => return,
        };
        let (rd, wr) = stream.into_split();
        Client::serve_frames(proxy, rd, wr, identity, readonly, stop, pending, None).await
    }

    /// Forwards a client's frames one by one (those in `pending` first) until it leaves.
    #[allow(clippy::too_many_arguments)]
    async fn serve_frames<R, W>(
        proxy: &'a Proxy,
        rd: R,
        wr: W,
        identity: Identity,
        readonly: bool,
        mut stop: watch::Receiver<bool>,
        pending: Vec<Frame>,
        remote: Option<Remote>,
    ) where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (out, rx) = mpsc::channel(1024);
        let write_layer = Arc::new(Mutex::new(None));
        tokio::spawn(client_write_loop(
            LayerWriter::new(wr),
            rx,
            Arc::clone(&write_layer),
        ));
        let mut rd = LayerReader::new(rd);
        let mut c = Client {
            read_layer: None,
            write_layer,
            proxy,
            identity,
            remote,
            readonly,
            out,
            backends: HashMap::new(),
            primary: None,
            mode: if proxy.paths.privileged {
                "system"
            } else {
                "session"
            },
            streams: HashMap::new(),
            own_serial: AtomicU32::new(OWN_SERIAL_BASE),
            backend_gone: Arc::new(Notify::new()),
        };
        for f in pending {
            if !c.on_frame(f).await {
                return;
            }
        }
        loop {
            let f = tokio::select! {
                _ = stop.changed() => return,
                _ = c.backend_gone.notified() => return,
                f = read_frame(&mut rd) => match f {
                    Ok(f) => f,
                    Err(_) => return,
                },
            };
            if !c.on_frame(f).await {
                return;
            }
            // SASL completed with a layer: what the client sends from now on is under it.
            if let Some(l) = c.read_layer.take() {
                rd.start(l);
            }
        }
    }

    async fn on_frame(&mut self, f: Frame) -> bool {
        let h = f.header;
        if h.prog == KEEPALIVE_PROGRAM {
            if h.proc_ == KEEPALIVE_PING {
                let _ = self.out.send(keepalive_frame(KEEPALIVE_PONG)).await;
            }
            return true;
        }
        match h.message_type() {
            Some(MessageType::Call) => self.on_call(f).await,
            Some(MessageType::Stream | MessageType::StreamHole) => {
                if let Some(fam) = self.streams.get(&h.serial).copied() {
                    if h.status != Status::Continue as i32 {
                        self.streams.remove(&h.serial);
                    }
                    if let Some(b) = self.backends.get(&fam) {
                        let _ = b.tx.send(encode_frame(&h, &f.payload)).await;
                    }
                }
                true
            }
            // File descriptors would follow the frame; nothing here can pass them on.
            Some(MessageType::CallWithFds) => false,
            _ => true,
        }
    }

    async fn on_call(&mut self, f: Frame) -> bool {
        let h = f.header;
        if let Some(r) = self.remote.as_mut() {
            if allowed_before_auth(h.prog, h.proc_) {
                let a = answer(
                    &r.sasl,
                    &mut r.session,
                    r.auth,
                    r.secure,
                    h.proc_,
                    &f.payload,
                );
                let out = match a {
                    AuthAnswer::Reply(p) => Ok(p),
                    AuthAnswer::Authenticated(p, user, layer) => {
                        r.authenticated = true;
                        r.user = Some(user);
                        if let Some(l) = layer {
                            // The reply goes out plainly, then the writer starts the layer
                            // (at the empty frame); the reader starts it after this call.
                            let mut fr = Vec::new();
                            frame_into(&mut fr, &h.reply(Status::Ok), |o| o.extend_from_slice(&p));
                            if let Ok(mut w) = self.write_layer.lock() {
                                *w = Some(Arc::clone(&l));
                            }
                            self.read_layer = Some(l);
                            return self.out.send(fr).await.is_ok()
                                && self.out.send(Vec::new()).await.is_ok();
                        }
                        Ok(p)
                    }
                    AuthAnswer::Error(e) => {
                        let socket = if r.secure { Socket::Tls } else { Socket::Tcp };
                        self.proxy.metrics.auth_failed(socket);
                        Err(e)
                    }
                };
                return match out {
                    Ok(p) => {
                        let mut fr = Vec::new();
                        frame_into(&mut fr, &h.reply(Status::Ok), |o| o.extend_from_slice(&p));
                        self.out.send(fr).await.is_ok()
                    }
                    Err(e) => self.reply_error(&h, &e).await,
                };
            }
            if !r.authenticated {
                return self
                    .reply_error(&h, &RemoteError::rpc("authentication required"))
                    .await;
            }
        }
        let qemu = h.prog == vireo_proto::QEMU_PROGRAM && h.vers == vireo_proto::QEMU_VERSION;
        if !qemu && (h.prog != REMOTE_PROGRAM || h.vers != REMOTE_VERSION) {
            let e = RemoteError::rpc(format!("Cannot find program {} version {}", h.prog, h.vers));
            return self.reply_error(&h, &e).await;
        }
        let Some(primary) = self.primary else {
            return self.before_open(f).await;
        };
        // libvirt's QEMU program is the hypervisor daemon's.
        let fam = match family_of(h.proc_) {
            _ if qemu => primary,
            Family::Hypervisor => primary,
            other => other,
        };
        if let Err(e) = self.ensure(fam, None).await {
            return self.reply_error(&h, &e).await;
        }
        // A stream's packets follow the daemon that answered the call that opened it.
        if vireo_proto::remote::opens_stream(h.proc_) {
            if self.streams.len() >= MAX_STREAMS {
                let e = RemoteError::rpc(format!("too many open streams (limit {MAX_STREAMS})"));
                return self.reply_error(&h, &e).await;
            }
            self.streams.insert(h.serial, fam);
        }
        if let Some(b) = self.backends.get(&fam) {
            let _ = b.tx.send(encode_frame(&h, &f.payload)).await;
        }
        true
    }

    /// AUTH_LIST and feature probes are answered here; CONNECT_OPEN picks the primary
    /// daemon from the URI and is passed on to it.
    async fn before_open(&mut self, f: Frame) -> bool {
        let h = f.header;
        match h.proc_ {
            procs::AUTH_LIST => {
                self.reply(
                    &h,
                    &AuthListRet {
                        types: Array(vec![0]),
                    },
                )
                .await
            }
            procs::CONNECT_SUPPORTS_FEATURE => {
                let supported =
                    match vireo_xdr::from_bytes::<ConnectSupportsFeatureArgs>(&f.payload) {
                        Ok(a) => matches!(
                            a.feature,
                            feature::PROGRAM_KEEPALIVE
                                | feature::REMOTE_EVENT_CALLBACK
                                | feature::REMOTE_CLOSE_CALLBACK
                                | feature::TYPED_PARAM_STRING
                        ) as i32,
                        Err(_) => 0,
                    };
                self.reply(&h, &ConnectSupportsFeatureRet { supported })
                    .await
            }
            procs::CONNECT_OPEN => {
                let (name, fam) = open_target(&f.payload);
                let Some(fam) = fam else {
                    let e = RemoteError::new(
                        code::NO_CONNECT,
                        errdom::REMOTE,
                        format!(
                            "no connection driver available for {}",
                            name.unwrap_or_default()
                        ),
                    );
                    return self.reply_error(&h, &e).await;
                };
                // The client's own OPEN goes to its daemon; the reply comes back from there.
                if let Err(e) = self.ensure(fam, Some(&f)).await {
                    return self.reply_error(&h, &e).await;
                }
                self.primary = Some(fam);
                true
            }
            _ => {
                let e = RemoteError::new(
                    code::INTERNAL_ERROR,
                    errdom::RPC,
                    "internal error: hypervisor connection not open",
                );
                self.reply_error(&h, &e).await
            }
        }
    }

    /// Makes sure the daemon for `fam` is connected: vouch for the client, then open
    /// (with the client's own OPEN frame for the primary, or one of ours otherwise).
    async fn ensure(&mut self, fam: Family, open: Option<&Frame>) -> Result<(), RemoteError> {
        match self.backends.get(&fam) {
            Some(b) if b.alive.load(Ordering::Acquire) => return Ok(()),
            // That daemon hung up (restarted, say): connect again.
            Some(_) => {
                self.backends.remove(&fam);
            }
            None => {}
        }
        let daemon = fam.daemon();
        let p = &self.proxy.paths;
        let path = if self.readonly {
            p.socket_ro(daemon)
        } else {
            p.socket(daemon)
        };
        let hangup = Hangup {
            gone: Arc::clone(&self.backend_gone),
            primary: open.is_some(),
            who: format!(
                "pid {}, uid {}",
                self.identity
                    .pid
                    .map_or_else(|| "?".to_string(), |p| p.to_string()),
                self.identity.uid
            ),
        };
        let b = Backend::connect(&path, self.out.clone(), hangup)
            .await
            .map_err(|e| {
                RemoteError::new(
                    code::SYSTEM_ERROR,
                    errdom::RPC,
                    format!(
                    "cannot reach {daemon} at {} ({e}); is it running? start it with `{daemon}`",
                    path.display()
                ),
                )
            })?;
        let id = self.identity;
        let mut params = vec![
            TypedParam::new(TOKEN_PARAM, TypedValue::String(self.proxy.token.clone())),
            TypedParam::new("unix-user-id", TypedValue::ULLong(id.uid as u64)),
            TypedParam::new("unix-group-id", TypedValue::ULLong(id.gid as u64)),
        ];
        if let Some(pid) = id.pid {
            params.push(TypedParam::new("process-id", TypedValue::LLong(pid as i64)));
        }
        if let Some(r) = &self.remote {
            if let Some(dn) = &r.dname {
                params.push(TypedParam::new(
                    "x509-distinguished-name",
                    TypedValue::String(dn.clone()),
                ));
            }
            if let Some(u) = &r.user {
                params.push(TypedParam::new(
                    "sasl-user-name",
                    TypedValue::String(u.clone()),
                ));
            }
        }
        let serial = self.own_serial.fetch_add(1, Ordering::Relaxed);
        b.call(
            serial,
            procs::CONNECT_SET_IDENTITY,
            &ConnectSetIdentityArgs {
                params: Array(params),
                flags: 0,
            },
        )
        .await?;
        match open {
            Some(f) => {
                let _ = b.tx.send(encode_frame(&f.header, &f.payload)).await;
            }
            None => {
                let serial = self.own_serial.fetch_add(1, Ordering::Relaxed);
                let args = ConnectOpenArgs {
                    name: Some(format!("{}:///{}", fam.scheme(), self.mode)),
                    flags: if self.readonly { CONNECT_RO } else { 0 },
                };
                b.call(serial, procs::CONNECT_OPEN, &args).await?;
            }
        }
        b.serving.store(true, Ordering::Release);
        self.backends.insert(fam, b);
        Ok(())
    }

    async fn reply<T: Xdr>(&self, call: &Header, v: &T) -> bool {
        let mut f = Vec::new();
        frame_into(&mut f, &call.reply(Status::Ok), |o| v.encode(o));
        self.out.send(f).await.is_ok()
    }

    async fn reply_error(&self, call: &Header, e: &RemoteError) -> bool {
        self.out
            .send(vireo_rpc::server::error_frame(call, e))
            .await
            .is_ok()
    }
}

/// Answers what comes before CONNECT_OPEN, then hands the whole connection to the daemon
/// the URI names, which serves it from then on (its calls no longer pass through here).
/// Until the client has proved what `auth` asks (polkit's yes for `who`), only AUTH_LIST,
/// AUTH_POLKIT and keepalive are answered. None: done (handed over, or the client left).
/// Some(frames): the daemon could not take it; these frames (starting with the OPEN) go the
/// frame-by-frame way.
async fn hand_over(
    proxy: &Proxy,
    stream: &mut UnixStream,
    readonly: bool,
    auth: AuthPolicy,
    who: Identity,
    stop: &mut watch::Receiver<bool>,
) -> Option<Vec<Frame>> {
    let mut keepalive = false;
    let mut authenticated = auth == AuthPolicy::None;
    loop {
        let f = tokio::select! {
            _ = stop.changed() => return None,
            f = read_frame(stream) => f.ok()?,
        };
        let h = f.header;
        let reply = |v: &dyn Fn(&mut Vec<u8>)| {
            let mut out = Vec::new();
            frame_into(&mut out, &h.reply(Status::Ok), |o| v(o));
            out
        };
        let is_call = h.mtype == MessageType::Call as i32;
        let served = authenticated || (is_call && allowed_before_auth(h.prog, h.proc_));
        let out = if h.prog == KEEPALIVE_PROGRAM {
            if h.proc_ != KEEPALIVE_PING {
                continue;
            }
            keepalive_frame(KEEPALIVE_PONG)
        } else if !served {
            if !is_call {
                continue;
            }
            let e = RemoteError::rpc("authentication required");
            vireo_rpc::server::error_frame(&h, &e)
        } else if h.prog != REMOTE_PROGRAM || !is_call {
            return Some(vec![f]);
        } else if h.proc_ == procs::AUTH_LIST {
            reply(&|o| {
                AuthListRet {
                    types: Array(vec![auth.auth_type()]),
                }
                .encode(o)
            })
        } else if h.proc_ == vireo_proto::auth::procs::AUTH_POLKIT {
            match crate::remote_access::polkit(auth, who, readonly).await {
                Ok(p) => {
                    authenticated = true;
                    reply(&|o| o.extend_from_slice(&p))
                }
                Err(e) => {
                    let socket = if readonly {
                        Socket::ReadOnly
                    } else {
                        Socket::ReadWrite
                    };
                    proxy.metrics.auth_failed(socket);
                    vireo_rpc::server::error_frame(&h, &e)
                }
            }
        } else if allowed_before_auth(h.prog, h.proc_) {
            // SASL on a UNIX socket: not offered.
            vireo_rpc::server::error_frame(&h, &crate::remote_access::auth_failed())
        } else if h.proc_ == procs::CONNECT_SUPPORTS_FEATURE {
            let feat = vireo_xdr::from_bytes::<ConnectSupportsFeatureArgs>(&f.payload)
                .map(|a| a.feature)
                .unwrap_or(-1);
            let supported = matches!(
                feat,
                feature::PROGRAM_KEEPALIVE
                    | feature::REMOTE_EVENT_CALLBACK
                    | feature::REMOTE_CLOSE_CALLBACK
                    | feature::TYPED_PARAM_STRING
            );
            keepalive |= feat == feature::PROGRAM_KEEPALIVE;
            reply(&|o| {
                ConnectSupportsFeatureRet {
                    supported: supported as i32,
                }
                .encode(o)
            })
        } else if h.proc_ == procs::CONNECT_OPEN {
            let Some(fam) = open_target(&f.payload).1 else {
                return Some(vec![f]);
            };
            let path = proxy
                .paths
                .run_dir
                .join(format!("{}-handoff-sock", fam.daemon()));
            let initial = encode_frame(&h, &f.payload);
            let sent = handoff::send(&path, stream.as_fd(), readonly, keepalive, &initial).await;
            return match sent {
                Ok(()) => None,
                _ => Some(vec![f]),
            };
        } else {
            return Some(vec![f]);
        };
        stream.write_all(&out).await.ok()?;
    }
}

/// The URI a CONNECT_OPEN names (none means the default, qemu) and its API family.
fn open_target(payload: &[u8]) -> (Option<String>, Option<Family>) {
    let name = vireo_xdr::from_bytes::<ConnectOpenArgs>(payload)
        .ok()
        .and_then(|a| a.name)
        .filter(|n| !n.is_empty());
    let scheme = name
        .as_deref()
        .and_then(|n| n.split("://").next())
        .unwrap_or("qemu");
    let fam = Family::from_scheme(scheme);
    (name, fam)
}

async fn write_loop<W: AsyncWrite + Unpin>(mut wr: W, mut rx: mpsc::Receiver<Vec<u8>>) {
    let mut buf = Vec::new();
    while let Some(f) = rx.recv().await {
        buf.clear();
        buf.extend_from_slice(&f);
        while buf.len() < 256 * 1024 {
            match rx.try_recv() {
                Ok(f) => buf.extend_from_slice(&f),
                Err(_) => break,
            }
        }
        if wr.write_all(&buf).await.is_err() || wr.flush().await.is_err() {
            return;
        }
    }
}

/// Writes the client's frames, batched. An empty frame marks where a SASL security layer
/// (left in `layer`) starts: after everything before it went out plainly.
async fn client_write_loop<W: AsyncWrite + Unpin>(
    mut wr: LayerWriter<W>,
    mut rx: mpsc::Receiver<Vec<u8>>,
    layer: Arc<Mutex<Option<Layer>>>,
) {
    let mut buf = Vec::new();
    while let Some(f) = rx.recv().await {
        buf.clear();
        buf.extend_from_slice(&f);
        let mut start = f.is_empty();
        while !start && buf.len() < 256 * 1024 {
            match rx.try_recv() {
                Ok(f) if f.is_empty() => start = true,
                Ok(f) => buf.extend_from_slice(&f),
                Err(_) => break,
            }
        }
        if wr.write_all(&buf).await.is_err() || wr.flush().await.is_err() {
            return;
        }
        if start {
            match layer.lock().ok().and_then(|mut l| l.take()) {
                Some(l) => wr.start(l),
                None => return,
            }
        }
    }
}
