//! setmem, setmaxmem, setvcpus, vcpuinfo, domifaddr, send-key and domcapabilities, each
//! printing what virsh prints for it.

use anyhow::{anyhow, bail, Context, Result};
use vireo_client::{Connect, Domain};
use vireo_proto::remote::{affect, ifaddr_source, MEM_MAXIMUM, VCPU_MAXIMUM};

use crate::args::Args;

pub const COMMANDS: [&str; 7] = [
    "setmem",
    "setmaxmem",
    "setvcpus",
    "vcpuinfo",
    "domifaddr",
    "send-key",
    "domcapabilities",
];

/// (switches, valued options) of each command.
pub(crate) fn options(cmd: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    Some(match cmd {
        "setmem" | "setmaxmem" => (&["--live", "--config", "--current"], &[]),
        "setvcpus" => (&["--live", "--config", "--current", "--maximum"], &[]),
        "vcpuinfo" => (&[], &[]),
        "domifaddr" => (&["--full"], &["--source", "--interface"]),
        "send-key" => (&[], &["--codeset", "--holdtime"]),
        "domcapabilities" => (&[], &["--machine", "--virttype"]),
        _ => return None,
    })
}

pub async fn run(uri: &str, readonly: bool, cmd: &str, rest: &[String]) -> Result<()> {
    let (switches, valued) = options(cmd).ok_or_else(|| anyhow!("unknown command: '{cmd}'"))?;
    let a = Args::parse(cmd, rest, switches, valued)?;
    let mut affect_flags = 0;
    if a.has("--live") {
        affect_flags |= affect::LIVE;
    }
    if a.has("--config") {
        affect_flags |= affect::CONFIG;
    }
    if a.has("--current") && affect_flags != 0 {
        bail!("Options --current and --live/--config are mutually exclusive");
    }
    let c = Connect::open(uri, readonly)
        .await
        .context("failed to connect to the hypervisor")?;
    match cmd {
        "setmem" | "setmaxmem" => {
            let p = a.positionals(&["domain", "size"], 2)?;
            let (dom, size) = (p[0].unwrap_or_default(), p[1].unwrap_or_default());
            let d = domain(&c, dom).await?;
            let kib = kib(size)?;
            let flags = if cmd == "setmaxmem" {
                affect_flags | MEM_MAXIMUM
            } else if affect_flags == 0 && !a.has("--current") {
                // virsh's setmem without a flag is virDomainSetMemory: the running guest.
                affect::LIVE
            } else {
                affect_flags
            };
            c.set_memory(&d, kib, flags).await.with_context(|| {
                if cmd == "setmem" {
                    "Unable to change memory of virtual machine".to_string()
                } else {
                    "Unable to change MaxMemorySize".to_string()
                }
            })?;
            println!();
        }
        "setvcpus" => {
            let p = a.positionals(&["domain", "count"], 2)?;
            let (dom, count) = (p[0].unwrap_or_default(), p[1].unwrap_or_default());
            let d = domain(&c, dom).await?;
            let n: u32 = count
                .parse()
                .map_err(|_| anyhow!("Invalid number of virtual CPUs"))?;
            let mut flags = affect_flags;
            if a.has("--maximum") {
                flags |= VCPU_MAXIMUM;
            }
            if flags == 0 && !a.has("--current") {
                flags = affect::LIVE;
            }
            c.set_vcpus(&d, n, flags).await?;
            println!();
        }
        "vcpuinfo" => {
            let d = domain(&c, a.one("domain")?).await?;
            let info = c.info(&d).await?;
            let host = c.host_cpus().await?.max(1);
            let maplen = (host + 7) / 8;
            let n = i32::try_from(info.nr_virt_cpu).unwrap_or(i32::MAX);
            let (vcpus, maps) = c.vcpus(&d, n, maplen).await?;
            for (i, v) in vcpus.iter().enumerate() {
                println!("{:<15} {}", "VCPU:", v.number);
                println!("{:<15} {}", "CPU:", v.cpu);
                let state = match v.state {
                    0 => "offline",
                    1 => "running",
                    2 => "blocked",
                    _ => "no state",
                };
                println!("{:<15} {state}", "State:");
                if v.cpu_time > 0 {
                    println!("{:<15} {:.1}s", "CPU time:", v.cpu_time as f64 / 1e9);
                }
                let map = maps
                    .get(i * maplen as usize..(i + 1) * maplen as usize)
                    .unwrap_or_default();
                let affinity: String = (0..host as usize)
                    .map(|cpu| {
                        let set = map.get(cpu / 8).is_some_and(|b| b & (1 << (cpu % 8)) != 0);
                        if set {
                            'y'
                        } else {
                            '-'
                        }
                    })
                    .collect();
                println!("{:<15} {affinity}", "CPU Affinity:");
                println!();
            }
        }
        "domifaddr" => {
            let d = domain(&c, a.one("domain")?).await?;
            let source = match a.value("--source") {
                None | Some("lease") => ifaddr_source::LEASE,
                Some("agent") => ifaddr_source::AGENT,
                Some("arp") => ifaddr_source::ARP,
                Some(other) => bail!("Unknown data source '{other}'"),
            };
            let ifaces = c
                .interface_addresses(&d, source)
                .await
                .context("Failed to query for interfaces addresses")?;
            println!(" Name       MAC address          Protocol     Address");
            println!("{}", "-".repeat(79));
            let only = a.value("--interface");
            for i in ifaces.iter().filter(|i| only.is_none_or(|n| n == i.name)) {
                for (k, addr) in i.addrs.0.iter().enumerate() {
                    let proto = if addr.type_ == 0 { "ipv4" } else { "ipv6" };
                    let (name, mac) = if k == 0 || a.has("--full") {
                        (i.name.as_str(), i.hwaddr.as_deref().unwrap_or("N/A"))
                    } else {
                        ("-", "-")
                    };
                    println!(
                        " {name:<10} {mac:<19}  {proto:<12} {}/{}",
                        addr.addr, addr.prefix
                    );
                }
            }
            println!();
        }
        "send-key" => {
            let codeset = match a.value("--codeset").unwrap_or("linux") {
                "linux" => 0,
                "xt" => 1,
                "atset1" => 2,
                "xt_kbd" => 6,
                "rfb" => 9,
                "qnum" => 10,
                other => bail!("unknown codeset: '{other}'"),
            };
            let hold: u32 = match a.value("--holdtime") {
                Some(h) => h
                    .parse()
                    .map_err(|_| anyhow!("invalid value of --holdtime"))?,
                None => 0,
            };
            // The domain, then the keys.
            let Some((dom, keys)) = a.all_positionals().split_first() else {
                bail!("command 'send-key' requires <domain> option");
            };
            if keys.is_empty() {
                bail!("command 'send-key' requires <keycode> option");
            }
            let d = domain(&c, dom).await?;
            let mut codes = Vec::with_capacity(keys.len());
            for k in keys {
                codes.push(keycode(codeset, k)?);
            }
            c.send_key(&d, codeset, hold, &codes).await?;
            println!();
        }
        _ => {
            a.none()?;
            let xml = c
                .domain_capabilities(a.value("--machine"), a.value("--virttype"))
                .await
                .context("failed to get emulator capabilities")?;
            println!("{xml}\n");
        }
    }
    Ok(())
}

async fn domain(c: &Connect, key: &str) -> Result<Domain> {
    c.lookup(key)
        .await
        .with_context(|| format!("failed to get domain '{key}'"))
}

/// virsh's memory sizes: a number in KiB, or with a unit (`96M`, `1G`).
fn kib(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| anyhow!("Invalid memory size"))?;
    let bytes = if unit.is_empty() {
        n.checked_mul(1024)
    } else {
        vireo_xml::unit_multiplier(unit).and_then(|m| n.checked_mul(m))
    }
    .ok_or_else(|| anyhow!("Invalid memory size"))?;
    Ok(bytes / 1024)
}

/// A key: a number, or (linux codeset) a `KEY_` name of the keys with plain names.
fn keycode(codeset: u32, k: &str) -> Result<u32> {
    let num = if let Some(hex) = k.strip_prefix("0x") {
        u32::from_str_radix(hex, 16).ok()
    } else {
        k.parse().ok()
    };
    if let Some(n) = num {
        return Ok(n);
    }
    if codeset != 0 {
        bail!("invalid keycode: '{k}'");
    }
    let name = k.strip_prefix("KEY_").unwrap_or(k);
    // Linux input codes of the main block, row by row.
    const ROWS: [(&str, u32); 4] = [
        ("1234567890", 2),
        ("QWERTYUIOP", 16),
        ("ASDFGHJKL", 30),
        ("ZXCVBNM", 44),
    ];
    if name.len() == 1 {
        for (row, first) in ROWS {
            if let Some(i) = row.find(name) {
                return Ok(first + i as u32);
            }
        }
    }
    const NAMED: [(&str, u32); 16] = [
        ("ESC", 1),
        ("BACKSPACE", 14),
        ("TAB", 15),
        ("ENTER", 28),
        ("LEFTCTRL", 29),
        ("LEFTSHIFT", 42),
        ("RIGHTSHIFT", 54),
        ("LEFTALT", 56),
        ("SPACE", 57),
        ("DELETE", 111),
        ("UP", 103),
        ("DOWN", 108),
        ("LEFT", 105),
        ("RIGHT", 106),
        ("LEFTMETA", 125),
        ("POWER", 116),
    ];
    if let Some(f) = name.strip_prefix('F').and_then(|n| n.parse::<u32>().ok()) {
        match f {
            1..=10 => return Ok(58 + f),
            11 | 12 => return Ok(76 + f),
            _ => {}
        }
    }
    NAMED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| *c)
        .ok_or_else(|| anyhow!("invalid keycode: '{k}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_and_sizes() {
        assert_eq!(keycode(0, "KEY_A").unwrap(), 30);
        assert_eq!(keycode(0, "KEY_1").unwrap(), 2);
        assert_eq!(keycode(0, "KEY_0").unwrap(), 11);
        assert_eq!(keycode(0, "KEY_M").unwrap(), 50);
        assert_eq!(keycode(0, "KEY_F1").unwrap(), 59);
        assert_eq!(keycode(0, "KEY_F12").unwrap(), 88);
        assert_eq!(keycode(0, "KEY_LEFTCTRL").unwrap(), 29);
        assert_eq!(keycode(10, "0x1e").unwrap(), 0x1e);
        assert!(keycode(10, "KEY_A").is_err());
        assert!(keycode(0, "KEY_NOPE").is_err());
        assert_eq!(kib("96M").unwrap(), 98304);
        assert_eq!(kib("1024").unwrap(), 1024);
        assert!(kib("x").is_err());
    }
}
