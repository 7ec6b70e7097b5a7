//! The QEMU driver's way to the other drivers: libvirt RPC calls to the daemon that serves
//! each family (`vireo-storaged`, or `vireod` itself when it hosts them), as that daemon's
//! own client. It proves it is a Vireo daemon with the identity token and vouches for no
//! user, so the other daemon treats it as internal.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Mutex;
use vireo_driver::{DriverError, Result};
use vireo_proto::family::Family;
use vireo_proto::remote::procs;
use vireo_proto::secret::{SecretFlagsArgs, SecretGetValueRet, SecretLookupByUuidArgs, SecretRet};
use vireo_proto::storage::{
    NameArgs, PoolRet, VolArgs, VolFlagsArgs, VolGetInfoRet, VolGetPathRet, VolLookupByNameArgs,
    VolRet, XmlRet,
};
use vireo_qemu::{DeviceLease, DeviceLeases, NetPort, Peers, VolumeSource};
use vireo_rpc::client::{CallError, Connection};
use vireo_rpc::server::BoxFuture;
use vireo_xdr::Xdr;
use zeroize::Zeroizing;

use crate::paths::Paths;
use crate::role::Role;

pub struct DaemonPeers(Arc<Inner>);

struct Inner {
    role: Role,
    paths: Paths,
    token: String,
    conns: Mutex<HashMap<Family, Arc<Connection>>>,
}

impl DaemonPeers {
    pub fn new(role: Role, paths: Paths, token: String) -> Self {
        DaemonPeers(Arc::new(Inner {
            role,
            paths,
            token,
            conns: Mutex::new(HashMap::new()),
        }))
    }
}

impl Inner {
    /// The connection to the daemon serving `fam`, opened on first use and again after
    /// that daemon restarted.
    async fn conn(&self, fam: Family) -> Result<Arc<Connection>> {
        let mut conns = self.conns.lock().await;
        if let Some(c) = conns.get(&fam).filter(|c| c.is_open()) {
            return Ok(Arc::clone(c));
        }
        let daemon = if self.role.hosts(fam) {
            self.role.socket_name()
        } else {
            fam.daemon()
        };
        let path = self.paths.socket(daemon);
        let down = |why: String| {
            DriverError::OperationFailed(format!(
                "cannot reach {daemon} at {} ({why}); is it running?",
                path.display()
            ))
        };
        let conn = Connection::connect(&path)
            .await
            .map_err(|e| down(e.to_string()))?;
        let call_err = |e: CallError| match e {
            CallError::Remote(r) => DriverError::Peer(Box::new(r)),
            e => down(e.to_string()),
        };
        crate::identity::open_as_peer(&conn, &self.token, None, fam, &self.paths, false)
            .await
            .map_err(call_err)?;
        let conn = Arc::new(conn);
        conns.insert(fam, Arc::clone(&conn));
        Ok(conn)
    }

    async fn call<A: Xdr, R: Xdr>(&self, fam: Family, proc_: i32, args: &A) -> Result<R> {
        let conn = self.conn(fam).await?;
        conn.call(proc_, args).await.map_err(|e| match e {
            CallError::Remote(r) => DriverError::Peer(Box::new(r)),
            e => DriverError::OperationFailed(format!("{} went away: {e}", fam.daemon())),
        })
    }

    /// A call of Vireo's own program to the network daemon; the reply's descriptors too.
    async fn call_network_vireo<A: Xdr, R: Xdr>(
        &self,
        proc_: i32,
        args: &A,
    ) -> Result<(R, Vec<std::os::fd::OwnedFd>)> {
        self.call_vireo(Family::Network, proc_, args).await
    }

    /// A call of Vireo's own program to the daemon serving `fam`; the reply's descriptors
    /// too.
    async fn call_vireo<A: Xdr, R: Xdr>(
        &self,
        fam: Family,
        proc_: i32,
        args: &A,
    ) -> Result<(R, Vec<std::os::fd::OwnedFd>)> {
        use vireo_proto::vireo::{VIREO_PROGRAM, VIREO_VERSION};
        let conn = self.conn(fam).await?;
        conn.call_fds(VIREO_PROGRAM, VIREO_VERSION, proc_, args)
            .await
            .map_err(|e| match e {
                CallError::Remote(r) => DriverError::Peer(Box::new(r)),
                e => DriverError::OperationFailed(format!("{} went away: {e}", fam.daemon())),
            })
    }

    /// A device lease (Vireo's own call; the device's node comes as a descriptor).
    async fn lease_device(
        &self,
        name: String,
        owner: [u8; 16],
        owner_name: String,
        managed: bool,
    ) -> Result<DeviceLease> {
        use vireo_proto::vireo::{procs as vprocs, NodeDeviceLeaseArgs, NodeDeviceLeaseRet};
        let (r, mut fds): (NodeDeviceLeaseRet, _) = self
            .call_vireo(
                Family::NodeDev,
                vprocs::NODE_DEVICE_LEASE,
                &NodeDeviceLeaseArgs {
                    name: name.clone(),
                    owner,
                    owner_name,
                    managed: i32::from(managed),
                    flags: 0,
                },
            )
            .await?;
        let Some(fd) = fds.pop().filter(|_| fds.is_empty()) else {
            // Only this lease: the domain's others (a running VM's) stand.
            let _ = self.release(owner, Some(name)).await;
            return Err(DriverError::OperationFailed(
                "the node device driver sent no descriptor with the lease".into(),
            ));
        };
        Ok(DeviceLease {
            address: r.address,
            node: r.node,
            fd,
        })
    }

    /// Ends the leases of domain `owner`, or only that of device `name`.
    async fn release(&self, owner: [u8; 16], name: Option<String>) -> Result<()> {
        use vireo_proto::vireo::{procs as vprocs, NodeDeviceReleaseArgs, NodeDeviceReleaseRet};
        let (_, _): (NodeDeviceReleaseRet, _) = self
            .call_vireo(
                Family::NodeDev,
                vprocs::NODE_DEVICE_RELEASE,
                &NodeDeviceReleaseArgs {
                    owner,
                    name,
                    flags: 0,
                },
            )
            .await?;
        Ok(())
    }

    async fn node_device_names(&self, cap: &str) -> Result<Vec<String>> {
        use vireo_proto::nodedev::{
            ConnectListAllNodeDevicesArgs, ConnectListAllNodeDevicesRet, LIST_CAPS,
        };
        let flags = LIST_CAPS
            .iter()
            .find(|(_, c)| *c == cap)
            .map(|(bit, _)| *bit)
            .ok_or_else(|| DriverError::Internal(format!("no node device capability '{cap}'")))?;
        let r: ConnectListAllNodeDevicesRet = self
            .call(
                Family::NodeDev,
                procs::CONNECT_LIST_ALL_NODE_DEVICES,
                &ConnectListAllNodeDevicesArgs {
                    need_results: 1,
                    flags,
                },
            )
            .await?;
        Ok(r.devices.0.into_iter().map(|d| d.name).collect())
    }

    async fn node_device_xml(&self, name: String) -> Result<String> {
        use vireo_proto::nodedev::{NodeDeviceGetXmlDescArgs, NodeDeviceGetXmlDescRet};
        let r: NodeDeviceGetXmlDescRet = self
            .call(
                Family::NodeDev,
                procs::NODE_DEVICE_GET_XML_DESC,
                &NodeDeviceGetXmlDescArgs { name, flags: 0 },
            )
            .await?;
        Ok(r.xml)
    }

    async fn device_leases(&self) -> Result<DeviceLeases> {
        use vireo_proto::vireo::{procs as vprocs, NodeDeviceLeasesArgs, NodeDeviceLeasesRet};
        let (r, _): (NodeDeviceLeasesRet, _) = self
            .call_vireo(
                Family::NodeDev,
                vprocs::NODE_DEVICE_LEASES,
                &NodeDeviceLeasesArgs { flags: 0 },
            )
            .await?;
        Ok(r.leases.0.into_iter().map(|l| (l.name, l.owner)).collect())
    }

    async fn volume(&self, pool: &str, volume: &str) -> Result<VolumeSource> {
        let s = Family::Storage;
        let p: PoolRet = self
            .call(
                s,
                procs::STORAGE_POOL_LOOKUP_BY_NAME,
                &NameArgs { name: pool.into() },
            )
            .await?;
        let v: VolRet = self
            .call(
                s,
                procs::STORAGE_VOL_LOOKUP_BY_NAME,
                &VolLookupByNameArgs {
                    pool: p.pool,
                    name: volume.into(),
                },
            )
            .await
            .map_err(|e| match e {
                DriverError::Peer(r) if r.code == 50 => {
                    DriverError::Peer(Box::new(vireo_proto::RemoteError::new(
                        r.code,
                        r.domain,
                        format!("Storage volume not found: no volume '{volume}' in pool '{pool}'"),
                    )))
                }
                e => e,
            })?;
        let path: VolGetPathRet = self
            .call(
                s,
                procs::STORAGE_VOL_GET_PATH,
                &VolArgs { vol: v.vol.clone() },
            )
            .await?;
        let info: VolGetInfoRet = self
            .call(
                s,
                procs::STORAGE_VOL_GET_INFO,
                &VolArgs { vol: v.vol.clone() },
            )
            .await?;
        let xml: XmlRet = self
            .call(
                s,
                procs::STORAGE_VOL_GET_XML_DESC,
                &VolFlagsArgs {
                    vol: v.vol,
                    flags: 0,
                },
            )
            .await?;
        let format = vireo_xml::Volume::parse(&xml.xml)
            .ok()
            .and_then(|d| d.target_format().map(str::to_string))
            .unwrap_or_else(|| "raw".into());
        Ok(VolumeSource {
            path: path.name,
            block: info.type_ == vireo_proto::storage::vol_type::BLOCK,
            format,
        })
    }

    /// A network's handle by name.
    async fn network(&self, name: &str) -> Result<vireo_proto::remote::Network> {
        let r: vireo_proto::network::NetRet = self
            .call(
                Family::Network,
                procs::NETWORK_LOOKUP_BY_NAME,
                &vireo_proto::network::NameArgs { name: name.into() },
            )
            .await?;
        Ok(r.net)
    }

    /// A port with its tap (Vireo's own call; the tap comes as a descriptor).
    async fn network_port(
        &self,
        network: &str,
        xml: String,
        filterref: Option<String>,
    ) -> Result<NetPort> {
        use vireo_proto::vireo::{procs as vprocs, PortCreateTapArgs, PortCreateTapRet};
        let net = self.network(network).await?;
        let (r, mut fds): (PortCreateTapRet, _) = self
            .call_network_vireo(
                vprocs::NETWORK_PORT_CREATE_TAP,
                &PortCreateTapArgs {
                    net: net.clone(),
                    xml,
                    filterref,
                    flags: 0,
                },
            )
            .await?;
        let port = r.port;
        let Some(fd) = fds.pop().filter(|_| fds.is_empty()) else {
            let _ = self.delete_port(network, port.uuid).await;
            return Err(DriverError::OperationFailed(
                "the network driver sent no tap device with the port".into(),
            ));
        };
        let bridge: vireo_proto::network::GetBridgeNameRet = self
            .call(
                Family::Network,
                procs::NETWORK_GET_BRIDGE_NAME,
                &vireo_proto::network::NetArgs { net },
            )
            .await?;
        Ok(NetPort {
            uuid: port.uuid,
            bridge: bridge.name,
            ifname: r.ifname,
            fd,
        })
    }

    /// A tap in a host bridge (Vireo's own call; the tap comes as a descriptor).
    async fn bridge_port(
        &self,
        bridge: &str,
        xml: String,
        filterref: Option<String>,
    ) -> Result<NetPort> {
        use vireo_proto::vireo::{
            procs as vprocs, BridgePortCreateTapArgs, BridgePortCreateTapRet,
        };
        let (r, mut fds): (BridgePortCreateTapRet, _) = self
            .call_network_vireo(
                vprocs::BRIDGE_PORT_CREATE_TAP,
                &BridgePortCreateTapArgs {
                    bridge: bridge.to_string(),
                    xml,
                    filterref,
                    flags: 0,
                },
            )
            .await?;
        let Some(fd) = fds.pop().filter(|_| fds.is_empty()) else {
            return Err(DriverError::OperationFailed(
                "the network driver sent no tap device with the port".into(),
            ));
        };
        Ok(NetPort {
            uuid: r.port,
            bridge: bridge.to_string(),
            ifname: r.ifname,
            fd,
        })
    }

    async fn delete_bridge_port(&self, owner: [u8; 16], ifname: String) -> Result<()> {
        use vireo_proto::vireo::{procs as vprocs, BridgePortDeleteArgs};
        let ((), _) = self
            .call_network_vireo(
                vprocs::BRIDGE_PORT_DELETE,
                &BridgePortDeleteArgs {
                    owner,
                    ifname,
                    flags: 0,
                },
            )
            .await?;
        Ok(())
    }

    async fn delete_port(&self, network: &str, uuid: [u8; 16]) -> Result<()> {
        let net = self.network(network).await?;
        self.call::<_, ()>(
            Family::Network,
            procs::NETWORK_PORT_DELETE,
            &vireo_proto::network::PortFlagsArgs {
                port: vireo_proto::network::NetworkPort { net, uuid },
                flags: 0,
            },
        )
        .await
    }

    async fn dhcp_leases(&self, network: &str, mac: &str) -> Result<Vec<(i32, String, u32)>> {
        let net = self.network(network).await?;
        let r: vireo_proto::network::GetDhcpLeasesRet = self
            .call(
                Family::Network,
                procs::NETWORK_GET_DHCP_LEASES,
                &vireo_proto::network::GetDhcpLeasesArgs {
                    net,
                    mac: Some(mac.to_string()),
                    need_results: 1,
                    flags: 0,
                },
            )
            .await?;
        Ok(r.leases
            .0
            .into_iter()
            .map(|l| (l.type_, l.ipaddr, l.prefix))
            .collect())
    }

    /// A secret's value, private ones included (this connection is internal).
    async fn secret_value(&self, uuid: [u8; 16]) -> Result<Zeroizing<Vec<u8>>> {
        let s = Family::Secret;
        let h: SecretRet = self
            .call(
                s,
                procs::SECRET_LOOKUP_BY_UUID,
                &SecretLookupByUuidArgs { uuid },
            )
            .await?;
        let v: SecretGetValueRet = self
            .call(
                s,
                procs::SECRET_GET_VALUE,
                &SecretFlagsArgs {
                    secret: h.secret,
                    flags: 0,
                },
            )
            .await?;
        Ok(Zeroizing::new(v.value.0))
    }
}

impl Peers for DaemonPeers {
    fn volume(&self, pool: &str, volume: &str) -> BoxFuture<Result<VolumeSource>> {
        let me = Arc::clone(&self.0);
        let (pool, volume) = (pool.to_string(), volume.to_string());
        Box::pin(async move { me.volume(&pool, &volume).await })
    }

    fn secret_value(&self, uuid: [u8; 16]) -> BoxFuture<Result<Zeroizing<Vec<u8>>>> {
        let me = Arc::clone(&self.0);
        Box::pin(async move { me.secret_value(uuid).await })
    }

    fn network_port(
        &self,
        network: &str,
        xml: String,
        filterref: Option<String>,
    ) -> BoxFuture<Result<NetPort>> {
        let me = Arc::clone(&self.0);
        let network = network.to_string();
        Box::pin(async move { me.network_port(&network, xml, filterref).await })
    }

    fn dhcp_leases(&self, network: &str, mac: &str) -> BoxFuture<Result<Vec<(i32, String, u32)>>> {
        let me = Arc::clone(&self.0);
        let (network, mac) = (network.to_string(), mac.to_string());
        Box::pin(async move { me.dhcp_leases(&network, &mac).await })
    }

    fn delete_port(&self, network: &str, port: [u8; 16]) -> BoxFuture<Result<()>> {
        let me = Arc::clone(&self.0);
        let network = network.to_string();
        Box::pin(async move { me.delete_port(&network, port).await })
    }

    fn bridge_port(
        &self,
        bridge: &str,
        xml: String,
        filterref: Option<String>,
    ) -> BoxFuture<Result<NetPort>> {
        let me = Arc::clone(&self.0);
        let bridge = bridge.to_string();
        Box::pin(async move { me.bridge_port(&bridge, xml, filterref).await })
    }

    fn delete_bridge_port(&self, owner: [u8; 16], ifname: &str) -> BoxFuture<Result<()>> {
        let me = Arc::clone(&self.0);
        let ifname = ifname.to_string();
        Box::pin(async move { me.delete_bridge_port(owner, ifname).await })
    }

    fn lease_device(
        &self,
        name: &str,
        owner: [u8; 16],
        owner_name: &str,
        managed: bool,
    ) -> BoxFuture<Result<DeviceLease>> {
        let me = Arc::clone(&self.0);
        let (name, owner_name) = (name.to_string(), owner_name.to_string());
        Box::pin(async move { me.lease_device(name, owner, owner_name, managed).await })
    }

    fn release_devices(&self, owner: [u8; 16]) -> BoxFuture<Result<()>> {
        let me = Arc::clone(&self.0);
        Box::pin(async move { me.release(owner, None).await })
    }

    fn release_device(&self, owner: [u8; 16], name: &str) -> BoxFuture<Result<()>> {
        let me = Arc::clone(&self.0);
        let name = name.to_string();
        Box::pin(async move { me.release(owner, Some(name)).await })
    }

    fn node_device_names(&self, cap: &str) -> BoxFuture<Result<Vec<String>>> {
        let me = Arc::clone(&self.0);
        let cap = cap.to_string();
        Box::pin(async move { me.node_device_names(&cap).await })
    }

    fn node_device_xml(&self, name: &str) -> BoxFuture<Result<String>> {
        let me = Arc::clone(&self.0);
        let name = name.to_string();
        Box::pin(async move { me.node_device_xml(name).await })
    }

    fn device_leases(&self) -> BoxFuture<Result<DeviceLeases>> {
        let me = Arc::clone(&self.0);
        Box::pin(async move { me.device_leases().await })
    }
}

/// The storage driver's passphrases, from a blocking thread of a multi-threaded runtime
/// (where storage calls run).
impl vireo_storage::Secrets for DaemonPeers {
    fn value(&self, uuid: &[u8; 16]) -> vireo_storage::Result<Zeroizing<Vec<u8>>> {
        let me = Arc::clone(&self.0);
        let uuid = *uuid;
        let failed = |e: String| {
            vireo_storage::StorageError::Invalid(format!(
                "cannot get the passphrase secret {}: {e}",
                vireo_xml::format_uuid(&uuid)
            ))
        };
        let rt = tokio::runtime::Handle::try_current().map_err(|e| failed(e.to_string()))?;
        rt.block_on(async move { me.secret_value(uuid).await })
            .map_err(|e| failed(e.to_string()))
    }
}

/// The network driver's way to the filter driver (bindings of its ports' taps), from a
/// blocking thread of a multi-threaded runtime (where network calls run).
impl vireo_network::Filters for DaemonPeers {
    fn bind(&self, binding_xml: &str) -> vireo_network::Result<()> {
        use vireo_proto::nwfilter::{BindingRet, XmlFlagsArgs};
        let me = Arc::clone(&self.0);
        let xml = binding_xml.to_string();
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|e| vireo_network::NetworkError::Internal(e.to_string()))?;
        rt.block_on(async move {
            me.call::<_, BindingRet>(
                Family::NwFilter,
                procs::NWFILTER_BINDING_CREATE_XML,
                &XmlFlagsArgs { xml, flags: 0 },
            )
            .await
        })
        .map(|_| ())
        .map_err(filter_error)
    }

    fn unbind(&self, portdev: &str) -> vireo_network::Result<()> {
        use vireo_proto::nwfilter::{BindingArgs, BindingRet, NameArgs};
        let me = Arc::clone(&self.0);
        let dev = portdev.to_string();
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|e| vireo_network::NetworkError::Internal(e.to_string()))?;
        rt.block_on(async move {
            let b: BindingRet = match me
                .call(
                    Family::NwFilter,
                    procs::NWFILTER_BINDING_LOOKUP_BY_PORT_DEV,
                    &NameArgs { name: dev },
                )
                .await
            {
                Ok(b) => b,
                // Gone already.
                Err(DriverError::Peer(r)) if r.code == 101 => return Ok(()),
                Err(e) => return Err(e),
            };
            me.call::<_, ()>(
                Family::NwFilter,
                procs::NWFILTER_BINDING_DELETE,
                &BindingArgs {
                    nwfilter: b.nwfilter,
                },
            )
            .await
        })
        .map_err(filter_error)
    }
}

/// A filter driver's error, as the network driver reports it (the filter driver's words).
fn filter_error(e: DriverError) -> vireo_network::NetworkError {
    match e {
        DriverError::Peer(r) => vireo_network::NetworkError::Invalid(format!(
            "cannot bind the interface's filter: {}",
            r.text()
        )),
        e => {
            vireo_network::NetworkError::Invalid(format!("cannot bind the interface's filter: {e}"))
        }
    }
}
