//! The fuzz targets. Each takes any bytes; a panic is a finding.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use vireo_proto::header::{Header, HEADER_LEN};
use vireo_proto::{RemoteError, Status};
use vireo_rpc::layer::{decode_one, SecurityLayer};
use vireo_xml::{self as xml, XmlElement, XmlError};

use crate::calls;

/// The input as text, as the daemon gets it (XDR strings are checked UTF-8).
fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// `rpc_call`: one call's arguments, decoded as the daemon's dispatcher decodes that
/// procedure's. Input: the program (index into [`calls::PROGRAMS`]), the procedure number
/// (2 bytes, big-endian), the payload.
pub fn rpc_call(data: &[u8]) {
    let [prog, hi, lo, payload @ ..] = data else {
        return;
    };
    let (prog, _) = calls::PROGRAMS[usize::from(*prog) % calls::PROGRAMS.len()];
    let proc_ = i32::from(u16::from_be_bytes([*hi, *lo]));
    if let Some(c) = calls::find(prog, proc_) {
        (c.check)(payload);
    }
}

/// Polls a future that cannot wait (it reads from memory) to its end.
fn now<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a read from memory waited"),
    }
}

/// A security layer that passes tokens through, with a small buffer.
struct Plain;

impl SecurityLayer for Plain {
    fn wrap(&self, plain: &[u8]) -> io::Result<Vec<u8>> {
        Ok(plain.to_vec())
    }
    fn unwrap(&self, token: &[u8]) -> io::Result<Vec<u8>> {
        Ok(token.to_vec())
    }
    fn max_plain(&self) -> usize {
        4096
    }
    fn max_token(&self) -> usize {
        65536
    }
}

/// `rpc_frame`: a byte stream as a server, a client and a SASL security layer read it.
/// The server's splitter (`vireo_rpc::server::split_frame`) takes frames off the buffer
/// as its connection loop does; each header must re-encode to its bytes and an error
/// reply's payload is decoded as the client decodes it. The client's `read_frame` reads
/// the same bytes, and the security layer's `decode_one` takes packets off them.
pub fn rpc_frame(data: &[u8]) {
    let mut buf = data;
    while let Ok(Some((h, total))) = vireo_rpc::server::split_frame(buf) {
        assert!(
            (4 + HEADER_LEN..=buf.len()).contains(&total),
            "frame of {total} bytes in {}",
            buf.len()
        );
        let mut again = Vec::new();
        h.encode(&mut again);
        assert_eq!(again, buf[4..4 + HEADER_LEN], "header re-encoded");
        let payload = &buf[4 + HEADER_LEN..total];
        let _ = (h.message_type(), h.status());
        if h.status == Status::Error as i32 {
            let _ = vireo_xdr::from_bytes::<RemoteError>(payload);
        }
        buf = &buf[total..];
    }

    let mut r = data;
    while let Ok(f) = now(vireo_rpc::frame::read_frame(&mut r)) {
        let _: &Header = &f.header;
        assert!(f.payload.len() <= data.len());
    }

    let mut wire = data.to_vec();
    while let Ok(Some(plain)) = decode_one(&Plain, &mut wire) {
        assert!(!plain.is_empty() && plain.len() <= Plain.max_token());
    }
}

/// Parses with `parse`; what parses must format into a document that `reparse` reads
/// back to the same formatting.
fn roundtrip<T>(
    what: &str,
    xml: &str,
    parse: impl Fn(&str) -> Result<T, XmlError>,
    format: impl Fn(&T) -> String,
    reparse: impl Fn(&str) -> Result<T, XmlError>,
) {
    let Ok(v) = parse(xml) else {
        return;
    };
    let out = format(&v);
    match reparse(&out) {
        Ok(again) => assert_eq!(
            format(&again),
            out,
            "{what}: formatting what was read back differs"
        ),
        Err(e) => panic!("{what}: our own XML does not parse: {e}\n{out}"),
    }
}

/// A device element as attach-device reads it (`parse_root_kept`) and detach-device
/// (`parse_root`).
fn device<T: XmlElement>(xml: &str, root: &str) {
    let fmt = |v: &T| xml::format_root(v, root);
    roundtrip(
        root,
        xml,
        |x| xml::parse_root_kept::<T>(x, root),
        fmt,
        |x| xml::parse_root_kept::<T>(x, root),
    );
    roundtrip(
        root,
        xml,
        |x| xml::parse_root::<T>(x, root),
        fmt,
        |x| xml::parse_root::<T>(x, root),
    );
}

/// The name of the document's root element, as the hotplug code finds it.
fn root_name(xml: &str) -> Option<&str> {
    let mut rest = xml;
    loop {
        let at = rest.find('<')?;
        rest = &rest[at + 1..];
        if rest.starts_with('?') || rest.starts_with('!') {
            continue;
        }
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .unwrap_or(rest.len());
        return Some(&rest[..end]);
    }
}

/// `xml_domain`: domain XML as define reads it (`parse_kept`) and as the daemon reloads
/// its own files (`parse`); device XML for attach, detach and update; snapshot XML.
pub fn xml_domain(data: &[u8]) {
    let Some(x) = text(data) else {
        return;
    };
    match root_name(x) {
        Some("domain") => {
            roundtrip(
                "domain (kept)",
                x,
                xml::Domain::parse_kept,
                xml::Domain::format,
                xml::Domain::parse_kept,
            );
            roundtrip(
                "domain",
                x,
                xml::Domain::parse,
                xml::Domain::format,
                xml::Domain::parse,
            );
        }
        Some("domainsnapshot") => {
            roundtrip(
                "snapshot (kept)",
                x,
                xml::DomainSnapshot::parse_kept,
                xml::DomainSnapshot::format,
                xml::DomainSnapshot::parse,
            );
            roundtrip(
                "snapshot",
                x,
                xml::DomainSnapshot::parse,
                xml::DomainSnapshot::format,
                xml::DomainSnapshot::parse,
            );
        }
        Some("interface") => device::<xml::Interface>(x, "interface"),
        Some("disk") => device::<xml::Disk>(x, "disk"),
        Some("input") => device::<xml::Input>(x, "input"),
        Some("channel") => device::<xml::Chardev>(x, "channel"),
        Some("memory") => device::<xml::MemoryDevice>(x, "memory"),
        Some("controller") => device::<xml::Controller>(x, "controller"),
        Some("hostdev") => device::<xml::Hostdev>(x, "hostdev"),
        _ => {
            // Whatever the root, the parsers must refuse it cleanly.
            let _ = xml::Domain::parse_kept(x);
            let _ = xml::DomainSnapshot::parse_kept(x);
        }
    }
}

/// `xml_network`: network and network port XML.
pub fn xml_network(data: &[u8]) {
    let Some(x) = text(data) else {
        return;
    };
    roundtrip(
        "network",
        x,
        xml::NetworkDef::parse,
        xml::NetworkDef::format,
        xml::NetworkDef::parse,
    );
    roundtrip(
        "networkport",
        x,
        xml::NetworkPortDef::parse,
        xml::NetworkPortDef::format,
        xml::NetworkPortDef::parse,
    );
}

/// `xml_storage`: storage pool and volume XML.
pub fn xml_storage(data: &[u8]) {
    let Some(x) = text(data) else {
        return;
    };
    roundtrip(
        "pool",
        x,
        xml::Pool::parse,
        xml::Pool::format,
        xml::Pool::parse,
    );
    roundtrip(
        "volume",
        x,
        xml::Volume::parse,
        xml::Volume::format,
        xml::Volume::parse,
    );
}

/// `xml_secret`: secret XML.
pub fn xml_secret(data: &[u8]) {
    let Some(x) = text(data) else {
        return;
    };
    roundtrip(
        "secret",
        x,
        xml::Secret::parse,
        xml::Secret::format,
        xml::Secret::parse,
    );
}

/// `xml_nwfilter`: network filter and filter binding XML.
pub fn xml_nwfilter(data: &[u8]) {
    let Some(x) = text(data) else {
        return;
    };
    roundtrip(
        "filter",
        x,
        xml::NwFilterDef::parse,
        xml::NwFilterDef::format,
        xml::NwFilterDef::parse,
    );
    roundtrip(
        "filterbinding",
        x,
        xml::NwFilterBindingDef::parse,
        xml::NwFilterBindingDef::format,
        xml::NwFilterBindingDef::parse,
    );
}

/// `xml_nodedev`: node device XML, as read back from the store and as given to create
/// and define a mediated device.
pub fn xml_nodedev(data: &[u8]) {
    let Some(x) = text(data) else {
        return;
    };
    roundtrip(
        "device",
        x,
        xml::NodeDeviceDef::parse,
        xml::NodeDeviceDef::format,
        xml::NodeDeviceDef::parse,
    );
    let _ = xml::NewNodeDevice::parse(x);
}

/// `xml_interface`: host interface XML.
pub fn xml_interface(data: &[u8]) {
    let Some(x) = text(data) else {
        return;
    };
    roundtrip(
        "interface",
        x,
        xml::InterfaceDef::parse,
        xml::InterfaceDef::to_xml,
        xml::InterfaceDef::parse,
    );
}

/// `conf`: a daemon's `.conf` file, parsed and read as its settings.
pub fn conf(data: &[u8]) {
    let Some(t) = text(data) else {
        return;
    };
    if let Ok(f) = vireo_conf::parse("fuzz.conf", t) {
        let _ = vireo_conf::DaemonConfig::from_conf(&f);
    }
}
