//! The client side of one connection: serial numbers, replies matched to calls (they may
//! arrive in any order), event messages handed to a channel, keepalive answered.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};
use vireo_proto::header::{frame_into, keepalive_frame, Header};
use vireo_proto::{
    MessageType, RemoteError, Status, KEEPALIVE_PING, KEEPALIVE_PONG, KEEPALIVE_PROGRAM,
    REMOTE_PROGRAM, REMOTE_VERSION,
};
use vireo_xdr::{Xdr, XdrError};

use crate::frame::{read_frame, Frame};

/// Reads the descriptors that follow a REPLY_WITH_FDS frame (its payload starts with their
/// count, which is taken off), each with the byte that carries it.
async fn recv_fds(
    rd: &tokio::net::unix::OwnedReadHalf,
    f: &mut Frame,
) -> std::io::Result<Vec<std::os::fd::OwnedFd>> {
    use std::os::fd::AsFd;
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let n = f
        .payload
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(|| bad("reply with descriptors has no count"))?;
    if n > crate::server::MAX_FDS {
        return Err(bad("too many descriptors in a reply"));
    }
    f.payload.drain(..4);
    let sock: &UnixStream = rd.as_ref();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        sock.readable().await?;
        let mut byte = [0u8; 1];
        match sock.try_io(tokio::io::Interest::READABLE, || {
            vireo_fdpass::recv(sock.as_fd(), &mut byte)
        }) {
            Ok((0, _)) => return Err(bad("connection closed before the descriptors")),
            Ok((_, fds)) => out.extend(fds),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

#[derive(Debug, Error)]
pub enum CallError {
    #[error("{0}")]
    Remote(RemoteError),
    #[error("connection to the daemon was lost")]
    Closed,
    #[error("cannot decode the daemon's reply: {0}")]
    Decode(#[from] XdrError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

type Pending = Mutex<HashMap<u32, oneshot::Sender<Result<Vec<u8>, CallError>>>>;

/// Stream packets from the daemon one stream may have waiting for its reader.
const STREAM_QUEUE: usize = 16;

type MessageHandler = Arc<dyn Fn(Frame) + Send + Sync>;

/// The writing side of a connection: a UNIX socket's (which can pass descriptors) or any
/// other stream's (TCP, TLS).
enum Writer {
    Unix(OwnedWriteHalf),
    Other(Box<dyn AsyncWrite + Send + Unpin>),
}

impl Writer {
    async fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Writer::Unix(w) => w.write_all(b).await,
            Writer::Other(w) => w.write_all(b).await,
        }
    }

    /// Pushes out what is buffered (TLS records).
    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Writer::Unix(_) => Ok(()),
            Writer::Other(w) => w.flush().await,
        }
    }

    async fn send_fds(&mut self, fds: &[std::os::fd::OwnedFd]) -> std::io::Result<()> {
        match self {
            Writer::Unix(w) => crate::server::send_fds(w.as_ref(), fds).await,
            Writer::Other(_) => Err(std::io::Error::other(
                "file descriptors can only be passed over a UNIX socket",
            )),
        }
    }
}

struct Shared {
    pending: Pending,
    events: Mutex<Option<mpsc::UnboundedSender<Frame>>>,
    /// Called for each MESSAGE before any later frame is looked at, so the effect of an
    /// event is visible by the time the reply that followed it is delivered.
    handler: Mutex<Option<MessageHandler>>,
    writer: tokio::sync::Mutex<Writer>,
    closed: tokio::sync::watch::Sender<bool>,
    /// Open streams by the serial of the call that opened them.
    streams: Mutex<HashMap<u32, mpsc::Sender<Frame>>>,
    /// Descriptors of a REPLY_WITH_FDS, by serial, until its caller takes them.
    fds: Mutex<HashMap<u32, Vec<std::os::fd::OwnedFd>>>,
    /// With [`Connection::track_calls`]: where calls that got no answer are counted.
    failures: std::sync::OnceLock<Arc<std::sync::atomic::AtomicU64>>,
    /// With [`Connection::track_calls`]: when a call was last answered (ms since the epoch).
    answered_ms: std::sync::atomic::AtomicU64,
}

/// A stream opened by a call ([`Connection::call_stream`]): packets both ways, with the
/// call's serial.
pub struct ClientStream {
    shared: Arc<Shared>,
    header: Header,
    rx: mpsc::Receiver<Frame>,
}

impl ClientStream {
    /// The next STREAM or STREAM_HOLE frame from the daemon; `None` once the connection
    /// is gone.
    pub async fn recv(&mut self) -> Option<Frame> {
        self.rx.recv().await
    }

    /// Sends a packet of this stream (data with CONTINUE, finish with OK, abort with
    /// ERROR; a hole as STREAM_HOLE).
    pub async fn send(
        &self,
        mtype: MessageType,
        status: Status,
        payload: &[u8],
    ) -> Result<(), CallError> {
        let h = Header {
            mtype: mtype as i32,
            status: status as i32,
            ..self.header
        };
        // The header, then the payload as it is: a stream's data is not copied into a frame.
        let mut head = Vec::with_capacity(28);
        frame_into(&mut head, &h, |_| {});
        let len = u32::try_from(head.len() + payload.len())
            .map_err(|_| CallError::Io(std::io::Error::other("stream packet too large")))?;
        head[..4].copy_from_slice(&len.to_be_bytes());
        let mut w = self.shared.writer.lock().await;
        w.write_all(&head).await?;
        w.write_all(payload).await?;
        w.flush().await?;
        Ok(())
    }

    /// Data, split into libvirt's chunk size.
    pub async fn send_data(&self, data: &[u8]) -> Result<(), CallError> {
        for chunk in data.chunks(vireo_proto::STREAM_CHUNK) {
            self.send(MessageType::Stream, Status::Continue, chunk)
                .await?;
        }
        Ok(())
    }

    /// A hole of `len` bytes.
    pub async fn send_hole(&self, len: u64) -> Result<(), CallError> {
        let mut p = Vec::with_capacity(12);
        p.extend_from_slice(&len.to_be_bytes());
        p.extend_from_slice(&0u32.to_be_bytes());
        self.send(MessageType::StreamHole, Status::Continue, &p)
            .await
    }
}

impl Drop for ClientStream {
    fn drop(&mut self) {
        if let Ok(mut m) = self.shared.streams.lock() {
            m.remove(&self.header.serial);
        }
    }
}

/// One connection to a daemon.
pub struct Connection {
    shared: Arc<Shared>,
    serial: AtomicU32,
    reader: tokio::task::JoinHandle<()>,
    /// Starts a SASL security layer under both directions (network connections).
    layer: Option<crate::layer::LayerSwitch>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Connection {
    pub async fn connect(path: &Path) -> std::io::Result<Connection> {
        let stream = UnixStream::connect(path).await?;
        Ok(Self::from_stream(stream))
    }

    fn shared(writer: Writer) -> Arc<Shared> {
        Arc::new(Shared {
            pending: Mutex::new(HashMap::new()),
            events: Mutex::new(None),
            handler: Mutex::new(None),
            writer: tokio::sync::Mutex::new(writer),
            closed: tokio::sync::watch::channel(false).0,
            streams: Mutex::new(HashMap::new()),
            fds: Mutex::new(HashMap::new()),
            failures: std::sync::OnceLock::new(),
            answered_ms: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Counts calls on this connection that get no answer (the peer gone, an I/O error)
    /// into `failures`, and notes when the peer last answered
    /// ([`Connection::last_answer`]). Only the first call has an effect.
    pub fn track_calls(&self, failures: Arc<std::sync::atomic::AtomicU64>) {
        let _ = self.shared.failures.set(failures);
    }

    /// When the peer last answered a call (a reply or an error), with
    /// [`Connection::track_calls`] on.
    pub fn last_answer(&self) -> Option<std::time::SystemTime> {
        match self.shared.answered_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(std::time::UNIX_EPOCH + Duration::from_millis(ms)),
        }
    }

    /// A connection over any byte stream (TCP, TLS): no descriptor passing; SASL may start
    /// a security layer on it ([`Connection::start_security_layer`]).
    pub fn from_io<T: AsyncRead + AsyncWrite + Send + 'static>(io: T) -> Connection {
        let (rd, wr) = tokio::io::split(io);
        let switch: crate::layer::LayerSwitch = Arc::new(std::sync::OnceLock::new());
        let mut rd = crate::layer::LayerReader::switched(rd, Arc::clone(&switch));
        let wr = crate::layer::LayerWriter::switched(wr, Arc::clone(&switch));
        let shared = Self::shared(Writer::Other(Box::new(wr)));
        let sh = Arc::clone(&shared);
        let reader = tokio::spawn(async move {
            while let Ok(f) = read_frame(&mut rd).await {
                sh.on_frame(f).await;
            }
            sh.gone();
        });
        Connection {
            shared,
            serial: AtomicU32::new(0),
            reader,
            layer: Some(switch),
        }
    }

    /// Runs every later byte both ways through `layer` (SASL negotiated it, and the reply
    /// that completed the exchange was the last plain frame). False where the connection
    /// cannot (a UNIX socket) or already has one.
    pub fn start_security_layer(&self, layer: crate::layer::Layer) -> bool {
        self.layer.as_ref().is_some_and(|s| s.set(layer).is_ok())
    }

    pub fn from_stream(stream: UnixStream) -> Connection {
        let (mut rd, wr) = stream.into_split();
        let shared = Self::shared(Writer::Unix(wr));
        let sh = Arc::clone(&shared);
        let reader = tokio::spawn(async move {
            while let Ok(mut f) = read_frame(&mut rd).await {
                // A reply with descriptors: they follow the frame, one per byte; read
                // them with the bytes that carry them before anything else.
                if f.header.message_type() == Some(MessageType::ReplyWithFds) {
                    match recv_fds(&rd, &mut f).await {
                        Ok(fds) => {
                            if let Ok(mut m) = sh.fds.lock() {
                                m.insert(f.header.serial, fds);
                            }
                        }
                        Err(_) => break,
                    }
                }
                sh.on_frame(f).await;
            }
            sh.gone();
        });
        Connection {
            shared,
            serial: AtomicU32::new(0),
            reader,
            layer: None,
        }
    }

    /// Takes the stream of MESSAGE frames (events) the daemon sends on this connection.
    pub fn events(&self) -> mpsc::UnboundedReceiver<Frame> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut e) = self.shared.events.lock() {
            *e = Some(tx);
        }
        rx
    }

    /// Handles MESSAGE frames (events) synchronously, in order with replies: instead of
    /// [`Connection::events`].
    pub fn on_message(&self, f: impl Fn(Frame) + Send + Sync + 'static) {
        if let Ok(mut h) = self.shared.handler.lock() {
            *h = Some(Arc::new(f));
        }
    }

    /// Resolves once the connection is gone.
    pub async fn closed(&self) {
        let mut rx = self.shared.closed.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Sends a CALL with an encoded payload and waits for its reply payload.
    pub async fn call_raw(
        &self,
        prog: u32,
        vers: u32,
        proc_: i32,
        args: impl FnOnce(&mut Vec<u8>),
    ) -> Result<Vec<u8>, CallError> {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        self.send_call(serial, prog, vers, proc_, args, None).await
    }

    /// Sends a CALL (a CALL_WITH_FDS with `fds`: their count starts the payload, and they
    /// follow the frame, each with a byte of its own) and waits for its reply.
    async fn send_call(
        &self,
        serial: u32,
        prog: u32,
        vers: u32,
        proc_: i32,
        args: impl FnOnce(&mut Vec<u8>),
        fds: Option<Vec<std::os::fd::OwnedFd>>,
    ) -> Result<Vec<u8>, CallError> {
        let r = self
            .send_call_untracked(serial, prog, vers, proc_, args, fds)
            .await;
        if let Some(failures) = self.shared.failures.get() {
            match &r {
                Ok(_) | Err(CallError::Remote(_)) => {
                    let ms = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                        .unwrap_or(0);
                    self.shared.answered_ms.store(ms, Ordering::Relaxed);
                }
                Err(_) => {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        r
    }

    async fn send_call_untracked(
        &self,
        serial: u32,
        prog: u32,
        vers: u32,
        proc_: i32,
        args: impl FnOnce(&mut Vec<u8>),
        fds: Option<Vec<std::os::fd::OwnedFd>>,
    ) -> Result<Vec<u8>, CallError> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.shared.pending.lock() {
            p.insert(serial, tx);
        }
        let mut buf = Vec::with_capacity(64);
        let written = if let Some(fds) = fds {
            let h = Header::new(
                prog,
                vers,
                proc_,
                MessageType::CallWithFds,
                serial,
                Status::Ok,
            );
            frame_into(&mut buf, &h, |o| {
                o.extend_from_slice(&(fds.len() as u32).to_be_bytes());
                args(o);
            });
            // The frame and its descriptors go out together: no other call between them.
            let mut w = self.shared.writer.lock().await;
            match w.write_all(&buf).await {
                Ok(()) => w.send_fds(&fds).await,
                Err(e) => Err(e),
            }
        } else {
            let h = Header::call(prog, vers, proc_, serial);
            frame_into(&mut buf, &h, args);
            let mut w = self.shared.writer.lock().await;
            match w.write_all(&buf).await {
                Ok(()) => w.flush().await,
                Err(e) => Err(e),
            }
        };
        if let Err(e) = written {
            if let Ok(mut p) = self.shared.pending.lock() {
                p.remove(&serial);
            }
            return Err(e.into());
        }
        rx.await.map_err(|_| CallError::Closed)?
    }

    /// Sends a CALL that opens a stream; returns its reply payload and the stream (whose
    /// packets may follow the reply at once: the stream is registered before the call is
    /// sent).
    pub async fn call_stream(
        &self,
        prog: u32,
        vers: u32,
        proc_: i32,
        args: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(Vec<u8>, ClientStream), CallError> {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        if let Ok(mut m) = self.shared.streams.lock() {
            m.insert(serial, tx);
        }
        let stream = ClientStream {
            shared: Arc::clone(&self.shared),
            header: Header::new(
                prog,
                vers,
                proc_,
                MessageType::Stream,
                serial,
                Status::Continue,
            ),
            rx,
        };
        let reply = self
            .send_call(serial, prog, vers, proc_, args, None)
            .await?;
        Ok((reply, stream))
    }

    /// A typed call whose reply carries descriptors (a REPLY_WITH_FDS; a plain REPLY gives
    /// none).
    pub async fn call_fds<A: Xdr, R: Xdr>(
        &self,
        prog: u32,
        vers: u32,
        proc_: i32,
        args: &A,
    ) -> Result<(R, Vec<std::os::fd::OwnedFd>), CallError> {
        self.typed_call(prog, vers, proc_, args, None).await
    }

    /// A typed CALL_WITH_FDS: the descriptors follow the frame, each with a byte of its
    /// own (as libvirt sends them); the reply may bring descriptors back.
    pub async fn call_sending_fds<A: Xdr, R: Xdr>(
        &self,
        prog: u32,
        vers: u32,
        proc_: i32,
        args: &A,
        fds: Vec<std::os::fd::OwnedFd>,
    ) -> Result<(R, Vec<std::os::fd::OwnedFd>), CallError> {
        self.typed_call(prog, vers, proc_, args, Some(fds)).await
    }

    /// A typed call (with descriptors, if `fds`), and the descriptors its reply brought.
    async fn typed_call<A: Xdr, R: Xdr>(
        &self,
        prog: u32,
        vers: u32,
        proc_: i32,
        args: &A,
        fds: Option<Vec<std::os::fd::OwnedFd>>,
    ) -> Result<(R, Vec<std::os::fd::OwnedFd>), CallError> {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let r = self
            .send_call(serial, prog, vers, proc_, |o| args.encode(o), fds)
            .await;
        let back = self
            .shared
            .fds
            .lock()
            .ok()
            .and_then(|mut m| m.remove(&serial))
            .unwrap_or_default();
        Ok((vireo_xdr::from_bytes(&r?)?, back))
    }

    /// A typed call on the REMOTE program.
    pub async fn call<A: Xdr, R: Xdr>(&self, proc_: i32, args: &A) -> Result<R, CallError> {
        let p = self
            .call_raw(REMOTE_PROGRAM, REMOTE_VERSION, proc_, |o| args.encode(o))
            .await?;
        Ok(vireo_xdr::from_bytes(&p)?)
    }

    /// Sends a keepalive PING now.
    pub async fn ping(&self) -> std::io::Result<()> {
        self.shared.send_keepalive(KEEPALIVE_PING).await
    }

    /// Pings the daemon after `interval` of silence; gives up the connection when `count`
    /// pings in a row go unanswered (as libvirt's client does).
    pub fn start_keepalive(self: &Arc<Self>, interval: Duration, count: u32) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut missed = 0;
            loop {
                tokio::time::sleep(interval).await;
                let Some(c) = me.upgrade() else { return };
                if c.reader.is_finished() {
                    return;
                }
                missed += 1;
                if missed > count {
                    c.reader.abort();
                    return;
                }
                if c.ping().await.is_err() {
                    return;
                }
                missed = 0;
            }
        });
    }

    pub fn is_open(&self) -> bool {
        !self.reader.is_finished()
    }
}

impl Shared {
    /// The connection is gone: fail everything still waiting.
    fn gone(&self) {
        if let Ok(mut p) = self.pending.lock() {
            for (_, tx) in p.drain() {
                let _ = tx.send(Err(CallError::Closed));
            }
        }
        if let Ok(mut e) = self.events.lock() {
            e.take();
        }
        if let Ok(mut s) = self.streams.lock() {
            s.clear();
        }
        self.closed.send_replace(true);
    }

    async fn on_frame(&self, f: Frame) {
        let h = f.header;
        if h.prog == KEEPALIVE_PROGRAM {
            if h.proc_ == KEEPALIVE_PING {
                let _ = self.send_keepalive(KEEPALIVE_PONG).await;
            }
            return;
        }
        match h.message_type() {
            Some(MessageType::Reply) | Some(MessageType::ReplyWithFds) => {
                let tx = self
                    .pending
                    .lock()
                    .ok()
                    .and_then(|mut p| p.remove(&h.serial));
                let Some(tx) = tx else { return };
                let r = if h.status == Status::Ok as i32 {
                    Ok(f.payload)
                } else {
                    match vireo_xdr::from_bytes::<RemoteError>(&f.payload) {
                        Ok(e) => Err(CallError::Remote(e)),
                        Err(e) => Err(CallError::Decode(e)),
                    }
                };
                let _ = tx.send(r);
            }
            Some(MessageType::Stream | MessageType::StreamHole) => {
                let tx = self
                    .streams
                    .lock()
                    .ok()
                    .and_then(|m| m.get(&h.serial).cloned());
                // Waiting here is the back pressure on a daemon that sends faster than the
                // stream's reader takes.
                if let Some(tx) = tx {
                    let _ = tx.send(f).await;
                }
            }
            Some(MessageType::Message) => {
                let handler = self.handler.lock().ok().and_then(|h| h.clone());
                if let Some(h) = handler {
                    h(f);
                    return;
                }
                if let Ok(e) = self.events.lock() {
                    if let Some(tx) = e.as_ref() {
                        let _ = tx.send(f);
                    }
                }
            }
            _ => {}
        }
    }

    async fn send_keepalive(&self, proc_: i32) -> std::io::Result<()> {
        let buf = keepalive_frame(proc_);
        let mut w = self.writer.lock().await;
        w.write_all(&buf).await?;
        w.flush().await
    }
}
