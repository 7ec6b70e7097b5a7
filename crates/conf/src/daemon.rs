//! The daemon's own settings (`vireo-qemud.conf`), in libvirtd.conf's terms.

use std::path::{Path, PathBuf};

use crate::parse::{load, ConfFile, Entry, Value};
use crate::ConfError;

/// Settings libvirtd knows that Vireo accepts but does not act on (yet):
/// they are skipped without a warning so that a libvirtd.conf can be reused.
const KNOWN_IGNORED: &[&str] = &[
    "tls_priority",
    "tcp_min_ssf",
    "log_level",
    "host_uuid",
    "audit_level",
    "audit_logging",
    "prio_workers",
    "max_queued_clients",
    "max_anonymous_clients",
    "min_workers",
    "admin_min_workers",
    "admin_max_workers",
    "admin_max_queued_clients",
    "admin_max_client_requests",
    "admin_keepalive_interval",
    "admin_keepalive_count",
    "ovs_timeout",
];

/// The daemon's settings, with libvirt's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// Group that owns the sockets (`unix_sock_group`); `None` keeps the
    /// daemon's own group.
    pub unix_sock_group: Option<String>,
    /// Mode of the read-only socket (`unix_sock_ro_perms`, default `0777`).
    pub unix_sock_ro_perms: u32,
    /// Mode of the read-write socket (`unix_sock_rw_perms`, default `0700`, or `0777` when
    /// `auth_unix_rw = "polkit"`: polkit decides who may use it, as in libvirt).
    pub unix_sock_rw_perms: u32,
    /// Mode of the admin socket (`unix_sock_admin_perms`, default `0700`).
    pub unix_sock_admin_perms: u32,
    /// Directory for the sockets (`unix_sock_dir`); `None` for the default.
    pub unix_sock_dir: Option<PathBuf>,
    /// Authentication on the read-only socket (`auth_unix_ro`): `"none"` (default) or
    /// `"polkit"` (action `org.libvirt.unix.monitor`).
    pub auth_unix_ro: String,
    /// Authentication on the read-write socket (`auth_unix_rw`): `"none"` (default) or
    /// `"polkit"` (action `org.libvirt.unix.manage`).
    pub auth_unix_rw: String,
    /// Most clients connected at once (`max_clients`, default 5000).
    pub max_clients: usize,
    /// Most worker threads (`max_workers`, default 20).
    pub max_workers: usize,
    /// Most requests one client may have in flight (`max_client_requests`,
    /// default 5).
    pub max_client_requests: usize,
    /// Seconds of silence before a keepalive probe (`keepalive_interval`,
    /// default 5); `-1` (or `0`) sends none.
    pub keepalive_interval: i64,
    /// Unanswered probes before the client is dropped (`keepalive_count`,
    /// default 5).
    pub keepalive_count: u32,
    /// `log_filters`, as written.
    pub log_filters: Option<String>,
    /// `log_outputs`, as written.
    pub log_outputs: Option<String>,
    /// Most clients on the admin socket (`admin_max_clients`, default 5000).
    pub admin_max_clients: usize,
    /// Vireo's own: the sockets also appear under libvirt's names and places
    /// (`libvirt_socket_paths = 1`), for clients that know no other.
    pub libvirt_socket_paths: bool,
    /// Vireo's own: where the node device driver reads `sys` (and `dev`) from
    /// (`sysfs_root`, default `/`): tests give a synthetic tree.
    pub sysfs_root: PathBuf,
    /// Remote access over TCP and TLS (used when the daemon runs with `--listen`).
    pub remote: RemoteAccess,
    /// Vireo's own: serve the metrics as `GET /metrics` over HTTP on this `ADDRESS:PORT`
    /// (`metrics_listen`, e.g. `"127.0.0.1:9177"`; `None`: not over HTTP).
    pub metrics_listen: Option<String>,
    /// Vireo's own: let `metrics_listen` be an address other than a loopback one
    /// (`metrics_allow_remote = 1`; the metrics are served without authentication).
    pub metrics_allow_remote: bool,
}

/// libvirtd.conf's settings for TCP and TLS clients, with libvirt's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteAccess {
    /// The daemon's `--listen` option: without it nothing listens on TCP, as with
    /// libvirtd.
    pub listen: bool,
    /// `listen_tls` (default 1).
    pub listen_tls: bool,
    /// `listen_tcp` (default 0).
    pub listen_tcp: bool,
    /// `tls_port` (default `"16514"`).
    pub tls_port: u16,
    /// `tcp_port` (default `"16509"`).
    pub tcp_port: u16,
    /// `listen_addr`: the address to listen on (`None`: every address).
    pub listen_addr: Option<String>,
    /// `auth_tcp`: `"sasl"` (default) or `"none"`.
    pub auth_tcp: String,
    /// `auth_tls`: `"none"` (default) or `"sasl"`.
    pub auth_tls: String,
    /// `key_file`, `cert_file`, `ca_file`, `crl_file`: the server's TLS files (`None`:
    /// libvirt's places).
    pub key_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub crl_file: Option<PathBuf>,
    /// `tls_no_verify_certificate`: accept clients without a valid certificate.
    pub tls_no_verify_certificate: bool,
    /// `tls_no_sanity_certificate`: do not check our own certificate at start.
    pub tls_no_sanity_certificate: bool,
    /// `tls_allowed_dn_list`: wildcards of the client DNs let in (`None`: any).
    pub tls_allowed_dn_list: Option<Vec<String>>,
    /// `sasl_allowed_username_list`: wildcards of the SASL users let in (`None`: any).
    pub sasl_allowed_username_list: Option<Vec<String>>,
    /// Vireo's own: the SASL users file (`sasl_users_file`; default `sasl-users` in the
    /// configuration directory), made with `vireo-saslpasswd`.
    pub sasl_users_file: Option<PathBuf>,
    /// Vireo's own: the Kerberos keytab with the `libvirt/HOST` keys SASL GSSAPI accepts
    /// (`sasl_keytab`; libvirt's `keytab:` in `/etc/sasl2/libvirt.conf`; default
    /// `krb5.tab` in the configuration directory).
    pub sasl_keytab: Option<PathBuf>,
}

impl Default for RemoteAccess {
    fn default() -> Self {
        RemoteAccess {
            listen: false,
            listen_tls: true,
            listen_tcp: false,
            tls_port: 16514,
            tcp_port: 16509,
            listen_addr: None,
            auth_tcp: "sasl".into(),
            auth_tls: "none".into(),
            key_file: None,
            cert_file: None,
            ca_file: None,
            crl_file: None,
            tls_no_verify_certificate: false,
            tls_no_sanity_certificate: false,
            tls_allowed_dn_list: None,
            sasl_allowed_username_list: None,
            sasl_users_file: None,
            sasl_keytab: None,
        }
    }
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            unix_sock_group: None,
            unix_sock_ro_perms: 0o777,
            unix_sock_rw_perms: 0o700,
            unix_sock_admin_perms: 0o700,
            unix_sock_dir: None,
            auth_unix_ro: "none".into(),
            auth_unix_rw: "none".into(),
            max_clients: 5000,
            max_workers: 20,
            max_client_requests: 5,
            keepalive_interval: 5,
            keepalive_count: 5,
            log_filters: None,
            log_outputs: None,
            admin_max_clients: 5000,
            libvirt_socket_paths: false,
            sysfs_root: PathBuf::from("/"),
            remote: RemoteAccess::default(),
            metrics_listen: None,
            metrics_allow_remote: false,
        }
    }
}

impl DaemonConfig {
    /// Reads the settings from a parsed file; anything the file does not
    /// set keeps its default.
    ///
    /// A value of the wrong type or out of range is an error naming
    /// `file:line: key:`. The warnings returned are the file's own
    /// ([`ConfFile::warnings`], such as a repeated key) followed by one for
    /// each unknown key; libvirtd's keys that Vireo does not use yet are
    /// skipped quietly.
    pub fn from_conf(f: &ConfFile) -> Result<(DaemonConfig, Vec<String>), ConfError> {
        let mut c = DaemonConfig::default();
        let mut warnings = f.warnings.clone();
        let mut rw_perms_set = false;
        for entry in &f.entries {
            let s = Setting {
                file: &f.path,
                entry,
            };
            match entry.key.as_str() {
                "unix_sock_group" => {
                    let group = s.string()?;
                    if group.is_empty() {
                        return Err(s.error("expected a group name, not an empty string"));
                    }
                    c.unix_sock_group = Some(group.to_string());
                }
                "unix_sock_ro_perms" => c.unix_sock_ro_perms = s.perms()?,
                "unix_sock_rw_perms" => {
                    c.unix_sock_rw_perms = s.perms()?;
                    rw_perms_set = true;
                }
                "unix_sock_admin_perms" => c.unix_sock_admin_perms = s.perms()?,
                "unix_sock_dir" => {
                    let dir = Path::new(s.string()?);
                    if !dir.is_absolute() {
                        return Err(s.error("expected an absolute path"));
                    }
                    c.unix_sock_dir = Some(dir.to_path_buf());
                }
                "auth_unix_ro" => c.auth_unix_ro = s.auth()?,
                "auth_unix_rw" => c.auth_unix_rw = s.auth()?,
                "max_clients" => c.max_clients = s.count(1)?,
                "max_workers" => c.max_workers = s.count(1)?,
                "max_client_requests" => c.max_client_requests = s.count(1)?,
                "admin_max_clients" => c.admin_max_clients = s.count(1)?,
                "keepalive_interval" => {
                    let v = s.int()?;
                    if !(-1..=i64::from(i32::MAX)).contains(&v) {
                        return Err(s.error(format!(
                            "expected -1 (no keepalive) or a number of seconds up to {}",
                            i32::MAX
                        )));
                    }
                    c.keepalive_interval = v;
                }
                "keepalive_count" => {
                    let v = s.int()?;
                    if v < 0 {
                        return Err(s.error("must not be negative"));
                    }
                    c.keepalive_count = u32::try_from(v)
                        .map_err(|_| s.error(format!("must be at most {}", u32::MAX)))?;
                }
                "libvirt_socket_paths" => {
                    c.libvirt_socket_paths = match s.int()? {
                        0 => false,
                        1 => true,
                        _ => return Err(s.error("expected 0 or 1")),
                    }
                }
                "sysfs_root" => {
                    let dir = Path::new(s.string()?);
                    if !dir.is_absolute() {
                        return Err(s.error("expected an absolute path"));
                    }
                    c.sysfs_root = dir.to_path_buf();
                }
                "listen_tls" => c.remote.listen_tls = s.flag()?,
                "listen_tcp" => c.remote.listen_tcp = s.flag()?,
                "tls_port" => c.remote.tls_port = s.port()?,
                "tcp_port" => c.remote.tcp_port = s.port()?,
                "listen_addr" => c.remote.listen_addr = Some(s.string()?.to_string()),
                "auth_tcp" => c.remote.auth_tcp = s.remote_auth()?,
                "auth_tls" => c.remote.auth_tls = s.remote_auth()?,
                "key_file" => c.remote.key_file = Some(s.path()?),
                "cert_file" => c.remote.cert_file = Some(s.path()?),
                "ca_file" => c.remote.ca_file = Some(s.path()?),
                "crl_file" => c.remote.crl_file = Some(s.path()?),
                "sasl_users_file" => c.remote.sasl_users_file = Some(s.path()?),
                "sasl_keytab" => c.remote.sasl_keytab = Some(s.path()?),
                "tls_no_verify_certificate" => c.remote.tls_no_verify_certificate = s.flag()?,
                "tls_no_sanity_certificate" => c.remote.tls_no_sanity_certificate = s.flag()?,
                "tls_allowed_dn_list" => c.remote.tls_allowed_dn_list = Some(s.strings()?),
                "sasl_allowed_username_list" => {
                    c.remote.sasl_allowed_username_list = Some(s.strings()?)
                }
                "metrics_listen" => {
                    let addr = s.string()?;
                    if addr.is_empty() {
                        return Err(s.error("expected ADDRESS:PORT, e.g. \"127.0.0.1:9177\""));
                    }
                    c.metrics_listen = Some(addr.to_string());
                }
                "metrics_allow_remote" => c.metrics_allow_remote = s.flag()?,
                "log_filters" => c.log_filters = Some(s.string()?.to_string()),
                "log_outputs" => c.log_outputs = Some(s.string()?.to_string()),
                key if KNOWN_IGNORED.contains(&key) => {}
                key => warnings.push(format!(
                    "{}:{}: unknown setting '{key}' ignored",
                    f.path, entry.line
                )),
            }
        }
        // libvirt opens the read-write socket to everyone when polkit guards it, unless
        // the file says otherwise.
        if c.auth_unix_rw == "polkit" && !rw_perms_set {
            c.unix_sock_rw_perms = 0o777;
        }
        Ok((c, warnings))
    }

    /// Loads and reads the file at `path`; a file that does not exist gives
    /// the defaults and no warnings.
    pub fn load(path: &Path) -> Result<(DaemonConfig, Vec<String>), ConfError> {
        match load(path)? {
            Some(f) => DaemonConfig::from_conf(&f),
            None => Ok((DaemonConfig::default(), Vec::new())),
        }
    }
}

/// One entry being read, for typed access with good messages.
pub(crate) struct Setting<'a> {
    pub(crate) file: &'a str,
    pub(crate) entry: &'a Entry,
}

impl Setting<'_> {
    pub(crate) fn error(&self, message: impl Into<String>) -> ConfError {
        ConfError::Setting {
            file: self.file.to_string(),
            line: self.entry.line,
            key: self.entry.key.clone(),
            message: message.into(),
        }
    }

    pub(crate) fn int(&self) -> Result<i64, ConfError> {
        match self.entry.value {
            Value::Int(i) => Ok(i),
            _ => Err(self.error("expected an integer")),
        }
    }

    pub(crate) fn string(&self) -> Result<&str, ConfError> {
        match &self.entry.value {
            Value::Str(s) => Ok(s),
            _ => Err(self.error("expected a string")),
        }
    }

    /// A non-negative count of at least `min`.
    fn count(&self, min: i64) -> Result<usize, ConfError> {
        let v = self.int()?;
        if v < min {
            return Err(self.error(format!("must be at least {min}")));
        }
        usize::try_from(v).map_err(|_| self.error("is too large"))
    }

    /// A file mode written as a string of octal digits, such as `"0770"`.
    fn perms(&self) -> Result<u32, ConfError> {
        let Value::Str(s) = &self.entry.value else {
            return Err(self.error("expected a string of octal digits such as \"0770\""));
        };
        if s.is_empty() || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return Err(self.error(format!("\"{s}\" is not an octal number")));
        }
        match u32::from_str_radix(s, 8) {
            Ok(mode) if mode <= 0o777 => Ok(mode),
            _ => Err(self.error(format!("\"{s}\" is more than 0777"))),
        }
    }

    /// 0 or 1.
    pub(crate) fn flag(&self) -> Result<bool, ConfError> {
        match self.int()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.error("expected 0 or 1")),
        }
    }

    /// A port number, written as a string as libvirt writes it (`"16514"`).
    fn port(&self) -> Result<u16, ConfError> {
        let v = match &self.entry.value {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            _ => return Err(self.error("expected a port number such as \"16514\"")),
        };
        match v.parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(self.error(format!("\"{v}\" is not a port number"))),
        }
    }

    fn path(&self) -> Result<PathBuf, ConfError> {
        let p = Path::new(self.string()?);
        if !p.is_absolute() {
            return Err(self.error("expected an absolute path"));
        }
        Ok(p.to_path_buf())
    }

    /// A list of strings: `["a", "b"]`.
    fn strings(&self) -> Result<Vec<String>, ConfError> {
        let Value::List(items) = &self.entry.value else {
            return Err(self.error("expected a list of strings such as [\"a\", \"b\"]"));
        };
        items
            .iter()
            .map(|v| match v {
                Value::Str(s) => Ok(s.clone()),
                _ => Err(self.error("expected a list of strings")),
            })
            .collect()
    }

    /// `auth_tcp` / `auth_tls`: "none" or "sasl".
    fn remote_auth(&self) -> Result<String, ConfError> {
        match self.string()? {
            v @ ("none" | "sasl") => Ok(v.to_string()),
            _ => Err(self.error("expected 'none' or 'sasl'")),
        }
    }

    /// `auth_unix_rw` / `auth_unix_ro`: "none" or "polkit".
    fn auth(&self) -> Result<String, ConfError> {
        match self.string()? {
            v @ ("none" | "polkit") => Ok(v.to_string()),
            _ => Err(self.error("expected 'none' or 'polkit'")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;

    fn read(text: &str) -> Result<(DaemonConfig, Vec<String>), ConfError> {
        let f = parse("vireo-qemud.conf", text)?;
        DaemonConfig::from_conf(&f)
    }

    fn bad(text: &str) -> String {
        match read(text) {
            Ok(c) => panic!("{text:?} was accepted: {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_from_an_empty_file() {
        let (c, w) = read("").unwrap();
        assert_eq!(c, DaemonConfig::default());
        assert!(w.is_empty());
        let d = DaemonConfig::default();
        assert_eq!(d.unix_sock_group, None);
        assert_eq!(d.unix_sock_ro_perms, 0o777);
        assert_eq!(d.unix_sock_rw_perms, 0o700);
        assert_eq!(d.unix_sock_admin_perms, 0o700);
        assert_eq!(d.unix_sock_dir, None);
        assert!(!d.libvirt_socket_paths);
        assert_eq!(d.auth_unix_ro, "none");
        assert_eq!(d.auth_unix_rw, "none");
        assert_eq!(d.max_clients, 5000);
        assert_eq!(d.max_workers, 20);
        assert_eq!(d.max_client_requests, 5);
        assert_eq!(d.keepalive_interval, 5);
        assert_eq!(d.keepalive_count, 5);
        assert_eq!(d.log_filters, None);
        assert_eq!(d.log_outputs, None);
        assert_eq!(d.admin_max_clients, 5000);
        // Comments alone change nothing either.
        assert_eq!(read("# max_clients = 1\n\n").unwrap().0, d);
    }

    #[test]
    fn metrics_settings() {
        let (c, w) =
            read("metrics_listen = \"127.0.0.1:9177\"\nmetrics_allow_remote = 1\n").unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.metrics_listen.as_deref(), Some("127.0.0.1:9177"));
        assert!(c.metrics_allow_remote);
        assert_eq!(DaemonConfig::default().metrics_listen, None);
        assert!(bad("metrics_listen = \"\"\n").contains("metrics_listen"));
        assert!(bad("metrics_listen = 9177\n").contains("metrics_listen"));
        assert!(bad("metrics_allow_remote = 2\n").contains("expected 0 or 1"));
    }

    #[test]
    fn a_full_file() {
        let text = r#"
# Vireo daemon configuration
unix_sock_group = "libvirt"
unix_sock_ro_perms = "0777"
unix_sock_rw_perms = "0770"
unix_sock_admin_perms = "700"
unix_sock_dir = "/run/vireo"
auth_unix_ro = "none"
auth_unix_rw = 'none'
max_clients = 100
max_workers = 8
max_client_requests = 10
keepalive_interval = -1
keepalive_count = 0
log_filters = """1:qemu 3:rpc"""
log_outputs = "3:syslog:vireo 1:file:/var/log/vireo/qemud.log"
admin_max_clients = 3
libvirt_socket_paths = 1

listen_tls = 0
listen_tcp = 1
tls_port = "16515"
tcp_port = "16509"
listen_addr = "0.0.0.0"
auth_tcp = "none"
tls_allowed_dn_list = ["C=GB,*", "CN=x"]

# libvirtd settings that are accepted quietly
tls_priority = "NORMAL"
log_level = 3
host_uuid = "00000000-0000-0000-0000-000000000000"
audit_level = 1
audit_logging = 0
prio_workers = 5
max_queued_clients = 1000
max_anonymous_clients = 20
min_workers = 5
admin_min_workers = 1
admin_max_workers = 5
admin_max_queued_clients = 5
admin_max_client_requests = 5
admin_keepalive_interval = 5
admin_keepalive_count = 5
ovs_timeout = 5
"#;
        let (c, w) = read(text).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            c,
            DaemonConfig {
                unix_sock_group: Some("libvirt".into()),
                unix_sock_ro_perms: 0o777,
                unix_sock_rw_perms: 0o770,
                unix_sock_admin_perms: 0o700,
                unix_sock_dir: Some(PathBuf::from("/run/vireo")),
                auth_unix_ro: "none".into(),
                auth_unix_rw: "none".into(),
                max_clients: 100,
                max_workers: 8,
                max_client_requests: 10,
                keepalive_interval: -1,
                keepalive_count: 0,
                log_filters: Some("1:qemu 3:rpc".into()),
                log_outputs: Some("3:syslog:vireo 1:file:/var/log/vireo/qemud.log".into()),
                admin_max_clients: 3,
                libvirt_socket_paths: true,
                sysfs_root: PathBuf::from("/"),
                remote: RemoteAccess {
                    listen_tls: false,
                    listen_tcp: true,
                    tls_port: 16515,
                    listen_addr: Some("0.0.0.0".into()),
                    auth_tcp: "none".into(),
                    tls_allowed_dn_list: Some(vec!["C=GB,*".into(), "CN=x".into()]),
                    ..RemoteAccess::default()
                },
                metrics_listen: None,
                metrics_allow_remote: false,
            }
        );
    }

    #[test]
    fn unknown_keys_and_duplicates_are_warnings() {
        let text = "max_clients = 7\nfrobnicate = 1\nmax_clients = 9\nmystery.key = [1]\n";
        let (c, w) = read(text).unwrap();
        assert_eq!(c.max_clients, 7);
        assert_eq!(
            w,
            vec![
                "vireo-qemud.conf:3: 'max_clients' is set again; the first setting, on line 1, is kept",
                "vireo-qemud.conf:2: unknown setting 'frobnicate' ignored",
                "vireo-qemud.conf:4: unknown setting 'mystery.key' ignored",
            ]
        );
    }

    #[test]
    fn perms_forms() {
        for (given, want) in [
            ("0", 0),
            ("000", 0),
            ("0770", 0o770),
            ("660", 0o660),
            ("0777", 0o777),
            ("0000000755", 0o755),
        ] {
            let (c, _) = read(&format!("unix_sock_rw_perms = \"{given}\"")).unwrap();
            assert_eq!(c.unix_sock_rw_perms, want, "{given}");
        }
    }

    #[test]
    fn keepalive_edges() {
        assert_eq!(
            read("keepalive_interval = 0").unwrap().0.keepalive_interval,
            0
        );
        assert_eq!(
            read("keepalive_interval = 2147483647")
                .unwrap()
                .0
                .keepalive_interval,
            2147483647
        );
        assert_eq!(
            read("keepalive_count = 4294967295")
                .unwrap()
                .0
                .keepalive_count,
            u32::MAX
        );
    }

    #[test]
    fn bad_values() {
        let cases: &[(&str, &str)] = &[
            ("\n\n\n\n\n\nmax_clients = \"100\"", "vireo-qemud.conf:7: max_clients: expected an integer"),
            ("max_clients = 0", "vireo-qemud.conf:1: max_clients: must be at least 1"),
            ("max_clients = -5", "vireo-qemud.conf:1: max_clients: must be at least 1"),
            ("max_clients = [1]", "vireo-qemud.conf:1: max_clients: expected an integer"),
            ("max_workers = 0", "vireo-qemud.conf:1: max_workers: must be at least 1"),
            ("max_workers = 'many'", "vireo-qemud.conf:1: max_workers: expected an integer"),
            ("max_client_requests = 0", "vireo-qemud.conf:1: max_client_requests: must be at least 1"),
            ("admin_max_clients = 0", "vireo-qemud.conf:1: admin_max_clients: must be at least 1"),
            ("keepalive_interval = -2", "vireo-qemud.conf:1: keepalive_interval: expected -1 (no keepalive) or a number of seconds up to 2147483647"),
            ("keepalive_interval = 2147483648", "vireo-qemud.conf:1: keepalive_interval: expected -1 (no keepalive) or a number of seconds up to 2147483647"),
            ("keepalive_interval = \"5\"", "vireo-qemud.conf:1: keepalive_interval: expected an integer"),
            ("keepalive_count = -1", "vireo-qemud.conf:1: keepalive_count: must not be negative"),
            ("keepalive_count = 4294967296", "vireo-qemud.conf:1: keepalive_count: must be at most 4294967295"),
            ("keepalive_count = '5'", "vireo-qemud.conf:1: keepalive_count: expected an integer"),
            ("unix_sock_rw_perms = 0770", "vireo-qemud.conf:1: unix_sock_rw_perms: expected a string of octal digits such as \"0770\""),
            ("unix_sock_ro_perms = \"0789\"", "vireo-qemud.conf:1: unix_sock_ro_perms: \"0789\" is not an octal number"),
            ("unix_sock_ro_perms = \"\"", "vireo-qemud.conf:1: unix_sock_ro_perms: \"\" is not an octal number"),
            ("unix_sock_ro_perms = \"+777\"", "vireo-qemud.conf:1: unix_sock_ro_perms: \"+777\" is not an octal number"),
            ("unix_sock_ro_perms = \"0o777\"", "vireo-qemud.conf:1: unix_sock_ro_perms: \"0o777\" is not an octal number"),
            ("unix_sock_admin_perms = \"1777\"", "vireo-qemud.conf:1: unix_sock_admin_perms: \"1777\" is more than 0777"),
            ("unix_sock_admin_perms = \"77777777777777777777777\"", "vireo-qemud.conf:1: unix_sock_admin_perms: \"77777777777777777777777\" is more than 0777"),
            ("unix_sock_group = 100", "vireo-qemud.conf:1: unix_sock_group: expected a string"),
            ("unix_sock_group = \"\"", "vireo-qemud.conf:1: unix_sock_group: expected a group name, not an empty string"),
            ("unix_sock_dir = \"run/vireo\"", "vireo-qemud.conf:1: unix_sock_dir: expected an absolute path"),
            ("unix_sock_dir = 1", "vireo-qemud.conf:1: unix_sock_dir: expected a string"),
            ("auth_unix_rw = \"kerberos\"", "vireo-qemud.conf:1: auth_unix_rw: expected 'none' or 'polkit'"),
            ("auth_unix_ro = \"sasl\"", "vireo-qemud.conf:1: auth_unix_ro: expected 'none' or 'polkit'"),
            ("auth_unix_ro = 0", "vireo-qemud.conf:1: auth_unix_ro: expected a string"),
            ("log_filters = 1", "vireo-qemud.conf:1: log_filters: expected a string"),
            ("log_outputs = [\"a\"]", "vireo-qemud.conf:1: log_outputs: expected a string"),
        ];
        for (text, want) in cases {
            assert_eq!(&bad(text), want, "for {text:?}");
        }
        // The error is a Setting error that knows its line.
        let e = read("\nmax_clients = 0").map(|_| ()).unwrap_err();
        assert!(matches!(&e, ConfError::Setting { key, .. } if key == "max_clients"));
        assert_eq!(e.line(), Some(2));
        // A syntax error comes through unchanged.
        assert_eq!(
            bad("max_clients ="),
            "vireo-qemud.conf:1: expected a value after '='"
        );
    }

    #[test]
    fn polkit_on_the_unix_sockets() {
        let (c, w) = read("auth_unix_rw = \"polkit\"\nauth_unix_ro = \"polkit\"\n").unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.auth_unix_rw, "polkit");
        assert_eq!(c.auth_unix_ro, "polkit");
        // polkit decides who may use the read-write socket: it is open to all, as in
        // libvirt, unless the file sets its mode (before or after).
        assert_eq!(c.unix_sock_rw_perms, 0o777);
        assert_eq!(c.unix_sock_ro_perms, 0o777);
        for text in [
            "auth_unix_rw = \"polkit\"\nunix_sock_rw_perms = \"0770\"\n",
            "unix_sock_rw_perms = \"0770\"\nauth_unix_rw = \"polkit\"\n",
        ] {
            assert_eq!(read(text).unwrap().0.unix_sock_rw_perms, 0o770, "{text}");
        }
        // Only the read-write socket's own setting opens it.
        let (c, _) = read("auth_unix_ro = \"polkit\"\n").unwrap();
        assert_eq!(c.unix_sock_rw_perms, 0o700);
        assert_eq!(c.auth_unix_rw, "none");
    }

    #[test]
    fn load_missing_gives_defaults() {
        let dir = std::env::temp_dir().join(format!("vireo-conf-daemon-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (c, w) = DaemonConfig::load(&dir.join("absent.conf")).unwrap();
        assert_eq!(c, DaemonConfig::default());
        assert!(w.is_empty());

        let path = dir.join("vireo-qemud.conf");
        std::fs::write(&path, "max_workers = 3\nbogus = 1\n").unwrap();
        let (c, w) = DaemonConfig::load(&path).unwrap();
        assert_eq!(c.max_workers, 3);
        assert_eq!(
            w,
            vec![format!(
                "{}:2: unknown setting 'bogus' ignored",
                path.display()
            )]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
