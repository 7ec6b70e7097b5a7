//! CPU models as QEMU defines them: what each named model has (QEMU's static expansion),
//! what the host gives a guest (the full expansion of `host` under KVM, `max` under TCG),
//! and from those the host-model CPU domain capabilities offer, `virsh cpu-compare` /
//! `hypervisor-cpu-compare` and `cpu-baseline` / `hypervisor-cpu-baseline`. x86 QEMU has
//! no comparison or baseline command of its own: both are worked out here from its model
//! definitions, feature by feature.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use vireo_driver::{DriverError, Result};

/// libvirt's comparison results.
pub const INCOMPATIBLE: i32 = 0;
pub const IDENTICAL: i32 = 1;
pub const SUPERSET: i32 = 2;

/// One named model: its CPUID features, its vendor, and whether this host can run it.
#[derive(Debug, Clone)]
pub struct Model {
    pub name: String,
    pub features: BTreeSet<String>,
    pub vendor: Option<String>,
    pub usable: bool,
}

/// QEMU's models and the host's CPU, probed once.
#[derive(Debug, Clone, Default)]
pub struct CpuModels {
    pub models: Vec<Model>,
    /// The features a guest of this host can have.
    pub host: BTreeSet<String>,
    pub host_vendor: Option<String>,
}

/// A CPU definition as a client gives it (`<cpu>` of a domain or of the capabilities).
#[derive(Debug, Default)]
struct GivenCpu {
    mode: Option<String>,
    model: Option<String>,
    vendor: Option<String>,
    require: BTreeSet<String>,
    disable: BTreeSet<String>,
    forbid: BTreeSet<String>,
}

/// "GenuineIntel" → "Intel", as libvirt names vendors.
fn vendor_name(v: &str) -> String {
    match v {
        "GenuineIntel" => "Intel".into(),
        "AuthenticAMD" => "AMD".into(),
        other => other.into(),
    }
}

/// A QMP conversation with a QEMU that runs no machine, over its stdio.
struct Probe {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Probe {
    fn start(emulator: &Path, accel: &str) -> Option<Probe> {
        let mut child = Command::new(emulator)
            .args([
                "-machine",
                "none",
                "-accel",
                accel,
                "-nodefaults",
                "-display",
                "none",
            ])
            .args(["-qmp", "stdio"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let out = BufReader::new(child.stdout.take()?);
        let mut p = Probe { child, out };
        // The greeting, then capabilities negotiation.
        let mut greeting = String::new();
        p.out.read_line(&mut greeting).ok()?;
        p.call("qmp_capabilities", None)?;
        Some(p)
    }

    fn call(&mut self, cmd: &str, args: Option<Value>) -> Option<Value> {
        let mut msg = json!({ "execute": cmd });
        if let Some(a) = args {
            msg["arguments"] = a;
        }
        let stdin = self.child.stdin.as_mut()?;
        writeln!(stdin, "{msg}").ok()?;
        loop {
            let mut line = String::new();
            if self.out.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let v: Value = serde_json::from_str(&line).ok()?;
            if let Some(r) = v.get("return") {
                return Some(r.clone());
            }
            if v.get("error").is_some() {
                return None;
            }
        }
    }

    /// The true boolean properties of a model's expansion, and its vendor.
    fn expand(
        &mut self,
        kind: &str,
        name: &str,
    ) -> Option<(BTreeSet<String>, Vec<String>, Option<String>)> {
        let r = self.call(
            "query-cpu-model-expansion",
            Some(json!({ "type": kind, "model": { "name": name } })),
        )?;
        let props = r["model"]["props"].as_object()?;
        let mut on = BTreeSet::new();
        let mut all = Vec::new();
        for (k, v) in props {
            if let Some(b) = v.as_bool() {
                all.push(k.clone());
                if b {
                    on.insert(k.clone());
                }
            }
        }
        let vendor = props.get("vendor").and_then(Value::as_str).map(vendor_name);
        Some((on, all, vendor))
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.call("quit", None);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl CpuModels {
    /// Asks `emulator` (KVM when the host has it, else TCG); empty when it cannot run.
    pub fn probe(emulator: &Path, kvm: bool) -> CpuModels {
        let mut p = None;
        if kvm {
            p = Probe::start(emulator, "kvm");
        }
        let (mut p, host_name) = match p {
            Some(p) => (p, "host"),
            None => match Probe::start(emulator, "tcg") {
                Some(p) => (p, "max"),
                None => return CpuModels::default(),
            },
        };
        let defs = p.call("query-cpu-definitions", None).unwrap_or_default();
        let mut models = Vec::new();
        let mut universe: BTreeSet<String> = BTreeSet::new();
        for d in defs.as_array().map(|a| a.as_slice()).unwrap_or_default() {
            let Some(name) = d["name"].as_str() else {
                continue;
            };
            if matches!(name, "host" | "max" | "base") {
                continue;
            }
            let usable = d["unavailable-features"]
                .as_array()
                .is_some_and(|u| u.is_empty());
            let Some((features, all, vendor)) = p.expand("static", name) else {
                continue;
            };
            universe.extend(all);
            models.push(Model {
                name: name.to_string(),
                features,
                vendor,
                usable,
            });
        }
        let (host, host_vendor) = match p.expand("full", host_name) {
            Some((on, _, v)) => (on.intersection(&universe).cloned().collect(), v),
            None => (BTreeSet::new(), None),
        };
        // Unversioned names (aliases) before their versions, then by name.
        models.sort_by(|a, b| {
            (a.name.contains("-v"), &a.name).cmp(&(b.name.contains("-v"), &b.name))
        });
        CpuModels {
            models,
            host,
            host_vendor,
        }
    }

    fn model(&self, name: &str) -> Result<&Model> {
        self.models.iter().find(|m| m.name == name).ok_or_else(|| {
            DriverError::InvalidArg(format!("CPU model '{name}' is not known to QEMU"))
        })
    }

    /// The richest model whose features are all in `set` (only usable ones when asked).
    fn best_within(&self, set: &BTreeSet<String>, usable_only: bool) -> Option<&Model> {
        self.models
            .iter()
            .filter(|m| (!usable_only || m.usable) && m.features.is_subset(set))
            .max_by(|a, b| {
                a.features
                    .len()
                    .cmp(&b.features.len())
                    // On a tie the first (an unversioned name) wins.
                    .then(std::cmp::Ordering::Greater)
            })
    }

    /// The host-model CPU: the richest usable model within the host's features, and the
    /// host's features beyond it. None when QEMU could not be asked.
    pub fn host_model(&self) -> Option<(&Model, Vec<&String>)> {
        let m = self.best_within(&self.host, true)?;
        Some((m, self.host.difference(&m.features).collect()))
    }

    /// A host-model `<cpu>` as libvirt starts it: the definition the guest runs with
    /// names the model and features host-model stands for on this host (what domain
    /// capabilities show), so that the live XML, a save image and what is restored from it
    /// keep one CPU. The domain's own features apply on top of the host's. Nothing changes
    /// for other modes, or when QEMU could not be asked.
    pub fn expand_host_model(&self, cpu: &mut vireo_xml::Cpu) {
        use vireo_xml::{CpuCheck, CpuFallback, CpuFeature, CpuFeaturePolicy, CpuMatch, CpuMode};
        if cpu.mode != Some(CpuMode::HostModel) {
            return;
        }
        let Some((m, extra)) = self.host_model() else {
            return;
        };
        let mut features: Vec<CpuFeature> = extra
            .into_iter()
            .filter(|f| !cpu.features.iter().any(|g| &g.name == *f))
            .map(|f| CpuFeature {
                policy: CpuFeaturePolicy::Require,
                name: f.clone(),
            })
            .collect();
        features.append(&mut cpu.features);
        cpu.features = features;
        cpu.mode = Some(CpuMode::Custom);
        cpu.match_mode = Some(CpuMatch::Exact);
        // What QEMU leaves out is not checked (no `enforce`), as for libvirt's host-model.
        cpu.check = Some(CpuCheck::Partial);
        cpu.migratable = None;
        cpu.model = Some(vireo_xml::CpuModel {
            fallback: Some(CpuFallback::Forbid),
            vendor_id: None,
            name: m.name.clone(),
        });
    }

    /// The features a given CPU needs, and those it must not have.
    fn needs(&self, cpu: &GivenCpu) -> Result<(BTreeSet<String>, BTreeSet<String>)> {
        let mut need = match &cpu.model {
            Some(m) => self.model(m)?.features.clone(),
            None => BTreeSet::new(),
        };
        need.extend(cpu.require.iter().cloned());
        for f in cpu.disable.iter().chain(&cpu.forbid) {
            need.remove(f);
        }
        Ok((need, cpu.forbid.clone()))
    }

    /// `virConnectCompareCPU`: how the host's CPU stands to `xml`.
    pub fn compare(&self, xml: &str, fail_incompatible: bool) -> Result<i32> {
        if self.models.is_empty() {
            return Err(DriverError::OperationFailed(
                "QEMU could not be asked about CPU models".into(),
            ));
        }
        let cpu = parse_cpu(xml)?;
        if matches!(
            cpu.mode.as_deref(),
            Some("host-passthrough" | "host-model" | "maximum")
        ) {
            return Ok(IDENTICAL);
        }
        if cpu.model.is_none() {
            return Err(DriverError::XmlInvalid("no CPU model specified".into()));
        }
        let (need, forbid) = self.needs(&cpu)?;
        let missing: Vec<&String> = need.difference(&self.host).collect();
        let forbidden: Vec<&String> = forbid.intersection(&self.host).collect();
        let vendor_differs = match (&cpu.vendor, &self.host_vendor) {
            (Some(a), Some(b)) => vendor_name(a) != *b,
            _ => false,
        };
        if !missing.is_empty() || !forbidden.is_empty() || vendor_differs {
            if fail_incompatible {
                let mut why = Vec::new();
                if !missing.is_empty() {
                    why.push(format!(
                        "Host CPU does not provide required features: {}",
                        join(&missing)
                    ));
                }
                if !forbidden.is_empty() {
                    why.push(format!(
                        "Host CPU provides forbidden features: {}",
                        join(&forbidden)
                    ));
                }
                if vendor_differs {
                    why.push("Host CPU has another vendor".into());
                }
                return Err(DriverError::Peer(Box::new(vireo_proto::RemoteError::new(
                    vireo_proto::error::code::CPU_INCOMPATIBLE,
                    vireo_proto::error::domain::CPU,
                    format!("the CPU is incompatible with host CPU: {}", why.join("; ")),
                ))));
            }
            return Ok(INCOMPATIBLE);
        }
        Ok(if need == self.host {
            IDENTICAL
        } else {
            SUPERSET
        })
    }

    /// `virConnectBaselineCPU`: the richest CPU every one of `xmls` can run (only models
    /// this host can run when `usable_only`), as a `<cpu>`; with every feature listed when
    /// `expand`.
    pub fn baseline(&self, xmls: &[String], usable_only: bool, expand: bool) -> Result<String> {
        if xmls.is_empty() {
            return Err(DriverError::InvalidArg("no CPUs were given".into()));
        }
        if self.models.is_empty() {
            return Err(DriverError::OperationFailed(
                "QEMU could not be asked about CPU models".into(),
            ));
        }
        let mut common: Option<BTreeSet<String>> = None;
        let mut vendors = BTreeSet::new();
        for x in xmls {
            let cpu = parse_cpu(x)?;
            if cpu.model.is_none() {
                return Err(DriverError::XmlInvalid("no CPU model specified".into()));
            }
            let (need, _) = self.needs(&cpu)?;
            if let Some(v) = &cpu.vendor {
                vendors.insert(vendor_name(v));
            }
            common = Some(match common {
                None => need,
                Some(c) => c.intersection(&need).cloned().collect(),
            });
        }
        let common = common.unwrap_or_default();
        let Some(m) = self.best_within(&common, usable_only) else {
            return Err(DriverError::OperationFailed(
                "no CPU model has only the features the CPUs share".into(),
            ));
        };
        let mut out = String::from("<cpu mode='custom' match='exact'>\n");
        out.push_str(&format!(
            "  <model fallback='forbid'>{}</model>\n",
            vireo_xml::escape(&m.name)
        ));
        let vendor = match vendors.len() {
            1 => vendors.into_iter().next(),
            _ => m.vendor.clone(),
        };
        if let Some(v) = vendor {
            out.push_str(&format!("  <vendor>{}</vendor>\n", vireo_xml::escape(&v)));
        }
        let listed: Vec<&String> = if expand {
            common.iter().collect()
        } else {
            common.difference(&m.features).collect()
        };
        for f in listed {
            out.push_str(&format!(
                "  <feature policy='require' name='{}'/>\n",
                vireo_xml::escape(f)
            ));
        }
        out.push_str("</cpu>\n");
        Ok(out)
    }
}

fn join(v: &[&String]) -> String {
    v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

/// Reads the `<cpu>` of a client's XML (the root, or the first `<cpu>` in a domain or
/// capabilities document).
fn parse_cpu(xml: &str) -> Result<GivenCpu> {
    let doc = roxmltree::Document::parse(xml)
        .map_err(|e| DriverError::XmlSyntax(format!("(CPU_definition): {e}")))?;
    let cpu = doc
        .descendants()
        .find(|n| n.has_tag_name("cpu"))
        .ok_or_else(|| DriverError::XmlInvalid("no <cpu> element".into()))?;
    let text = |name: &str| {
        cpu.children()
            .find(|n| n.has_tag_name(name))
            .and_then(|n| n.text())
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    };
    let mut c = GivenCpu {
        mode: cpu.attribute("mode").map(str::to_string),
        model: text("model"),
        vendor: text("vendor"),
        ..Default::default()
    };
    let mut seen: BTreeMap<String, ()> = BTreeMap::new();
    for f in cpu.children().filter(|n| n.has_tag_name("feature")) {
        let Some(name) = f.attribute("name") else {
            return Err(DriverError::XmlInvalid("a <feature> without a name".into()));
        };
        if seen.insert(name.to_string(), ()).is_some() {
            return Err(DriverError::XmlInvalid(format!(
                "CPU feature '{name}' specified more than once"
            )));
        }
        // A host CPU's features have no policy: it has them.
        match f.attribute("policy").unwrap_or("require") {
            "require" | "force" => c.require.insert(name.to_string()),
            "disable" => c.disable.insert(name.to_string()),
            "forbid" => c.forbid.insert(name.to_string()),
            "optional" => false,
            p => {
                return Err(DriverError::XmlInvalid(format!(
                    "invalid CPU feature policy '{p}'"
                )))
            }
        };
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models() -> CpuModels {
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        CpuModels {
            models: vec![
                Model {
                    name: "Small".into(),
                    features: set(&["fpu", "sse"]),
                    vendor: Some("Intel".into()),
                    usable: true,
                },
                Model {
                    name: "Big".into(),
                    features: set(&["fpu", "sse", "avx"]),
                    vendor: Some("Intel".into()),
                    usable: true,
                },
                Model {
                    name: "Huge".into(),
                    features: set(&["fpu", "sse", "avx", "avx512f"]),
                    vendor: Some("Intel".into()),
                    usable: false,
                },
            ],
            host: set(&["fpu", "sse", "avx", "aes"]),
            host_vendor: Some("Intel".into()),
        }
    }

    #[test]
    fn host_model_is_the_richest_usable_model_within_the_host() {
        let m = models();
        let (best, extra) = m.host_model().unwrap();
        assert_eq!(best.name, "Big");
        assert_eq!(extra, [&"aes".to_string()]);
    }

    #[test]
    fn host_model_starts_as_the_named_model_with_the_domains_features_on_top() {
        use vireo_xml::{Cpu, CpuCheck, CpuFeature, CpuFeaturePolicy, CpuMode};
        let m = models();
        let mut cpu = Cpu {
            mode: Some(CpuMode::HostModel),
            features: vec![CpuFeature {
                policy: CpuFeaturePolicy::Disable,
                name: "aes".into(),
            }],
            ..Default::default()
        };
        m.expand_host_model(&mut cpu);
        assert_eq!(cpu.mode, Some(CpuMode::Custom));
        assert_eq!(cpu.check, Some(CpuCheck::Partial));
        assert_eq!(cpu.model.as_ref().map(|m| m.name.as_str()), Some("Big"));
        // The domain's "disable aes" wins over the host's aes.
        assert_eq!(cpu.features.len(), 1);
        assert_eq!(cpu.features[0].policy, CpuFeaturePolicy::Disable);
        // Other modes, and a QEMU that could not be asked, change nothing.
        let mut custom = Cpu::default();
        m.expand_host_model(&mut custom);
        assert!(custom.model.is_none());
        let mut hm = Cpu {
            mode: Some(CpuMode::HostModel),
            ..Default::default()
        };
        CpuModels::default().expand_host_model(&mut hm);
        assert_eq!(hm.mode, Some(CpuMode::HostModel));
    }

    #[test]
    fn comparisons() {
        let m = models();
        let cpu = |body: &str| format!("<cpu match='exact'>{body}</cpu>");
        assert_eq!(
            m.compare(&cpu("<model>Small</model>"), false).unwrap(),
            SUPERSET
        );
        assert_eq!(
            m.compare(&cpu("<model>Big</model><feature name='aes'/>"), false)
                .unwrap(),
            IDENTICAL
        );
        assert_eq!(
            m.compare(&cpu("<model>Huge</model>"), false).unwrap(),
            INCOMPATIBLE
        );
        assert_eq!(
            m.compare(
                &cpu("<model>Small</model><feature policy='forbid' name='avx'/>"),
                false
            )
            .unwrap(),
            INCOMPATIBLE
        );
        let e = m.compare(&cpu("<model>Huge</model>"), true).unwrap_err();
        assert!(e.to_string().contains("avx512f"), "{e}");
        assert!(m.compare(&cpu("<model>Nope</model>"), false).is_err());
        assert!(m.compare("<cpu", false).is_err());
    }

    #[test]
    fn baselines() {
        let m = models();
        let a = "<cpu><model>Big</model><feature name='aes'/></cpu>".to_string();
        let b = "<cpu><model>Huge</model><feature name='aes'/></cpu>".to_string();
        let out = m.baseline(&[a, b.clone()], false, false).unwrap();
        assert!(
            out.contains("<model fallback='forbid'>Big</model>"),
            "{out}"
        );
        assert!(
            out.contains("<feature policy='require' name='aes'/>"),
            "{out}"
        );
        let out = m.baseline(std::slice::from_ref(&b), false, false).unwrap();
        assert!(out.contains(">Huge<"), "{out}");
        let out = m.baseline(&[b], true, true).unwrap();
        assert!(out.contains(">Big<") && out.contains("name='fpu'"), "{out}");
        assert!(m.baseline(&[], false, false).is_err());
    }
}
