//! The emulated TPM (`<tpm><backend type='emulator'>`): swtpm (Debian's package) runs
//! beside QEMU with the domain's state directory, listening on `swtpm.sock` in the VM's
//! runtime directory; QEMU's `-tpmdev emulator` connects to it. swtpm ends when QEMU lets
//! go of it (`--terminate`).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use vireo_xml::{Domain, TpmBackendType};

/// Starts swtpm for `def`'s emulated TPM (if it has one) and waits for its socket.
pub async fn start_swtpm(def: &Domain, vm_dir: &Path, state: Option<&Path>) -> anyhow::Result<()> {
    let Some(t) = def
        .devices
        .tpms
        .iter()
        .find(|t| t.backend.backend_type == TpmBackendType::Emulator)
    else {
        return Ok(());
    };
    let state = state.context("the TPM's state directory was not given (--tpm-state)")?;
    let sock = vm_dir.join("swtpm.sock");
    for p in [state, &sock, vm_dir] {
        // swtpm's options are comma-separated.
        if p.to_string_lossy().contains(',') {
            bail!(
                "{}: a path with a comma cannot be given to swtpm",
                p.display()
            );
        }
    }
    std::fs::create_dir_all(state).with_context(|| format!("cannot create {}", state.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(state, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot protect {}", state.display()))?;
    let _ = std::fs::remove_file(&sock);
    let swtpm = vireo_hostprog::find("swtpm").map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut cmd = tokio::process::Command::new(swtpm);
    cmd.arg("socket")
        .arg("--ctrl")
        .arg(format!("type=unixio,path={},mode=0600", sock.display()))
        .arg("--tpmstate")
        .arg(format!("dir={},mode=0600", state.display()))
        .arg("--log")
        .arg(format!("file={}", vm_dir.join("swtpm.log").display()))
        .arg("--terminate");
    if t.backend.version.as_deref() != Some("1.2") {
        cmd.arg("--tpm2");
    }
    // Never on our stdout: the daemon reads it.
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let mut child = cmd.spawn().context("cannot start swtpm")?;
    for _ in 0..200 {
        if sock.exists() {
            // Reaped when it ends, with QEMU.
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
            return Ok(());
        }
        if let Ok(Some(st)) = child.try_wait() {
            bail!(
                "swtpm ended at start ({st}); see {}",
                vm_dir.join("swtpm.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let _ = child.kill().await;
    bail!("swtpm did not open {} in time", sock.display())
}
