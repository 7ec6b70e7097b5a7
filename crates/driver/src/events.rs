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

/// Fan-out of events to every subscriber. A subscriber that lags loses the oldest events
/// rather than making publishers wait. The channel (a few hundred KiB of slots) is made at
/// the first subscription: daemons nobody listens to for events never pay for it, and an
/// event published before anyone subscribed has nobody to reach anyway.
#[derive(Clone, Default)]
pub struct EventBus {
    tx: Arc<OnceLock<broadcast::Sender<LifecycleEvent>>>,
}

impl EventBus {
    pub fn publish(&self, ev: LifecycleEvent) {
        if let Some(tx) = self.tx.get() {
            let _ = tx.send(ev);
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LifecycleEvent> {
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
