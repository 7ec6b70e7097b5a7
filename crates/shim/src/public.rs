//! The VM's own endpoint: `<run>/vm/<NAME>-sock` (read-write) and `<NAME>-sock-ro`
//! (read-only), libvirt's REMOTE program for this one domain, reachable by the unmodified
//! virsh and python-libvirt with `qemu+unix:///system?socket=<run>/vm/<NAME>-sock` — also
//! while no daemon runs. The sockets take the daemon's permissions (and group); a
//! read-only client may only call what libvirt lets a read-only connection call.
//!
//! The calls about the domain are the shim's own (the same the daemon forwards here);
//! this module adds what a client needs that the daemon answers otherwise (lookups by name
//! and id, connection facts, event registrations, the console) and refuses, clearly, what
//! only the daemon can do (definitions, listings, other drivers). What a client does here
//! reaches the daemon as it happens: the daemon is this shim's client and gets its events.

use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use vireo_proto::error::{code, domain as errdom};
use vireo_proto::family::{family_of, Family};
use vireo_proto::feature;
use vireo_proto::remote::*;
use vireo_proto::{
    Header, RemoteError, QEMU_PROC_DOMAIN_MONITOR_COMMAND, QEMU_PROGRAM, REMOTE_PROGRAM,
    REMOTE_VERSION,
};
use vireo_rpc::server::{Client, Dispatch, Outcome, Server};

use crate::serve::{args, handle, ret, ShimService};
use crate::vm::Vm;

/// Registrations one client may hold.
const MAX_CALLBACKS: usize = 256;

/// A client's event registrations: (callback id, event id).
#[derive(Default)]
pub struct Registrations {
    list: Mutex<Vec<(i32, i32)>>,
    next: AtomicI32,
}

impl Registrations {
    fn list(&self) -> std::sync::MutexGuard<'_, Vec<(i32, i32)>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The socket paths of the VM named `name` under the daemon's runtime directory.
pub fn socket_paths(run_dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = run_dir.join("vm");
    (
        dir.join(format!("{name}-sock")),
        dir.join(format!("{name}-sock-ro")),
    )
}

fn error(code_: i32, msg: String) -> RemoteError {
    RemoteError::new(code_, errdom::QEMU, msg)
}

/// A call only the QEMU daemon (or another driver's daemon) can answer.
fn needs_daemon(p: i32) -> bool {
    if family_of(p) != Family::Hypervisor {
        return true;
    }
    matches!(
        p,
        procs::CONNECT_LIST_ALL_DOMAINS
            | procs::CONNECT_LIST_DOMAINS
            | procs::CONNECT_LIST_DEFINED_DOMAINS
            | procs::CONNECT_NUM_OF_DOMAINS
            | procs::CONNECT_NUM_OF_DEFINED_DOMAINS
            | procs::DOMAIN_DEFINE_XML
            | procs::DOMAIN_DEFINE_XML_FLAGS
            | procs::DOMAIN_UNDEFINE
            | procs::DOMAIN_UNDEFINE_FLAGS
            | procs::DOMAIN_CREATE
            | procs::DOMAIN_CREATE_WITH_FLAGS
            | procs::DOMAIN_CREATE_XML
            | procs::DOMAIN_GET_AUTOSTART
            | procs::DOMAIN_SET_AUTOSTART
            | procs::DOMAIN_IS_PERSISTENT
            | procs::DOMAIN_ATTACH_DEVICE
            | procs::DOMAIN_ATTACH_DEVICE_FLAGS
            | procs::DOMAIN_DETACH_DEVICE
            | procs::DOMAIN_DETACH_DEVICE_FLAGS
            | procs::DOMAIN_UPDATE_DEVICE_FLAGS
            | procs::DOMAIN_DETACH_DEVICE_ALIAS
            | procs::DOMAIN_MANAGED_SAVE
            | procs::DOMAIN_SAVE_FLAGS
            | procs::DOMAIN_RESTORE_FLAGS
            | procs::DOMAIN_SNAPSHOT_CREATE_XML
            | procs::DOMAIN_MIGRATE_BEGIN3_PARAMS
            | procs::DOMAIN_MIGRATE_PERFORM3_PARAMS
            | procs::DOMAIN_MIGRATE_PREPARE3_PARAMS
            | procs::CONNECT_GET_CAPABILITIES
            | procs::CONNECT_GET_DOMAIN_CAPABILITIES
    )
}

/// Answers the calls this endpoint treats itself; None passes the call on to the shim's
/// ordinary dispatch.
pub fn call(
    s: &Arc<ShimService>,
    client: &Arc<Client<Registrations>>,
    h: &Header,
    payload: &[u8],
) -> Option<Dispatch> {
    let vm = s.vm();
    let p = h.proc_;
    let now = |r: Result<Vec<u8>, RemoteError>| Some(Dispatch::Now(r.into()));
    if h.prog == QEMU_PROGRAM && client.readonly {
        return now(Err(denied(if p == QEMU_PROC_DOMAIN_MONITOR_COMMAND {
            "virDomainQemuMonitorCommand"
        } else {
            "virDomainQemuAgentCommand"
        })));
    }
    if h.prog != REMOTE_PROGRAM {
        return None;
    }
    if client.readonly && !allowed_read_only(p) {
        let name = proc_name(p).unwrap_or("this call");
        return now(Err(denied(name)));
    }
    // The secure XML (passwords) is not for read-only connections, as in libvirt.
    if client.readonly && p == procs::DOMAIN_GET_XML_DESC {
        let secure = args::<DomainFlagsArgs>(payload).is_ok_and(|a| a.flags & 1 != 0);
        if secure {
            return now(Err(denied("virDomainGetXMLDesc with secure flag")));
        }
    }
    if needs_daemon(p) {
        let name = proc_name(p).unwrap_or("this call");
        return now(Err(error(
            code::NO_SUPPORT,
            format!(
                "this function is not supported by the connection driver: {name} needs the \
                 QEMU daemon; this is the endpoint of domain '{}' alone",
                vm.def.name
            ),
        )));
    }
    let r = match p {
        procs::CONNECT_SUPPORTS_FEATURE => {
            args::<ConnectSupportsFeatureArgs>(payload).and_then(|a| {
                let supported = i32::from(matches!(
                    a.feature,
                    feature::REMOTE_EVENT_CALLBACK
                        | feature::REMOTE_CLOSE_CALLBACK
                        | feature::TYPED_PARAM_STRING
                ));
                ret(ConnectSupportsFeatureRet { supported })
            })
        }
        procs::CONNECT_REGISTER_CLOSE_CALLBACK | procs::CONNECT_UNREGISTER_CLOSE_CALLBACK => {
            Ok(Vec::new())
        }
        procs::CONNECT_GET_TYPE => ret(ConnectGetTypeRet {
            type_: "QEMU".into(),
        }),
        procs::CONNECT_GET_VERSION => ret(ConnectGetVersionRet {
            hv_ver: s.hv_version(),
        }),
        procs::CONNECT_GET_LIB_VERSION => ret(ConnectGetLibVersionRet {
            lib_ver: LIB_VERSION,
        }),
        procs::CONNECT_GET_HOSTNAME => ret(ConnectGetHostnameRet {
            hostname: vireo_driver::host::hostname(),
        }),
        procs::CONNECT_GET_URI => ret(ConnectGetUriRet {
            uri: "qemu:///system".into(),
        }),
        procs::CONNECT_IS_SECURE => ret(ConnectIsSecureRet { secure: 1 }),
        procs::DOMAIN_LOOKUP_BY_NAME => args::<DomainLookupByNameArgs>(payload).and_then(|a| {
            if a.name == vm.def.name {
                ret(DomainRet { dom: handle(vm) })
            } else {
                Err(no_domain(format!(
                    "no domain with matching name '{}'",
                    a.name
                )))
            }
        }),
        procs::DOMAIN_LOOKUP_BY_ID => args::<DomainLookupByIdArgs>(payload).and_then(|a| {
            if a.id == handle(vm).id {
                ret(DomainRet { dom: handle(vm) })
            } else {
                Err(no_domain(format!("no domain with matching id {}", a.id)))
            }
        }),
        procs::DOMAIN_IS_ACTIVE => args::<DomainArgs>(payload).and_then(|a| {
            crate::serve::check_uuid(vm, &a.dom.uuid)?;
            ret(DomainIsActiveRet {
                active: i32::from(vm.state().0 != state::SHUTOFF),
            })
        }),
        // A running domain has no managed save image (starting it took the image).
        procs::DOMAIN_HAS_MANAGED_SAVE_IMAGE => args::<DomainFlagsArgs>(payload).and_then(|a| {
            crate::serve::check_uuid(vm, &a.dom.uuid)?;
            ret(DomainHasManagedSaveImageRet { result: 0 })
        }),
        procs::CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY => register(vm, client, payload),
        procs::CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY => {
            args::<EventCallbackDeregisterAnyArgs>(payload).and_then(|a| {
                let mut list = client.data.list();
                let before = list.len();
                list.retain(|(id, _)| *id != a.callback_id);
                if list.len() == before {
                    return Err(error(
                        code::INVALID_ARG,
                        format!("invalid argument: callback ID {} not found", a.callback_id),
                    ));
                }
                Ok(Vec::new())
            })
        }
        procs::CONNECT_DOMAIN_EVENT_REGISTER_ANY | procs::CONNECT_DOMAIN_EVENT_REGISTER => {
            Err(error(
                code::NO_SUPPORT,
                "this function is not supported by the connection driver: the VM's endpoint \
                 delivers events to callback registrations only"
                    .into(),
            ))
        }
        procs::DOMAIN_OPEN_CONSOLE => return Some(open_console(s, client, h, payload)),
        _ => return None,
    };
    now(r)
}

fn denied(name: &str) -> RemoteError {
    RemoteError::new(
        code::OPERATION_DENIED,
        errdom::DOMAIN,
        format!("operation forbidden: read only access prevents {name}"),
    )
}

fn no_domain(msg: String) -> RemoteError {
    error(code::NO_DOMAIN, format!("Domain not found: {msg}"))
}

fn register(
    vm: &Vm,
    client: &Client<Registrations>,
    payload: &[u8],
) -> Result<Vec<u8>, RemoteError> {
    let a: EventCallbackRegisterAnyArgs = args(payload)?;
    if !(0..=event::MAX_ID).contains(&a.event_id) {
        return Err(error(
            code::INVALID_ARG,
            format!("invalid argument: unsupported event ID {}", a.event_id),
        ));
    }
    if let Some(d) = &a.dom {
        crate::serve::check_uuid(vm, &d.uuid)?;
    }
    let mut list = client.data.list();
    if list.len() >= MAX_CALLBACKS {
        return Err(error(
            code::INVALID_ARG,
            format!("invalid argument: too many event callbacks (limit {MAX_CALLBACKS})"),
        ));
    }
    let id = client.data.next.fetch_add(1, Ordering::Relaxed) + 1;
    list.push((id, a.event_id));
    ret(EventCallbackRegisterAnyRet { callback_id: id })
}

fn open_console(
    s: &Arc<ShimService>,
    client: &Arc<Client<Registrations>>,
    h: &Header,
    payload: &[u8],
) -> Dispatch {
    let opened = (|| -> Result<_, RemoteError> {
        let a: DomainOpenConsoleArgs = args(payload)?;
        let vm = s.vm();
        crate::serve::check_uuid(vm, &a.dom.uuid)?;
        let def = vireo_xml::Domain::parse(&vm.live_xml())
            .map_err(|e| error(code::INTERNAL_ERROR, format!("internal error: {e}")))?;
        let tty = vireo_qemu::console::pty_of(&def, a.dev_name.as_deref())?;
        vireo_rpc::pty::open_raw(Path::new(&tty)).map_err(|e| {
            error(
                code::SYSTEM_ERROR,
                format!("cannot open console {tty}: {e}"),
            )
        })
    })();
    match opened {
        Err(e) => Dispatch::Now(Outcome::Error(e)),
        Ok(pty) => {
            let (tx, rx) = client.open_stream(h);
            let serial = h.serial;
            let c = Arc::clone(client);
            Dispatch::Now(Outcome::ReplyThen(
                Vec::new(),
                Box::pin(async move {
                    vireo_rpc::pty::pump(pty, tx, rx).await;
                    c.close_stream(serial);
                }),
            ))
        }
    }
}

/// The event a message the shim emits is (by its procedure): its id, the procedure of
/// its callback form, and whether the message is the legacy form (no callback id inside).
fn event_of(p: i32) -> Option<(i32, i32, bool)> {
    use vireo_proto::migrate::event as mig;
    let (id, legacy) = match p {
        procs::DOMAIN_EVENT_LIFECYCLE => {
            return Some((
                event::ID_LIFECYCLE,
                procs::DOMAIN_EVENT_CALLBACK_LIFECYCLE,
                true,
            ))
        }
        procs::DOMAIN_EVENT_BLOCK_JOB => {
            return Some((
                event::ID_BLOCK_JOB,
                procs::DOMAIN_EVENT_CALLBACK_BLOCK_JOB,
                true,
            ))
        }
        procs::DOMAIN_EVENT_CALLBACK_DEVICE_REMOVED => (event::ID_DEVICE_REMOVED, false),
        procs::DOMAIN_EVENT_BLOCK_JOB_2 => (event::ID_BLOCK_JOB_2, false),
        procs::DOMAIN_EVENT_CALLBACK_AGENT_LIFECYCLE => (event::ID_AGENT_LIFECYCLE, false),
        procs::DOMAIN_EVENT_CALLBACK_DEVICE_ADDED => (event::ID_DEVICE_ADDED, false),
        procs::DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION => (mig::ID_MIGRATION_ITERATION, false),
        procs::DOMAIN_EVENT_CALLBACK_JOB_COMPLETED => (mig::ID_JOB_COMPLETED, false),
        procs::DOMAIN_EVENT_CALLBACK_DEVICE_REMOVAL_FAILED => {
            (event::ID_DEVICE_REMOVAL_FAILED, false)
        }
        procs::DOMAIN_EVENT_CALLBACK_METADATA_CHANGE => (event::ID_METADATA_CHANGE, false),
        procs::DOMAIN_EVENT_MEMORY_DEVICE_SIZE_CHANGE => {
            (event::ID_MEMORY_DEVICE_SIZE_CHANGE, false)
        }
        p => (vireo_proto::domevent::by_callback_proc(p)?.0, false),
    };
    Some((id, p, legacy))
}

/// Sends event message `payload` (procedure `p`, as the shim emits it) to each public
/// client's registrations for it, each with its own callback id.
pub fn deliver(servers: &[Arc<Server<ShimService>>], p: i32, payload: &[u8]) {
    let Some((event_id, callback_proc, legacy)) = event_of(p) else {
        return;
    };
    for server in servers {
        for c in server.clients() {
            let ids: Vec<i32> = c
                .data
                .list()
                .iter()
                .filter(|(_, e)| *e == event_id)
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                let mut msg = Vec::with_capacity(payload.len() + 4);
                msg.extend_from_slice(&id.to_be_bytes());
                msg.extend_from_slice(if legacy {
                    payload
                } else {
                    payload.get(4..).unwrap_or_default()
                });
                c.send_message(REMOTE_PROGRAM, REMOTE_VERSION, callback_proc, 1, &msg);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_known_by_their_messages() {
        assert_eq!(
            event_of(procs::DOMAIN_EVENT_LIFECYCLE),
            Some((0, procs::DOMAIN_EVENT_CALLBACK_LIFECYCLE, true))
        );
        assert_eq!(
            event_of(procs::DOMAIN_EVENT_CALLBACK_REBOOT),
            Some((1, procs::DOMAIN_EVENT_CALLBACK_REBOOT, false))
        );
        assert_eq!(event_of(procs::DOMAIN_GET_INFO), None);
    }

    #[test]
    fn daemon_calls_are_told_apart() {
        assert!(needs_daemon(procs::DOMAIN_DEFINE_XML));
        assert!(needs_daemon(procs::CONNECT_LIST_ALL_DOMAINS));
        assert!(!needs_daemon(procs::DOMAIN_SUSPEND));
        assert!(!needs_daemon(procs::DOMAIN_GET_INFO));
    }

    #[test]
    fn sockets_are_named_after_the_domain() {
        let (rw, ro) = socket_paths(Path::new("/run/vireo"), "vm1");
        assert_eq!(rw, Path::new("/run/vireo/vm/vm1-sock"));
        assert_eq!(ro, Path::new("/run/vireo/vm/vm1-sock-ro"));
    }
}
