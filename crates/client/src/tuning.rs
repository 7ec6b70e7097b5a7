//! A domain's memory and vCPUs (set and read), its interfaces' addresses, keys sent to it,
//! the domain capabilities of the host, and CPU definitions compared with the host's CPU
//! (or the hypervisor's) and reduced to a baseline.

use vireo_proto::error::domain::NONE;
use vireo_proto::remote::*;

use crate::{Connect, Result};

impl Connect {
    /// `virDomainSetMemoryFlags` (`MEM_MAXIMUM` for the maximum).
    pub async fn set_memory(&self, dom: &Domain, kib: u64, flags: u32) -> Result<()> {
        self.call(
            procs::DOMAIN_SET_MEMORY_FLAGS,
            &DomainSetMemoryFlagsArgs {
                dom: dom.clone(),
                memory: kib,
                flags,
            },
        )
        .await
    }

    /// `virDomainSetVcpusFlags`.
    pub async fn set_vcpus(&self, dom: &Domain, n: u32, flags: u32) -> Result<()> {
        self.call(
            procs::DOMAIN_SET_VCPUS_FLAGS,
            &DomainSetVcpusFlagsArgs {
                dom: dom.clone(),
                nvcpus: n,
                flags,
            },
        )
        .await
    }

    /// `virDomainGetVcpus`: each vCPU's info and its CPU map (`maplen` bytes each).
    pub async fn vcpus(
        &self,
        dom: &Domain,
        maxinfo: i32,
        maplen: i32,
    ) -> Result<(Vec<VcpuInfo>, Vec<u8>)> {
        let r: DomainGetVcpusRet = self
            .call(
                procs::DOMAIN_GET_VCPUS,
                &DomainGetVcpusArgs {
                    dom: dom.clone(),
                    maxinfo,
                    maplen,
                },
            )
            .await?;
        Ok((r.info.0, r.cpumaps.0))
    }

    /// `virNodeGetCPUMap`: the number of host CPUs.
    pub async fn host_cpus(&self) -> Result<i32> {
        let r: NodeGetCpuMapRet = self
            .call(
                procs::NODE_GET_CPU_MAP,
                &NodeGetCpuMapArgs {
                    need_map: 0,
                    need_online: 0,
                    flags: 0,
                },
            )
            .await?;
        Ok(r.ret)
    }

    /// `virDomainInterfaceAddresses`.
    pub async fn interface_addresses(
        &self,
        dom: &Domain,
        source: u32,
    ) -> Result<Vec<DomainInterface>> {
        let r: DomainInterfaceAddressesRet = self
            .call(
                procs::DOMAIN_INTERFACE_ADDRESSES,
                &DomainInterfaceAddressesArgs {
                    dom: dom.clone(),
                    source,
                    flags: 0,
                },
            )
            .await?;
        Ok(r.ifaces.0)
    }

    /// `virDomainSendKey`.
    pub async fn send_key(
        &self,
        dom: &Domain,
        codeset: u32,
        holdtime: u32,
        keys: &[u32],
    ) -> Result<()> {
        self.call(
            procs::DOMAIN_SEND_KEY,
            &DomainSendKeyArgs {
                dom: dom.clone(),
                codeset,
                holdtime,
                keycodes: vireo_xdr::Array(keys.to_vec()),
                flags: 0,
            },
        )
        .await
    }

    /// `virConnectGetDomainCapabilities`.
    pub async fn domain_capabilities(
        &self,
        machine: Option<&str>,
        virttype: Option<&str>,
    ) -> Result<String> {
        let r: ConnectGetDomainCapabilitiesRet = self
            .call(
                procs::CONNECT_GET_DOMAIN_CAPABILITIES,
                &ConnectGetDomainCapabilitiesArgs {
                    emulatorbin: None,
                    arch: None,
                    machine: machine.map(str::to_string),
                    virttype: virttype.map(str::to_string),
                    flags: 0,
                },
            )
            .await?;
        Ok(r.capabilities)
    }

    /// `virConnectGetCPUModelNames`: the CPU models the hypervisor knows for `arch`.
    pub async fn cpu_model_names(&self, arch: &str) -> Result<Vec<String>> {
        let r: ConnectGetCpuModelNamesRet = self
            .call(
                procs::CONNECT_GET_CPU_MODEL_NAMES,
                &ConnectGetCpuModelNamesArgs {
                    arch: arch.to_string(),
                    need_results: 1,
                    flags: 0,
                },
            )
            .await?;
        Ok(r.models.0)
    }

    /// `virConnectCompareCPU`: `VIR_CPU_COMPARE_INCOMPATIBLE` (0), `IDENTICAL` (1) or
    /// `SUPERSET` (2).
    pub async fn compare_cpu(&self, xml: &str, flags: u32) -> Result<i32> {
        let r: ConnectCompareCpuRet = self
            .call(
                procs::CONNECT_COMPARE_CPU,
                &ConnectCompareCpuArgs {
                    xml: xml.to_string(),
                    flags,
                },
            )
            .await?;
        Ok(r.result)
    }

    /// `virConnectCompareHypervisorCPU`: as [`Connect::compare_cpu`], against the CPU the
    /// hypervisor gives guests (of `emulator`, `arch`, `machine`, `virttype`).
    pub async fn compare_hypervisor_cpu(
        &self,
        hv: &HypervisorCpu<'_>,
        xml: &str,
        flags: u32,
    ) -> Result<i32> {
        self.check_writable("virConnectCompareHypervisorCPU", NONE)?;
        let r: ConnectCompareCpuRet = self
            .call(
                procs::CONNECT_COMPARE_HYPERVISOR_CPU,
                &ConnectCompareHypervisorCpuArgs {
                    emulator: hv.emulator.map(str::to_string),
                    arch: hv.arch.map(str::to_string),
                    machine: hv.machine.map(str::to_string),
                    virttype: hv.virttype.map(str::to_string),
                    xml_cpu: xml.to_string(),
                    flags,
                },
            )
            .await?;
        Ok(r.result)
    }

    /// `virConnectBaselineCPU`: the CPU every one of `xmls` can be (`<cpu>` XML).
    pub async fn baseline_cpu(&self, xmls: &[String], flags: u32) -> Result<String> {
        let r: ConnectBaselineCpuRet = self
            .call(
                procs::CONNECT_BASELINE_CPU,
                &ConnectBaselineCpuArgs {
                    xml_cpus: vireo_xdr::Array(xmls.to_vec()),
                    flags,
                },
            )
            .await?;
        Ok(r.cpu)
    }

    /// `virConnectBaselineHypervisorCPU`: as [`Connect::baseline_cpu`], of the models the
    /// hypervisor runs.
    pub async fn baseline_hypervisor_cpu(
        &self,
        hv: &HypervisorCpu<'_>,
        xmls: &[String],
        flags: u32,
    ) -> Result<String> {
        self.check_writable("virConnectBaselineHypervisorCPU", NONE)?;
        let r: ConnectBaselineCpuRet = self
            .call(
                procs::CONNECT_BASELINE_HYPERVISOR_CPU,
                &ConnectBaselineHypervisorCpuArgs {
                    emulator: hv.emulator.map(str::to_string),
                    arch: hv.arch.map(str::to_string),
                    machine: hv.machine.map(str::to_string),
                    virttype: hv.virttype.map(str::to_string),
                    xml_cpus: vireo_xdr::Array(xmls.to_vec()),
                    flags,
                },
            )
            .await?;
        Ok(r.cpu)
    }
}

/// Which hypervisor's CPU the `*_hypervisor_cpu` calls mean (`None`: the daemon's default).
#[derive(Debug, Clone, Copy, Default)]
pub struct HypervisorCpu<'a> {
    pub emulator: Option<&'a str>,
    pub arch: Option<&'a str>,
    pub machine: Option<&'a str>,
    pub virttype: Option<&'a str>,
}
