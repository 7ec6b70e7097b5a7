//! USB redirection, smartcard passthrough and a serial port on TCP, with virsh on a TCG
//! guest: QEMU connects to the UNIX socket a `<redirdev>` names (usbredir), listens on a
//! `<smartcard mode='passthrough'>`'s, and the guest's second serial port reaches a client
//! of its TCP socket (inside the test's network namespace).

use std::io::{BufRead, BufReader};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use vireo_tests::{guest_shell, ok, write_file, Daemon};

#[test]
fn usb_redirection_smartcard_and_tcp_serial() {
    let d = Daemon::start();
    let Some(ns) = d.netns.as_ref() else {
        eprintln!("needs a network namespace of the test's own (root): skipped");
        return;
    };
    let redir = d.root.join("redir.sock");
    let card = d.root.join("card.sock");
    let listener = UnixListener::bind(&redir).expect("bind the usbredir socket");
    let devices = format!(
        "<memballoon model='none'/>\
         <redirdev bus='usb' type='unix'><source mode='connect' path='{}'/></redirdev>\
         <redirfilter><usbdev vendor='0x15E1' allow='yes'/><usbdev allow='no'/></redirfilter>\
         <smartcard mode='passthrough' type='unix'><source mode='bind' path='{}'/></smartcard>\
         <serial type='tcp'><source mode='bind' host='127.0.0.1' service='4555'/>\
         <protocol type='raw'/><target port='1'/></serial>",
        redir.display(),
        card.display()
    );
    let xml = vireo_tests::guest_xml("vm1").replace("<memballoon model='none'/>", &devices);
    ok(&d.virsh(&["define", &write_file(&d, "vm1.xml", &xml)]));
    let def = ok(&d.virsh(&["dumpxml", "vm1"]));
    assert!(def.contains("<redirdev bus='usb' type='unix'>"), "{def}");
    assert!(
        def.contains("<usbdev vendor='0x15E1' allow='yes'/>"),
        "{def}"
    );
    assert!(
        def.contains("<smartcard mode='passthrough' type='unix'>"),
        "{def}"
    );
    assert!(def.contains("service='4555'"), "{def}");
    ok(&d.virsh(&["start", "--paused", "vm1"]));

    // QEMU connected to the redirection socket as it started.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(listener.accept().is_ok());
    });
    assert_eq!(rx.recv_timeout(Duration::from_secs(60)), Ok(true));
    // And listens on the smartcard's.
    UnixStream::connect(&card).expect("the smartcard socket");

    // The guest's ttyS1 is the TCP socket: a client inside the namespace reads it.
    let mut nc = ns
        .command("busybox")
        .args(["nc", "127.0.0.1", "4555"])
        // Held open: nc ends when its input does.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nc");
    let out = nc.stdout.take().expect("nc's output");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    guest_shell(
        &d,
        "vm1",
        &[
            "--resume",
            "echo TCP-SERIAL-$((40+2)) > /dev/ttyS1; echo SENT-$((1+1))",
            "SENT-2",
        ],
    );
    let mut seen = Vec::new();
    let found = loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) if l.contains("TCP-SERIAL-42") => break true,
            Ok(l) => seen.push(l),
            Err(_) => break false,
        }
    };
    let _ = nc.kill();
    let end = nc.wait_with_output().expect("nc");
    assert!(
        found,
        "the guest's line never came: {seen:?} {}",
        String::from_utf8_lossy(&end.stderr)
    );
    ok(&d.virsh(&["destroy", "vm1"]));
}
