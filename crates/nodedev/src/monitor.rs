//! Following the host's devices as they come, change and go, from the kernel's uevents
//! (never by reading sysfs over and over): libvirt's node device events, CREATED and
//! DELETED (`NODE_DEVICE_EVENT_LIFECYCLE`) and UPDATE (`NODE_DEVICE_EVENT_UPDATE`),
//! published on the daemon's object event bus for the clients registered for them
//! (`CONNECT_NODE_DEVICE_EVENT_REGISTER_ANY`).
//!
//! A thread waits on the uevent socket. It keeps the name of every device listed, by its
//! directory: a device that appears is CREATED, one that changes (or whose driver is bound
//! or unbound) is UPDATEd, one that goes is DELETED under the name it had. When the
//! kernel says events were lost (the socket's buffer overflowed), the devices are listed
//! again and the differences sent.

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use vireo_driver::events::{EventBus, ObjectEvent};
use vireo_proto::nodedev::{
    event, NodeDevice, NodeDeviceEventLifecycleBody, NodeDeviceEventUpdateBody,
};
use vireo_proto::remote::procs;

use crate::error::{NodeDevError, Result};
use crate::uevent::{Recv, Uevent, UeventSocket, MAX_MESSAGE};
use crate::NodeDevDriver;

/// What happened to a device, by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    Created(String),
    Deleted(String),
    Updated(String),
    /// A mediated device defined (kept to be made later) or no longer.
    Defined(String),
    Undefined(String),
}

/// The devices listed, by directory, kept up to date by the events.
#[derive(Default)]
struct Tracker {
    known: HashMap<PathBuf, String>,
}

/// The directory (inside the root) of the device at `devpath` (`/devices/…`).
fn sys_path(devpath: &str) -> PathBuf {
    Path::new("/sys").join(devpath.trim_start_matches('/'))
}

impl Tracker {
    /// What `ev` changes; `listed_at` names the device of a subsystem in a directory when
    /// it is one that is listed.
    fn on_event(
        &mut self,
        ev: &Uevent,
        listed_at: impl Fn(&str, &Path) -> Option<String>,
    ) -> Vec<Change> {
        let path = sys_path(&ev.devpath);
        let subsystem = ev.get("SUBSYSTEM");
        match ev.action.as_str() {
            "remove" => self.gone(&path).into_iter().collect(),
            // Renamed (an interface) or moved: gone from where it was, seen where it is.
            "move" => {
                let mut out: Vec<Change> = ev
                    .get("DEVPATH_OLD")
                    .and_then(|old| self.gone(&sys_path(old)))
                    .into_iter()
                    .collect();
                out.extend(self.seen(path, subsystem, &listed_at));
                out
            }
            "add" | "change" | "bind" | "unbind" => self.seen(path, subsystem, &listed_at),
            _ => Vec::new(),
        }
    }

    fn gone(&mut self, path: &Path) -> Option<Change> {
        self.known.remove(path).map(Change::Deleted)
    }

    /// The device in `path` is there, or changed.
    fn seen(
        &mut self,
        path: PathBuf,
        subsystem: Option<&str>,
        listed_at: &impl Fn(&str, &Path) -> Option<String>,
    ) -> Vec<Change> {
        let now = subsystem.and_then(|s| listed_at(s, &path));
        match (now, self.known.get(&path)) {
            (Some(name), None) => {
                self.known.insert(path, name.clone());
                vec![Change::Created(name)]
            }
            (Some(name), Some(old)) if *old == name => vec![Change::Updated(name)],
            // Known under another name now (udev gave a disk its serial number).
            (Some(name), Some(_)) => {
                let old = self.known.insert(path, name.clone());
                old.map(Change::Deleted)
                    .into_iter()
                    .chain([Change::Created(name)])
                    .collect()
            }
            // No longer a device that is listed.
            (None, Some(_)) => self.gone(&path).into_iter().collect(),
            (None, None) => Vec::new(),
        }
    }

    /// After lost events: the differences between what was known and what is `now`.
    fn resync(&mut self, now: HashMap<PathBuf, String>) -> Vec<Change> {
        let mut out: Vec<Change> = self
            .known
            .iter()
            .filter(|(p, n)| now.get(*p) != Some(*n))
            .map(|(_, n)| Change::Deleted(n.clone()))
            .collect();
        out.extend(
            now.iter()
                .filter(|(p, n)| self.known.get(*p) != Some(*n))
                .map(|(_, n)| Change::Created(n.clone())),
        );
        self.known = now;
        out
    }
}

/// Sends one change to the clients registered for it.
pub(crate) fn publish(bus: &EventBus<ObjectEvent>, change: Change) {
    let lifecycle = |name: String, what: i32| {
        let body = vireo_xdr::to_bytes(&NodeDeviceEventLifecycleBody {
            dev: NodeDevice { name: name.clone() },
            event: what,
            detail: 0,
        });
        (
            name,
            event::ID_LIFECYCLE,
            procs::NODE_DEVICE_EVENT_LIFECYCLE,
            body,
        )
    };
    let (name, event_id, proc_, body) = match change {
        Change::Created(n) => lifecycle(n, event::CREATED),
        Change::Deleted(n) => lifecycle(n, event::DELETED),
        Change::Defined(n) => lifecycle(n, event::DEFINED),
        Change::Undefined(n) => lifecycle(n, event::UNDEFINED),
        Change::Updated(n) => {
            let body = vireo_xdr::to_bytes(&NodeDeviceEventUpdateBody {
                dev: NodeDevice { name: n.clone() },
            });
            (n, event::ID_UPDATE, procs::NODE_DEVICE_EVENT_UPDATE, body)
        }
    };
    log::debug!("node device event {proc_} for {name}");
    bus.publish(ObjectEvent {
        register_proc: procs::CONNECT_NODE_DEVICE_EVENT_REGISTER_ANY,
        event_id,
        key: name.into_bytes(),
        proc_,
        body,
    });
}

/// Watches the kernel's device events for a driver over the host's own sysfs, for as long
/// as it lives.
pub struct DeviceMonitor {
    /// Written to stop the thread.
    wake: OwnedFd,
    thread: Option<JoinHandle<()>>,
}

/// A new eventfd (non-blocking, closed on exec).
fn eventfd() -> io::Result<OwnedFd> {
    use rustix::event::EventfdFlags;
    Ok(rustix::event::eventfd(
        0,
        EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK,
    )?)
}

impl DeviceMonitor {
    /// Starts following the devices of `driver`, publishing their events on `bus`. A
    /// driver that reads another tree than the host's own (a test's) has no events from
    /// the kernel: `None`. The socket is open before the devices are first listed, so no
    /// change after this returns is missed.
    pub fn start(
        driver: Arc<NodeDevDriver>,
        bus: EventBus<ObjectEvent>,
    ) -> Result<Option<DeviceMonitor>> {
        if !driver.reads_host() {
            return Ok(None);
        }
        let sock = UeventSocket::open().map_err(|e| {
            NodeDevError::io("cannot open a socket for the kernel's device events", e)
        })?;
        let tracker = Tracker {
            known: driver.listed_paths()?,
        };
        let wake = eventfd().map_err(|e| NodeDevError::io("cannot make an eventfd", e))?;
        let stop = wake
            .try_clone()
            .map_err(|e| NodeDevError::io("cannot duplicate an eventfd", e))?;
        let thread = std::thread::Builder::new()
            .name("nodedev-uevents".into())
            .spawn(move || follow(sock, stop, tracker, driver, bus))
            .map_err(|e| NodeDevError::io("cannot start the device event thread", e))?;
        Ok(Some(DeviceMonitor {
            wake,
            thread: Some(thread),
        }))
    }
}

impl Drop for DeviceMonitor {
    fn drop(&mut self) {
        let _ = rustix::io::write(&self.wake, &1u64.to_ne_bytes());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The thread: waits for events (or the word to stop) and publishes what they change.
fn follow(
    sock: UeventSocket,
    stop: OwnedFd,
    mut tracker: Tracker,
    driver: Arc<NodeDevDriver>,
    bus: EventBus<ObjectEvent>,
) {
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        use rustix::event::{poll, PollFd, PollFlags};
        let mut fds = [
            PollFd::new(&sock, PollFlags::IN),
            PollFd::new(&stop, PollFlags::IN),
        ];
        if let Err(e) = poll(&mut fds, None) {
            if e == rustix::io::Errno::INTR {
                continue;
            }
            let e = io::Error::from(e);
            log::error!("device events: poll failed: {e}; no more node device events");
            return;
        }
        if !fds[1].revents().is_empty() {
            return;
        }
        loop {
            match sock.recv(&mut buf) {
                Ok(Recv::Event(ev)) => {
                    let changes = tracker.on_event(&ev, |s, p| driver.listed_at(s, p));
                    for c in changes {
                        publish(&bus, c);
                    }
                }
                Ok(Recv::Ignored) => {}
                Ok(Recv::Empty) => break,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    log::warn!("device events were lost (too many at once): listing again");
                    match driver.listed_paths() {
                        Ok(now) => {
                            for c in tracker.resync(now) {
                                publish(&bus, c);
                            }
                        }
                        Err(e) => log::warn!("cannot list the devices: {e}"),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::error!("device events: {e}; no more node device events");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(msg: &str) -> Uevent {
        Uevent::parse(msg.replace('|', "\0").as_bytes()).unwrap()
    }

    /// Devices that are listed: interfaces (named with a fixed MAC) and disks.
    fn listed(subsystem: &str, p: &Path) -> Option<String> {
        let name = p.file_name()?.to_str()?;
        match subsystem {
            "net" => Some(format!("net_{name}_52_54_00_00_00_01")),
            "block" if !name.contains("loop") => Some(format!("block_{name}")),
            _ => None,
        }
    }

    #[test]
    fn created_updated_deleted() {
        let mut t = Tracker::default();
        let add = ev("add@/devices/virtual/net/vnd0|ACTION=add|SUBSYSTEM=net|INTERFACE=vnd0");
        assert_eq!(
            t.on_event(&add, listed),
            [Change::Created("net_vnd0_52_54_00_00_00_01".into())]
        );
        // Its queues are not devices of ours.
        let q = ev("add@/devices/virtual/net/vnd0/queues/rx-0|ACTION=add|SUBSYSTEM=queues");
        assert!(t.on_event(&q, listed).is_empty());
        let change = ev("change@/devices/virtual/net/vnd0|ACTION=change|SUBSYSTEM=net");
        assert_eq!(
            t.on_event(&change, listed),
            [Change::Updated("net_vnd0_52_54_00_00_00_01".into())]
        );
        // A loop device is not listed: neither its coming nor its going says anything.
        let lp = ev("add@/devices/virtual/block/loop0|ACTION=add|SUBSYSTEM=block");
        assert!(t.on_event(&lp, listed).is_empty());
        let rm = ev("remove@/devices/virtual/block/loop0|ACTION=remove|SUBSYSTEM=block");
        assert!(t.on_event(&rm, listed).is_empty());
        // Gone: under the name it had (its directory can no longer be read).
        let rm = ev("remove@/devices/virtual/net/vnd0|ACTION=remove|SUBSYSTEM=net");
        assert_eq!(
            t.on_event(&rm, |_, _| None),
            [Change::Deleted("net_vnd0_52_54_00_00_00_01".into())]
        );
        assert!(t.known.is_empty());
    }

    #[test]
    fn a_rename_is_a_move() {
        let mut t = Tracker::default();
        t.known.insert(
            sys_path("/devices/virtual/net/vnd0"),
            "net_vnd0_52_54_00_00_00_01".into(),
        );
        let mv = ev(
            "move@/devices/virtual/net/lan0|ACTION=move|SUBSYSTEM=net|DEVPATH_OLD=/devices/virtual/net/vnd0",
        );
        assert_eq!(
            t.on_event(&mv, listed),
            [
                Change::Deleted("net_vnd0_52_54_00_00_00_01".into()),
                Change::Created("net_lan0_52_54_00_00_00_01".into())
            ]
        );
    }

    #[test]
    fn lost_events_are_made_up_for() {
        let mut t = Tracker::default();
        t.known.insert("/sys/devices/a".into(), "block_a".into());
        t.known.insert("/sys/devices/b".into(), "block_b".into());
        let now: HashMap<PathBuf, String> = [
            ("/sys/devices/b".into(), "block_b".into()),
            ("/sys/devices/c".into(), "block_c".into()),
        ]
        .into();
        let mut changes = t.resync(now);
        changes.sort_by_key(|c| format!("{c:?}"));
        assert_eq!(
            changes,
            [
                Change::Created("block_c".into()),
                Change::Deleted("block_a".into())
            ]
        );
        assert_eq!(t.known.len(), 2);
    }

    #[test]
    fn events_go_on_the_bus_in_libvirts_layout() {
        let bus = EventBus::default();
        let mut rx = bus.subscribe();
        publish(&bus, Change::Deleted("net_v0".into()));
        publish(&bus, Change::Updated("net_v0".into()));
        let e = rx.try_recv().unwrap();
        assert_eq!(
            (e.register_proc, e.event_id, e.proc_),
            (374, event::ID_LIFECYCLE, 376)
        );
        assert_eq!(e.key, b"net_v0");
        assert_eq!(
            vireo_xdr::from_bytes::<NodeDeviceEventLifecycleBody>(&e.body).unwrap(),
            NodeDeviceEventLifecycleBody {
                dev: NodeDevice {
                    name: "net_v0".into()
                },
                event: event::DELETED,
                detail: 0
            }
        );
        let e = rx.try_recv().unwrap();
        assert_eq!((e.event_id, e.proc_), (event::ID_UPDATE, 377));
    }
}
