//! `virsh vcpupin` and `emulatorpin`: where vCPUs and QEMU's other threads may run. The
//! running VM's pins are its shim's (`crates/shim/src/pinning.rs`); the definition's are
//! `<cputune>` (and `<vcpu cpuset>`), answered and changed here.

use std::collections::BTreeSet;

use vireo_driver::{DriverError, Result};
use vireo_proto::remote::*;
use vireo_xdr::Xdr;
use vireo_xml::{format_cpuset, parse_cpuset, Domain, EmulatorPin, VcpuPin};

use crate::driver::QemuDriver;
use crate::hotplug::targets;

fn decode<T: vireo_xdr::Xdr>(payload: &[u8]) -> Result<T> {
    vireo_xdr::from_bytes(payload)
        .map_err(|e| DriverError::InvalidArg(format!("Unable to decode message payload: {e}")))
}

/// The host CPUs a definition lets vCPU `n` (None: QEMU's other threads) run on.
fn defined_cpus(def: &Domain, n: Option<u32>) -> Result<BTreeSet<usize>> {
    let tune = def.cputune.clone().unwrap_or_default();
    let pinned = match n {
        Some(i) => tune.vcpu(i).map(str::to_string),
        None => tune.emulatorpin.map(|e| e.cpuset),
    };
    match pinned.or_else(|| def.vcpu_cpuset.clone()) {
        Some(cs) => parse_cpuset(&cs).map_err(crate::driver::xml_error),
        None => Ok((0..host_cpus()).collect()),
    }
}

pub(crate) fn host_cpus() -> usize {
    vireo_driver::host::node_info().cpus.max(1) as usize
}

pub(crate) fn map_of(cpus: &BTreeSet<usize>, maplen: usize) -> Vec<u8> {
    let mut m = vec![0u8; maplen];
    for &c in cpus {
        if let Some(b) = m.get_mut(c / 8) {
            *b |= 1 << (c % 8);
        }
    }
    m
}

/// The CPUs of a client's map; each must be one of the host's.
pub(crate) fn cpus_of(map: &[u8]) -> Result<BTreeSet<usize>> {
    let set: BTreeSet<usize> = (0..map.len() * 8)
        .filter(|i| map[i / 8] & (1 << (i % 8)) != 0)
        .collect();
    let host = host_cpus();
    if set.is_empty() || set.iter().any(|&c| c >= host) {
        return Err(DriverError::InvalidArg(format!(
            "the CPU map must name host CPUs, from 0 to {}",
            host - 1
        )));
    }
    Ok(set)
}

/// Whether a GET call with `flags` (LIVE or CONFIG, not both) asks the running VM (else
/// the definition).
pub(crate) fn asks_live(flags: u32, active: bool) -> Result<bool> {
    if flags & !(affect::LIVE | affect::CONFIG) != 0 {
        return Err(DriverError::InvalidArg(format!(
            "unsupported flags (0x{flags:x})"
        )));
    }
    if flags & affect::LIVE != 0 && flags & affect::CONFIG != 0 {
        return Err(DriverError::InvalidArg(
            "flags 'live' and 'config' are mutually exclusive".into(),
        ));
    }
    if flags & affect::LIVE != 0 && !active {
        return Err(DriverError::OperationInvalid(
            "domain is not running".into(),
        ));
    }
    Ok(flags & affect::CONFIG == 0 && active)
}

fn sizes(n: i32, maplen: i32) -> Result<(usize, usize)> {
    let (Ok(n), Ok(maplen)) = (usize::try_from(n), usize::try_from(maplen)) else {
        return Err(DriverError::InvalidArg(
            "the counts must not be negative".into(),
        ));
    };
    if n.saturating_mul(maplen) > CPUMAPS_MAX {
        return Err(DriverError::InvalidArg(
            "the CPU maps asked for are too long".into(),
        ));
    }
    Ok((n, maplen))
}

impl QemuDriver {
    /// PIN_VCPU_FLAGS, PIN_EMULATOR, GET_VCPU_PIN_INFO and GET_EMULATOR_PIN_INFO: the
    /// running VM's part goes to its shim as the call came, the definition's is here.
    pub async fn pinning(
        &self,
        p: i32,
        payload: &[u8],
    ) -> std::result::Result<Vec<u8>, vireo_proto::RemoteError> {
        let dom = Domain_::decode(&mut vireo_xdr::Decoder::new(payload)).map_err(|e| {
            DriverError::InvalidArg(format!("Unable to decode message payload: {e}"))
        })?;
        let (active, persistent, def) = self.device_target(&dom)?;
        let flags = match p {
            procs::DOMAIN_PIN_VCPU_FLAGS => decode::<DomainPinVcpuFlagsArgs>(payload)?.flags,
            procs::DOMAIN_PIN_EMULATOR => decode::<DomainPinEmulatorArgs>(payload)?.flags,
            procs::DOMAIN_GET_VCPU_PIN_INFO => decode::<DomainGetVcpuPinInfoArgs>(payload)?.flags,
            _ => decode::<DomainGetEmulatorPinInfoArgs>(payload)?.flags,
        };
        let asks = matches!(
            p,
            procs::DOMAIN_GET_VCPU_PIN_INFO | procs::DOMAIN_GET_EMULATOR_PIN_INFO
        );
        if asks {
            if asks_live(flags, active)? {
                return self.forward(&dom, p, payload).await;
            }
            return Ok(self.defined_pins(p, payload, &def)?);
        }
        let (live, config) = targets(flags, active, persistent)?;
        if live {
            self.forward(&dom, p, payload).await?;
        }
        if config {
            let mut def = def;
            let tune = def.cputune.get_or_insert_with(Default::default);
            if p == procs::DOMAIN_PIN_VCPU_FLAGS {
                let a: DomainPinVcpuFlagsArgs = decode(payload)?;
                if a.vcpu >= def.vcpus {
                    return Err(DriverError::InvalidArg(format!(
                        "vCPU {} is not below the {} vCPUs",
                        a.vcpu, def.vcpus
                    ))
                    .into());
                }
                let cpuset = format_cpuset(&cpus_of(&a.cpumap.0)?);
                let tune = def.cputune.get_or_insert_with(Default::default);
                tune.vcpupins.retain(|v| v.vcpu != a.vcpu);
                tune.vcpupins.push(VcpuPin {
                    vcpu: a.vcpu,
                    cpuset,
                });
                tune.vcpupins.sort_by_key(|v| v.vcpu);
            } else {
                let a: DomainPinEmulatorArgs = decode(payload)?;
                tune.emulatorpin = Some(EmulatorPin {
                    cpuset: format_cpuset(&cpus_of(&a.cpumap.0)?),
                });
            }
            self.save_config(&dom, def)?;
        }
        Ok(Vec::new())
    }

    /// The definition's pins as the GET calls answer them.
    fn defined_pins(&self, p: i32, payload: &[u8], def: &Domain) -> Result<Vec<u8>> {
        if p == procs::DOMAIN_GET_VCPU_PIN_INFO {
            let a: DomainGetVcpuPinInfoArgs = decode(payload)?;
            let (n, maplen) = sizes(a.ncpumaps, a.maplen)?;
            let num = (def.vcpus as usize).min(n);
            let mut maps = Vec::with_capacity(num * maplen);
            for i in 0..num {
                maps.extend(map_of(&defined_cpus(def, Some(i as u32))?, maplen));
            }
            return Ok(vireo_xdr::to_bytes(&DomainGetVcpuPinInfoRet {
                cpumaps: vireo_xdr::Opaque(maps),
                num: num as i32,
            }));
        }
        let a: DomainGetEmulatorPinInfoArgs = decode(payload)?;
        let (_, maplen) = sizes(1, a.maplen)?;
        Ok(vireo_xdr::to_bytes(&DomainGetEmulatorPinInfoRet {
            cpumaps: vireo_xdr::Opaque(map_of(&defined_cpus(def, None)?, maplen)),
            ret: 1,
        }))
    }
}

type Domain_ = vireo_proto::remote::Domain;
