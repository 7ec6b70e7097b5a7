//! What this host's QEMU offers: version, machine types, and the capabilities XML.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use vireo_driver::host::NodeInfo;

/// One machine type QEMU offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub name: String,
    /// For an alias such as `pc`, the versioned type it stands for.
    pub canonical: Option<String>,
    pub max_cpus: u32,
}

#[derive(Debug, Clone)]
pub struct QemuCaps {
    pub emulator: PathBuf,
    /// libvirt's encoding: major * 1,000,000 + minor * 1,000 + micro.
    pub version: u64,
    pub machines: Vec<Machine>,
    pub kvm: bool,
}

impl QemuCaps {
    /// Probes `emulator` (no guest is started). A missing emulator gives version 0 and a
    /// fallback machine list, so definitions can still be managed.
    pub fn probe(emulator: &Path) -> QemuCaps {
        let version = Command::new(emulator)
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| parse_version(&String::from_utf8_lossy(&o.stdout)))
            .unwrap_or(0);
        let machines = Command::new(emulator)
            .args(["-machine", "help"])
            .output()
            .ok()
            .map(|o| parse_machines(&String::from_utf8_lossy(&o.stdout)))
            .filter(|m| !m.is_empty())
            .unwrap_or_else(fallback_machines);
        QemuCaps {
            emulator: emulator.to_path_buf(),
            version,
            machines,
            kvm: Path::new("/dev/kvm").exists(),
        }
    }

    /// The versioned machine type an alias (or a name) resolves to.
    pub fn canonical_machine(&self, name: &str) -> Option<String> {
        self.machines
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.canonical.clone().unwrap_or_else(|| m.name.clone()))
    }

    /// The capabilities XML (libvirt's format) for this host.
    pub fn capabilities_xml(&self, host_uuid: &str, node: &NodeInfo) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "<capabilities>\n\n  <host>");
        let _ = writeln!(s, "    <uuid>{host_uuid}</uuid>");
        let _ = writeln!(
            s,
            "    <cpu>\n      <arch>{}</arch>",
            xml_escape(&node.model)
        );
        let _ = writeln!(
            s,
            "      <topology sockets='{}' dies='1' cores='{}' threads='{}'/>\n    </cpu>",
            node.sockets, node.cores, node.threads
        );
        let _ = writeln!(s, "    <iommu support='no'/>");
        let _ = writeln!(
            s,
            "    <migration_features>\n      <live/>\n      <uri_transports>\n        <uri_transport>tcp</uri_transport>\n        <uri_transport>rdma</uri_transport>\n      </uri_transports>\n    </migration_features>"
        );
        let _ = writeln!(
            s,
            "    <topology>\n      <cells num='1'>\n        <cell id='0'>"
        );
        let _ = writeln!(
            s,
            "          <memory unit='KiB'>{}</memory>",
            node.memory_kib
        );
        let _ = writeln!(s, "          <cpus num='{}'>", node.cpus);
        let per_core = node.threads.max(1);
        for i in 0..node.cpus {
            let _ = writeln!(
                s,
                "            <cpu id='{i}' socket_id='{}' die_id='0' core_id='{}' siblings='{i}'/>",
                i / (node.cores * per_core).max(1),
                (i / per_core) % node.cores.max(1)
            );
        }
        let _ = writeln!(
            s,
            "          </cpus>\n        </cell>\n      </cells>\n    </topology>"
        );
        let _ = writeln!(
            s,
            "    <secmodel>\n      <model>none</model>\n      <doi>0</doi>\n    </secmodel>\n  </host>\n"
        );
        let _ = writeln!(
            s,
            "  <guest>\n    <os_type>hvm</os_type>\n    <arch name='x86_64'>"
        );
        let _ = writeln!(s, "      <wordsize>64</wordsize>");
        let _ = writeln!(
            s,
            "      <emulator>{}</emulator>",
            xml_escape(&self.emulator.to_string_lossy())
        );
        for m in self
            .machines
            .iter()
            .filter(|m| crate::cmdline::supported_machine(m))
        {
            match &m.canonical {
                Some(c) => {
                    let _ = writeln!(
                        s,
                        "      <machine canonical='{}' maxCpus='{}'>{}</machine>",
                        xml_escape(c),
                        m.max_cpus,
                        xml_escape(&m.name)
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        "      <machine maxCpus='{}'>{}</machine>",
                        m.max_cpus,
                        xml_escape(&m.name)
                    );
                }
            }
        }
        let _ = writeln!(s, "      <domain type='qemu'/>");
        if self.kvm {
            let _ = writeln!(s, "      <domain type='kvm'/>");
        }
        let _ = writeln!(s, "    </arch>");
        let _ = writeln!(
            s,
            "    <features>\n      <acpi default='on' toggle='yes'/>\n      <apic default='on' toggle='no'/>\n      <cpuselection/>\n      <deviceboot/>\n      <disksnapshot default='on' toggle='no'/>\n    </features>\n  </guest>\n\n</capabilities>"
        );
        s
    }
}

pub fn parse_version(s: &str) -> Option<u64> {
    let v = s.split("version ").nth(1)?.split_whitespace().next()?;
    let mut it = v.split('.').map(|p| p.parse::<u64>().ok());
    let major = it.next()??;
    let minor = it.next().flatten().unwrap_or(0);
    let micro = it.next().flatten().unwrap_or(0);
    Some(major * 1_000_000 + minor * 1_000 + micro)
}

/// Parses `qemu-system-x86_64 -machine help`.
pub fn parse_machines(s: &str) -> Vec<Machine> {
    let mut out = Vec::new();
    for line in s.lines().skip(1) {
        let mut parts = line.splitn(2, char::is_whitespace);
        let Some(name) = parts.next().filter(|n| !n.is_empty()) else {
            continue;
        };
        if name == "none" {
            continue;
        }
        let rest = parts.next().unwrap_or("");
        let canonical = rest
            .split("(alias of ")
            .nth(1)
            .and_then(|r| r.split(')').next())
            .map(str::to_string);
        let max_cpus =
            if name.contains("q35") || canonical.as_deref().is_some_and(|c| c.contains("q35")) {
                288
            } else {
                255
            };
        out.push(Machine {
            name: name.to_string(),
            canonical,
            max_cpus,
        });
    }
    out
}

fn fallback_machines() -> Vec<Machine> {
    let m = |n: &str, c: Option<&str>, max| Machine {
        name: n.into(),
        canonical: c.map(Into::into),
        max_cpus: max,
    };
    vec![
        m("pc-i440fx-7.2", None, 255),
        m("pc", Some("pc-i440fx-7.2"), 255),
        m("pc-q35-7.2", None, 288),
        m("q35", Some("pc-q35-7.2"), 288),
    ]
}

pub fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '\'' => o.push_str("&apos;"),
            '"' => o.push_str("&quot;"),
            c => o.push(c),
        }
    }
    o
}

/// The host's UUID: the SMBIOS one when readable, else derived from `/etc/machine-id`.
pub fn host_uuid() -> String {
    if let Ok(s) = std::fs::read_to_string("/sys/class/dmi/id/product_uuid") {
        if let Ok(u) = uuid::Uuid::parse_str(s.trim()) {
            return u.hyphenated().to_string();
        }
    }
    if let Ok(s) = std::fs::read_to_string("/etc/machine-id") {
        if let Ok(u) = uuid::Uuid::parse_str(s.trim()) {
            return u.hyphenated().to_string();
        }
    }
    uuid::Uuid::nil().hyphenated().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_and_machines() {
        assert_eq!(
            parse_version("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)\n"),
            Some(7_002_022)
        );
        let m = parse_machines(
            "Supported machines are:\npc                   Standard PC (i440FX + PIIX, 1996) (alias of pc-i440fx-7.2)\npc-i440fx-7.2        Standard PC (i440FX + PIIX, 1996) (default)\nq35                  Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-7.2)\npc-q35-7.2           Standard PC (Q35 + ICH9, 2009)\nnone                 empty machine\n",
        );
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].canonical.as_deref(), Some("pc-i440fx-7.2"));
        assert_eq!(m[2].max_cpus, 288);
    }
}
