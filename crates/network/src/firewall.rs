//! A network's firewall rules, with nftables: each network that needs rules gets a table of
//! its own, `inet vireo-<bridge>`, written and removed in one `nft -f` transaction. Nothing
//! else's tables or rules are ever read, changed or flushed.
//!
//! - **nat**: traffic from the network's subnets out (through the forward device, if the
//!   network names one) is accepted and masqueraded (ports into 1024–65535, as libvirt
//!   does), replies come back; multicast and broadcast are not masqueraded.
//! - **route**: the same without masquerading; traffic to the subnets is accepted.
//! - **isolated** (no `<forward>`): guests reach each other and the host, nothing else.
//! - In every case other traffic into or out of the bridge is rejected, and DHCP/DNS from
//!   the bridge to the host are accepted.

use std::fmt::Write;
use std::net::IpAddr;

use crate::error::{NetworkError, Result};
use crate::host::run_with_input;

/// How a network forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Nat,
    Route,
    Isolated,
}

/// What the rules of one network are made from.
#[derive(Debug, Clone)]
pub struct Rules {
    pub bridge: String,
    pub mode: Mode,
    /// `<forward dev=…>`: traffic leaves only through it.
    pub forward_dev: Option<String>,
    /// The network's subnets.
    pub subnets: Vec<(IpAddr, u8)>,
    /// `<nat><port start end>`, when given.
    pub nat_ports: Option<(u16, u16)>,
    /// `<nat><address start end>`: SNAT to this IPv4 range instead of masquerading.
    pub nat_addresses: Option<(IpAddr, IpAddr)>,
}

/// Whether a bridge name can be part of our table's name (nftables identifiers).
pub fn usable_bridge_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn table(bridge: &str) -> String {
    format!("vireo-{bridge}")
}

fn family(a: &IpAddr) -> &'static str {
    match a {
        IpAddr::V4(_) => "ip",
        IpAddr::V6(_) => "ip6",
    }
}

/// The `nft -f` script that replaces the network's table with `r`'s rules.
pub fn script(r: &Rules) -> String {
    let t = table(&r.bridge);
    let br = &r.bridge;
    let mut s = format!("table inet {t}\ndelete table inet {t}\ntable inet {t} {{\n");
    // Guests ask the host for addresses and names.
    s.push_str("  chain input {\n    type filter hook input priority filter; policy accept;\n");
    let _ = writeln!(s, "    iifname \"{br}\" udp dport {{ 53, 67, 547 }} accept");
    let _ = writeln!(s, "    iifname \"{br}\" tcp dport 53 accept");
    s.push_str("  }\n");

    s.push_str("  chain forward {\n    type filter hook forward priority filter; policy accept;\n");
    let out_dev = r
        .forward_dev
        .as_ref()
        .map(|d| format!(" oifname \"{d}\""))
        .unwrap_or_default();
    let in_dev = r
        .forward_dev
        .as_ref()
        .map(|d| format!(" iifname \"{d}\""))
        .unwrap_or_default();
    for (addr, prefix) in &r.subnets {
        let f = family(addr);
        match r.mode {
            Mode::Nat => {
                let _ = writeln!(
                    s,
                    "    iifname \"{br}\"{out_dev} {f} saddr {addr}/{prefix} accept"
                );
                let _ = writeln!(
                    s,
                    "    oifname \"{br}\"{in_dev} {f} daddr {addr}/{prefix} ct state related,established accept"
                );
            }
            Mode::Route => {
                let _ = writeln!(
                    s,
                    "    iifname \"{br}\"{out_dev} {f} saddr {addr}/{prefix} accept"
                );
                let _ = writeln!(
                    s,
                    "    oifname \"{br}\"{in_dev} {f} daddr {addr}/{prefix} accept"
                );
            }
            Mode::Isolated => {}
        }
    }
    let _ = writeln!(s, "    iifname \"{br}\" oifname \"{br}\" accept");
    let _ = writeln!(s, "    iifname \"{br}\" reject");
    let _ = writeln!(s, "    oifname \"{br}\" reject");
    s.push_str("  }\n");

    if r.mode == Mode::Nat {
        s.push_str(
            "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n",
        );
        for (addr, prefix) in r.subnets.iter().filter(|(a, _)| a.is_ipv4()) {
            let net = format!("{addr}/{prefix}");
            let _ = writeln!(s, "    ip saddr {net} ip daddr 224.0.0.0/24 return");
            let _ = writeln!(s, "    ip saddr {net} ip daddr 255.255.255.255 return");
            let (lo, hi) = r.nat_ports.unwrap_or((1024, 65535));
            let target = match r.nat_addresses {
                Some((a, b)) if a == b => format!("snat ip to {a}"),
                Some((a, b)) => format!("snat ip to {a}-{b}"),
                None => "masquerade".to_string(),
            };
            let ports = if target == "masquerade" {
                format!("masquerade to :{lo}-{hi}")
            } else {
                format!("{target}:{lo}-{hi}")
            };
            let _ = writeln!(
                s,
                "    ip saddr {net} ip daddr != {net}{out_dev} meta l4proto {{ tcp, udp }} {ports}"
            );
            let _ = writeln!(s, "    ip saddr {net} ip daddr != {net}{out_dev} {target}");
        }
        s.push_str("  }\n");
    }
    s.push_str("}\n");
    s
}

/// Puts the network's rules in place (replacing its table, if there is one).
pub fn apply(r: &Rules) -> Result<()> {
    run_with_input("nft", &["-f", "-"], Some(&script(r)))
        .map(|_| ())
        .map_err(|e| NetworkError::Command(format!("cannot set the firewall rules: {e}")))
}

/// Removes the network's table; one that is not there is fine.
pub fn remove(bridge: &str) -> Result<()> {
    let t = table(bridge);
    run_with_input(
        "nft",
        &["-f", "-"],
        Some(&format!("table inet {t}\ndelete table inet {t}\n")),
    )
    .map(|_| ())
}

/// Whether the network's table is there (a restarted daemon checks what it adopts).
pub fn present(bridge: &str) -> bool {
    crate::host::run("nft", &["list", "table", "inet", &table(bridge)]).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nat_rules() {
        let r = Rules {
            bridge: "virbr0".into(),
            mode: Mode::Nat,
            forward_dev: None,
            subnets: vec![("192.168.122.0".parse().unwrap(), 24)],
            nat_ports: None,
            nat_addresses: None,
        };
        let s = script(&r);
        assert!(s.starts_with("table inet vireo-virbr0\ndelete table inet vireo-virbr0\n"));
        assert!(s.contains("iifname \"virbr0\" ip saddr 192.168.122.0/24 accept"));
        assert!(s.contains(
            "ip saddr 192.168.122.0/24 ip daddr != 192.168.122.0/24 meta l4proto { tcp, udp } masquerade to :1024-65535"
        ));
        assert!(s.contains("oifname \"virbr0\" reject"));
    }

    #[test]
    fn route_and_isolated_rules() {
        let mut r = Rules {
            bridge: "vbr1".into(),
            mode: Mode::Route,
            forward_dev: Some("eth0".into()),
            subnets: vec![
                ("10.1.0.0".parse().unwrap(), 16),
                ("fd00::".parse().unwrap(), 64),
            ],
            nat_ports: None,
            nat_addresses: None,
        };
        let s = script(&r);
        assert!(s.contains("iifname \"vbr1\" oifname \"eth0\" ip6 saddr fd00::/64 accept"));
        assert!(!s.contains("masquerade"));
        r.mode = Mode::Isolated;
        let s = script(&r);
        assert!(!s.contains("saddr"));
        assert!(s.contains("iifname \"vbr1\" oifname \"vbr1\" accept"));
    }
}
