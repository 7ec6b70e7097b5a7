//! `virDomainScreenshot`: a picture of a running VM's screen, from its shim.

use vireo_driver::{DriverError, Result};
use vireo_proto::remote::Domain as Handle;
use vireo_proto::vireo::{
    procs as vprocs, ShimScreenshotArgs, ShimScreenshotRet, VIREO_PROGRAM, VIREO_VERSION,
};

use crate::driver::QemuDriver;

impl QemuDriver {
    /// Head `screen` of the domain's display: (MIME type, bytes).
    pub async fn screenshot(
        &self,
        h: &Handle,
        screen: u32,
        flags: u32,
    ) -> Result<(String, Vec<u8>)> {
        if flags != 0 {
            return Err(DriverError::InvalidArg(format!(
                "unsupported flags (0x{flags:x})"
            )));
        }
        let conn = self.shim_of(h)?;
        let r = conn
            .call_fds::<_, ShimScreenshotRet>(
                VIREO_PROGRAM,
                VIREO_VERSION,
                vprocs::SHIM_SCREENSHOT,
                &ShimScreenshotArgs { screen },
            )
            .await;
        match r {
            Ok((ret, _)) => Ok((ret.mime, ret.data.0)),
            Err(e) => Err(crate::hotplug::shim_error(e)),
        }
    }
}
