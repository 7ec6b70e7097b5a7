//! Write thresholds (`virsh domblkthreshold`, the BLOCK_THRESHOLD event): QEMU watches the
//! highest offset written to an image's storage node and says once when it passes the
//! threshold; the threshold is then gone, as in libvirt.
//!
//! A disk is named by its target (`vda`, the image the device uses) or `vda[N]` for the
//! N-th image down its backing chain (`vda[0]` is `vda`), the same numbering as the
//! `block.N.backingIndex` statistics.

use anyhow::{anyhow, bail};
use serde_json::{json, Value};
use vireo_proto::domevent::{self, DomainSetBlockThresholdArgs};

use crate::stats::BadArg;
use crate::vm::{OpFailed, Vm};

/// A threshold set on a storage node (the VM's are in `Vm::thresholds`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Armed {
    node: String,
    /// How the client named the disk (the event names it the same way).
    dev: String,
    path: String,
    threshold: u64,
}

/// Splits `vda[2]` into ("vda", 2); a bare target is index 0.
fn parse_dev(dev: &str) -> anyhow::Result<(&str, usize)> {
    match dev.split_once('[') {
        None => Ok((dev, 0)),
        Some((t, rest)) => {
            let i = rest
                .strip_suffix(']')
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| anyhow!(BadArg(format!("invalid disk name '{dev}'"))))?;
            Ok((t, i))
        }
    }
}

impl Vm {
    /// The thresholds set now.
    fn armed(&self) -> std::sync::MutexGuard<'_, Vec<Armed>> {
        self.thresholds.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// DOMAIN_SET_BLOCK_THRESHOLD: arms (or with 0 disarms) the threshold of one image.
    pub(crate) async fn set_block_threshold(
        &self,
        a: &DomainSetBlockThresholdArgs,
    ) -> anyhow::Result<()> {
        if a.flags != 0 {
            bail!(BadArg(format!(
                "unsupported flags (0x{:x}) in function virDomainSetBlockThreshold",
                a.flags
            )));
        }
        self.require_running()?;
        let (target, index) = parse_dev(&a.dev)?;
        if !self
            .disks()
            .iter()
            .any(|d| !d.removing && d.shown.target.dev == target)
        {
            bail!(BadArg(format!("failed to find disk '{target}'")));
        }
        let chain = self.chain(target).await?;
        let Some(layer) = chain.get(index) else {
            bail!(BadArg(format!(
                "failed to find backing index '{index}' for disk '{target}'"
            )));
        };
        let path = layer.file.clone();
        let node = layer.node.replace("-format", "-storage");
        self.qmp()
            .execute(
                "block-set-write-threshold",
                Some(json!({ "node-name": node, "write-threshold": a.threshold })),
            )
            .await
            .map_err(|e| anyhow!(OpFailed(format!("block-set-write-threshold: {e}"))))?;
        let mut set = self.armed();
        set.retain(|x| x.node != node);
        if a.threshold != 0 {
            set.push(Armed {
                node,
                dev: a.dev.clone(),
                path,
                threshold: a.threshold,
            });
        }
        Ok(())
    }

    /// The threshold armed on the image `format_node` (its storage node's), if any.
    pub(crate) fn block_threshold(&self, format_node: &str) -> Option<u64> {
        let node = format_node.replace("-format", "-storage");
        self.armed()
            .iter()
            .find(|x| x.node == node)
            .map(|x| x.threshold)
    }

    /// QEMU's BLOCK_WRITE_THRESHOLD: the BLOCK_THRESHOLD event, and the threshold is gone.
    pub(crate) fn on_write_threshold(&self, data: &Value) {
        let node = data["node-name"].as_str().unwrap_or("");
        let hit = {
            let mut set = self.armed();
            let at = set.iter().position(|x| x.node == node);
            at.map(|i| set.remove(i))
        };
        let Some(hit) = hit else { return };
        self.emit_event(
            domevent::id::BLOCK_THRESHOLD,
            &domevent::BlockThresholdMsg {
                dom: crate::serve::handle(self),
                dev: hit.dev,
                path: (!hit.path.is_empty()).then_some(hit.path),
                threshold: data["write-threshold"].as_u64().unwrap_or(hit.threshold),
                excess: data["amount-exceeded"].as_u64().unwrap_or(0),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disks_are_named_with_an_optional_chain_index() {
        assert_eq!(parse_dev("vda").unwrap(), ("vda", 0));
        assert_eq!(parse_dev("vdb[2]").unwrap(), ("vdb", 2));
        assert!(parse_dev("vdb[x]").is_err());
        assert!(parse_dev("vdb[2").is_err());
    }
}
