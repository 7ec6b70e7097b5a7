//! A binding's filter, as nftables rules in a table of its own: `bridge vireo-nwf-<dev>`.
//!
//! Layout (after libvirt's ebtables one): per direction a root chain (`out-root` for frames
//! from the guest, matched by `iifname <dev>`; `in-root` for frames to it, `oifname <dev>`)
//! entered from the bridge's `forward`, `input` and `output` hooks; rules of a filter whose
//! chain is `mac`, `arp`, `ipv4`, … go to a sub-chain of that name, jumped to from the root
//! chain for frames of that type, placed among the root's own rules by the chain's priority.
//! Within a chain rules go by priority, then document order.
//!
//! Actions: `accept` accepts the frame (no later rule of this binding sees it), `drop` and
//! `reject` drop it (nftables' bridge family cannot reject on the forward path), `return`
//! leaves the sub-chain, `continue` only matches. State matches (`state=`, `statematch`)
//! need connection tracking on bridges, which this kernel may lack: they are not
//! enforced (the rule applies regardless of state), as said in the driver's documentation.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One rule, after variables were replaced by values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub action: String,
    /// `in`, `out` or `inout`.
    pub direction: String,
    pub priority: i32,
    /// The filter chain the rule belongs to (`root`, `mac`, `arp`, `ipv4`, `ipv6`, …).
    pub chain: String,
    /// Where that chain is entered from the root, among the root's rules (its filter's
    /// priority).
    pub chain_priority: i32,
    /// The protocol element: `mac`, `arp`, `ip`, `tcp`, `udp-ipv6`, `all`, …
    pub proto: String,
    /// Its attributes, by XML name (`srcmacaddr`, `dstportstart`, …).
    pub attrs: BTreeMap<String, String>,
    /// Attributes given with `match='no'`: they must not match.
    pub negated: std::collections::BTreeSet<String>,
}

/// The frames a sub-chain sees (its `ether type` test); none for `root` and `mac`.
fn chain_ethertype(chain: &str) -> Option<&'static str> {
    match chain.split('-').next().unwrap_or(chain) {
        "ipv4" => Some("ip"),
        "ipv6" => Some("ip6"),
        "arp" => Some("arp"),
        "rarp" => Some("0x8035"),
        "vlan" => Some("8021q"),
        _ => None,
    }
}

/// A table name for a device (nftables identifiers: letters, digits, `-`, `_`, `.`).
pub fn table(dev: &str) -> String {
    let safe: String = dev
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("vireo-nwf-{safe}")
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace(['"', '\\'], ""))
}

/// `ether type` of a `protocolid` value (a name or a number).
fn ether_proto(v: &str) -> String {
    match v {
        "ipv4" => "ip".into(),
        "ipv6" => "ip6".into(),
        "arp" => "arp".into(),
        "rarp" => "0x8035".into(),
        "vlan" => "8021q".into(),
        n => n.into(),
    }
}

/// A MAC with an optional mask: `ether saddr X` or `ether saddr & M == X`.
fn mac_match(field: &str, addr: &str, mask: Option<&String>, op: &str) -> String {
    match mask {
        Some(m) => format!("{field} & {m} {op} {addr}"),
        None => format!("{field} {op} {addr}"),
    }
}

/// An address with an optional mask (a prefix length or a dotted mask).
fn addr_match(field: &str, addr: &str, mask: Option<&String>, op: &str) -> String {
    match mask {
        Some(m) if m.contains('.') => format!("{field} & {m} {op} {addr}"),
        Some(m) => format!("{field} {op} {addr}/{m}"),
        None => format!("{field} {op} {addr}"),
    }
}

fn range(a: Option<&String>, b: Option<&String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) if a != b => Some(format!("{a}-{b}")),
        (Some(a), _) => Some(a.clone()),
        (None, Some(b)) => Some(b.clone()),
        (None, None) => None,
    }
}

/// The match expressions of a rule (without the device test), or `None` when the rule
/// can never match here (a protocol nftables' bridge family cannot see).
pub fn matches(r: &Rule) -> Option<Vec<String>> {
    let a = |k: &str| r.attrs.get(k);
    // One `match='no'` on a rule's element negates its attributes, as libvirt applies it.
    let op = if r.negated.is_empty() { "==" } else { "!=" };
    let mut m = Vec::new();
    if r.proto.is_empty() {
        return Some(m);
    }
    let (base, v6) = match r.proto.strip_suffix("-ipv6") {
        Some(b) => (b, true),
        None => (r.proto.as_str(), r.proto == "ipv6"),
    };
    // Layer 2 fields, which most protocols have.
    if let Some(x) = a("srcmacaddr") {
        m.push(mac_match("ether saddr", x, a("srcmacmask"), op));
    }
    if let Some(x) = a("dstmacaddr") {
        m.push(mac_match("ether daddr", x, a("dstmacmask"), op));
    }
    let ipfam = if v6 { "ip6" } else { "ip" };
    match base {
        "mac" => {
            if let Some(p) = a("protocolid") {
                m.push(format!("ether type {op} {}", ether_proto(p)));
            }
        }
        "vlan" => {
            m.push("ether type 8021q".into());
            if let Some(id) = a("vlanid") {
                m.push(format!("vlan id {op} {id}"));
            }
            if let Some(p) = a("encap-protocol") {
                m.push(format!("vlan type {op} {}", ether_proto(p)));
            }
        }
        "stp" => return None,
        "arp" | "rarp" => {
            m.push(if base == "arp" {
                "ether type arp".into()
            } else {
                "ether type 0x8035".into()
            });
            if let Some(x) = a("arpsrcmacaddr") {
                m.push(format!("arp saddr ether {op} {x}"));
            }
            if let Some(x) = a("arpdstmacaddr") {
                m.push(format!("arp daddr ether {op} {x}"));
            }
            if let Some(x) = a("arpsrcipaddr") {
                m.push(addr_match("arp saddr ip", x, a("arpsrcipmask"), op));
            }
            if let Some(x) = a("arpdstipaddr") {
                m.push(addr_match("arp daddr ip", x, a("arpdstipmask"), op));
            }
            if let Some(x) = a("opcode") {
                let code = match x.to_ascii_lowercase().as_str() {
                    "request" => "1".to_string(),
                    "reply" => "2".to_string(),
                    "request_reverse" => "3".to_string(),
                    "reply_reverse" => "4".to_string(),
                    _ => x.clone(),
                };
                m.push(format!("arp operation {op} {code}"));
            }
            if let Some(x) = a("hwtype") {
                m.push(format!("arp htype {op} {x}"));
            }
            if let Some(x) = a("protocoltype") {
                m.push(format!("arp ptype {op} {x}"));
            }
        }
        "ip" | "ipv6" | "all" | "tcp" | "udp" | "sctp" | "udplite" | "icmp" | "igmp" | "esp"
        | "ah" => {
            m.push(format!("ether type {ipfam}"));
            for (k, f) in [("srcipaddr", "saddr"), ("dstipaddr", "daddr")] {
                if let Some(x) = a(k) {
                    let mask = a(&k.replace("addr", "mask"));
                    m.push(addr_match(&format!("{ipfam} {f}"), x, mask, op));
                }
            }
            for (from, to, f) in [
                ("srcipfrom", "srcipto", "saddr"),
                ("dstipfrom", "dstipto", "daddr"),
            ] {
                if let Some(rg) = range(a(from), a(to)) {
                    m.push(format!("{ipfam} {f} {op} {rg}"));
                }
            }
            let l4 = match base {
                "ip" | "ipv6" => a("protocol").cloned(),
                "all" => None,
                "icmp" if v6 => Some("icmpv6".into()),
                other => Some(other.to_string()),
            };
            if let Some(p) = &l4 {
                let field = if v6 { "ip6 nexthdr" } else { "ip protocol" };
                m.push(format!("{field} {p}"));
            }
            if let Some(d) = a("dscp") {
                m.push(format!("{ipfam} dscp {op} {d}"));
            }
            let ports = matches!(l4.as_deref(), Some("tcp" | "udp" | "sctp" | "udplite"));
            if ports {
                if let Some(rg) = range(a("srcportstart"), a("srcportend")) {
                    m.push(format!("th sport {op} {rg}"));
                }
                if let Some(rg) = range(a("dstportstart"), a("dstportend")) {
                    m.push(format!("th dport {op} {rg}"));
                }
            }
            if base == "icmp" {
                let f = if v6 { "icmpv6" } else { "icmp" };
                if let Some(t) = a("type") {
                    m.push(format!("{f} type {op} {t}"));
                }
                if let Some(c) = a("code") {
                    m.push(format!("{f} code {op} {c}"));
                }
            }
        }
        _ => return None,
    }
    Some(m)
}

fn verdict(action: &str) -> &'static str {
    match action {
        "accept" => "accept",
        "drop" | "reject" => "drop",
        "return" => "return",
        _ => "",
    }
}

/// The `nft -f` script that replaces the device's table with `rules`. `mac` is the
/// guest's address (for the comment only).
pub fn script(dev: &str, rules: &[Rule]) -> String {
    let t = table(dev);
    let q = quote(dev);
    let mut s = format!("table bridge {t}\ndelete table bridge {t}\ntable bridge {t} {{\n");
    for dir in ["out", "in"] {
        // Sub-chains by name, rules in priority order.
        let mut chains: BTreeMap<String, Vec<&Rule>> = BTreeMap::new();
        for r in rules
            .iter()
            .filter(|r| r.direction == dir || r.direction == "inout")
        {
            chains.entry(r.chain.clone()).or_default().push(r);
        }
        for v in chains.values_mut() {
            v.sort_by_key(|r| r.priority);
        }
        // The root: its own rules and the jumps, by priority.
        let mut root: Vec<(i32, String)> = Vec::new();
        for (name, rs) in &chains {
            if name == "root" {
                for r in rs {
                    if let Some(line) = rule_line(r) {
                        root.push((r.priority, line));
                    }
                }
                continue;
            }
            let sub = format!("{dir}-{name}");
            let jump = match chain_ethertype(name) {
                Some(et) => format!("ether type {et} jump {sub}"),
                None => format!("jump {sub}"),
            };
            let prio = rs.iter().map(|r| r.chain_priority).min().unwrap_or(0);
            root.push((prio, jump));
            let _ = writeln!(s, "  chain {sub} {{");
            for r in rs {
                if let Some(line) = rule_line(r) {
                    let _ = writeln!(s, "    {line}");
                }
            }
            s.push_str("  }\n");
        }
        root.sort_by_key(|(p, _)| *p);
        let _ = writeln!(s, "  chain {dir}-root {{");
        for (_, line) in root {
            let _ = writeln!(s, "    {line}");
        }
        s.push_str("  }\n");
    }
    for (hook, tests) in [
        ("forward", &[("iifname", "out"), ("oifname", "in")][..]),
        ("input", &[("iifname", "out")][..]),
        ("output", &[("oifname", "in")][..]),
    ] {
        let _ = writeln!(
            s,
            "  chain {hook} {{\n    type filter hook {hook} priority -200; policy accept;"
        );
        for (test, dir) in tests {
            let _ = writeln!(s, "    {test} {q} jump {dir}-root");
        }
        s.push_str("  }\n");
    }
    s.push_str("}\n");
    s
}

fn rule_line(r: &Rule) -> Option<String> {
    let m = matches(r)?;
    let mut line = m.join(" ");
    let v = verdict(&r.action);
    if !v.is_empty() {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(v);
    }
    if line.is_empty() {
        line.push_str("counter");
    }
    if let Some(c) = r.attrs.get("comment") {
        let _ = write!(line, " comment {}", quote(c));
    }
    Some(line)
}

/// The script that removes the device's table (one that is not there is fine).
pub fn remove_script(dev: &str) -> String {
    let t = table(dev);
    format!("table bridge {t}\ndelete table bridge {t}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(action: &str, dir: &str, chain: &str, proto: &str, attrs: &[(&str, &str)]) -> Rule {
        Rule {
            action: action.into(),
            direction: dir.into(),
            priority: 500,
            chain: chain.into(),
            chain_priority: match chain {
                "mac" => -800,
                "ipv4" => -700,
                _ => 0,
            },
            proto: proto.into(),
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            negated: Default::default(),
        }
    }

    #[test]
    fn rules_become_chains() {
        let rules = vec![
            rule(
                "return",
                "out",
                "mac",
                "mac",
                &[("srcmacaddr", "52:54:00:00:00:01")],
            ),
            rule("drop", "out", "mac", "mac", &[]),
            rule("return", "out", "ipv4", "ip", &[("srcipaddr", "10.0.0.5")]),
            rule("drop", "out", "ipv4", "ip", &[]),
            rule(
                "accept",
                "in",
                "root",
                "udp",
                &[("srcportstart", "67"), ("dstportstart", "68")],
            ),
        ];
        let s = script("vnet0", &rules);
        if let Ok(p) = std::env::var("VIREO_NFT_DUMP") {
            std::fs::write(p, &s).unwrap();
        }
        assert!(s.contains("table bridge vireo-nwf-vnet0 {"), "{s}");
        assert!(
            s.contains(
                "chain out-mac {\n    ether saddr == 52:54:00:00:00:01 return\n    drop\n  }"
            ),
            "{s}"
        );
        assert!(
            s.contains("ether type ip ip saddr == 10.0.0.5 return"),
            "{s}"
        );
        assert!(
            s.contains("chain out-root {\n    jump out-mac\n    ether type ip jump out-ipv4\n  }"),
            "{s}"
        );
        assert!(
            s.contains("ether type ip ip protocol udp th sport == 67 th dport == 68 accept"),
            "{s}"
        );
        assert!(s.contains("iifname \"vnet0\" jump out-root"), "{s}");
    }
}
