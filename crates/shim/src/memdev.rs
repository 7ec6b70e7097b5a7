//! The running VM's memory devices (`<memory model='dimm'>`, `<memory
//! model='virtio-mem'>`) as they are now: `attach-device` plugs one in (a memory backend,
//! then the device), `detach-device` takes it out when the guest lets it go (the backend
//! goes after it), `update-memory-device` asks the guest for another share of a
//! virtio-mem device.

use anyhow::{anyhow, bail};
use serde_json::json;
use vireo_xml::{MemSize, MemoryDevice, MemoryModel};

use crate::hotplug::{free_id, Unsupported};
use crate::stats::BadArg;
use crate::vm::{OpFailed, Vm};

/// A memory device of the running VM, with its QEMU id (its alias).
#[derive(Clone)]
pub struct LiveMemory {
    pub def: MemoryDevice,
    pub id: String,
}

/// The memory devices a VM starts with, named as the command line names them.
pub fn initial(all: &[MemoryDevice]) -> Vec<LiveMemory> {
    all.iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let (_, id) = vireo_qemu::cmdline::memory_device(all, i).ok()?;
            Some(LiveMemory { def: m.clone(), id })
        })
        .collect()
}

impl Vm {
    /// Plugs a memory device in; returns its alias.
    pub async fn attach_memory(&self, mut m: MemoryDevice) -> anyhow::Result<String> {
        self.require_running()?;
        let prefix = vireo_qemu::cmdline::memory_prefix(&m)
            .map_err(|e| anyhow!(Unsupported(e.to_string())))?;
        let id = {
            let mems = self.memories();
            free_id(prefix, |id| mems.iter().any(|x| x.id == id))
        };
        let (backend, device) = vireo_qemu::cmdline::hotplug_memory(&self.def, &m, &id)
            .map_err(|e| anyhow!(Unsupported(e.to_string())))?;
        let qmp = self.qmp();
        qmp.execute("object-add", Some(backend))
            .await
            .map_err(|e| anyhow!(OpFailed(format!("cannot make the device's memory: {e}"))))?;
        if let Err(e) = qmp.execute("device_add", Some(device)).await {
            let _ = qmp
                .execute("object-del", Some(json!({ "id": format!("mem{id}") })))
                .await;
            bail!(OpFailed(format!("cannot plug the memory device in: {e}")));
        }
        m.alias = Some(id.clone());
        self.add_memory_kib(m.size_kib() as i64);
        self.memories().push(LiveMemory {
            def: m,
            id: id.clone(),
        });
        Ok(id)
    }

    /// The QEMU id of the memory device with this alias.
    pub(crate) fn memory_id(&self, alias: &str) -> Option<String> {
        self.memories()
            .iter()
            .find(|m| m.id == alias || m.def.alias.as_deref() == Some(alias))
            .map(|m| m.id.clone())
    }

    /// A memory device the guest let go: forgotten, its backend removed; returns its alias.
    pub(crate) async fn memory_deleted(&self, id: &str) -> Option<String> {
        let gone = {
            let mut mems = self.memories();
            let i = mems.iter().position(|m| m.id == id)?;
            mems.remove(i)
        };
        if let Err(e) = self
            .qmp()
            .execute("object-del", Some(json!({ "id": format!("mem{id}") })))
            .await
        {
            eprintln!("vireo-shim: cannot remove memory backend mem{id}: {e}");
        }
        self.add_memory_kib(-(gone.def.size_kib() as i64));
        Some(gone.id)
    }

    /// `update-memory-device --requested-size`: asks the guest to have `kib` of the
    /// virtio-mem device with this alias.
    pub async fn set_requested_memory(&self, alias: &str, kib: u64) -> anyhow::Result<()> {
        self.require_running()?;
        let Some(cur) = self
            .memories()
            .iter()
            .find(|m| m.id == alias || m.def.alias.as_deref() == Some(alias))
            .cloned()
        else {
            bail!(BadArg(format!("no memory device with alias '{alias}'")));
        };
        if cur.def.model != MemoryModel::VirtioMem {
            bail!(Unsupported(
                "only a virtio-mem device's requested size can change".into()
            ));
        }
        cur.def
            .check_requested(kib)
            .map_err(|e| anyhow!(BadArg(e)))?;
        self.qmp()
            .execute(
                "qom-set",
                Some(json!({
                    "path": format!("/machine/peripheral/{}", cur.id),
                    "property": "requested-size",
                    "value": kib * 1024,
                })),
            )
            .await
            .map_err(|e| anyhow!(OpFailed(format!("cannot change the requested size: {e}"))))?;
        if let Some(m) = self.memories().iter_mut().find(|m| m.id == cur.id) {
            m.def.target.requested = Some(MemSize::kib(kib));
        }
        Ok(())
    }

    /// QEMU's MEMORY_DEVICE_SIZE_CHANGE: the guest took (or gave back) some of a
    /// virtio-mem device; the live XML's `<current>` says how much it has.
    pub fn on_memory_size_change(&self, data: &serde_json::Value) {
        let (Some(id), Some(size)) = (data["id"].as_str(), data["size"].as_u64()) else {
            return;
        };
        let known = match self.memories().iter_mut().find(|m| m.id == id) {
            Some(m) => {
                m.def.target.current = Some(MemSize::kib(size / 1024));
                true
            }
            None => false,
        };
        if known {
            let msg = vireo_proto::remote::DomainEventMemoryDeviceSizeChangeMsg {
                callback_id: 0,
                dom: crate::serve::handle(self),
                alias: id.to_string(),
                size: size / 1024,
            };
            self.emit_message(
                vireo_proto::remote::procs::DOMAIN_EVENT_MEMORY_DEVICE_SIZE_CHANGE,
                vireo_xdr::to_bytes(&msg),
            );
        }
    }
}
