//! `vireo-gss-helper accept | initiate SERVICE@HOST | check` — holds the GSS-API (MIT
//! Kerberos) security context of one SASL GSSAPI exchange, for a Vireo daemon (`accept`)
//! or client (`initiate`), which starts one for each exchange and talks to it over its
//! standard input and output (`vireo_rpc::gssapi::wire`). Kerberos' ticket and token
//! parsing thus runs in a process of its own, and only while an exchange or its security
//! layer lasts; no daemon maps the Kerberos libraries.
//!
//! `accept` takes the keytab and replay cache from `KRB5_KTNAME` and `KRB5RCACHENAME`
//! (the daemon sets both) and accepts tickets for any key of the keytab; `initiate` uses
//! the user's credential cache (`KRB5CCNAME`, or the default). `check` exits at once: that
//! it could be run says the library is there. It ends when its input ends.
//!
//! Before it reads a token it gives up every capability, for good ([`confine`]): code
//! that a crafted ticket took over could not use a root daemon's privileges (trace the
//! daemon, load modules, change owners, mount). It keeps its user's file rights, which
//! the keytab and the replay cache need.

use std::io::{self, BufReader, BufWriter};
use std::process::ExitCode;

use libgssapi::context::{ClientCtx, CtxFlags, SecurityContext, ServerCtx};
use libgssapi::credential::{Cred, CredUsage};
use libgssapi::error::Error;
use libgssapi::name::Name;
use libgssapi::oid::{OidSet, GSS_MECH_KRB5, GSS_NT_HOSTBASED_SERVICE, GSS_NT_USER_NAME};
use libgssapi::util::{GssIov, GssIovFake, GssIovType};
use vireo_rpc::gssapi::wire::{self, op, Progress};

const USAGE: &str = "usage: vireo-gss-helper accept | initiate SERVICE@HOST | check";

/// What the library or the request did wrong, as sent back to the parent.
struct Failure(String);

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure(e.to_string())
    }
}

fn fail<T>(msg: &str) -> Result<T, Failure> {
    Err(Failure(msg.to_string()))
}

enum Side {
    Acceptor(ServerCtx),
    Initiator(ClientCtx),
}

impl Side {
    fn accept() -> Result<Side, Failure> {
        let mechs = OidSet::singleton(GSS_MECH_KRB5)?;
        let cred = Cred::acquire(None, None, CredUsage::Accept, Some(&mechs))
            .map_err(|e| Failure(format!("cannot use the keytab: {e}")))?;
        Ok(Side::Acceptor(ServerCtx::new(Some(cred))))
    }

    fn initiate(target: &str) -> Result<Side, Failure> {
        let name = Name::new(target.as_bytes(), Some(GSS_NT_HOSTBASED_SERVICE))?;
        let want = CtxFlags::GSS_C_MUTUAL_FLAG
            | CtxFlags::GSS_C_SEQUENCE_FLAG
            | CtxFlags::GSS_C_INTEG_FLAG
            | CtxFlags::GSS_C_CONF_FLAG;
        Ok(Side::Initiator(ClientCtx::new(
            None,
            name,
            want,
            Some(GSS_MECH_KRB5),
        )))
    }

    fn ctx(&mut self) -> &mut dyn SecurityContext {
        match self {
            Side::Acceptor(c) => c,
            Side::Initiator(c) => c,
        }
    }

    fn progress(&mut self, token: Option<libgssapi::util::Buf>) -> Result<Progress, Failure> {
        let ctx = self.ctx();
        let complete = ctx.is_complete();
        let flags = if complete { ctx.flags()?.bits() } else { 0 };
        Ok(Progress {
            complete,
            flags,
            token: token.map(|t| t.to_vec()).unwrap_or_default(),
        })
    }

    fn handle(&mut self, kind: u8, body: &[u8]) -> Result<Vec<u8>, Failure> {
        match (kind, &mut *self) {
            (op::ACCEPT, Side::Acceptor(c)) => {
                let out = c.step(body, None)?;
                return Ok(self.progress(out)?.encode());
            }
            (op::INITIATE, Side::Initiator(c)) => {
                let input = match body.split_first() {
                    Some((0, _)) => None,
                    Some((_, token)) => Some(token),
                    None => return fail("an empty INITIATE request"),
                };
                let out = c.step(input, None)?;
                return Ok(self.progress(out)?.encode());
            }
            (op::PEER, Side::Acceptor(c)) if c.is_complete() => {
                let mut b = identity(&c.source_name()?)?.into_bytes();
                b.push(0);
                b.extend_from_slice(&c.target_name()?.display_name()?);
                return Ok(b);
            }
            _ => {}
        }
        let ctx = self.ctx();
        if !ctx.is_complete() {
            return fail("a request this side cannot serve now");
        }
        match kind {
            op::WRAP => {
                let Some((&conf, data)) = body.split_first() else {
                    return fail("an empty WRAP request");
                };
                let token = ctx.wrap(conf != 0, data)?.to_vec();
                if conf != 0 && !sealed(&token) {
                    return fail("no confidentiality from gss_wrap");
                }
                Ok(token)
            }
            op::UNWRAP => {
                let data = ctx.unwrap(body)?;
                let mut b = Vec::with_capacity(data.len() + 1);
                b.extend_from_slice(&data);
                b.push(u8::from(sealed(body)));
                Ok(b)
            }
            op::WRAP_LIMIT => {
                let [conf, m0, m1, m2, m3] = body[..] else {
                    return fail("a WRAP_LIMIT request that is not 5 bytes");
                };
                let max = u32::from_be_bytes([m0, m1, m2, m3]);
                Ok(wrap_limit(ctx, conf != 0, max)?.to_be_bytes().to_vec())
            }
            _ => fail("a request this side cannot serve now"),
        }
    }
}

/// The initiator's identity as cyrus-sasl's GSSAPI plugin gives it: the principal without
/// its realm when that names the same principal (the realm is the default one), else whole.
fn identity(src: &Name) -> Result<String, Failure> {
    let full = src.canonicalize(Some(GSS_MECH_KRB5))?.display_name()?;
    let full = String::from_utf8(full.to_vec())
        .map_err(|_| Failure("a principal name that is not UTF-8".into()))?;
    if let Some((short, _realm)) = full.rsplit_once('@') {
        // Without a default realm (or with another), the short name is not the same one.
        let same = !short.is_empty()
            && Name::new(short.as_bytes(), Some(GSS_NT_USER_NAME))
                .and_then(|n| n.canonicalize(Some(GSS_MECH_KRB5)))
                .and_then(|n| n.display_name())
                .is_ok_and(|d| *d == *full.as_bytes());
        if same {
            return Ok(short.to_string());
        }
    }
    Ok(full)
}

/// The most data one wrap token of at most `max` bytes carries (as gss_wrap_size_limit).
fn wrap_limit(ctx: &mut dyn SecurityContext, conf: bool, max: u32) -> Result<u32, Failure> {
    let overhead = |ctx: &mut dyn SecurityContext, n: usize| -> Result<usize, Failure> {
        let mut data = vec![0u8; n];
        let mut iov = [
            GssIovFake::new(GssIovType::Header),
            GssIov::new(GssIovType::Data, &mut data).as_fake(),
            GssIovFake::new(GssIovType::Padding),
            GssIovFake::new(GssIovType::Trailer),
        ];
        ctx.wrap_iov_length(conf, &mut iov)?;
        Ok(iov[0].len() + iov[2].len() + iov[3].len())
    };
    let max = max as usize;
    let mut n = max.saturating_sub(overhead(ctx, max)?);
    // A block cipher's padding grows with the data: step down until the token fits.
    for _ in 0..8 {
        if n == 0 || n + overhead(ctx, n)? <= max {
            return Ok(u32::try_from(n).unwrap_or(0));
        }
        n = n.saturating_sub(16);
    }
    Ok(0)
}

/// Whether a wrap token's data is encrypted. RFC 4121 tokens (id 05 04) say so in their
/// flags (Sealed, 0x02); RFC 1964 ones (in the 0x60 framing, id 02 01 after the mechanism's
/// OID) in SEAL_ALG, which is ff ff for none.
fn sealed(token: &[u8]) -> bool {
    if let [0x05, 0x04, flags, ..] = token {
        return flags & 0x02 != 0;
    }
    let Some((&0x60, rest)) = token.split_first() else {
        return false;
    };
    // The DER length (short or long form), then the OID.
    let Some((&len, rest)) = rest.split_first() else {
        return false;
    };
    let rest = if len & 0x80 == 0 {
        rest
    } else {
        match rest.get(usize::from(len & 0x7f)..) {
            Some(r) => r,
            None => return false,
        }
    };
    let [0x06, oid_len, rest @ ..] = rest else {
        return false;
    };
    match rest.get(usize::from(*oid_len)..) {
        Some([0x02, 0x01, _, _, a, b, ..]) => [*a, *b] != [0xff, 0xff],
        _ => false,
    }
}

/// Empties the bounding, permitted, effective and inheritable capability sets and sets
/// `PR_SET_NO_NEW_PRIVS`, so that none comes back, not even through an exec. (The helper
/// has one thread, so the calling thread's sets are the process's.)
fn confine() -> rustix::io::Result<()> {
    use rustix::thread::{CapabilitySet, CapabilitySets};
    // The bounding set first: that needs CAP_SETPCAP, which goes next. Without it (not
    // root) there is nothing to remove from the permitted set either.
    for cap in CapabilitySet::all().iter() {
        let _ = rustix::thread::remove_capability_from_bounding_set(cap);
    }
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: CapabilitySet::empty(),
            permitted: CapabilitySet::empty(),
            inheritable: CapabilitySet::empty(),
        },
    )?;
    rustix::thread::set_no_new_privs(true)
}

fn serve(side: impl FnOnce() -> Result<Side, Failure>) -> ExitCode {
    if let Err(e) = confine() {
        eprintln!("vireo-gss-helper: cannot give up its capabilities: {e}");
        return ExitCode::FAILURE;
    }
    let mut side = side();
    let mut input = BufReader::new(io::stdin().lock());
    let mut output = BufWriter::new(io::stdout().lock());
    loop {
        let (kind, body) = match wire::read_message(&mut input) {
            Ok(Some(m)) => m,
            Ok(None) => return ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("vireo-gss-helper: {e}");
                return ExitCode::FAILURE;
            }
        };
        let answer = match &mut side {
            Ok(s) => s.handle(kind, &body),
            Err(Failure(why)) => Err(Failure(why.clone())),
        };
        let sent = match answer {
            Ok(b) => wire::write_message(&mut output, wire::OK, &[&b]),
            Err(Failure(why)) => wire::write_message(&mut output, wire::FAILED, &[why.as_bytes()]),
        };
        if let Err(e) = sent {
            eprintln!("vireo-gss-helper: {e}");
            return ExitCode::FAILURE;
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["check"] => ExitCode::SUCCESS,
        ["accept"] => serve(Side::accept),
        ["initiate", target] => serve(|| Side::initiate(target)),
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sealed;

    #[test]
    fn sealed_reads_both_token_formats() {
        // RFC 4121: TOK_ID 05 04, flags (0x02 Sealed, 0x04 AcceptorSubkey), filler ff.
        assert!(sealed(&[0x05, 0x04, 0x06, 0xff, 0, 0]));
        assert!(!sealed(&[0x05, 0x04, 0x04, 0xff, 0, 0]));
        // RFC 1964, framed: 60 LEN 06 09 <krb5 OID> 02 01 SGN_ALG SEAL_ALG ff ff ...
        let oid = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];
        let framed = |seal: [u8; 2]| {
            let mut t = vec![0x60, 0x20, 0x06, 0x09];
            t.extend_from_slice(&oid);
            t.extend_from_slice(&[0x02, 0x01, 0x00, 0x00, seal[0], seal[1], 0xff, 0xff]);
            t
        };
        assert!(sealed(&framed([0x00, 0x00])));
        assert!(!sealed(&framed([0xff, 0xff])));
        // The long form of the length.
        let mut long = framed([0x02, 0x00]);
        long.splice(1..2, [0x82, 0x01, 0x00]);
        assert!(sealed(&long));
        // Anything else, or cut short, is not.
        assert!(!sealed(&[]));
        assert!(!sealed(&[0x60]));
        assert!(!sealed(&[0x60, 0x85]));
        assert!(!sealed(&framed([0, 0])[..15]));
    }
}
