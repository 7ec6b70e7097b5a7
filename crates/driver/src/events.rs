//! The event bus: drivers publish, every connection's subscriber filters and delivers.

use tokio::sync::broadcast;
use vireo_proto::remote::Domain;

/// A domain lifecycle event (`virDomainEventType` and its detail).
#[derive(Debug, Clone, PartialEq)]
pub struct LifecycleEvent {
    pub dom: Domain,
    pub event: i32,
    pub detail: i32,
}

/// Fan-out of events to every subscriber. A subscriber that lags loses the oldest events
/// rather than making publishers wait.
#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<LifecycleEvent>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            tx: broadcast::channel(4096).0,
        }
    }
}

impl EventBus {
    pub fn publish(&self, ev: LifecycleEvent) {
        let _ = self.tx.send(ev);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LifecycleEvent> {
        self.tx.subscribe()
    }
}
