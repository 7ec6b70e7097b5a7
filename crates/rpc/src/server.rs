//! The server side: listeners, one task per client reading frames, one task per call, a
//! writer per client, keepalive, and clean shutdown. What a call means is the [`Service`]'s
//! business; this module only moves frames and enforces the protocol's rules.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::AsyncWriteExt;
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use vireo_proto::header::{encode_frame, frame_into, Header};
use vireo_proto::{
    MessageType, RemoteError, Status, KEEPALIVE_PING, KEEPALIVE_PONG, KEEPALIVE_PROGRAM,
    KEEPALIVE_VERSION,
};
use vireo_xdr::Xdr;

use crate::frame::{read_frame, FrameError};

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What a call produced.
pub enum Outcome {
    /// Successful reply with this (already encoded) payload.
    Reply(Vec<u8>),
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

/// The peer's credentials from `SO_PEERCRED`: who the client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
}

/// What answers calls. One instance serves every client of a server.
pub trait Service: Send + Sync + 'static {
    /// Per-connection state the service keeps (open connection, event callbacks, …).
    type ClientData: Default + Send + Sync + 'static;

    /// The (program, version) pairs this service answers; calls to others get libvirt's
    /// "Cannot find program" error.
    fn knows_program(&self, prog: u32, vers: u32) -> bool;

    /// Answers one CALL. Runs in its own task, so a slow call never blocks the client's
    /// other calls, nor other clients.
    fn call(
        self: Arc<Self>,
        client: Arc<Client<Self::ClientData>>,
        header: Header,
        payload: Vec<u8>,
    ) -> BoxFuture<Outcome>;

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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_clients: 5000,
            max_client_requests: 64,
            keepalive_interval: Duration::from_secs(5),
            keepalive_count: 5,
        }
    }
}

/// Outgoing frames waiting for a client's writer.
const OUT_QUEUE: usize = 1024;

/// One connected client, as the service sees it.
pub struct Client<D> {
    pub id: u64,
    pub identity: Identity,
    /// Connected through a read-only socket.
    pub readonly: bool,
    pub connected_at: SystemTime,
    pub data: D,
    out: mpsc::Sender<Vec<u8>>,
    keepalive: AtomicBool,
    last_rx: Mutex<Instant>,
    close: Notify,
    closed: AtomicBool,
}

impl<D> Client<D> {
    /// Queues a MESSAGE (event) frame. Drops it if the client does not keep up: a slow
    /// reader must not make the daemon hold unbounded memory.
    pub fn send_message(
        &self,
        prog: u32,
        vers: u32,
        proc_: i32,
        serial: u32,
        payload: &[u8],
    ) -> bool {
        let h = Header::new(prog, vers, proc_, MessageType::Message, serial, Status::Ok);
        self.out.try_send(encode_frame(&h, payload)).is_ok()
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

    async fn send(&self, frame: Vec<u8>) {
        let _ = self.out.send(frame).await;
    }
}

pub struct Server<S: Service> {
    service: Arc<S>,
    config: ServerConfig,
    clients: Mutex<HashMap<u64, Arc<Client<S::ClientData>>>>,
    nclients: AtomicUsize,
    next_id: AtomicU64,
    shutdown: watch::Sender<bool>,
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
        })
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

    /// Stops accepting and disconnects every client.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        for c in self.clients() {
            c.close();
        }
    }

    /// Accepts clients on `listener` until shutdown.
    pub async fn serve(self: &Arc<Self>, listener: UnixListener, readonly: bool) {
        let mut stop = self.shutdown.subscribe();
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                r = listener.accept() => match r {
                    Ok((stream, _)) => {
                        let me = Arc::clone(self);
                        tokio::spawn(async move { me.handle(stream, readonly).await });
                    }
                    Err(e) => {
                        // Out of fds and the like: back off briefly instead of spinning.
                        eprintln!("vireo: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
    }

    async fn handle(self: Arc<Self>, stream: UnixStream, readonly: bool) {
        if self.nclients.fetch_add(1, Ordering::SeqCst) >= self.config.max_clients {
            self.nclients.fetch_sub(1, Ordering::SeqCst);
            // Over the limit: hang up at once, as libvirtd does.
            return;
        }
        let identity = match stream.peer_cred() {
            Ok(c) => Identity {
                uid: c.uid(),
                gid: c.gid(),
                pid: c.pid(),
            },
            Err(_) => {
                self.nclients.fetch_sub(1, Ordering::SeqCst);
                return;
            }
        };
        let (mut rd, wr) = stream.into_split();
        let (tx, rx) = mpsc::channel(OUT_QUEUE);
        let client = Arc::new(Client {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            identity,
            readonly,
            connected_at: SystemTime::now(),
            data: S::ClientData::default(),
            out: tx,
            keepalive: AtomicBool::new(false),
            last_rx: Mutex::new(Instant::now()),
            close: Notify::new(),
            closed: AtomicBool::new(false),
        });
        if let Ok(mut m) = self.clients.lock() {
            m.insert(client.id, Arc::clone(&client));
        }
        let (done_tx, done_rx) = watch::channel(false);
        tokio::spawn(write_loop(wr, rx, done_rx));
        let pinger = tokio::spawn(keepalive_loop(
            Arc::clone(&client),
            self.config.keepalive_interval,
            self.config.keepalive_count,
        ));
        let slots = Arc::new(Semaphore::new(self.config.max_client_requests.max(1)));
        let mut stop = self.shutdown.subscribe();
        if !*stop.borrow() {
            loop {
                let frame = tokio::select! {
                    _ = client.close.notified() => break,
                    _ = stop.changed() => break,
                    f = read_frame(&mut rd) => f,
                };
                let frame = match frame {
                    Ok(f) => f,
                    Err(FrameError::Eof) => break,
                    Err(e) => {
                        eprintln!("vireo: client {}: {e}; closing", client.id);
                        break;
                    }
                };
                if let Ok(mut t) = client.last_rx.lock() {
                    *t = Instant::now();
                }
                if !self
                    .on_frame(&client, &slots, frame.header, frame.payload)
                    .await
                {
                    break;
                }
            }
        }
        client.closed.store(true, Ordering::Relaxed);
        pinger.abort();
        if let Ok(mut m) = self.clients.lock() {
            m.remove(&client.id);
        }
        self.service.disconnected(&client);
        self.nclients.fetch_sub(1, Ordering::SeqCst);
        // The writer sends what is already queued, then hangs up even if some task still
        // holds the client.
        let _ = done_tx.send(true);
    }

    /// Handles one frame; false closes the connection.
    async fn on_frame(
        &self,
        client: &Arc<Client<S::ClientData>>,
        slots: &Arc<Semaphore>,
        h: Header,
        payload: Vec<u8>,
    ) -> bool {
        if h.prog == KEEPALIVE_PROGRAM {
            if h.vers == KEEPALIVE_VERSION
                && h.mtype == MessageType::Message as i32
                && h.proc_ == KEEPALIVE_PING
            {
                let pong = Header::new(
                    KEEPALIVE_PROGRAM,
                    KEEPALIVE_VERSION,
                    KEEPALIVE_PONG,
                    MessageType::Message,
                    0,
                    Status::Ok,
                );
                client.send(encode_frame(&pong, &[])).await;
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
                client.send(error_frame(&h, &e)).await;
                return false;
            }
            // Stream packets for streams we do not have are dropped, as libvirtd does.
            Some(MessageType::Stream | MessageType::StreamHole) => return true,
            Some(MessageType::Reply | MessageType::Message | MessageType::ReplyWithFds) => {
                return true
            }
            None => {
                let e = RemoteError::rpc(format!("Unexpected message type {}", h.mtype));
                client.send(error_frame(&h, &e)).await;
                return true;
            }
        }
        if !self.service.knows_program(h.prog, h.vers) {
            let e = RemoteError::rpc(format!("Cannot find program {} version {}", h.prog, h.vers));
            client.send(error_frame(&h, &e)).await;
            return true;
        }
        if h.status != Status::Ok as i32 {
            let e = RemoteError::rpc(format!("Unexpected message status {}", h.status));
            client.send(error_frame(&h, &e)).await;
            return true;
        }
        let permit = match Arc::clone(slots).acquire_owned().await {
            Ok(p) => p,
            Err(_) => return false,
        };
        let service = Arc::clone(&self.service);
        let c = Arc::clone(client);
        tokio::spawn(async move {
            let outcome = service.call(Arc::clone(&c), h, payload).await;
            let frame = match outcome {
                Outcome::Reply(p) => encode_frame(&h.reply(Status::Ok), &p),
                Outcome::Error(e) => error_frame(&h, &e),
            };
            c.send(frame).await;
            drop(permit);
        });
        true
    }
}

/// A REPLY/ERROR frame echoing the call's program, version, procedure and serial.
pub fn error_frame(call: &Header, e: &RemoteError) -> Vec<u8> {
    let mut out = Vec::new();
    frame_into(&mut out, &call.reply(Status::Error), |o| e.encode(o));
    out
}

async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Vec<u8>>,
    mut done: watch::Receiver<bool>,
) {
    let mut batch = Vec::new();
    loop {
        let first = tokio::select! {
            biased;
            f = rx.recv() => match f {
                Some(f) => f,
                None => break,
            },
            _ = done.changed() => {
                while let Ok(f) = rx.try_recv() {
                    if wr.write_all(&f).await.is_err() {
                        return;
                    }
                }
                break;
            }
        };
        // Coalesce whatever else is already queued into one write.
        let res = if rx.is_empty() {
            wr.write_all(&first).await
        } else {
            batch.clear();
            batch.extend_from_slice(&first);
            while batch.len() < 256 * 1024 {
                match rx.try_recv() {
                    Ok(f) => batch.extend_from_slice(&f),
                    Err(_) => break,
                }
            }
            wr.write_all(&batch).await
        };
        if res.is_err() {
            return;
        }
    }
    let _ = wr.shutdown().await;
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
            eprintln!(
                "vireo: client {} stopped answering keepalive; closing",
                client.id
            );
            client.close();
            return;
        }
        unanswered += 1;
        let ping = Header::new(
            KEEPALIVE_PROGRAM,
            KEEPALIVE_VERSION,
            KEEPALIVE_PING,
            MessageType::Message,
            0,
            Status::Ok,
        );
        let _ = client.out.try_send(encode_frame(&ping, &[]));
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
