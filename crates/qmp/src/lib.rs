//! An asynchronous QMP (QEMU Machine Protocol) client.
//!
//! QMP is newline-delimited JSON over a UNIX stream socket. QEMU speaks first with a
//! greeting (`{"QMP": {...}}`); the client answers with `qmp_capabilities` and may then
//! issue commands. Every command this client sends carries an `"id"` of its own making, and
//! QEMU echoes it in the reply, so commands may be in flight from many tasks at once and
//! their replies may come back in any order. Asynchronous events are delivered on an
//! unbounded channel returned by [`Qmp::handshake`].
//!
//! One background task reads the socket; writers take turns behind an async mutex. The
//! whole `tokio::net::UnixStream` is shared (never split), so the fd-passing path can use
//! `sendmsg(2)` on the same socket: the JSON of a command and the `SCM_RIGHTS` control
//! message travel in the same `sendmsg` call, as QEMU expects for `getfd` and `add-fd`.
//!
//! Nothing QEMU sends can make this crate panic: lines are capped at [`MAX_LINE`] bytes
//! before more is buffered, unparsable lines and replies to unknown ids are ignored, and a
//! reply that does not have the shape of a QMP reply fails its command with
//! [`QmpError::Protocol`].

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::io::Interest;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

#[cfg(test)]
mod tests;

/// The longest line (one JSON message, without its line terminator) accepted from QEMU.
/// A longer line closes the connection with [`QmpError::TooLarge`].
pub const MAX_LINE: usize = 16 * 1024 * 1024;

/// How long a command waits for its reply while QEMU is not answering (see
/// [`Qmp::set_reply_limit`]).
pub const STALLED_WAIT: Duration = Duration::from_secs(1);

/// How much is read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;

/// Errors of the QMP client.
#[derive(thiserror::Error, Debug)]
pub enum QmpError {
    /// The socket failed.
    #[error("QMP I/O error: {0}")]
    Io(#[from] io::Error),
    /// The connection is gone (QEMU exited, closed the monitor, or the client was dropped).
    #[error("QMP connection closed")]
    Closed,
    /// No reply in time. The command name, or `"greeting"` when QEMU never greeted.
    #[error("QMP command '{0}' timed out")]
    Timeout(String),
    /// QEMU sent something that is not QMP (or the client was asked to send something
    /// that is not: arguments that are not a JSON object).
    #[error("QMP protocol error: {0}")]
    Protocol(String),
    /// QEMU answered the command with an `"error"` reply.
    #[error("QEMU error {class}: {desc}")]
    Command { class: String, desc: String },
    /// QEMU sent a line longer than [`MAX_LINE`]; the connection was closed.
    #[error("QMP message longer than the limit of {MAX_LINE} bytes")]
    TooLarge,
}

/// The greeting QEMU sends when a client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    /// QEMU's (major, minor, micro) version.
    pub version: (u32, u32, u32),
    /// The distribution's package string (may be empty).
    pub package: String,
    /// Capabilities QEMU offers (e.g. `"oob"`); this client enables none.
    pub capabilities: Vec<String>,
}

/// An asynchronous QMP event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event name, e.g. `"STOP"`, `"SHUTDOWN"`.
    pub name: String,
    /// The `"data"` member; `Value::Null` when the event has none.
    pub data: Value,
    /// QEMU's timestamp; -1 when QEMU sent none (QEMU's own "unknown" value).
    pub seconds: i64,
    pub microseconds: i64,
}

/// A QMP connection. Cheap to share: clone it, or share `&Qmp` between tasks; all methods
/// take `&self`. When the last clone is dropped the connection is closed.
#[derive(Clone)]
pub struct Qmp {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Qmp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qmp")
            .field("fd", &self.handle.shared.stream.as_raw_fd())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Owned by the `Qmp` clones only; its drop ends the reader task and the connection.
struct Handle {
    shared: Arc<Shared>,
    reader: AbortHandle,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.reader.abort();
        self.shared.close(CloseReason::Dropped);
    }
}

/// State shared by the `Qmp` handle and the reader task.
struct Shared {
    stream: UnixStream,
    /// One writer at a time, so that lines never interleave.
    write_lock: tokio::sync::Mutex<()>,
    state: Mutex<State>,
    next_id: AtomicU64,
    closed: watch::Sender<bool>,
    /// How long `execute` waits for a reply, in ms (0: as long as it takes).
    reply_limit_ms: AtomicU64,
    /// A command ran out of that time and QEMU has answered nothing since.
    stalled: AtomicBool,
}

type Reply = Result<Value, QmpError>;

struct State {
    pending: HashMap<u64, oneshot::Sender<Reply>>,
    closed: bool,
}

/// Why the connection ended; turned into the error every pending command gets.
#[derive(Debug, Clone)]
enum CloseReason {
    Eof,
    Dropped,
    TooLarge,
    Io(io::ErrorKind, String),
    Protocol(String),
}

impl CloseReason {
    fn to_error(&self) -> QmpError {
        match self {
            CloseReason::Eof | CloseReason::Dropped => QmpError::Closed,
            CloseReason::TooLarge => QmpError::TooLarge,
            CloseReason::Io(kind, msg) => QmpError::Io(io::Error::new(*kind, msg.clone())),
            CloseReason::Protocol(msg) => QmpError::Protocol(msg.clone()),
        }
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_closed(&self) -> bool {
        self.state().closed
    }

    fn register(&self, id: u64, tx: oneshot::Sender<Reply>) -> Result<(), QmpError> {
        let mut st = self.state();
        if st.closed {
            return Err(QmpError::Closed);
        }
        st.pending.insert(id, tx);
        Ok(())
    }

    fn take_pending(&self, id: u64) -> Option<oneshot::Sender<Reply>> {
        self.state().pending.remove(&id)
    }

    /// Marks the connection closed (once), fails every pending command, shuts the socket
    /// down so that QEMU and the reader task see the end, and wakes `closed()` waiters.
    fn close(&self, reason: CloseReason) {
        let pending = {
            let mut st = self.state();
            if st.closed {
                return;
            }
            st.closed = true;
            std::mem::take(&mut st.pending)
        };
        for (_, tx) in pending {
            let _ = tx.send(Err(reason.to_error()));
        }
        // shutdown(2) does not close or invalidate the fd, it only ends both directions.
        let _ = rustix::net::shutdown(&self.stream, rustix::net::Shutdown::Both);
        self.closed.send_replace(true);
    }

    /// Writes all of `buf`, with `fd` attached to the first byte if given.
    async fn send(&self, buf: &[u8], fd: Option<BorrowedFd<'_>>) -> Result<(), QmpError> {
        let _turn = self.write_lock.lock().await;
        if self.is_closed() {
            return Err(QmpError::Closed);
        }
        let mut progress = WriteProgress {
            shared: self,
            written: 0,
            total: buf.len(),
        };
        let mut fd = fd;
        while progress.written < buf.len() {
            let rest = &buf[progress.written..];
            let res = self
                .stream
                .async_io(Interest::WRITABLE, || {
                    vireo_fdpass::send(self.stream.as_fd(), rest, fd)
                })
                .await;
            match res {
                Ok(0) => return Err(QmpError::Closed),
                Ok(n) => {
                    progress.written += n;
                    // The fd went with the first byte(s); the rest is plain data.
                    fd = None;
                }
                Err(e) if is_disconnect(&e) => return Err(QmpError::Closed),
                Err(e) => return Err(QmpError::Io(e)),
            }
        }
        Ok(())
    }
}

/// A line that was only partly written (the writer failed or its future was dropped, e.g.
/// by a timeout) would corrupt the stream for every later command: close the connection.
struct WriteProgress<'a> {
    shared: &'a Shared,
    written: usize,
    total: usize,
}

impl Drop for WriteProgress<'_> {
    fn drop(&mut self) {
        if self.written > 0 && self.written < self.total {
            self.shared.close(CloseReason::Protocol(
                "a command was only partly written; connection closed".into(),
            ));
        }
    }
}

/// Removes a command's pending entry when its `execute` future ends in any way (reply,
/// timeout, cancellation), so that a late reply is ignored.
struct PendingEntry<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for PendingEntry<'_> {
    fn drop(&mut self) {
        self.shared.take_pending(self.id);
    }
}

fn is_disconnect(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::NotConnected
    )
}

impl Qmp {
    /// Reads the greeting (the readiness signal: no sleeps, no polling), sends
    /// `qmp_capabilities`, and returns the client plus the stream of asynchronous events.
    /// `timeout` bounds the whole handshake. The event receiver ends when the connection
    /// does.
    pub async fn handshake(
        stream: UnixStream,
        timeout: Duration,
    ) -> Result<(Qmp, Greeting, mpsc::UnboundedReceiver<Event>), QmpError> {
        Self::handshake_with_limit(stream, timeout, MAX_LINE).await
    }

    async fn handshake_with_limit(
        stream: UnixStream,
        timeout: Duration,
        max_line: usize,
    ) -> Result<(Qmp, Greeting, mpsc::UnboundedReceiver<Event>), QmpError> {
        let deadline = Instant::now().checked_add(timeout);
        let shared = Arc::new(Shared {
            stream,
            write_lock: tokio::sync::Mutex::new(()),
            state: Mutex::new(State {
                pending: HashMap::new(),
                closed: false,
            }),
            next_id: AtomicU64::new(1),
            closed: watch::channel(false).0,
            reply_limit_ms: AtomicU64::new(0),
            stalled: AtomicBool::new(false),
        });
        let (greet_tx, greet_rx) = oneshot::channel();
        let (event_tx, event_rx) = mpsc::unbounded_channel();
        let reader = Reader {
            shared: shared.clone(),
            greeting: Some(greet_tx),
            events: event_tx,
            max_line,
        };
        let reader = tokio::spawn(reader.run()).abort_handle();
        // From here on, any early return drops `qmp`, which ends the reader and the socket.
        let qmp = Qmp {
            handle: Arc::new(Handle { shared, reader }),
        };
        let greeting = match until(deadline, greet_rx).await {
            None => return Err(QmpError::Timeout("greeting".into())),
            Some(Err(_)) => return Err(QmpError::Closed),
            Some(Ok(r)) => r?,
        };
        let caps = qmp.run("qmp_capabilities", None, None);
        match until(deadline, caps).await {
            None => return Err(QmpError::Timeout("qmp_capabilities".into())),
            Some(r) => r?,
        };
        Ok((qmp, greeting, event_rx))
    }

    /// Runs a command and returns its `"return"` value. `args` None sends no
    /// `"arguments"` member; Some must be a JSON object. Waits as long as it takes (or until
    /// the connection closes), or the limit of [`Qmp::set_reply_limit`]; see also
    /// [`Qmp::execute_timeout`].
    pub async fn execute(&self, command: &str, args: Option<Value>) -> Result<Value, QmpError> {
        self.limited(command, self.run(command, args, None)).await
    }

    /// Bounds how long [`Qmp::execute`] and [`Qmp::execute_with_fd`] wait for a reply
    /// (None: as long as it takes, the default): a QEMU that stopped answering (stopped,
    /// or stuck) then fails the command with [`QmpError::Timeout`], as
    /// [`Qmp::execute_timeout`] does; its late reply is ignored.
    pub fn set_reply_limit(&self, limit: Option<Duration>) {
        let ms = limit.map_or(0, |l| {
            u64::try_from(l.as_millis()).unwrap_or(u64::MAX).max(1)
        });
        self.handle
            .shared
            .reply_limit_ms
            .store(ms, Ordering::Relaxed);
    }

    /// `fut` (a command) bounded by the reply limit; while QEMU has not answered since a
    /// command ran out of it, by [`STALLED_WAIT`] at most, so that a series of commands to
    /// a QEMU that stopped answering fails in a bounded time too.
    async fn limited(
        &self,
        command: &str,
        fut: impl std::future::Future<Output = Result<Value, QmpError>>,
    ) -> Result<Value, QmpError> {
        let shared = &self.handle.shared;
        let mut wait = match shared.reply_limit_ms.load(Ordering::Relaxed) {
            0 => return fut.await,
            ms => Duration::from_millis(ms),
        };
        if shared.stalled.load(Ordering::Relaxed) {
            wait = wait.min(STALLED_WAIT);
        }
        match tokio::time::timeout(wait, fut).await {
            Ok(r) => r,
            Err(_) => {
                shared.stalled.store(true, Ordering::Relaxed);
                Err(QmpError::Timeout(command.to_string()))
            }
        }
    }

    /// Like [`Qmp::execute`], failing with [`QmpError::Timeout`] if no reply comes within
    /// `timeout`. A reply arriving later is ignored. If the timeout strikes while the
    /// command is only partly written (QEMU stopped reading), the connection is closed,
    /// since the stream could not be resynchronized.
    pub async fn execute_timeout(
        &self,
        command: &str,
        args: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, QmpError> {
        match tokio::time::timeout(timeout, self.run(command, args, None)).await {
            Ok(r) => r,
            Err(_) => Err(QmpError::Timeout(command.to_string())),
        }
    }

    /// Runs a command with `fd` attached via `SCM_RIGHTS`, in the same `sendmsg` as the
    /// start of the command's JSON (for `getfd` / `add-fd`), e.g.
    /// `execute_with_fd("getfd", Some(json!({"fdname": "tap0"})), fd)`. The caller keeps
    /// its fd; QEMU gets its own copy.
    pub async fn execute_with_fd(
        &self,
        command: &str,
        args: Option<Value>,
        fd: BorrowedFd<'_>,
    ) -> Result<Value, QmpError> {
        self.limited(command, self.run(command, args, Some(fd)))
            .await
    }

    /// Resolves when the connection is gone (QEMU exited or closed the monitor, or a
    /// fatal error closed it).
    pub async fn closed(&self) {
        let mut rx = self.handle.shared.closed.subscribe();
        // An error means the sender is gone, which also means closed.
        let _ = rx.wait_for(|closed| *closed).await;
    }

    /// Whether the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.handle.shared.is_closed()
    }

    async fn run(
        &self,
        command: &str,
        args: Option<Value>,
        fd: Option<BorrowedFd<'_>>,
    ) -> Result<Value, QmpError> {
        let shared = &*self.handle.shared;
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let mut msg = Map::new();
        msg.insert("execute".into(), Value::String(command.to_string()));
        match args {
            None => {}
            Some(a @ Value::Object(_)) => {
                msg.insert("arguments".into(), a);
            }
            Some(_) => {
                return Err(QmpError::Protocol(format!(
                    "arguments of '{command}' must be a JSON object"
                )))
            }
        }
        msg.insert("id".into(), Value::from(id));
        let mut line = serde_json::to_vec(&Value::Object(msg))
            .map_err(|e| QmpError::Protocol(format!("cannot encode '{command}': {e}")))?;
        line.push(b'\n');

        let (tx, rx) = oneshot::channel();
        shared.register(id, tx)?;
        let _entry = PendingEntry { shared, id };
        shared.send(&line, fd).await?;
        match rx.await {
            Ok(r) => r,
            Err(_) => Err(QmpError::Closed),
        }
    }
}

/// `fut` bounded by `deadline` (None: unbounded); None if the deadline passed.
async fn until<F: std::future::Future>(deadline: Option<Instant>, fut: F) -> Option<F::Output> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, fut).await.ok(),
        None => Some(fut.await),
    }
}

/// The task that reads the socket, splits lines and dispatches messages.
struct Reader {
    shared: Arc<Shared>,
    greeting: Option<oneshot::Sender<Result<Greeting, QmpError>>>,
    events: mpsc::UnboundedSender<Event>,
    max_line: usize,
}

impl Reader {
    async fn run(mut self) {
        let reason = self.read_lines().await;
        if let Some(g) = self.greeting.take() {
            let _ = g.send(Err(reason.to_error()));
        }
        self.shared.close(reason);
        // Dropping `self.events` ends the event receiver.
    }

    async fn read_lines(&mut self) -> CloseReason {
        let shared = self.shared.clone();
        let stream = &shared.stream;
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; READ_CHUNK];
        // buf[..scanned] is known to hold no newline.
        let mut scanned = 0;
        loop {
            if buf.len() > self.max_line {
                return CloseReason::TooLarge;
            }
            // Never buffer more than one byte past the limit.
            let room = (self.max_line + 1 - buf.len()).min(chunk.len());
            let n = match stream.readable().await {
                Err(e) => return CloseReason::Io(e.kind(), e.to_string()),
                Ok(()) => match stream.try_read(&mut chunk[..room]) {
                    Ok(n) => n,
                    Err(e)
                        if e.kind() == io::ErrorKind::WouldBlock
                            || e.kind() == io::ErrorKind::Interrupted =>
                    {
                        continue
                    }
                    Err(e) if is_disconnect(&e) => return CloseReason::Eof,
                    Err(e) => return CloseReason::Io(e.kind(), e.to_string()),
                },
            };
            if n == 0 {
                // A partial last line is dropped: QEMU never finished it.
                return CloseReason::Eof;
            }
            buf.extend_from_slice(&chunk[..n]);
            let mut start = 0;
            while let Some(pos) = buf[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + pos;
                if end - start > self.max_line {
                    return CloseReason::TooLarge;
                }
                if let Some(fatal) = self.handle_line(&buf[start..end]) {
                    return fatal;
                }
                start = end + 1;
                scanned = start;
            }
            buf.drain(..start);
            scanned = buf.len();
            // Give back the memory of an unusually long line.
            if buf.capacity() > 4 * READ_CHUNK && buf.len() <= READ_CHUNK {
                buf.shrink_to(READ_CHUNK);
            }
        }
    }

    /// Dispatches one line; Some(reason) if the connection must end.
    fn handle_line(&mut self, line: &[u8]) -> Option<CloseReason> {
        let line = line.trim_ascii();
        if line.is_empty() {
            return None;
        }
        let obj = match serde_json::from_slice::<Value>(line) {
            Ok(Value::Object(obj)) => Some(obj),
            _ => None,
        };
        if let Some(greet) = self.greeting.take() {
            // The first message must be the greeting.
            return match obj
                .as_ref()
                .ok_or("not a JSON object".to_string())
                .and_then(parse_greeting)
            {
                Ok(g) => {
                    let _ = greet.send(Ok(g));
                    None
                }
                Err(e) => {
                    self.greeting = Some(greet);
                    Some(CloseReason::Protocol(format!("bad QMP greeting: {e}")))
                }
            };
        }
        // Not JSON, or JSON but not an object: ignored.
        let mut obj = obj?;
        if obj.contains_key("event") {
            if let Some(ev) = parse_event(obj) {
                // The receiver may have been dropped: then nobody wants events.
                let _ = self.events.send(ev);
            }
        } else if obj.contains_key("return") || obj.contains_key("error") {
            // A reply without a numeric id of ours (or whose command gave up) is ignored.
            // QEMU answers again (if late).
            self.shared.stalled.store(false, Ordering::Relaxed);
            let id = obj.get("id").and_then(Value::as_u64)?;
            let tx = self.shared.take_pending(id)?;
            let _ = tx.send(parse_reply(&mut obj));
        }
        // Anything else (another greeting, unknown members) is ignored.
        None
    }
}

fn parse_greeting(obj: &Map<String, Value>) -> Result<Greeting, String> {
    let qmp = obj
        .get("QMP")
        .and_then(Value::as_object)
        .ok_or("no \"QMP\" object")?;
    let version = qmp
        .get("version")
        .and_then(Value::as_object)
        .ok_or("no \"version\" object")?;
    let qemu = version
        .get("qemu")
        .and_then(Value::as_object)
        .ok_or("no \"version\".\"qemu\" object")?;
    let num = |name: &str| -> Result<u32, String> {
        qemu.get(name)
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or(format!("bad version member \"{name}\""))
    };
    let package = version
        .get("package")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let capabilities = qmp
        .get("capabilities")
        .and_then(Value::as_array)
        .map(|caps| {
            caps.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(Greeting {
        version: (num("major")?, num("minor")?, num("micro")?),
        package,
        capabilities,
    })
}

fn parse_event(mut obj: Map<String, Value>) -> Option<Event> {
    let name = match obj.remove("event") {
        Some(Value::String(s)) => s,
        _ => return None,
    };
    let data = obj.remove("data").unwrap_or(Value::Null);
    let ts = obj.get("timestamp");
    let field = |f: &str| {
        ts.and_then(|t| t.get(f))
            .and_then(Value::as_i64)
            .unwrap_or(-1)
    };
    Some(Event {
        name,
        data,
        seconds: field("seconds"),
        microseconds: field("microseconds"),
    })
}

fn parse_reply(obj: &mut Map<String, Value>) -> Reply {
    match (obj.remove("return"), obj.remove("error")) {
        (Some(ret), None) => Ok(ret),
        (None, Some(Value::Object(err))) => {
            match (
                err.get("class").and_then(Value::as_str),
                err.get("desc").and_then(Value::as_str),
            ) {
                (Some(class), Some(desc)) => Err(QmpError::Command {
                    class: class.to_string(),
                    desc: desc.to_string(),
                }),
                _ => Err(QmpError::Protocol(
                    "error reply without string \"class\" and \"desc\"".into(),
                )),
            }
        }
        (None, Some(_)) => Err(QmpError::Protocol(
            "\"error\" member is not an object".into(),
        )),
        _ => Err(QmpError::Protocol(
            "reply has both \"return\" and \"error\"".into(),
        )),
    }
}
