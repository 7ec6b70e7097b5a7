//! A domain's vCPU counts and where its vCPUs and emulator threads may run: the pins read
//! (running domain or definition) and set.

use vireo_proto::error::domain::DOMAIN;
use vireo_proto::remote::*;
use vireo_proto::{REMOTE_PROGRAM, REMOTE_VERSION};
use vireo_xdr::Xdr;

use crate::{Connect, Result};

/// `REMOTE_PROC_DOMAIN_PIN_VCPU`, the call of `virDomainPinVcpu` (the flagless pin).
const DOMAIN_PIN_VCPU: i32 = 26;

vireo_xdr::xdr_struct! {
    /// `remote_domain_pin_vcpu_args`.
    pub struct DomainPinVcpuArgs {
        pub dom: Domain,
        pub vcpu: u32,
        pub cpumap: vireo_xdr::Opaque<CPUMAP_MAX>,
    }
}

impl Connect {
    /// `virDomainGetVcpusFlags`: a count (`flags`: LIVE / CONFIG, `VCPU_MAXIMUM`,
    /// `VCPU_GUEST`).
    pub async fn vcpus_flags(&self, dom: &Domain, flags: u32) -> Result<i32> {
        if flags & VCPU_GUEST != 0 {
            self.check_writable("virDomainGetVcpusFlags", DOMAIN)?;
        }
        crate::live_or_config(flags)?;
        let r: DomainGetVcpusFlagsRet = self
            .call(
                procs::DOMAIN_GET_VCPUS_FLAGS,
                &DomainFlagsArgs {
                    dom: dom.clone(),
                    flags,
                },
            )
            .await?;
        Ok(r.num)
    }

    /// `virDomainGetVcpuPinInfo`: `ncpumaps` maps of `maplen` bytes, one per vCPU, and how
    /// many vCPUs there are.
    pub async fn vcpu_pin_info(
        &self,
        dom: &Domain,
        ncpumaps: i32,
        maplen: i32,
        flags: u32,
    ) -> Result<(Vec<u8>, i32)> {
        crate::live_or_config(flags)?;
        let r: DomainGetVcpuPinInfoRet = self
            .call(
                procs::DOMAIN_GET_VCPU_PIN_INFO,
                &DomainGetVcpuPinInfoArgs {
                    dom: dom.clone(),
                    ncpumaps,
                    maplen,
                    flags,
                },
            )
            .await?;
        Ok((r.cpumaps.0, r.num))
    }

    /// `virDomainPinVcpuFlags`: vCPU `vcpu` onto the host CPUs of `cpumap`.
    pub async fn pin_vcpu(&self, dom: &Domain, vcpu: u32, cpumap: &[u8], flags: u32) -> Result<()> {
        self.check_writable("virDomainPinVcpuFlags", DOMAIN)?;
        self.call(
            procs::DOMAIN_PIN_VCPU_FLAGS,
            &DomainPinVcpuFlagsArgs {
                dom: dom.clone(),
                vcpu,
                cpumap: vireo_xdr::Opaque(cpumap.to_vec()),
                flags,
            },
        )
        .await
    }

    /// `virDomainPinVcpu`: the flagless pin (the running domain).
    pub async fn pin_vcpu_live(&self, dom: &Domain, vcpu: u32, cpumap: &[u8]) -> Result<()> {
        self.check_writable("virDomainPinVcpu", DOMAIN)?;
        let args = DomainPinVcpuArgs {
            dom: dom.clone(),
            vcpu,
            cpumap: vireo_xdr::Opaque(cpumap.to_vec()),
        };
        self.connection()
            .call_raw(REMOTE_PROGRAM, REMOTE_VERSION, DOMAIN_PIN_VCPU, |o| {
                args.encode(o)
            })
            .await?;
        Ok(())
    }

    /// `virDomainGetMaxVcpus`: the running domain's maximum.
    pub async fn max_vcpus(&self, dom: &Domain) -> Result<i32> {
        let r: DomainGetMaxVcpusRet = self
            .call(
                procs::DOMAIN_GET_MAX_VCPUS,
                &DomainArgs { dom: dom.clone() },
            )
            .await?;
        Ok(r.num)
    }

    /// `virDomainGetEmulatorPinInfo`: the map (`maplen` bytes) of the host CPUs the
    /// emulator's threads may run on.
    pub async fn emulator_pin_info(
        &self,
        dom: &Domain,
        maplen: i32,
        flags: u32,
    ) -> Result<Vec<u8>> {
        crate::live_or_config(flags)?;
        let r: DomainGetEmulatorPinInfoRet = self
            .call(
                procs::DOMAIN_GET_EMULATOR_PIN_INFO,
                &DomainGetEmulatorPinInfoArgs {
                    dom: dom.clone(),
                    maplen,
                    flags,
                },
            )
            .await?;
        Ok(r.cpumaps.0)
    }

    /// `virDomainPinEmulator`.
    pub async fn pin_emulator(&self, dom: &Domain, cpumap: &[u8], flags: u32) -> Result<()> {
        self.check_writable("virDomainPinEmulator", DOMAIN)?;
        self.call(
            procs::DOMAIN_PIN_EMULATOR,
            &DomainPinEmulatorArgs {
                dom: dom.clone(),
                cpumap: vireo_xdr::Opaque(cpumap.to_vec()),
                flags,
            },
        )
        .await
    }
}
