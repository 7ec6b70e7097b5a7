//! The REMOTE program: every libvirt API call arrives here and is sent to the module of its
//! family. `connect.rs` serves connection-level calls, `domain.rs` the domain calls,
//! `secret.rs` the secret calls, `storage.rs` the pool and volume calls, `network.rs` the
//! network calls, `nodedev.rs` the node device calls, `events.rs` event registration and
//! delivery.

mod connect;
mod console;
mod domain;
mod events;
mod interface;
mod migrate;
mod network;
mod nodedev;
mod nwfilter;
mod running;
mod screenshot;
mod secondary;
mod secret;
mod snapshot;
mod stats;
mod storage;
mod transfer;

use std::sync::atomic::AtomicI32;
use std::sync::{Arc, Mutex, MutexGuard};

use vireo_driver::events::{EventBus, ObjectEvent};
use vireo_interface::InterfaceDriver;
use vireo_network::NetworkDriver;
use vireo_nodedev::NodeDevDriver;
use vireo_nwfilter::NwFilterDriver;
use vireo_proto::error::{code, domain as errdom};
use vireo_proto::remote::{allowed_read_only, proc_name, procs};
use vireo_proto::vireo::{VIREO_PROGRAM, VIREO_VERSION};
use vireo_proto::{
    Header, RemoteError, QEMU_PROGRAM, QEMU_VERSION, REMOTE_PROGRAM, REMOTE_VERSION,
};
use vireo_qemu::QemuDriver;
use vireo_rpc::server::{Client, Dispatch, Outcome, Service};
use vireo_secret::SecretDriver;
use vireo_storage::StorageDriver;
use vireo_xdr::{Decoder, Xdr};

use crate::paths::Paths;
use crate::role::Role;
use vireo_proto::family::{family_of, Family};

pub use events::Callbacks;

/// What one client's connection has done so far.
#[derive(Default)]
pub struct ConnState {
    /// CONNECT_OPEN succeeded (and CONNECT_CLOSE not yet called).
    pub open: bool,
    /// The URI the client opened.
    pub uri: Option<String>,
    /// Opened read-only (or connected through a read-only socket).
    pub readonly: bool,
    pub close_callback: bool,
    pub callbacks: Callbacks,
    /// The peer is another Vireo daemon calling for itself (it proved the token and
    /// vouched for no user): it may read private secrets' values.
    pub internal: bool,
}

#[derive(Default)]
pub struct ClientData {
    state: Mutex<ConnState>,
    /// Connections to other drivers' daemons made on this client's behalf.
    peers: secondary::Peers,
    /// Its SASL exchange in progress (remote clients).
    sasl: Mutex<Option<crate::remote_access::Session>>,
}

impl ClientData {
    pub fn lock(&self) -> MutexGuard<'_, ConnState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub type RemoteClient = Client<ClientData>;

/// The drivers a daemon hosts (`None` for those it does not), and the buses their events
/// travel on.
#[derive(Default)]
pub struct Drivers {
    pub qemu: Option<Arc<QemuDriver>>,
    pub secret: Option<Arc<SecretDriver>>,
    pub storage: Option<Arc<StorageDriver>>,
    pub network: Option<Arc<NetworkDriver>>,
    pub nwfilter: Option<Arc<NwFilterDriver>>,
    pub nodedev: Option<Arc<NodeDevDriver>>,
    pub interface: Option<Arc<InterfaceDriver>>,
    /// Domain events.
    pub events: EventBus,
    /// Events of the other objects (secrets, …).
    pub objects: EventBus<ObjectEvent>,
}

/// The daemon-wide state behind the REMOTE program.
pub struct RemoteService {
    pub role: Role,
    pub paths: Paths,
    /// The QEMU driver, when this daemon hosts it.
    pub qemu: Option<Arc<QemuDriver>>,
    /// The secret driver, when this daemon hosts it.
    pub secret: Option<Arc<SecretDriver>>,
    /// The storage driver, when this daemon hosts it.
    pub storage: Option<Arc<StorageDriver>>,
    /// The network driver, when this daemon hosts it.
    pub network: Option<Arc<NetworkDriver>>,
    /// The network filter driver, when this daemon hosts it.
    pub nwfilter: Option<Arc<NwFilterDriver>>,
    /// The node device driver, when this daemon hosts it.
    pub nodedev: Option<Arc<NodeDevDriver>>,
    /// The host interface driver, when this daemon hosts it.
    pub interface: Option<Arc<InterfaceDriver>>,
    pub events: EventBus,
    pub objects: EventBus<ObjectEvent>,
    /// Shared secret that makes a forwarded identity trustworthy.
    pub token: String,
    next_callback_id: AtomicI32,
    /// Who may log in with SASL (remote clients; set when the daemon listens on TCP).
    pub sasl: std::sync::OnceLock<crate::remote_access::Sasl>,
}

impl RemoteService {
    pub fn new(role: Role, paths: Paths, drivers: Drivers, token: String) -> Self {
        let Drivers {
            qemu,
            secret,
            storage,
            network,
            nwfilter,
            nodedev,
            interface,
            events,
            objects,
        } = drivers;
        RemoteService {
            role,
            paths,
            qemu,
            secret,
            storage,
            network,
            nwfilter,
            nodedev,
            interface,
            events,
            objects,
            token,
            next_callback_id: AtomicI32::new(0),
            sasl: std::sync::OnceLock::new(),
        }
    }

    /// The QEMU driver, or libvirt's "not supported" where this daemon does not host it.
    pub(crate) fn hv(&self) -> Result<&Arc<QemuDriver>, RemoteError> {
        self.qemu
            .as_ref()
            .ok_or_else(|| not_supported(self.role, Family::Hypervisor))
    }

    /// AUTH_LIST and the SASL exchange (AUTH_POLKIT runs in a task of its own).
    fn authenticate(&self, client: &Arc<RemoteClient>, p: i32, payload: &[u8]) -> Outcome {
        use crate::remote_access::{answer, AuthAnswer, Sasl};
        let fallback;
        let sasl = match self.sasl.get() {
            Some(s) => s,
            None => {
                fallback = Sasl::from_conf(&self.paths, &Default::default());
                &fallback
            }
        };
        let mut session = client.data.sasl.lock().unwrap_or_else(|p| p.into_inner());
        match answer(
            sasl,
            &mut session,
            client.conn.auth,
            client.is_secure(),
            p,
            payload,
        ) {
            AuthAnswer::Reply(r) => Outcome::Reply(r),
            AuthAnswer::Authenticated(r, user, layer) => {
                client.set_authenticated(Some(user));
                if let Some(layer) = layer {
                    client.start_security_layer(layer);
                }
                Outcome::Reply(r)
            }
            AuthAnswer::Error(e) => {
                client.auth_failed();
                Outcome::Error(e)
            }
        }
    }

    /// Refuses what this connection may not call at all; Ok(readonly) otherwise.
    fn admit(&self, client: &Arc<RemoteClient>, p: i32) -> Result<bool, RemoteError> {
        let (open, readonly) = {
            let st = client.data.lock();
            (st.open, st.readonly || client.readonly)
        };
        // Calls allowed before CONNECT_OPEN, as in libvirtd.
        let pre_open = matches!(
            p,
            procs::AUTH_LIST
                | procs::CONNECT_OPEN
                | procs::CONNECT_SUPPORTS_FEATURE
                | procs::CONNECT_SET_IDENTITY
        );
        // Other drivers' procedures are judged by their own daemons.
        if proc_name(p).is_none() && family_of(p) == Family::Hypervisor {
            return Err(RemoteError::unknown_procedure(p));
        }
        if !open && !pre_open {
            return Err(RemoteError::new(
                code::INTERNAL_ERROR,
                errdom::RPC,
                "internal error: hypervisor connection not open",
            ));
        }
        if readonly && !allowed_read_only(p) {
            return Err(RemoteError::new(
                code::OPERATION_DENIED,
                errdom::DOMAIN,
                format!(
                    "operation forbidden: read only access prevents {}",
                    proc_name(p).unwrap_or("this call")
                ),
            ));
        }
        Ok(readonly)
    }

    fn dispatch(
        &self,
        client: &Arc<RemoteClient>,
        p: i32,
        payload: &[u8],
        readonly: bool,
    ) -> Outcome {
        let r = connect::dispatch(self, client, p, payload)
            .or_else(|| events::dispatch(self, client, p, payload))
            .unwrap_or_else(|| match family_of(p) {
                Family::Secret => secret::dispatch(self, client, p, payload),
                Family::Storage => storage::dispatch(self, p, payload),
                Family::Network => network::dispatch(self, p, payload),
                Family::NwFilter => nwfilter::dispatch(self, p, payload),
                Family::NodeDev => nodedev::dispatch(self, p, payload),
                Family::Interface => interface::dispatch(self, p, payload),
                _ => domain::dispatch(self, p, payload, readonly),
            });
        r.into()
    }
}

impl Service for RemoteService {
    type ClientData = ClientData;

    fn knows_program(&self, prog: u32, vers: u32) -> bool {
        (prog == REMOTE_PROGRAM && vers == REMOTE_VERSION)
            || (prog == VIREO_PROGRAM
                && vers == VIREO_VERSION
                && (self.network.is_some() || self.nodedev.is_some()))
            || (prog == QEMU_PROGRAM && vers == QEMU_VERSION && self.qemu.is_some())
    }

    fn call(
        self: Arc<Self>,
        client: &Arc<RemoteClient>,
        header: Header,
        payload: &[u8],
    ) -> Dispatch {
        let p = header.proc_;
        if header.prog == VIREO_PROGRAM {
            return self.call_vireo(client, p, payload);
        }
        if header.prog == QEMU_PROGRAM {
            return self.call_qemu(client, p, payload);
        }
        if p == vireo_proto::auth::procs::AUTH_POLKIT {
            // polkit may take a while (an agent asking a password): in a task of its own.
            let c = Arc::clone(client);
            return Dispatch::Later(Box::pin(async move {
                let r = crate::remote_access::polkit(c.conn.auth, c.identity, c.readonly).await;
                match &r {
                    Ok(_) => c.set_authenticated(None),
                    Err(_) => c.auth_failed(),
                }
                r.into()
            }));
        }
        if vireo_rpc::server::allowed_before_auth(header.prog, p) {
            return Dispatch::Now(self.authenticate(client, p, payload));
        }
        let readonly = match self.admit(client, p) {
            Ok(r) => r,
            Err(e) => return Dispatch::Now(Outcome::Error(e)),
        };
        // The guest agent's addresses need a read-write connection (the agent is the
        // guest's to trust or not), as in libvirt; the other sources are read-only.
        if readonly && p == procs::DOMAIN_INTERFACE_ADDRESSES {
            let by_agent = args::<vireo_proto::remote::DomainInterfaceAddressesArgs>(payload)
                .is_ok_and(|a| a.source == vireo_proto::remote::ifaddr_source::AGENT);
            if by_agent {
                return Dispatch::Now(Outcome::Error(RemoteError::new(
                    code::OPERATION_DENIED,
                    errdom::DOMAIN,
                    "operation forbidden: read only access prevents virDomainInterfaceAddresses",
                )));
            }
        }
        let fam = family_of(p);
        if connect::serves(p) {
            return Dispatch::Now(self.dispatch(client, p, payload, readonly));
        }
        if !self.role.hosts(fam) {
            // vireo-qemud reaches the other drivers on its clients' behalf, as libvirt's
            // hypervisor daemons open secondary drivers.
            if self.role == Role::Driver(Family::Hypervisor) {
                let c = Arc::clone(client);
                return Dispatch::Later(secondary::forward(self, c, fam, header, payload.to_vec()));
            }
            return Dispatch::Now(Outcome::Error(not_supported(self.role, fam)));
        }
        match fam {
            Family::Hypervisor => {}
            Family::Secret if !secret::blocks(p) => {
                return Dispatch::Now(self.dispatch(client, p, payload, readonly))
            }
            // Uploads and downloads: a stream after the reply.
            Family::Storage
                if p == procs::STORAGE_VOL_UPLOAD || p == procs::STORAGE_VOL_DOWNLOAD =>
            {
                let c = Arc::clone(client);
                let upload = p == procs::STORAGE_VOL_UPLOAD;
                return Dispatch::Later(transfer::open(self, c, header, payload.to_vec(), upload));
            }
            // Storage calls may take long (qemu-img, copies, wipes): each on a thread of
            // the blocking pool (made when needed, gone when idle), so neither this
            // connection's task nor the runtime waits for it.
            Family::Storage => {
                return self.on_blocking_pool(client, p, payload, readonly, errdom::STORAGE);
            }
            Family::Network
                if p == procs::CONNECT_NETWORK_EVENT_REGISTER_ANY
                    || p == procs::CONNECT_NETWORK_EVENT_DEREGISTER_ANY =>
            {
                return Dispatch::Now(self.dispatch(client, p, payload, readonly))
            }
            // Network calls make bridges, rules and dnsmasq: host programs, on a thread
            // of the blocking pool.
            Family::Network => {
                return self.on_blocking_pool(client, p, payload, readonly, errdom::NETWORK);
            }
            // Filter calls write files and run nft: on a thread of the blocking pool.
            Family::NwFilter => {
                return self.on_blocking_pool(client, p, payload, readonly, errdom::NWFILTER);
            }
            // Secret calls write a small file or two.
            Family::Secret => {
                return Dispatch::Now(blocking(|| self.dispatch(client, p, payload, readonly)))
            }
            // Node device calls read sysfs (a few hundred small files).
            Family::NodeDev => {
                return Dispatch::Now(blocking(|| self.dispatch(client, p, payload, readonly)))
            }
            // Interface calls read netlink dumps and make devices: on a thread of the
            // blocking pool.
            Family::Interface => {
                return self.on_blocking_pool(client, p, payload, readonly, errdom::NONE);
            }
        }
        // Calls about running VMs go to their shims, asynchronously; unknown flags are
        // refused first, as libvirt does, whatever the domain's state.
        let bad = vireo_qemu::flags::unknown(p, payload);
        if bad != 0 {
            let e = vireo_driver::DriverError::InvalidArg(format!("unsupported flags (0x{bad:x})"));
            return Dispatch::Now(Outcome::Error(e.into()));
        }
        if p == procs::DOMAIN_OPEN_CONSOLE {
            let c = Arc::clone(client);
            return Dispatch::Later(console::open(self, c, header, payload.to_vec()));
        }
        if p == procs::DOMAIN_SCREENSHOT {
            let c = Arc::clone(client);
            return Dispatch::Later(screenshot::open(self, c, header, payload.to_vec()));
        }
        if let Some(fut) = snapshot::dispatch(&self, p, payload) {
            return Dispatch::Later(fut);
        }
        if p == procs::DOMAIN_MIGRATE_PREPARE_TUNNEL3_PARAMS {
            let c = Arc::clone(client);
            let fut = migrate::prepare_tunnel(self, c, header, payload.to_vec());
            return Dispatch::Later(fut);
        }
        if let Some(fut) = migrate::dispatch(&self, client, p, payload) {
            return Dispatch::Later(fut);
        }
        if let Some(fut) = running::dispatch(&self, p, payload, readonly) {
            return Dispatch::Later(fut);
        }
        if !blocks(p) {
            return Dispatch::Now(self.dispatch(client, p, payload, readonly));
        }
        // Disk writes and probing QEMU may block this thread for a while: the runtime moves
        // its other tasks to another thread meanwhile. Calls of one connection are answered
        // in order anyway, so nothing waits that would not have waited.
        Dispatch::Now(blocking(|| self.dispatch(client, p, payload, readonly)))
    }

    fn disconnected(&self, client: &Arc<RemoteClient>) {
        events::disconnect(client);
        client.data.peers.clear();
    }
}

impl RemoteService {
    /// Answers the call on a thread of the blocking pool (made when needed, gone when
    /// idle), for calls that may take long or run host programs: neither the connection's
    /// task nor the runtime waits for it. A failure of the thread itself is reported in
    /// `errdom`.
    fn on_blocking_pool(
        self: Arc<Self>,
        client: &Arc<RemoteClient>,
        p: i32,
        payload: &[u8],
        readonly: bool,
        errdom: i32,
    ) -> Dispatch {
        let c = Arc::clone(client);
        let payload = payload.to_vec();
        Dispatch::Later(Box::pin(async move {
            tokio::task::spawn_blocking(move || self.dispatch(&c, p, &payload, readonly))
                .await
                .unwrap_or_else(|e| {
                    Outcome::Error(RemoteError::new(
                        code::INTERNAL_ERROR,
                        errdom,
                        format!("internal error: call failed: {e}"),
                    ))
                })
        }))
    }

    /// A call of libvirt's QEMU program (`virsh qemu-agent-command`,
    /// `qemu-monitor-command`): on an open, read-write connection, passed to the VM's
    /// shim as it came.
    fn call_qemu(self: Arc<Self>, client: &Arc<RemoteClient>, p: i32, payload: &[u8]) -> Dispatch {
        let api = match p {
            vireo_proto::QEMU_PROC_DOMAIN_AGENT_COMMAND => "virDomainQemuAgentCommand",
            vireo_proto::QEMU_PROC_DOMAIN_MONITOR_COMMAND => "virDomainQemuMonitorCommand",
            _ => return Dispatch::Now(Outcome::Error(RemoteError::unknown_procedure(p))),
        };
        if let Err(e) = open_read_write(client, errdom::NONE, api) {
            return Dispatch::Now(Outcome::Error(e));
        }
        let payload = payload.to_vec();
        Dispatch::Later(Box::pin(async move {
            let r = async {
                let q = self.hv()?;
                let dom = vireo_proto::remote::Domain::decode(&mut Decoder::new(&payload))
                    .map_err(bad_payload)?;
                if !q.is_running(&dom)? {
                    return Err(vireo_driver::DriverError::OperationInvalid(
                        "domain is not running".into(),
                    )
                    .into());
                }
                q.forward_program(&dom, QEMU_PROGRAM, QEMU_VERSION, p, &payload)
                    .await
            };
            r.await.into()
        }))
    }

    /// A call of Vireo's own program (only daemons with the network driver know it): on
    /// an open, read-write connection, on a thread of the blocking pool.
    fn call_vireo(self: Arc<Self>, client: &Arc<RemoteClient>, p: i32, payload: &[u8]) -> Dispatch {
        use vireo_proto::vireo::procs as vprocs;
        let leases = matches!(
            p,
            vprocs::NODE_DEVICE_LEASE | vprocs::NODE_DEVICE_RELEASE | vprocs::NODE_DEVICE_LEASES
        );
        let what = if leases {
            "leasing a device"
        } else {
            "making a tap device"
        };
        if let Err(e) = open_read_write(client, errdom::NETWORK, what) {
            return Dispatch::Now(Outcome::Error(e));
        }
        let payload = payload.to_vec();
        // The caller itself (never an identity it forwards): its QEMU opens the device.
        let uid = client.identity.uid;
        Dispatch::Later(Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                if leases {
                    nodedev::dispatch_vireo(&self, p, &payload, uid)
                } else {
                    network::dispatch_vireo(&self, p, &payload)
                }
            })
            .await
            .unwrap_or_else(|e| {
                Outcome::Error(RemoteError::new(
                    code::INTERNAL_ERROR,
                    errdom::NETWORK,
                    format!("internal error: network call failed: {e}"),
                ))
            })
        }))
    }
}

/// The calls of the programs beside REMOTE (libvirt's QEMU program, Vireo's own) need an
/// open, read-write connection: `what` names what read-only access prevents.
fn open_read_write(client: &RemoteClient, domain: i32, what: &str) -> Result<(), RemoteError> {
    let (open, readonly) = {
        let st = client.data.lock();
        (st.open, st.readonly || client.readonly)
    };
    if !open {
        return Err(RemoteError::new(
            code::INTERNAL_ERROR,
            errdom::RPC,
            "internal error: connection not open",
        ));
    }
    if readonly {
        return Err(RemoteError::new(
            code::OPERATION_DENIED,
            domain,
            format!("operation forbidden: read only access prevents {what}"),
        ));
    }
    Ok(())
}

/// libvirt's "this function is not supported by the connection driver", saying which
/// daemon serves (or will serve) the family.
pub(crate) fn not_supported(role: Role, fam: Family) -> RemoteError {
    let why = if role.hosts(fam) {
        format!(
            "the {} driver of {} is not implemented yet",
            fam.api(),
            role.name()
        )
    } else {
        format!(
            "{} calls are served by {}, not {}",
            fam.api(),
            fam.daemon(),
            role.name()
        )
    };
    RemoteError::new(
        code::NO_SUPPORT,
        errdom::NONE,
        format!("this function is not supported by the connection driver: {why}"),
    )
}

/// Runs `f`, which may wait on the disk: on a multi-threaded runtime the runtime moves its
/// other tasks off this thread meanwhile; the one-thread runtime of a small driver daemon
/// simply waits (its writes are a few small synced files).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Procedures that may wait on the disk or on a child process.
fn blocks(p: i32) -> bool {
    matches!(
        p,
        procs::DOMAIN_DEFINE_XML
            | procs::DOMAIN_DEFINE_XML_FLAGS
            | procs::DOMAIN_UNDEFINE
            | procs::DOMAIN_UNDEFINE_FLAGS
            | procs::DOMAIN_SET_AUTOSTART
            | procs::CONNECT_GET_CAPABILITIES
            | procs::CONNECT_GET_DOMAIN_CAPABILITIES
            | procs::CONNECT_GET_CPU_MODEL_NAMES
            | procs::CONNECT_COMPARE_CPU
            | procs::CONNECT_BASELINE_CPU
            | procs::CONNECT_COMPARE_HYPERVISOR_CPU
            | procs::CONNECT_BASELINE_HYPERVISOR_CPU
            | procs::CONNECT_GET_VERSION
    )
}

/// The result of one procedure: the encoded reply, or the error.
pub(crate) type ProcResult = Result<Vec<u8>, RemoteError>;

/// Decodes a call's arguments; the whole payload must be used.
pub(crate) fn args<T: Xdr>(payload: &[u8]) -> Result<T, RemoteError> {
    let mut d = Decoder::new(payload);
    let v = T::decode(&mut d).map_err(bad_payload)?;
    d.finish().map_err(bad_payload)?;
    Ok(v)
}

fn bad_payload(e: vireo_xdr::XdrError) -> RemoteError {
    RemoteError::rpc(format!("Unable to decode message payload: {e}"))
}

pub(crate) fn ret<T: Xdr>(v: T) -> ProcResult {
    Ok(vireo_xdr::to_bytes(&v))
}

pub(crate) fn void() -> ProcResult {
    Ok(Vec::new())
}
