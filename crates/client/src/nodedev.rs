//! Node device calls: list, look up (by name, or a SCSI host by its world wide names), the
//! XML and parent of a device, and its events.

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

    pub async fn node_device_event_deregister(&self, callback_id: i32) -> Result<()> {
        self.call(
            procs::CONNECT_NODE_DEVICE_EVENT_DEREGISTER_ANY,
            &EventCallbackDeregisterAnyArgs { callback_id },
        )
        .await
    }
}
