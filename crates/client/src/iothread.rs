//! A domain's I/O threads (listed, pinned, added, removed, tuned), the vCPUs its guest
//! agent reports and switches on and off, and a device detached by its alias. Each call
//! that changes something is refused on a read-only connection before it is sent, as
//! libvirt's library refuses it.

use vireo_proto::error::domain::DOMAIN;
use vireo_proto::remote::*;
use vireo_proto::typed::TypedParam;

use crate::{Connect, Result};

impl Connect {
    /// `virDomainGetIOThreadInfo`: each I/O thread's id and the map of the host CPUs it
    /// may run on (a bit per CPU, CPU 0 in the lowest bit of the first byte).
    pub async fn iothread_info(&self, dom: &Domain, flags: u32) -> Result<Vec<DomainIothreadInfo>> {
        let r: DomainGetIothreadInfoRet = self
            .call(
                procs::DOMAIN_GET_IOTHREAD_INFO,
                &DomainGetIothreadInfoArgs {
                    dom: dom.clone(),
                    flags,
                },
            )
            .await?;
        Ok(r.info.0)
    }

    /// `virDomainPinIOThread`: I/O thread `id` onto the host CPUs of `cpumap`.
    pub async fn pin_iothread(
        &self,
        dom: &Domain,
        id: u32,
        cpumap: &[u8],
        flags: u32,
    ) -> Result<()> {
        self.check_writable("virDomainPinIOThread", DOMAIN)?;
        self.call(
            procs::DOMAIN_PIN_IOTHREAD,
            &DomainPinIothreadArgs {
                dom: dom.clone(),
                iothreads_id: id,
                cpumap: vireo_xdr::Opaque(cpumap.to_vec()),
                flags,
            },
        )
        .await
    }

    /// `virDomainAddIOThread`.
    pub async fn add_iothread(&self, dom: &Domain, id: u32, flags: u32) -> Result<()> {
        self.check_writable("virDomainAddIOThread", DOMAIN)?;
        self.iothread_id_call(procs::DOMAIN_ADD_IOTHREAD, dom, id, flags)
            .await
    }

    /// `virDomainDelIOThread`.
    pub async fn del_iothread(&self, dom: &Domain, id: u32, flags: u32) -> Result<()> {
        self.check_writable("virDomainDelIOThread", DOMAIN)?;
        self.iothread_id_call(procs::DOMAIN_DEL_IOTHREAD, dom, id, flags)
            .await
    }

    async fn iothread_id_call(&self, proc_: i32, dom: &Domain, id: u32, flags: u32) -> Result<()> {
        self.call(
            proc_,
            &DomainIothreadIdArgs {
                dom: dom.clone(),
                iothread_id: id,
                flags,
            },
        )
        .await
    }

    /// `virDomainSetIOThreadParams`: `poll_max_ns` (ullong), `poll_grow`, `poll_shrink`
    /// (uint), `thread_pool_min`, `thread_pool_max` (int).
    pub async fn set_iothread_params(
        &self,
        dom: &Domain,
        id: u32,
        params: &[TypedParam],
        flags: u32,
    ) -> Result<()> {
        self.check_writable("virDomainSetIOThreadParams", DOMAIN)?;
        self.call(
            procs::DOMAIN_SET_IOTHREAD_PARAMS,
            &DomainSetIothreadParamsArgs {
                dom: dom.clone(),
                iothread_id: id,
                params: vireo_xdr::Array(params.to_vec()),
                flags,
            },
        )
        .await
    }

    /// `virDomainGetGuestVcpus`: what the guest agent says of the guest's vCPUs
    /// (`vcpus`, `online`, `offlinable`: CPU lists).
    pub async fn guest_vcpus(&self, dom: &Domain) -> Result<Vec<TypedParam>> {
        self.check_writable("virDomainGetGuestVcpus", DOMAIN)?;
        let r: DomainGetGuestVcpusRet = self
            .call(
                procs::DOMAIN_GET_GUEST_VCPUS,
                &DomainFlagsArgs {
                    dom: dom.clone(),
                    flags: 0,
                },
            )
            .await?;
        Ok(r.params.0)
    }

    /// `virDomainSetGuestVcpus`: the guest's vCPUs of `cpulist` online or offline.
    pub async fn set_guest_vcpus(&self, dom: &Domain, cpulist: &str, online: bool) -> Result<()> {
        self.check_writable("virDomainSetGuestVcpus", DOMAIN)?;
        self.call(
            procs::DOMAIN_SET_GUEST_VCPUS,
            &DomainSetGuestVcpusArgs {
                dom: dom.clone(),
                cpumap: cpulist.to_string(),
                state: online as i32,
                flags: 0,
            },
        )
        .await
    }

    /// `virDomainDetachDeviceAlias`: asks for the device called `alias` to go; returns
    /// once asked (DEVICE_REMOVED says when it is gone).
    pub async fn detach_device_alias(&self, dom: &Domain, alias: &str, flags: u32) -> Result<()> {
        self.check_writable("virDomainDetachDeviceAlias", DOMAIN)?;
        self.call(
            procs::DOMAIN_DETACH_DEVICE_ALIAS,
            &DomainDeviceFlagsArgs {
                dom: dom.clone(),
                xml: alias.to_string(),
                flags,
            },
        )
        .await
    }
}
