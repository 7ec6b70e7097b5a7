//! vcpucount, vcpupin and emulatorpin, each printing what virsh prints for it: the counts
//! of the definition and of the running domain, the host CPUs each vCPU (and the
//! emulator) may run on, and those pins changed; virsh's refusals in virsh's order.

use anyhow::{anyhow, bail, Result};
use vireo_client::{Connect, Domain};
use vireo_proto::error::code;
use vireo_proto::remote::{affect, VCPU_GUEST, VCPU_MAXIMUM};

use crate::cnum::opt_uint;
use crate::iothread::{cpu_map, host_cpus, map_text};
use crate::virsh::{begin, domain, finish, s, Parsed, Spec};
use crate::xmlnode::Element;

pub const COMMANDS: [&str; 3] = ["vcpucount", "vcpupin", "emulatorpin"];

/// `VIR_DOMAIN_XML_INACTIVE`.
const XML_INACTIVE: u32 = 2;

pub(crate) fn spec(cmd: &str) -> Option<Spec> {
    const STATE: &[&str] = &["--config", "--live", "--current"];
    Some(match cmd {
        "vcpucount" => s(
            &[
                "--maximum",
                "--active",
                "--live",
                "--config",
                "--current",
                "--guest",
            ],
            &["--domain"],
            &["domain"],
            1,
        ),
        "vcpupin" => s(
            STATE,
            &["--domain", "--vcpu", "--cpulist"],
            &["domain", "vcpu", "cpulist"],
            1,
        ),
        "emulatorpin" => s(STATE, &["--domain", "--cpulist"], &["domain", "cpulist"], 1),
        _ => return None,
    })
}

pub async fn run(uri: &str, readonly: bool, cmd: &str, rest: &[String]) -> Result<()> {
    let (p, c) = begin(uri, readonly, cmd, rest, spec).await?;
    let r = match cmd {
        "vcpucount" => count(&c, &p).await,
        "vcpupin" => vcpupin(&c, &p).await,
        _ => emulatorpin(&c, &p).await,
    };
    finish(c, r).await
}

/// The refusal of two options given together (as given, or as virsh understood them).
fn exclusive(pairs: &[(&str, bool, &str, bool)]) -> Result<()> {
    for (x, gx, y, gy) in pairs {
        if *gx && *gy {
            bail!("Options --{x} and --{y} are mutually exclusive");
        }
    }
    Ok(())
}

async fn count(c: &Connect, p: &Parsed<'_>) -> Result<()> {
    let has = |o: &str| p.args.has(o);
    let (maximum, active, live, config, guest) = (
        has("--maximum"),
        has("--active"),
        has("--live"),
        has("--config"),
        has("--guest"),
    );
    let all = !(maximum || active || live || config || guest || has("--current"));
    // Before 0.9.4 --current meant "not --maximum": alone, it is still taken so.
    let current = has("--current") && (maximum || active);
    exclusive(&[
        ("live", live, "config", config),
        ("current", current, "live", live),
        ("current", current, "config", config),
        ("active", active, "maximum", maximum),
        ("guest", guest, "config", config),
    ])?;
    let flags = p.args.flags(&[
        ("--live", affect::LIVE),
        ("--config", affect::CONFIG),
        ("--maximum", VCPU_MAXIMUM),
        ("--guest", VCPU_GUEST),
    ]);
    let d = domain(c, p.opt("domain")).await?;
    if !all {
        let n = cpu_count(c, &d, flags, false).await?.unwrap_or_default();
        println!("{n}");
        return Ok(());
    }
    let mut rows = Vec::with_capacity(4);
    for (which, state, flags) in [
        ("maximum", "config", affect::CONFIG | VCPU_MAXIMUM),
        ("maximum", "live", affect::LIVE | VCPU_MAXIMUM),
        ("current", "config", affect::CONFIG),
        ("current", "live", affect::LIVE),
    ] {
        rows.push((which, state, cpu_count(c, &d, flags, true).await?));
    }
    for (which, state, n) in rows {
        if let Some(n) = n.filter(|&n| n > 0) {
            println!("{which:<12} {state:<12} {n:>3}");
        }
    }
    Ok(())
}

/// A vCPU count as virsh collects it; `None` when `check` and the state asked for is not
/// there (a live count of a domain that does not run, a defined one of a transient one).
/// Where the daemon lacks the call (or the flags), virsh's older ways.
async fn cpu_count(c: &Connect, d: &Domain, flags: u32, check: bool) -> Result<Option<i32>> {
    if check
        && ((flags & affect::LIVE != 0 && !c.is_active(d).await.unwrap_or(false))
            || (flags & affect::CONFIG != 0 && !c.is_persistent(d).await.unwrap_or(false)))
    {
        return Ok(None);
    }
    let e = match c.vcpus_flags(d, flags).await {
        Ok(n) => return Ok(Some(n)),
        Err(e) if matches!(e.code(), Some(code::NO_SUPPORT | code::INVALID_ARG)) => e,
        Err(e) => return Err(e.into()),
    };
    if flags & VCPU_GUEST != 0 {
        return Err(anyhow::Error::from(e).context("Failed to retrieve vCPU count from the guest"));
    }
    let mut flags = flags;
    if flags & (affect::LIVE | affect::CONFIG) == 0 && c.is_active(d).await.unwrap_or(false) {
        flags |= affect::LIVE;
    }
    if flags & affect::LIVE != 0 {
        return Ok(Some(if flags & VCPU_MAXIMUM != 0 {
            c.max_vcpus(d).await?
        } else {
            i32::try_from(c.info(d).await?.nr_virt_cpu).unwrap_or(i32::MAX)
        }));
    }
    let xml = Element::parse(&c.xml_desc(d, XML_INACTIVE).await?, "domain")?;
    let vcpu = xml.child("vcpu");
    let n = if flags & VCPU_MAXIMUM != 0 {
        vcpu.and_then(|v| v.text().trim().parse().ok())
            .ok_or_else(|| anyhow!("Failed to retrieve maximum vcpu count"))?
    } else {
        vcpu.and_then(|v| v.attr("current"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| anyhow!("Failed to retrieve current vcpu count"))?
    };
    Ok(Some(n))
}

/// `--live`, `--config`, `--current` as the pin commands take them.
fn pin_flags(p: &Parsed<'_>) -> Result<u32> {
    p.exclusive(&[("current", "live"), ("current", "config")])?;
    Ok(p.args
        .flags(&[("--config", affect::CONFIG), ("--live", affect::LIVE)]))
}

async fn vcpupin(c: &Connect, p: &Parsed<'_>) -> Result<()> {
    let flags = pin_flags(p)?;
    let cpulist = p.opt("cpulist");
    if cpulist.is_none() {
        p.exclusive(&[("live", "config")])?;
    }
    let vcpu = p.opt("vcpu").map(|v| opt_uint("vcpu", v)).transpose()?;
    if cpulist.is_some() && vcpu.is_none() {
        bail!("vcpupin: Missing vCPU number in pin mode.");
    }
    let max = host_cpus(c).await?;
    let d = domain(c, p.opt("domain")).await?;
    let Some(list) = cpulist else {
        return pin_query(c, &d, vcpu, max, flags).await;
    };
    let map = cpu_map(list, max)?;
    let vcpu = vcpu.unwrap_or_default();
    if flags == 0 && !p.args.has("--current") {
        c.pin_vcpu_live(&d, vcpu, &map).await?;
    } else {
        c.pin_vcpu(&d, vcpu, &map, flags).await?;
    }
    Ok(())
}

/// vcpupin without a CPU list: each vCPU's host CPUs (or `vcpu`'s only).
async fn pin_query(
    c: &Connect,
    d: &Domain,
    vcpu: Option<u32>,
    max: usize,
    flags: u32,
) -> Result<()> {
    let Some(n) = cpu_count(c, d, flags | VCPU_MAXIMUM, true).await? else {
        if flags & affect::LIVE != 0 {
            bail!("cannot get vcpupin for offline domain");
        }
        bail!("cannot get vcpupin for transient domain");
    };
    if let Some(v) = vcpu.filter(|&v| i64::from(v) >= i64::from(n)) {
        let live = flags & affect::LIVE != 0
            || (flags & affect::CONFIG == 0 && c.is_active(d).await.unwrap_or(false));
        let which = if live { "live" } else { "persistent" };
        bail!("vcpu {v} is out of range of {which} cpu count {n}");
    }
    let maplen = max.div_ceil(8);
    // virsh prints nothing, and ends well, when the daemon does not answer this.
    let Ok((maps, num)) = c
        .vcpu_pin_info(d, n, i32::try_from(maplen).unwrap_or(i32::MAX), flags)
        .await
    else {
        return Ok(());
    };
    let mut rows = vec![vec!["VCPU".to_string(), "CPU Affinity".to_string()]];
    for i in 0..usize::try_from(num).unwrap_or(0) {
        if vcpu.is_some_and(|v| v as usize != i) {
            continue;
        }
        let map = maps.get(i * maplen..(i + 1) * maplen).unwrap_or_default();
        rows.push(vec![i.to_string(), map_text(map)]);
    }
    print!("{}", crate::commands::table_text(&rows));
    Ok(())
}

async fn emulatorpin(c: &Connect, p: &Parsed<'_>) -> Result<()> {
    let flags = pin_flags(p)?;
    let chosen = flags != 0 || p.args.has("--current");
    let d = domain(c, p.opt("domain")).await?;
    let cpulist = p.opt("cpulist");
    let max = host_cpus(c).await?;
    let Some(list) = cpulist else {
        let maplen = max.div_ceil(8);
        let map = c
            .emulator_pin_info(&d, i32::try_from(maplen).unwrap_or(i32::MAX), flags)
            .await?;
        println!("emulator: CPU Affinity");
        println!("----------------------------------");
        println!("       *: {}", map_text(&map));
        return Ok(());
    };
    let map = cpu_map(list, max)?;
    // No option: the running domain.
    let flags = if chosen { flags } else { affect::LIVE };
    c.pin_emulator(&d, &map, flags).await?;
    Ok(())
}
