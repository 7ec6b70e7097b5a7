//! Host interface calls: list, look up, read, define, undefine, start and stop host
//! interfaces, and the change transactions (begin, commit, rollback).

use vireo_proto::interface::*;
use vireo_proto::remote::procs;

use crate::{Connect, Result};

/// libvirt's `VIR_FROM_INTERFACE`.
const FROM_INTERFACE: i32 = 26;

impl Connect {
    /// Every interface, filtered by `flags` (`list_flags::ACTIVE` / `INACTIVE`).
    pub async fn list_all_interfaces(&self, flags: u32) -> Result<Vec<Interface>> {
        let r: ConnectListAllInterfacesRet = self
            .call(
                procs::CONNECT_LIST_ALL_INTERFACES,
                &ConnectListAllInterfacesArgs {
                    need_results: 1,
                    flags,
                },
            )
            .await?;
        Ok(r.ifaces.0)
    }

    pub async fn interface_lookup_by_name(&self, name: &str) -> Result<Interface> {
        let r: InterfaceRet = self
            .call(
                procs::INTERFACE_LOOKUP_BY_NAME,
                &InterfaceNameArgs { name: name.into() },
            )
            .await?;
        Ok(r.iface)
    }

    pub async fn interface_lookup_by_mac(&self, mac: &str) -> Result<Interface> {
        let r: InterfaceRet = self
            .call(
                procs::INTERFACE_LOOKUP_BY_MAC_STRING,
                &InterfaceMacArgs { mac: mac.into() },
            )
            .await?;
        Ok(r.iface)
    }

    /// The interface's XML; `flags`: `XML_INACTIVE`.
    pub async fn interface_xml_desc(&self, i: &Interface, flags: u32) -> Result<String> {
        let r: InterfaceXmlRet = self
            .call(
                procs::INTERFACE_GET_XML_DESC,
                &InterfaceFlagsArgs {
                    iface: i.clone(),
                    flags,
                },
            )
            .await?;
        Ok(r.xml)
    }

    pub async fn interface_is_active(&self, i: &Interface) -> Result<bool> {
        let r: InterfaceIsActiveRet = self
            .call(
                procs::INTERFACE_IS_ACTIVE,
                &InterfaceArgs { iface: i.clone() },
            )
            .await?;
        Ok(r.active != 0)
    }

    /// Defines (or redefines) an interface; `flags`: `DEFINE_VALIDATE`.
    ///
    /// The calls that change something are refused on a read-only connection before
    /// anything is sent, as libvirt refuses them.
    pub async fn interface_define_xml(&self, xml: &str, flags: u32) -> Result<Interface> {
        self.check_writable("virInterfaceDefineXML", FROM_INTERFACE)?;
        let r: InterfaceRet = self
            .call(
                procs::INTERFACE_DEFINE_XML,
                &InterfaceDefineXmlArgs {
                    xml: xml.into(),
                    flags,
                },
            )
            .await?;
        Ok(r.iface)
    }

    pub async fn interface_undefine(&self, i: &Interface) -> Result<()> {
        self.check_writable("virInterfaceUndefine", FROM_INTERFACE)?;
        self.call(
            procs::INTERFACE_UNDEFINE,
            &InterfaceArgs { iface: i.clone() },
        )
        .await
    }

    pub async fn interface_create(&self, i: &Interface) -> Result<()> {
        self.check_writable("virInterfaceCreate", FROM_INTERFACE)?;
        self.call(
            procs::INTERFACE_CREATE,
            &InterfaceFlagsArgs {
                iface: i.clone(),
                flags: 0,
            },
        )
        .await
    }

    pub async fn interface_destroy(&self, i: &Interface) -> Result<()> {
        self.check_writable("virInterfaceDestroy", FROM_INTERFACE)?;
        self.call(
            procs::INTERFACE_DESTROY,
            &InterfaceFlagsArgs {
                iface: i.clone(),
                flags: 0,
            },
        )
        .await
    }

    /// `virInterfaceChangeBegin`, `Commit` or `Rollback`: `proc_` is one of
    /// `INTERFACE_CHANGE_BEGIN`, `_COMMIT`, `_ROLLBACK`.
    pub async fn interface_change(&self, proc_: i32) -> Result<()> {
        let api = match proc_ {
            procs::INTERFACE_CHANGE_BEGIN => "virInterfaceChangeBegin",
            procs::INTERFACE_CHANGE_COMMIT => "virInterfaceChangeCommit",
            _ => "virInterfaceChangeRollback",
        };
        self.check_writable(api, FROM_INTERFACE)?;
        self.call(proc_, &InterfaceChangeArgs { flags: 0 }).await
    }
}
