//! Where a daemon keeps its sockets, configuration and state.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Paths {
    /// Sockets and runtime state (`/run/vireo`).
    pub run_dir: PathBuf,
    /// Configuration and persistent object definitions (`/etc/vireo`).
    pub config_dir: PathBuf,
    /// Images, leases and other state (`/var/lib/vireo`).
    pub state_dir: PathBuf,
    /// Whether this is the system instance (root, or `--root` as root).
    pub privileged: bool,
    /// Under `--root` (tests, embedding): nothing of the host's is changed unasked (the
    /// `default` network is defined, not autostarted).
    pub embedded: bool,
}

impl Paths {
    /// Everything under one directory: `DIR/run/vireo`, `DIR/etc/vireo`, `DIR/var/lib/vireo`.
    pub fn under_root(root: &Path) -> Paths {
        Paths {
            run_dir: root.join("run/vireo"),
            config_dir: root.join("etc/vireo"),
            state_dir: root.join("var/lib/vireo"),
            privileged: is_root(),
            embedded: true,
        }
    }

    /// System paths as root, XDG paths otherwise (session mode).
    pub fn default_for_user() -> Paths {
        if is_root() {
            return Paths {
                run_dir: "/run/vireo".into(),
                config_dir: "/etc/vireo".into(),
                state_dir: "/var/lib/vireo".into(),
                privileged: true,
                embedded: false,
            };
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        let xdg = |var: &str, fallback: PathBuf| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .unwrap_or(fallback)
        };
        let runtime = xdg(
            "XDG_RUNTIME_DIR",
            std::env::temp_dir().join(format!("vireo-{}", uid())),
        );
        Paths {
            run_dir: runtime.join("vireo"),
            config_dir: xdg("XDG_CONFIG_HOME", home.join(".config")).join("vireo"),
            state_dir: xdg("XDG_DATA_HOME", home.join(".local/share")).join("vireo"),
            privileged: false,
            embedded: false,
        }
    }

    pub fn socket(&self, daemon: &str) -> PathBuf {
        self.run_dir.join(format!("{daemon}-sock"))
    }

    pub fn socket_ro(&self, daemon: &str) -> PathBuf {
        self.run_dir.join(format!("{daemon}-sock-ro"))
    }

    pub fn admin_socket(&self, daemon: &str) -> PathBuf {
        self.run_dir.join(format!("{daemon}-admin-sock"))
    }

    /// The URI a client gets when it asked for none.
    pub fn default_uri(&self, driver: &str) -> String {
        if self.privileged {
            format!("{driver}:///system")
        } else {
            format!("{driver}:///session")
        }
    }
}

pub fn uid() -> u32 {
    rustix::process::getuid().as_raw()
}

pub fn is_root() -> bool {
    uid() == 0
}
