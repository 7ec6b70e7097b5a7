//! Virtual network calls: list, look up, define, start and stop, update, DHCP leases,
//! ports and lifecycle events.

use tokio::sync::mpsc::UnboundedReceiver;
use vireo_proto::network::*;
use vireo_proto::remote::{procs, Uuid};
use vireo_rpc::Frame;

use crate::{uri, ClientError, Connect, Result};

/// One network lifecycle event (`event::DEFINED` … `event::STOPPED`).
#[derive(Debug, Clone)]
pub struct NetworkEvent {
    pub net: Network,
    pub event: i32,
    pub detail: i32,
}

/// Lifecycle events of one registration (see [`Connect::network_lifecycle_events`]).
pub struct NetworkEvents {
    rx: UnboundedReceiver<Frame>,
    callback_id: i32,
}

impl NetworkEvents {
    /// The daemon's id of this registration.
    pub fn callback_id(&self) -> i32 {
        self.callback_id
    }

    /// The next lifecycle event of this registration; `None` once the connection is gone.
    /// Messages that are not ours, or that do not decode, are skipped.
    pub async fn next(&mut self) -> Option<NetworkEvent> {
        loop {
            let f = self.rx.recv().await?;
            if f.header.proc_ != procs::NETWORK_EVENT_LIFECYCLE {
                continue;
            }
            let Ok(m) = vireo_xdr::from_bytes::<NetworkEventLifecycleMsg>(&f.payload) else {
                continue;
            };
            if m.callback_id == self.callback_id {
                return Some(NetworkEvent {
                    net: m.body.net,
                    event: m.body.event,
                    detail: m.body.detail,
                });
            }
        }
    }
}

impl Connect {
    async fn net_call<A: vireo_xdr::Xdr>(&self, proc_: i32, args: &A) -> Result<Network> {
        let r: NetRet = self.call(proc_, args).await?;
        Ok(r.net)
    }

    /// Calls whose only argument is the network and that return nothing: create (start),
    /// destroy, undefine.
    async fn net_void_call(&self, proc_: i32, net: &Network) -> Result<()> {
        self.call(proc_, &NetArgs { net: net.clone() }).await
    }

    pub async fn list_all_networks(&self, flags: u32) -> Result<Vec<Network>> {
        let r: ListAllNetworksRet = self
            .call(
                procs::CONNECT_LIST_ALL_NETWORKS,
                &ListAllArgs {
                    need_results: 1,
                    flags,
                },
            )
            .await?;
        Ok(r.nets.0)
    }

    pub async fn network_lookup_by_name(&self, name: &str) -> Result<Network> {
        self.net_call(
            procs::NETWORK_LOOKUP_BY_NAME,
            &NameArgs { name: name.into() },
        )
        .await
    }

    pub async fn network_lookup_by_uuid(&self, uuid: &Uuid) -> Result<Network> {
        self.net_call(procs::NETWORK_LOOKUP_BY_UUID, &UuidArgs { uuid: *uuid })
            .await
    }

    /// Finds a network the way virsh does: a key as long as a UUID is tried as one first,
    /// then everything as a name (whose error is the one returned).
    pub async fn network_lookup(&self, key: &str) -> Result<Network> {
        if key.len() == 36 {
            if let Some(u) = uri::parse_uuid(key) {
                if let Ok(n) = self.network_lookup_by_uuid(&u).await {
                    return Ok(n);
                }
            }
        }
        self.network_lookup_by_name(key).await
    }

    /// Defines (or redefines) a persistent network; `flags`: `DEFINE_VALIDATE`.
    pub async fn network_define_xml(&self, xml: &str, flags: u32) -> Result<Network> {
        if flags == 0 {
            self.net_call(procs::NETWORK_DEFINE_XML, &XmlArgs { xml: xml.into() })
                .await
        } else {
            self.net_call(
                procs::NETWORK_DEFINE_XML_FLAGS,
                &XmlFlagsArgs {
                    xml: xml.into(),
                    flags,
                },
            )
            .await
        }
    }

    /// Starts a transient network; `flags`: `CREATE_VALIDATE`.
    pub async fn network_create_xml(&self, xml: &str, flags: u32) -> Result<Network> {
        if flags == 0 {
            self.net_call(procs::NETWORK_CREATE_XML, &XmlArgs { xml: xml.into() })
                .await
        } else {
            self.net_call(
                procs::NETWORK_CREATE_XML_FLAGS,
                &XmlFlagsArgs {
                    xml: xml.into(),
                    flags,
                },
            )
            .await
        }
    }

    /// Starts a defined network.
    pub async fn network_start(&self, net: &Network) -> Result<()> {
        self.net_void_call(procs::NETWORK_CREATE, net).await
    }

    pub async fn network_destroy(&self, net: &Network) -> Result<()> {
        self.net_void_call(procs::NETWORK_DESTROY, net).await
    }

    pub async fn network_undefine(&self, net: &Network) -> Result<()> {
        self.net_void_call(procs::NETWORK_UNDEFINE, net).await
    }

    /// The network's XML; `flags`: `XML_INACTIVE`.
    pub async fn network_xml_desc(&self, net: &Network, flags: u32) -> Result<String> {
        let r: XmlRet = self
            .call(
                procs::NETWORK_GET_XML_DESC,
                &NetFlagsArgs {
                    net: net.clone(),
                    flags,
                },
            )
            .await?;
        Ok(r.xml)
    }

    pub async fn network_bridge_name(&self, net: &Network) -> Result<String> {
        let r: GetBridgeNameRet = self
            .call(
                procs::NETWORK_GET_BRIDGE_NAME,
                &NetArgs { net: net.clone() },
            )
            .await?;
        Ok(r.name)
    }

    pub async fn network_autostart(&self, net: &Network) -> Result<bool> {
        let r: AutostartRet = self
            .call(procs::NETWORK_GET_AUTOSTART, &NetArgs { net: net.clone() })
            .await?;
        Ok(r.autostart != 0)
    }

    pub async fn network_set_autostart(&self, net: &Network, on: bool) -> Result<()> {
        self.call(
            procs::NETWORK_SET_AUTOSTART,
            &SetAutostartArgs {
                net: net.clone(),
                autostart: on as i32,
            },
        )
        .await
    }

    pub async fn network_is_active(&self, net: &Network) -> Result<bool> {
        let r: ActiveRet = self
            .call(procs::NETWORK_IS_ACTIVE, &NetArgs { net: net.clone() })
            .await?;
        Ok(r.active != 0)
    }

    pub async fn network_is_persistent(&self, net: &Network) -> Result<bool> {
        let r: PersistentRet = self
            .call(procs::NETWORK_IS_PERSISTENT, &NetArgs { net: net.clone() })
            .await?;
        Ok(r.persistent != 0)
    }

    /// Changes one section of the network (`virNetworkUpdate`): `command` is an
    /// `update_command`, `section` an `update_section`, `parent_index` the `<ip>` element
    /// (-1: any), `flags` `update_flags`.
    ///
    /// On the wire the two travel swapped, as libvirt's own clients send them: the section
    /// in the field named `command`, the command in the field named `section`.
    pub async fn network_update(
        &self,
        net: &Network,
        command: u32,
        section: u32,
        parent_index: i32,
        xml: &str,
        flags: u32,
    ) -> Result<()> {
        self.call(
            procs::NETWORK_UPDATE,
            &NetworkUpdateArgs {
                net: net.clone(),
                command: section,
                section: command,
                parent_index,
                xml: xml.into(),
                flags,
            },
        )
        .await
    }

    /// The network's DHCP leases (only those of `mac`, when given).
    pub async fn network_dhcp_leases(
        &self,
        net: &Network,
        mac: Option<&str>,
    ) -> Result<Vec<DhcpLease>> {
        let r: GetDhcpLeasesRet = self
            .call(
                procs::NETWORK_GET_DHCP_LEASES,
                &GetDhcpLeasesArgs {
                    net: net.clone(),
                    mac: mac.map(str::to_string),
                    need_results: 1,
                    flags: 0,
                },
            )
            .await?;
        Ok(r.leases.0)
    }

    pub async fn network_list_all_ports(&self, net: &Network) -> Result<Vec<NetworkPort>> {
        let r: ListAllPortsRet = self
            .call(
                procs::NETWORK_LIST_ALL_PORTS,
                &ListAllPortsArgs {
                    net: net.clone(),
                    need_results: 1,
                    flags: 0,
                },
            )
            .await?;
        Ok(r.ports.0)
    }

    pub async fn network_port_lookup_by_uuid(
        &self,
        net: &Network,
        uuid: &Uuid,
    ) -> Result<NetworkPort> {
        let r: PortRet = self
            .call(
                procs::NETWORK_PORT_LOOKUP_BY_UUID,
                &PortLookupByUuidArgs {
                    net: net.clone(),
                    uuid: *uuid,
                },
            )
            .await?;
        Ok(r.port)
    }

    /// A port of `net` by its UUID string, as virsh finds them.
    pub async fn network_port_lookup(&self, net: &Network, key: &str) -> Result<NetworkPort> {
        match uri::parse_uuid(key) {
            Some(u) => self.network_port_lookup_by_uuid(net, &u).await,
            None => Err(ClientError::Uri(format!("'{key}' is not a UUID"))),
        }
    }

    /// Creates a port on `net`; `flags`: `port_create_flags`.
    pub async fn network_port_create_xml(
        &self,
        net: &Network,
        xml: &str,
        flags: u32,
    ) -> Result<NetworkPort> {
        let r: PortRet = self
            .call(
                procs::NETWORK_PORT_CREATE_XML,
                &PortCreateXmlArgs {
                    net: net.clone(),
                    xml: xml.into(),
                    flags,
                },
            )
            .await?;
        Ok(r.port)
    }

    pub async fn network_port_xml_desc(&self, port: &NetworkPort) -> Result<String> {
        let r: XmlRet = self
            .call(
                procs::NETWORK_PORT_GET_XML_DESC,
                &PortFlagsArgs {
                    port: port.clone(),
                    flags: 0,
                },
            )
            .await?;
        Ok(r.xml)
    }

    pub async fn network_port_delete(&self, port: &NetworkPort) -> Result<()> {
        self.call(
            procs::NETWORK_PORT_DELETE,
            &PortFlagsArgs {
                port: port.clone(),
                flags: 0,
            },
        )
        .await
    }

    /// Registers for lifecycle events (of `net`, or of every network) and returns them as
    /// they come. Takes this connection's event stream: one registration per connection.
    pub async fn network_lifecycle_events(&self, net: Option<&Network>) -> Result<NetworkEvents> {
        let rx = self.connection().events();
        let r: EventRegisterAnyRet = self
            .call(
                procs::CONNECT_NETWORK_EVENT_REGISTER_ANY,
                &EventRegisterAnyArgs {
                    event_id: event::ID_LIFECYCLE,
                    net: net.cloned(),
                },
            )
            .await?;
        Ok(NetworkEvents {
            rx,
            callback_id: r.callback_id,
        })
    }

    pub async fn network_event_deregister(&self, callback_id: i32) -> Result<()> {
        self.call(
            procs::CONNECT_NETWORK_EVENT_DEREGISTER_ANY,
            &EventDeregisterAnyArgs { callback_id },
        )
        .await
    }
}
