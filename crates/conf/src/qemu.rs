//! The QEMU driver's settings (`qemu.conf`), the ones of libvirt's file that Vireo acts on:
//! which user and group QEMU runs as, whether its files are handed to that user for the
//! VM's run, and QEMU's own seccomp filter.

use std::path::Path;

use crate::daemon::Setting;
use crate::parse::{load, ConfFile};
use crate::ConfError;

/// `qemu.conf`, with Vireo's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuConf {
    /// `user`: a user name, or `+UID` for a number (libvirt's syntax). `None`: the
    /// daemon's default (see the daemon).
    pub user: Option<String>,
    /// `group`: a group name or `+GID`. `None`: the user's primary group.
    pub group: Option<String>,
    /// `dynamic_ownership` (default 1): the VM's disk images, kernel, initrd and NVRAM
    /// are given to QEMU's user while it runs and back to their owners afterwards.
    pub dynamic_ownership: bool,
    /// `seccomp_sandbox` (default 1): QEMU runs under its own seccomp filter
    /// (`-sandbox on,…`); 0 runs it without one. libvirt's -1 (QEMU's default) is 0 here.
    pub seccomp_sandbox: bool,
}

impl Default for QemuConf {
    fn default() -> Self {
        QemuConf {
            user: None,
            group: None,
            dynamic_ownership: true,
            seccomp_sandbox: true,
        }
    }
}

/// A `user` / `group` value: a name, or `+N` for the number N.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal<'a> {
    Name(&'a str),
    Id(u32),
}

/// Reads `user = "+0"` as the number 0 and `user = "qemu"` as a name.
pub fn principal(v: &str) -> Option<Principal<'_>> {
    match v.strip_prefix('+') {
        Some(n) => n.parse().ok().map(Principal::Id),
        None if !v.is_empty() => Some(Principal::Name(v)),
        None => None,
    }
}

impl QemuConf {
    /// The settings of `f`, and warnings for keys Vireo does not act on.
    pub fn from_conf(f: &ConfFile) -> Result<(QemuConf, Vec<String>), ConfError> {
        let mut c = QemuConf::default();
        let mut warnings = f.warnings.clone();
        for entry in &f.entries {
            let s = Setting {
                file: &f.path,
                entry,
            };
            match entry.key.as_str() {
                "user" | "group" => {
                    let v = s.string()?;
                    if principal(v).is_none() {
                        return Err(
                            s.error(format!("\"{v}\" is neither a name nor '+' and a number"))
                        );
                    }
                    if entry.key == "user" {
                        c.user = Some(v.to_string());
                    } else {
                        c.group = Some(v.to_string());
                    }
                }
                "dynamic_ownership" => c.dynamic_ownership = s.flag()?,
                "seccomp_sandbox" => {
                    c.seccomp_sandbox = match s.int()? {
                        1 => true,
                        0 | -1 => false,
                        _ => return Err(s.error("expected -1, 0 or 1")),
                    }
                }
                other => warnings.push(format!(
                    "{}:{}: {other}: not used by Vireo, ignored",
                    f.path, entry.line
                )),
            }
        }
        Ok((c, warnings))
    }

    /// Loads the file at `path`; a missing file gives the defaults.
    pub fn load(path: &Path) -> Result<(QemuConf, Vec<String>), ConfError> {
        match load(path)? {
            Some(f) => QemuConf::from_conf(&f),
            None => Ok((QemuConf::default(), Vec::new())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    fn read(text: &str) -> Result<(QemuConf, Vec<String>), ConfError> {
        QemuConf::from_conf(&parse("qemu.conf", text).expect("syntax"))
    }

    #[test]
    fn defaults_and_settings() {
        let (c, w) = read("").expect("empty");
        assert_eq!(c, QemuConf::default());
        assert!(w.is_empty());
        let (c, w) = read(
            "user = \"vireo-qemu\"\ngroup = \"+107\"\ndynamic_ownership = 0\n\
             seccomp_sandbox = 0\nvnc_listen = \"0.0.0.0\"\n",
        )
        .expect("file");
        assert_eq!(c.user.as_deref(), Some("vireo-qemu"));
        assert_eq!(c.group.as_deref(), Some("+107"));
        assert!(!c.dynamic_ownership);
        assert!(!c.seccomp_sandbox);
        assert_eq!(w, ["qemu.conf:5: vnc_listen: not used by Vireo, ignored"]);
        assert_eq!(principal("+0"), Some(Principal::Id(0)));
        assert_eq!(principal("qemu"), Some(Principal::Name("qemu")));
    }

    #[test]
    fn refusals() {
        for (text, key) in [
            ("user = \"+x\"\n", "user"),
            ("group = \"\"\n", "group"),
            ("user = 3\n", "user"),
            ("dynamic_ownership = 2\n", "dynamic_ownership"),
            ("seccomp_sandbox = 7\n", "seccomp_sandbox"),
        ] {
            let e = read(text).expect_err(text);
            assert!(
                matches!(&e, ConfError::Setting { key: k, line: 1, .. } if k == key),
                "{text}: {e}"
            );
        }
    }
}
