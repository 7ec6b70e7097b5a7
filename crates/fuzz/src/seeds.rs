//! The seed corpus, made from what the repository already has: the captured libvirt
//! traffic (`tests/data/wire-vectors`, `crates/proto/tests/data/network-vectors`), a
//! valid payload for every procedure in [`crate::calls`], the XML files of the tests and
//! the XML and `.conf` texts written in the crates' sources and tests.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use vireo_proto::header::{Header, HEADER_LEN};
use vireo_proto::MessageType;

use crate::calls;

/// The workspace's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One frame of a capture: whether the client sent it, and its bytes.
pub type Captured = (bool, Vec<u8>);

/// Every `.txt` capture, with its frames in order.
pub fn captures() -> Vec<(PathBuf, Vec<Captured>)> {
    let mut out = Vec::new();
    for dir in [
        "tests/data/wire-vectors",
        "crates/proto/tests/data/network-vectors",
    ] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .collect();
        files.sort();
        for f in files {
            let Ok(text) = std::fs::read_to_string(&f) else {
                continue;
            };
            let frames = text
                .lines()
                .filter_map(|l| {
                    let (dir, rest) = l.split_once(' ')?;
                    let hex = rest.split_once(' ').map_or(rest, |(h, _)| h);
                    Some((dir == "C>S", unhex(hex)?))
                })
                .collect();
            out.push((f, frames));
        }
    }
    out
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Every source file under `dir` (recursively) with extension `ext`.
fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "target") {
                files(&p, ext, out);
            }
        } else if p.extension().is_some_and(|e| e == ext) {
            out.push(p);
        }
    }
}

/// The string literals of a Rust source, unescaped (roughly: enough for seeds).
pub fn string_literals(src: &str) -> Vec<String> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'\'' => {
                // A char literal ('x', '\n', '"'); otherwise a lifetime.
                if b.get(i + 1) == Some(&b'\\') {
                    i += 2;
                    while i < b.len() && b[i] != b'\'' {
                        i += 1;
                    }
                } else if b.get(i + 2) == Some(&b'\'') {
                    i += 2;
                }
                i += 1;
            }
            b'r' if matches!(b.get(i + 1), Some(b'"' | b'#'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                let start = j + 1;
                let end = b[start..]
                    .windows(close.len())
                    .position(|w| w == close.as_slice())
                    .map_or(b.len(), |p| start + p);
                out.push(String::from_utf8_lossy(&b[start..end]).into_owned());
                i = end + close.len();
            }
            b'"' => {
                let mut s = String::new();
                let mut j = i + 1;
                let mut chars = src[j..].char_indices();
                while let Some((k, c)) = chars.next() {
                    match c {
                        '"' => {
                            j += k + 1;
                            break;
                        }
                        '\\' => match chars.next() {
                            Some((_, 'n')) => s.push('\n'),
                            Some((_, 't')) => s.push('\t'),
                            Some((_, 'r')) => s.push('\r'),
                            Some((_, '0')) => s.push('\0'),
                            Some((_, '\n')) => {
                                // A line continuation: the next line's indentation goes.
                                let rest = chars.as_str();
                                let skip = rest.len() - rest.trim_start().len();
                                for _ in 0..rest[..skip].chars().count() {
                                    chars.next();
                                }
                            }
                            Some((_, c)) => s.push(c),
                            None => {}
                        },
                        c => s.push(c),
                    }
                    j = i + 1 + k + c.len_utf8();
                }
                out.push(s);
                i = j.max(i + 1);
            }
            _ => i += 1,
        }
    }
    out
}

/// Which XML target a document seeds, by its root element.
fn xml_targets(root: &str) -> &'static [&'static str] {
    match root {
        "domain" | "domainsnapshot" | "disk" | "input" | "channel" | "memory" | "controller"
        | "hostdev" => &["xml_domain"],
        "interface" => &["xml_domain", "xml_interface"],
        "network" | "networkport" => &["xml_network"],
        "pool" | "volume" => &["xml_storage"],
        "secret" => &["xml_secret"],
        "filter" | "filterbinding" => &["xml_nwfilter"],
        "device" => &["xml_nodedev"],
        _ => &[],
    }
}

fn root(xml: &str) -> Option<&str> {
    let t = xml.trim_start();
    let t = t.strip_prefix('<')?;
    let end = t
        .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
        .unwrap_or(t.len());
    Some(&t[..end])
}

/// A few `.conf` texts covering the syntax libvirt's files use.
const CONF: &[&str] = &[
    "# a comment\nunix_sock_group = \"libvirt\"\nunix_sock_rw_perms = \"0770\"\nmax_clients = 100\n",
    "listen_tls = 0\nlisten_tcp = 1\ntcp_port = \"16509\"\nauth_tcp = \"sasl\"\n",
    "tls_allowed_dn_list = [\"C=GB,O=Example\", \"DN2\"]\nsasl_allowed_username_list = [ ]\n",
    "log_level = 3\nlog_outputs = \"3:syslog:libvirtd\"\nlog_filters = \"1:qemu 3:remote\"\n",
    "keepalive_interval = -1\nkeepalive_count = 5\nmax_workers = 20\nmax_queued_clients = 1000\n",
    "admin_max_clients = 5\nprio_workers = 5\nmax_client_requests = 5\nadmin_unix_sock_dir = '/run'\n",
    "nested = [[1, 2], [\"a\", 'b'], []]\n# trailing comment",
    "auth_unix_rw = \"polkit\"\nauth_unix_ro = \"none\"\naccess_drivers = [ \"polkit\" ]\n",
];

/// The seeds of target `name`.
pub fn seeds(name: &str) -> Vec<Vec<u8>> {
    let mut set = BTreeSet::new();
    match name {
        "rpc_call" => {
            for c in calls::CALLS {
                if let Some(v) = calls::input(c.prog, c.proc_, &(c.seed)()) {
                    set.insert(v);
                }
            }
            for (_, frames) in captures() {
                for (_, f) in frames {
                    let Some(hdr) = f.get(4..4 + HEADER_LEN) else {
                        continue;
                    };
                    let Ok(hdr) = <&[u8; HEADER_LEN]>::try_from(hdr) else {
                        continue;
                    };
                    let h = Header::decode(hdr);
                    if h.message_type() == Some(MessageType::Call) {
                        if let Some(v) = calls::input(h.prog, h.proc_, &f[4 + HEADER_LEN..]) {
                            set.insert(v);
                        }
                    }
                }
            }
        }
        "rpc_frame" => {
            for (_, frames) in captures() {
                for side in [true, false] {
                    let stream: Vec<u8> = frames
                        .iter()
                        .filter(|(c, _)| *c == side)
                        .flat_map(|(_, f)| f.iter().copied())
                        .take(64 << 10)
                        .collect();
                    if !stream.is_empty() {
                        set.insert(stream);
                    }
                }
            }
        }
        "conf" => {
            for c in CONF {
                set.insert(c.as_bytes().to_vec());
            }
            let mut srcs = Vec::new();
            files(&repo().join("crates/conf"), "rs", &mut srcs);
            for f in srcs {
                let Ok(src) = std::fs::read_to_string(&f) else {
                    continue;
                };
                for s in string_literals(&src) {
                    if s.contains('=') && s.contains('\n') {
                        set.insert(s.into_bytes());
                    }
                }
            }
        }
        xml => {
            let mut docs = Vec::new();
            let mut xmls = Vec::new();
            files(&repo().join("tests/data"), "xml", &mut xmls);
            files(&repo().join("crates"), "xml", &mut xmls);
            for f in xmls {
                if let Ok(t) = std::fs::read_to_string(&f) {
                    docs.push(t);
                }
            }
            let mut srcs = Vec::new();
            files(&repo().join("crates"), "rs", &mut srcs);
            files(&repo().join("tests"), "rs", &mut srcs);
            for f in srcs {
                if f.starts_with(repo().join("crates/fuzz")) {
                    continue;
                }
                if let Ok(src) = std::fs::read_to_string(&f) {
                    docs.extend(
                        string_literals(&src)
                            .into_iter()
                            .filter(|s| s.trim_start().starts_with('<') && s.contains('>')),
                    );
                }
            }
            for d in docs {
                if root(&d).is_some_and(|r| xml_targets(r).contains(&xml)) {
                    set.insert(d.into_bytes());
                }
            }
        }
    }
    set.into_iter().collect()
}

/// libFuzzer's dictionary for target `name`: the element and attribute names and the
/// quoted values of its XML seeds, the keys of its `.conf` seeds (empty for the binary
/// targets, whose compared constants libFuzzer finds by itself).
pub fn dictionary(name: &str) -> Vec<String> {
    let mut words = BTreeSet::new();
    for s in seeds(name) {
        let Ok(t) = std::str::from_utf8(&s) else {
            continue;
        };
        if name == "conf" {
            for l in t.lines() {
                if let Some((k, _)) = l.split_once('=') {
                    words.insert(k.trim().to_string());
                }
            }
        } else if name.starts_with("xml_") {
            for (i, _) in t.match_indices('<') {
                let rest = &t[i..];
                let end = rest[1..]
                    .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
                    .map_or(rest.len(), |e| e + 1);
                words.insert(rest[..end].to_string());
            }
            for (i, _) in t.match_indices('=') {
                let before = &t[..i];
                let start = before
                    .rfind(|c: char| c.is_whitespace())
                    .map_or(0, |s| s + 1);
                words.insert(format!(" {}=", &before[start..]));
                let after = &t[i + 1..];
                if let Some(q) = after.chars().next().filter(|c| *c == '\'' || *c == '"') {
                    if let Some(end) = after[1..].find(q) {
                        words.insert(after[..end + 2].to_string());
                    }
                }
            }
        }
    }
    words
        .into_iter()
        .filter(|w| (2..=40).contains(&w.len()))
        .map(|w| {
            let mut e = String::from("\"");
            for b in w.bytes() {
                match b {
                    b'\\' | b'"' => e.push_str(&format!("\\x{b:02x}")),
                    0x20..=0x7e => e.push(char::from(b)),
                    _ => e.push_str(&format!("\\x{b:02x}")),
                }
            }
            e.push('"');
            e
        })
        .collect()
}

/// Writes target `name`'s seeds into `dir`, one file each, named by their content's hash;
/// returns how many.
pub fn write(name: &str, dir: &Path) -> io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let seeds = seeds(name);
    for s in &seeds {
        std::fs::write(dir.join(format!("seed-{:016x}", fnv(s))), s)?;
    }
    Ok(seeds.len())
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &c| {
        (h ^ u64::from(c)).wrapping_mul(0x0100_0000_01b3)
    })
}
