//! The messages between the GSSAPI mechanism ([`super`]) and `vireo-gss-helper`, the
//! process that holds the GSS-API context (MIT Kerberos) for one exchange, over the
//! helper's standard input and output.
//!
//! Each message is a kind (one byte), the length of its body (4 bytes, big-endian, at most
//! [`MAX_BODY`]) and the body. A request's kind is one of [`op`]; the answer's is
//! [`OK`] with the body the operation describes, or [`FAILED`] with the library's words.

use std::io::{self, Read, Write};

/// The longest body either side accepts: a context token, or a security layer packet (at
/// most [`super::MAX_BUFFER`] bytes) and its overhead.
pub const MAX_BODY: usize = 1 << 20;

/// The answer: done, with the operation's result.
pub const OK: u8 = 0;
/// The answer: the library refused; the body is its message.
pub const FAILED: u8 = 1;

/// What the helper is asked to do.
pub mod op {
    /// (Acceptor) the initiator's next context token → [`super::Progress`].
    pub const ACCEPT: u8 = b'A';
    /// (Initiator) the acceptor's next token, or none the first time: a byte saying whether
    /// one follows (0 or 1), then the token → [`super::Progress`].
    pub const INITIATE: u8 = b'I';
    /// (Acceptor, once complete) → the initiator's identity, a NUL byte, and the principal
    /// its ticket was for.
    pub const PEER: u8 = b'P';
    /// A byte asking for confidentiality (0 or 1), then the data → the wrap token.
    pub const WRAP: u8 = b'W';
    /// A wrap token → its data, then a byte saying whether it was encrypted.
    pub const UNWRAP: u8 = b'U';
    /// A byte asking for confidentiality, then the largest token (4 bytes) → the most data
    /// (4 bytes) one wrap token of that size can carry.
    pub const WRAP_LIMIT: u8 = b'L';
}

/// The answer to ACCEPT and INITIATE: whether the context is established, its flags
/// (`GSS_C_*_FLAG`) and the token for the peer (maybe empty).
#[derive(Debug, PartialEq, Eq)]
pub struct Progress {
    pub complete: bool,
    pub flags: u32,
    pub token: Vec<u8>,
}

impl Progress {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(5 + self.token.len());
        b.push(u8::from(self.complete));
        b.extend_from_slice(&self.flags.to_be_bytes());
        b.extend_from_slice(&self.token);
        b
    }

    pub fn decode(b: &[u8]) -> Option<Progress> {
        let (&complete, rest) = b.split_first()?;
        let flags = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
        Some(Progress {
            complete: complete != 0,
            flags,
            token: rest[4..].to_vec(),
        })
    }
}

/// Writes one message, whose body is `parts` one after the other (a flag byte and a
/// packet, say: copied once, into the message).
pub fn write_message(w: &mut impl Write, kind: u8, parts: &[&[u8]]) -> io::Result<()> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len > MAX_BODY {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "GSSAPI helper message too long",
        ));
    }
    let mut m = Vec::with_capacity(5 + len);
    m.push(kind);
    m.extend_from_slice(&(len as u32).to_be_bytes());
    for p in parts {
        m.extend_from_slice(p);
    }
    w.write_all(&m)?;
    w.flush()
}

/// Reads one message: its kind and body; `None` if the stream ended before one began.
/// The length is checked before the body is allocated.
pub fn read_message(r: &mut impl Read) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    let mut got = 0;
    while got < head.len() {
        match r.read(&mut head[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_BODY {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "GSSAPI helper message too long",
        ));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(Some((head[0], body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let mut wire = Vec::new();
        write_message(&mut wire, op::WRAP, &[b"\x01", b"da", b"ta"]).unwrap();
        write_message(&mut wire, OK, &[]).unwrap();
        let mut r = &wire[..];
        assert_eq!(
            read_message(&mut r).unwrap(),
            Some((op::WRAP, b"\x01data".to_vec()))
        );
        assert_eq!(read_message(&mut r).unwrap(), Some((OK, Vec::new())));
        assert_eq!(read_message(&mut r).unwrap(), None);
    }

    #[test]
    fn a_long_or_cut_message_is_refused_before_allocating() {
        let mut r = &[op::ACCEPT, 0xff, 0xff, 0xff, 0xff][..];
        assert_eq!(
            read_message(&mut r).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        let mut r = &[op::ACCEPT, 0, 0][..];
        assert_eq!(
            read_message(&mut r).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        let mut r = &[op::ACCEPT, 0, 0, 0, 9, 1][..];
        assert!(read_message(&mut r).is_err());
        let half = vec![0; MAX_BODY / 2];
        assert!(write_message(&mut Vec::new(), OK, &[&half, &half, b"x"]).is_err());
    }

    #[test]
    fn progress_round_trips_and_short_bodies_are_refused() {
        let p = Progress {
            complete: true,
            flags: 0x30,
            token: b"ap-rep".to_vec(),
        };
        assert_eq!(Progress::decode(&p.encode()), Some(p));
        assert_eq!(Progress::decode(&[1, 0, 0]), None);
        assert_eq!(Progress::decode(&[]), None);
    }
}
