//! Replays traffic captured between real virsh/python-libvirt and libvirtd 9.0 against
//! `vireod` and compares the daemon's frames byte for byte.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use vireo_tests::{data, ok, Daemon};

struct Line {
    to_server: bool,
    bytes: Vec<u8>,
    comment: String,
}

fn load(file: &str) -> Vec<Line> {
    let text = std::fs::read_to_string(data("wire-vectors").join(file)).unwrap();
    text.lines()
        .map(|l| {
            let (left, comment) = l.split_once(" # ").unwrap();
            let (dir, hex) = left.split_once(' ').unwrap();
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            Line {
                to_server: dir == "C>S",
                bytes,
                comment: comment.to_string(),
            }
        })
        .collect()
}

fn read_frame(s: &mut UnixStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("daemon sent no frame");
    let n = u32::from_be_bytes(len) as usize;
    let mut f = len.to_vec();
    f.resize(n, 0);
    s.read_exact(&mut f[4..]).unwrap();
    f
}

fn proc_of(f: &[u8]) -> i32 {
    i32::from_be_bytes([f[12], f[13], f[14], f[15]])
}

/// Sends each client frame of `file` and checks the daemon's answers. Frames of the
/// procedures in `loose` are compared by header only (their payload depends on the host).
fn replay(d: &Daemon, file: &str, loose: &[i32]) {
    let lines = load(file);
    let mut s = UnixStream::connect(d.socket()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut i = 0;
    while i < lines.len() {
        assert!(lines[i].to_server, "{file}: expected a client frame first");
        s.write_all(&lines[i].bytes).unwrap();
        let mut expected: Vec<&Line> = Vec::new();
        i += 1;
        while i < lines.len() && !lines[i].to_server {
            expected.push(&lines[i]);
            i += 1;
        }
        let mut got: Vec<Vec<u8>> = (0..expected.len()).map(|_| read_frame(&mut s)).collect();
        // Event messages and replies may interleave differently than in the capture.
        for e in expected {
            let pos = got.iter().position(|g| {
                if loose.contains(&proc_of(&e.bytes)) {
                    g.len() >= 28 && g[4..28] == e.bytes[4..28]
                } else {
                    *g == e.bytes
                }
            });
            match pos {
                Some(p) => {
                    got.remove(p);
                }
                None => panic!(
                    "{file}: no frame matches {}\nexpected {}\ngot      {}",
                    e.comment,
                    hex(&e.bytes),
                    got.iter()
                        .map(|g| hex(g))
                        .collect::<Vec<_>>()
                        .join("\n         ")
                ),
            }
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn captured_sessions_replay_byte_for_byte() {
    let d = Daemon::start();
    replay(&d, "01-version.txt", &[4]);
    replay(&d, "02-list-all-empty.txt", &[]);
    replay(&d, "03-define.txt", &[]);
    // vec2 was defined outside the capture.
    let xml = std::fs::read_to_string(data("minimal.xml"))
        .unwrap()
        .replace("vec1", "vec2")
        .replace("555555555555", "666666666666");
    let f = d.root.join("d2.xml");
    std::fs::write(&f, xml).unwrap();
    ok(&d.virsh(&["define", f.to_str().unwrap()]));
    replay(&d, "04-list-all-two.txt", &[]);
    replay(&d, "05-dominfo.txt", &[]);
    replay(&d, "06-domstate.txt", &[]);
    replay(&d, "07-dumpxml.txt", &[14]);
    replay(&d, "08-domuuid.txt", &[]);
    replay(&d, "09-autostart.txt", &[]);
    replay(&d, "10-undefine.txt", &[]);
    // libxml2 words the parse error its own way; code and domain are checked below.
    replay(&d, "11-define-invalid.txt", &[11]);
    replay(&d, "12-python-basic.txt", &[]);
    replay(&d, "13-unknown-procedure.txt", &[]);
    replay(&d, "14-keepalive-ping.txt", &[]);
    replay(&d, "16-domain-event.txt", &[]);
}

#[test]
fn invalid_define_error_has_libvirt_code_and_domain() {
    let d = Daemon::start();
    let lines = load("11-define-invalid.txt");
    let mut s = UnixStream::connect(d.socket()).unwrap();
    let mut last = Vec::new();
    for l in lines.iter().filter(|l| l.to_server) {
        s.write_all(&l.bytes).unwrap();
        let f = read_frame(&mut s);
        if proc_of(&f) == 11 {
            last = f;
        }
    }
    // remote_error: code 35 (XML_DETAIL), domain 20 (DOMAIN).
    assert_eq!(&last[28..36], &[0, 0, 0, 35, 0, 0, 0, 20]);
}
