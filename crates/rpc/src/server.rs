//! The server side: listeners, one task per client reading frames, one task per call, a
//! writer per client, keepalive, and clean shutdown. What a call means is the [`Service`]'s
//! business; this module only moves frames and enforces the protocol's rules.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit, Semaphore};
use vireo_proto::header::{encode_frame, frame_into, keepalive_frame, Header, HEADER_LEN};
use vireo_proto::{
    MessageType, RemoteError, Status, KEEPALIVE_PING, KEEPALIVE_PONG, KEEPALIVE_PROGRAM,
    KEEPALIVE_VERSION, MESSAGE_MAX,
};
use vireo_xdr::Xdr;

use crate::frame::FrameError;
use crate::metrics::{ServerMetrics, Socket};

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What a call produced.
pub enum Outcome {
    /// Successful reply with this (already encoded) payload.
    Reply(Vec<u8>),
    /// Successful reply, then this task (e.g. the pump of a stream the call opened: its
    /// packets must follow the reply).
    ReplyThen(Vec<u8>, BoxFuture<()>),
    /// Successful reply carrying file descriptors: a REPLY_WITH_FDS, whose descriptors
    /// follow the frame on the socket one per byte (at most libvirt's 32).
    ReplyWithFds(Vec<u8>, Vec<OwnedFd>),
    /// Failed reply.
    Error(RemoteError),
}

impl Outcome {
    pub fn ok<T: Xdr>(v: &T) -> Outcome {
        Outcome::Reply(vireo_xdr::to_bytes(v))
    }
}

impl<E: Into<RemoteError>> From<Result<Vec<u8>, E>> for Outcome {
    fn from(r: Result<Vec<u8>, E>) -> Self {
        match r {
            Ok(p) => Outcome::Reply(p),
            Err(e) => Outcome::Error(e.into()),
        }
    }
}

/// How a call is answered.
pub enum Dispatch {
    /// Answered in place by the connection's task.
    Now(Outcome),
    /// Answered later by its own task.
    Later(BoxFuture<Outcome>),
}

/// The peer's credentials from `SO_PEERCRED`: who the client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
}

/// A client connection's byte stream: a UNIX socket (which can also pass descriptors and be
/// polled directly), a TCP socket, or TLS over TCP.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// The UNIX socket this stream is, if it is one.
    fn as_unix(&self) -> Option<&UnixStream> {
        None
    }

    /// Runs every later byte through a SASL security layer; `read_ahead` is what was
    /// already read past the call that completed the exchange. False: this stream cannot.
    fn start_layer(&mut self, _layer: crate::layer::Layer, _read_ahead: Vec<u8>) -> bool {
        false
    }
}

impl Stream for UnixStream {
    fn as_unix(&self) -> Option<&UnixStream> {
        Some(self)
    }
}

impl Stream for TcpStream {}

impl Stream for tokio_rustls::server::TlsStream<TcpStream> {}

/// A TCP client's stream (plain or TLS), on which SASL may start a security layer.
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for crate::layer::Layered<T> {
    fn start_layer(&mut self, layer: crate::layer::Layer, read_ahead: Vec<u8>) -> bool {
        self.start(layer, read_ahead);
        true
    }
}

/// How a client reached the server: libvirt's `virClientTransport` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Unix = 0,
    Tcp = 1,
    Tls = 2,
}

/// The authentication a listener asks of its clients before any other call (libvirt's
/// `auth_tcp` / `auth_tls` / `auth_unix_rw` / `auth_unix_ro`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthPolicy {
    /// None: every call is served from the start.
    #[default]
    None,
    /// SASL (AUTH_SASL_INIT / START / STEP) first.
    Sasl,
    /// polkit (AUTH_POLKIT) first: UNIX sockets only.
    Polkit,
}

impl AuthPolicy {
    /// libvirt's `remote_auth_type` for AUTH_LIST.
    pub fn auth_type(self) -> i32 {
        match self {
            AuthPolicy::None => 0,
            AuthPolicy::Sasl => 1,
            AuthPolicy::Polkit => 2,
        }
    }

    /// What a UNIX socket's client with these credentials must prove: as libvirt lets root
    /// past polkit (so that root is never locked out by a polkit that is missing or
    /// broken), and the daemon's own user too (it could take the daemon over anyway; the
    /// daemons reach each other as that user), neither is asked.
    pub fn for_local_peer(self, peer_uid: u32) -> AuthPolicy {
        match self {
            AuthPolicy::Polkit if peer_uid == 0 || peer_uid == own_identity().uid => {
                AuthPolicy::None
            }
            p => p,
        }
    }
}

/// The procedures a client may call before it has authenticated (libvirt's: AUTH_LIST,
/// AUTH_SASL_INIT, AUTH_SASL_START, AUTH_SASL_STEP, AUTH_POLKIT).
pub fn allowed_before_auth(prog: u32, proc_: i32) -> bool {
    prog == vireo_proto::REMOTE_PROGRAM && (66..=70).contains(&proc_)
}

/// Where a client came from and what it proved on the way in.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub transport: Transport,
    /// The peer's address (TCP and TLS).
    pub addr: Option<std::net::SocketAddr>,
    /// The distinguished name of the client's certificate (TLS).
    pub x509_dname: Option<String>,
    pub auth: AuthPolicy,
}

impl ConnInfo {
    pub fn unix() -> ConnInfo {
        ConnInfo {
            transport: Transport::Unix,
            addr: None,
            x509_dname: None,
            auth: AuthPolicy::None,
        }
    }
}

/// The daemon's own credentials: what a remote client (TCP, TLS) acts with once admitted,
/// as libvirtd's remote clients act with the daemon's rights.
pub fn own_identity() -> Identity {
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    Identity {
        uid,
        gid,
        pid: None,
    }
}

/// What answers calls. One instance serves every client of a server.
pub trait Service: Send + Sync + 'static {
    /// Per-connection state the service keeps (open connection, event callbacks, …).
    type ClientData: Default + Send + Sync + 'static;

    /// The (program, version) pairs this service answers; calls to others get libvirt's
    /// "Cannot find program" error.
    fn knows_program(&self, prog: u32, vers: u32) -> bool;

    /// Answers one CALL: at once when the answer is quick (no I/O that can block), or with
    /// a future that runs in its own task, so a slow call never holds up the client's other
    /// calls, nor other clients.
    fn call(
        self: Arc<Self>,
        client: &Arc<Client<Self::ClientData>>,
        header: Header,
        payload: &[u8],
    ) -> Dispatch;

    /// Whether CALL_WITH_FDS is accepted. A service that says yes gets such calls through
    /// [`Service::call_with_fds`]; its connections read with `recvmsg` (no busy polling).
    /// Everyone else refuses them and closes the connection (the descriptors that follow
    /// the frame could not be skipped safely).
    fn accepts_fds(&self) -> bool {
        false
    }

    /// Answers a CALL_WITH_FDS: the payload without the descriptor count, and the
    /// descriptors (ours to keep or drop).
    fn call_with_fds(
        self: Arc<Self>,
        _client: &Arc<Client<Self::ClientData>>,
        _header: Header,
        _payload: &[u8],
        _fds: Vec<OwnedFd>,
    ) -> Dispatch {
        Dispatch::Now(Outcome::Error(RemoteError::rpc(
            "file descriptor passing is not supported",
        )))
    }

    /// A client went away (EOF, error, shutdown or kicked).
    fn disconnected(&self, _client: &Arc<Client<Self::ClientData>>) {}
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub max_clients: usize,
    /// Calls one client may have in progress at once; more wait for a slot (back pressure).
    pub max_client_requests: usize,
    pub keepalive_interval: Duration,
    pub keepalive_count: u32,
    /// After answering a client that calls back-to-back, poll its socket this long before
    /// sleeping. Waking a sleeping thread costs tens of microseconds on virtual machines,
    /// more than a call itself; zero turns polling off.
    pub busy_poll: Duration,
    /// Bytes of messages (replies, stream packets, events) one client may leave unread.
    /// At half of it the client's streams wait and no more of its calls are read; an event
    /// that finds the whole of it used drops the client (it does not read what it is sent).
    pub max_client_queue_bytes: usize,
    /// The same bound in messages.
    pub max_client_queue_frames: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_clients: 5000,
            max_client_requests: 64,
            keepalive_interval: Duration::from_secs(5),
            keepalive_count: 5,
            busy_poll: Duration::from_micros(50),
            max_client_queue_bytes: 16 << 20,
            max_client_queue_frames: 8192,
        }
    }
}

/// What a queued frame costs beyond its bytes (its bookkeeping), for the byte bound.
const FRAME_OVERHEAD: usize = 64;
/// Data packets one stream may have queued for its client and not yet written to the
/// socket (each at most libvirt's 256 KiB chunk): a slow reader holds up the stream's
/// source, not the daemon's memory.
const STREAM_WINDOW: usize = 16;
/// Packets from the client one stream may have waiting for its consumer.
const STREAM_QUEUE: usize = 16;

/// A frame for a client's connection, and the stream credit it holds until written.
struct OutFrame {
    bytes: Vec<u8>,
    _credit: Option<OwnedSemaphorePermit>,
    /// Descriptors to send right after the frame (a REPLY_WITH_FDS).
    fds: Vec<OwnedFd>,
}

impl From<Vec<u8>> for OutFrame {
    fn from(bytes: Vec<u8>) -> Self {
        OutFrame {
            bytes,
            _credit: None,
            fds: Vec::new(),
        }
    }
}

/// A client's frames not yet taken by its connection's writer: replies of slow calls,
/// stream packets, events, pings. Counted in frames and bytes against the client's bound
/// ([`ServerConfig::max_client_queue_bytes`]): at half of it, senders that can wait (stream
/// packets) wait and the connection reads no more calls; events never wait, and one that
/// would pass the bound is refused (its client is then dropped).
struct OutQueue {
    tx: mpsc::UnboundedSender<OutFrame>,
    frames: AtomicUsize,
    bytes: AtomicUsize,
    max_frames: usize,
    max_bytes: usize,
    /// Wakes waiting senders when the queue falls under half its bound or the client goes.
    room: Notify,
}

/// Why [`OutQueue::try_push`] did not queue a frame.
enum Refused {
    /// The client's connection is gone.
    Gone,
    /// The frame would pass the bound.
    Full,
}

impl OutQueue {
    fn new(config: &ServerConfig) -> (Arc<OutQueue>, OutRx) {
        let (tx, rx) = mpsc::unbounded_channel();
        let q = Arc::new(OutQueue {
            tx,
            frames: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            max_frames: config.max_client_queue_frames.max(2),
            max_bytes: config.max_client_queue_bytes.max(2 * FRAME_OVERHEAD),
            room: Notify::new(),
        });
        let rx = OutRx {
            rx,
            q: Arc::clone(&q),
        };
        (q, rx)
    }

    fn cost(f: &OutFrame) -> usize {
        f.bytes.len() + FRAME_OVERHEAD
    }

    /// Frames and bytes queued now.
    fn used(&self) -> (usize, usize) {
        (
            self.frames.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    /// At half the bound or more: what can wait, waits.
    fn half_full(&self) -> bool {
        let (frames, bytes) = self.used();
        frames >= self.max_frames / 2 || bytes >= self.max_bytes / 2
    }

    /// Queues `f` whatever the queue holds: for frames bounded at their source (the reply
    /// of a call, which holds one of the client's request slots). False: the client is gone.
    fn push(&self, f: OutFrame) -> bool {
        let cost = Self::cost(&f);
        self.frames.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(cost, Ordering::Relaxed);
        if self.tx.send(f).is_err() {
            self.frames.fetch_sub(1, Ordering::Relaxed);
            self.bytes.fetch_sub(cost, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Queues `f` unless that passes the bound.
    fn try_push(&self, f: OutFrame) -> Result<(), Refused> {
        if self.tx.is_closed() {
            return Err(Refused::Gone);
        }
        let (frames, bytes) = self.used();
        if frames >= self.max_frames || bytes + Self::cost(&f) > self.max_bytes {
            return Err(Refused::Full);
        }
        if self.push(f) {
            Ok(())
        } else {
            Err(Refused::Gone)
        }
    }

    /// Queues `f` once the queue is under half its bound. False: the client is gone.
    async fn push_wait(&self, f: OutFrame) -> bool {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.tx.is_closed() {
                return false;
            }
            if !self.half_full() {
                return self.push(f);
            }
            room.await;
        }
    }

    /// Counts `f` out of the queue; wakes the waiting senders once there is room.
    fn taken(&self, f: &OutFrame) {
        let frames = self.frames.fetch_sub(1, Ordering::Relaxed);
        let bytes = self.bytes.fetch_sub(Self::cost(f), Ordering::Relaxed);
        if frames >= self.max_frames / 2 || bytes >= self.max_bytes / 2 {
            self.room.notify_waiters();
        }
    }
}

/// The connection's end of its [`OutQueue`]: whatever it takes is counted out.
struct OutRx {
    rx: mpsc::UnboundedReceiver<OutFrame>,
    q: Arc<OutQueue>,
}

impl OutRx {
    async fn recv(&mut self) -> Option<OutFrame> {
        let f = self.rx.recv().await?;
        self.q.taken(&f);
        Some(f)
    }

    fn try_recv(&mut self) -> Option<OutFrame> {
        let f = self.rx.try_recv().ok()?;
        self.q.taken(&f);
        Some(f)
    }
}

impl Drop for OutRx {
    /// Senders waiting for room learn that the client is gone.
    fn drop(&mut self) {
        self.rx.close();
        self.q.room.notify_waiters();
    }
}

/// libvirt's `VIR_NET_MESSAGE_NUM_FDS_MAX`.
pub const MAX_FDS: usize = 32;

/// Sends each descriptor with one byte of its own after a frame, as libvirt does.
pub(crate) async fn send_fds(stream: &tokio::net::UnixStream, fds: &[OwnedFd]) -> io::Result<()> {
    for fd in fds {
        loop {
            stream.writable().await?;
            match stream.try_io(tokio::io::Interest::WRITABLE, || {
                vireo_fdpass::send(stream.as_fd(), &[0], Some(fd.as_fd()))
            }) {
                Ok(1) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// [`send_fds`] on a connection that may not be a UNIX socket (then they cannot go).
async fn send_fds_on<T: Stream>(stream: &T, fds: &[OwnedFd]) -> io::Result<()> {
    match stream.as_unix() {
        Some(u) => send_fds(u, fds).await,
        None => Err(io::Error::other("descriptors need a UNIX socket")),
    }
}

/// A REPLY_WITH_FDS frame: the count of descriptors, then the payload.
fn reply_with_fds(call: &Header, payload: &[u8], nfds: usize) -> Vec<u8> {
    let mut h = call.reply(Status::Ok);
    h.mtype = MessageType::ReplyWithFds as i32;
    let mut out = Vec::with_capacity(payload.len() + 32);
    frame_into(&mut out, &h, |o| {
        o.extend_from_slice(&(nfds as u32).to_be_bytes());
        o.extend_from_slice(payload);
    });
    out
}
/// Read buffer growth step once reads fill the buffer (bulk data, a big call).
const READ_CHUNK: usize = 64 * 1024;
/// Read buffer a connection starts with, and goes back to once its reads are small again:
/// a thousand clients making small calls hold a few MiB, not tens.
const READ_START: usize = 4 * 1024;
/// Most bytes gathered into one write.
const WRITE_BATCH: usize = 256 * 1024;
/// A frame at least this big is written on its own instead of copied into a batch.
const DIRECT_WRITE: usize = 64 * 1024;
/// How long what is left for a departing client may take to write.
const LAST_WRITE: Duration = Duration::from_secs(5);

/// One connected client, as the service sees it.
pub struct Client<D> {
    pub id: u64,
    pub identity: Identity,
    /// Connected through a read-only socket.
    pub readonly: bool,
    pub connected_at: SystemTime,
    pub data: D,
    out: Arc<OutQueue>,
    /// Dropped for leaving too much unread: what is still queued is not written.
    overrun: AtomicBool,
    keepalive: AtomicBool,
    last_rx: Mutex<Instant>,
    close: Notify,
    closed: AtomicBool,
    /// Open streams by the serial of the call that opened them.
    streams: Mutex<HashMap<u32, mpsc::Sender<StreamPacket>>>,
    /// The identity another daemon vouched for (CONNECT_SET_IDENTITY), if any.
    forwarded: Mutex<Option<Identity>>,
    /// How it connected, from where, with which certificate, and what it must prove.
    pub conn: ConnInfo,
    authenticated: AtomicBool,
    /// The user SASL authenticated (or another daemon vouched for).
    sasl_user: Mutex<Option<String>>,
    /// The certificate DN another daemon vouched for (a proxied TLS client).
    forwarded_dname: Mutex<Option<String>>,
    /// A SASL security layer to start once the reply being made is written.
    pending_layer: Mutex<Option<crate::layer::Layer>>,
    layer_pending: AtomicBool,
    /// The server's counters, and which socket this client is counted under.
    metrics: Arc<ServerMetrics>,
    socket: Socket,
}

/// A stream packet from the client: status CONTINUE with data, OK (finish) or ERROR
/// (abort); or a hole (a STREAM_HOLE message, status CONTINUE, `{hyper length; u32 flags}`).
#[derive(Debug)]
pub struct StreamPacket {
    pub status: Status,
    pub data: Vec<u8>,
    pub hole: bool,
}

impl StreamPacket {
    /// The length of a hole packet (`None` for other packets or a malformed one).
    pub fn hole_len(&self) -> Option<u64> {
        if !self.hole {
            return None;
        }
        let b: [u8; 8] = self.data.get(..8)?.try_into().ok()?;
        Some(u64::from_be_bytes(b))
    }
}

/// Sends a stream's packets to its client.
pub struct StreamSender {
    out: Arc<OutQueue>,
    header: Header,
    credit: Arc<Semaphore>,
}

impl StreamSender {
    /// Sends data (split into libvirt's chunk size); false once the client is gone. Waits
    /// while the stream has a window's worth of packets not yet written to the socket.
    pub async fn data(&self, bytes: &[u8]) -> bool {
        if bytes.is_empty() {
            return self.packet(Status::Continue, &[]).await;
        }
        for chunk in bytes.chunks(vireo_proto::STREAM_CHUNK) {
            if !self.packet(Status::Continue, chunk).await {
                return false;
            }
        }
        true
    }

    /// Sends a hole of `len` bytes (sparse streams).
    pub async fn hole(&self, len: u64) -> bool {
        let mut p = Vec::with_capacity(12);
        p.extend_from_slice(&len.to_be_bytes());
        p.extend_from_slice(&0u32.to_be_bytes());
        self.raw(MessageType::StreamHole, Status::Continue, &p)
            .await
    }

    /// Sends a packet as it came from elsewhere (forwarding another daemon's stream).
    pub async fn raw(&self, mtype: MessageType, status: Status, payload: &[u8]) -> bool {
        let Ok(permit) = Arc::clone(&self.credit).acquire_owned().await else {
            return false;
        };
        let h = Header {
            mtype: mtype as i32,
            status: status as i32,
            ..self.header
        };
        self.out
            .push_wait(OutFrame {
                bytes: encode_frame(&h, payload),
                _credit: Some(permit),
                fds: Vec::new(),
            })
            .await
    }

    /// Ends the stream: OK (finish or confirm), or ERROR with a libvirt error.
    pub async fn finish(&self, err: Option<&RemoteError>) -> bool {
        match err {
            None => self.packet(Status::Ok, &[]).await,
            Some(e) => {
                let h = Header {
                    status: Status::Error as i32,
                    ..self.header
                };
                let mut f = Vec::new();
                frame_into(&mut f, &h, |o| e.encode(o));
                self.out.push_wait(f.into()).await
            }
        }
    }

    async fn packet(&self, status: Status, data: &[u8]) -> bool {
        self.raw(MessageType::Stream, status, data).await
    }
}

impl<D> Client<D> {
    /// Who the client acts for: the identity a trusted daemon forwarded, else the peer's
    /// own credentials.
    pub fn effective_identity(&self) -> Identity {
        self.forwarded
            .lock()
            .ok()
            .and_then(|f| *f)
            .unwrap_or(self.identity)
    }

    /// Whether calls other than authentication are still refused.
    pub fn needs_auth(&self) -> bool {
        self.conn.auth != AuthPolicy::None && !self.authenticated.load(Ordering::Acquire)
    }

    /// Counts a failed attempt of this client to authenticate (SASL, polkit).
    pub fn auth_failed(&self) {
        self.metrics.auth_failed(self.socket);
    }

    /// Marks the client authenticated (by SASL as `user`).
    pub fn set_authenticated(&self, user: Option<String>) {
        if let Ok(mut u) = self.sasl_user.lock() {
            *u = user;
        }
        self.authenticated.store(true, Ordering::Release);
    }

    /// Starts `layer` under this client's stream right after the reply to the call being
    /// answered now (which must be answered at once, as the SASL calls are) is written.
    pub fn start_security_layer(&self, layer: crate::layer::Layer) {
        if let Ok(mut l) = self.pending_layer.lock() {
            *l = Some(layer);
            self.layer_pending.store(true, Ordering::Release);
        }
    }

    fn take_pending_layer(&self) -> Option<crate::layer::Layer> {
        self.layer_pending.store(false, Ordering::Release);
        self.pending_layer.lock().ok().and_then(|mut l| l.take())
    }

    /// The user SASL authenticated, if any.
    pub fn sasl_user(&self) -> Option<String> {
        self.sasl_user.lock().ok().and_then(|u| u.clone())
    }

    /// The distinguished name of the client's certificate (its own, or the one a trusted
    /// daemon vouched for).
    pub fn x509_dname(&self) -> Option<String> {
        self.conn
            .x509_dname
            .clone()
            .or_else(|| self.forwarded_dname.lock().ok().and_then(|d| d.clone()))
    }

    /// Records what a trusted daemon vouched for about a remote client: the user its SASL
    /// authenticated and its certificate's DN.
    pub fn set_forwarded_remote(&self, sasl_user: Option<String>, dname: Option<String>) {
        if sasl_user.is_some() {
            if let Ok(mut u) = self.sasl_user.lock() {
                *u = sasl_user;
            }
        }
        if let Ok(mut d) = self.forwarded_dname.lock() {
            *d = dname;
        }
    }

    /// libvirt's "secure" transport: UNIX socket or TLS (what SASL mechanisms without a
    /// security layer need).
    pub fn is_secure(&self) -> bool {
        self.conn.transport != Transport::Tcp
    }

    /// Records the identity a trusted daemon forwarded for this client.
    pub fn set_forwarded_identity(&self, id: Identity) {
        if let Ok(mut f) = self.forwarded.lock() {
            *f = Some(id);
        }
    }

    /// Opens a stream for the call `call` (register it before replying to that call):
    /// returns the sender for our packets and the receiver of the client's.
    pub fn open_stream(&self, call: &Header) -> (StreamSender, mpsc::Receiver<StreamPacket>) {
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        if let Ok(mut m) = self.streams.lock() {
            m.insert(call.serial, tx);
        }
        let header = Header::new(
            call.prog,
            call.vers,
            call.proc_,
            MessageType::Stream,
            call.serial,
            Status::Continue,
        );
        (
            StreamSender {
                out: Arc::clone(&self.out),
                header,
                credit: Arc::new(Semaphore::new(STREAM_WINDOW)),
            },
            rx,
        )
    }

    /// Forgets a stream (its packets are then dropped, as libvirtd drops them).
    pub fn close_stream(&self, serial: u32) {
        if let Ok(mut m) = self.streams.lock() {
            m.remove(&serial);
        }
    }

    /// Queues a MESSAGE (event) frame. A client that leaves its bound of messages unread
    /// is dropped (logged) rather than let the daemon hold ever more for it: false then,
    /// and once it is gone.
    pub fn send_message(
        &self,
        prog: u32,
        vers: u32,
        proc_: i32,
        serial: u32,
        payload: &[u8],
    ) -> bool {
        let h = Header::new(prog, vers, proc_, MessageType::Message, serial, Status::Ok);
        match self.out.try_push(encode_frame(&h, payload).into()) {
            Ok(()) => true,
            Err(Refused::Gone) => false,
            Err(Refused::Full) => {
                let (frames, bytes) = self.out.used();
                self.drop_overrun(&format!(
                    "{frames} messages ({bytes} bytes) left unread, over its limit of {} \
                     messages or {} bytes",
                    self.out.max_frames, self.out.max_bytes
                ));
                false
            }
        }
    }

    /// Drops a client too slow for what it is sent (its events): logged with `why`, and
    /// what is queued for it is not written.
    pub fn drop_overrun(&self, why: &str) {
        if self.overrun.swap(true, Ordering::AcqRel) {
            return;
        }
        let pid = self
            .identity
            .pid
            .map_or_else(|| "?".to_string(), |p| p.to_string());
        log::warn!(
            "client {} (pid {pid}, uid {}) dropped: too slow to read its messages: {why}",
            self.id,
            self.identity.uid
        );
        self.close();
    }

    /// Messages and bytes queued for the client and not yet written.
    pub fn queued(&self) -> (usize, usize) {
        self.out.used()
    }

    /// Starts server-side keepalive pings for this client (it asked for the feature).
    pub fn enable_keepalive(&self) {
        self.keepalive.store(true, Ordering::Relaxed);
    }

    /// Disconnects the client.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.close.notify_one();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Queues the reply of a call (bounded by the client's request slots).
    fn send(&self, frame: Vec<u8>) {
        self.out.push(frame.into());
    }

    fn send_with_fds(&self, frame: Vec<u8>, fds: Vec<OwnedFd>) {
        self.out.push(OutFrame {
            bytes: frame,
            _credit: None,
            fds,
        });
    }
}

pub struct Server<S: Service> {
    service: Arc<S>,
    config: ServerConfig,
    clients: Mutex<HashMap<u64, Arc<Client<S::ClientData>>>>,
    nclients: AtomicUsize,
    next_id: AtomicU64,
    shutdown: watch::Sender<bool>,
    /// A connection is busy-polling its socket.
    polling: AtomicBool,
    /// Connections whose task has not finished yet.
    live: watch::Sender<usize>,
    metrics: Arc<ServerMetrics>,
    trim: Arc<Trimmer>,
}

/// Clients that must have been connected at once, and half of them gone, before memory is
/// given back.
const TRIM_WAVE: usize = 64;
/// Memory is given back once no client has left for this long (the rest of the wave
/// leaves first) …
const TRIM_QUIET: Duration = Duration::from_secs(1);
/// … or this long after the wave began to leave.
const TRIM_WAIT: Duration = Duration::from_secs(10);

/// Gives freed memory back to the system once a wave of clients has left. glibc's
/// allocator keeps what many connections used (their buffers, their calls in flight) in
/// its arenas, and the daemon's RSS would stay at its peak after a load.
#[derive(Default)]
struct Trimmer {
    /// Clients connected now, and at most since memory was last given back.
    now: AtomicUsize,
    peak: AtomicUsize,
    /// Departures so far (to know when a wave is over).
    departures: AtomicU64,
    pending: AtomicBool,
}

impl Trimmer {
    /// A client arrived; `now` are connected.
    fn arrived(&self, now: usize) {
        self.now.store(now, Ordering::Relaxed);
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    /// A client left; `now` are connected. True when that is half a wave gone: memory is
    /// given back once the rest of the wave has left.
    fn left(self: &Arc<Self>, now: usize) -> bool {
        self.now.store(now, Ordering::Relaxed);
        self.departures.fetch_add(1, Ordering::Relaxed);
        let peak = self.peak.load(Ordering::Relaxed);
        if peak < TRIM_WAVE || now * 2 > peak || self.pending.swap(true, Ordering::AcqRel) {
            return false;
        }
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let began = Instant::now();
            loop {
                let seen = me.departures.load(Ordering::Relaxed);
                tokio::time::sleep(TRIM_QUIET).await;
                if me.departures.load(Ordering::Relaxed) == seen || began.elapsed() >= TRIM_WAIT {
                    break;
                }
            }
            let _ = tokio::task::spawn_blocking(release_free_memory).await;
            // Those still here make the next wave.
            me.peak
                .store(me.now.load(Ordering::Relaxed), Ordering::Relaxed);
            me.pending.store(false, Ordering::Release);
        });
        true
    }
}

/// Asks the allocator to return the free memory it holds to the system.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: allocator tuning, for which no safe wrapper exists: malloc_trim takes no
    // pointer and only walks glibc's own heaps under their locks: it may be called from any
    // thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl<S: Service> Server<S> {
    pub fn new(service: Arc<S>, config: ServerConfig) -> Arc<Self> {
        Arc::new(Server {
            service,
            config,
            clients: Mutex::new(HashMap::new()),
            nclients: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            shutdown: watch::channel(false).0,
            polling: AtomicBool::new(false),
            live: watch::channel(0).0,
            metrics: Arc::new(ServerMetrics::default()),
            trim: Arc::default(),
        })
    }

    /// What this server counts: calls, clients, authentication failures.
    pub fn metrics(&self) -> &Arc<ServerMetrics> {
        &self.metrics
    }

    pub fn service(&self) -> &Arc<S> {
        &self.service
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Every connected client.
    pub fn clients(&self) -> Vec<Arc<Client<S::ClientData>>> {
        match self.clients.lock() {
            Ok(m) => m.values().cloned().collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Stops accepting and disconnects every client. (`send_replace`, not `send`: the
    /// value must stick even if no accept loop has subscribed yet.)
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
        for c in self.clients() {
            c.close();
        }
    }

    /// The number of connected clients, as it changes.
    pub fn live(&self) -> watch::Receiver<usize> {
        self.live.subscribe()
    }

    /// Resolves once every connection task has finished (after [`Server::shutdown`], every
    /// queued frame has then been written).
    pub async fn wait_idle(&self) {
        let mut rx = self.live.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Accepts clients on `listener` until shutdown.
    pub async fn serve(self: &Arc<Self>, listener: UnixListener, readonly: bool) {
        self.serve_unix(listener, readonly, AuthPolicy::None).await
    }

    /// Accepts clients on `listener` until shutdown; `auth` is what each must prove before
    /// other calls (see [`AuthPolicy::for_local_peer`]).
    pub async fn serve_unix(
        self: &Arc<Self>,
        listener: UnixListener,
        readonly: bool,
        auth: AuthPolicy,
    ) {
        let mut stop = self.shutdown.subscribe();
        if *stop.borrow_and_update() {
            return;
        }
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                r = listener.accept() => match r {
                    Ok((stream, _)) => {
                        let me = Arc::clone(self);
                        self.live.send_modify(|n| *n += 1);
                        tokio::spawn(async move {
                            let mut conn = ConnInfo::unix();
                            conn.auth = auth;
                            Arc::clone(&me)
                                .handle_stream(stream, readonly, Vec::new(), false, conn)
                                .await;
                            me.live.send_modify(|n| *n -= 1);
                        });
                    }
                    Err(e) => {
                        // Out of fds and the like: back off briefly instead of spinning.
                        log::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
    }

    /// Serves a connection accepted elsewhere (handed over by `vireo-proxyd`), in the
    /// calling task, until it ends: `initial` holds bytes already read from it, `keepalive`
    /// whether it asked for pings.
    pub async fn serve_handed(
        self: Arc<Self>,
        stream: UnixStream,
        readonly: bool,
        initial: Vec<u8>,
        keepalive: bool,
    ) {
        self.live.send_modify(|n| *n += 1);
        Arc::clone(&self)
            .handle_with(stream, readonly, initial, keepalive)
            .await;
        self.live.send_modify(|n| *n -= 1);
    }

    /// Accepts clients on a TCP listener until shutdown: with `tls`, each completes the
    /// TLS handshake and the certificate checks first (in its own task: a client that
    /// stalls there holds up no one); `auth` is what each must prove before other calls.
    pub async fn serve_tcp(
        self: &Arc<Self>,
        listener: TcpListener,
        tls: Option<Arc<crate::tls::TlsAcceptor>>,
        auth: AuthPolicy,
    ) {
        let mut stop = self.shutdown.subscribe();
        if *stop.borrow_and_update() {
            return;
        }
        self.metrics.listening(if tls.is_some() {
            Socket::Tls
        } else {
            Socket::Tcp
        });
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                r = listener.accept() => match r {
                    Ok((tcp, addr)) => {
                        let _ = tcp.set_nodelay(true);
                        let me = Arc::clone(self);
                        let tls = tls.clone();
                        self.live.send_modify(|n| *n += 1);
                        tokio::spawn(async move {
                            let mut info = ConnInfo {
                                transport: Transport::Tcp,
                                addr: Some(addr),
                                x509_dname: None,
                                auth,
                            };
                            match tls {
                                None => {
                                    let tcp = crate::layer::Layered::new(tcp);
                                    Arc::clone(&me)
                                        .handle_stream(tcp, false, Vec::new(), false, info)
                                        .await
                                }
                                Some(acceptor) => {
                                    let mut stop = me.shutdown.subscribe();
                                    let accepted = tokio::select! {
                                        _ = stop.changed() => None,
                                        r = acceptor.accept(tcp) => Some(r),
                                    };
                                    match accepted {
                                        Some(Ok((stream, peer))) => {
                                            info.transport = Transport::Tls;
                                            info.x509_dname = peer.dname;
                                            let stream = crate::layer::Layered::new(stream);
                                            Arc::clone(&me)
                                                .handle_stream(stream, false, Vec::new(), false, info)
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
                            me.live.send_modify(|n| *n -= 1);
                        });
                    }
                    Err(e) => {
                        log::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
    }

    async fn handle_with(
        self: Arc<Self>,
        stream: UnixStream,
        readonly: bool,
        initial: Vec<u8>,
        keepalive: bool,
    ) {
        self.handle_stream(stream, readonly, initial, keepalive, ConnInfo::unix())
            .await
    }

    async fn handle_stream<T: Stream>(
        self: Arc<Self>,
        mut stream: T,
        readonly: bool,
        initial: Vec<u8>,
        keepalive: bool,
        mut conn: ConnInfo,
    ) {
        let before = self.nclients.fetch_add(1, Ordering::SeqCst);
        if before >= self.config.max_clients {
            self.nclients.fetch_sub(1, Ordering::SeqCst);
            // Over the limit: hang up at once, as libvirtd does.
            return;
        }
        self.trim.arrived(before + 1);
        let identity = match stream.as_unix().map(|u| u.peer_cred()) {
            Some(Ok(c)) => Identity {
                uid: c.uid(),
                gid: c.gid(),
                pid: c.pid(),
            },
            None => own_identity(),
            Some(Err(_)) => {
                self.nclients.fetch_sub(1, Ordering::SeqCst);
                return;
            }
        };
        if conn.transport == Transport::Unix {
            conn.auth = conn.auth.for_local_peer(identity.uid);
        }
        let socket = match conn.transport {
            Transport::Unix if readonly => Socket::ReadOnly,
            Transport::Unix => Socket::ReadWrite,
            Transport::Tcp => Socket::Tcp,
            Transport::Tls => Socket::Tls,
        };
        let metrics = Arc::clone(&self.metrics);
        let _counted = metrics.connected(socket);
        let (out, mut rx) = OutQueue::new(&self.config);
        let client = Arc::new(Client {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            identity,
            readonly,
            connected_at: SystemTime::now(),
            data: S::ClientData::default(),
            out,
            overrun: AtomicBool::new(false),
            keepalive: AtomicBool::new(false),
            last_rx: Mutex::new(Instant::now()),
            close: Notify::new(),
            closed: AtomicBool::new(false),
            streams: Mutex::new(HashMap::new()),
            forwarded: Mutex::new(None),
            conn,
            authenticated: AtomicBool::new(false),
            sasl_user: Mutex::new(None),
            forwarded_dname: Mutex::new(None),
            pending_layer: Mutex::new(None),
            layer_pending: AtomicBool::new(false),
            metrics: Arc::clone(&self.metrics),
            socket,
        });
        if let Ok(mut m) = self.clients.lock() {
            m.insert(client.id, Arc::clone(&client));
        }
        log::debug!(
            "client {} connected (uid {}, pid {:?}{})",
            client.id,
            identity.uid,
            identity.pid,
            if readonly { ", read-only" } else { "" }
        );
        let pinger = tokio::spawn(keepalive_loop(
            Arc::clone(&client),
            self.config.keepalive_interval,
            self.config.keepalive_count,
        ));
        let slots = Arc::new(Semaphore::new(self.config.max_client_requests.max(1)));
        let mut stop = self.shutdown.subscribe();

        // One task per connection reads, answers quick calls in place and writes; only slow
        // calls get a task of their own. Replies from those, and events, arrive on `rx`.
        if keepalive {
            client.enable_keepalive();
        }
        let mut rbuf: Vec<u8> = initial;
        rbuf.reserve(READ_START);
        // The last read filled all the room there was: more is coming, read in big chunks.
        let mut bulk = false;
        let mut start = 0usize;
        let mut wbuf: Vec<u8> = Vec::new();
        // Stream credit held by what is in `wbuf`, given back once it is written.
        let mut credits: Vec<OutFrame> = Vec::new();
        let mut open = !*stop.borrow();
        // When we last answered, and whether the client's next call followed quickly.
        let mut answered_at = Instant::now();
        let mut chatty = false;
        // Descriptors received (CALL_WITH_FDS), in order, for services that accept them.
        let with_fds = self.service.accepts_fds() && stream.as_unix().is_some();
        let unix = stream.as_unix().is_some();
        let mut fdq: std::collections::VecDeque<OwnedFd> = std::collections::VecDeque::new();
        // recvmsg's buffer for such connections (made once).
        let mut fd_buf = if with_fds {
            vec![0u8; READ_CHUNK]
        } else {
            Vec::new()
        };
        // A write was cut short (the client closed while it waited): nothing more goes.
        let mut cut = false;
        while open && !client.is_closed() {
            // Calls already received and not answered yet, for want of room in `wbuf`.
            let mut more = false;
            // Answer every complete frame already received.
            loop {
                // What is answered goes out before more is: a client that does not read
                // its replies cannot make them pile up here.
                if wbuf.len() >= WRITE_BATCH {
                    more = true;
                    break;
                }
                // Nor are calls answered while half the client's bound is left unread
                // (their replies would only add to it): its queue is drained first.
                if client.out.half_full() {
                    break;
                }
                match split_frame(&rbuf[start..]) {
                    Ok(Some((h, len)))
                        if with_fds && h.message_type() == Some(MessageType::CallWithFds) =>
                    {
                        // The count starts the payload; the descriptors follow the frame,
                        // each with a byte of its own. Wait until all of them are here.
                        let body = &rbuf[start + 4 + HEADER_LEN..start + len];
                        let Some(n) = body
                            .get(..4)
                            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
                        else {
                            log::warn!("client {}: call with descriptors has no count", client.id);
                            open = false;
                            break;
                        };
                        if n > MAX_FDS {
                            log::warn!("client {}: {n} descriptors in one call", client.id);
                            open = false;
                            break;
                        }
                        if rbuf.len() - start < len + n || fdq.len() < n {
                            break;
                        }
                        let fds: Vec<OwnedFd> = fdq.drain(..n).collect();
                        let payload = rbuf[start + 4 + HEADER_LEN + 4..start + len].to_vec();
                        start += len + n;
                        if let Ok(mut t) = client.last_rx.lock() {
                            *t = Instant::now();
                        }
                        if !self
                            .on_call_with_fds(&client, &slots, h, &payload, fds, &mut wbuf)
                            .await
                        {
                            open = false;
                            break;
                        }
                    }
                    Ok(Some((h, len))) => {
                        let now = Instant::now();
                        chatty = now.duration_since(answered_at) < self.config.busy_poll * 2;
                        if let Ok(mut t) = client.last_rx.lock() {
                            *t = now;
                        }
                        let payload = &rbuf[start + 4 + HEADER_LEN..start + len];
                        start += len;
                        if !self
                            .on_frame(&client, &slots, h, payload, now, &mut wbuf)
                            .await
                        {
                            open = false;
                            break;
                        }
                        // What follows the call that completed SASL is under its layer.
                        if client.layer_pending.load(Ordering::Acquire) {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        log::warn!("client {}: {e}; closing", client.id);
                        open = false;
                        break;
                    }
                }
            }
            if start == rbuf.len() {
                rbuf.clear();
                start = 0;
                if !bulk && rbuf.capacity() > READ_CHUNK {
                    rbuf.shrink_to(READ_START);
                }
            } else if start > rbuf.len() / 2 {
                rbuf.drain(..start);
                start = 0;
            }
            if !wbuf.is_empty() {
                if !write_out(&mut stream, &client, &wbuf, &[]).await {
                    cut = true;
                    break;
                }
                credits.clear();
                wbuf.clear();
                wbuf.shrink_to(WRITE_BATCH);
                answered_at = Instant::now();
            }
            if !open {
                break;
            }
            // The reply that completed SASL is out: the layer starts here, with what was
            // read past that call as its first bytes.
            if client.layer_pending.load(Ordering::Acquire) {
                if let Some(layer) = client.take_pending_layer() {
                    let ahead = rbuf.split_off(start);
                    rbuf.clear();
                    start = 0;
                    if !stream.start_layer(layer, ahead) {
                        log::warn!("client {}: no security layer on this stream", client.id);
                        break;
                    }
                }
            }
            if more {
                continue;
            }
            let step = if bulk { READ_CHUNK } else { READ_START };
            if rbuf.capacity() - rbuf.len() < step / 4 {
                rbuf.reserve(step);
            }
            let room = rbuf.capacity() - rbuf.len();
            // While the client leaves half its bound of messages unread, none of its calls
            // are read (their replies would only add to it).
            let reading = !client.out.half_full();
            if chatty && !with_fds && unix && reading {
                match self.busy_poll(&stream, &mut rbuf) {
                    Some(0) => break,
                    Some(n) => {
                        bulk = n >= room;
                        continue;
                    }
                    None => chatty = false,
                }
            }
            tokio::select! {
                biased;
                _ = client.close.notified() => break,
                _ = stop.changed() => break,
                f = rx.recv() => {
                    if let Some(mut f) = f {
                        // A reply with descriptors: the frame, then each descriptor.
                        if !f.fds.is_empty() {
                            if !write_out(&mut stream, &client, &f.bytes, &f.fds).await {
                                cut = true;
                                break;
                            }
                            answered_at = Instant::now();
                            continue;
                        }
                        // A big frame (a stream's data) with nothing before it goes out as
                        // it is: no copy into the batch.
                        if wbuf.is_empty() && f.bytes.len() >= DIRECT_WRITE {
                            if !write_out(&mut stream, &client, &f.bytes, &[]).await {
                                cut = true;
                                break;
                            }
                            answered_at = Instant::now();
                            continue;
                        }
                        wbuf.extend_from_slice(&f.bytes);
                        f.bytes = Vec::new();
                        credits.push(f);
                        while wbuf.len() < WRITE_BATCH {
                            match rx.try_recv() {
                                Some(mut f) if f.fds.is_empty() => {
                                    wbuf.extend_from_slice(&f.bytes);
                                    f.bytes = Vec::new();
                                    credits.push(f);
                                }
                                // Descriptors go after what is batched so far.
                                Some(f) => {
                                    wbuf.extend_from_slice(&f.bytes);
                                    if !write_out(&mut stream, &client, &wbuf, &f.fds).await {
                                        cut = true;
                                        open = false;
                                    }
                                    wbuf.clear();
                                    credits.clear();
                                    break;
                                }
                                None => break,
                            }
                        }
                        if !open {
                            break;
                        }
                    }
                }
                r = read_some(&mut stream, &mut rbuf, with_fds.then_some((&mut fdq, &mut fd_buf))), if reading => match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => bulk = n >= room,
                },
            }
        }
        client.closed.store(true, Ordering::Relaxed);
        if let Ok(mut m) = client.streams.lock() {
            m.clear();
        }
        pinger.abort();
        if let Ok(mut m) = self.clients.lock() {
            m.remove(&client.id);
        }
        self.service.disconnected(&client);
        let left = self.nclients.fetch_sub(1, Ordering::SeqCst) - 1;
        self.trim.left(left);
        // Whatever is already queued still goes out (e.g. the error before a forced close),
        // unless the client was dropped for not reading, or a write was cut short; and a
        // client that stops reading now holds this task a moment at most.
        let overrun = client.overrun.load(Ordering::Acquire);
        let _ = tokio::time::timeout(LAST_WRITE, async {
            if !cut && !overrun {
                while let Some(f) = rx.try_recv() {
                    wbuf.extend_from_slice(&f.bytes);
                }
                if !wbuf.is_empty() {
                    let _ = stream.write_all(&wbuf).await;
                    let _ = stream.flush().await;
                }
            }
            let _ = stream.shutdown().await;
        })
        .await;
    }

    /// Polls the socket without sleeping for up to `busy_poll`: Some(bytes read, 0 at EOF
    /// or error) or None when nothing came. Only one connection at a time polls, so the
    /// other workers stay free for everyone else.
    fn busy_poll<T: Stream>(&self, stream: &T, rbuf: &mut Vec<u8>) -> Option<usize> {
        let stream = stream.as_unix()?;
        if self.config.busy_poll.is_zero() || self.polling.swap(true, Ordering::Acquire) {
            return None;
        }
        let deadline = Instant::now() + self.config.busy_poll;
        let r = loop {
            // tokio's try_read trusts its cached readiness and would not look at the socket
            // until the reactor runs; ask the kernel directly instead.
            match recv_nowait(stream.as_fd(), rbuf) {
                Ok(n) => break Some(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        break None;
                    }
                    std::hint::spin_loop();
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break Some(0),
            }
        };
        self.polling.store(false, Ordering::Release);
        r
    }

    /// Handles a CALL_WITH_FDS for a service that accepts descriptors.
    async fn on_call_with_fds(
        &self,
        client: &Arc<Client<S::ClientData>>,
        slots: &Arc<Semaphore>,
        h: Header,
        payload: &[u8],
        fds: Vec<OwnedFd>,
        out: &mut Vec<u8>,
    ) -> bool {
        if !self.service.knows_program(h.prog, h.vers) {
            let e = RemoteError::rpc(format!("Cannot find program {} version {}", h.prog, h.vers));
            error_into(out, &h, &e);
            return true;
        }
        let t0 = Instant::now();
        let d = Arc::clone(&self.service).call_with_fds(client, h, payload, fds);
        self.answer(client, slots, h, d, t0, out).await
    }

    /// Handles one frame, appending any immediate answer to `out`; false closes the
    /// connection.
    async fn on_frame(
        &self,
        client: &Arc<Client<S::ClientData>>,
        slots: &Arc<Semaphore>,
        h: Header,
        payload: &[u8],
        t0: Instant,
        out: &mut Vec<u8>,
    ) -> bool {
        if h.prog == KEEPALIVE_PROGRAM {
            if h.vers == KEEPALIVE_VERSION
                && h.mtype == MessageType::Message as i32
                && h.proc_ == KEEPALIVE_PING
            {
                out.extend_from_slice(&keepalive_frame(KEEPALIVE_PONG));
            }
            // A PONG (or anything else on this program) only proves the peer is alive.
            return true;
        }
        match h.message_type() {
            Some(MessageType::Call) => {}
            // We do not advertise fd passing; the fds would follow the frame and could not
            // be skipped safely, so the connection cannot continue.
            Some(MessageType::CallWithFds) => {
                let e = RemoteError::rpc("file descriptor passing is not supported");
                error_into(out, &h, &e);
                return false;
            }
            // Stream packets for streams we do not have are dropped, as libvirtd does.
            Some(mtype @ (MessageType::Stream | MessageType::StreamHole)) => {
                let tx = client
                    .streams
                    .lock()
                    .ok()
                    .and_then(|m| m.get(&h.serial).cloned());
                if let (Some(tx), Some(status)) = (tx, h.status()) {
                    let hole = mtype == MessageType::StreamHole;
                    let done = status != Status::Continue;
                    // Waiting here is the back pressure: a client that types faster than
                    // the stream drains waits, and only its own connection does.
                    let _ = tx
                        .send(StreamPacket {
                            status,
                            data: payload.to_vec(),
                            hole,
                        })
                        .await;
                    if done {
                        client.close_stream(h.serial);
                    }
                    // An abort is confirmed by an empty packet with status OK, as
                    // libvirtd's: the client's virStreamAbort waits for it.
                    if status == Status::Error {
                        let confirm = Header {
                            mtype: MessageType::Stream as i32,
                            status: Status::Ok as i32,
                            ..h
                        };
                        frame_into(out, &confirm, |_| {});
                    }
                }
                return true;
            }
            Some(MessageType::Reply | MessageType::Message | MessageType::ReplyWithFds) => {
                return true
            }
            None => {
                let e = RemoteError::rpc(format!("Unexpected message type {}", h.mtype));
                error_into(out, &h, &e);
                return true;
            }
        }
        if !self.service.knows_program(h.prog, h.vers) {
            let e = RemoteError::rpc(format!("Cannot find program {} version {}", h.prog, h.vers));
            error_into(out, &h, &e);
            return true;
        }
        if h.status != Status::Ok as i32 {
            let e = RemoteError::rpc(format!("Unexpected message status {}", h.status));
            error_into(out, &h, &e);
            return true;
        }
        if client.needs_auth() && !allowed_before_auth(h.prog, h.proc_) {
            error_into(out, &h, &RemoteError::rpc("authentication required"));
            return true;
        }
        let d = Arc::clone(&self.service).call(client, h, payload);
        self.answer(client, slots, h, d, t0, out).await
    }

    /// Sends (or queues) the answer to a call that arrived at `t0`, and counts it.
    async fn answer(
        &self,
        client: &Arc<Client<S::ClientData>>,
        slots: &Arc<Semaphore>,
        h: Header,
        d: Dispatch,
        t0: Instant,
        out: &mut Vec<u8>,
    ) -> bool {
        match d {
            // Descriptors travel with their frame through the client's queue.
            Dispatch::Now(Outcome::ReplyWithFds(p, fds)) => {
                self.metrics
                    .calls
                    .record(h.prog, h.proc_, Ok(()), t0.elapsed());
                let fds: Vec<OwnedFd> = fds.into_iter().take(MAX_FDS).collect();
                client.send_with_fds(reply_with_fds(&h, &p, fds.len()), fds);
            }
            Dispatch::Now(outcome) => {
                self.metrics
                    .calls
                    .record(h.prog, h.proc_, result_of(&outcome), t0.elapsed());
                outcome_into(out, &h, outcome)
            }
            Dispatch::Later(fut) => {
                let permit = match Arc::clone(slots).acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => return false,
                };
                let c = Arc::clone(client);
                let metrics = Arc::clone(&self.metrics);
                tokio::spawn(async move {
                    let mut frame = Vec::new();
                    let outcome = fut.await;
                    metrics
                        .calls
                        .record(h.prog, h.proc_, result_of(&outcome), t0.elapsed());
                    let then = match outcome {
                        Outcome::ReplyThen(p, then) => {
                            outcome_into(&mut frame, &h, Outcome::Reply(p));
                            Some(then)
                        }
                        Outcome::ReplyWithFds(p, fds) => {
                            let fds: Vec<OwnedFd> = fds.into_iter().take(MAX_FDS).collect();
                            c.send_with_fds(reply_with_fds(&h, &p, fds.len()), fds);
                            drop(permit);
                            return;
                        }
                        o => {
                            outcome_into(&mut frame, &h, o);
                            None
                        }
                    };
                    c.send(frame);
                    drop(permit);
                    if let Some(then) = then {
                        then.await;
                    }
                });
            }
        }
        true
    }
}

/// Writes `buf`, then `fds` (each with a byte of its own), unless the client is closed
/// first: one that does not read must not hold its connection's task in a write (it is
/// closed when it leaves too much unread). False: closed, or the write failed.
async fn write_out<T: Stream, D>(
    stream: &mut T,
    client: &Client<D>,
    buf: &[u8],
    fds: &[OwnedFd],
) -> bool {
    let write = async {
        stream.write_all(buf).await?;
        if !fds.is_empty() {
            send_fds_on(stream, fds).await?;
        }
        stream.flush().await
    };
    tokio::select! {
        biased;
        _ = client.close.notified() => false,
        r = write => r.is_ok(),
    }
}

/// Reads what the socket has into `buf`: a plain read, or with `fds` (the queue, and a
/// buffer to receive into) a `recvmsg` that keeps the descriptors that came (in order). Cancel-safe: nothing is consumed unless
/// kept.
async fn read_some<T: Stream>(
    stream: &mut T,
    buf: &mut Vec<u8>,
    fds: Option<(&mut std::collections::VecDeque<OwnedFd>, &mut Vec<u8>)>,
) -> io::Result<usize> {
    let Some((fdq, tmp)) = fds else {
        return stream.read_buf(buf).await;
    };
    let Some(stream) = stream.as_unix() else {
        return Err(io::Error::other("descriptors need a UNIX socket"));
    };
    loop {
        stream.readable().await?;
        match stream.try_io(tokio::io::Interest::READABLE, || {
            vireo_fdpass::recv(stream.as_fd(), tmp)
        }) {
            Ok((n, fds)) => {
                buf.extend_from_slice(&tmp[..n]);
                fdq.extend(fds);
                if fdq.len() > MAX_FDS * 4 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "too many descriptors waiting",
                    ));
                }
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

/// One non-blocking `recv` into the spare capacity of `buf`.
fn recv_nowait(fd: BorrowedFd<'_>, buf: &mut Vec<u8>) -> io::Result<usize> {
    if buf.capacity() == buf.len() {
        buf.reserve(1);
    }
    let (n, _) = rustix::net::recv(
        fd,
        rustix::buffer::spare_capacity(buf),
        rustix::net::RecvFlags::DONTWAIT,
    )?;
    Ok(n)
}

/// Splits the first frame off `buf`: its header and total length, or None when more bytes
/// are needed. The length word is checked before anything is buffered for it. Public for
/// the fuzz target that feeds it arbitrary bytes (`crates/fuzz`).
pub fn split_frame(buf: &[u8]) -> Result<Option<(Header, usize)>, FrameError> {
    let Some(len) = buf.get(..4) else {
        return Ok(None);
    };
    let total = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let body = total.checked_sub(4).ok_or(FrameError::TooSmall(total))?;
    if body > MESSAGE_MAX {
        return Err(FrameError::TooLarge(body));
    }
    if body < HEADER_LEN {
        return Err(FrameError::TooSmall(total));
    }
    if buf.len() < total {
        return Ok(None);
    }
    let mut hdr = [0u8; HEADER_LEN];
    hdr.copy_from_slice(&buf[4..4 + HEADER_LEN]);
    Ok(Some((Header::decode(&hdr), total)))
}

/// How a call ended, for the metrics: its error's libvirt code if it failed.
fn result_of(o: &Outcome) -> Result<(), i32> {
    match o {
        Outcome::Error(e) => Err(e.code),
        _ => Ok(()),
    }
}

/// Appends the reply; a continuation is started now, and since anything it sends goes
/// through the client's queue, which is drained after `out` is written, it follows the reply.
fn outcome_into(out: &mut Vec<u8>, call: &Header, o: Outcome) {
    match o {
        Outcome::Reply(p) => frame_into(out, &call.reply(Status::Ok), |o| o.extend_from_slice(&p)),
        Outcome::ReplyThen(p, then) => {
            frame_into(out, &call.reply(Status::Ok), |o| o.extend_from_slice(&p));
            tokio::spawn(then);
        }
        Outcome::Error(e) => error_into(out, call, &e),
        // Handled by the caller, which queues the descriptors with the frame.
        Outcome::ReplyWithFds(..) => error_into(
            out,
            call,
            &RemoteError::rpc("descriptors cannot be sent here"),
        ),
    }
}

fn error_into(out: &mut Vec<u8>, call: &Header, e: &RemoteError) {
    frame_into(out, &call.reply(Status::Error), |o| e.encode(o));
}

/// A REPLY/ERROR frame echoing the call's program, version, procedure and serial.
pub fn error_frame(call: &Header, e: &RemoteError) -> Vec<u8> {
    let mut out = Vec::new();
    error_into(&mut out, call, e);
    out
}

async fn keepalive_loop<D>(client: Arc<Client<D>>, interval: Duration, count: u32) {
    if interval.is_zero() {
        return;
    }
    let mut unanswered = 0u32;
    loop {
        tokio::time::sleep(interval).await;
        if !client.keepalive.load(Ordering::Relaxed) {
            continue;
        }
        let idle = client
            .last_rx
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or_default();
        if idle < interval {
            unanswered = 0;
            continue;
        }
        if unanswered >= count {
            log::warn!("client {} stopped answering keepalive; closing", client.id);
            client.close();
            return;
        }
        unanswered += 1;
        let _ = client.out.try_push(keepalive_frame(KEEPALIVE_PING).into());
    }
}

/// Binds a UNIX socket at `path` with `mode` permissions, replacing a stale socket file.
pub fn bind_unix(path: &std::path::Path, mode: u32) -> io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{} is in use by a running daemon", path.display()),
            ))
        }
        Err(_) => {
            let _ = std::fs::remove_file(path);
        }
    }
    let l = std::os::unix::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    l.set_nonblocking(true)?;
    UnixListener::from_std(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;
    impl Service for Nothing {
        type ClientData = ();
        fn knows_program(&self, _: u32, _: u32) -> bool {
            false
        }
        fn call(self: Arc<Self>, _: &Arc<Client<()>>, _: Header, _: &[u8]) -> Dispatch {
            Dispatch::Now(Outcome::Reply(Vec::new()))
        }
    }

    /// Answers every call on the REMOTE program with the client's certificate DN; the
    /// SASL step (69) authenticates the client.
    struct WhoAmI;
    impl Service for WhoAmI {
        type ClientData = ();
        fn knows_program(&self, prog: u32, _: u32) -> bool {
            prog == vireo_proto::REMOTE_PROGRAM
        }
        fn call(self: Arc<Self>, c: &Arc<Client<()>>, h: Header, _: &[u8]) -> Dispatch {
            if h.proc_ == 69 {
                c.set_authenticated(Some("fred".into()));
            }
            let who = c.x509_dname().unwrap_or_default();
            Dispatch::Now(Outcome::ok(&who))
        }
    }

    async fn tcp_server(
        tls: Option<Arc<crate::tls::TlsAcceptor>>,
        auth: AuthPolicy,
    ) -> (Arc<Server<WhoAmI>>, u16) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let server = Server::new(Arc::new(WhoAmI), ServerConfig::default());
        let s = Arc::clone(&server);
        tokio::spawn(async move { s.serve_tcp(l, tls, auth).await });
        (server, port)
    }

    /// polkit is asked about other users only: root and the daemon's own user are let in.
    #[test]
    fn polkit_lets_root_and_the_daemon_user_in() {
        let me = own_identity().uid;
        let other = if me == 4242 { 4243 } else { 4242 };
        assert_eq!(AuthPolicy::Polkit.for_local_peer(0), AuthPolicy::None);
        assert_eq!(AuthPolicy::Polkit.for_local_peer(me), AuthPolicy::None);
        assert_eq!(AuthPolicy::Polkit.for_local_peer(other), AuthPolicy::Polkit);
        assert_eq!(AuthPolicy::Sasl.for_local_peer(0), AuthPolicy::Sasl);
        assert_eq!(AuthPolicy::None.for_local_peer(other), AuthPolicy::None);
        assert_eq!(AuthPolicy::Polkit.auth_type(), 2);
    }

    /// A UNIX socket guarded by polkit serves its own user at once (nothing to prove).
    #[tokio::test]
    async fn a_polkit_socket_lets_its_own_user_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sock");
        let l = bind_unix(&path, 0o700).unwrap();
        let server = Server::new(Arc::new(WhoAmI), ServerConfig::default());
        let s = Arc::clone(&server);
        tokio::spawn(async move { s.serve_unix(l, false, AuthPolicy::Polkit).await });
        let c = crate::client::Connection::connect(&path).await.unwrap();
        c.call::<(), String>(1, &()).await.unwrap();
        server.shutdown();
    }

    /// A listener that asks for authentication serves only the AUTH_* calls until the
    /// client has authenticated.
    #[tokio::test]
    async fn nothing_is_served_before_authentication() {
        let (server, port) = tcp_server(None, AuthPolicy::Sasl).await;
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let c = crate::client::Connection::from_io(tcp);
        let e = c.call::<(), String>(1, &()).await.unwrap_err().to_string();
        assert!(e.contains("authentication required"), "{e}");
        c.call::<(), String>(66, &()).await.unwrap();
        c.call::<(), String>(69, &()).await.unwrap();
        c.call::<(), String>(1, &()).await.unwrap();
        server.shutdown();
    }

    /// TLS: a client whose certificate passes gets in (its DN known to the service); one
    /// whose DN is not allowed, or with no certificate, is closed before the confirmation.
    #[tokio::test]
    async fn tls_clients_checked_after_the_handshake() {
        use crate::tls::*;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = p.self_signed(&ca_key).unwrap();
        let issue = |cn: &str, names: Vec<String>| {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut p = rcgen::CertificateParams::new(names).unwrap();
            let mut dn = rcgen::DistinguishedName::new();
            dn.push(rcgen::DnType::CommonName, cn);
            p.distinguished_name = dn;
            let c = p.signed_by(&key, &ca, &ca_key).unwrap();
            (c.pem(), key.serialize_pem())
        };
        std::fs::write(d.join("cacert.pem"), ca.pem()).unwrap();
        let (c, k) = issue("server", vec!["127.0.0.1".into()]);
        std::fs::write(d.join("servercert.pem"), c).unwrap();
        std::fs::write(d.join("serverkey.pem"), k).unwrap();
        let files = ServerFiles::in_dir(d);
        let acceptor = TlsAcceptor::new(
            &files,
            ServerPolicy {
                allowed_dn: Some(vec!["CN=good*".into()]),
                ..Default::default()
            },
        )
        .unwrap();
        let (server, port) = tcp_server(Some(Arc::new(acceptor)), AuthPolicy::None).await;
        let client = |cn: Option<&str>| {
            let cd = d.join(cn.unwrap_or("none"));
            std::fs::create_dir_all(&cd).unwrap();
            std::fs::write(cd.join("cacert.pem"), ca.pem()).unwrap();
            if let Some(cn) = cn {
                let (c, k) = issue(cn, Vec::new());
                std::fs::write(cd.join("clientcert.pem"), c).unwrap();
                std::fs::write(cd.join("clientkey.pem"), k).unwrap();
            }
            ClientFiles::locate(Some(&cd), true)
        };
        let good = connect("127.0.0.1", port, &client(Some("good1")), false, false)
            .await
            .unwrap();
        let c = crate::client::Connection::from_io(good);
        assert_eq!(c.call::<(), String>(1, &()).await.unwrap(), "CN=good1");
        for who in [Some("bad1"), None] {
            let r = connect("127.0.0.1", port, &client(who), false, false).await;
            assert!(matches!(r, Err(TlsError::NotConfirmed)), "{who:?}");
        }
        server.shutdown();
    }

    /// Opens a stream on every call and keeps it, never answering its packets.
    struct Sink(Mutex<Vec<mpsc::Receiver<StreamPacket>>>);
    impl Service for Sink {
        type ClientData = ();
        fn knows_program(&self, _: u32, _: u32) -> bool {
            true
        }
        fn call(self: Arc<Self>, c: &Arc<Client<()>>, h: Header, _: &[u8]) -> Dispatch {
            let (_tx, rx) = c.open_stream(&h);
            if let Ok(mut v) = self.0.lock() {
                v.push(rx);
            }
            Dispatch::Now(Outcome::Reply(Vec::new()))
        }
    }

    /// A client's abort is confirmed (an empty packet, status OK) as libvirtd does, for
    /// virStreamAbort waits for it.
    #[tokio::test]
    async fn a_stream_abort_is_confirmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let l = bind_unix(&path, 0o700).unwrap();
        let server = Server::new(
            Arc::new(Sink(Mutex::new(Vec::new()))),
            ServerConfig::default(),
        );
        let s = Arc::clone(&server);
        tokio::spawn(async move { s.serve(l, false).await });
        let c = crate::client::Connection::connect(&path).await.unwrap();
        let (_, mut st) = c
            .call_stream(vireo_proto::REMOTE_PROGRAM, 1, 1, |_| {})
            .await
            .unwrap();
        st.send(MessageType::Stream, Status::Error, &[])
            .await
            .unwrap();
        let f = tokio::time::timeout(Duration::from_secs(10), st.recv())
            .await
            .expect("no confirmation of the abort")
            .unwrap();
        assert_eq!(f.header.mtype, MessageType::Stream as i32);
        assert_eq!(f.header.status, Status::Ok as i32);
        assert!(f.payload.is_empty());
        server.shutdown();
    }

    /// A shutdown that comes before the accept loop has started still stops it.
    #[tokio::test]
    async fn shutdown_before_serve_is_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let l = bind_unix(&dir.path().join("s"), 0o700).unwrap();
        let server = Server::new(Arc::new(Nothing), ServerConfig::default());
        server.shutdown();
        tokio::time::timeout(Duration::from_secs(10), server.serve(l, false))
            .await
            .expect("serve returned");
    }

    /// Memory is given back once half of a wave of clients has left, once the wave is
    /// over; those still there make the next wave.
    #[tokio::test]
    async fn memory_is_given_back_after_a_wave_leaves() {
        let t = Arc::new(Trimmer::default());
        for n in 1..=4 * TRIM_WAVE {
            t.arrived(n);
        }
        assert!(!t.left(3 * TRIM_WAVE), "most are still here");
        assert!(t.left(2 * TRIM_WAVE));
        assert!(!t.left(2 * TRIM_WAVE - 1), "once per wave");
        while t.pending.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(t.peak.load(Ordering::Relaxed), 2 * TRIM_WAVE - 1);
        assert!(!t.left(TRIM_WAVE));
        assert!(t.left(TRIM_WAVE - 1));
        // A few clients coming and going are no wave.
        let t = Arc::new(Trimmer::default());
        t.arrived(TRIM_WAVE - 1);
        assert!(!t.left(0));
    }

    /// Answers procedure 1 at once (empty), procedure 2 later with 16 KiB, noting the most
    /// bytes its client had queued when a call came.
    #[derive(Default)]
    struct Bulky {
        calls: AtomicUsize,
        most_queued: AtomicUsize,
    }
    impl Service for Bulky {
        type ClientData = ();
        fn knows_program(&self, _: u32, _: u32) -> bool {
            true
        }
        fn call(self: Arc<Self>, c: &Arc<Client<()>>, h: Header, _: &[u8]) -> Dispatch {
            self.calls.fetch_add(1, Ordering::Relaxed);
            self.most_queued.fetch_max(c.queued().1, Ordering::Relaxed);
            match h.proc_ {
                2 => Dispatch::Later(Box::pin(async { Outcome::Reply(vec![7u8; 16 << 10]) })),
                _ => Dispatch::Now(Outcome::Reply(Vec::new())),
            }
        }
    }

    /// A small bound: 256 KiB or 1024 messages, 4 calls at once.
    fn small_queue() -> ServerConfig {
        ServerConfig {
            max_client_queue_bytes: 256 << 10,
            max_client_queue_frames: 1024,
            max_client_requests: 4,
            ..ServerConfig::default()
        }
    }

    async fn bulky_server(dir: &std::path::Path) -> (Arc<Server<Bulky>>, std::path::PathBuf) {
        let path = dir.join("s");
        let l = bind_unix(&path, 0o700).unwrap();
        let server = Server::new(Arc::new(Bulky::default()), small_queue());
        let s = Arc::clone(&server);
        tokio::spawn(async move { s.serve(l, false).await });
        (server, path)
    }

    fn call_frame(proc_: i32, serial: u32) -> Vec<u8> {
        let h = Header::new(0x1234, 1, proc_, MessageType::Call, serial, Status::Ok);
        encode_frame(&h, &[])
    }

    /// An event for every client of `server`; false once one was refused.
    fn event_to_all(server: &Server<Bulky>, payload: &[u8]) -> bool {
        server
            .clients()
            .iter()
            .all(|c| c.send_message(0x1234, 1, 9, 1, payload))
    }

    /// A client that never reads what it is sent is dropped once its messages pass the
    /// bound: the daemon holds no more than that for it, and its socket ends.
    #[tokio::test]
    async fn a_client_that_never_reads_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (server, path) = bulky_server(dir.path()).await;
        let mut raw = UnixStream::connect(&path).await.unwrap();
        // One call answered: the client is known to the server.
        raw.write_all(&call_frame(1, 1)).await.unwrap();
        let mut reply = [0u8; 4 + HEADER_LEN];
        raw.read_exact(&mut reply).await.unwrap();
        let client = server.clients().pop().unwrap();
        let payload = vec![1u8; 1024];
        let mut sent = 0usize;
        let mut most = 0usize;
        while event_to_all(&server, &payload) {
            sent += 1;
            most = most.max(client.queued().1);
            assert!(sent < 100_000, "never dropped");
            // Let the connection write what the socket takes.
            if sent.is_multiple_of(64) {
                tokio::task::yield_now().await;
            }
        }
        assert!(client.is_closed());
        assert!(most <= 256 << 10, "{most} bytes queued");
        assert!(!client.send_message(0x1234, 1, 9, 1, &payload));
        // The socket holds what was written before the drop, then ends.
        let mut got = 0usize;
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let r = tokio::time::timeout(Duration::from_secs(30), raw.read(&mut buf)).await;
            match r.expect("the socket ends") {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        assert!(
            got < sent * (payload.len() + 28),
            "{got} bytes of {sent} messages"
        );
        server.wait_idle().await;
        assert!(server.clients().is_empty());
    }

    /// A client that reads its messages is never dropped, however many it is sent.
    #[tokio::test]
    async fn a_client_that_reads_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (server, path) = bulky_server(dir.path()).await;
        let c = crate::client::Connection::connect(&path).await.unwrap();
        let mut events = c.events();
        c.call_raw(0x1234, 1, 1, |_| {}).await.unwrap();
        let payload = vec![1u8; 1024];
        // 40 rounds of 200 KiB: 30 times the bound, each round under it.
        for _ in 0..40 {
            for _ in 0..200 {
                assert!(event_to_all(&server, &payload));
            }
            for _ in 0..200 {
                let f = events.recv().await.unwrap();
                assert_eq!(f.payload.len(), payload.len());
            }
        }
        assert!(!server.clients()[0].is_closed());
        c.call_raw(0x1234, 1, 1, |_| {}).await.unwrap();
        server.shutdown();
    }

    /// A client that sends calls and does not read their replies is not read either once
    /// half its bound waits for it: what the server holds for it stays bounded, and every
    /// reply comes once it reads.
    #[tokio::test]
    async fn calls_wait_while_replies_are_unread() {
        let dir = tempfile::tempdir().unwrap();
        let (server, path) = bulky_server(dir.path()).await;
        let raw = UnixStream::connect(&path).await.unwrap();
        let (mut rd, mut wr) = raw.into_split();
        const N: u32 = 2000;
        let writer = tokio::spawn(async move {
            for serial in 0..N {
                wr.write_all(&call_frame(2, serial)).await.unwrap();
            }
            wr
        });
        // Wait until half the bound is queued, then a while longer.
        while server
            .clients()
            .first()
            .is_none_or(|c| c.queued().1 < 128 << 10)
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let answered = server.service().calls.load(Ordering::Relaxed);
        assert!(answered < 64, "{answered} calls answered with nothing read");
        let mut seen = 0u32;
        while seen < N {
            let f = crate::frame::read_frame(&mut rd).await.unwrap();
            assert_eq!(f.header.serial, seen);
            assert_eq!(f.payload.len(), 16 << 10);
            seen += 1;
        }
        drop(writer.await.unwrap());
        // Half the bound, and a reply of each call in progress, at most.
        let most = server.service().most_queued.load(Ordering::Relaxed);
        assert!(most <= (128 << 10) + 4 * (16 << 10) + 4096, "{most}");
        server.shutdown();
    }

    /// Answers procedure 1 at once and procedure 2 later, each with two pipes' read ends;
    /// anything else with a plain reply.
    struct Pipes;
    impl Service for Pipes {
        type ClientData = ();
        fn knows_program(&self, _: u32, _: u32) -> bool {
            true
        }
        fn call(self: Arc<Self>, _: &Arc<Client<()>>, h: Header, _: &[u8]) -> Dispatch {
            let fds = || {
                (0..2u8)
                    .map(|i| vireo_fdpass::pipe_with(&[b'a' + i]).unwrap())
                    .collect::<Vec<_>>()
            };
            match h.proc_ {
                1 => Dispatch::Now(Outcome::ReplyWithFds(7u32.to_be_bytes().to_vec(), fds())),
                2 => Dispatch::Later(Box::pin(async move {
                    Outcome::ReplyWithFds(8u32.to_be_bytes().to_vec(), fds())
                })),
                _ => Dispatch::Now(Outcome::Reply(9u32.to_be_bytes().to_vec())),
            }
        }
    }

    /// Descriptors reach the client with their reply, in order, now or later, and calls
    /// around them are unaffected.
    #[tokio::test]
    async fn replies_carry_descriptors() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let l = bind_unix(&path, 0o700).unwrap();
        let server = Server::new(Arc::new(Pipes), ServerConfig::default());
        let s = Arc::clone(&server);
        tokio::spawn(async move { s.serve(l, false).await });
        let c = crate::client::Connection::connect(&path).await.unwrap();
        for (p, want) in [(1, 7u32), (3, 9), (2, 8), (1, 7)] {
            let (v, fds): (u32, _) = c.call_fds(0x1234, 1, p, &()).await.unwrap();
            assert_eq!(v, want);
            if p == 3 {
                assert!(fds.is_empty());
                continue;
            }
            assert_eq!(fds.len(), 2);
            for (i, fd) in fds.into_iter().enumerate() {
                let mut b = [0u8; 1];
                std::fs::File::from(fd).read_exact(&mut b).unwrap();
                assert_eq!(b[0], b'a' + i as u8);
            }
        }
        server.shutdown();
    }

    /// Answers a call with descriptors with its argument, the number of descriptors and
    /// one byte read from each (an XDR array of u32); plain calls answer 99. Accepts
    /// descriptors.
    struct Reader;
    impl Service for Reader {
        type ClientData = ();
        fn knows_program(&self, _: u32, _: u32) -> bool {
            true
        }
        fn accepts_fds(&self) -> bool {
            true
        }
        fn call(self: Arc<Self>, _: &Arc<Client<()>>, _: Header, _: &[u8]) -> Dispatch {
            Dispatch::Now(Outcome::Reply(99u32.to_be_bytes().to_vec()))
        }
        fn call_with_fds(
            self: Arc<Self>,
            _: &Arc<Client<()>>,
            _: Header,
            payload: &[u8],
            fds: Vec<OwnedFd>,
        ) -> Dispatch {
            use std::io::Read;
            let arg: u32 = vireo_xdr::from_bytes(payload).unwrap();
            let mut words = vec![arg, fds.len() as u32];
            for fd in fds {
                let mut b = [0u8; 1];
                std::fs::File::from(fd).read_exact(&mut b).unwrap();
                words.push(u32::from(b[0]));
            }
            Dispatch::Now(Outcome::ok(&vireo_xdr::Array::<u32, 64>(words)))
        }
    }

    /// Calls with descriptors reach a service that accepts them with their descriptors in
    /// order, between plain calls; a service that does not accept them refuses.
    #[tokio::test]
    async fn calls_carry_descriptors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let l = bind_unix(&path, 0o700).unwrap();
        let server = Server::new(Arc::new(Reader), ServerConfig::default());
        let s = Arc::clone(&server);
        tokio::spawn(async move { s.serve(l, false).await });
        let c = crate::client::Connection::connect(&path).await.unwrap();
        for n in 0..4u8 {
            let fds: Vec<OwnedFd> = (0..n)
                .map(|i| vireo_fdpass::pipe_with(&[b'a' + i]).unwrap())
                .collect();
            let (words, back): (vireo_xdr::Array<u32, 64>, _) = c
                .call_sending_fds(0x1234, 1, 5, &(7 + u32::from(n)), fds)
                .await
                .unwrap();
            let mut want = vec![7 + u32::from(n), u32::from(n)];
            want.extend((0..n).map(|i| u32::from(b'a' + i)));
            assert_eq!(words.0, want);
            assert!(back.is_empty());
            let (plain, _): (u32, _) = c.call_fds(0x1234, 1, 6, &()).await.unwrap();
            assert_eq!(plain, 99);
        }
        server.shutdown();
        // A service that does not take descriptors refuses and closes.
        let path = dir.path().join("t");
        let l = bind_unix(&path, 0o700).unwrap();
        let server = Server::new(Arc::new(Pipes), ServerConfig::default());
        let s = Arc::clone(&server);
        tokio::spawn(async move { s.serve(l, false).await });
        let c = crate::client::Connection::connect(&path).await.unwrap();
        let fd = vireo_fdpass::pipe_with(b"z").unwrap();
        let r: Result<(u32, _), _> = c.call_sending_fds(0x1234, 1, 5, &1u32, vec![fd]).await;
        let e = r.unwrap_err().to_string();
        assert!(e.contains("not supported"), "{e}");
        server.shutdown();
    }
}
