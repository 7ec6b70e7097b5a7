//! Tests against a fake QMP server on a socketpair.

use super::*;
use serde_json::json;
use std::os::fd::{AsFd, OwnedFd};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7"}, "capabilities": ["oob"]}}"#;
const T: Duration = Duration::from_secs(10);

/// The server end of the socketpair.
struct Fake {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
}

impl Fake {
    fn new(s: UnixStream) -> Fake {
        let (r, w) = s.into_split();
        Fake {
            r: BufReader::new(r),
            w,
        }
    }

    /// Sends one line, terminated like QEMU does (CRLF).
    async fn send(&mut self, line: &str) {
        self.w.write_all(line.as_bytes()).await.unwrap();
        self.w.write_all(b"\r\n").await.unwrap();
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).await.unwrap();
    }

    /// Reads one command; None at EOF.
    async fn recv(&mut self) -> Option<Value> {
        let mut line = String::new();
        let n = tokio::time::timeout(T, self.r.read_line(&mut line))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            return None;
        }
        assert!(line.ends_with('\n'), "unterminated command {line:?}");
        Some(serde_json::from_str(&line).unwrap())
    }

    async fn reply(&mut self, cmd: &Value, ret: Value) {
        let line = json!({"return": ret, "id": cmd["id"].clone()}).to_string();
        self.send(&line).await;
    }

    /// Greets and accepts qmp_capabilities.
    async fn greet(&mut self) {
        self.send(GREETING).await;
        let cmd = self.recv().await.unwrap();
        assert_eq!(cmd["execute"], "qmp_capabilities");
        assert!(cmd.get("arguments").is_none());
        assert!(cmd["id"].is_u64());
        self.reply(&cmd, json!({})).await;
    }
}

async fn connect_with_limit(limit: usize) -> (Qmp, Greeting, mpsc::UnboundedReceiver<Event>, Fake) {
    let (a, b) = UnixStream::pair().unwrap();
    let server = tokio::spawn(async move {
        let mut fake = Fake::new(b);
        fake.greet().await;
        fake
    });
    let (qmp, greeting, events) = Qmp::handshake_with_limit(a, T, limit).await.unwrap();
    let fake = server.await.unwrap();
    (qmp, greeting, events, fake)
}

async fn connect() -> (Qmp, Greeting, mpsc::UnboundedReceiver<Event>, Fake) {
    connect_with_limit(MAX_LINE).await
}

async fn within<F: std::future::Future>(fut: F) -> F::Output {
    tokio::time::timeout(T, fut)
        .await
        .expect("test step timed out")
}

#[test]
fn qmp_is_send_sync() {
    fn check<T: Send + Sync + Clone>() {}
    check::<Qmp>();
}

#[tokio::test]
async fn handshake_parses_greeting() {
    let (qmp, greeting, _events, _fake) = connect().await;
    assert_eq!(
        greeting,
        Greeting {
            version: (7, 2, 22),
            package: "Debian 1:7.2+dfsg-7".into(),
            capabilities: vec!["oob".into()],
        }
    );
    assert!(!qmp.is_closed());
}

#[tokio::test]
async fn handshake_times_out_without_greeting() {
    let (a, _b) = UnixStream::pair().unwrap();
    let err = Qmp::handshake(a, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(
        matches!(err, QmpError::Timeout(ref w) if w == "greeting"),
        "{err:?}"
    );
}

#[tokio::test]
async fn handshake_times_out_without_capabilities_reply() {
    let (a, b) = UnixStream::pair().unwrap();
    let server = tokio::spawn(async move {
        let mut fake = Fake::new(b);
        fake.send(GREETING).await;
        fake.recv().await.unwrap();
        // Never answers; sees EOF once the client gives up.
        assert!(fake.recv().await.is_none());
    });
    let err = Qmp::handshake(a, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(
        matches!(err, QmpError::Timeout(ref w) if w == "qmp_capabilities"),
        "{err:?}"
    );
    within(server).await.unwrap();
}

#[tokio::test]
async fn handshake_eof_before_greeting() {
    let (a, b) = UnixStream::pair().unwrap();
    drop(b);
    let err = Qmp::handshake(a, T).await.unwrap_err();
    assert!(matches!(err, QmpError::Closed), "{err:?}");
}

#[tokio::test]
async fn handshake_rejects_bad_greetings() {
    for bad in [
        "garbage",
        r#"{"return": {}}"#,
        r#"{"QMP": {"version": {"qemu": {"major": 7, "minor": 2}}}}"#,
        r#"{"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 99999999999}}}}"#,
        r#"{"QMP": {"version": {"qemu": {"major": -1, "minor": 2, "micro": 0}}}}"#,
    ] {
        let (a, b) = UnixStream::pair().unwrap();
        let mut fake = Fake::new(b);
        fake.send(bad).await;
        let err = Qmp::handshake(a, T).await.unwrap_err();
        assert!(matches!(err, QmpError::Protocol(_)), "{bad}: {err:?}");
        // The client hung up.
        assert!(fake.recv().await.is_none());
    }
}

#[tokio::test]
async fn handshake_minimal_greeting() {
    let (a, b) = UnixStream::pair().unwrap();
    let server = tokio::spawn(async move {
        let mut fake = Fake::new(b);
        fake.send(r#"{"QMP":{"version":{"qemu":{"major":9,"minor":0,"micro":1}}}}"#)
            .await;
        let cmd = fake.recv().await.unwrap();
        fake.reply(&cmd, json!({})).await;
        fake
    });
    let (_qmp, g, _ev) = Qmp::handshake(a, T).await.unwrap();
    assert_eq!(g.version, (9, 0, 1));
    assert_eq!(g.package, "");
    assert!(g.capabilities.is_empty());
    server.await.unwrap();
}

#[tokio::test]
async fn handshake_capabilities_error() {
    let (a, b) = UnixStream::pair().unwrap();
    tokio::spawn(async move {
        let mut fake = Fake::new(b);
        fake.send(GREETING).await;
        let cmd = fake.recv().await.unwrap();
        let line = json!({"error": {"class": "CommandNotFound", "desc": "nope"}, "id": cmd["id"]});
        fake.send(&line.to_string()).await;
        fake.recv().await;
    });
    let err = Qmp::handshake(a, T).await.unwrap_err();
    match err {
        QmpError::Command { class, desc } => {
            assert_eq!(class, "CommandNotFound");
            assert_eq!(desc, "nope");
        }
        e => panic!("{e:?}"),
    }
}

#[tokio::test]
async fn command_without_and_with_arguments() {
    let (qmp, _g, _ev, mut fake) = connect().await;
    let server = tokio::spawn(async move {
        let cmd = fake.recv().await.unwrap();
        assert_eq!(cmd["execute"], "query-status");
        assert!(cmd.get("arguments").is_none());
        fake.reply(&cmd, json!({"status": "prelaunch", "running": false}))
            .await;
        let cmd = fake.recv().await.unwrap();
        assert_eq!(cmd["execute"], "getfd");
        assert_eq!(cmd["arguments"], json!({"fdname": "x\"y\n"}));
        fake.reply(&cmd, json!({})).await;
        fake
    });
    let st = within(qmp.execute("query-status", None)).await.unwrap();
    assert_eq!(st["status"], "prelaunch");
    let r = within(qmp.execute("getfd", Some(json!({"fdname": "x\"y\n"}))))
        .await
        .unwrap();
    assert_eq!(r, json!({}));
    server.await.unwrap();
}

#[tokio::test]
async fn non_object_arguments_are_refused_locally() {
    let (qmp, _g, _ev, _fake) = connect().await;
    let err = qmp.execute("x", Some(json!([1, 2]))).await.unwrap_err();
    assert!(matches!(err, QmpError::Protocol(_)), "{err:?}");
    assert!(!qmp.is_closed());
}

#[tokio::test]
async fn concurrent_commands_answered_out_of_order() {
    const N: usize = 32;
    let (qmp, _g, _ev, mut fake) = connect().await;
    let server = tokio::spawn(async move {
        let mut cmds = Vec::new();
        for _ in 0..N {
            cmds.push(fake.recv().await.unwrap());
        }
        let mut ids: Vec<u64> = cmds.iter().map(|c| c["id"].as_u64().unwrap()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), N, "ids must be unique");
        // Reverse order, each answer naming its command's argument.
        for cmd in cmds.iter().rev() {
            fake.reply(cmd, json!({"echo": cmd["arguments"]["n"]}))
                .await;
        }
        fake
    });
    let mut tasks = Vec::new();
    for n in 0..N {
        let qmp = qmp.clone();
        tasks.push(tokio::spawn(async move {
            let r = qmp.execute("echo", Some(json!({ "n": n }))).await.unwrap();
            assert_eq!(r["echo"], json!(n));
        }));
    }
    for t in tasks {
        within(t).await.unwrap();
    }
    server.await.unwrap();
}

#[tokio::test]
async fn error_reply() {
    let (qmp, _g, _ev, mut fake) = connect().await;
    tokio::spawn(async move {
        let cmd = fake.recv().await.unwrap();
        let line = json!({"id": cmd["id"], "error": {"class": "GenericError", "desc": "No file descriptor supplied via SCM_RIGHTS"}});
        fake.send(&line.to_string()).await;
        let cmd = fake.recv().await.unwrap();
        fake.send(&json!({"id": cmd["id"], "error": "just a string"}).to_string())
            .await;
        let cmd = fake.recv().await.unwrap();
        fake.send(&json!({"id": cmd["id"], "error": {"class": 3}}).to_string())
            .await;
        let cmd = fake.recv().await.unwrap();
        fake.send(&json!({"id": cmd["id"], "return": 1, "error": {}}).to_string())
            .await;
        fake.recv().await;
    });
    match within(qmp.execute("getfd", Some(json!({"fdname": "a"})))).await {
        Err(QmpError::Command { class, desc }) => {
            assert_eq!(class, "GenericError");
            assert_eq!(desc, "No file descriptor supplied via SCM_RIGHTS");
        }
        r => panic!("{r:?}"),
    }
    for _ in 0..3 {
        let r = within(qmp.execute("x", None)).await;
        assert!(matches!(r, Err(QmpError::Protocol(_))), "{r:?}");
    }
    // Malformed replies fail their command, not the connection.
    assert!(!qmp.is_closed());
}

#[tokio::test]
async fn events_are_delivered_in_order_between_replies() {
    let (qmp, _g, mut events, mut fake) = connect().await;
    tokio::spawn(async move {
        let cmd = fake.recv().await.unwrap();
        fake.send(
            r#"{"timestamp": {"seconds": 1700000000, "microseconds": 5}, "event": "RESUME"}"#,
        )
        .await;
        fake.reply(&cmd, json!({})).await;
        fake.send(r#"{"timestamp": {"seconds": 1700000001, "microseconds": 6}, "event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}}"#)
            .await;
        // No timestamp, and a non-string event name (ignored).
        fake.send(r#"{"event": 5}"#).await;
        fake.send(r#"{"event": "STOP"}"#).await;
        fake.recv().await;
    });
    within(qmp.execute("cont", None)).await.unwrap();
    let e = within(events.recv()).await.unwrap();
    assert_eq!(
        e,
        Event {
            name: "RESUME".into(),
            data: Value::Null,
            seconds: 1700000000,
            microseconds: 5
        }
    );
    let e = within(events.recv()).await.unwrap();
    assert_eq!(e.name, "SHUTDOWN");
    assert_eq!(e.data["reason"], "host-qmp-quit");
    assert_eq!((e.seconds, e.microseconds), (1700000001, 6));
    let e = within(events.recv()).await.unwrap();
    assert_eq!(e.name, "STOP");
    assert_eq!((e.seconds, e.microseconds), (-1, -1));
}

#[tokio::test]
async fn dropped_event_receiver_is_harmless() {
    let (qmp, _g, events, mut fake) = connect().await;
    drop(events);
    tokio::spawn(async move {
        let cmd = fake.recv().await.unwrap();
        fake.send(r#"{"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 2}}"#)
            .await;
        fake.reply(&cmd, json!(7)).await;
        fake.recv().await;
    });
    assert_eq!(within(qmp.execute("stop", None)).await.unwrap(), json!(7));
}

#[tokio::test]
async fn eof_fails_pending_commands_and_ends_events() {
    let (qmp, _g, mut events, mut fake) = connect().await;
    let server = tokio::spawn(async move {
        for _ in 0..3 {
            fake.recv().await.unwrap();
        }
        fake.send(r#"{"event": "SHUTDOWN", "data": {}}"#).await;
        // A half-written last line, then EOF.
        fake.send_raw(br#"{"return": {}, "#).await;
        drop(fake);
    });
    let q = &qmp;
    let (a, b, c) = within(async {
        tokio::join!(
            q.execute("a", None),
            q.execute("b", None),
            q.execute_timeout("c", None, T)
        )
    })
    .await;
    for r in [a, b, c] {
        assert!(matches!(r, Err(QmpError::Closed)), "{r:?}");
    }
    server.await.unwrap();
    within(qmp.closed()).await;
    assert!(qmp.is_closed());
    assert_eq!(within(events.recv()).await.unwrap().name, "SHUTDOWN");
    assert!(within(events.recv()).await.is_none());
    // Later commands fail at once.
    assert!(matches!(
        qmp.execute("d", None).await,
        Err(QmpError::Closed)
    ));
    // closed() keeps resolving.
    within(qmp.closed()).await;
}

#[tokio::test]
async fn closed_waits_for_the_end() {
    let (qmp, _g, _ev, fake) = connect().await;
    let waiting = tokio::time::timeout(Duration::from_millis(100), qmp.closed()).await;
    assert!(waiting.is_err(), "closed() resolved on a live connection");
    let q = qmp.clone();
    let waiter = tokio::spawn(async move { q.closed().await });
    drop(fake);
    within(waiter).await.unwrap();
}

#[tokio::test]
async fn dropping_the_client_hangs_up() {
    let (qmp, _g, mut events, mut fake) = connect().await;
    let other = qmp.clone();
    drop(qmp);
    // Still one clone alive: the connection stays.
    assert!(!other.is_closed());
    drop(other);
    assert!(within(fake.recv()).await.is_none());
    assert!(within(events.recv()).await.is_none());
}

#[tokio::test]
async fn oversized_line_closes_connection() {
    const LIMIT: usize = 1024;
    let (qmp, _g, mut events, mut fake) = connect_with_limit(LIMIT).await;
    let (pad_tx, pad_rx) = oneshot::channel();
    let server = tokio::spawn(async move {
        let cmd = fake.recv().await.unwrap();
        // Exactly at the limit (without the terminator): accepted.
        let line = json!({"return": "", "id": cmd["id"]}).to_string();
        let pad = "x".repeat(LIMIT - line.len());
        pad_tx.send(pad.len()).unwrap();
        let line = json!({"return": pad, "id": cmd["id"]}).to_string();
        assert_eq!(line.len(), LIMIT);
        fake.send_raw(line.as_bytes()).await;
        fake.send_raw(b"\n").await;
        let _cmd = fake.recv().await.unwrap();
        // One byte over, never terminated: the client must give up without the rest.
        fake.send_raw(&vec![b' '; LIMIT + 1]).await;
        // The client hangs up.
        assert!(fake.recv().await.is_none());
    });
    let r = within(qmp.execute("a", None)).await.unwrap();
    assert_eq!(r.as_str().map(str::len), Some(pad_rx.await.unwrap()));
    let r = within(qmp.execute("b", None)).await;
    assert!(matches!(r, Err(QmpError::TooLarge)), "{r:?}");
    within(qmp.closed()).await;
    assert!(within(events.recv()).await.is_none());
    within(server).await.unwrap();
    assert!(matches!(
        qmp.execute("c", None).await,
        Err(QmpError::Closed)
    ));
}

#[tokio::test]
async fn oversized_line_at_default_limit() {
    let (qmp, _g, _ev, mut fake) = connect().await;
    let server = tokio::spawn(async move {
        fake.recv().await.unwrap();
        fake.send_raw(b"{\"return\": \"").await;
        // Writes fail once the client hangs up; that is expected.
        let big = vec![b'a'; 1024 * 1024];
        for _ in 0..17 {
            if fake.w.write_all(&big).await.is_err() {
                break;
            }
        }
        fake
    });
    let r = within(qmp.execute("a", None)).await;
    assert!(matches!(r, Err(QmpError::TooLarge)), "{r:?}");
    within(server).await.unwrap();
}

#[tokio::test]
async fn garbage_is_ignored() {
    let (qmp, _g, mut events, mut fake) = connect().await;
    let server = tokio::spawn(async move {
        let cmd = fake.recv().await.unwrap();
        let id = cmd["id"].as_u64().unwrap();
        let deep = "[".repeat(100_000);
        let lines: Vec<Vec<u8>> = vec![
            b"not json".to_vec(),
            b"".to_vec(),
            b"   \t".to_vec(),
            b"[1, 2, 3]".to_vec(),
            b"42".to_vec(),
            b"{}".to_vec(),
            b"{\"foo\": 1}".to_vec(),
            b"{\"return\": 1}".to_vec(),
            b"{\"return\": 1, \"id\": \"zzz\"}".to_vec(),
            b"{\"return\": 1, \"id\": -4}".to_vec(),
            b"{\"return\": 1, \"id\": 1.5}".to_vec(),
            format!("{{\"return\": 1, \"id\": {}}}", id + 1000).into_bytes(),
            b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error\"}}".to_vec(),
            deep.into_bytes(),
            vec![0xff, 0xfe, b'{', 0x80],
            b"{\"return\": \"\xff\"".to_vec(),
            GREETING.as_bytes().to_vec(),
            b"{\"event\": null}".to_vec(),
        ];
        for l in &lines {
            fake.send_raw(l).await;
            fake.send_raw(b"\r\n").await;
        }
        fake.reply(&cmd, json!("ok")).await;
        fake.send(r#"{"event": "STOP"}"#).await;
        fake
    });
    assert_eq!(within(qmp.execute("a", None)).await.unwrap(), json!("ok"));
    assert_eq!(within(events.recv()).await.unwrap().name, "STOP");
    assert!(!qmp.is_closed());
    server.await.unwrap();
}

#[tokio::test]
async fn timeout_then_late_reply_is_ignored() {
    let (qmp, _g, _ev, mut fake) = connect().await;
    let server = tokio::spawn(async move {
        let slow = fake.recv().await.unwrap();
        assert_eq!(slow["execute"], "slow");
        let fast = fake.recv().await.unwrap();
        assert_eq!(fast["execute"], "fast");
        // The answer to the abandoned command comes first and must not be taken for the
        // answer of the next one.
        fake.reply(&slow, json!("slow")).await;
        fake.reply(&fast, json!("fast")).await;
        fake
    });
    let r = qmp
        .execute_timeout("slow", None, Duration::from_millis(100))
        .await;
    assert!(
        matches!(r, Err(QmpError::Timeout(ref c)) if c == "slow"),
        "{r:?}"
    );
    assert_eq!(
        within(qmp.execute("fast", None)).await.unwrap(),
        json!("fast")
    );
    assert!(qmp.handle.shared.state().pending.is_empty());
    server.await.unwrap();
}

#[tokio::test]
async fn a_reply_limit_bounds_every_command() {
    let (qmp, _g, _ev, mut fake) = connect().await;
    qmp.set_reply_limit(Some(Duration::from_millis(100)));
    let server = tokio::spawn(async move {
        // QEMU reads "stop" and never answers it (it was stopped); then it answers again.
        let _stop = fake.recv().await.unwrap();
        let next = fake.recv().await.unwrap();
        fake.reply(&next, json!({"status": "running"})).await;
        fake
    });
    let r = within(qmp.execute("stop", None)).await;
    assert!(
        matches!(r, Err(QmpError::Timeout(ref c)) if c == "stop"),
        "{r:?}"
    );
    assert!(qmp.handle.shared.stalled.load(Ordering::Relaxed));
    qmp.set_reply_limit(None);
    assert_eq!(
        within(qmp.execute("query-status", None)).await.unwrap(),
        json!({"status": "running"})
    );
    // The answer ends the stall.
    assert!(!qmp.handle.shared.stalled.load(Ordering::Relaxed));
    assert!(qmp.handle.shared.state().pending.is_empty());
    server.await.unwrap();
}

#[tokio::test]
async fn cancelled_command_leaves_no_pending_entry() {
    let (qmp, _g, _ev, mut fake) = connect().await;
    {
        let fut = qmp.execute("x", None);
        tokio::pin!(fut);
        assert!(tokio::time::timeout(Duration::from_millis(50), &mut fut)
            .await
            .is_err());
        assert_eq!(qmp.handle.shared.state().pending.len(), 1);
    }
    assert!(qmp.handle.shared.state().pending.is_empty());
    let cmd = fake.recv().await.unwrap();
    fake.reply(&cmd, json!(1)).await;
    // Still usable.
    let server = tokio::spawn(async move {
        let cmd = fake.recv().await.unwrap();
        fake.reply(&cmd, json!(2)).await;
        fake
    });
    assert_eq!(within(qmp.execute("y", None)).await.unwrap(), json!(2));
    server.await.unwrap();
}

#[tokio::test]
async fn timeout_during_a_stuck_write_closes_the_connection() {
    // The server never reads: eventually the socket buffer fills and a write is stuck
    // part-way. The stream can no longer be trusted, so the client hangs up.
    let (qmp, _g, _ev, fake) = connect().await;
    let big = json!({ "pad": "p".repeat(8 * 1024 * 1024) });
    let r = qmp
        .execute_timeout("big", Some(big), Duration::from_millis(300))
        .await;
    assert!(matches!(r, Err(QmpError::Timeout(_))), "{r:?}");
    within(qmp.closed()).await;
    assert!(matches!(
        qmp.execute("x", None).await,
        Err(QmpError::Closed)
    ));
    drop(fake);
}

/// Reads from `s` until a newline, returning the bytes and, for each fd received, the
/// offset of the data it arrived with.
async fn recv_with_fds(s: &UnixStream) -> (Vec<u8>, Vec<(usize, OwnedFd)>) {
    let mut data = Vec::new();
    let mut fds = Vec::new();
    while !data.contains(&b'\n') {
        let mut buf = [0u8; 4096];
        let (n, got) = within(s.async_io(Interest::READABLE, || {
            vireo_fdpass::recv(s.as_fd(), &mut buf)
        }))
        .await
        .unwrap();
        assert!(n > 0, "EOF");
        for fd in got {
            fds.push((data.len(), fd));
        }
        data.extend_from_slice(&buf[..n]);
    }
    (data, fds)
}

#[tokio::test]
async fn execute_with_fd_passes_the_fd_with_the_command() {
    let (a, b) = UnixStream::pair().unwrap();
    let server = tokio::spawn(async move {
        let mut b = b;
        b.write_all(GREETING.as_bytes()).await.unwrap();
        b.write_all(b"\r\n").await.unwrap();
        let (cap, fds) = recv_with_fds(&b).await;
        assert!(fds.is_empty());
        let cap: Value = serde_json::from_slice(&cap).unwrap();
        b.write_all(format!("{{\"return\": {{}}, \"id\": {}}}\n", cap["id"]).as_bytes())
            .await
            .unwrap();

        let (line, mut fds) = recv_with_fds(&b).await;
        let cmd: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(cmd["execute"], "getfd");
        assert_eq!(cmd["arguments"]["fdname"], "tap0");
        assert_eq!(fds.len(), 1, "exactly one fd");
        let (offset, fd) = fds.pop().unwrap();
        assert_eq!(
            offset, 0,
            "the fd arrives with the first byte of the command"
        );
        // The fd works: write through it.
        let mut f = std::fs::File::from(fd);
        std::io::Write::write_all(&mut f, b"hello").unwrap();
        drop(f);
        b.write_all(format!("{{\"return\": {{}}, \"id\": {}}}\n", cmd["id"]).as_bytes())
            .await
            .unwrap();
        // Then a plain command carries no fd.
        let (_line, fds) = recv_with_fds(&b).await;
        assert!(fds.is_empty());
        b
    });
    let (qmp, _g, _ev) = Qmp::handshake(a, T).await.unwrap();
    let (mine, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let r = within(qmp.execute_with_fd("getfd", Some(json!({"fdname": "tap0"})), theirs.as_fd()))
        .await
        .unwrap();
    assert_eq!(r, json!({}));
    drop(theirs);
    let mut mine = mine;
    let mut got = [0u8; 5];
    std::io::Read::read_exact(&mut mine, &mut got).unwrap();
    assert_eq!(&got, b"hello");
    let _pending = qmp
        .execute_timeout("x", None, Duration::from_millis(10))
        .await;
    let mut b = within(server).await.unwrap();
    // Nothing else was sent.
    drop(qmp);
    let mut rest = Vec::new();
    within(b.read_to_end(&mut rest)).await.unwrap();
    assert!(rest.is_empty());
}

#[tokio::test]
async fn write_after_peer_close_is_closed_not_sigpipe() {
    let (qmp, _g, _ev, fake) = connect().await;
    drop(fake);
    within(qmp.closed()).await;
    let r = qmp.execute("x", None).await;
    assert!(matches!(r, Err(QmpError::Closed)), "{r:?}");
}
