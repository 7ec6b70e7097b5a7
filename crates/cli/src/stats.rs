//! domstats, dommemstat, domblkstat, domifstat and domblkinfo, each printing what virsh
//! prints for it.

use anyhow::{bail, Context, Result};
use vireo_client::{Connect, Domain};
use vireo_proto::remote::{memory_stat, stats_flag, stats_group};
use vireo_proto::typed::{TypedParam, TypedValue};

use crate::args::Args;

/// domstats' group switches, as virsh names them.
const GROUPS: [(&str, u32); 6] = [
    ("--state", stats_group::STATE),
    ("--cpu-total", stats_group::CPU_TOTAL),
    ("--balloon", stats_group::BALLOON),
    ("--vcpu", stats_group::VCPU),
    ("--interface", stats_group::INTERFACE),
    ("--block", stats_group::BLOCK),
];

/// domstats' list switches.
const LISTS: [(&str, u32); 8] = [
    ("--list-active", stats_flag::ACTIVE),
    ("--list-inactive", stats_flag::INACTIVE),
    ("--list-persistent", stats_flag::PERSISTENT),
    ("--list-transient", stats_flag::TRANSIENT),
    ("--list-running", stats_flag::RUNNING),
    ("--list-paused", stats_flag::PAUSED),
    ("--list-shutoff", stats_flag::SHUTOFF),
    ("--list-other", stats_flag::OTHER),
];

/// The commands of this module.
pub const COMMANDS: &[&str] = &[
    "domstats",
    "dommemstat",
    "domblkstat",
    "domifstat",
    "domblkinfo",
];

/// (switches, valued options) of each command.
pub(crate) fn options(cmd: &str) -> Option<(Vec<&'static str>, Vec<&'static str>)> {
    Some(match cmd {
        "domstats" => (
            GROUPS
                .iter()
                .chain(&LISTS)
                .map(|(s, _)| *s)
                .chain(["--enforce"])
                .collect(),
            Vec::new(),
        ),
        "dommemstat" | "domblkstat" | "domifstat" | "domblkinfo" => (Vec::new(), Vec::new()),
        _ => return None,
    })
}

pub async fn run(uri: &str, readonly: bool, cmd: &str, rest: &[String]) -> Result<()> {
    let Some((switches, valued)) = options(cmd) else {
        bail!("unknown command: '{cmd}'");
    };
    let a = Args::parse(cmd, rest, &switches, &valued)?;
    let c = Connect::open(uri, readonly)
        .await
        .context("failed to connect to the hypervisor")?;
    match cmd {
        "domstats" => domstats(&c, &a, rest).await,
        "dommemstat" => {
            let d = domain(&c, a.one("domain")?).await?;
            let stats = c
                .memory_stats(&d)
                .await
                .context("Unable to get memory statistics")?;
            for (tag, val) in stats {
                if let Some(name) = memory_stat_name(tag) {
                    println!("{name} {val}");
                }
            }
            println!();
            Ok(())
        }
        "domblkstat" => {
            let p = a.positionals(&["domain", "device"], 2)?;
            let (dom, dev) = (p[0].unwrap_or_default(), p[1].unwrap_or_default());
            let d = domain(&c, dom).await?;
            let params = c
                .block_stats(&d, dev)
                .await
                .context("Failed to get block stats")?;
            // virsh's names and order.
            for (field, shown) in [
                ("rd_operations", "rd_req"),
                ("rd_bytes", "rd_bytes"),
                ("wr_operations", "wr_req"),
                ("wr_bytes", "wr_bytes"),
                ("errs", "errs"),
                ("flush_operations", "flush_operations"),
                ("rd_total_times", "rd_total_times"),
                ("wr_total_times", "wr_total_times"),
                ("flush_total_times", "flush_total_times"),
            ] {
                if let Some(p) = params.iter().find(|p| p.field == field) {
                    println!("{dev} {shown} {}", value_text(&p.value));
                }
            }
            println!();
            Ok(())
        }
        "domifstat" => {
            let p = a.positionals(&["domain", "interface"], 2)?;
            let (dom, dev) = (p[0].unwrap_or_default(), p[1].unwrap_or_default());
            let d = domain(&c, dom).await?;
            let s = c
                .interface_stats(&d, dev)
                .await
                .context("Failed to get interface stats")?;
            for (k, v) in [
                ("rx_bytes", s.rx_bytes),
                ("rx_packets", s.rx_packets),
                ("rx_errs", s.rx_errs),
                ("rx_drop", s.rx_drop),
                ("tx_bytes", s.tx_bytes),
                ("tx_packets", s.tx_packets),
                ("tx_errs", s.tx_errs),
                ("tx_drop", s.tx_drop),
            ] {
                if v >= 0 {
                    println!("{dev} {k} {v}");
                }
            }
            println!();
            Ok(())
        }
        _ => {
            let p = a.positionals(&["domain", "device"], 2)?;
            let (dom, dev) = (p[0].unwrap_or_default(), p[1].unwrap_or_default());
            let d = domain(&c, dom).await?;
            let (capacity, allocation, physical) = c.block_info(&d, dev).await?;
            println!("{:<16}{capacity}", "Capacity:");
            println!("{:<16}{allocation}", "Allocation:");
            println!("{:<16}{physical}\n", "Physical:");
            Ok(())
        }
    }
}

async fn domain(c: &Connect, key: &str) -> Result<Domain> {
    c.lookup(key)
        .await
        .with_context(|| format!("failed to get domain '{key}'"))
}

async fn domstats(c: &Connect, a: &Args<'_>, rest: &[String]) -> Result<()> {
    let stats = GROUPS
        .iter()
        .filter(|(s, _)| a.has(s))
        .fold(0, |acc, (_, g)| acc | g);
    let mut flags = LISTS
        .iter()
        .filter(|(s, _)| a.has(s))
        .fold(0, |acc, (_, f)| acc | f);
    if a.has("--enforce") {
        flags |= stats_flag::ENFORCE_STATS;
    }
    let names: Vec<&str> = rest
        .iter()
        .map(String::as_str)
        .filter(|x| !x.starts_with("--"))
        .collect();
    let mut doms = Vec::with_capacity(names.len());
    for n in names {
        doms.push(domain(c, n).await?);
    }
    let records = c
        .all_domain_stats(&doms, stats, flags)
        .await
        .context("Failed to get domain statistics")?;
    for (dom, params) in records {
        println!("Domain: '{}'", dom.name);
        for TypedParam { field, value } in params {
            println!("  {field}={}", value_text(&value));
        }
        println!();
    }
    Ok(())
}

/// A typed parameter's value as virsh prints it.
pub(crate) fn value_text(v: &TypedValue) -> String {
    match v {
        TypedValue::Int(x) => x.to_string(),
        TypedValue::UInt(x) => x.to_string(),
        TypedValue::LLong(x) => x.to_string(),
        TypedValue::ULLong(x) => x.to_string(),
        TypedValue::Double(x) => format!("{x:.6}"),
        TypedValue::Boolean(b) => if *b { "yes" } else { "no" }.to_string(),
        TypedValue::String(s) => s.clone(),
    }
}

/// virsh's name of a memory statistic.
fn memory_stat_name(tag: i32) -> Option<&'static str> {
    Some(match tag {
        memory_stat::SWAP_IN => "swap_in",
        memory_stat::SWAP_OUT => "swap_out",
        memory_stat::MAJOR_FAULT => "major_fault",
        memory_stat::MINOR_FAULT => "minor_fault",
        memory_stat::UNUSED => "unused",
        memory_stat::AVAILABLE => "available",
        memory_stat::ACTUAL_BALLOON => "actual",
        memory_stat::RSS => "rss",
        memory_stat::USABLE => "usable",
        memory_stat::LAST_UPDATE => "last_update",
        memory_stat::DISK_CACHES => "disk_caches",
        memory_stat::HUGETLB_PGALLOC => "hugetlb_pgalloc",
        memory_stat::HUGETLB_PGFAIL => "hugetlb_pgfail",
        _ => return None,
    })
}
