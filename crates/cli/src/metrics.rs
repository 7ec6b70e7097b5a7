//! `admin-metrics`: a daemon's metrics (Prometheus' text format), from its admin socket.
//!
//! The daemon is the one the URI names: its admin socket is `NAME-admin-sock` beside the
//! socket the URI leads to. A driver URI (`qemu:///system`) means the driver's daemon, or
//! the monolithic `vireod` when that is what answers; a daemon URI as `virt-admin` takes
//! them (`vireod:///system`, `vireo-qemud:///session`, or libvirt's names:
//! `virtqemud:///system`, `libvirtd:///system`) means that daemon; `?socket=PATH` names a
//! socket of the daemon (its read-write, read-only or admin socket).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use vireo_client::uri::Uri;
use vireo_proto::vireo::{
    procs, DaemonMetricsArgs, DaemonMetricsRet, VIREO_PROGRAM, VIREO_VERSION,
};
use vireo_rpc::client::Connection;

pub const COMMANDS: &[&str] = &["admin-metrics"];

pub async fn run(uri: &str, _readonly: bool, cmd: &str, rest: &[String]) -> Result<()> {
    if let Some(a) = rest.first() {
        if a.starts_with("--") {
            bail!("command '{cmd}' doesn't support option {a}");
        }
        bail!("unexpected data '{a}'");
    }
    let candidates = admin_sockets(uri)?;
    let mut last = None;
    for path in &candidates {
        match Connection::connect(path).await {
            Ok(c) => {
                let text = metrics(&c)
                    .await
                    .with_context(|| format!("cannot get the metrics of {}", path.display()))?;
                print!("{text}");
                return Ok(());
            }
            Err(e) => last = Some((path.clone(), e)),
        }
    }
    match last {
        Some((p, e)) => Err(anyhow!(
            "Failed to connect to the admin socket '{}': {e}",
            p.display()
        )),
        None => Err(anyhow!("no admin socket for '{uri}'")),
    }
}

async fn metrics(c: &Connection) -> Result<String> {
    let args = DaemonMetricsArgs { flags: 0 };
    let (r, _): (DaemonMetricsRet, _) = c
        .call_fds(VIREO_PROGRAM, VIREO_VERSION, procs::DAEMON_METRICS, &args)
        .await?;
    Ok(r.text)
}

/// libvirt's daemon names, and ours, as `virt-admin` URIs use them.
fn daemon_of_scheme(driver: &str) -> Option<&'static str> {
    Some(match driver {
        "vireod" | "libvirtd" => "vireod",
        "vireo-proxyd" | "virtproxyd" => "vireo-proxyd",
        "vireo-qemud" | "virtqemud" => "vireo-qemud",
        "vireo-networkd" | "virtnetworkd" => "vireo-networkd",
        "vireo-nwfilterd" | "virtnwfilterd" => "vireo-nwfilterd",
        "vireo-storaged" | "virtstoraged" => "vireo-storaged",
        "vireo-secretd" | "virtsecretd" => "vireo-secretd",
        "vireo-nodedevd" | "virtnodedevd" => "vireo-nodedevd",
        "vireo-interfaced" | "virtinterfaced" => "vireo-interfaced",
        _ => return None,
    })
}

/// The admin sockets to try for `uri`, in order.
fn admin_sockets(uri: &str) -> Result<Vec<PathBuf>> {
    let u = Uri::parse(uri)?;
    if let Some(s) = u.param("socket") {
        return Ok(admin_beside(Path::new(s)));
    }
    if let Some(daemon) = daemon_of_scheme(&u.driver) {
        // Where this URI's sockets are, whichever daemon that would be.
        let socks = u.sockets(false)?;
        let dir = socks
            .first()
            .and_then(|(_, p)| p.parent())
            .ok_or_else(|| anyhow!("no socket directory for '{uri}'"))?;
        return Ok(admin_beside(&dir.join(format!("{daemon}-sock"))));
    }
    Ok(u.sockets(false)?
        .iter()
        .flat_map(|(_, p)| admin_beside(p))
        .collect())
}

/// The admin socket of the daemon that has the socket at `p` (`NAME-sock`,
/// `NAME-sock-ro` or `NAME-admin-sock` itself). The legacy socket `vireod-sock` is
/// vireo-proxyd's where the daemons are modular: its admin socket is tried second.
fn admin_beside(p: &Path) -> Vec<PathBuf> {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.ends_with("-admin-sock") {
        return vec![p.to_path_buf()];
    }
    let base = name
        .strip_suffix("-sock-ro")
        .or_else(|| name.strip_suffix("-sock"))
        .unwrap_or(&name);
    let mut v = vec![p.with_file_name(format!("{base}-admin-sock"))];
    if base == "vireod" {
        v.push(p.with_file_name("vireo-proxyd-admin-sock"));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_socket_from_uri() {
        let p = |u: &str| admin_sockets(u).unwrap();
        assert_eq!(
            p("qemu+unix:///system?socket=/r/vireod-sock"),
            [
                PathBuf::from("/r/vireod-admin-sock"),
                PathBuf::from("/r/vireo-proxyd-admin-sock")
            ]
        );
        assert_eq!(
            p("qemu:///system?socket=/r/vireo-qemud-sock-ro"),
            [PathBuf::from("/r/vireo-qemud-admin-sock")]
        );
        assert_eq!(
            p("vireo-qemud:///system?socket=/r/vireo-qemud-admin-sock"),
            [PathBuf::from("/r/vireo-qemud-admin-sock")]
        );
        assert_eq!(
            p("virtqemud:///system"),
            [PathBuf::from("/run/vireo/vireo-qemud-admin-sock")]
        );
        assert_eq!(
            p("qemu:///system?mode=auto"),
            [
                PathBuf::from("/run/vireo/vireo-qemud-admin-sock"),
                PathBuf::from("/run/vireo/vireod-admin-sock"),
                PathBuf::from("/run/vireo/vireo-proxyd-admin-sock")
            ]
        );
        assert_eq!(
            p("virtproxyd:///system"),
            [PathBuf::from("/run/vireo/vireo-proxyd-admin-sock")]
        );
        assert!(admin_sockets("nonsense").is_err());
    }
}
