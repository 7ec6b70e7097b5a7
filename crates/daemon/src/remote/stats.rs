//! `virConnectGetAllDomainStats` / `virDomainListGetStats`: which domains and which groups,
//! checked here; the records come from the QEMU driver (`crates/qemu/src/stats.rs`).

use vireo_driver::DriverError;
use vireo_proto::remote::*;

use super::{args, ret, ProcResult, RemoteService};

pub(super) async fn all_domain_stats(s: &RemoteService, payload: &[u8]) -> ProcResult {
    let a: ConnectGetAllDomainStatsArgs = args(payload)?;
    let q = s.hv()?;
    let known =
        stats_flag::FILTERS | stats_flag::NOWAIT | stats_flag::BACKING | stats_flag::ENFORCE_STATS;
    if a.flags & !known != 0 {
        return Err(DriverError::InvalidArg(format!(
            "unsupported flags (0x{:x}) in function virConnectGetAllDomainStats",
            a.flags & !known
        ))
        .into());
    }
    let missing = a.stats & !stats_group::SUPPORTED;
    if missing != 0 && a.flags & stats_flag::ENFORCE_STATS != 0 {
        return Err(DriverError::ArgUnsupported(format!(
            "Stats types bits 0x{missing:x} are not supported by this daemon"
        ))
        .into());
    }
    let groups = if a.stats == 0 {
        stats_group::SUPPORTED
    } else {
        a.stats & stats_group::SUPPORTED
    };
    let doms = if a.doms.0.is_empty() {
        q.list_all(a.flags & stats_flag::FILTERS)
    } else {
        if a.flags & stats_flag::FILTERS != 0 {
            return Err(DriverError::InvalidArg(
                "filtering flags are not supported with a list of domains".into(),
            )
            .into());
        }
        let mut v = Vec::with_capacity(a.doms.0.len());
        for d in &a.doms.0 {
            v.push(q.lookup_by_uuid(&d.uuid)?);
        }
        v
    };
    let records = q.all_domain_stats(doms, groups, a.flags).await;
    ret(ConnectGetAllDomainStatsRet {
        ret_stats: vireo_xdr::Array(records),
    })
}
