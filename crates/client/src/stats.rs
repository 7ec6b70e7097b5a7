//! Statistics calls: many domains at once, and one domain's memory, disks and interfaces.

use vireo_proto::remote::*;
use vireo_proto::typed::TypedParam;
use vireo_xdr::Array;

use crate::{Connect, Result};

impl Connect {
    /// `virConnectGetAllDomainStats` (empty `doms`) or `virDomainListGetStats`.
    pub async fn all_domain_stats(
        &self,
        doms: &[Domain],
        stats: u32,
        flags: u32,
    ) -> Result<Vec<(Domain, Vec<TypedParam>)>> {
        let r: ConnectGetAllDomainStatsRet = self
            .call(
                procs::CONNECT_GET_ALL_DOMAIN_STATS,
                &ConnectGetAllDomainStatsArgs {
                    doms: Array(doms.to_vec()),
                    stats,
                    flags,
                },
            )
            .await?;
        Ok(r.ret_stats
            .0
            .into_iter()
            .map(|rec| (rec.dom, rec.params.0))
            .collect())
    }

    /// `virDomainMemoryStats`: (tag, value) pairs.
    pub async fn memory_stats(&self, dom: &Domain) -> Result<Vec<(i32, u64)>> {
        let r: DomainMemoryStatsRet = self
            .call(
                procs::DOMAIN_MEMORY_STATS,
                &DomainMemoryStatsArgs {
                    dom: dom.clone(),
                    max_stats: DOMAIN_MEMORY_STATS_MAX as u32,
                    flags: 0,
                },
            )
            .await?;
        Ok(r.stats.0.into_iter().map(|s| (s.tag, s.val)).collect())
    }

    /// `virDomainBlockStatsFlags`: every field the daemon has for the disk.
    pub async fn block_stats(&self, dom: &Domain, disk: &str) -> Result<Vec<TypedParam>> {
        let ask = |nparams| DomainBlockStatsFlagsArgs {
            dom: dom.clone(),
            path: disk.into(),
            nparams,
            flags: 0,
        };
        let n: DomainBlockStatsFlagsRet =
            self.call(procs::DOMAIN_BLOCK_STATS_FLAGS, &ask(0)).await?;
        if n.nparams <= 0 {
            return Ok(Vec::new());
        }
        let r: DomainBlockStatsFlagsRet = self
            .call(procs::DOMAIN_BLOCK_STATS_FLAGS, &ask(n.nparams))
            .await?;
        Ok(r.params.0)
    }

    /// `virDomainInterfaceStats`, from the guest's side.
    pub async fn interface_stats(
        &self,
        dom: &Domain,
        device: &str,
    ) -> Result<DomainInterfaceStatsRet> {
        self.call(
            procs::DOMAIN_INTERFACE_STATS,
            &DomainPathArgs {
                dom: dom.clone(),
                path: device.into(),
            },
        )
        .await
    }

    /// `virDomainGetBlockInfo`: (capacity, allocation, physical) in bytes.
    pub async fn block_info(&self, dom: &Domain, disk: &str) -> Result<(u64, u64, u64)> {
        let r: DomainGetBlockInfoRet = self
            .call(
                procs::DOMAIN_GET_BLOCK_INFO,
                &DomainGetBlockInfoArgs {
                    dom: dom.clone(),
                    path: disk.into(),
                    flags: 0,
                },
            )
            .await?;
        Ok((r.capacity, r.allocation, r.physical))
    }
}
