//! Statistics of many domains at once (`virConnectGetAllDomainStats`): every running VM's
//! shim is asked at the same time (each gathers its own, see the shim's `stats.rs`); an
//! inactive domain's few come from its definition.

use vireo_driver::{DriverError, Result};
use vireo_proto::remote::{
    procs, stats_group, ConnectGetAllDomainStatsArgs, ConnectGetAllDomainStatsRet,
    DomainSetMemoryStatsPeriodArgs, DomainStatsRecord,
};
use vireo_proto::typed::{TypedParam, TypedValue};
use vireo_xdr::Array;

use vireo_proto::remote::Domain as Handle;

use crate::driver::QemuDriver;

impl QemuDriver {
    /// One record per domain of `doms`, in that order, with the groups in `groups`;
    /// `flags` may ask for the images of backing chains (`stats_flag::BACKING`).
    pub async fn all_domain_stats(
        &self,
        doms: Vec<Handle>,
        groups: u32,
        flags: u32,
    ) -> Vec<DomainStatsRecord> {
        let mut asked = tokio::task::JoinSet::new();
        for (i, h) in doms.iter().enumerate() {
            let Ok(Some(conn)) = self.with(h, |o| o.shim.clone()) else {
                continue;
            };
            let args = ConnectGetAllDomainStatsArgs {
                doms: Array(vec![h.clone()]),
                stats: groups,
                flags: flags & vireo_proto::remote::stats_flag::BACKING,
            };
            asked.spawn(async move {
                let r: std::result::Result<ConnectGetAllDomainStatsRet, _> =
                    conn.call(procs::CONNECT_GET_ALL_DOMAIN_STATS, &args).await;
                (i, r.ok().and_then(|r| r.ret_stats.0.into_iter().next()))
            });
        }
        let mut live: Vec<Option<DomainStatsRecord>> = (0..doms.len()).map(|_| None).collect();
        while let Some(r) = asked.join_next().await {
            if let Ok((i, rec)) = r {
                live[i] = rec;
            }
        }
        doms.into_iter()
            .zip(live)
            .filter_map(|(h, rec)| rec.or_else(|| self.stored_stats(&h, groups)))
            .collect()
    }

    /// `virDomainSetMemoryStatsPeriod`: how often the guest's balloon driver reports its
    /// memory statistics (0 stops it), in the running VM and/or the definition.
    pub async fn set_memory_stats_period(&self, h: &Handle, period: i32, flags: u32) -> Result<()> {
        let (active, persistent, def) = self.device_target(h)?;
        let (live, config) = crate::hotplug::targets(flags, active, persistent)?;
        if period < 0 {
            return Err(DriverError::InvalidArg(format!(
                "invalid period {period}: it must not be negative"
            )));
        }
        let has_balloon = |d: &vireo_xml::Domain| {
            d.devices
                .memballoon
                .as_ref()
                .is_some_and(|m| m.model == vireo_xml::MemballoonModel::Virtio)
        };
        if config && !has_balloon(&def) {
            return Err(DriverError::OperationInvalid(
                "No memory balloon device configured, can not set the collection period".into(),
            ));
        }
        if live {
            let conn = self.shim_conn(h)?;
            let args = DomainSetMemoryStatsPeriodArgs {
                dom: h.clone(),
                period,
                flags: 0,
            };
            let _: () = conn
                .call(procs::DOMAIN_SET_MEMORY_STATS_PERIOD, &args)
                .await
                .map_err(crate::hotplug::shim_error)?;
        }
        if config {
            let mut def = def;
            if let Some(m) = def.devices.memballoon.as_mut() {
                m.stats_period = u32::try_from(period).ok().filter(|p| *p > 0);
            }
            self.save_config(h, def)?;
        }
        Ok(())
    }

    /// What a domain that runs no VM (or whose shim did not answer) reports: its state,
    /// and the sizes and devices of its definition. None when it no longer exists.
    fn stored_stats(&self, h: &Handle, groups: u32) -> Option<DomainStatsRecord> {
        self.with(h, |o| {
            let def = &o.def;
            let mut p = Vec::new();
            if groups & stats_group::STATE != 0 {
                p.push(TypedParam::int("state.state", o.state.0));
                p.push(TypedParam::int("state.reason", o.state.1));
            }
            if groups & stats_group::BALLOON != 0 {
                p.push(TypedParam::new(
                    "balloon.current",
                    TypedValue::ULLong(def.current_memory_kib),
                ));
                p.push(TypedParam::new(
                    "balloon.maximum",
                    TypedValue::ULLong(def.max_memory_kib()),
                ));
            }
            if groups & stats_group::VCPU != 0 {
                p.push(TypedParam::uint("vcpu.current", def.current_vcpus()));
                p.push(TypedParam::uint("vcpu.maximum", def.vcpus));
            }
            if groups & stats_group::BLOCK != 0 {
                let disks = &def.devices.disks;
                p.push(TypedParam::uint("block.count", disks.len() as u32));
                for (i, d) in disks.iter().enumerate() {
                    p.push(TypedParam::string(
                        &format!("block.{i}.name"),
                        &d.target.dev,
                    ));
                    if let Some(path) = d
                        .source
                        .as_ref()
                        .and_then(|s| s.file.as_ref().or(s.dev.as_ref()))
                    {
                        p.push(TypedParam::string(&format!("block.{i}.path"), path));
                    }
                }
            }
            DomainStatsRecord {
                dom: o.handle(),
                params: Array(p),
            }
        })
        .ok()
    }
}
