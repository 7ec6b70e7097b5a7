//! Facts about the host: what `virsh nodeinfo` and `virsh hostname` show.

use std::fs;

/// `virNodeInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub model: String,
    pub memory_kib: u64,
    pub cpus: u32,
    pub mhz: u32,
    pub nodes: u32,
    pub sockets: u32,
    pub cores: u32,
    pub threads: u32,
}

pub fn node_info() -> NodeInfo {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    parse_node_info(&cpuinfo, &meminfo, std::env::consts::ARCH, online_nodes())
}

fn online_nodes() -> u32 {
    // "0" or "0-3" or "0,2"
    let s = fs::read_to_string("/sys/devices/system/node/online").unwrap_or_default();
    let n: u32 = s
        .trim()
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('-') {
            Some((a, b)) => {
                let a: u32 = a.parse().unwrap_or(0);
                let b: u32 = b.parse().unwrap_or(a);
                b.saturating_sub(a) + 1
            }
            None => 1,
        })
        .sum();
    n.max(1)
}

/// The host's CPUs for `virNodeGetCPUMap`: how many there are (the highest present
/// index + 1), and which are online.
pub fn cpu_map() -> (u32, Vec<u32>) {
    let read =
        |f: &str| fs::read_to_string(format!("/sys/devices/system/cpu/{f}")).unwrap_or_default();
    let online = parse_cpu_list(&read("online"));
    let present = parse_cpu_list(&read("present"));
    let count = present
        .iter()
        .chain(&online)
        .max()
        .map_or(node_info().cpus.max(1), |m| m + 1);
    let online = if online.is_empty() {
        (0..count).collect()
    } else {
        online
    };
    (count, online)
}

/// A kernel CPU list ("0-3,8,10-11"); at most 65,536 CPUs are read.
pub fn parse_cpu_list(s: &str) -> Vec<u32> {
    const MAX: u32 = 65_536;
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<u32>(), b.trim().parse::<u32>()),
            None => (part.trim().parse::<u32>(), part.trim().parse::<u32>()),
        };
        if let (Ok(a), Ok(b)) = (a, b) {
            out.extend((a..=b.min(MAX)).take(MAX as usize));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Builds node info from `/proc/cpuinfo` and `/proc/meminfo` text.
pub fn parse_node_info(cpuinfo: &str, meminfo: &str, arch: &str, nodes: u32) -> NodeInfo {
    let mut cpus = 0u32;
    let mut mhz = 0f64;
    let mut sockets = std::collections::BTreeSet::new();
    let mut cores_per_socket = 0u32;
    let mut siblings = 0u32;
    for line in cpuinfo.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "processor" => cpus += 1,
            "cpu MHz" if mhz == 0.0 => mhz = v.parse().unwrap_or(0.0),
            "physical id" => {
                sockets.insert(v.to_string());
            }
            "cpu cores" => cores_per_socket = v.parse().unwrap_or(0),
            "siblings" => siblings = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    let cpus = cpus.max(1);
    let nsockets = (sockets.len() as u32).max(1);
    let cores = if cores_per_socket > 0 {
        cores_per_socket
    } else {
        cpus / nsockets
    }
    .max(1);
    let threads = if siblings > 0 && cores_per_socket > 0 {
        (siblings / cores_per_socket).max(1)
    } else {
        1
    };
    // libvirt reports sockets per NUMA node.
    let sockets_per_node = (nsockets / nodes.max(1)).max(1);
    let memory_kib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    NodeInfo {
        model: arch.to_string(),
        memory_kib,
        cpus,
        mhz: mhz as u32,
        nodes: nodes.max(1),
        sockets: sockets_per_node,
        cores,
        threads,
    }
}

/// The host name, as `gethostname` gives it.
pub fn hostname() -> String {
    let uts = rustix::system::uname();
    let name = uts.nodename().to_string_lossy();
    if name.is_empty() {
        return "localhost".into();
    }
    name.into_owned()
}

#[cfg(test)]
mod tests {

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,8,10-11\n"), [0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpu_list("0"), [0]);
        assert!(parse_cpu_list("").is_empty());
        assert!(parse_cpu_list("x-y").is_empty());
        assert_eq!(parse_cpu_list("0-4294967295").len(), 65_536);
    }

    use super::*;

    #[test]
    fn parses_two_socket_host() {
        let mut cpu = String::new();
        for i in 0..8 {
            cpu.push_str(&format!(
                "processor\t: {i}\ncpu MHz\t\t: 2400.123\nphysical id\t: {}\nsiblings\t: 4\ncpu cores\t: 2\n\n",
                i / 4
            ));
        }
        let n = parse_node_info(&cpu, "MemTotal:       16384000 kB\n", "x86_64", 1);
        assert_eq!(
            n,
            NodeInfo {
                model: "x86_64".into(),
                memory_kib: 16384000,
                cpus: 8,
                mhz: 2400,
                nodes: 1,
                sockets: 2,
                cores: 2,
                threads: 2
            }
        );
    }

    #[test]
    fn survives_empty_proc() {
        let n = parse_node_info("", "", "x86_64", 1);
        assert_eq!(n.cpus, 1);
        assert_eq!(n.memory_kib, 0);
    }
}
