//! SASL's GSSAPI mechanism (RFC 4752) with Kerberos, both sides, as libvirt's client and
//! server run it through cyrus-sasl in AUTH_SASL_START / STEP, and its security layer.
//!
//! GSS-API itself is MIT Kerberos, in a process of its own for each exchange:
//! `vireo-gss-helper` (crates/gsshelper) holds the security context and this side sends it
//! the tokens ([`wire`]). No daemon maps the Kerberos libraries, and a flaw in their ticket
//! or token parsing stays in that process. A machine without the helper or the library
//! just does not offer GSSAPI.
//!
//! The exchange (server side): the client's context tokens are passed to
//! `gss_accept_sec_context` until the context is established; the server's last token (the
//! Kerberos AP-REP) goes back and the client answers it with an empty response; then the
//! server sends, protected for integrity, 4 bytes — the security layers it offers (1 none,
//! 2 integrity, 4 confidentiality) and the largest packet it accepts (24 bits) — and the
//! client answers, protected the same way, with the layer it chose, its own largest packet
//! and an authorization identity. On plain TCP only confidentiality is offered (libvirt
//! wants a layer of at least 56 bits there); where the transport is already secure, only
//! "none".

pub mod wire;

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use thiserror::Error;

use crate::layer::SecurityLayer;
use wire::{op, Progress};

/// The mechanism's name, as AUTH_SASL_INIT lists it.
pub const GSSAPI: &str = "GSSAPI";
/// The service libvirt's principals are named for: `libvirt/HOST@REALM`.
pub const SERVICE: &str = "libvirt";
/// The largest packet we accept under the layer (libvirt's and our announced buffer).
pub const MAX_BUFFER: u32 = 1 << 16;

const LAYER_NONE: u8 = 1;
const LAYER_INTEGRITY: u8 = 2;
const LAYER_CONFIDENTIALITY: u8 = 4;
/// The strength cyrus-sasl reports when the library does not say (a single-DES key), as
/// the safe binding the helper uses does not ask.
const ASSUMED_SSF: u32 = 56;

#[derive(Debug, Error)]
pub enum GssError {
    #[error("GSSAPI is not available: {0}")]
    Unavailable(String),
    #[error("{what}: {message}")]
    Gss { what: &'static str, message: String },
    #[error("GSSAPI protocol error: {0}")]
    Protocol(&'static str),
    #[error("{0}")]
    Refused(String),
}

const GSS_C_CONF_FLAG: u32 = 16;
const GSS_C_INTEG_FLAG: u32 = 32;

/// The helper's file name.
const HELPER: &str = "vireo-gss-helper";

/// `$VIREO_GSS_HELPER`, else `vireo-gss-helper` next to the running program (or in the
/// `libexec` directory beside its own, as installed), else on `PATH`.
fn helper_path() -> PathBuf {
    if let Some(p) = std::env::var_os("VIREO_GSS_HELPER") {
        return PathBuf::from(p);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| helper_beside(&exe))
        .unwrap_or_else(|| PathBuf::from(HELPER))
}

/// The helper in the directory of `exe` or in `../libexec` from it.
fn helper_beside(exe: &Path) -> Option<PathBuf> {
    let dir = exe.parent()?;
    [
        Some(dir.join(HELPER)),
        dir.parent().map(|p| p.join("libexec").join(HELPER)),
    ]
    .into_iter()
    .flatten()
    .find(|p| p.is_file())
}

static CHECKED: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Whether GSSAPI can be used here: the helper runs (which it cannot without MIT's
/// library). Found and tried once.
pub fn available() -> Result<(), GssError> {
    checked_helper().map(|_| ())
}

fn checked_helper() -> Result<&'static Path, GssError> {
    CHECKED
        .get_or_init(|| {
            let path = helper_path();
            match Command::new(&path)
                .arg("check")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
            {
                Ok(s) if s.success() => Ok(path),
                Ok(s) => Err(format!("{} check: {s}", path.display())),
                Err(e) => Err(format!("cannot run {}: {e}", path.display())),
            }
        })
        .as_ref()
        .map(PathBuf::as_path)
        .map_err(|e| GssError::Unavailable(e.clone()))
}

/// One exchange's security context, held by a `vireo-gss-helper` process.
struct Ctx {
    child: Child,
    to: ChildStdin,
    from: ChildStdout,
}

impl Ctx {
    fn start(args: &[&str], env: &[(&str, String)]) -> Result<Ctx, GssError> {
        let path = checked_helper()?;
        let mut child = Command::new(path)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| GssError::Unavailable(format!("cannot run {}: {e}", path.display())))?;
        match (child.stdin.take(), child.stdout.take()) {
            (Some(to), Some(from)) => Ok(Ctx { child, to, from }),
            _ => Err(GssError::Unavailable(
                "no pipes to the GSSAPI helper".into(),
            )),
        }
    }

    /// One request (its body in `parts`) and its answer.
    fn call(&mut self, what: &'static str, kind: u8, parts: &[&[u8]]) -> Result<Vec<u8>, GssError> {
        let lost = |e: io::Error| GssError::Gss {
            what,
            message: format!("the GSSAPI helper is gone: {e}"),
        };
        wire::write_message(&mut self.to, kind, parts).map_err(lost)?;
        match wire::read_message(&mut self.from).map_err(lost)? {
            Some((wire::OK, b)) => Ok(b),
            Some((wire::FAILED, b)) => Err(GssError::Gss {
                what,
                message: String::from_utf8_lossy(&b).into_owned(),
            }),
            Some(_) => Err(GssError::Protocol(
                "an unknown answer from the GSSAPI helper",
            )),
            None => Err(lost(io::ErrorKind::UnexpectedEof.into())),
        }
    }

    fn step(
        &mut self,
        what: &'static str,
        kind: u8,
        parts: &[&[u8]],
    ) -> Result<Progress, GssError> {
        let b = self.call(what, kind, parts)?;
        Progress::decode(&b).ok_or(GssError::Protocol("a short answer from the GSSAPI helper"))
    }

    fn wrap(&mut self, conf: bool, data: &[u8]) -> Result<Vec<u8>, GssError> {
        self.call("gss_wrap", op::WRAP, &[&[u8::from(conf)], data])
    }

    /// The token's contents and whether they were encrypted.
    fn unwrap(&mut self, token: &[u8]) -> Result<(Vec<u8>, bool), GssError> {
        let mut b = self.call("gss_unwrap", op::UNWRAP, &[token])?;
        let conf = b
            .pop()
            .ok_or(GssError::Protocol("a short answer from the GSSAPI helper"))?;
        Ok((b, conf != 0))
    }

    fn wrap_size_limit(&mut self, conf: bool, max_token: u32) -> Result<u32, GssError> {
        let m = max_token.to_be_bytes();
        let b = self.call(
            "gss_wrap_size_limit",
            op::WRAP_LIMIT,
            &[&[u8::from(conf), m[0], m[1], m[2], m[3]]],
        )?;
        let b: [u8; 4] = b[..]
            .try_into()
            .map_err(|_| GssError::Protocol("a short answer from the GSSAPI helper"))?;
        Ok(u32::from_be_bytes(b))
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        // Its input ending ends it; kill it anyway, and reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The established context as a security layer.
pub struct GssLayer {
    ctx: Mutex<Ctx>,
    conf: bool,
    max_plain: usize,
    max_token: usize,
}

impl SecurityLayer for GssLayer {
    fn wrap(&self, plain: &[u8]) -> io::Result<Vec<u8>> {
        let mut c = self.ctx.lock().unwrap_or_else(|p| p.into_inner());
        c.wrap(self.conf, plain).map_err(io::Error::other)
    }

    fn unwrap(&self, token: &[u8]) -> io::Result<Vec<u8>> {
        let mut c = self.ctx.lock().unwrap_or_else(|p| p.into_inner());
        let (data, conf) = c.unwrap(token).map_err(io::Error::other)?;
        if self.conf && !conf {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "an unencrypted packet under a confidentiality layer",
            ));
        }
        Ok(data)
    }

    fn max_plain(&self) -> usize {
        self.max_plain
    }

    fn max_token(&self) -> usize {
        self.max_token
    }
}

/// Builds the layer once both sides agreed: `peer_max` is the largest token the peer takes.
fn make_layer(mut ctx: Ctx, peer_max: u32) -> Result<GssLayer, GssError> {
    if peer_max == 0 {
        return Err(GssError::Protocol(
            "the peer takes no security layer packets",
        ));
    }
    let max_plain = ctx.wrap_size_limit(true, peer_max)?;
    if max_plain == 0 || max_plain >= peer_max {
        return Err(GssError::Protocol("no room for data in the peer's buffer"));
    }
    Ok(GssLayer {
        ctx: Mutex::new(ctx),
        conf: true,
        max_plain: max_plain as usize,
        max_token: MAX_BUFFER as usize,
    })
}

fn max_of(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[1], b[2], b[3]])
}

/// How an exchange went on.
pub enum Step {
    /// Send this to the peer and wait for its answer.
    Continue(Vec<u8>),
    /// Authenticated.
    Done(Outcome),
    /// (Client side) send this last message; once the server says it is complete, the
    /// outcome holds.
    Finish(Vec<u8>, Outcome),
}

/// What a finished exchange established.
pub struct Outcome {
    /// Server side: the client's identity, as cyrus-sasl names it (the principal without
    /// its realm when that is the server's default realm, else the whole principal).
    pub user: String,
    /// The security layer, if one was chosen.
    pub layer: Option<Arc<GssLayer>>,
}

impl Outcome {
    /// The layer's strength in bits (0 without a layer).
    pub fn ssf(&self) -> u32 {
        if self.layer.is_some() {
            ASSUMED_SSF
        } else {
            0
        }
    }
}

enum ServerState {
    Accepting {
        ctx: Ctx,
    },
    /// Sent the last context token; waiting for the client's empty answer.
    Established {
        ctx: Ctx,
        user: String,
        flags: u32,
    },
    /// Sent the offer of layers.
    Offered {
        ctx: Ctx,
        user: String,
        offered: u8,
    },
    Done,
}

/// One authentication, server side.
pub struct GssServer {
    state: ServerState,
    /// A security layer is required (plain TCP): confidentiality is the only offer.
    need_layer: bool,
}

impl GssServer {
    /// Starts an exchange accepting tickets for the `libvirt/…` principals of `keytab`.
    pub fn new(
        keytab: &Path,
        rcache: Option<&str>,
        need_layer: bool,
    ) -> Result<GssServer, GssError> {
        let mut env = vec![("KRB5_KTNAME", format!("FILE:{}", keytab.display()))];
        if let Some(rc) = rcache {
            env.push(("KRB5RCACHENAME", rc.to_string()));
        }
        let ctx = Ctx::start(&["accept"], &env)?;
        Ok(GssServer {
            state: ServerState::Accepting { ctx },
            need_layer,
        })
    }

    /// Takes the client's next message (AUTH_SASL_START's data, then each STEP's).
    pub fn step(&mut self, msg: &[u8]) -> Result<Step, GssError> {
        match std::mem::replace(&mut self.state, ServerState::Done) {
            ServerState::Accepting { mut ctx } => {
                let p = ctx.step("gss_accept_sec_context", op::ACCEPT, &[msg])?;
                if !p.complete {
                    self.state = ServerState::Accepting { ctx };
                    return Ok(Step::Continue(p.token));
                }
                let peer = ctx.call("gss_inquire_context", op::PEER, &[])?;
                let text = String::from_utf8(peer)
                    .map_err(|_| GssError::Protocol("a principal name that is not UTF-8"))?;
                let Some((user, target)) = text.split_once('\0') else {
                    return Err(GssError::Protocol("a short answer from the GSSAPI helper"));
                };
                // A ticket for another service of the keytab's is not for us.
                if target.split('/').next() != Some(SERVICE) {
                    return Err(GssError::Refused(format!(
                        "a ticket for '{target}', not for a {SERVICE}/ principal"
                    )));
                }
                let user = user.to_string();
                if p.token.is_empty() {
                    return self.offer(ctx, user, p.flags);
                }
                self.state = ServerState::Established {
                    ctx,
                    user,
                    flags: p.flags,
                };
                Ok(Step::Continue(p.token))
            }
            ServerState::Established { ctx, user, flags } => {
                if !msg.is_empty() {
                    return Err(GssError::Protocol("data where an empty answer was due"));
                }
                self.offer(ctx, user, flags)
            }
            ServerState::Offered {
                mut ctx,
                user,
                offered,
            } => {
                let (reply, _) = ctx.unwrap(msg)?;
                if reply.len() < 4 {
                    return Err(GssError::Protocol(
                        "the client's choice of layer is too short",
                    ));
                }
                let choice = reply[0];
                let authzid = std::str::from_utf8(&reply[4..]).map_err(|_| {
                    GssError::Protocol("an authorization identity that is not UTF-8")
                })?;
                // Acting for someone else is not supported; naming oneself is fine.
                if !authzid.is_empty()
                    && authzid != user
                    && authzid.split('@').next() != Some(&user)
                {
                    return Err(GssError::Refused(format!(
                        "'{user}' may not act as '{authzid}'"
                    )));
                }
                let layer = if choice & (LAYER_INTEGRITY | LAYER_CONFIDENTIALITY) == 0
                    && offered & LAYER_NONE != 0
                {
                    None
                } else if choice & (LAYER_INTEGRITY | LAYER_CONFIDENTIALITY) != 0
                    && offered & LAYER_CONFIDENTIALITY != 0
                {
                    Some(Arc::new(make_layer(ctx, max_of(&reply))?))
                } else {
                    return Err(GssError::Protocol("the client chose a layer not offered"));
                };
                Ok(Step::Done(Outcome { user, layer }))
            }
            ServerState::Done => Err(GssError::Protocol("the exchange is over")),
        }
    }

    fn offer(&mut self, mut ctx: Ctx, user: String, flags: u32) -> Result<Step, GssError> {
        let offer = if self.need_layer {
            if flags & GSS_C_CONF_FLAG == 0 || flags & GSS_C_INTEG_FLAG == 0 {
                return Err(GssError::Refused(
                    "the context has no confidentiality, which plain TCP needs".into(),
                ));
            }
            let m = MAX_BUFFER.to_be_bytes();
            [LAYER_CONFIDENTIALITY, m[1], m[2], m[3]]
        } else {
            // No layer, so no buffer (RFC 4752).
            [LAYER_NONE, 0, 0, 0]
        };
        let token = ctx.wrap(false, &offer)?;
        self.state = ServerState::Offered {
            ctx,
            user,
            offered: offer[0],
        };
        Ok(Step::Continue(token))
    }
}

enum ClientState {
    Initiating {
        ctx: Ctx,
        started: bool,
    },
    /// The context is established; waiting for the server's offer of layers.
    Established {
        ctx: Ctx,
    },
    Done,
}

/// One authentication, client side: the user's Kerberos credentials (their ccache) for
/// `libvirt/HOST`.
pub struct GssClient {
    state: ClientState,
    need_layer: bool,
}

impl GssClient {
    /// `host` is the server's name as the URI gives it; `need_layer` on plain TCP.
    pub fn new(host: &str, need_layer: bool) -> Result<GssClient, GssError> {
        let target = format!("{SERVICE}@{host}");
        Ok(GssClient {
            state: ClientState::Initiating {
                ctx: Ctx::start(&["initiate", &target], &[])?,
                started: false,
            },
            need_layer,
        })
    }

    /// The first message (AUTH_SASL_START's data).
    pub fn first(&mut self) -> Result<Vec<u8>, GssError> {
        match self.step(&[])? {
            Step::Continue(t) => Ok(t),
            _ => Err(GssError::Protocol("done before starting")),
        }
    }

    /// Takes the server's next message; gives the answer to send, the last of which comes
    /// with the outcome ([`Step::Finish`]).
    pub fn step(&mut self, msg: &[u8]) -> Result<Step, GssError> {
        match std::mem::replace(&mut self.state, ClientState::Done) {
            ClientState::Initiating { mut ctx, started } => {
                let token = if started { msg } else { &[] };
                let p = ctx.step(
                    "gss_init_sec_context",
                    op::INITIATE,
                    &[&[u8::from(started)], token],
                )?;
                self.state = if p.complete {
                    ClientState::Established { ctx }
                } else {
                    ClientState::Initiating { ctx, started: true }
                };
                Ok(Step::Continue(p.token))
            }
            ClientState::Established { mut ctx } => {
                let (offer, _) = ctx.unwrap(msg)?;
                if offer.len() != 4 {
                    return Err(GssError::Protocol(
                        "the server's offer of layers is not 4 bytes",
                    ));
                }
                let (answer, layer) = if offer[0] & LAYER_CONFIDENTIALITY != 0 && self.need_layer {
                    let server_max = max_of(&offer);
                    let m = MAX_BUFFER.to_be_bytes();
                    let answer = ctx.wrap(false, &[LAYER_CONFIDENTIALITY, m[1], m[2], m[3]])?;
                    (answer, Some(Arc::new(make_layer(ctx, server_max)?)))
                } else if offer[0] & LAYER_NONE != 0 && !self.need_layer {
                    (ctx.wrap(false, &[LAYER_NONE, 0, 0, 0])?, None)
                } else {
                    return Err(GssError::Refused(
                        "the server offers no security layer strong enough".into(),
                    ));
                };
                Ok(Step::Finish(
                    answer,
                    Outcome {
                        user: String::new(),
                        layer,
                    },
                ))
            }
            ClientState::Done => Err(GssError::Protocol("the exchange is over")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_helper_is_found_beside_the_program_or_in_libexec() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        let libexec = tmp.path().join("libexec");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&libexec).unwrap();
        let exe = bin.join("vireo");
        assert_eq!(helper_beside(&exe), None);
        std::fs::write(libexec.join(HELPER), "").unwrap();
        assert_eq!(helper_beside(&exe), Some(libexec.join(HELPER)));
        std::fs::write(bin.join(HELPER), "").unwrap();
        assert_eq!(helper_beside(&exe), Some(bin.join(HELPER)));
    }
}
