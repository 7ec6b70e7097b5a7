//! Programs that run beside QEMU for its devices: swtpm for an emulated TPM
//! (`<tpm><backend type='emulator'>`) and virtiofsd for each shared directory
//! (`<filesystem><driver type='virtiofs'>`). Each listens on a socket in the VM's runtime
//! directory that QEMU connects to, and ends when QEMU lets go of it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use vireo_xml::{Domain, TpmBackendType};

/// Starts `cmd` and waits until it listens on `sock`; it is reaped when it ends.
async fn run_until_listening(
    mut cmd: tokio::process::Command,
    sock: &Path,
    what: &str,
) -> anyhow::Result<()> {
    // Never on our stdout: the daemon reads it.
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    // A helper goes with its shim, as QEMU does: killed before QEMU connected to it, it
    // would have nobody to end it. The shim starts helpers from its only thread, so the
    // signal comes when the shim ends; a shim gone before it was set is seen here.
    let shim = rustix::process::getpid();
    // SAFETY: fork/exec: between fork and exec only prctl and getppid run, two system
    // calls that touch no memory.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            if rustix::process::getppid() != Some(shim) {
                return Err(std::io::Error::other("the shim is gone"));
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {what}"))?;
    for _ in 0..200 {
        if sock.exists() {
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
            return Ok(());
        }
        if let Ok(Some(st)) = child.try_wait() {
            bail!("{what} ended at start ({st})");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let _ = child.kill().await;
    bail!("{what} did not open {} in time", sock.display())
}

/// Paths are given to these programs inside comma-separated options.
fn no_comma(p: &Path) -> anyhow::Result<()> {
    if p.to_string_lossy().contains(',') {
        bail!(
            "{}: a path with a comma cannot be given to a device helper",
            p.display()
        );
    }
    Ok(())
}

/// Starts the helpers `def` needs, before QEMU.
pub async fn start(def: &Domain, vm_dir: &Path, tpm_state: Option<&Path>) -> anyhow::Result<()> {
    swtpm(def, vm_dir, tpm_state).await?;
    virtiofsd(def, vm_dir).await
}

/// swtpm with the domain's TPM state.
async fn swtpm(def: &Domain, vm_dir: &Path, state: Option<&Path>) -> anyhow::Result<()> {
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
    for p in [state, &sock] {
        no_comma(p)?;
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
    run_until_listening(cmd, &sock, "swtpm").await
}

/// QEMU 7.2's virtiofsd (Debian's qemu-system-common), unless `<binary path>` names one.
const VIRTIOFSD: &str = "/usr/lib/qemu/virtiofsd";

/// A virtiofsd for each shared directory, on `fsN.sock`.
async fn virtiofsd(def: &Domain, vm_dir: &Path) -> anyhow::Result<()> {
    for (i, f) in def.devices.filesystems.iter().enumerate() {
        let (Some(dir), Some(_)) = (f.source.as_deref(), f.target.as_deref()) else {
            continue;
        };
        let sock = vm_dir.join(format!("fs{i}.sock"));
        no_comma(&sock)?;
        no_comma(Path::new(dir))?;
        if !Path::new(dir).is_dir() {
            bail!("<filesystem>: {dir} is not a directory");
        }
        let _ = std::fs::remove_file(&sock);
        let bin = f
            .binary
            .clone()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(VIRTIOFSD));
        let mut cmd = tokio::process::Command::new(bin);
        cmd.arg(format!("--socket-path={}", sock.display()))
            .arg("-o")
            .arg(format!("source={dir}"))
            .arg("-o")
            .arg("cache=auto");
        run_until_listening(cmd, &sock, "virtiofsd").await?;
    }
    Ok(())
}

/// The helpers' sockets in the VM's directory, for QEMU's user to connect to (the helpers
/// run as the shim and make them its own).
pub fn give_sockets(vm_dir: &Path, u: &vireo_qemu::QemuUser) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(vm_dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name == "swtpm.sock" || (name.starts_with("fs") && name.ends_with(".sock")) {
            std::os::unix::fs::chown(e.path(), Some(u.uid), Some(u.gid))
                .with_context(|| format!("cannot give {name} to QEMU's user"))?;
        }
    }
    Ok(())
}
