//! `virsh iothreadinfo / iothreadpin / iothreadadd / iothreaddel / iothreadset`: the
//! running VM's I/O threads are its shim's (`crates/shim/src/iothread.rs`); the
//! definition's (`<iothreads>`, `<iothreadids>`, `<cputune><iothreadpin>`) are answered
//! and changed here.

use vireo_driver::{DriverError, Result};
use vireo_proto::remote::*;
use vireo_proto::typed::{TypedParam, TypedValue};
use vireo_xdr::Xdr;
use vireo_xml::{format_cpuset, parse_cpuset, Domain, IoThread, IoThreadPin};

use crate::driver::QemuDriver;
use crate::hotplug::targets;
use crate::pinning::{cpus_of, host_cpus, map_of};

fn decode<T: Xdr>(payload: &[u8]) -> Result<T> {
    vireo_xdr::from_bytes(payload)
        .map_err(|e| DriverError::InvalidArg(format!("Unable to decode message payload: {e}")))
}

/// What SET_IOTHREAD_PARAMS asks, each parameter checked for its name and type.
#[derive(Debug, Default, PartialEq)]
pub struct Params {
    pub poll_max_ns: Option<u64>,
    pub poll_grow: Option<u64>,
    pub poll_shrink: Option<u64>,
    /// -1: back to QEMU's default (definitions only).
    pub pool_min: Option<i32>,
    pub pool_max: Option<i32>,
}

impl Params {
    /// Reads the typed parameters; the error is libvirt's "invalid argument" message.
    pub fn of(params: &[TypedParam]) -> std::result::Result<Params, String> {
        let mut p = Params::default();
        for tp in params {
            match (tp.field.as_str(), &tp.value) {
                ("poll_max_ns", TypedValue::ULLong(v)) if *v <= i64::MAX as u64 => {
                    p.poll_max_ns = Some(*v)
                }
                ("poll_grow", TypedValue::UInt(v)) => p.poll_grow = Some((*v).into()),
                ("poll_grow", TypedValue::ULLong(v)) => p.poll_grow = Some(*v),
                ("poll_shrink", TypedValue::UInt(v)) => p.poll_shrink = Some((*v).into()),
                ("poll_shrink", TypedValue::ULLong(v)) => p.poll_shrink = Some(*v),
                ("thread_pool_min", TypedValue::Int(v)) if *v >= -1 => p.pool_min = Some(*v),
                ("thread_pool_max", TypedValue::Int(v)) if *v >= -1 => p.pool_max = Some(*v),
                (
                    f @ ("poll_max_ns" | "poll_grow" | "poll_shrink" | "thread_pool_min"
                    | "thread_pool_max"),
                    _,
                ) => return Err(format!("invalid type or value for parameter '{f}'")),
                (f, _) => return Err(format!("parameter '{f}' not supported")),
            }
        }
        Ok(p)
    }

    pub fn polls(&self) -> bool {
        self.poll_max_ns.is_some() || self.poll_grow.is_some() || self.poll_shrink.is_some()
    }
}

/// The host CPUs a definition lets I/O thread `id` run on.
fn defined_cpus(def: &Domain, id: u32) -> Result<std::collections::BTreeSet<usize>> {
    let pin = def.cputune.as_ref().and_then(|t| t.iothread(id));
    match pin.or(def.vcpu_cpuset.as_deref()) {
        Some(cs) => parse_cpuset(cs).map_err(crate::driver::xml_error),
        None => Ok((0..host_cpus()).collect()),
    }
}

/// Whether a disk or controller of `def` runs in I/O thread `id`.
fn in_use(def: &Domain, id: u32) -> bool {
    def.devices
        .disks
        .iter()
        .any(|d| d.driver.as_ref().and_then(|r| r.iothread) == Some(id))
        || def.devices.controllers.iter().any(|c| {
            c.driver_attrs
                .iter()
                .any(|(k, v)| k == "iothread" && v.parse() == Ok(id))
        })
}

/// The flags of each call.
fn flags_of(p: i32, payload: &[u8]) -> Result<u32> {
    Ok(match p {
        procs::DOMAIN_GET_IOTHREAD_INFO => decode::<DomainGetIothreadInfoArgs>(payload)?.flags,
        procs::DOMAIN_PIN_IOTHREAD => decode::<DomainPinIothreadArgs>(payload)?.flags,
        procs::DOMAIN_ADD_IOTHREAD | procs::DOMAIN_DEL_IOTHREAD => {
            decode::<DomainIothreadIdArgs>(payload)?.flags
        }
        _ => decode::<DomainSetIothreadParamsArgs>(payload)?.flags,
    })
}

impl QemuDriver {
    /// GET_IOTHREAD_INFO, PIN_IOTHREAD, ADD_IOTHREAD, DEL_IOTHREAD and
    /// SET_IOTHREAD_PARAMS: the running VM's part goes to its shim as the call came, the
    /// definition's is changed here (checked before the live part runs).
    pub async fn iothreads(
        &self,
        p: i32,
        payload: &[u8],
    ) -> std::result::Result<Vec<u8>, vireo_proto::RemoteError> {
        let dom = vireo_proto::remote::Domain::decode(&mut vireo_xdr::Decoder::new(payload))
            .map_err(|e| {
                DriverError::InvalidArg(format!("Unable to decode message payload: {e}"))
            })?;
        let (active, persistent, def) = self.device_target(&dom)?;
        let flags = flags_of(p, payload)?;
        if p == procs::DOMAIN_GET_IOTHREAD_INFO {
            if crate::pinning::asks_live(flags, active)? {
                return self.forward(&dom, p, payload).await;
            }
            return Ok(defined_info(&def)?);
        }
        let (live, config) = targets(flags, active, persistent)?;
        let changed = if config {
            Some(change_definition(p, payload, def)?)
        } else {
            None
        };
        if live {
            self.forward(&dom, p, payload).await?;
        }
        if let Some(def) = changed {
            self.save_config(&dom, def)?;
        }
        Ok(Vec::new())
    }
}

/// GET_IOTHREAD_INFO of a definition.
fn defined_info(def: &Domain) -> Result<Vec<u8>> {
    let maplen = host_cpus().div_ceil(8);
    let mut ids: Vec<u32> = def.iothreads.ids().into_iter().collect();
    ids.sort();
    let mut info = Vec::with_capacity(ids.len());
    for id in ids {
        info.push(DomainIothreadInfo {
            iothread_id: id,
            cpumap: vireo_xdr::Opaque(map_of(&defined_cpus(def, id)?, maplen)),
        });
    }
    let n = info.len() as u32;
    Ok(vireo_xdr::to_bytes(&DomainGetIothreadInfoRet {
        info: vireo_xdr::Array(info),
        ret: n,
    }))
}

/// The definition a PIN / ADD / DEL / SET call leaves (refused when it cannot be).
fn change_definition(p: i32, payload: &[u8], mut def: Domain) -> Result<Domain> {
    let missing =
        |id: u32| DriverError::InvalidArg(format!("cannot find IOThread '{id}' in iothreadids"));
    match p {
        procs::DOMAIN_PIN_IOTHREAD => {
            let a: DomainPinIothreadArgs = decode(payload)?;
            if def.iothreads.get(a.iothreads_id).is_none() {
                return Err(missing(a.iothreads_id));
            }
            let cpuset = format_cpuset(&cpus_of(&a.cpumap.0)?);
            let tune = def.cputune.get_or_insert_with(Default::default);
            tune.iothreadpins.retain(|q| q.iothread != a.iothreads_id);
            tune.iothreadpins.push(IoThreadPin {
                iothread: a.iothreads_id,
                cpuset,
            });
            tune.iothreadpins.sort_by_key(|q| q.iothread);
        }
        procs::DOMAIN_ADD_IOTHREAD => {
            let a: DomainIothreadIdArgs = decode(payload)?;
            if a.iothread_id == 0 {
                return Err(DriverError::InvalidArg("IOThread id must not be 0".into()));
            }
            if !def.iothreads.add(IoThread::new(a.iothread_id)) {
                return Err(DriverError::InvalidArg(format!(
                    "an IOThread is already using iothread_id '{}'",
                    a.iothread_id
                )));
            }
        }
        procs::DOMAIN_DEL_IOTHREAD => {
            let a: DomainIothreadIdArgs = decode(payload)?;
            if def.iothreads.get(a.iothread_id).is_none() {
                return Err(missing(a.iothread_id));
            }
            if in_use(&def, a.iothread_id) {
                return Err(DriverError::InvalidArg(format!(
                    "cannot remove IOThread {} since it is being used by disk or controller",
                    a.iothread_id
                )));
            }
            def.iothreads.remove(a.iothread_id);
            if let Some(t) = def.cputune.as_mut() {
                t.iothreadpins.retain(|q| q.iothread != a.iothread_id);
            }
        }
        _ => {
            let a: DomainSetIothreadParamsArgs = decode(payload)?;
            let params = Params::of(&a.params.0).map_err(DriverError::InvalidArg)?;
            if params.polls() {
                return Err(DriverError::ConfigUnsupported(
                    "polling settings apply to the running domain only; they are not kept in \
                     the definition"
                        .into(),
                ));
            }
            let Some(t) = def
                .iothreads
                .threads
                .iter_mut()
                .find(|t| t.id == a.iothread_id)
            else {
                return Err(missing(a.iothread_id));
            };
            let set = |v: Option<i32>, cur: Option<i32>| match v {
                Some(-1) => None,
                Some(n) => Some(n),
                None => cur,
            };
            let (min, max) = (
                set(params.pool_min, t.thread_pool_min),
                set(params.pool_max, t.thread_pool_max),
            );
            vireo_xml::check_pool(min, max).map_err(|e| DriverError::InvalidArg(e.detail()))?;
            (t.thread_pool_min, t.thread_pool_max) = (min, max);
            def.iothreads.ids_shown = true;
        }
    }
    Ok(def)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_checked_by_name_type_and_value() {
        let p = Params::of(&[
            TypedParam::new("poll_max_ns", TypedValue::ULLong(1000)),
            TypedParam::uint("poll_grow", 2),
            TypedParam::int("thread_pool_max", 8),
        ])
        .unwrap();
        assert_eq!(p.poll_max_ns, Some(1000));
        assert_eq!(p.poll_grow, Some(2));
        assert_eq!(p.pool_max, Some(8));
        assert!(p.polls());
        assert!(Params::of(&[TypedParam::uint("poll_max_ns", 1)]).is_err());
        assert!(Params::of(&[TypedParam::int("thread_pool_min", -2)]).is_err());
        assert!(Params::of(&[TypedParam::int("bogus", 1)]).is_err());
    }
}
