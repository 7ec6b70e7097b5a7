//! Domain snapshot calls (`virsh snapshot-*`), served by the QEMU driver
//! (`crates/qemu/src/snapshot.rs`). A snapshot handle is its name and its domain's handle.

use std::sync::Arc;

use vireo_proto::remote::*;
use vireo_rpc::server::{BoxFuture, Outcome};

use super::{args, ret, void, ProcResult, RemoteService};

/// Some(future) for the snapshot procedures (creating, reverting and deleting wait on QEMU
/// or qemu-img; the others answer at once, on the same path).
pub(super) fn dispatch(
    s: &Arc<RemoteService>,
    p: i32,
    payload: &[u8],
) -> Option<BoxFuture<Outcome>> {
    if !matches!(
        p,
        procs::DOMAIN_SNAPSHOT_CREATE_XML
            | procs::DOMAIN_SNAPSHOT_GET_XML_DESC
            | procs::DOMAIN_SNAPSHOT_NUM
            | procs::DOMAIN_SNAPSHOT_LIST_NAMES
            | procs::DOMAIN_SNAPSHOT_LOOKUP_BY_NAME
            | procs::DOMAIN_HAS_CURRENT_SNAPSHOT
            | procs::DOMAIN_SNAPSHOT_CURRENT
            | procs::DOMAIN_REVERT_TO_SNAPSHOT
            | procs::DOMAIN_SNAPSHOT_DELETE
            | procs::DOMAIN_SNAPSHOT_GET_PARENT
            | procs::DOMAIN_SNAPSHOT_NUM_CHILDREN
            | procs::DOMAIN_SNAPSHOT_LIST_CHILDREN_NAMES
            | procs::DOMAIN_SNAPSHOT_IS_CURRENT
            | procs::DOMAIN_SNAPSHOT_HAS_METADATA
            | procs::DOMAIN_LIST_ALL_SNAPSHOTS
            | procs::DOMAIN_SNAPSHOT_LIST_ALL_CHILDREN
    ) {
        return None;
    }
    let s = Arc::clone(s);
    let payload = payload.to_vec();
    Some(Box::pin(async move { serve(&s, p, &payload).await.into() }))
}

fn handle(dom: &Domain, name: String) -> DomainSnapshot {
    DomainSnapshot {
        name,
        dom: dom.clone(),
    }
}

/// At most `max` names (a negative `max` is refused, as libvirt does).
fn names(v: Vec<String>, max: i32) -> ProcResult {
    if max < 0 {
        return Err(vireo_driver::DriverError::InvalidArg(
            "maxnames in must be non-negative".into(),
        )
        .into());
    }
    let keep = usize::try_from(max)
        .unwrap_or(0)
        .min(DOMAIN_SNAPSHOT_LIST_MAX);
    ret(DomainSnapshotListNamesRet {
        names: vireo_xdr::Array(v.into_iter().take(keep).collect()),
    })
}

fn count(v: &[String]) -> ProcResult {
    ret(IntRet {
        value: i32::try_from(v.len()).unwrap_or(i32::MAX),
    })
}

fn handles(dom: &Domain, v: Vec<String>, need: i32) -> ProcResult {
    if v.len() > DOMAIN_SNAPSHOT_LIST_MAX {
        return Err(vireo_proto::RemoteError::rpc(format!(
            "too many snapshots '{}' for limit '{DOMAIN_SNAPSHOT_LIST_MAX}'",
            v.len()
        )));
    }
    let n = i32::try_from(v.len()).unwrap_or(i32::MAX);
    let snapshots = if need != 0 {
        v.into_iter().map(|n| handle(dom, n)).collect()
    } else {
        Vec::new()
    };
    ret(DomainListAllSnapshotsRet {
        snapshots: vireo_xdr::Array(snapshots),
        ret: n,
    })
}

async fn serve(s: &RemoteService, p: i32, payload: &[u8]) -> ProcResult {
    let q = s.hv()?;
    match p {
        procs::DOMAIN_SNAPSHOT_CREATE_XML => {
            let a: DomainSnapshotCreateXmlArgs = args(payload)?;
            let name = q.snapshot_create(&a.dom, &a.xml_desc, a.flags).await?;
            ret(DomainSnapshotRet {
                snap: handle(&a.dom, name),
            })
        }
        procs::DOMAIN_SNAPSHOT_GET_XML_DESC => {
            let a: DomainSnapshotFlagsArgs = args(payload)?;
            ret(DomainGetXmlDescRet {
                xml: q.snapshot_xml(&a.snap.dom, &a.snap.name, a.flags)?,
            })
        }
        procs::DOMAIN_SNAPSHOT_NUM => {
            let a: DomainFlagsArgs = args(payload)?;
            count(&q.snapshot_list(&a.dom, a.flags)?)
        }
        procs::DOMAIN_SNAPSHOT_LIST_NAMES => {
            let a: DomainSnapshotListNamesArgs = args(payload)?;
            names(q.snapshot_list(&a.dom, a.flags)?, a.maxnames)
        }
        procs::DOMAIN_LIST_ALL_SNAPSHOTS => {
            let a: DomainListAllSnapshotsArgs = args(payload)?;
            handles(&a.dom, q.snapshot_list(&a.dom, a.flags)?, a.need_results)
        }
        procs::DOMAIN_SNAPSHOT_NUM_CHILDREN => {
            let a: DomainSnapshotFlagsArgs = args(payload)?;
            count(&q.snapshot_children(&a.snap.dom, &a.snap.name, a.flags)?)
        }
        procs::DOMAIN_SNAPSHOT_LIST_CHILDREN_NAMES => {
            let a: DomainSnapshotListChildrenNamesArgs = args(payload)?;
            names(
                q.snapshot_children(&a.snap.dom, &a.snap.name, a.flags)?,
                a.maxnames,
            )
        }
        procs::DOMAIN_SNAPSHOT_LIST_ALL_CHILDREN => {
            let a: DomainSnapshotListAllChildrenArgs = args(payload)?;
            let v = q.snapshot_children(&a.snap.dom, &a.snap.name, a.flags)?;
            handles(&a.snap.dom, v, a.need_results)
        }
        procs::DOMAIN_SNAPSHOT_LOOKUP_BY_NAME => {
            let a: DomainSnapshotLookupByNameArgs = args(payload)?;
            let name = q.snapshot_lookup(&a.dom, &a.name, a.flags)?;
            ret(DomainSnapshotRet {
                snap: handle(&a.dom, name),
            })
        }
        procs::DOMAIN_HAS_CURRENT_SNAPSHOT => {
            let a: DomainFlagsArgs = args(payload)?;
            ret(IntRet {
                value: i32::from(q.snapshot_current(&a.dom, a.flags)?.is_some()),
            })
        }
        procs::DOMAIN_SNAPSHOT_CURRENT => {
            let a: DomainFlagsArgs = args(payload)?;
            let name = q.snapshot_current(&a.dom, a.flags)?.ok_or_else(|| {
                vireo_driver::DriverError::NoSnapshot(
                    "the domain does not have a current snapshot".into(),
                )
            })?;
            ret(DomainSnapshotRet {
                snap: handle(&a.dom, name),
            })
        }
        procs::DOMAIN_SNAPSHOT_GET_PARENT => {
            let a: DomainSnapshotFlagsArgs = args(payload)?;
            let name = q.snapshot_parent(&a.snap.dom, &a.snap.name, a.flags)?;
            ret(DomainSnapshotRet {
                snap: handle(&a.snap.dom, name),
            })
        }
        procs::DOMAIN_SNAPSHOT_IS_CURRENT => {
            let a: DomainSnapshotFlagsArgs = args(payload)?;
            ret(IntRet {
                value: i32::from(q.snapshot_is_current(&a.snap.dom, &a.snap.name, a.flags)?),
            })
        }
        procs::DOMAIN_SNAPSHOT_HAS_METADATA => {
            let a: DomainSnapshotFlagsArgs = args(payload)?;
            ret(IntRet {
                value: i32::from(q.snapshot_has_metadata(&a.snap.dom, &a.snap.name, a.flags)?),
            })
        }
        procs::DOMAIN_REVERT_TO_SNAPSHOT => {
            let a: DomainSnapshotFlagsArgs = args(payload)?;
            q.snapshot_revert(&a.snap.dom, &a.snap.name, a.flags)
                .await?;
            void()
        }
        _ => {
            let a: DomainSnapshotFlagsArgs = args(payload)?;
            q.snapshot_delete(&a.snap.dom, &a.snap.name, a.flags)
                .await?;
            void()
        }
    }
}
