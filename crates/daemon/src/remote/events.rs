//! Event registration and delivery to clients: domain events (callback-style 316/317 and
//! legacy 167/168) and the events of the other objects (networks 313/314, storage pools
//! 368/369, node devices 374/375, secrets 380/381), which all share one shape:
//! `{int callbackID; …}`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use vireo_driver::events::{DeviceEvent, LifecycleEvent, ObjectEvent};
use vireo_driver::DriverError;
use vireo_proto::nodedev;
use vireo_proto::remote::*;
use vireo_proto::secret::{self, ConnectSecretEventRegisterAnyArgs};
use vireo_proto::storage::{self, PoolEventRegisterAnyArgs};
use vireo_proto::{RemoteError, REMOTE_PROGRAM, REMOTE_VERSION};

use super::{args, ret, void, ProcResult, RemoteClient, RemoteService};

/// libvirt sends every event MESSAGE with serial 1.
const EVENT_SERIAL: u32 = 1;
use vireo_proto::remote::event::MAX_ID as MAX_EVENT_ID;

struct Callback {
    id: i32,
    event_id: i32,
    filter: Option<Uuid>,
    /// Registered through the legacy procedure (no callback id on the wire).
    legacy: bool,
}

/// A registration for the events of networks, pools, node devices or secrets.
struct ObjectCallback {
    id: i32,
    /// The register procedure it came through (its family).
    register_proc: i32,
    event_id: i32,
    /// Only this object's events (its UUID or name), or all.
    key: Option<Vec<u8>>,
}

/// One client's event registrations and the tasks that deliver to it.
#[derive(Default)]
pub struct Callbacks {
    list: Vec<Callback>,
    task: Option<JoinHandle<()>>,
    objects: Vec<ObjectCallback>,
    object_task: Option<JoinHandle<()>>,
    /// Delivers device events (added, removed, removal failed).
    device_task: Option<JoinHandle<()>>,
}

impl Drop for Callbacks {
    fn drop(&mut self) {
        for t in [
            self.task.take(),
            self.object_task.take(),
            self.device_task.take(),
        ]
        .into_iter()
        .flatten()
        {
            t.abort();
        }
    }
}

pub(super) fn dispatch(
    s: &RemoteService,
    client: &Arc<RemoteClient>,
    p: i32,
    payload: &[u8],
) -> Option<ProcResult> {
    Some(match p {
        procs::CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY => (|| {
            let a: EventCallbackRegisterAnyArgs = args(payload)?;
            check_event_id(a.event_id)?;
            let id = s.next_callback_id.fetch_add(1, Ordering::Relaxed);
            register(
                s,
                client,
                Callback {
                    id,
                    event_id: a.event_id,
                    filter: a.dom.map(|d| d.uuid),
                    legacy: false,
                },
            )?;
            ret(EventCallbackRegisterAnyRet { callback_id: id })
        })(),
        procs::CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY => (|| {
            let a: EventCallbackDeregisterAnyArgs = args(payload)?;
            deregister(
                client,
                |c| !c.legacy && c.id == a.callback_id,
                || format!("callback ID {} not registered", a.callback_id),
            )
        })(),
        procs::CONNECT_DOMAIN_EVENT_REGISTER_ANY => (|| {
            let a: EventRegisterAnyArgs = args(payload)?;
            check_event_id(a.event_id)?;
            let dup = client
                .data
                .lock()
                .callbacks
                .list
                .iter()
                .any(|c| c.legacy && c.event_id == a.event_id);
            if dup {
                return Err(DriverError::InvalidArg(format!(
                    "domain event {} already registered",
                    a.event_id
                ))
                .into());
            }
            let id = s.next_callback_id.fetch_add(1, Ordering::Relaxed);
            register(
                s,
                client,
                Callback {
                    id,
                    event_id: a.event_id,
                    filter: None,
                    legacy: true,
                },
            )?;
            void()
        })(),
        procs::CONNECT_DOMAIN_EVENT_DEREGISTER_ANY => (|| {
            let a: EventRegisterAnyArgs = args(payload)?;
            deregister(
                client,
                |c| c.legacy && c.event_id == a.event_id,
                || format!("domain event {} not registered", a.event_id),
            )
        })(),
        procs::CONNECT_SECRET_EVENT_REGISTER_ANY
        | procs::CONNECT_STORAGE_POOL_EVENT_REGISTER_ANY
        | procs::CONNECT_NODE_DEVICE_EVENT_REGISTER_ANY
        | procs::CONNECT_NETWORK_EVENT_REGISTER_ANY => {
            (|| {
                // Each family: its highest event id, and the UUID (a device: the name) of
                // the object named.
                let (event_id, max, key) = if p == procs::CONNECT_SECRET_EVENT_REGISTER_ANY {
                    let a: ConnectSecretEventRegisterAnyArgs = args(payload)?;
                    let key = a.secret.map(|h| h.uuid.to_vec());
                    (a.event_id, secret::event::ID_VALUE_CHANGED, key)
                } else if p == procs::CONNECT_NETWORK_EVENT_REGISTER_ANY {
                    let a: vireo_proto::network::EventRegisterAnyArgs = args(payload)?;
                    let key = a.net.map(|h| h.uuid.to_vec());
                    // Metadata events are never sent: Vireo has no network metadata calls.
                    (
                        a.event_id,
                        vireo_proto::network::event::ID_METADATA_CHANGE,
                        key,
                    )
                } else if p == procs::CONNECT_NODE_DEVICE_EVENT_REGISTER_ANY {
                    let a: nodedev::NodeDeviceEventRegisterAnyArgs = args(payload)?;
                    let key = a.dev.map(|d| d.name.into_bytes());
                    (a.event_id, nodedev::event::ID_UPDATE, key)
                } else {
                    let a: PoolEventRegisterAnyArgs = args(payload)?;
                    let key = a.pool.map(|h| h.uuid.to_vec());
                    (a.event_id, storage::event::ID_REFRESH, key)
                };
                if !(0..=max).contains(&event_id) {
                    return Err(DriverError::InvalidArg(format!(
                        "unsupported event ID {event_id}"
                    ))
                    .into());
                }
                let id = s.next_callback_id.fetch_add(1, Ordering::Relaxed);
                register_object(
                    s,
                    client,
                    ObjectCallback {
                        id,
                        register_proc: p,
                        event_id,
                        key,
                    },
                )?;
                ret(EventCallbackRegisterAnyRet { callback_id: id })
            })()
        }
        procs::CONNECT_SECRET_EVENT_DEREGISTER_ANY
        | procs::CONNECT_STORAGE_POOL_EVENT_DEREGISTER_ANY
        | procs::CONNECT_NODE_DEVICE_EVENT_DEREGISTER_ANY
        | procs::CONNECT_NETWORK_EVENT_DEREGISTER_ANY => (|| {
            let a: EventCallbackDeregisterAnyArgs = args(payload)?;
            // Each deregister procedure follows its register procedure.
            let register = p - 1;
            let mut st = client.data.lock();
            let cbs = &mut st.callbacks;
            let before = cbs.objects.len();
            cbs.objects
                .retain(|c| !(c.register_proc == register && c.id == a.callback_id));
            if cbs.objects.len() == before {
                return Err(DriverError::InvalidArg(format!(
                    "callback ID {} not registered",
                    a.callback_id
                ))
                .into());
            }
            if cbs.objects.is_empty() {
                if let Some(t) = cbs.object_task.take() {
                    t.abort();
                }
            }
            void()
        })(),
        _ => return None,
    })
}

fn register_object(
    s: &RemoteService,
    client: &Arc<RemoteClient>,
    cb: ObjectCallback,
) -> Result<(), RemoteError> {
    let mut st = client.data.lock();
    let cbs = &mut st.callbacks;
    if cbs.list.len() + cbs.objects.len() >= MAX_CALLBACKS {
        return Err(DriverError::InvalidArg(format!(
            "too many event callbacks registered on this connection (limit {MAX_CALLBACKS})"
        ))
        .into());
    }
    cbs.objects.push(cb);
    if cbs.object_task.is_none() {
        // Subscribe before replying, so no event after the reply can be missed.
        let mut rx = s.objects.subscribe();
        let c = Arc::clone(client);
        cbs.object_task = Some(tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(ev) => deliver_object(&c, &ev),
                    Err(RecvError::Lagged(n)) => return lagged(&c, n),
                    Err(RecvError::Closed) => return,
                }
            }
        }));
    }
    Ok(())
}

fn deliver_object(client: &RemoteClient, ev: &ObjectEvent) {
    let ids: Vec<i32> = {
        let st = client.data.lock();
        st.callbacks
            .objects
            .iter()
            .filter(|c| c.register_proc == ev.register_proc && c.event_id == ev.event_id)
            .filter(|c| c.key.as_ref().is_none_or(|k| *k == ev.key))
            .map(|c| c.id)
            .collect()
    };
    for id in ids {
        let mut payload = Vec::with_capacity(4 + ev.body.len());
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&ev.body);
        client.send_message(
            REMOTE_PROGRAM,
            REMOTE_VERSION,
            ev.proc_,
            EVENT_SERIAL,
            &payload,
        );
    }
}

fn check_event_id(id: i32) -> Result<(), RemoteError> {
    if !(0..=MAX_EVENT_ID).contains(&id) {
        return Err(DriverError::InvalidArg(format!("unsupported event ID {id}")).into());
    }
    Ok(())
}

/// Registrations one client may hold: a client cannot make the daemon keep an endless list.
const MAX_CALLBACKS: usize = 1024;

fn register(
    s: &RemoteService,
    client: &Arc<RemoteClient>,
    cb: Callback,
) -> Result<(), RemoteError> {
    let mut st = client.data.lock();
    if st.callbacks.list.len() + st.callbacks.objects.len() >= MAX_CALLBACKS {
        return Err(DriverError::InvalidArg(format!(
            "too many event callbacks registered on this connection (limit {MAX_CALLBACKS})"
        ))
        .into());
    }
    // Lifecycle events come on their own bus, every other kind on the devices' one.
    let device = cb.event_id != event::ID_LIFECYCLE;
    st.callbacks.list.push(cb);
    // Subscribe before replying, so no event after the reply can be missed.
    if let (true, None, Some(q)) = (device, &st.callbacks.device_task, &s.qemu) {
        let rx = q.device_events().subscribe();
        st.callbacks.device_task = Some(delivery(rx, Arc::clone(client), deliver_device));
    }
    if st.callbacks.task.is_none() {
        let rx = s.events.subscribe();
        st.callbacks.task = Some(delivery(rx, Arc::clone(client), deliver));
    }
    Ok(())
}

/// A task that hands every event of `rx` to `deliver` for the client.
fn delivery<E: Clone + Send + 'static>(
    mut rx: tokio::sync::broadcast::Receiver<E>,
    c: Arc<RemoteClient>,
    deliver: fn(&RemoteClient, &E),
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(ev) => deliver(&c, &ev),
                Err(RecvError::Lagged(n)) => return lagged(&c, n),
                Err(RecvError::Closed) => return,
            }
        }
    })
}

/// A client whose delivery fell so far behind the daemon's events that some were lost:
/// as a client that leaves its messages unread, it is dropped (logged) rather than left
/// to believe it heard everything.
fn lagged(c: &RemoteClient, n: u64) {
    c.drop_overrun(&format!("{n} events passed it by"));
}

/// Removes the registrations `matches` selects (an error if there are none), and stops
/// delivery when none are left.
fn deregister(
    client: &RemoteClient,
    matches: impl Fn(&Callback) -> bool,
    missing: impl FnOnce() -> String,
) -> ProcResult {
    let mut st = client.data.lock();
    let cbs = &mut st.callbacks;
    let before = cbs.list.len();
    cbs.list.retain(|c| !matches(c));
    if cbs.list.len() == before {
        return Err(DriverError::InvalidArg(missing()).into());
    }
    if cbs.list.is_empty() {
        if let Some(t) = cbs.task.take() {
            t.abort();
        }
    }
    void()
}

fn deliver(client: &RemoteClient, ev: &LifecycleEvent) {
    let msgs: Vec<(i32, Vec<u8>)> = {
        let st = client.data.lock();
        st.callbacks
            .list
            .iter()
            .filter(|c| c.event_id == event::ID_LIFECYCLE)
            .filter(|c| c.filter.is_none_or(|u| u == ev.dom.uuid))
            .map(|c| {
                let msg = DomainEventLifecycleMsg {
                    dom: ev.dom.clone(),
                    event: ev.event,
                    detail: ev.detail,
                };
                if c.legacy {
                    (procs::DOMAIN_EVENT_LIFECYCLE, vireo_xdr::to_bytes(&msg))
                } else {
                    (
                        procs::DOMAIN_EVENT_CALLBACK_LIFECYCLE,
                        vireo_xdr::to_bytes(&DomainEventCallbackLifecycleMsg {
                            callback_id: c.id,
                            msg,
                        }),
                    )
                }
            })
            .collect()
    };
    send_all(client, msgs);
}

/// Sends event messages (procedure, payload) to the client.
fn send_all(client: &RemoteClient, msgs: Vec<(i32, Vec<u8>)>) {
    for (proc_, payload) in msgs {
        client.send_message(
            REMOTE_PROGRAM,
            REMOTE_VERSION,
            proc_,
            EVENT_SERIAL,
            &payload,
        );
    }
}

/// Sends a device event to the client's registrations for it: the callback message (and
/// for a legacy registration of DEVICE_REMOVED, the legacy one).
fn deliver_device(client: &RemoteClient, ev: &DeviceEvent) {
    let msgs: Vec<(i32, Vec<u8>)> = {
        let st = client.data.lock();
        st.callbacks
            .list
            .iter()
            .filter(|c| c.event_id == ev.event_id)
            .filter(|c| c.filter.is_none_or(|u| u == ev.dom.uuid))
            .filter_map(|c| {
                if let Some(f) = vireo_proto::domevent::forms(ev.event_id) {
                    return if c.legacy {
                        f.legacy.map(|p| (p, ev.body.clone()))
                    } else {
                        Some((f.callback, f.callback_message(c.id, &ev.body)))
                    };
                }
                let removed = DomainEventDeviceRemovedMsg {
                    dom: ev.dom.clone(),
                    dev_alias: ev.alias.clone(),
                };
                let flat = |callback_id| DomainEventCallbackDeviceMsg {
                    callback_id,
                    dom: ev.dom.clone(),
                    dev_alias: ev.alias.clone(),
                };
                Some(match (ev.event_id, c.legacy) {
                    (event::ID_METADATA_CHANGE, false) => (
                        procs::DOMAIN_EVENT_CALLBACK_METADATA_CHANGE,
                        vireo_xdr::to_bytes(&DomainEventCallbackMetadataChangeMsg {
                            callback_id: c.id,
                            dom: ev.dom.clone(),
                            type_: ev.detail,
                            nsuri: (!ev.alias.is_empty()).then(|| ev.alias.clone()),
                        }),
                    ),
                    (event::ID_DEVICE_REMOVED, true) => (
                        procs::DOMAIN_EVENT_DEVICE_REMOVED,
                        vireo_xdr::to_bytes(&removed),
                    ),
                    (event::ID_DEVICE_REMOVED, false) => (
                        procs::DOMAIN_EVENT_CALLBACK_DEVICE_REMOVED,
                        vireo_xdr::to_bytes(&DomainEventCallbackDeviceRemovedMsg {
                            callback_id: c.id,
                            msg: removed,
                        }),
                    ),
                    (event::ID_BLOCK_JOB, legacy) => {
                        let msg = DomainEventBlockJobMsg {
                            dom: ev.dom.clone(),
                            path: ev.alias.clone(),
                            type_: ev.detail,
                            status: ev.status,
                        };
                        if legacy {
                            (procs::DOMAIN_EVENT_BLOCK_JOB, vireo_xdr::to_bytes(&msg))
                        } else {
                            (
                                procs::DOMAIN_EVENT_CALLBACK_BLOCK_JOB,
                                vireo_xdr::to_bytes(&DomainEventCallbackBlockJobMsg {
                                    callback_id: c.id,
                                    msg,
                                }),
                            )
                        }
                    }
                    // The newer events have no legacy form.
                    (_, true) => return None,
                    (event::ID_MEMORY_DEVICE_SIZE_CHANGE, false) => (
                        procs::DOMAIN_EVENT_MEMORY_DEVICE_SIZE_CHANGE,
                        vireo_xdr::to_bytes(&DomainEventMemoryDeviceSizeChangeMsg {
                            callback_id: c.id,
                            dom: ev.dom.clone(),
                            alias: ev.alias.clone(),
                            size: ev.size,
                        }),
                    ),
                    (event::ID_AGENT_LIFECYCLE, false) => (
                        procs::DOMAIN_EVENT_CALLBACK_AGENT_LIFECYCLE,
                        vireo_xdr::to_bytes(&DomainEventCallbackAgentLifecycleMsg {
                            callback_id: c.id,
                            dom: ev.dom.clone(),
                            state: ev.detail,
                            reason: ev.status,
                        }),
                    ),
                    (event::ID_BLOCK_JOB_2, false) => (
                        procs::DOMAIN_EVENT_BLOCK_JOB_2,
                        vireo_xdr::to_bytes(&DomainEventBlockJob2Msg {
                            callback_id: c.id,
                            dom: ev.dom.clone(),
                            dst: ev.alias.clone(),
                            type_: ev.detail,
                            status: ev.status,
                        }),
                    ),
                    (vireo_proto::migrate::event::ID_MIGRATION_ITERATION, false) => (
                        procs::DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION,
                        vireo_xdr::to_bytes(&vireo_proto::migrate::IterationMsg {
                            callback_id: c.id,
                            dom: ev.dom.clone(),
                            iteration: ev.detail,
                        }),
                    ),
                    (vireo_proto::migrate::event::ID_JOB_COMPLETED, false) => (
                        procs::DOMAIN_EVENT_CALLBACK_JOB_COMPLETED,
                        vireo_xdr::to_bytes(&vireo_proto::migrate::JobCompletedMsg {
                            callback_id: c.id,
                            dom: ev.dom.clone(),
                            params: vireo_xdr::Array(ev.params.clone()),
                        }),
                    ),
                    (event::ID_DEVICE_ADDED, false) => (
                        procs::DOMAIN_EVENT_CALLBACK_DEVICE_ADDED,
                        vireo_xdr::to_bytes(&flat(c.id)),
                    ),
                    _ => (
                        procs::DOMAIN_EVENT_CALLBACK_DEVICE_REMOVAL_FAILED,
                        vireo_xdr::to_bytes(&flat(c.id)),
                    ),
                })
            })
            .collect()
    };
    send_all(client, msgs);
}

/// Drops a departing client's registrations (and so its delivery task).
pub(super) fn disconnect(client: &Arc<RemoteClient>) {
    let mut st = client.data.lock();
    st.callbacks = Callbacks::default();
}
