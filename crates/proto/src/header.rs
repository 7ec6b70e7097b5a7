//! The 24-byte packet header that follows the 4-byte length word.

/// Size of the header on the wire.
pub const HEADER_LEN: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Call = 0,
    Reply = 1,
    Message = 2,
    Stream = 3,
    CallWithFds = 4,
    ReplyWithFds = 5,
    StreamHole = 6,
}

impl MessageType {
    pub fn from_i32(v: i32) -> Option<Self> {
        Some(match v {
            0 => Self::Call,
            1 => Self::Reply,
            2 => Self::Message,
            3 => Self::Stream,
            4 => Self::CallWithFds,
            5 => Self::ReplyWithFds,
            6 => Self::StreamHole,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok = 0,
    Error = 1,
    Continue = 2,
}

impl Status {
    pub fn from_i32(v: i32) -> Option<Self> {
        Some(match v {
            0 => Self::Ok,
            1 => Self::Error,
            2 => Self::Continue,
            _ => return None,
        })
    }
}

/// The header as sent; `mtype` and `status` stay raw so that a bad value can be reported
/// (and answered) rather than lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub prog: u32,
    pub vers: u32,
    pub proc_: i32,
    pub mtype: i32,
    pub serial: u32,
    pub status: i32,
}

impl Header {
    pub fn new(
        prog: u32,
        vers: u32,
        proc_: i32,
        mtype: MessageType,
        serial: u32,
        status: Status,
    ) -> Self {
        Header {
            prog,
            vers,
            proc_,
            mtype: mtype as i32,
            serial,
            status: status as i32,
        }
    }

    /// The header of a call: procedure `proc_` of program `prog`, version `vers`.
    pub fn call(prog: u32, vers: u32, proc_: i32, serial: u32) -> Self {
        Header::new(prog, vers, proc_, MessageType::Call, serial, Status::Ok)
    }

    pub fn message_type(&self) -> Option<MessageType> {
        MessageType::from_i32(self.mtype)
    }

    pub fn status(&self) -> Option<Status> {
        Status::from_i32(self.status)
    }

    /// The header of a reply to this call.
    pub fn reply(&self, status: Status) -> Header {
        Header {
            mtype: MessageType::Reply as i32,
            status: status as i32,
            ..*self
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        for w in [
            self.prog,
            self.vers,
            self.proc_ as u32,
            self.mtype as u32,
            self.serial,
            self.status as u32,
        ] {
            out.extend_from_slice(&w.to_be_bytes());
        }
    }

    pub fn decode(b: &[u8; HEADER_LEN]) -> Header {
        let w = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Header {
            prog: w(0),
            vers: w(4),
            proc_: w(8) as i32,
            mtype: w(12) as i32,
            serial: w(16),
            status: w(20) as i32,
        }
    }
}

/// A whole frame: length word, header and payload.
pub fn encode_frame(h: &Header, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + HEADER_LEN + payload.len());
    frame_into(&mut out, h, |o| o.extend_from_slice(payload));
    out
}

/// Appends a frame to `out`, letting `body` write the payload in place (no intermediate copy).
pub fn frame_into(out: &mut Vec<u8>, h: &Header, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    h.encode(out);
    body(out);
    let len = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// A keepalive PING or PONG (`proc_` is `KEEPALIVE_PING` or `KEEPALIVE_PONG`): a 28-byte
/// MESSAGE with serial 0 and no payload.
pub fn keepalive_frame(proc_: i32) -> Vec<u8> {
    let h = Header::new(
        crate::KEEPALIVE_PROGRAM,
        crate::KEEPALIVE_VERSION,
        proc_,
        MessageType::Message,
        0,
        Status::Ok,
    );
    encode_frame(&h, &[])
}
