//! The host side of a network: its bridge, addresses and routes, through iproute2's `ip`
//! (Debian's iproute2). Everything here acts on the network namespace the daemon runs in.

use std::net::IpAddr;
use std::process::Command;

use crate::error::{NetworkError, Result};

/// Runs a host program and returns what it printed; a failure carries its stderr.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<String> {
    run_with_input(program, args, None)
}

/// As [`run`], writing `input` to the program's standard input.
pub(crate) fn run_with_input(program: &str, args: &[&str], input: Option<&str>) -> Result<String> {
    use std::io::Write;
    use std::process::Stdio;
    let path = vireo_hostprog::find(program)?;
    let mut cmd = Command::new(&path);
    cmd.args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| NetworkError::io(format!("cannot run {program}"), e))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| NetworkError::io(format!("cannot write to {program}"), e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| NetworkError::io(format!("cannot run {program}"), e))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(NetworkError::Command(format!(
            "{program} {}: {}",
            args.join(" "),
            err.trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The interface index of a link (a new device of a reused name has another one).
pub fn link_index(name: &str) -> Option<u32> {
    run("ip", &["-o", "link", "show", "dev", name])
        .ok()?
        .split(':')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Whether a link of that name exists.
pub fn link_exists(name: &str) -> bool {
    run("ip", &["link", "show", "dev", name]).is_ok()
}

/// A link name the kernel accepts: 1–15 bytes, no `/`, no whitespace, not `.` or `..`.
pub fn valid_link_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name.contains(['/', ':'])
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// What a network's bridge looks like.
pub struct BridgeSpec<'a> {
    pub name: &'a str,
    pub mac: Option<&'a str>,
    pub stp: bool,
    /// Forward delay in seconds.
    pub delay: u32,
    pub mtu: Option<u32>,
    /// Addresses with their prefix length.
    pub addresses: Vec<(IpAddr, u8)>,
}

/// Makes the bridge, gives it its addresses and brings it up. On failure, what was made is
/// removed again.
pub fn create_bridge(spec: &BridgeSpec) -> Result<()> {
    let delay = (spec.delay.saturating_mul(100)).to_string();
    let mut args = vec!["link", "add", "name", spec.name];
    if let Some(m) = spec.mac {
        args.extend(["address", m]);
    }
    let mtu;
    if let Some(m) = spec.mtu {
        mtu = m.to_string();
        args.extend(["mtu", &mtu]);
    }
    // The delay first: the kernel refuses a short one once STP is on.
    args.extend(["type", "bridge", "forward_delay", &delay]);
    run("ip", &args)?;
    let made = (|| -> Result<()> {
        if spec.stp {
            run(
                "ip",
                &[
                    "link",
                    "set",
                    "dev",
                    spec.name,
                    "type",
                    "bridge",
                    "stp_state",
                    "1",
                ],
            )?;
        }
        for (addr, prefix) in &spec.addresses {
            let cidr = format!("{addr}/{prefix}");
            match addr {
                IpAddr::V4(_) => run(
                    "ip",
                    &["addr", "add", &cidr, "broadcast", "+", "dev", spec.name],
                )?,
                IpAddr::V6(_) => run(
                    "ip",
                    &["-6", "addr", "add", &cidr, "dev", spec.name, "nodad"],
                )?,
            };
        }
        run("ip", &["link", "set", "dev", spec.name, "up"])?;
        Ok(())
    })();
    if made.is_err() {
        let _ = delete_link(spec.name);
    }
    made
}

/// Removes a link (a bridge or a tap); one that is gone already is fine.
pub fn delete_link(name: &str) -> Result<()> {
    if !link_exists(name) {
        return Ok(());
    }
    run("ip", &["link", "del", "dev", name]).map(|_| ())
}

/// The IPv4/IPv6 routes of the namespace as (destination, prefix, device), for finding a
/// subnet some other interface already uses.
pub fn routes() -> Result<Vec<(IpAddr, u8, String)>> {
    let mut out = Vec::new();
    for fam in ["-4", "-6"] {
        let text = run("ip", &[fam, "-o", "route", "show", "table", "main"])?;
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let Some(dst) = words.next() else { continue };
            let dev = line
                .split_whitespace()
                .skip_while(|w| *w != "dev")
                .nth(1)
                .unwrap_or("")
                .to_string();
            let (addr, prefix) = match dst.split_once('/') {
                Some((a, p)) => (a, p.parse().unwrap_or(0)),
                None if dst == "default" => continue,
                None => (dst, if fam == "-4" { 32 } else { 128 }),
            };
            if let Ok(a) = addr.parse::<IpAddr>() {
                out.push((a, prefix, dev));
            }
        }
    }
    Ok(out)
}

/// Whether two subnets overlap.
pub fn overlaps(a: IpAddr, ap: u8, b: IpAddr, bp: u8) -> bool {
    let p = ap.min(bp);
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let m = if p == 0 {
                0
            } else {
                u32::MAX << (32 - p.min(32))
            };
            (u32::from(a) & m) == (u32::from(b) & m)
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let m = if p == 0 {
                0
            } else {
                u128::MAX << (128 - p.min(128))
            };
            (u128::from(a) & m) == (u128::from(b) & m)
        }
        _ => false,
    }
}

/// Turns on IP forwarding for the family (NAT and routed networks need it).
pub fn enable_forwarding(v6: bool) -> Result<()> {
    let path = if v6 {
        "/proc/sys/net/ipv6/conf/all/forwarding"
    } else {
        "/proc/sys/net/ipv4/ip_forward"
    };
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(path, "1\n").map_err(|e| NetworkError::io(format!("cannot write {path}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_overlap() {
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(overlaps(a("192.168.122.0"), 24, a("192.168.122.77"), 32));
        assert!(overlaps(a("10.0.0.0"), 8, a("10.1.2.0"), 24));
        assert!(!overlaps(a("10.0.0.0"), 24, a("10.0.1.0"), 24));
        assert!(overlaps(a("fd00::"), 64, a("fd00::1"), 128));
        assert!(!overlaps(a("fd00::"), 64, a("10.0.0.0"), 8));
    }

    #[test]
    fn link_names() {
        assert!(valid_link_name("virbr0"));
        assert!(!valid_link_name("a/b"));
        assert!(!valid_link_name("sixteen-chars-xx"));
        assert!(!valid_link_name(""));
        assert!(!valid_link_name("has space"));
    }
}
