//! What the QEMU driver tells about its domains and their shims for the daemon's metrics:
//! domains by state, the shims it is connected to, when each last answered, the calls to
//! shims that got no answer, and the shims lost while their VM ran.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use vireo_rpc::client::Connection;

use crate::driver::QemuDriver;

/// libvirt's names of the domain states (`virDomainState`), by number.
pub const STATE_NAMES: [&str; 8] = [
    "nostate",
    "running",
    "blocked",
    "paused",
    "shutdown",
    "shutoff",
    "crashed",
    "pmsuspended",
];

/// The driver's counters about shims.
#[derive(Default)]
pub struct ShimCounters {
    /// Calls to a shim that got no answer (it went away, or its socket failed).
    pub(crate) failed: Arc<AtomicU64>,
    /// Shims that went away while their VM was running.
    pub(crate) lost: AtomicU64,
}

impl ShimCounters {
    /// Counts the calls on a new connection to a shim.
    pub(crate) fn track(&self, conn: &Connection) {
        conn.track_calls(Arc::clone(&self.failed));
    }
}

/// A snapshot of the domains and their shims.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Domains by state, indexed as [`STATE_NAMES`].
    pub by_state: [u64; 8],
    /// Each running domain with a shim: its name and when its shim last answered.
    pub shims: Vec<(String, Option<SystemTime>)>,
    pub shim_calls_failed: u64,
    pub shims_lost: u64,
}

impl QemuDriver {
    /// The domains by state and the health of their shims, now.
    pub fn health(&self) -> Health {
        let mut h = Health {
            shim_calls_failed: self.shim_counters.failed.load(Ordering::Relaxed),
            shims_lost: self.shim_counters.lost.load(Ordering::Relaxed),
            ..Health::default()
        };
        let reg = self.read();
        for o in reg.by_uuid.values() {
            let st = usize::try_from(o.state.0)
                .ok()
                .filter(|&s| s < STATE_NAMES.len())
                .unwrap_or(0);
            h.by_state[st] += 1;
            if let Some(c) = &o.shim {
                h.shims.push((o.def.name.clone(), c.last_answer()));
            }
        }
        h.shims.sort();
        h
    }
}
