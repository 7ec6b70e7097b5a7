//! The Rust client: parse a libvirt URI, find the daemon's socket, open the connection the
//! way libvirt's remote driver does, and make typed calls.

pub mod agent;
mod blockjob;
mod interface;
mod iothread;
pub mod metadata;
pub mod migrate;
pub mod net;
mod network;
mod nodedev;
mod nwfilter;
mod resources;
mod save;
mod secret;
mod snapshot;
pub mod ssh;
mod stats;
mod storage;
mod tuning;
pub mod uri;
mod vcpu;
mod viewer;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use vireo_proto::error::code;
use vireo_proto::remote::*;
use vireo_proto::RemoteError;
use vireo_rpc::client::{CallError, Connection};
use vireo_xdr::Xdr;

pub use blockjob::{BlockJobEvent, BlockJobEvents, BlockJobInfo};
pub use network::{NetworkEvent, NetworkEvents};
pub use nodedev::{NodeDeviceEvent, NodeDeviceEventKind, NodeDeviceEvents};
pub use secret::{SecretEvent, SecretEvents};
pub use storage::{PoolEvent, PoolEvents};
pub use tuning::HypervisorCpu;
pub use uri::Uri;
pub use viewer::Screenshot;
pub use vireo_proto::interface::Interface;
pub use vireo_proto::network::{DhcpLease, Network, NetworkPort};
pub use vireo_proto::nodedev::NodeDevice;
pub use vireo_proto::nwfilter::{NwFilter, NwFilterBinding};
pub use vireo_proto::remote::{Domain, DomainSnapshot};
pub use vireo_proto::secret::Secret;
pub use vireo_proto::storage::{Pool, Vol};

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("{0}")]
    Uri(String),
    #[error("cannot connect to {daemon} at {path}: {err}; is the daemon running? start it with `{daemon}`")]
    Connect {
        daemon: String,
        path: PathBuf,
        err: std::io::Error,
    },
    #[error("{0}")]
    Remote(Box<RemoteError>),
    #[error("{0}")]
    Call(CallError),
    /// The ssh transport: its start failed, or the session ended (what `ssh` said).
    #[error("{0}")]
    Ssh(String),
    /// The TLS or TCP transport could not be set up (what went wrong, as libvirt says it).
    #[error("{0}")]
    Transport(String),
}

impl From<CallError> for ClientError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Remote(r) => ClientError::Remote(Box::new(r)),
            e => ClientError::Call(e),
        }
    }
}

impl ClientError {
    /// libvirt's error code, when the daemon sent one. "unknown procedure" becomes
    /// NO_SUPPORT, as libvirt's client does.
    pub fn code(&self) -> Option<i32> {
        match self {
            ClientError::Remote(r)
                if r.code == code::RPC && r.text().starts_with("unknown procedure") =>
            {
                Some(code::NO_SUPPORT)
            }
            ClientError::Remote(r) => Some(r.code),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// An open connection to a Vireo (or libvirt) daemon.
pub struct Connect {
    conn: Arc<Connection>,
    uri: Uri,
    uri_text: String,
    readonly: bool,
    /// The `ssh` a `+ssh` connection runs over.
    tunnel: Option<ssh::Tunnel>,
}

impl Connect {
    /// Connects and performs libvirt's open sequence (AUTH_LIST, CONNECT_OPEN).
    pub async fn open(uri_text: &str, readonly: bool) -> Result<Connect> {
        let uri = Uri::parse(uri_text)?;
        let (conn, tunnel) = match uri.transport.as_deref() {
            Some("ssh") => {
                let (conn, tunnel) = ssh::connect(&uri, readonly).await?;
                (conn, Some(tunnel))
            }
            Some("tls" | "tcp") => (net::connect(&uri).await?, None),
            _ => (Self::connect_local(&uri, readonly).await?, None),
        };
        let c = Connect {
            conn: Arc::new(conn),
            uri,
            uri_text: uri_text.to_string(),
            readonly,
            tunnel,
        };
        // Old servers without AUTH_LIST are fine (libvirt treats that as "no auth").
        match c.call::<(), AuthListRet>(procs::AUTH_LIST, &()).await {
            Ok(r) if r.types.0.first() == Some(&vireo_proto::auth::AUTH_SASL) => {
                net::sasl_login(&c.conn, &c.uri).await?
            }
            // polkit decides on the daemon's side, from who we are: ask it to.
            Ok(r) if r.types.0.first() == Some(&vireo_proto::auth::AUTH_POLKIT) => {
                c.call::<(), vireo_proto::auth::AuthPolkitRet>(
                    vireo_proto::auth::procs::AUTH_POLKIT,
                    &(),
                )
                .await?;
            }
            Ok(r) if r.types.0.first().is_some_and(|&t| t != 0) => {
                return Err(ClientError::Uri(format!(
                    "the daemon requires an authentication this client does not know ({})",
                    r.types.0.first().copied().unwrap_or_default()
                )))
            }
            _ => {}
        }
        let flags = if readonly { CONNECT_RO } else { 0 };
        c.call::<_, ()>(
            procs::CONNECT_OPEN,
            &ConnectOpenArgs {
                name: Some(c.uri.open_name()),
                flags,
            },
        )
        .await?;
        Ok(c)
    }

    /// The first of the URI's local sockets that accepts a connection.
    async fn connect_local(uri: &Uri, readonly: bool) -> Result<Connection> {
        let mut first_err = None;
        for (daemon, path) in uri.sockets(readonly)? {
            match Connection::connect(&path).await {
                Ok(c) => return Ok(c),
                Err(err) => {
                    first_err.get_or_insert(ClientError::Connect { daemon, path, err });
                }
            }
        }
        Err(first_err.unwrap_or_else(|| ClientError::Uri("no socket to connect to".into())))
    }

    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The URI as the caller gave it (what `virsh uri` prints).
    pub fn uri_text(&self) -> &str {
        &self.uri_text
    }

    /// Whether the connection was opened read-only.
    pub fn is_readonly(&self) -> bool {
        self.readonly
    }

    /// libvirt's own check before a call that changes something, made before anything is
    /// sent: on a read-only connection, `api` (the public function's name) is refused as
    /// libvirt refuses it, as `OPERATION_DENIED` from `domain` (an `error::domain`).
    pub(crate) fn check_writable(&self, api: &str, domain: i32) -> Result<()> {
        if !self.readonly {
            return Ok(());
        }
        Err(ClientError::Remote(Box::new(RemoteError::new(
            code::OPERATION_DENIED,
            domain,
            format!("operation forbidden: read only access prevents {api}"),
        ))))
    }

    /// The underlying RPC connection (events, raw calls).
    pub fn connection(&self) -> &Arc<Connection> {
        &self.conn
    }

    /// Pings the daemon when idle and drops the connection if it stops answering.
    pub fn set_keepalive(&self, interval: Duration, count: u32) {
        self.conn.start_keepalive(interval, count);
    }

    pub async fn call<A: Xdr, R: Xdr>(&self, proc_: i32, args: &A) -> Result<R> {
        match (self.conn.call(proc_, args).await, &self.tunnel) {
            // Over ssh, the session's end is told with what ssh said.
            (Err(CallError::Closed | CallError::Io(_)), Some(t)) => Err(t.ended().await),
            (r, _) => Ok(r?),
        }
    }

    pub async fn close(self) -> Result<()> {
        self.call::<(), ()>(procs::CONNECT_CLOSE, &()).await
    }

    pub async fn get_type(&self) -> Result<String> {
        Ok(self
            .call::<(), ConnectGetTypeRet>(procs::CONNECT_GET_TYPE, &())
            .await?
            .type_)
    }

    pub async fn get_version(&self) -> Result<u64> {
        Ok(self
            .call::<(), ConnectGetVersionRet>(procs::CONNECT_GET_VERSION, &())
            .await?
            .hv_ver)
    }

    pub async fn get_lib_version(&self) -> Result<u64> {
        Ok(self
            .call::<(), ConnectGetLibVersionRet>(procs::CONNECT_GET_LIB_VERSION, &())
            .await?
            .lib_ver)
    }

    pub async fn get_hostname(&self) -> Result<String> {
        Ok(self
            .call::<(), ConnectGetHostnameRet>(procs::CONNECT_GET_HOSTNAME, &())
            .await?
            .hostname)
    }

    pub async fn get_capabilities(&self) -> Result<String> {
        Ok(self
            .call::<(), ConnectGetCapabilitiesRet>(procs::CONNECT_GET_CAPABILITIES, &())
            .await?
            .capabilities)
    }

    pub async fn node_info(&self) -> Result<NodeGetInfoRet> {
        self.call(procs::NODE_GET_INFO, &()).await
    }

    pub async fn list_all_domains(&self, flags: u32) -> Result<Vec<Domain>> {
        let r: ConnectListAllDomainsRet = self
            .call(
                procs::CONNECT_LIST_ALL_DOMAINS,
                &ConnectListAllDomainsArgs {
                    need_results: 1,
                    flags,
                },
            )
            .await?;
        Ok(r.domains.0)
    }

    pub async fn define_xml(&self, xml: &str) -> Result<Domain> {
        let r: DomainRet = self
            .call(
                procs::DOMAIN_DEFINE_XML,
                &DomainDefineXmlArgs { xml: xml.into() },
            )
            .await?;
        Ok(r.dom)
    }

    pub async fn undefine(&self, dom: &Domain) -> Result<()> {
        self.undefine_flags(dom, 0).await
    }

    /// `virDomainUndefineFlags` (`VIR_DOMAIN_UNDEFINE_MANAGED_SAVE` …).
    pub async fn undefine_flags(&self, dom: &Domain, flags: u32) -> Result<()> {
        self.call(
            procs::DOMAIN_UNDEFINE_FLAGS,
            &DomainFlagsArgs {
                dom: dom.clone(),
                flags,
            },
        )
        .await
    }

    pub async fn lookup_by_name(&self, name: &str) -> Result<Domain> {
        let r: DomainRet = self
            .call(
                procs::DOMAIN_LOOKUP_BY_NAME,
                &DomainLookupByNameArgs { name: name.into() },
            )
            .await?;
        Ok(r.dom)
    }

    pub async fn lookup_by_uuid(&self, uuid: &Uuid) -> Result<Domain> {
        let r: DomainRet = self
            .call(
                procs::DOMAIN_LOOKUP_BY_UUID,
                &DomainLookupByUuidArgs { uuid: *uuid },
            )
            .await?;
        Ok(r.dom)
    }

    pub async fn lookup_by_id(&self, id: i32) -> Result<Domain> {
        let r: DomainRet = self
            .call(procs::DOMAIN_LOOKUP_BY_ID, &DomainLookupByIdArgs { id })
            .await?;
        Ok(r.dom)
    }

    /// Finds a domain the way virsh does: by id, then UUID, then name.
    pub async fn lookup(&self, key: &str) -> Result<Domain> {
        if let Ok(id) = key.parse::<i32>() {
            if id >= 0 {
                if let Ok(d) = self.lookup_by_id(id).await {
                    return Ok(d);
                }
            }
        }
        if let Some(u) = uri::parse_uuid(key) {
            if let Ok(d) = self.lookup_by_uuid(&u).await {
                return Ok(d);
            }
        }
        self.lookup_by_name(key).await
    }

    pub async fn xml_desc(&self, dom: &Domain, flags: u32) -> Result<String> {
        let r: DomainGetXmlDescRet = self
            .call(
                procs::DOMAIN_GET_XML_DESC,
                &DomainFlagsArgs {
                    dom: dom.clone(),
                    flags,
                },
            )
            .await?;
        Ok(r.xml)
    }

    pub async fn info(&self, dom: &Domain) -> Result<DomainGetInfoRet> {
        self.call(procs::DOMAIN_GET_INFO, &DomainArgs { dom: dom.clone() })
            .await
    }

    pub async fn state(&self, dom: &Domain) -> Result<(i32, i32)> {
        let r: DomainGetStateRet = self
            .call(
                procs::DOMAIN_GET_STATE,
                &DomainFlagsArgs {
                    dom: dom.clone(),
                    flags: 0,
                },
            )
            .await?;
        Ok((r.state, r.reason))
    }

    pub async fn os_type(&self, dom: &Domain) -> Result<String> {
        let r: DomainGetOsTypeRet = self
            .call(procs::DOMAIN_GET_OS_TYPE, &DomainArgs { dom: dom.clone() })
            .await?;
        Ok(r.type_)
    }

    pub async fn autostart(&self, dom: &Domain) -> Result<bool> {
        let r: DomainGetAutostartRet = self
            .call(
                procs::DOMAIN_GET_AUTOSTART,
                &DomainArgs { dom: dom.clone() },
            )
            .await?;
        Ok(r.autostart != 0)
    }

    pub async fn set_autostart(&self, dom: &Domain, on: bool) -> Result<()> {
        self.call(
            procs::DOMAIN_SET_AUTOSTART,
            &DomainSetAutostartArgs {
                dom: dom.clone(),
                autostart: on as i32,
            },
        )
        .await
    }

    /// `virDomainGetMessages`: the domain's taints (and deprecations), as text.
    pub async fn messages(&self, dom: &Domain, flags: u32) -> Result<Vec<String>> {
        let r: DomainGetMessagesRet = self
            .call(
                procs::DOMAIN_GET_MESSAGES,
                &DomainFlagsArgs {
                    dom: dom.clone(),
                    flags,
                },
            )
            .await?;
        Ok(r.msgs.0)
    }

    pub async fn is_persistent(&self, dom: &Domain) -> Result<bool> {
        let r: DomainIsPersistentRet = self
            .call(
                procs::DOMAIN_IS_PERSISTENT,
                &DomainArgs { dom: dom.clone() },
            )
            .await?;
        Ok(r.persistent != 0)
    }

    pub async fn is_active(&self, dom: &Domain) -> Result<bool> {
        let r: DomainIsActiveRet = self
            .call(procs::DOMAIN_IS_ACTIVE, &DomainArgs { dom: dom.clone() })
            .await?;
        Ok(r.active != 0)
    }

    /// Starts a defined domain (`flags`: 1 = paused); returns the handle with its id.
    pub async fn start(&self, dom: &Domain, flags: u32) -> Result<Domain> {
        let r: DomainRet = self
            .call(
                procs::DOMAIN_CREATE_WITH_FLAGS,
                &DomainFlagsArgs {
                    dom: dom.clone(),
                    flags,
                },
            )
            .await?;
        Ok(r.dom)
    }

    /// Starts a transient domain.
    pub async fn create_xml(&self, xml: &str, flags: u32) -> Result<Domain> {
        let r: DomainRet = self
            .call(
                procs::DOMAIN_CREATE_XML,
                &DomainCreateXmlArgs {
                    xml: xml.into(),
                    flags,
                },
            )
            .await?;
        Ok(r.dom)
    }

    /// Attaches (`ATTACH`), detaches or updates a device: with `flags` the `…_FLAGS`
    /// call, without the plain one (hotplug semantics, the running domain only).
    pub async fn device(
        &self,
        op: DeviceOp,
        dom: &Domain,
        xml: &str,
        flags: Option<u32>,
    ) -> Result<()> {
        let api = match (op, flags.is_some()) {
            (DeviceOp::Attach, false) => "virDomainAttachDevice",
            (DeviceOp::Attach, true) => "virDomainAttachDeviceFlags",
            (DeviceOp::Detach, false) => "virDomainDetachDevice",
            (DeviceOp::Detach, true) => "virDomainDetachDeviceFlags",
            (DeviceOp::Update, _) => "virDomainUpdateDeviceFlags",
        };
        self.check_writable(api, vireo_proto::error::domain::DOMAIN)?;
        let (plain, with_flags) = match op {
            DeviceOp::Attach => (
                Some(procs::DOMAIN_ATTACH_DEVICE),
                procs::DOMAIN_ATTACH_DEVICE_FLAGS,
            ),
            DeviceOp::Detach => (
                Some(procs::DOMAIN_DETACH_DEVICE),
                procs::DOMAIN_DETACH_DEVICE_FLAGS,
            ),
            DeviceOp::Update => (None, procs::DOMAIN_UPDATE_DEVICE_FLAGS),
        };
        match (flags, plain) {
            (None, Some(p)) => {
                self.call(
                    p,
                    &DomainDeviceArgs {
                        dom: dom.clone(),
                        xml: xml.into(),
                    },
                )
                .await
            }
            (f, _) => {
                self.call(
                    with_flags,
                    &DomainDeviceFlagsArgs {
                        dom: dom.clone(),
                        xml: xml.into(),
                        flags: f.unwrap_or(0),
                    },
                )
                .await
            }
        }
    }

    /// A lifecycle call whose only argument is the domain (destroy, shutdown, suspend,
    /// resume).
    async fn dom_call(&self, proc_: i32, dom: &Domain) -> Result<()> {
        self.call(proc_, &DomainArgs { dom: dom.clone() }).await
    }

    pub async fn destroy(&self, dom: &Domain) -> Result<()> {
        self.dom_call(procs::DOMAIN_DESTROY, dom).await
    }

    pub async fn shutdown(&self, dom: &Domain) -> Result<()> {
        self.dom_call(procs::DOMAIN_SHUTDOWN, dom).await
    }

    pub async fn suspend(&self, dom: &Domain) -> Result<()> {
        self.dom_call(procs::DOMAIN_SUSPEND, dom).await
    }

    pub async fn resume(&self, dom: &Domain) -> Result<()> {
        self.dom_call(procs::DOMAIN_RESUME, dom).await
    }

    pub async fn reboot(&self, dom: &Domain) -> Result<()> {
        self.call(
            procs::DOMAIN_REBOOT,
            &DomainFlagsArgs {
                dom: dom.clone(),
                flags: 0,
            },
        )
        .await
    }

    pub async fn reset(&self, dom: &Domain) -> Result<()> {
        self.call(
            procs::DOMAIN_RESET,
            &DomainFlagsArgs {
                dom: dom.clone(),
                flags: 0,
            },
        )
        .await
    }

    pub async fn security_model(&self) -> Result<NodeGetSecurityModelRet> {
        self.call(procs::NODE_GET_SECURITY_MODEL, &()).await
    }
}

/// libvirt's own refusal, before anything is sent, of `VIR_DOMAIN_AFFECT_LIVE` and
/// `_CONFIG` asked together where one state is read.
pub(crate) fn live_or_config(flags: u32) -> Result<()> {
    if flags & affect::LIVE != 0 && flags & affect::CONFIG != 0 {
        return Err(ClientError::Remote(Box::new(RemoteError::new(
            code::INVALID_ARG,
            vireo_proto::error::domain::DOMAIN,
            "Flags 'VIR_DOMAIN_AFFECT_LIVE' and 'VIR_DOMAIN_AFFECT_CONFIG' are mutually exclusive",
        ))));
    }
    Ok(())
}

/// What [`Connect::device`] does with a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceOp {
    Attach,
    Detach,
    Update,
}
