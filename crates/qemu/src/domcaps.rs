//! Domain capabilities (`virsh domcapabilities`, `virConnectGetDomainCapabilities`): what a
//! guest of one emulator, architecture, machine type and virtualization type may use, in
//! libvirt's format. Tools (virt-install, virt-manager) choose their defaults from it, so it
//! offers what Vireo runs, not everything QEMU could: a value listed here is one the
//! command line builder accepts.

use std::fmt::Write as _;
use std::process::Command;

use vireo_driver::{DriverError, Result};

use crate::caps::{xml_escape, QemuCaps};
use crate::pci::{machine_family, Family};

/// The CPU models `qemu -cpu help` names (without `host`, `max` and `base`, which are
/// modes, not models).
pub fn probe_cpu_models(emulator: &std::path::Path) -> Vec<String> {
    Command::new(emulator)
        .args(["-cpu", "help"])
        .output()
        .ok()
        .map(|o| parse_cpu_models(&String::from_utf8_lossy(&o.stdout)))
        .unwrap_or_default()
}

fn parse_cpu_models(help: &str) -> Vec<String> {
    help.lines()
        .filter_map(|l| l.strip_prefix("x86 "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|m| !matches!(*m, "host" | "max" | "base"))
        .map(str::to_string)
        .collect()
}

/// What the caller asked about; `None` is the default.
#[derive(Debug, Default, Clone)]
pub struct Query<'a> {
    pub emulator: Option<&'a str>,
    pub arch: Option<&'a str>,
    pub machine: Option<&'a str>,
    pub virttype: Option<&'a str>,
}

/// The capabilities XML for `q`, or libvirt's errors for what this host cannot do.
pub fn domain_capabilities(
    caps: &QemuCaps,
    cpu_models: &[String],
    cpu_defs: &crate::cpumodel::CpuModels,
    q: &Query,
) -> Result<String> {
    let emulator = caps.emulator.to_string_lossy();
    if let Some(e) = q.emulator.filter(|e| *e != emulator) {
        return Err(DriverError::InvalidArg(format!(
            "emulator '{e}' is not available; this host's is '{emulator}'"
        )));
    }
    if let Some(a) = q.arch.filter(|a| *a != "x86_64") {
        return Err(DriverError::ConfigUnsupported(format!(
            "Emulator '{emulator}' does not support arch '{a}'"
        )));
    }
    let virttype = q.virttype.unwrap_or(if caps.kvm { "kvm" } else { "qemu" });
    match virttype {
        "qemu" => {}
        "kvm" if caps.kvm => {}
        "kvm" => {
            return Err(DriverError::ConfigUnsupported(format!(
                "KVM is not supported by '{emulator}' on this host"
            )))
        }
        other => {
            return Err(DriverError::InvalidArg(format!(
                "unknown virttype: {other}"
            )));
        }
    }
    let asked = q.machine.unwrap_or("pc");
    let m = caps
        .machines
        .iter()
        .find(|m| m.name == asked)
        .filter(|m| crate::cmdline::supported_machine(m))
        .ok_or_else(|| {
            DriverError::InvalidArg(format!(
                "the machine '{asked}' is not supported by emulator '{emulator}'"
            ))
        })?;
    let canonical = m.canonical.clone().unwrap_or_else(|| m.name.clone());
    let q35 = machine_family(&canonical) == Some(Family::Q35);
    let kvm = virttype == "kvm";

    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "<domainCapabilities>");
    let _ = writeln!(w, "  <path>{}</path>", xml_escape(&emulator));
    let _ = writeln!(w, "  <domain>{virttype}</domain>");
    let _ = writeln!(w, "  <machine>{}</machine>", xml_escape(&canonical));
    let _ = writeln!(w, "  <arch>x86_64</arch>");
    let _ = writeln!(w, "  <vcpu max='{}'/>", m.max_cpus);
    let _ = writeln!(w, "  <iothreads supported='yes'/>");
    // UEFI when Debian's OVMF is installed (`crates/qemu/src/firmware.rs`); secure boot
    // on q35 only (it needs SMM).
    let _ = writeln!(w, "  <os supported='yes'>");
    match crate::firmware::ovmf() {
        Some([code, code_secure, ..]) => {
            enum_values(w, 4, "firmware", &["efi"]);
            let _ = writeln!(w, "    <loader supported='yes'>");
            let q35 = crate::pci::machine_family(&canonical) == Some(crate::pci::Family::Q35);
            let mut paths = vec![code.display().to_string()];
            if q35 {
                paths.push(code_secure.display().to_string());
            }
            for p in &paths {
                let _ = writeln!(w, "      <value>{}</value>", xml_escape(p));
            }
            enum_values(w, 6, "type", &["rom", "pflash"]);
            enum_values(w, 6, "readonly", &["yes", "no"]);
            let secure: &[&str] = if q35 { &["yes", "no"] } else { &["no"] };
            enum_values(w, 6, "secure", secure);
            let _ = writeln!(w, "    </loader>");
        }
        None => {
            let _ = writeln!(w, "    <enum name='firmware'/>");
            let _ = writeln!(w, "    <loader supported='no'/>");
        }
    }
    let _ = writeln!(w, "  </os>");

    let _ = writeln!(w, "  <cpu>");
    let _ = writeln!(
        w,
        "    <mode name='host-passthrough' supported='{}'>",
        yes(kvm)
    );
    if kvm {
        enum_values(w, 6, "hostPassthroughMigratable", &["on", "off"]);
    }
    let _ = writeln!(w, "    </mode>");
    let _ = writeln!(w, "    <mode name='maximum' supported='yes'>");
    enum_values(w, 6, "maximumMigratable", &["on", "off"]);
    let _ = writeln!(w, "    </mode>");
    // host-model: the richest named model within what the host gives a guest (QEMU's
    // `host` under KVM, `max` under TCG), and the host's features beyond it.
    match cpu_defs.host_model() {
        Some((m, extra)) => {
            let _ = writeln!(w, "    <mode name='host-model' supported='yes'>");
            let _ = writeln!(
                w,
                "      <model fallback='forbid'>{}</model>",
                xml_escape(&m.name)
            );
            if let Some(v) = cpu_defs.host_vendor.as_ref().or(m.vendor.as_ref()) {
                let _ = writeln!(w, "      <vendor>{}</vendor>", xml_escape(v));
            }
            for f in extra {
                let _ = writeln!(
                    w,
                    "      <feature policy='require' name='{}'/>",
                    xml_escape(f)
                );
            }
            let _ = writeln!(w, "    </mode>");
        }
        None => {
            let _ = writeln!(w, "    <mode name='host-model' supported='yes'/>");
        }
    }
    let _ = writeln!(w, "    <mode name='custom' supported='yes'>");
    for model in cpu_models {
        // Whether the accelerator has every feature of a model is not probed.
        let _ = writeln!(
            w,
            "      <model usable='unknown' vendor='{}'>{}</model>",
            vendor_of(model),
            xml_escape(model)
        );
    }
    let _ = writeln!(w, "    </mode>");
    let _ = writeln!(w, "  </cpu>");
    let _ = writeln!(w, "  <memoryBacking supported='yes'>");
    enum_values(w, 4, "sourceType", &["anonymous", "memfd"]);
    let _ = writeln!(w, "  </memoryBacking>");

    let _ = writeln!(w, "  <devices>");
    let _ = writeln!(w, "    <disk supported='yes'>");
    enum_values(w, 6, "diskDevice", &["disk", "cdrom"]);
    let buses: &[&str] = if q35 {
        &["scsi", "sata", "virtio"]
    } else {
        &["ide", "scsi", "sata", "virtio"]
    };
    enum_values(w, 6, "bus", buses);
    enum_values(w, 6, "model", &["virtio"]);
    let _ = writeln!(w, "    </disk>");
    let _ = writeln!(w, "    <graphics supported='yes'>");
    enum_values(w, 6, "type", &["vnc"]);
    let _ = writeln!(w, "    </graphics>");
    let _ = writeln!(w, "    <video supported='yes'>");
    enum_values(
        w,
        6,
        "modelType",
        &["vga", "cirrus", "virtio", "qxl", "bochs", "none"],
    );
    let _ = writeln!(w, "    </video>");
    // USB devices and PCI functions (VFIO), leased from the node device driver at start.
    let _ = writeln!(w, "    <hostdev supported='yes'>");
    enum_values(w, 6, "mode", &["subsystem"]);
    enum_values(w, 6, "startupPolicy", &[]);
    enum_values(w, 6, "subsysType", &["usb", "pci"]);
    enum_values(w, 6, "capsType", &[]);
    enum_values(w, 6, "pciBackend", &["default", "vfio"]);
    let _ = writeln!(w, "    </hostdev>");
    let _ = writeln!(w, "    <rng supported='yes'>");
    enum_values(w, 6, "model", &["virtio"]);
    enum_values(w, 6, "backendModel", &["random", "builtin"]);
    let _ = writeln!(w, "    </rng>");
    // virtiofs, with QEMU 7.2's virtiofsd (`crates/shim/src/helpers.rs`).
    if std::path::Path::new("/usr/lib/qemu/virtiofsd").exists() {
        let _ = writeln!(w, "    <filesystem supported='yes'>");
        enum_values(w, 6, "driverType", &["virtiofs"]);
        let _ = writeln!(w, "    </filesystem>");
    } else {
        let _ = writeln!(w, "    <filesystem supported='no'/>");
    }
    // The emulated TPM needs Debian's swtpm; passthrough needs the host's TPM.
    if vireo_hostprog::find("swtpm").is_ok() {
        let _ = writeln!(w, "    <tpm supported='yes'>");
        enum_values(w, 6, "model", &["tpm-tis", "tpm-crb"]);
        enum_values(
            w,
            6,
            "backendModel",
            &["passthrough", "emulator", "external"],
        );
        enum_values(w, 6, "backendVersion", &["1.2", "2.0"]);
        let _ = writeln!(w, "    </tpm>");
    } else {
        let _ = writeln!(w, "    <tpm supported='no'/>");
    }
    let _ = writeln!(w, "    <redirdev supported='no'/>");
    let _ = writeln!(w, "    <channel supported='yes'>");
    enum_values(w, 6, "type", &["pty", "unix"]);
    let _ = writeln!(w, "    </channel>");
    let _ = writeln!(w, "  </devices>");

    let _ = writeln!(w, "  <features>");
    // vmcoreinfo: `<features><vmcoreinfo/>` becomes QEMU's vmcoreinfo device.
    let _ = writeln!(w, "    <gic supported='no'/>");
    let _ = writeln!(w, "    <vmcoreinfo supported='yes'/>");
    for f in ["genid", "backingStoreInput", "backup", "sev", "sgx"] {
        let _ = writeln!(w, "    <{f} supported='no'/>");
    }
    let _ = writeln!(w, "  </features>");
    let _ = writeln!(w, "</domainCapabilities>");
    Ok(s)
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn enum_values(w: &mut String, indent: usize, name: &str, values: &[&str]) {
    let pad = " ".repeat(indent);
    let _ = writeln!(w, "{pad}<enum name='{name}'>");
    for v in values {
        let _ = writeln!(w, "{pad}  <value>{v}</value>");
    }
    let _ = writeln!(w, "{pad}</enum>");
}

/// The vendor a model's name stands for (libvirt reports it beside each model).
fn vendor_of(model: &str) -> &'static str {
    const AMD: [&str; 6] = ["EPYC", "Opteron", "phenom", "athlon", "Dhyana", "EPYC-Rome"];
    if AMD.iter().any(|p| model.starts_with(p)) {
        "AMD"
    } else if model.starts_with("qemu") || model.starts_with("kvm") || model.starts_with("486") {
        "unknown"
    } else {
        "Intel"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::Machine;

    fn caps(kvm: bool) -> QemuCaps {
        let m = |name: &str, canonical: Option<&str>, max_cpus| Machine {
            name: name.into(),
            canonical: canonical.map(str::to_string),
            max_cpus,
        };
        QemuCaps {
            emulator: "/usr/bin/qemu-system-x86_64".into(),
            version: 7_002_000,
            machines: vec![
                m("pc", Some("pc-i440fx-7.2"), 255),
                m("pc-i440fx-7.2", None, 255),
                m("q35", Some("pc-q35-7.2"), 288),
                m("pc-q35-7.2", None, 288),
                m("microvm", None, 288),
            ],
            kvm,
        }
    }

    #[test]
    fn models_from_help() {
        let help =
            "Available CPUs:\nx86 486                   (alias configured by machine type)\n\
                    x86 Broadwell-v1          Intel Core Processor (Broadwell)\n\
                    x86 base                  base CPU model type\nx86 host    processor\n\
                    x86 max   all\n\nRecognized CPUID flags:\n  3dnow abm\n";
        assert_eq!(parse_cpu_models(help), ["486", "Broadwell-v1"]);
    }

    #[test]
    fn defaults_and_choices() {
        let models = vec!["qemu64".to_string(), "EPYC".to_string()];
        let x = domain_capabilities(
            &caps(false),
            &models,
            &Default::default(),
            &Query::default(),
        )
        .unwrap();
        assert!(x.contains("<domain>qemu</domain>"), "{x}");
        assert!(x.contains("<machine>pc-i440fx-7.2</machine>"), "{x}");
        assert!(x.contains("<vcpu max='255'/>"), "{x}");
        assert!(
            x.contains("<mode name='host-passthrough' supported='no'>"),
            "{x}"
        );
        assert!(
            x.contains("<model usable='unknown' vendor='AMD'>EPYC</model>"),
            "{x}"
        );
        assert!(x.contains("<value>ide</value>"), "{x}");
        let q = Query {
            machine: Some("q35"),
            virttype: Some("kvm"),
            ..Default::default()
        };
        let x = domain_capabilities(&caps(true), &models, &Default::default(), &q).unwrap();
        assert!(x.contains("<machine>pc-q35-7.2</machine>"), "{x}");
        assert!(
            x.contains("<mode name='host-passthrough' supported='yes'>"),
            "{x}"
        );
        assert!(!x.contains("<value>ide</value>"), "{x}");
    }

    #[test]
    fn refusals() {
        let c = caps(false);
        let e = |q: Query| {
            domain_capabilities(&c, &[], &Default::default(), &q)
                .unwrap_err()
                .to_string()
        };
        assert!(e(Query {
            virttype: Some("kvm"),
            ..Default::default()
        })
        .contains("KVM is not supported"));
        assert!(e(Query {
            virttype: Some("xen"),
            ..Default::default()
        })
        .contains("unknown virttype: xen"));
        assert!(e(Query {
            arch: Some("aarch64"),
            ..Default::default()
        })
        .contains("does not support arch 'aarch64'"));
        assert!(e(Query {
            machine: Some("microvm"),
            ..Default::default()
        })
        .contains("the machine 'microvm' is not supported"));
        assert!(e(Query {
            emulator: Some("/usr/bin/other"),
            ..Default::default()
        })
        .contains("is not available"));
    }
}
