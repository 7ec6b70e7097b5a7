//! Block jobs on a running domain's disks: pull, rebase, commit and copy started, their
//! progress read, their speed changed, their end (abort, or pivot to the new image), and
//! the events that tell how a job ended or that it is ready for a pivot.

use tokio::sync::mpsc::UnboundedReceiver;
use vireo_proto::remote::*;
use vireo_proto::typed::TypedParam;
use vireo_rpc::Frame;

use crate::{Connect, Result};

/// A job's progress (`virDomainBlockJobInfo`): `cur` of `end` units done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockJobInfo {
    /// `block_job::TYPE_*`.
    pub type_: i32,
    /// MiB/s, or bytes/s when asked with `INFO_BANDWIDTH_BYTES`.
    pub bandwidth: u64,
    pub cur: u64,
    pub end: u64,
}

/// How a block job of the domain went (`BLOCK_JOB` and `BLOCK_JOB_2` events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockJobEvent {
    /// The disk as the event names it: its image (`BLOCK_JOB`) or its target
    /// (`BLOCK_JOB_2`); one job sends both.
    pub disk: String,
    /// `block_job::TYPE_*`.
    pub type_: i32,
    /// `block_job::COMPLETED`, `FAILED`, `CANCELED` or `READY`.
    pub status: i32,
}

/// Block job events of one domain (see [`Connect::block_job_events`]).
pub struct BlockJobEvents {
    rx: UnboundedReceiver<Frame>,
    callback_ids: Vec<i32>,
}

impl BlockJobEvents {
    /// The next block job event of our registrations; `None` once the connection is gone.
    /// Messages that are not ours, or that do not decode, are skipped.
    pub async fn next(&mut self) -> Option<BlockJobEvent> {
        loop {
            let f = self.rx.recv().await?;
            let ev = match f.header.proc_ {
                procs::DOMAIN_EVENT_CALLBACK_BLOCK_JOB => {
                    vireo_xdr::from_bytes::<DomainEventCallbackBlockJobMsg>(&f.payload)
                        .ok()
                        .filter(|m| self.callback_ids.contains(&m.callback_id))
                        .map(|m| BlockJobEvent {
                            disk: m.msg.path,
                            type_: m.msg.type_,
                            status: m.msg.status,
                        })
                }
                procs::DOMAIN_EVENT_BLOCK_JOB_2 => {
                    vireo_xdr::from_bytes::<DomainEventBlockJob2Msg>(&f.payload)
                        .ok()
                        .filter(|m| self.callback_ids.contains(&m.callback_id))
                        .map(|m| BlockJobEvent {
                            disk: m.dst,
                            type_: m.type_,
                            status: m.status,
                        })
                }
                _ => None,
            };
            if ev.is_some() {
                return ev;
            }
        }
    }

    /// Ends the registrations.
    pub async fn close(self, c: &Connect) -> Result<()> {
        for callback_id in self.callback_ids {
            c.call::<_, ()>(
                procs::CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY,
                &EventCallbackDeregisterAnyArgs { callback_id },
            )
            .await?;
        }
        Ok(())
    }
}

impl Connect {
    /// `virDomainBlockJobAbort` (`block_job::ABORT_ASYNC`, `ABORT_PIVOT`).
    pub async fn block_job_abort(&self, dom: &Domain, path: &str, flags: u32) -> Result<()> {
        self.call(
            procs::DOMAIN_BLOCK_JOB_ABORT,
            &DomainBlockJobArgs {
                dom: dom.clone(),
                path: path.to_string(),
                flags,
            },
        )
        .await
    }

    /// `virDomainGetBlockJobInfo` (`block_job::INFO_BANDWIDTH_BYTES`): `None` when the disk
    /// runs no job.
    pub async fn block_job_info(
        &self,
        dom: &Domain,
        path: &str,
        flags: u32,
    ) -> Result<Option<BlockJobInfo>> {
        let r: DomainGetBlockJobInfoRet = self
            .call(
                procs::DOMAIN_GET_BLOCK_JOB_INFO,
                &DomainBlockJobArgs {
                    dom: dom.clone(),
                    path: path.to_string(),
                    flags,
                },
            )
            .await?;
        Ok((r.found != 0).then_some(BlockJobInfo {
            type_: r.type_,
            bandwidth: r.bandwidth,
            cur: r.cur,
            end: r.end,
        }))
    }

    /// `virDomainBlockJobSetSpeed` (`block_job::SPEED_BANDWIDTH_BYTES`).
    pub async fn block_job_set_speed(
        &self,
        dom: &Domain,
        path: &str,
        bandwidth: u64,
        flags: u32,
    ) -> Result<()> {
        self.call(
            procs::DOMAIN_BLOCK_JOB_SET_SPEED,
            &DomainBlockBandwidthArgs {
                dom: dom.clone(),
                path: path.to_string(),
                bandwidth,
                flags,
            },
        )
        .await
    }

    /// `virDomainBlockPull` (`block_job::PULL_BANDWIDTH_BYTES`).
    pub async fn block_pull(
        &self,
        dom: &Domain,
        path: &str,
        bandwidth: u64,
        flags: u32,
    ) -> Result<()> {
        self.call(
            procs::DOMAIN_BLOCK_PULL,
            &DomainBlockBandwidthArgs {
                dom: dom.clone(),
                path: path.to_string(),
                bandwidth,
                flags,
            },
        )
        .await
    }

    /// `virDomainBlockRebase` (`block_job::REBASE_*`): a pull down to `base`, or with
    /// `REBASE_COPY` a copy to `base`.
    pub async fn block_rebase(
        &self,
        dom: &Domain,
        path: &str,
        base: Option<&str>,
        bandwidth: u64,
        flags: u32,
    ) -> Result<()> {
        self.call(
            procs::DOMAIN_BLOCK_REBASE,
            &DomainBlockRebaseArgs {
                dom: dom.clone(),
                path: path.to_string(),
                base: base.map(str::to_string),
                bandwidth,
                flags,
            },
        )
        .await
    }

    /// `virDomainBlockCommit` (`block_job::COMMIT_*`): `top` (default: the disk's image)
    /// down into `base` (default: the bottom of the chain).
    pub async fn block_commit(
        &self,
        dom: &Domain,
        disk: &str,
        base: Option<&str>,
        top: Option<&str>,
        bandwidth: u64,
        flags: u32,
    ) -> Result<()> {
        self.call(
            procs::DOMAIN_BLOCK_COMMIT,
            &DomainBlockCommitArgs {
                dom: dom.clone(),
                disk: disk.to_string(),
                base: base.map(str::to_string),
                top: top.map(str::to_string),
                bandwidth,
                flags,
            },
        )
        .await
    }

    /// `virDomainBlockCopy` (`block_job::COPY_*`): `destxml` is the `<disk>` to copy to;
    /// `params` are `bandwidth` (bytes/s), `granularity` and `buf-size`.
    pub async fn block_copy(
        &self,
        dom: &Domain,
        disk: &str,
        destxml: &str,
        params: Vec<TypedParam>,
        flags: u32,
    ) -> Result<()> {
        self.call(
            procs::DOMAIN_BLOCK_COPY,
            &DomainBlockCopyArgs {
                dom: dom.clone(),
                path: disk.to_string(),
                destxml: destxml.to_string(),
                params: vireo_xdr::Array(params),
                flags,
            },
        )
        .await
    }

    /// Registers for the domain's block job events, both kinds (`BLOCK_JOB`, which names
    /// the disk by its image, and `BLOCK_JOB_2`, by its target). Takes this connection's
    /// event stream: one registration per connection.
    pub async fn block_job_events(&self, dom: &Domain) -> Result<BlockJobEvents> {
        let rx = self.connection().events();
        let mut events = BlockJobEvents {
            rx,
            callback_ids: Vec::new(),
        };
        for event_id in [event::ID_BLOCK_JOB, event::ID_BLOCK_JOB_2] {
            let r: EventCallbackRegisterAnyRet = match self
                .call(
                    procs::CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY,
                    &EventCallbackRegisterAnyArgs {
                        event_id,
                        dom: Some(dom.clone()),
                    },
                )
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = events.close(self).await;
                    return Err(e);
                }
            };
            events.callback_ids.push(r.callback_id);
        }
        Ok(events)
    }
}
