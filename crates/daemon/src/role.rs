//! What a daemon is: the monolithic `vireod`, one driver's daemon, or the proxy.

use vireo_proto::family::Family;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `vireod`: every driver in one process.
    Monolithic,
    /// `vireo-qemud`, `vireo-networkd`, …: one driver.
    Driver(Family),
    /// `vireo-proxyd`: the legacy socket, forwarding each call to its driver's daemon.
    Proxy,
}

impl Role {
    /// The daemon's name, which is also its binary's and its sockets' (`<name>-sock`).
    pub fn name(self) -> &'static str {
        match self {
            Role::Monolithic => "vireod",
            Role::Driver(f) => f.daemon(),
            Role::Proxy => "vireo-proxyd",
        }
    }

    /// The name of the read-write/read-only sockets clients use; the proxy takes the
    /// legacy (monolithic) path so that old URIs keep working.
    pub fn socket_name(self) -> &'static str {
        match self {
            Role::Proxy => "vireod",
            r => r.name(),
        }
    }

    /// Whether API family `f` is answered in this process.
    pub fn hosts(self, f: Family) -> bool {
        match self {
            Role::Monolithic => true,
            Role::Driver(d) => d == f,
            Role::Proxy => false,
        }
    }

    /// Whether a client may open `scheme:///…` here.
    pub fn accepts_scheme(self, scheme: &str) -> bool {
        match self {
            Role::Monolithic | Role::Proxy => {
                scheme == "vireo" || Family::from_scheme(scheme).is_some()
            }
            Role::Driver(f) => scheme == f.scheme() || scheme == "vireo",
        }
    }

    pub fn from_name(name: &str) -> Option<Role> {
        if name == "vireod" {
            return Some(Role::Monolithic);
        }
        if name == "vireo-proxyd" {
            return Some(Role::Proxy);
        }
        Family::ALL
            .into_iter()
            .find(|f| f.daemon() == name)
            .map(Role::Driver)
    }
}
