//! The network transports, as libvirt's client has them: `driver+tls://host[:port]/path`
//! (TLS on port 16514 by default, with libvirt's certificate files or `pkipath=DIR`,
//! `no_verify=1` and `no_sanity=1`) and `driver+tcp://host[:port]/path` (plain TCP, port 16509); and the
//! SASL login a daemon may ask for: SCRAM-SHA-256 with the credentials from libvirt's
//! `auth.conf` or typed at the terminal, or GSSAPI with the user's Kerberos tickets (on
//! plain TCP, with its confidentiality layer under the rest of the connection).

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use vireo_proto::auth::*;
use vireo_rpc::client::Connection;
use vireo_rpc::gssapi::{GssClient, Step, GSSAPI};
use vireo_rpc::sasl::{ScramClient, SCRAM_SHA_256};
use vireo_rpc::tls::{ClientFiles, DEFAULT_TCP_PORT, DEFAULT_TLS_PORT};

use crate::uri::Uri;
use crate::ClientError;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn transport_error(msg: String) -> ClientError {
    ClientError::Transport(msg)
}

/// Connects over the URI's network transport (`tls` or `tcp`).
pub async fn connect(uri: &Uri) -> Result<Connection, ClientError> {
    let host = uri
        .host
        .as_deref()
        .ok_or_else(|| ClientError::Uri("a remote URI needs a host name".into()))?;
    let tls = uri.transport.as_deref() == Some("tls");
    let port = uri.port.unwrap_or(if tls {
        DEFAULT_TLS_PORT
    } else {
        DEFAULT_TCP_PORT
    });
    if !tls {
        let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| {
                transport_error(format!(
                    "unable to connect to server at '{host}:{port}': {e}"
                ))
            })?;
        let _ = tcp.set_nodelay(true);
        return Ok(Connection::from_io(tcp));
    }
    let files = ClientFiles::locate(uri.param("pkipath").map(Path::new), is_root());
    let flag = |k: &str| uri.param(k).is_some_and(|v| v != "0");
    let stream = vireo_rpc::tls::connect(host, port, &files, flag("no_verify"), flag("no_sanity"))
        .await
        .map_err(|e| match e {
            vireo_rpc::tls::TlsError::Io(e) => transport_error(format!(
                "unable to connect to server at '{host}:{port}': {e}"
            )),
            e => transport_error(e.to_string()),
        })?;
    Ok(Connection::from_io(stream))
}

/// Logs in with SASL: the daemon answered AUTH_LIST with SASL. The mechanism is the URI's
/// (`auth=sasl.MECH`), else SCRAM-SHA-256 where offered (TLS), else GSSAPI.
pub async fn sasl_login(conn: &Connection, uri: &Uri) -> Result<(), ClientError> {
    let init: AuthSaslInitRet = typed(conn, procs::AUTH_SASL_INIT, &()).await?;
    let wanted = uri
        .param("auth")
        .and_then(|a| a.strip_prefix("sasl."))
        .map(str::to_ascii_uppercase);
    let offered: Vec<&str> = init
        .mechlist
        .split([',', ' '])
        .filter(|m| !m.is_empty())
        .collect();
    if let Some(w) = &wanted {
        if !offered.contains(&w.as_str()) {
            return Err(auth_failed(format!(
                "SASL mechanism {w} not supported by server"
            )));
        }
    }
    let use_gss = match wanted.as_deref() {
        Some(GSSAPI) => true,
        Some(_) => false,
        None => !offered.contains(&SCRAM_SHA_256) && offered.contains(&GSSAPI),
    };
    if use_gss {
        return gssapi_login(conn, uri).await;
    }
    if !offered.contains(&SCRAM_SHA_256) {
        return Err(auth_failed(format!(
            "no SASL mechanism in common with the server (it offers '{}'; Vireo's client has {SCRAM_SHA_256} and {GSSAPI})",
            init.mechlist
        )));
    }
    let (user, password) = credentials(uri)?;
    let mut scram = ScramClient::new(&user, &password).map_err(|e| auth_failed(e.to_string()))?;
    let start: AuthSaslStartRet = typed(
        conn,
        procs::AUTH_SASL_START,
        &AuthSaslStartArgs {
            mech: SCRAM_SHA_256.into(),
            nil: 0,
            data: SaslData(scram.first()),
        },
    )
    .await?;
    let fin = scram
        .step(&start.data.0)
        .map_err(|e| auth_failed(e.to_string()))?;
    let step: AuthSaslStepRet = typed(
        conn,
        procs::AUTH_SASL_STEP,
        &AuthSaslStepArgs {
            nil: 0,
            data: SaslData(fin),
        },
    )
    .await?;
    scram
        .finish(&step.data.0)
        .map_err(|e| auth_failed(e.to_string()))?;
    if step.complete == 0 {
        return Err(auth_failed("the server did not finish the exchange".into()));
    }
    Ok(())
}

/// GSSAPI with the user's Kerberos credentials for `libvirt/HOST`; on plain TCP the
/// confidentiality layer starts once the server completed the exchange.
async fn gssapi_login(conn: &Connection, uri: &Uri) -> Result<(), ClientError> {
    let host = uri
        .host
        .as_deref()
        .unwrap_or("localhost")
        .trim_matches(['[', ']']);
    let tls = uri.transport.as_deref() == Some("tls");
    let gss_err = |e: vireo_rpc::gssapi::GssError| auth_failed(e.to_string());
    let mut g = GssClient::new(host, !tls).map_err(gss_err)?;
    let first = g.first().map_err(gss_err)?;
    let mut reply: AuthSaslStartRet = typed(
        conn,
        procs::AUTH_SASL_START,
        &AuthSaslStartArgs {
            mech: GSSAPI.into(),
            nil: 0,
            data: SaslData(first),
        },
    )
    .await?;
    // A bounded number of rounds: Kerberos needs three.
    for _ in 0..8 {
        if reply.complete != 0 {
            return Err(auth_failed("the server finished the exchange early".into()));
        }
        let (data, outcome) = match g.step(&reply.data.0).map_err(gss_err)? {
            Step::Continue(d) => (d, None),
            Step::Finish(d, o) => (d, Some(o)),
            Step::Done(_) => return Err(auth_failed("GSSAPI ended without an answer".into())),
        };
        reply = typed(
            conn,
            procs::AUTH_SASL_STEP,
            &AuthSaslStepArgs {
                nil: 0,
                data: SaslData(data),
            },
        )
        .await?;
        if let Some(o) = outcome {
            if reply.complete == 0 {
                return Err(auth_failed("the server did not finish the exchange".into()));
            }
            if let Some(layer) = o.layer {
                if !conn.start_security_layer(layer) {
                    return Err(auth_failed("no security layer on this connection".into()));
                }
            } else if !tls {
                return Err(auth_failed("no security layer on plain TCP".into()));
            }
            return Ok(());
        }
    }
    Err(auth_failed("GSSAPI took too many steps".into()))
}

async fn typed<A: vireo_xdr::Xdr, R: vireo_xdr::Xdr>(
    conn: &Connection,
    proc_: i32,
    args: &A,
) -> Result<R, ClientError> {
    Ok(conn.call(proc_, args).await?)
}

fn auth_failed(msg: String) -> ClientError {
    ClientError::Remote(Box::new(vireo_proto::RemoteError::new(
        vireo_proto::error::code::AUTH_FAILED,
        vireo_proto::error::domain::RPC,
        format!("authentication failed: {msg}"),
    )))
}

/// libvirt's client authentication file: `$LIBVIRT_AUTH_FILE`, else `authfile=` in the
/// URI, else `$XDG_CONFIG_HOME/libvirt/auth.conf`, else `/etc/libvirt/auth.conf`.
fn auth_file(uri: &Uri) -> Option<PathBuf> {
    if let Some(f) = std::env::var_os("LIBVIRT_AUTH_FILE") {
        return Some(PathBuf::from(f));
    }
    if let Some(f) = uri.param("authfile") {
        return Some(PathBuf::from(f));
    }
    let user = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join("libvirt/auth.conf"));
    user.filter(|p| p.exists()).or_else(|| {
        let sys = PathBuf::from("/etc/libvirt/auth.conf");
        sys.exists().then_some(sys)
    })
}

/// A key of `auth.conf` for the `libvirt` service on `host`: the `[auth-libvirt-HOST]`
/// group (else `[auth-libvirt-default]`) names its `credentials=SET`, whose
/// `[credentials-SET]` group holds the key.
pub fn auth_conf_lookup(text: &str, host: &str, key: &str) -> Option<String> {
    let groups = ini(text);
    let get = |g: &str, k: &str| {
        groups
            .iter()
            .find(|(name, _)| name == g)
            .and_then(|(_, kv)| kv.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.clone()))
    };
    let set = get(&format!("auth-libvirt-{host}"), "credentials")
        .or_else(|| get("auth-libvirt-default", "credentials"))?;
    get(&format!("credentials-{set}"), key)
}

type Groups = Vec<(String, Vec<(String, String)>)>;

fn ini(text: &str) -> Groups {
    let mut groups: Groups = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        if let Some(name) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            groups.push((name.trim().to_string(), Vec::new()));
        } else if let (Some((k, v)), Some(g)) = (l.split_once('='), groups.last_mut()) {
            g.1.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    groups
}

/// The SASL user and password: from the URI's user part and `auth.conf`, else asked at
/// the terminal as virsh asks.
fn credentials(uri: &Uri) -> Result<(String, String), ClientError> {
    let host = uri.host.clone().unwrap_or_default();
    let conf = auth_file(uri).and_then(|p| std::fs::read_to_string(p).ok());
    let look = |k: &str| conf.as_deref().and_then(|t| auth_conf_lookup(t, &host, k));
    let user = uri
        .user
        .clone()
        .or_else(|| look("authname"))
        .or_else(|| look("username"));
    let password = look("password");
    let tty = std::io::stdin().is_terminal();
    let user = match user {
        Some(u) => u,
        None if tty => ask("Please enter your authentication name: ", true)?,
        None => {
            return Err(auth_failed(
                "no SASL user name: add one to auth.conf".into(),
            ))
        }
    };
    let password = match password {
        Some(p) => p,
        None if tty => ask("Please enter your password: ", false)?,
        None => return Err(auth_failed("no SASL password: add one to auth.conf".into())),
    };
    Ok((user, password))
}

fn ask(prompt: &str, echo: bool) -> Result<String, ClientError> {
    let io = |e: std::io::Error| auth_failed(format!("cannot read credentials: {e}"));
    eprint!("{prompt}");
    std::io::stderr().flush().map_err(io)?;
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    let stdin = std::io::stdin();
    let saved = (!echo).then(|| {
        let saved = tcgetattr(&stdin).ok()?;
        let mut t = saved.clone();
        t.local_modes.remove(LocalModes::ECHO);
        let _ = tcsetattr(&stdin, OptionalActions::Now, &t);
        Some(saved)
    });
    let mut line = String::new();
    let r = stdin.lock().read_line(&mut line);
    if let Some(Some(t)) = saved {
        // Echo is restored after the read.
        let _ = tcsetattr(&stdin, OptionalActions::Now, &t);
        eprintln!();
    }
    r.map_err(io)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_conf_as_libvirt_reads_it() {
        let text = "[credentials-test]\nauthname=fred\npassword=123456\n\n\
                    [credentials-other]\nauthname=joe\npassword=x\n\n\
                    [auth-libvirt-127.0.0.1]\ncredentials=test\n\n\
                    [auth-libvirt-default]\ncredentials=other\n";
        assert_eq!(
            auth_conf_lookup(text, "127.0.0.1", "authname").as_deref(),
            Some("fred")
        );
        assert_eq!(
            auth_conf_lookup(text, "127.0.0.1", "password").as_deref(),
            Some("123456")
        );
        assert_eq!(
            auth_conf_lookup(text, "elsewhere", "authname").as_deref(),
            Some("joe")
        );
        assert_eq!(auth_conf_lookup("", "h", "authname"), None);
    }
}
