//! libvirt connection URIs: `driver[+transport]://[user@][host][:port]/path[?k=v&…]`, and
//! which socket a URI means.

use std::path::PathBuf;

use crate::ClientError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    pub driver: String,
    pub transport: Option<String>,
    pub user: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub path: String,
    pub params: Vec<(String, String)>,
}

impl Uri {
    pub fn parse(s: &str) -> Result<Uri, ClientError> {
        let bad = |why: &str| ClientError::Uri(format!("invalid URI '{s}': {why}"));
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| bad("expected 'driver://'"))?;
        if scheme.is_empty() {
            return Err(bad("missing driver"));
        }
        let (driver, transport) = match scheme.split_once('+') {
            Some((d, t)) => (d.to_string(), Some(t.to_string())),
            None => (scheme.to_string(), None),
        };
        let (main, query) = match rest.split_once('?') {
            Some((m, q)) => (m, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match main.find('/') {
            Some(i) => (&main[..i], main[i..].to_string()),
            None => (main, String::new()),
        };
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_string()), h),
            None => (None, authority),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => {
                let port = p.parse::<u16>().map_err(|_| bad("invalid port"))?;
                (h.to_string(), Some(port))
            }
            _ => (hostport.to_string(), None),
        };
        let mut params = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            params.push((percent_decode(k), percent_decode(v)));
        }
        Ok(Uri {
            driver,
            transport,
            user,
            host: Some(host).filter(|h| !h.is_empty()),
            port,
            path,
            params,
        })
    }

    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The name sent in CONNECT_OPEN: `name=` if given, else the URI without transport,
    /// host and parameters (the daemon at the other end is local to its URI).
    pub fn open_name(&self) -> String {
        match self.param("name") {
            Some(n) => n.to_string(),
            None => format!("{}://{}", self.driver, self.path),
        }
    }

    /// The daemon that serves this URI's driver in the modular setup.
    pub fn daemon_name(&self) -> String {
        let d = match self.driver.as_str() {
            "qemu" | "kvm" => "vireo-qemud",
            "network" => "vireo-networkd",
            "nwfilter" => "vireo-nwfilterd",
            "storage" => "vireo-storaged",
            "secret" => "vireo-secretd",
            "nodedev" => "vireo-nodedevd",
            "interface" => "vireo-interfaced",
            _ => "vireod",
        };
        d.into()
    }

    /// How to find the daemon: `mode=` in the URI, else `remote_mode` in the client
    /// configuration, else auto.
    pub fn mode(&self) -> Result<Mode, ClientError> {
        let from_conf;
        let m = match self.param("mode") {
            Some(m) => m,
            None => {
                from_conf = config_mode();
                from_conf.as_deref().unwrap_or("auto")
            }
        };
        match m {
            "auto" => Ok(Mode::Auto),
            "direct" => Ok(Mode::Direct),
            "legacy" => Ok(Mode::Legacy),
            other => Err(ClientError::Uri(format!(
                "unknown remote mode '{other}'; use auto, direct or legacy"
            ))),
        }
    }

    /// The sockets to try, in order, each with the daemon expected behind it. In auto
    /// mode the driver's own daemon comes first, then the legacy socket (monolithic
    /// `vireod` or `vireo-proxyd`); which one is used is decided by connecting, not by
    /// looking for socket files (a stale file proves nothing).
    pub fn sockets(&self, readonly: bool) -> Result<Vec<(String, PathBuf)>, ClientError> {
        match self.transport.as_deref() {
            None | Some("unix") => {}
            Some(t) => {
                return Err(ClientError::Uri(format!(
                    "transport '{t}' is not supported; use a local or '+unix' URI"
                )))
            }
        }
        if self.host.is_some() && self.transport.is_none() {
            return Err(ClientError::Uri(
                "remote hosts are not supported yet; use a local URI".into(),
            ));
        }
        if let Some(s) = self.param("socket") {
            return Ok(vec![(self.daemon_name(), PathBuf::from(s))]);
        }
        let suffix = if readonly { "-sock-ro" } else { "-sock" };
        let dir = match std::env::var_os("VIREO_RUN_DIR") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => match self.path.as_str() {
                "/system" => PathBuf::from("/run/vireo"),
                "/session" => session_run_dir(),
                p => {
                    return Err(ClientError::Uri(format!(
                        "unexpected path '{p}' in URI; use /system or /session"
                    )))
                }
            },
        };
        let at = |d: &str| (d.to_string(), dir.join(format!("{d}{suffix}")));
        let direct = self.daemon_name();
        Ok(match self.mode()? {
            Mode::Direct => vec![at(&direct)],
            Mode::Legacy => vec![at("vireod")],
            Mode::Auto if direct == "vireod" => vec![at("vireod")],
            Mode::Auto => vec![at(&direct), at("vireod")],
        })
    }
}

/// Where a client looks for its daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The driver's own daemon if it answers, else the legacy socket.
    Auto,
    /// Only the driver's own daemon.
    Direct,
    /// Only the legacy socket (monolithic vireod or vireo-proxyd).
    Legacy,
}

/// `remote_mode` from the client configuration (`$VIREO_CLIENT_CONF`, else
/// `/etc/vireo/vireo.conf` as root, `$XDG_CONFIG_HOME/vireo/vireo.conf` otherwise).
fn config_mode() -> Option<String> {
    let path = match std::env::var_os("VIREO_CLIENT_CONF") {
        Some(p) => PathBuf::from(p),
        None => {
            if rustix::process::getuid().is_root() {
                PathBuf::from("/etc/vireo/vireo.conf")
            } else {
                std::env::var_os("XDG_CONFIG_HOME")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?
                    .join("vireo/vireo.conf")
            }
        }
    };
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let l = l.split('#').next()?.trim();
        let (k, v) = l.split_once('=')?;
        (k.trim() == "remote_mode")
            .then(|| v.trim().trim_matches('"').trim_matches('\'').to_string())
    })
}

fn session_run_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("vireo"),
        _ => {
            let uid = rustix::process::getuid().as_raw();
            std::env::temp_dir()
                .join(format!("vireo-{uid}"))
                .join("vireo")
        }
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A UUID in libvirt's text forms (with or without dashes).
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = s.bytes().filter(|&c| c != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut u = [0u8; 16];
    for (i, chunk) in hex.chunks(2).enumerate() {
        let t = std::str::from_utf8(chunk).ok()?;
        u[i] = u8::from_str_radix(t, 16).ok()?;
    }
    Some(u)
}

pub fn format_uuid(u: &[u8; 16]) -> String {
    let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_libvirt_uris() {
        let u = Uri::parse("qemu+unix:///system?socket=/tmp/x%20y/sock&mode=direct").unwrap();
        assert_eq!(u.driver, "qemu");
        assert_eq!(u.transport.as_deref(), Some("unix"));
        assert_eq!(u.path, "/system");
        assert_eq!(u.param("socket"), Some("/tmp/x y/sock"));
        assert_eq!(u.param("mode"), Some("direct"));
        assert_eq!(u.open_name(), "qemu:///system");
        assert_eq!(
            u.sockets(false).unwrap()[0].1,
            PathBuf::from("/tmp/x y/sock")
        );
        let u = Uri::parse("qemu:///system").unwrap();
        let s = u.sockets(true).unwrap();
        assert_eq!(s[0].1, PathBuf::from("/run/vireo/vireo-qemud-sock-ro"));
        assert_eq!(s[1].1, PathBuf::from("/run/vireo/vireod-sock-ro"));
        let u = Uri::parse("network:///system?mode=direct").unwrap();
        let s = u.sockets(false).unwrap();
        assert_eq!(
            s,
            [(
                "vireo-networkd".to_string(),
                PathBuf::from("/run/vireo/vireo-networkd-sock")
            )]
        );
        let u = Uri::parse("qemu:///system?mode=legacy").unwrap();
        assert_eq!(u.sockets(false).unwrap()[0].0, "vireod");
        assert!(Uri::parse("qemu:///system?mode=odd")
            .unwrap()
            .sockets(false)
            .is_err());
        let u = Uri::parse("qemu+ssh://root@host:2222/system").unwrap();
        assert_eq!(u.user.as_deref(), Some("root"));
        assert_eq!(u.host.as_deref(), Some("host"));
        assert_eq!(u.port, Some(2222));
        assert_eq!(u.open_name(), "qemu:///system");
        assert!(u.sockets(false).is_err());
        assert!(Uri::parse("nonsense").is_err());
        assert!(Uri::parse("qemu:///bogus").unwrap().sockets(false).is_err());
    }

    #[test]
    fn uuids() {
        let u = parse_uuid("11111111-2222-3333-4444-555555555555").unwrap();
        assert_eq!(format_uuid(&u), "11111111-2222-3333-4444-555555555555");
        assert_eq!(parse_uuid("11111111222233334444555555555555"), Some(u));
        assert_eq!(parse_uuid("xyz"), None);
    }
}
