//! cpu-compare, hypervisor-cpu-compare, cpu-baseline, hypervisor-cpu-baseline and
//! cpu-models, each printing what virsh prints for it. As virsh, the first four take the
//! `<cpu>` definitions out of the file given: bare `<cpu>` elements, a domain's, a host
//! capabilities document's, or a domain capabilities document's host-model (sent as a
//! `<cpu>`).

use anyhow::{anyhow, bail, Context, Result};
use vireo_client::{Connect, HypervisorCpu};

use crate::args::Args;
use crate::network::Quiet;
use crate::virsh::{begin, finish, given, read_file, s, Opt, Spec};

pub const COMMANDS: [&str; 5] = [
    "cpu-compare",
    "hypervisor-cpu-compare",
    "cpu-baseline",
    "hypervisor-cpu-baseline",
    "cpu-models",
];

/// `VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE`, `VIR_CONNECT_COMPARE_CPU_VALIDATE_XML`.
const FAIL_INCOMPATIBLE: u32 = 1;
const VALIDATE_XML: u32 = 2;
/// `VIR_CONNECT_BASELINE_CPU_EXPAND_FEATURES`, `VIR_CONNECT_BASELINE_CPU_MIGRATABLE`.
const EXPAND_FEATURES: u32 = 1;
const MIGRATABLE: u32 = 2;

/// `virCPUCompareResult`.
const INCOMPATIBLE: i32 = 0;
const IDENTICAL: i32 = 1;
const SUPERSET: i32 = 2;

/// The options naming the hypervisor, in the order virsh reads them.
const HYPERVISOR: [&str; 4] = ["virttype", "emulator", "arch", "machine"];

pub(crate) fn spec(cmd: &str) -> Option<Spec> {
    const HV_VALUED: &[&str] = &["--file", "--virttype", "--emulator", "--arch", "--machine"];
    const HV_NAMES: &[&str] = &["file", "virttype", "emulator", "arch", "machine"];
    Some(match cmd {
        "cpu-compare" => s(&["--error", "--validate"], &["--file"], &["file"], 1),
        "hypervisor-cpu-compare" => s(&["--error", "--validate"], HV_VALUED, HV_NAMES, 1),
        "cpu-baseline" => s(&["--features", "--migratable"], &["--file"], &["file"], 1),
        "hypervisor-cpu-baseline" => s(
            &["--features", "--migratable"],
            &[
                "--file",
                "--virttype",
                "--emulator",
                "--arch",
                "--machine",
                "--model",
            ],
            &["file", "virttype", "emulator", "arch", "machine", "model"],
            0,
        ),
        "cpu-models" => s(&[], &["--arch"], &["arch"], 1),
        _ => return None,
    })
}

pub async fn run(uri: &str, readonly: bool, cmd: &str, rest: &[String]) -> Result<()> {
    let (p, c) = begin(uri, readonly, cmd, rest, spec).await?;
    let (a, opt) = (&p.args, |name: &str| p.opt(name));
    let r = match cmd {
        "cpu-compare" | "hypervisor-cpu-compare" => {
            compare(&c, a, &opt, cmd != "cpu-compare").await
        }
        "cpu-models" => models(&c, &opt).await,
        _ => baseline(&c, a, &opt, cmd != "cpu-baseline").await,
    };
    finish(c, r).await
}

/// cpu-models: the CPU models the hypervisor knows for an architecture.
async fn models(c: &Connect, opt: &Opt<'_>) -> Result<()> {
    let arch = given("arch", opt("arch"))?.unwrap_or_default();
    let names = c
        .cpu_model_names(arch)
        .await
        .context("failed to get CPU model names")?;
    if names.is_empty() {
        println!("all CPU models are accepted");
    }
    for n in names {
        println!("{n}");
    }
    Ok(())
}

/// The hypervisor options given (each refused when empty, in virsh's order).
fn hypervisor<'a>(opt: &Opt<'a>) -> Result<HypervisorCpu<'a>> {
    let mut v = [None; 4];
    for (slot, name) in v.iter_mut().zip(HYPERVISOR) {
        *slot = given(name, opt(name))?;
    }
    let [virttype, emulator, arch, machine] = v;
    Ok(HypervisorCpu {
        emulator,
        arch,
        machine,
        virttype,
    })
}

async fn compare(c: &Connect, a: &Args<'_>, opt: &Opt<'_>, hv: bool) -> Result<()> {
    let mut flags = 0;
    if a.has("--error") {
        flags |= FAIL_INCOMPATIBLE;
    }
    if a.has("--validate") {
        flags |= VALIDATE_XML;
    }
    let file = given("file", opt("file"))?.unwrap_or_default();
    let target = if hv { Some(hypervisor(opt)?) } else { None };
    let cpus = cpu_definitions(file)?;
    let first = cpus.first().map(String::as_str).unwrap_or_default();
    let result = match &target {
        Some(t) => c.compare_hypervisor_cpu(t, first, flags).await,
        None => c.compare_cpu(first, flags).await,
    };
    let failed = || {
        if hv {
            format!("Failed to compare hypervisor CPU with {file}")
        } else {
            format!("Failed to compare host CPU with {file}")
        }
    };
    let result = result.with_context(failed)?;
    let host = if hv {
        "the CPU provided by hypervisor on the host"
    } else {
        "host CPU"
    };
    match result {
        INCOMPATIBLE => {
            println!("CPU described in {file} is incompatible with {host}");
            return Err(Quiet.into());
        }
        IDENTICAL => println!("CPU described in {file} is identical to {host}"),
        SUPERSET if hv => println!(
            "The CPU provided by hypervisor on the host is a superset of CPU described in {file}"
        ),
        SUPERSET => println!("Host CPU is a superset of CPU described in {file}"),
        _ => bail!(failed()),
    }
    Ok(())
}

async fn baseline(c: &Connect, a: &Args<'_>, opt: &Opt<'_>, hv: bool) -> Result<()> {
    let mut flags = 0;
    if a.has("--features") {
        flags |= EXPAND_FEATURES;
    }
    if a.has("--migratable") {
        flags |= MIGRATABLE;
    }
    let file = given("file", opt("file"))?;
    let cpus = if hv {
        let target = hypervisor(opt)?;
        let model = given("model", opt("model"))?;
        let cpus = match (file, model) {
            (Some(_), Some(_)) => bail!("Options --file and --model are mutually exclusive"),
            (Some(file), None) => cpu_definitions(file)?,
            // As virsh writes it, the name as given.
            (None, Some(model)) => vec![format!("<cpu><model>{model}</model></cpu>")],
            (None, None) => bail!("Either --file or --model must be provided"),
        };
        c.baseline_hypervisor_cpu(&target, &cpus, flags).await?
    } else {
        let cpus = cpu_definitions(file.unwrap_or_default())?;
        c.baseline_cpu(&cpus, flags).await?
    };
    print!("{cpus}");
    Ok(())
}

/// The `<cpu>` definitions in the file at `path`, in document order, as virsh finds them:
/// the file's content (without its XML declaration) is read as the children of one
/// element, and the CPUs are `cpu`, `domain/cpu`, `capabilities/host/cpu` and
/// `domainCapabilities/cpu/mode[@name='host-model' and @supported='yes']` (that one
/// becomes a `<cpu>` without attributes).
fn cpu_definitions(path: &str) -> Result<Vec<String>> {
    let text = read_file(path)?;
    let body = match text
        .strip_prefix("<?xml")
        .and_then(|r| r.find("?>").map(|i| &r[i + 2..]))
    {
        Some(rest) => rest,
        None => text.as_str(),
    };
    let doc = format!("<container>{body}</container>");
    let found = vireo_xml::model::parse_document(&doc, "container", |root| {
        macro_rules! named {
            ($n:expr, $name:expr) => {
                $n.is_element()
                    && $n.tag_name().namespace().is_none()
                    && $n.tag_name().name() == $name
            };
        }
        let mut out = Vec::new();
        for top in root.children() {
            if named!(top, "cpu") {
                out.push((top.range(), false));
            } else if named!(top, "domain") {
                for cpu in top.children().filter(|n| named!(n, "cpu")) {
                    out.push((cpu.range(), false));
                }
            } else if named!(top, "capabilities") {
                for host in top.children().filter(|n| named!(n, "host")) {
                    for cpu in host.children().filter(|n| named!(n, "cpu")) {
                        out.push((cpu.range(), false));
                    }
                }
            } else if named!(top, "domainCapabilities") {
                for cpu in top.children().filter(|n| named!(n, "cpu")) {
                    let modes = cpu.children().filter(|n| {
                        named!(n, "mode")
                            && n.attribute("name") == Some("host-model")
                            && n.attribute("supported") == Some("yes")
                    });
                    for mode in modes {
                        out.push((mode.range(), true));
                    }
                }
            }
        }
        Ok(out)
    })
    .map_err(|e| match e {
        vireo_xml::XmlError::Syntax { line, msg, .. } => anyhow!("{path}:{line}: {msg}"),
        e => anyhow!("{path}: {e}"),
    })?;
    if found.is_empty() {
        bail!(
            "File '{path}' does not contain any <cpu> element or valid domain XML, host \
             capabilities XML, or domain capabilities XML"
        );
    }
    Ok(found
        .into_iter()
        .map(|(range, mode)| {
            let el = doc.get(range).unwrap_or_default();
            if mode {
                as_cpu(el)
            } else {
                el.to_string()
            }
        })
        .collect())
}

/// An element's text (`<mode …>…</mode>` or `<mode …/>`) renamed `cpu`, without its
/// attributes.
fn as_cpu(el: &str) -> String {
    let mut quote = None;
    let mut head = el.len();
    for (i, ch) in el.char_indices() {
        match quote {
            Some(q) if ch == q => quote = None,
            Some(_) => {}
            None if ch == '\'' || ch == '"' => quote = Some(ch),
            None if ch == '>' => {
                head = i + 1;
                break;
            }
            None => {}
        }
    }
    if el[..head].ends_with("/>") {
        return "<cpu/>".to_string();
    }
    let tail = el.rfind("</").filter(|&t| t >= head).unwrap_or(el.len());
    format!("<cpu>{}</cpu>", &el[head..tail])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defs(text: &str) -> Result<Vec<String>> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let f = std::env::temp_dir().join(format!("vireo-cpu-{}-{n}.xml", std::process::id()));
        std::fs::write(&f, text)?;
        let r = cpu_definitions(f.to_str().unwrap_or_default());
        let _ = std::fs::remove_file(&f);
        r
    }

    #[test]
    fn cpus_are_found_where_virsh_finds_them() {
        let d = defs("<?xml version='1.0'?>\n<cpu><model>a</model></cpu>trailing").unwrap();
        assert_eq!(d, ["<cpu><model>a</model></cpu>"]);
        let d = defs(
            "<domain><cpu mode='custom'><model>b</model></cpu><cpu/></domain>\
             <cpu>\n<model>c</model></cpu>",
        )
        .unwrap();
        assert_eq!(
            d,
            [
                "<cpu mode='custom'><model>b</model></cpu>",
                "<cpu/>",
                "<cpu>\n<model>c</model></cpu>"
            ]
        );
        let d = defs(
            "<capabilities><host><cpu><arch>x86_64</arch></cpu></host>\
             <cpu><model>no</model></cpu></capabilities>",
        )
        .unwrap();
        assert_eq!(d, ["<cpu><arch>x86_64</arch></cpu>"]);
        let d = defs(
            "<domainCapabilities><cpu><mode name='host-passthrough' supported='yes'/>\
             <mode name='host-model' supported='yes'><model a='>'>p</model></mode>\
             </cpu></domainCapabilities>",
        )
        .unwrap();
        assert_eq!(d, ["<cpu><model a='>'>p</model></cpu>"]);
        for none in [
            "",
            "<foo><cpu/></foo>",
            "<capabilities><cpu/></capabilities>",
            "<cpu xmlns='urn:x'/>",
            "<domainCapabilities><cpu><mode name='host-model'><model>p</model></mode></cpu>\
             </domainCapabilities>",
        ] {
            let e = defs(none).unwrap_err().to_string();
            assert!(
                e.contains("does not contain any <cpu> element"),
                "{none:?}: {e}"
            );
        }
        assert!(defs("not xml <").is_err());
    }

    #[test]
    fn host_model_becomes_a_cpu() {
        assert_eq!(as_cpu("<mode name='x'/>"), "<cpu/>");
        assert_eq!(
            as_cpu("<mode name=\"a>b\">\n <model>m</model>\n</mode>"),
            "<cpu>\n <model>m</model>\n</cpu>"
        );
    }
}
