//! Hostile and heavy clients: malformed frames affect only their own connection, many
//! concurrent clients all get answers, limits hold, keepalive works, SIGTERM is clean.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use vireo_proto::header::{encode_frame, Header};
use vireo_proto::remote::procs;
use vireo_proto::{MessageType, RemoteError, Status, REMOTE_PROGRAM};
use vireo_tests::{ok, Daemon};

fn call(prog: u32, vers: u32, proc_: i32, serial: u32, payload: &[u8]) -> Vec<u8> {
    encode_frame(&Header::call(prog, vers, proc_, serial), payload)
}

fn connect(d: &Daemon) -> UnixStream {
    let s = UnixStream::connect(d.socket()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads one frame; None when the daemon closed the connection.
fn read_frame(s: &mut UnixStream) -> Option<(Header, Vec<u8>)> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let n = u32::from_be_bytes(len) as usize;
    let mut f = vec![0u8; n - 4];
    s.read_exact(&mut f).ok()?;
    let h = Header::decode(f[..24].try_into().unwrap());
    Some((h, f[24..].to_vec()))
}

fn expect_error(s: &mut UnixStream, serial: u32, text: &str) {
    let (h, p) = read_frame(s).expect("an error reply, not a closed connection");
    assert_eq!(h.serial, serial);
    assert_eq!(h.mtype, MessageType::Reply as i32);
    assert_eq!(h.status, Status::Error as i32);
    let e: RemoteError = vireo_xdr::from_bytes(&p).unwrap();
    assert!(e.text().contains(text), "{:?} lacks {text:?}", e.text());
}

fn expect_closed(s: &mut UnixStream) {
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("connection should be closed, got {other:?}"),
    }
}

/// Another client still gets served.
fn still_serving(d: &Daemon) {
    let out = ok(&d.virsh(&["list", "--all"]));
    assert!(out.contains("Id"), "{out}");
}

#[test]
fn malformed_frames_hurt_only_their_sender() {
    let d = Daemon::start();
    // A bystander connection that stays open throughout.
    let mut bystander = connect(&d);
    bystander
        .write_all(&call(REMOTE_PROGRAM, 1, procs::AUTH_LIST, 0, &[]))
        .unwrap();
    assert!(read_frame(&mut bystander).is_some());

    // Length word too big (32 MiB + 5): closed before anything is allocated for it.
    let mut s = connect(&d);
    s.write_all(&0x0200_0005u32.to_be_bytes()).unwrap();
    expect_closed(&mut s);
    still_serving(&d);

    // Length word too small for even itself, and too small for a header.
    for n in [0u32, 3, 20] {
        let mut s = connect(&d);
        s.write_all(&n.to_be_bytes()).unwrap();
        // The daemon may already have hung up after the length word.
        let _ = s.write_all(&[0u8; 24]);
        expect_closed(&mut s);
        still_serving(&d);
    }

    // Unknown program and wrong version: an error reply, and the connection goes on.
    let mut s = connect(&d);
    s.write_all(&call(0x1234_5678, 1, 1, 5, &[])).unwrap();
    expect_error(&mut s, 5, "Cannot find program");
    s.write_all(&call(REMOTE_PROGRAM, 2, 1, 6, &[])).unwrap();
    expect_error(&mut s, 6, "Cannot find program");
    // Unknown procedure.
    s.write_all(&call(REMOTE_PROGRAM, 1, 9999, 7, &[])).unwrap();
    expect_error(&mut s, 7, "unknown procedure: 9999");
    // Truncated payload: SUPPORTS_FEATURE needs 4 bytes of args.
    s.write_all(&call(
        REMOTE_PROGRAM,
        1,
        procs::CONNECT_SUPPORTS_FEATURE,
        8,
        &[0, 0],
    ))
    .unwrap();
    expect_error(&mut s, 8, "Unable to decode");
    // Trailing garbage after valid args.
    s.write_all(&call(
        REMOTE_PROGRAM,
        1,
        procs::CONNECT_SUPPORTS_FEATURE,
        9,
        &[0, 0, 0, 10, 0xde, 0xad, 0xbe, 0xef],
    ))
    .unwrap();
    expect_error(&mut s, 9, "trailing bytes");
    // A string claiming 4 GiB.
    s.write_all(&call(
        REMOTE_PROGRAM,
        1,
        procs::CONNECT_OPEN,
        10,
        &[0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0],
    ))
    .unwrap();
    expect_error(&mut s, 10, "Unable to decode");
    // A CALL with a bad status, and a bad message type.
    let mut f = call(REMOTE_PROGRAM, 1, procs::AUTH_LIST, 11, &[]);
    f[27] = 2;
    s.write_all(&f).unwrap();
    expect_error(&mut s, 11, "Unexpected message status");
    let mut f = call(REMOTE_PROGRAM, 1, procs::AUTH_LIST, 12, &[]);
    f[19] = 99;
    s.write_all(&f).unwrap();
    expect_error(&mut s, 12, "Unexpected message type");
    // Calls before CONNECT_OPEN are refused the way libvirtd refuses them.
    s.write_all(&call(REMOTE_PROGRAM, 1, procs::CONNECT_GET_TYPE, 13, &[]))
        .unwrap();
    expect_error(&mut s, 13, "connection not open");
    // After all that, the same connection still works.
    s.write_all(&call(REMOTE_PROGRAM, 1, procs::AUTH_LIST, 14, &[]))
        .unwrap();
    let (h, _) = read_frame(&mut s).unwrap();
    assert_eq!((h.serial, h.status), (14, 0));
    still_serving(&d);

    // Truncated frame: the length promises more than arrives, then the client leaves.
    let mut s = connect(&d);
    let f = call(REMOTE_PROGRAM, 1, procs::AUTH_LIST, 0, &[1, 2, 3, 4]);
    s.write_all(&f[..f.len() - 2]).unwrap();
    drop(s);
    still_serving(&d);

    // Random garbage.
    let mut s = connect(&d);
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let _ = s.write_all(&junk);
    drop(s);
    still_serving(&d);

    // The bystander never noticed.
    bystander
        .write_all(&call(REMOTE_PROGRAM, 1, procs::AUTH_LIST, 1, &[]))
        .unwrap();
    let (h, _) = read_frame(&mut bystander).unwrap();
    assert_eq!((h.serial, h.status), (1, 0));
}

#[test]
fn fifty_clients_a_thousand_calls_each() {
    let d = Daemon::start();
    let uri = d.uri();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let uri = uri.clone();
            tasks.push(tokio::spawn(async move {
                let c = vireo_client::Connect::open(&uri, false).await.unwrap();
                for _ in 0..1000 {
                    assert_eq!(c.get_lib_version().await.unwrap(), 9_000_000);
                }
                c.close().await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[test]
fn max_clients_is_enforced() {
    let mut d = Daemon::start();
    d.terminate();
    d.start_with(&["--max-clients", "2"]);
    let mut a = connect(&d);
    let mut b = connect(&d);
    for s in [&mut a, &mut b] {
        s.write_all(&call(REMOTE_PROGRAM, 1, procs::AUTH_LIST, 0, &[]))
            .unwrap();
        assert!(read_frame(s).is_some());
    }
    let mut c = connect(&d);
    let _ = c.write_all(&call(REMOTE_PROGRAM, 1, procs::AUTH_LIST, 0, &[]));
    expect_closed(&mut c);
    drop(a);
    // Once a slot is free, a new client gets in (the daemon notices the departure first).
    let mut served = false;
    for _ in 0..100 {
        let mut c = connect(&d);
        let _ = c.write_all(&call(REMOTE_PROGRAM, 1, procs::AUTH_LIST, 0, &[]));
        if read_frame(&mut c).is_some() {
            served = true;
            break;
        }
    }
    assert!(served, "no client admitted after one left");
    drop(b);
}

#[test]
fn keepalive_ping_pong() {
    let mut d = Daemon::start();
    d.terminate();
    d.start_with(&["--keepalive-interval", "1", "--keepalive-count", "2"]);
    // A bare PING gets a PONG, even before any other call.
    let mut s = connect(&d);
    let ping = encode_frame(
        &Header::new(0x6b65_6570, 1, 1, MessageType::Message, 0, Status::Ok),
        &[],
    );
    s.write_all(&ping).unwrap();
    let (h, _) = read_frame(&mut s).unwrap();
    assert_eq!((h.prog, h.proc_, h.mtype), (0x6b65_6570, 2, 2));
    // A client that asked for keepalive is pinged when idle …
    s.write_all(&call(
        REMOTE_PROGRAM,
        1,
        procs::CONNECT_SUPPORTS_FEATURE,
        1,
        &[0, 0, 0, 10],
    ))
    .unwrap();
    let (h, p) = read_frame(&mut s).unwrap();
    assert_eq!((h.serial, p), (1, vec![0, 0, 0, 1]));
    let (h, _) = read_frame(&mut s).unwrap();
    assert_eq!((h.prog, h.proc_), (0x6b65_6570, 1), "expected a PING");
    // … and dropped when it never answers.
    let mut closed = false;
    for _ in 0..10 {
        match read_frame(&mut s) {
            Some((h, _)) => assert_eq!(h.proc_, 1),
            None => {
                closed = true;
                break;
            }
        }
    }
    assert!(closed, "unresponsive client was not dropped");
    still_serving(&d);
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let mut d = Daemon::start();
    let _idle = connect(&d);
    let st = d.terminate();
    assert!(st.success(), "exit status {st}");
    assert!(!d.socket().exists(), "socket left behind");
    assert!(!d.socket_ro().exists(), "read-only socket left behind");
    // and it starts again on the same root
    d.restart();
    still_serving(&d);
}

#[test]
fn event_registrations_per_client_are_bounded() {
    use vireo_proto::remote::{EventCallbackRegisterAnyArgs, EventCallbackRegisterAnyRet};
    let d = Daemon::start();
    let uri = d.uri();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let c = vireo_client::Connect::open(&uri, false).await.unwrap();
        // libvirt 9.0's last domain event is 26 (MEMORY_DEVICE_SIZE_CHANGE); 27 is none.
        for (id, known) in [(26, true), (27, false), (-1, false)] {
            let r = c
                .call::<_, EventCallbackRegisterAnyRet>(
                    procs::CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY,
                    &EventCallbackRegisterAnyArgs {
                        event_id: id,
                        dom: None,
                    },
                )
                .await;
            match r {
                Ok(_) => assert!(known, "event id {id} accepted"),
                Err(e) => {
                    assert!(!known, "event id {id}: {e}");
                    assert!(e.to_string().contains("unsupported event ID"), "{e}");
                }
            }
        }
        let args = EventCallbackRegisterAnyArgs {
            event_id: 0,
            dom: None,
        };
        for _ in 0..1023 {
            let _: EventCallbackRegisterAnyRet = c
                .call(procs::CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY, &args)
                .await
                .unwrap();
        }
        let over = c
            .call::<_, EventCallbackRegisterAnyRet>(
                procs::CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY,
                &args,
            )
            .await;
        let err = over.expect_err("the 1025th registration must be refused");
        assert!(
            err.to_string().contains("too many event callbacks"),
            "{err}"
        );
    });
}
