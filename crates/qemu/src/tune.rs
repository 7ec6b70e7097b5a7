//! Resource tuning of a domain's cgroup: `memtune` (GET/SET_MEMORY_PARAMETERS),
//! `schedinfo` (GET_SCHEDULER_TYPE, GET/SET_SCHEDULER_PARAMETERS[_FLAGS]) and
//! `blkiotune` (GET/SET_BLKIO_PARAMETERS). The parameters are read here for both sides;
//! the running VM's part goes to its shim as the call came (the shim owns the VM's
//! cgroup), the definition's (`<memtune>`, `<cputune>`, `<blkiotune>`) is changed here.

use vireo_driver::{DriverError, Result};
use vireo_proto::remote::{
    affect, procs, Domain as Handle, DomainGetSchedulerParametersArgs,
    DomainGetSchedulerParametersFlagsArgs, DomainGetSchedulerParametersRet,
    DomainGetSchedulerTypeRet, DomainGetTuneParametersArgs, DomainGetTuneParametersRet,
    DomainSetSchedulerParametersArgs, DomainSetTuneParametersArgs,
};
use vireo_proto::typed::{TypedParam, TypedValue};
use vireo_proto::RemoteError;
use vireo_xml::{Blkiotune, Cputune, Domain, MemSize, Memtune};

use crate::driver::QemuDriver;

/// `VIR_TYPED_PARAM_STRING_OKAY`: a GET's caller takes string parameters.
const STRING_OKAY: u32 = 1 << 2;

/// libvirt's "no limit" for the memory tunables (KiB).
pub const MEMORY_UNLIMITED: u64 = 9_007_199_254_740_991;

/// The blkio parameters libvirt's QEMU driver reports, in its order.
const BLKIO_DEVICE_PARAMS: [&str; 5] = [
    "device_weight",
    "device_read_iops_sec",
    "device_write_iops_sec",
    "device_read_bytes_sec",
    "device_write_bytes_sec",
];

fn type_name(v: &TypedValue) -> &'static str {
    match v {
        TypedValue::Int(_) => "int",
        TypedValue::UInt(_) => "uint",
        TypedValue::LLong(_) => "llong",
        TypedValue::ULLong(_) => "ullong",
        TypedValue::Double(_) => "double",
        TypedValue::Boolean(_) => "boolean",
        TypedValue::String(_) => "string",
    }
}

fn wrong_type(p: &TypedParam, want: &str) -> DriverError {
    DriverError::InvalidArg(format!(
        "invalid type for parameter '{}', expected '{want}', got '{}'",
        p.field,
        type_name(&p.value)
    ))
}

fn unknown(p: &TypedParam) -> DriverError {
    DriverError::ArgUnsupported(format!("parameter '{}' not supported", p.field))
}

fn ullong(p: &TypedParam) -> Result<u64> {
    match p.value {
        TypedValue::ULLong(v) => Ok(v),
        _ => Err(wrong_type(p, "ullong")),
    }
}

fn llong(p: &TypedParam) -> Result<i64> {
    match p.value {
        TypedValue::LLong(v) => Ok(v),
        _ => Err(wrong_type(p, "llong")),
    }
}

/// memtune's parameters (KiB; [`MEMORY_UNLIMITED`] lifts a limit).
#[derive(Debug, Default, PartialEq)]
pub struct MemoryParams {
    pub hard: Option<u64>,
    pub soft: Option<u64>,
    pub swap: Option<u64>,
}

impl MemoryParams {
    pub fn of(params: &[TypedParam]) -> Result<MemoryParams> {
        let mut m = MemoryParams::default();
        for p in params {
            let slot = match p.field.as_str() {
                "hard_limit" => &mut m.hard,
                "soft_limit" => &mut m.soft,
                "swap_hard_limit" => &mut m.swap,
                "min_guarantee" => {
                    return Err(DriverError::ConfigUnsupported(
                        "Parameter 'min_guarantee' is not supported by QEMU".into(),
                    ))
                }
                _ => return Err(unknown(p)),
            };
            *slot = Some(ullong(p)?.min(MEMORY_UNLIMITED));
        }
        if let (Some(h), Some(s)) = (m.hard, m.swap) {
            if h > s {
                return Err(DriverError::InvalidArg(
                    "memory hard_limit tunable value must be lower than or equal to \
                     swap_hard_limit"
                        .into(),
                ));
            }
        }
        Ok(m)
    }

    /// As GET_MEMORY_PARAMETERS lists them.
    pub fn list(hard: u64, soft: u64, swap: u64) -> Vec<TypedParam> {
        vec![
            TypedParam::new("hard_limit", TypedValue::ULLong(hard)),
            TypedParam::new("soft_limit", TypedValue::ULLong(soft)),
            TypedParam::new("swap_hard_limit", TypedValue::ULLong(swap)),
        ]
    }

    fn apply_to(&self, m: &mut Memtune) -> Result<()> {
        let set = |slot: &mut Option<MemSize>, v: Option<u64>| {
            if let Some(v) = v {
                *slot = (v < MEMORY_UNLIMITED).then(|| MemSize::kib(v));
            }
        };
        set(&mut m.hard_limit, self.hard);
        set(&mut m.soft_limit, self.soft);
        set(&mut m.swap_hard_limit, self.swap);
        if let (Some(h), Some(s)) = (&m.hard_limit, &m.swap_hard_limit) {
            if h.value > s.value {
                return Err(DriverError::InvalidArg(
                    "memory hard_limit tunable value must be lower than or equal to \
                     swap_hard_limit"
                        .into(),
                ));
            }
        }
        Ok(())
    }
}

/// schedinfo's parameters: the CPU share, and period / quota pairs (µs) for the vCPUs,
/// the whole domain, QEMU's own threads and its I/O threads.
#[derive(Debug, Default, PartialEq)]
pub struct SchedParams {
    pub shares: Option<u64>,
    pub period: Option<u64>,
    pub quota: Option<i64>,
    pub global_period: Option<u64>,
    pub global_quota: Option<i64>,
    pub emulator_period: Option<u64>,
    pub emulator_quota: Option<i64>,
    pub iothread_period: Option<u64>,
    pub iothread_quota: Option<i64>,
}

impl SchedParams {
    pub fn of(params: &[TypedParam]) -> Result<SchedParams> {
        let mut s = SchedParams::default();
        for p in params {
            let name = p.field.as_str();
            match name {
                "cpu_shares" => s.shares = Some(ullong(p)?),
                "vcpu_period" => s.period = Some(ullong(p)?),
                "global_period" => s.global_period = Some(ullong(p)?),
                "emulator_period" => s.emulator_period = Some(ullong(p)?),
                "iothread_period" => s.iothread_period = Some(ullong(p)?),
                "vcpu_quota" => s.quota = Some(llong(p)?),
                "global_quota" => s.global_quota = Some(llong(p)?),
                "emulator_quota" => s.emulator_quota = Some(llong(p)?),
                "iothread_quota" => s.iothread_quota = Some(llong(p)?),
                _ => return Err(unknown(p)),
            }
            let v = match p.value {
                TypedValue::ULLong(v) => i64::try_from(v).unwrap_or(i64::MAX),
                TypedValue::LLong(v) => v,
                _ => 0,
            };
            vireo_xml::check_cpu_tune(name, Some(v))
                .map_err(|e| DriverError::InvalidArg(e.detail()))?;
        }
        Ok(s)
    }

    /// Only the whole domain's share and bandwidth act where the VM's threads have no
    /// cgroups of their own (cgroup v2).
    pub fn only_global(&self) -> Result<()> {
        let per_thread = [
            ("vcpu_period", self.period.is_some()),
            ("vcpu_quota", self.quota.is_some()),
            ("emulator_period", self.emulator_period.is_some()),
            ("emulator_quota", self.emulator_quota.is_some()),
            ("iothread_period", self.iothread_period.is_some()),
            ("iothread_quota", self.iothread_quota.is_some()),
        ];
        match per_thread.iter().find(|(_, set)| *set) {
            Some((name, _)) => Err(DriverError::ConfigUnsupported(format!(
                "'{name}' needs cgroup v1's cpu controller for the VM's threads, which this \
                 host does not give Vireo (cpu_shares, global_period and global_quota act)"
            ))),
            None => Ok(()),
        }
    }

    /// As GET_SCHEDULER_PARAMETERS lists them, in libvirt's order: the share, then
    /// (period, quota) of the vCPUs, QEMU's own threads, the whole domain and the I/O
    /// threads.
    pub fn list(
        shares: u64,
        vcpu: (u64, i64),
        emulator: (u64, i64),
        global: (u64, i64),
        iothread: (u64, i64),
    ) -> Vec<TypedParam> {
        let mut v = vec![TypedParam::new("cpu_shares", TypedValue::ULLong(shares))];
        for (name, (p, q)) in [
            ("vcpu", vcpu),
            ("emulator", emulator),
            ("global", global),
            ("iothread", iothread),
        ] {
            v.push(TypedParam::new(
                format!("{name}_period"),
                TypedValue::ULLong(p),
            ));
            v.push(TypedParam::new(
                format!("{name}_quota"),
                TypedValue::LLong(q),
            ));
        }
        v
    }

    /// The TUNABLE event's parameters for these values (libvirt's `cputune.*` names).
    pub fn tunable(&self) -> Vec<TypedParam> {
        let mut out = Vec::new();
        let mut ull = |name: &str, v: Option<u64>| {
            if let Some(v) = v {
                out.push(TypedParam::new(
                    format!("cputune.{name}"),
                    TypedValue::ULLong(v),
                ));
            }
        };
        ull("cpu_shares", self.shares);
        ull("global_period", self.global_period);
        ull("vcpu_period", self.period);
        ull("emulator_period", self.emulator_period);
        ull("iothread_period", self.iothread_period);
        for (name, v) in [
            ("global_quota", self.global_quota),
            ("vcpu_quota", self.quota),
            ("emulator_quota", self.emulator_quota),
            ("iothread_quota", self.iothread_quota),
        ] {
            if let Some(v) = v {
                out.push(TypedParam::new(
                    format!("cputune.{name}"),
                    TypedValue::LLong(v),
                ));
            }
        }
        out
    }

    /// 0 leaves a value unset, as libvirt's definition does.
    pub fn apply_to(&self, c: &mut Cputune) {
        fn set<T: PartialEq + Default + Copy>(slot: &mut Option<T>, v: Option<T>) {
            if let Some(v) = v {
                *slot = (v != T::default()).then_some(v);
            }
        }
        set(&mut c.shares, self.shares);
        set(&mut c.period, self.period);
        set(&mut c.quota, self.quota);
        set(&mut c.global_period, self.global_period);
        set(&mut c.global_quota, self.global_quota);
        set(&mut c.emulator_period, self.emulator_period);
        set(&mut c.emulator_quota, self.emulator_quota);
        set(&mut c.iothread_period, self.iothread_period);
        set(&mut c.iothread_quota, self.iothread_quota);
    }
}

/// One per-device blkio value: which of [`BLKIO_DEVICE_PARAMS`] (by index), the device's
/// path and the value (0 takes the setting away).
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceValue {
    pub kind: usize,
    pub path: String,
    pub value: u64,
}

/// blkiotune's parameters: the weight, and per-device weights and limits.
#[derive(Debug, Default, PartialEq)]
pub struct BlkioParams {
    pub weight: Option<u32>,
    pub devices: Vec<DeviceValue>,
}

/// libvirt's spelling of per-device values: `path,value[,path,value…]`.
fn device_values(kind: usize, s: &str) -> Result<Vec<DeviceValue>> {
    let name = BLKIO_DEVICE_PARAMS[kind];
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<&str> = s.split(',').collect();
    if !parts.len().is_multiple_of(2) {
        return Err(DriverError::InvalidArg(format!(
            "unable to parse blkio device '{s}' of '{name}': a path and a value each"
        )));
    }
    parts
        .chunks(2)
        .map(|pair| {
            let (path, v) = (pair[0], pair[1]);
            if !path.starts_with('/') {
                return Err(DriverError::InvalidArg(format!(
                    "blkio device path '{path}' of '{name}' is not absolute"
                )));
            }
            let value: u64 = v.parse().map_err(|_| {
                DriverError::InvalidArg(format!("invalid value '{v}' for device '{path}'"))
            })?;
            if kind == 0 && value != 0 {
                vireo_xml::check_weight(Some(u32::try_from(value).unwrap_or(u32::MAX)))
                    .map_err(|e| DriverError::InvalidArg(e.detail()))?;
            }
            Ok(DeviceValue {
                kind,
                path: path.to_string(),
                value,
            })
        })
        .collect()
}

/// The value of kind `kind` a `<device>` has (0: none).
pub fn device_value(d: &vireo_xml::BlkioDevice, kind: usize) -> u64 {
    match kind {
        0 => d.weight.map(u64::from),
        1 => d.read_iops_sec,
        2 => d.write_iops_sec,
        3 => d.read_bytes_sec,
        _ => d.write_bytes_sec,
    }
    .unwrap_or(0)
}

impl BlkioParams {
    pub fn of(params: &[TypedParam]) -> Result<BlkioParams> {
        let mut b = BlkioParams::default();
        for p in params {
            match p.field.as_str() {
                "weight" => match p.value {
                    TypedValue::UInt(w) => {
                        vireo_xml::check_weight(Some(w))
                            .map_err(|e| DriverError::InvalidArg(e.detail()))?;
                        b.weight = Some(w);
                    }
                    _ => return Err(wrong_type(p, "uint")),
                },
                f => match BLKIO_DEVICE_PARAMS.iter().position(|n| *n == f) {
                    Some(kind) => match &p.value {
                        TypedValue::String(v) => b.devices.extend(device_values(kind, v)?),
                        _ => return Err(wrong_type(p, "string")),
                    },
                    None => return Err(unknown(p)),
                },
            }
        }
        Ok(b)
    }

    /// The values merged into `t`'s devices (a value 0 takes one away; a device left
    /// with none goes).
    pub fn apply_to(&self, t: &mut Blkiotune) {
        if let Some(w) = self.weight {
            t.weight = Some(w);
        }
        for v in &self.devices {
            let i = match t.devices.iter().position(|d| d.path == v.path) {
                Some(i) => i,
                None => {
                    t.devices.push(vireo_xml::BlkioDevice {
                        path: v.path.clone(),
                        weight: None,
                        read_iops_sec: None,
                        write_iops_sec: None,
                        read_bytes_sec: None,
                        write_bytes_sec: None,
                    });
                    t.devices.len() - 1
                }
            };
            let d = &mut t.devices[i];
            let set = (v.value != 0).then_some(v.value);
            match v.kind {
                0 => d.weight = set.and_then(|w| u32::try_from(w).ok()),
                1 => d.read_iops_sec = set,
                2 => d.write_iops_sec = set,
                3 => d.read_bytes_sec = set,
                _ => d.write_bytes_sec = set,
            }
        }
        t.devices
            .retain(|d| (0..BLKIO_DEVICE_PARAMS.len()).any(|k| device_value(d, k) != 0));
    }

    /// As GET_BLKIO_PARAMETERS lists them: the weight, then each per-device value as
    /// `path,value,…` over the devices that have it.
    pub fn list(weight: u32, devices: &[vireo_xml::BlkioDevice]) -> Vec<TypedParam> {
        let mut v = vec![TypedParam::uint("weight", weight)];
        for (kind, name) in BLKIO_DEVICE_PARAMS.iter().enumerate() {
            let s: Vec<String> = devices
                .iter()
                .filter(|d| device_value(d, kind) != 0)
                .map(|d| format!("{},{}", d.path, device_value(d, kind)))
                .collect();
            v.push(TypedParam::string(name, s.join(",")));
        }
        v
    }
}

/// What the definition asks of the cgroup that Vireo does not do yet (refused at start).
pub fn unsupported_in(def: &Domain) -> Option<String> {
    if def
        .memtune
        .as_ref()
        .is_some_and(|m| m.min_guarantee.is_some())
    {
        return Some("<memtune><min_guarantee> is not supported by QEMU".into());
    }
    None
}

/// Answers a GET with `nparams` 0 with the count, else with the parameters (at most
/// `nparams` of them).
pub fn counted(mut list: Vec<TypedParam>, nparams: i32) -> Result<DomainGetTuneParametersRet> {
    let n = usize::try_from(nparams)
        .map_err(|_| DriverError::InvalidArg("nparams must not be negative".into()))?;
    let total = list.len() as i32;
    if n == 0 {
        return Ok(DomainGetTuneParametersRet {
            params: vireo_xdr::Array(Vec::new()),
            nparams: total,
        });
    }
    list.truncate(n);
    let got = list.len() as i32;
    Ok(DomainGetTuneParametersRet {
        params: vireo_xdr::Array(list),
        nparams: got,
    })
}

fn decode<T: vireo_xdr::Xdr>(payload: &[u8]) -> Result<T> {
    vireo_xdr::from_bytes(payload)
        .map_err(|e| DriverError::InvalidArg(format!("Unable to decode message payload: {e}")))
}

/// The definition's values, as the GET calls list them.
fn defined(p: i32, def: &Domain) -> Vec<TypedParam> {
    match p {
        procs::DOMAIN_GET_MEMORY_PARAMETERS => {
            let m = def.memtune.clone().unwrap_or_default();
            let v = |s: &Option<MemSize>| s.as_ref().map_or(MEMORY_UNLIMITED, |s| s.value);
            MemoryParams::list(v(&m.hard_limit), v(&m.soft_limit), v(&m.swap_hard_limit))
        }
        procs::DOMAIN_GET_BLKIO_PARAMETERS => {
            let b = def.blkiotune.clone().unwrap_or_default();
            BlkioParams::list(b.weight.unwrap_or(0), &b.devices)
        }
        _ => {
            let c = def.cputune.clone().unwrap_or_default();
            let pair = |p: Option<u64>, q: Option<i64>| (p.unwrap_or(0), q.unwrap_or(0));
            SchedParams::list(
                c.shares.unwrap_or(0),
                pair(c.period, c.quota),
                pair(c.emulator_period, c.emulator_quota),
                pair(c.global_period, c.global_quota),
                pair(c.iothread_period, c.iothread_quota),
            )
        }
    }
}

impl QemuDriver {
    /// The tuning calls: GETs of the running VM go to its shim, of the definition are
    /// answered here; SETs change the definition here (checked first) and the running VM
    /// through its shim.
    pub async fn tuning(
        &self,
        p: i32,
        payload: &[u8],
    ) -> std::result::Result<Vec<u8>, RemoteError> {
        let dom: Handle = decode(payload)?;
        let (active, persistent, def) = self.device_target(&dom)?;
        match p {
            procs::DOMAIN_GET_SCHEDULER_TYPE => {
                Ok(vireo_xdr::to_bytes(&DomainGetSchedulerTypeRet {
                    kind: "posix".into(),
                    nparams: SchedParams::list(0, (0, 0), (0, 0), (0, 0), (0, 0)).len() as i32,
                }))
            }
            procs::DOMAIN_GET_SCHEDULER_PARAMETERS
            | procs::DOMAIN_GET_SCHEDULER_PARAMETERS_FLAGS => {
                let flags = if p == procs::DOMAIN_GET_SCHEDULER_PARAMETERS {
                    decode::<DomainGetSchedulerParametersArgs>(payload)?;
                    0
                } else {
                    decode::<DomainGetSchedulerParametersFlagsArgs>(payload)?.flags
                };
                if crate::pinning::asks_live(flags & !STRING_OKAY, active)? {
                    return self.forward(&dom, p, payload).await;
                }
                Ok(vireo_xdr::to_bytes(&DomainGetSchedulerParametersRet {
                    params: vireo_xdr::Array(defined(p, &def)),
                }))
            }
            procs::DOMAIN_GET_MEMORY_PARAMETERS | procs::DOMAIN_GET_BLKIO_PARAMETERS => {
                let a: DomainGetTuneParametersArgs = decode(payload)?;
                if crate::pinning::asks_live(a.flags & !STRING_OKAY, active)? {
                    return self.forward(&dom, p, payload).await;
                }
                Ok(vireo_xdr::to_bytes(&counted(defined(p, &def), a.nparams)?))
            }
            _ => {
                let (params, flags) = if p == procs::DOMAIN_SET_SCHEDULER_PARAMETERS {
                    let a: DomainSetSchedulerParametersArgs = decode(payload)?;
                    (a.params.0, affect::CURRENT)
                } else {
                    let a: DomainSetTuneParametersArgs = decode(payload)?;
                    (a.params.0, a.flags)
                };
                let (live, config) = crate::hotplug::targets(flags, active, persistent)?;
                let mut def = def;
                match p {
                    procs::DOMAIN_SET_MEMORY_PARAMETERS => {
                        let m = MemoryParams::of(&params)?;
                        let mut t = def.memtune.take().unwrap_or_default();
                        m.apply_to(&mut t)?;
                        def.memtune = (!t.is_empty()).then_some(t);
                    }
                    procs::DOMAIN_SET_BLKIO_PARAMETERS => {
                        let b = BlkioParams::of(&params)?;
                        let mut t = def.blkiotune.take().unwrap_or_default();
                        b.apply_to(&mut t);
                        def.blkiotune = (!t.is_empty()).then_some(t);
                    }
                    _ => {
                        let s = SchedParams::of(&params)?;
                        let mut c = def.cputune.take().unwrap_or_default();
                        s.apply_to(&mut c);
                        def.cputune = (!c.is_empty()).then_some(c);
                    }
                }
                if live {
                    self.forward(&dom, p, payload).await?;
                }
                if config {
                    self.save_config(&dom, def)?;
                }
                Ok(Vec::new())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked_by_name_type_and_range() {
        let m = MemoryParams::of(&[
            TypedParam::new("hard_limit", TypedValue::ULLong(1024)),
            TypedParam::new("swap_hard_limit", TypedValue::ULLong(2048)),
        ])
        .unwrap();
        assert_eq!((m.hard, m.swap), (Some(1024), Some(2048)));
        assert!(MemoryParams::of(&[
            TypedParam::new("hard_limit", TypedValue::ULLong(4096)),
            TypedParam::new("swap_hard_limit", TypedValue::ULLong(2048)),
        ])
        .is_err());
        assert!(MemoryParams::of(&[TypedParam::uint("hard_limit", 1)]).is_err());
        assert!(MemoryParams::of(&[TypedParam::new("bogus", TypedValue::ULLong(1))]).is_err());

        let s = SchedParams::of(&[
            TypedParam::new("cpu_shares", TypedValue::ULLong(512)),
            TypedParam::new("global_quota", TypedValue::LLong(-1)),
        ])
        .unwrap();
        assert_eq!((s.shares, s.global_quota), (Some(512), Some(-1)));
        assert!(s.only_global().is_ok());
        assert!(SchedParams::of(&[TypedParam::new("cpu_shares", TypedValue::ULLong(1))]).is_err());
        assert!(
            SchedParams::of(&[TypedParam::new("vcpu_period", TypedValue::ULLong(10))]).is_err()
        );
        let v = SchedParams::of(&[TypedParam::new("vcpu_quota", TypedValue::LLong(5000))]).unwrap();
        assert!(v.only_global().is_err());

        assert_eq!(
            BlkioParams::of(&[TypedParam::uint("weight", 500)])
                .unwrap()
                .weight,
            Some(500)
        );
        assert!(BlkioParams::of(&[TypedParam::uint("weight", 50)]).is_err());
        let b = BlkioParams::of(&[
            TypedParam::string("device_weight", "/dev/sda,200"),
            TypedParam::string("device_read_iops_sec", "/dev/sda,100,/dev/sdb,5"),
        ])
        .unwrap();
        let mut t = Blkiotune::default();
        b.apply_to(&mut t);
        assert_eq!(t.devices.len(), 2);
        let l = BlkioParams::list(0, &t.devices);
        assert_eq!(l[1].value, TypedValue::String("/dev/sda,200".into()));
        assert_eq!(
            l[2].value,
            TypedValue::String("/dev/sda,100,/dev/sdb,5".into())
        );
        // 0 takes a value away; a device left with none goes.
        BlkioParams::of(&[TypedParam::string("device_read_iops_sec", "/dev/sdb,0")])
            .unwrap()
            .apply_to(&mut t);
        assert_eq!(t.devices.len(), 1);
        assert!(BlkioParams::of(&[TypedParam::string("device_weight", "/dev/sda,5000")]).is_err());
        assert!(BlkioParams::of(&[TypedParam::string("device_weight", "sda,100")]).is_err());
        assert!(BlkioParams::of(&[TypedParam::string("device_weight", "/dev/sda")]).is_err());
        assert!(BlkioParams::of(&[TypedParam::string("device_weight", "")]).is_ok());
    }

    #[test]
    fn a_count_first_then_the_values() {
        let list = MemoryParams::list(1, 2, 3);
        let r = counted(list.clone(), 0).unwrap();
        assert_eq!((r.params.0.len(), r.nparams), (0, 3));
        let r = counted(list, 2).unwrap();
        assert_eq!((r.params.0.len(), r.nparams), (2, 2));
    }
}
