//! The VM's screen and keyboard: a picture of the screen (`virsh screenshot`: QEMU writes
//! it as a PNG into the VM's runtime directory, the shim reads it back and removes it),
//! and keys pressed (`virsh send-key`).

use anyhow::{anyhow, bail};
use vireo_proto::vireo::SCREENSHOT_MAX;

use crate::vm::{OpFailed, Vm};

impl Vm {
    /// Head `screen` of the display, as PNG bytes.
    pub async fn screenshot(&self, screen: u32) -> anyhow::Result<Vec<u8>> {
        self.require_running()?;
        let path = self.qemu_dir().join("screenshot.png");
        let _ = std::fs::remove_file(&path);
        let mut args = serde_json::json!({
            "filename": path.to_string_lossy(),
            "format": "png",
        });
        if screen != 0 {
            args["head"] = serde_json::json!(screen);
        }
        let r = self.qmp().execute("screendump", Some(args)).await;
        let data = r
            .map_err(|e| anyhow!(OpFailed(format!("cannot take a screenshot: {e}"))))
            .and_then(|_| {
                let len = std::fs::metadata(&path)?.len();
                if len > SCREENSHOT_MAX as u64 {
                    bail!(OpFailed(format!(
                        "the screenshot is too large ({len} bytes)"
                    )));
                }
                Ok(std::fs::read(&path)?)
            });
        let _ = std::fs::remove_file(&path);
        data
    }

    /// Presses `keys` (of libvirt's codeset `set`) together for `hold_ms` (QEMU's default
    /// when 0), then releases them.
    pub async fn send_keys(&self, set: u32, keys: &[u32], hold_ms: u32) -> anyhow::Result<()> {
        self.require_running()?;
        if keys.is_empty() {
            bail!(crate::stats::BadArg("no keycodes given".into()));
        }
        let mut qkeys = Vec::with_capacity(keys.len());
        for k in keys {
            let q = vireo_qemu::keys::to_qnum(set, *k).map_err(crate::stats::BadArg)?;
            qkeys.push(serde_json::json!({"type": "number", "data": q}));
        }
        let mut args = serde_json::json!({ "keys": qkeys });
        if hold_ms > 0 {
            args["hold-time"] = serde_json::json!(hold_ms);
        }
        self.qmp()
            .execute("send-key", Some(args))
            .await
            .map_err(|e| anyhow!(OpFailed(format!("cannot send the keys: {e}"))))?;
        Ok(())
    }
}
