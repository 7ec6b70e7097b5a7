//! A picture of the VM's screen (`virsh screenshot`): QEMU writes it as a PNG into the
//! VM's runtime directory, the shim reads it back and removes it.

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
}
