//! The event bus: drivers publish, every connection's subscriber filters and delivers.

use std::sync::{Arc, OnceLock};

use tokio::sync::broadcast;
use vireo_proto::remote::Domain;

/// Events a subscriber may fall behind by before it loses the oldest.
const CAPACITY: usize = 4096;

/// A domain lifecycle event (`virDomainEventType` and its detail).
#[derive(Debug, Clone, PartialEq)]
pub struct LifecycleEvent {
    pub dom: Domain,
    pub event: i32,
    pub detail: i32,
}

/// A part of a domain changed: a device came or went (`event_id` DEVICE_REMOVED 15,
/// DEVICE_ADDED 19, DEVICE_REMOVAL_FAILED 22 of libvirt's `VIR_DOMAIN_EVENT_ID_*`; `alias`
/// the device's), or its metadata (METADATA_CHANGE 23; `detail` the metadata type, `alias`
/// the element's namespace URI, empty for the title and description).
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceEvent {
    pub dom: Domain,
    pub event_id: i32,
    /// The device's alias (a block job's disk: its target, or its image for BLOCK_JOB).
    pub alias: String,
    /// What happened (a block job's type).
    pub detail: i32,
    /// A block job's status.
    pub status: i32,
    /// A memory device's size now, in KiB (MEMORY_DEVICE_SIZE_CHANGE).
    pub size: u64,
    /// A finished job's statistics (JOB_COMPLETED 21).
    pub params: Vec<vireo_proto::typed::TypedParam>,
    /// The legacy message of an event of `vireo_proto::domevent` (REBOOT, TUNABLE, …).
    pub body: Vec<u8>,
}

/// An event about a network, storage pool, node device or secret. Every such event message
/// of libvirt's is `{int callbackID; …}`: the bus carries what follows the callback id, and
/// each registration that matches gets it with its own id in front.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectEvent {
    /// The register procedure whose callbacks receive it (e.g. 380 for secrets).
    pub register_proc: i32,
    /// The event id within that family (lifecycle 0, …).
    pub event_id: i32,
    /// What a registration for one object names it by (UUID bytes, or a device's name).
    pub key: Vec<u8>,
    /// The message procedure (e.g. 382).
    pub proc_: i32,
    /// The XDR of the message after the callback id.
    pub body: Vec<u8>,
}

/// Fan-out of events to every subscriber. A subscriber that lags loses the oldest events
/// rather than making publishers wait (and the daemon drops a client whose delivery lags:
/// it would otherwise miss events unknowingly). The channel (a few hundred KiB of slots)
/// is made at the first subscription: daemons nobody listens to for events never pay for
/// it, and an event published before anyone subscribed has nobody to reach anyway.
#[derive(Clone)]
pub struct EventBus<E = LifecycleEvent> {
    tx: Arc<OnceLock<broadcast::Sender<E>>>,
}

impl<E> Default for EventBus<E> {
    fn default() -> Self {
        EventBus {
            tx: Arc::new(OnceLock::new()),
        }
    }
}

impl<E: Clone> EventBus<E> {
    pub fn publish(&self, ev: E) {
        if let Some(tx) = self.tx.get() {
            let _ = tx.send(ev);
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<E> {
        self.tx
            .get_or_init(|| broadcast::channel(CAPACITY).0)
            .subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: i32) -> LifecycleEvent {
        LifecycleEvent {
            dom: Domain::default(),
            event: n,
            detail: 0,
        }
    }

    #[test]
    fn subscribers_get_what_is_published_after_they_subscribed() {
        let bus = EventBus::default();
        bus.publish(ev(1));
        let other = bus.clone();
        let mut rx = other.subscribe();
        bus.publish(ev(2));
        assert_eq!(rx.try_recv().unwrap().event, 2);
        assert!(rx.try_recv().is_err());
    }
}
