//! `setmem`, `setmaxmem` and `setvcpus`: the memory a guest has (live through its
//! balloon, and in the definition), its maximum memory and its vCPU counts (in the
//! definition).

use vireo_driver::{DriverError, Result};
use vireo_proto::remote::{
    affect, procs, Domain as Handle, DomainSetMemoryFlagsArgs, MEM_MAXIMUM, VCPU_GUEST,
    VCPU_MAXIMUM,
};

use crate::driver::QemuDriver;

impl QemuDriver {
    /// `virDomainSetMemoryFlags`: with `MEM_MAXIMUM` the maximum (definition only, as QEMU
    /// cannot change it while running), else the current memory: live through the
    /// balloon, and/or in the definition.
    pub async fn set_memory(&self, h: &Handle, kib: u64, flags: u32) -> Result<()> {
        let maximum = flags & MEM_MAXIMUM != 0;
        let (active, persistent, def) = self.device_target(h)?;
        let (live, config) = crate::hotplug::targets(flags & !MEM_MAXIMUM, active, persistent)?;
        if kib == 0 {
            return Err(DriverError::InvalidArg("memory must not be zero".into()));
        }
        if maximum {
            if live {
                return Err(DriverError::OperationInvalid(
                    "cannot resize the maximum memory on an active domain".into(),
                ));
            }
            let mut new = def;
            new.memory_kib = kib;
            new.current_memory_kib = new.current_memory_kib.min(kib);
            return self.save_config(h, new);
        }
        if live {
            // The shim checks the balloon and the running maximum.
            let conn = self.shim_conn(h)?;
            let args = DomainSetMemoryFlagsArgs {
                dom: h.clone(),
                memory: kib,
                flags: affect::LIVE,
            };
            let _: () = conn
                .call(procs::DOMAIN_SET_MEMORY_FLAGS, &args)
                .await
                .map_err(crate::hotplug::shim_error)?;
        }
        if config {
            if kib > def.memory_kib {
                return Err(DriverError::InvalidArg(
                    "cannot set memory higher than max memory".into(),
                ));
            }
            let mut new = def;
            new.current_memory_kib = kib;
            self.save_config(h, new)?;
        }
        Ok(())
    }

    /// `virDomainSetVcpusFlags`, in the definition: with `VCPU_MAXIMUM` the maximum, else
    /// the vCPUs online at boot. Changing a running guest's vCPUs is not done yet.
    pub async fn set_vcpus(&self, h: &Handle, n: u32, flags: u32) -> Result<()> {
        let maximum = flags & VCPU_MAXIMUM != 0;
        if flags & VCPU_GUEST != 0 {
            return Err(DriverError::ArgUnsupported(
                "setting vCPUs through the guest agent is not supported".into(),
            ));
        }
        let (active, persistent, def) = self.device_target(h)?;
        if n == 0 {
            return Err(DriverError::InvalidArg(
                "nvcpus in virDomainSetVcpusFlags must not be zero".into(),
            ));
        }
        let (live, config) = crate::hotplug::targets(flags & !VCPU_MAXIMUM, active, persistent)?;
        if live {
            if maximum {
                return Err(DriverError::InvalidArg(
                    "the maximum vCPU count of a running domain cannot change".into(),
                ));
            }
            // The running VM's shim plugs or unplugs vCPUs (within the maximum it was
            // started with).
            let payload = vireo_xdr::to_bytes(&vireo_proto::remote::DomainSetVcpusFlagsArgs {
                dom: h.clone(),
                nvcpus: n,
                flags: vireo_proto::remote::affect::LIVE,
            });
            self.forward(
                h,
                vireo_proto::remote::procs::DOMAIN_SET_VCPUS_FLAGS,
                &payload,
            )
            .await
            .map_err(|e| DriverError::Peer(Box::new(e)))?;
            if !config {
                return Ok(());
            }
        }
        let mut new = def;
        if maximum {
            new.vcpus = n;
            if new.vcpu_current.is_some_and(|c| c > n) {
                new.vcpu_current = Some(n);
            }
        } else {
            if n > new.vcpus {
                return Err(DriverError::InvalidArg(format!(
                    "requested vcpus is greater than max allowable vcpus for the domain: {n} > {}",
                    new.vcpus
                )));
            }
            new.vcpu_current = (n != new.vcpus).then_some(n);
        }
        if new.vcpu_current == Some(new.vcpus) {
            new.vcpu_current = None;
        }
        self.save_config(h, new)
    }
}
