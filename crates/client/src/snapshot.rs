//! Domain snapshots: create (and redefine) from XML, look up, list (of the domain, of a
//! snapshot's children), the tree (parent, current), revert and delete. The flag checks
//! libvirt's client library makes before it sends a call are made here too, with its words.

use vireo_proto::error::{code, domain as err_domain};
use vireo_proto::remote::snapshot_flags as sf;
use vireo_proto::remote::*;
use vireo_proto::RemoteError;

use crate::{ClientError, Connect, Result};

/// What the daemon may hold of a snapshot list or a child count: more is not asked for.
const MAX_NAMES: i32 = DOMAIN_SNAPSHOT_LIST_MAX as i32;

/// libvirt's refusal of a flag that needs another one, or of two that exclude each other,
/// before the call is sent.
fn invalid_flags(message: String) -> ClientError {
    ClientError::Remote(Box::new(RemoteError::new(
        code::INVALID_ARG,
        err_domain::DOMAIN_SNAPSHOT,
        message,
    )))
}

/// `flags` must not hold both `a` and `b` (named as libvirt names them).
fn exclusive(flags: u32, (a, an): (u32, &str), (b, bn): (u32, &str)) -> Result<()> {
    if flags & a != 0 && flags & b != 0 {
        return Err(invalid_flags(format!(
            "Flags '{an}' and '{bn}' are mutually exclusive"
        )));
    }
    Ok(())
}

impl Connect {
    async fn snap_call<R: vireo_xdr::Xdr>(
        &self,
        p: i32,
        snap: &DomainSnapshot,
        flags: u32,
    ) -> Result<R> {
        self.call(
            p,
            &DomainSnapshotFlagsArgs {
                snap: snap.clone(),
                flags,
            },
        )
        .await
    }

    async fn dom_snap_call<R: vireo_xdr::Xdr>(
        &self,
        p: i32,
        dom: &Domain,
        flags: u32,
    ) -> Result<R> {
        self.call(
            p,
            &DomainFlagsArgs {
                dom: dom.clone(),
                flags,
            },
        )
        .await
    }

    /// `virDomainSnapshotCreateXML` (`snapshot_flags::CREATE_*`): the snapshot made (or
    /// redefined).
    pub async fn snapshot_create_xml(
        &self,
        dom: &Domain,
        xml: &str,
        flags: u32,
    ) -> Result<DomainSnapshot> {
        if flags & sf::CREATE_CURRENT != 0 && flags & sf::CREATE_REDEFINE == 0 {
            return Err(invalid_flags(
                "Flag 'VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE' is required by flag \
                 'VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT'"
                    .into(),
            ));
        }
        exclusive(
            flags,
            (sf::CREATE_REDEFINE, "VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE"),
            (
                sf::CREATE_NO_METADATA,
                "VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA",
            ),
        )?;
        let r: DomainSnapshotRet = self
            .call(
                procs::DOMAIN_SNAPSHOT_CREATE_XML,
                &DomainSnapshotCreateXmlArgs {
                    dom: dom.clone(),
                    xml_desc: xml.to_string(),
                    flags,
                },
            )
            .await?;
        Ok(r.snap)
    }

    /// `virDomainSnapshotGetXMLDesc` (`snapshot_flags::XML_SECURE`).
    pub async fn snapshot_xml(&self, snap: &DomainSnapshot, flags: u32) -> Result<String> {
        let r: DomainGetXmlDescRet = self
            .snap_call(procs::DOMAIN_SNAPSHOT_GET_XML_DESC, snap, flags)
            .await?;
        Ok(r.xml)
    }

    /// `virDomainSnapshotNum` (`snapshot_flags::LIST_*`).
    pub async fn snapshot_num(&self, dom: &Domain, flags: u32) -> Result<i32> {
        let r: DomainSnapshotNumRet = self
            .dom_snap_call(procs::DOMAIN_SNAPSHOT_NUM, dom, flags)
            .await?;
        Ok(r.num)
    }

    /// `virDomainSnapshotListNames`: the names of the domain's snapshots (all of them, up
    /// to libvirt's limit).
    pub async fn snapshot_names(&self, dom: &Domain, flags: u32) -> Result<Vec<String>> {
        let r: DomainSnapshotListNamesRet = self
            .call(
                procs::DOMAIN_SNAPSHOT_LIST_NAMES,
                &DomainSnapshotListNamesArgs {
                    dom: dom.clone(),
                    maxnames: MAX_NAMES,
                    flags,
                },
            )
            .await?;
        Ok(r.names.0)
    }

    /// `virDomainListAllSnapshots` (`snapshot_flags::LIST_*`).
    pub async fn list_all_snapshots(
        &self,
        dom: &Domain,
        flags: u32,
    ) -> Result<Vec<DomainSnapshot>> {
        let r: DomainListAllSnapshotsRet = self
            .call(
                procs::DOMAIN_LIST_ALL_SNAPSHOTS,
                &DomainListAllSnapshotsArgs {
                    dom: dom.clone(),
                    need_results: 1,
                    flags,
                },
            )
            .await?;
        Ok(r.snapshots.0)
    }

    /// `virDomainSnapshotLookupByName`.
    pub async fn snapshot_lookup(&self, dom: &Domain, name: &str) -> Result<DomainSnapshot> {
        let r: DomainSnapshotRet = self
            .call(
                procs::DOMAIN_SNAPSHOT_LOOKUP_BY_NAME,
                &DomainSnapshotLookupByNameArgs {
                    dom: dom.clone(),
                    name: name.to_string(),
                    flags: 0,
                },
            )
            .await?;
        Ok(r.snap)
    }

    /// `virDomainHasCurrentSnapshot`.
    pub async fn has_current_snapshot(&self, dom: &Domain) -> Result<bool> {
        let r: IntRet = self
            .dom_snap_call(procs::DOMAIN_HAS_CURRENT_SNAPSHOT, dom, 0)
            .await?;
        Ok(r.value != 0)
    }

    /// `virDomainSnapshotCurrent`: the snapshot the domain was last reverted to or made.
    pub async fn snapshot_current(&self, dom: &Domain) -> Result<DomainSnapshot> {
        let r: DomainSnapshotRet = self
            .dom_snap_call(procs::DOMAIN_SNAPSHOT_CURRENT, dom, 0)
            .await?;
        Ok(r.snap)
    }

    /// `virDomainRevertToSnapshot` (`snapshot_flags::REVERT_*`).
    pub async fn revert_to_snapshot(&self, snap: &DomainSnapshot, flags: u32) -> Result<()> {
        exclusive(
            flags,
            (sf::REVERT_RUNNING, "VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING"),
            (sf::REVERT_PAUSED, "VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED"),
        )?;
        self.snap_call(procs::DOMAIN_REVERT_TO_SNAPSHOT, snap, flags)
            .await
    }

    /// `virDomainSnapshotDelete` (`snapshot_flags::DELETE_*`).
    pub async fn snapshot_delete(&self, snap: &DomainSnapshot, flags: u32) -> Result<()> {
        exclusive(
            flags,
            (sf::DELETE_CHILDREN, "VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN"),
            (
                sf::DELETE_CHILDREN_ONLY,
                "VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN_ONLY",
            ),
        )?;
        self.snap_call(procs::DOMAIN_SNAPSHOT_DELETE, snap, flags)
            .await
    }

    /// `virDomainSnapshotGetParent`.
    pub async fn snapshot_parent(&self, snap: &DomainSnapshot) -> Result<DomainSnapshot> {
        let r: DomainSnapshotRet = self
            .snap_call(procs::DOMAIN_SNAPSHOT_GET_PARENT, snap, 0)
            .await?;
        Ok(r.snap)
    }

    /// `virDomainSnapshotNumChildren` (`LIST_DESCENDANTS` counts them all).
    pub async fn snapshot_num_children(&self, snap: &DomainSnapshot, flags: u32) -> Result<i32> {
        let r: DomainSnapshotNumRet = self
            .snap_call(procs::DOMAIN_SNAPSHOT_NUM_CHILDREN, snap, flags)
            .await?;
        Ok(r.num)
    }

    /// `virDomainSnapshotListChildrenNames`.
    pub async fn snapshot_children_names(
        &self,
        snap: &DomainSnapshot,
        flags: u32,
    ) -> Result<Vec<String>> {
        let r: DomainSnapshotListNamesRet = self
            .call(
                procs::DOMAIN_SNAPSHOT_LIST_CHILDREN_NAMES,
                &DomainSnapshotListChildrenNamesArgs {
                    snap: snap.clone(),
                    maxnames: MAX_NAMES,
                    flags,
                },
            )
            .await?;
        Ok(r.names.0)
    }

    /// `virDomainSnapshotListAllChildren` (`LIST_DESCENDANTS` for all below it).
    pub async fn snapshot_list_all_children(
        &self,
        snap: &DomainSnapshot,
        flags: u32,
    ) -> Result<Vec<DomainSnapshot>> {
        let r: DomainListAllSnapshotsRet = self
            .call(
                procs::DOMAIN_SNAPSHOT_LIST_ALL_CHILDREN,
                &DomainSnapshotListAllChildrenArgs {
                    snap: snap.clone(),
                    need_results: 1,
                    flags,
                },
            )
            .await?;
        Ok(r.snapshots.0)
    }

    /// `virDomainSnapshotIsCurrent`.
    pub async fn snapshot_is_current(&self, snap: &DomainSnapshot) -> Result<bool> {
        let r: IntRet = self
            .snap_call(procs::DOMAIN_SNAPSHOT_IS_CURRENT, snap, 0)
            .await?;
        Ok(r.value != 0)
    }

    /// `virDomainSnapshotHasMetadata`.
    pub async fn snapshot_has_metadata(&self, snap: &DomainSnapshot) -> Result<bool> {
        let r: IntRet = self
            .snap_call(procs::DOMAIN_SNAPSHOT_HAS_METADATA, snap, 0)
            .await?;
        Ok(r.value != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_checks_speak_as_libvirt() {
        assert!(exclusive(3, (1, "A"), (4, "B")).is_ok());
        let e = exclusive(5, (1, "A"), (4, "B"))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("Flags 'A' and 'B' are mutually exclusive")
        );
    }
}
