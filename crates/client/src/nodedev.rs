//! Node device calls: list, look up (by name, or a SCSI host by its world wide names), the
//! XML and parent of a device, and its events; devices made, defined, started, destroyed
//! and undefined (mediated devices), and PCI devices detached, reattached and reset.

use tokio::sync::mpsc::UnboundedReceiver;
use vireo_proto::nodedev::*;
use vireo_proto::remote::{procs, EventCallbackDeregisterAnyArgs, EventCallbackRegisterAnyRet};
use vireo_rpc::Frame;

use crate::{Connect, Result};

/// What happened to a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeDeviceEventKind {
    /// `event::CREATED` … `event::UNDEFINED`, and its detail.
    Lifecycle { event: i32, detail: i32 },
    /// It changed.
    Update,
}

/// One node device event.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeDeviceEvent {
    pub dev: NodeDevice,
    pub kind: NodeDeviceEventKind,
}

/// The events of one registration (see [`Connect::node_device_events`]).
pub struct NodeDeviceEvents {
    rx: UnboundedReceiver<Frame>,
    callback_id: i32,
}

impl NodeDeviceEvents {
    /// The daemon's id of this registration.
    pub fn callback_id(&self) -> i32 {
        self.callback_id
    }

    /// The next event of this registration; `None` once the connection is gone. Messages
    /// that are not ours, or that do not decode, are skipped.
    pub async fn next(&mut self) -> Option<NodeDeviceEvent> {
        loop {
            let f = self.rx.recv().await?;
            let ev = match f.header.proc_ {
                procs::NODE_DEVICE_EVENT_LIFECYCLE => {
                    vireo_xdr::from_bytes::<NodeDeviceEventLifecycleMsg>(&f.payload)
                        .ok()
                        .map(|m| {
                            (
                                m.callback_id,
                                NodeDeviceEvent {
                                    dev: m.body.dev,
                                    kind: NodeDeviceEventKind::Lifecycle {
                                        event: m.body.event,
                                        detail: m.body.detail,
                                    },
                                },
                            )
                        })
                }
                procs::NODE_DEVICE_EVENT_UPDATE => {
                    vireo_xdr::from_bytes::<NodeDeviceEventUpdateMsg>(&f.payload)
                        .ok()
                        .map(|m| {
                            (
                                m.callback_id,
                                NodeDeviceEvent {
                                    dev: m.body.dev,
                                    kind: NodeDeviceEventKind::Update,
                                },
                            )
                        })
                }
                _ => None,
            };
            match ev {
                Some((id, ev)) if id == self.callback_id => return Some(ev),
                _ => continue,
            }
        }
    }
}

impl Connect {
    /// `virConnectListAllNodeDevices`: the devices with any of the capabilities in `flags`
    /// (`LIST_CAPS`; none: all), active or inactive as `flags` asks.
    pub async fn list_all_node_devices(&self, flags: u32) -> Result<Vec<NodeDevice>> {
        let r: ConnectListAllNodeDevicesRet = self
            .call(
                procs::CONNECT_LIST_ALL_NODE_DEVICES,
                &ConnectListAllNodeDevicesArgs {
                    need_results: 1,
                    flags,
                },
            )
            .await?;
        Ok(r.devices.0)
    }

    pub async fn node_device_lookup_by_name(&self, name: &str) -> Result<NodeDevice> {
        let r: NodeDeviceLookupByNameRet = self
            .call(
                procs::NODE_DEVICE_LOOKUP_BY_NAME,
                &NodeDeviceNameArgs { name: name.into() },
            )
            .await?;
        Ok(r.dev)
    }

    /// The SCSI host whose Fibre Channel port has these world wide node and port names.
    pub async fn node_device_lookup_scsi_host_by_wwn(
        &self,
        wwnn: &str,
        wwpn: &str,
    ) -> Result<NodeDevice> {
        let r: NodeDeviceLookupByNameRet = self
            .call(
                procs::NODE_DEVICE_LOOKUP_SCSI_HOST_BY_WWN,
                &NodeDeviceLookupScsiHostByWwnArgs {
                    wwnn: wwnn.into(),
                    wwpn: wwpn.into(),
                    flags: 0,
                },
            )
            .await?;
        Ok(r.dev)
    }

    pub async fn node_device_xml_desc(&self, dev: &NodeDevice) -> Result<String> {
        let r: NodeDeviceGetXmlDescRet = self
            .call(
                procs::NODE_DEVICE_GET_XML_DESC,
                &NodeDeviceGetXmlDescArgs {
                    name: dev.name.clone(),
                    flags: 0,
                },
            )
            .await?;
        Ok(r.xml)
    }

    /// Its parent's name (none for the root, `computer`).
    pub async fn node_device_parent(&self, dev: &NodeDevice) -> Result<Option<String>> {
        let r: NodeDeviceGetParentRet = self
            .call(
                procs::NODE_DEVICE_GET_PARENT,
                &NodeDeviceNameArgs {
                    name: dev.name.clone(),
                },
            )
            .await?;
        Ok(r.parent)
    }

    /// Registers for the events `event_id` (`event::ID_LIFECYCLE`, `event::ID_UPDATE`) of
    /// `dev`, or of every device, and returns them as they come. Takes this connection's
    /// event stream: one registration per connection.
    pub async fn node_device_events(
        &self,
        dev: Option<&NodeDevice>,
        event_id: i32,
    ) -> Result<NodeDeviceEvents> {
        let rx = self.connection().events();
        let r: EventCallbackRegisterAnyRet = self
            .call(
                procs::CONNECT_NODE_DEVICE_EVENT_REGISTER_ANY,
                &NodeDeviceEventRegisterAnyArgs {
                    event_id,
                    dev: dev.cloned(),
                },
            )
            .await?;
        Ok(NodeDeviceEvents {
            rx,
            callback_id: r.callback_id,
        })
    }

    /// `virNodeDeviceCreateXML`: makes the (transient) device `xml` describes.
    pub async fn node_device_create_xml(&self, xml: &str, flags: u32) -> Result<NodeDevice> {
        let r: NodeDeviceXmlRet = self
            .call(
                procs::NODE_DEVICE_CREATE_XML,
                &NodeDeviceXmlArgs {
                    xml_desc: xml.into(),
                    flags,
                },
            )
            .await?;
        Ok(r.dev)
    }

    /// `virNodeDeviceDefineXML`: keeps the device `xml` describes, to be started later.
    pub async fn node_device_define_xml(&self, xml: &str, flags: u32) -> Result<NodeDevice> {
        let r: NodeDeviceXmlRet = self
            .call(
                procs::NODE_DEVICE_DEFINE_XML,
                &NodeDeviceXmlArgs {
                    xml_desc: xml.into(),
                    flags,
                },
            )
            .await?;
        Ok(r.dev)
    }

    /// `virNodeDeviceDestroy`.
    pub async fn node_device_destroy(&self, dev: &NodeDevice) -> Result<()> {
        self.call(
            procs::NODE_DEVICE_DESTROY,
            &NodeDeviceNameArgs {
                name: dev.name.clone(),
            },
        )
        .await
    }

    /// `virNodeDeviceUndefine`.
    pub async fn node_device_undefine(&self, dev: &NodeDevice) -> Result<()> {
        self.call(
            procs::NODE_DEVICE_UNDEFINE,
            &NodeDeviceNameFlagsArgs {
                name: dev.name.clone(),
                flags: 0,
            },
        )
        .await
    }

    /// `virNodeDeviceCreate`: starts a defined device.
    pub async fn node_device_start(&self, dev: &NodeDevice) -> Result<()> {
        self.call(
            procs::NODE_DEVICE_CREATE,
            &NodeDeviceNameFlagsArgs {
                name: dev.name.clone(),
                flags: 0,
            },
        )
        .await
    }

    pub async fn node_device_autostart(&self, dev: &NodeDevice) -> Result<bool> {
        let r: NodeDeviceGetAutostartRet = self
            .call(
                procs::NODE_DEVICE_GET_AUTOSTART,
                &NodeDeviceNameArgs {
                    name: dev.name.clone(),
                },
            )
            .await?;
        Ok(r.autostart != 0)
    }

    pub async fn node_device_set_autostart(&self, dev: &NodeDevice, on: bool) -> Result<()> {
        self.call(
            procs::NODE_DEVICE_SET_AUTOSTART,
            &NodeDeviceSetAutostartArgs {
                name: dev.name.clone(),
                autostart: i32::from(on),
            },
        )
        .await
    }

    pub async fn node_device_is_active(&self, dev: &NodeDevice) -> Result<bool> {
        let r: NodeDeviceIsActiveRet = self
            .call(
                procs::NODE_DEVICE_IS_ACTIVE,
                &NodeDeviceNameArgs {
                    name: dev.name.clone(),
                },
            )
            .await?;
        Ok(r.active != 0)
    }

    pub async fn node_device_is_persistent(&self, dev: &NodeDevice) -> Result<bool> {
        let r: NodeDeviceIsPersistentRet = self
            .call(
                procs::NODE_DEVICE_IS_PERSISTENT,
                &NodeDeviceNameArgs {
                    name: dev.name.clone(),
                },
            )
            .await?;
        Ok(r.persistent != 0)
    }

    /// `virNodeDeviceDettach` (no driver named) or `virNodeDeviceDetachFlags`.
    pub async fn node_device_detach(&self, dev: &NodeDevice, driver: Option<&str>) -> Result<()> {
        match driver {
            None => {
                self.call(
                    procs::NODE_DEVICE_DETTACH,
                    &NodeDeviceNameArgs {
                        name: dev.name.clone(),
                    },
                )
                .await
            }
            Some(d) => {
                self.call(
                    procs::NODE_DEVICE_DETACH_FLAGS,
                    &NodeDeviceDetachFlagsArgs {
                        name: dev.name.clone(),
                        driver_name: Some(d.into()),
                        flags: 0,
                    },
                )
                .await
            }
        }
    }

    /// `virNodeDeviceReAttach`.
    pub async fn node_device_reattach(&self, dev: &NodeDevice) -> Result<()> {
        self.call(
            procs::NODE_DEVICE_RE_ATTACH,
            &NodeDeviceNameArgs {
                name: dev.name.clone(),
            },
        )
        .await
    }

    /// `virNodeDeviceReset`.
    pub async fn node_device_reset(&self, dev: &NodeDevice) -> Result<()> {
        self.call(
            procs::NODE_DEVICE_RESET,
            &NodeDeviceNameArgs {
                name: dev.name.clone(),
            },
        )
        .await
    }

    pub async fn node_device_event_deregister(&self, callback_id: i32) -> Result<()> {
        self.call(
            procs::CONNECT_NODE_DEVICE_EVENT_DEREGISTER_ANY,
            &EventCallbackDeregisterAnyArgs { callback_id },
        )
        .await
    }
}
