//! iothreadinfo, iothreadpin, iothreadadd, iothreaddel, iothreadset, guestvcpus and
//! detach-device-alias, each printing what virsh prints for it: the I/O threads' table,
//! the guest agent's view of the vCPUs, the same refusals in the same order (options
//! given together, numbers and CPU lists as virsh reads them), and the blank line after.

use std::collections::BTreeSet;

use anyhow::{anyhow, bail, Context, Result};
use vireo_client::Connect;
use vireo_proto::remote::affect;
use vireo_proto::typed::{TypedParam, TypedValue};

use crate::args::Args;
use crate::cnum::{opt_int, opt_uint, opt_ullong, skip_spaces, strtol};
use crate::virsh::{begin, domain, finish, given, s, Opt, Spec};

pub const COMMANDS: [&str; 7] = [
    "iothreadinfo",
    "iothreadpin",
    "iothreadadd",
    "iothreaddel",
    "iothreadset",
    "guestvcpus",
    "detach-device-alias",
];

/// The highest CPU number + 1 a CPU list may name (virsh parses it into a bitmap of this
/// size).
const CPULIST_BITS: usize = 1024;

pub(crate) fn spec(cmd: &str) -> Option<Spec> {
    const AFFECT: &[&str] = &["--config", "--live", "--current"];
    Some(match cmd {
        "iothreadinfo" => s(AFFECT, &["--domain"], &["domain"], 1),
        "iothreadpin" => s(
            AFFECT,
            &["--domain", "--iothread", "--cpulist"],
            &["domain", "iothread", "cpulist"],
            3,
        ),
        "iothreadadd" | "iothreaddel" => s(AFFECT, &["--domain", "--id"], &["domain", "id"], 2),
        "iothreadset" => s(
            AFFECT,
            &[
                "--domain",
                "--id",
                "--poll-max-ns",
                "--poll-grow",
                "--poll-shrink",
                "--thread-pool-min",
                "--thread-pool-max",
            ],
            &[
                "domain",
                "id",
                "poll-max-ns",
                "poll-grow",
                "poll-shrink",
                "thread-pool-min",
                "thread-pool-max",
            ],
            2,
        ),
        "guestvcpus" => s(
            &["--enable", "--disable"],
            &["--domain", "--cpulist"],
            &["domain", "cpulist"],
            1,
        ),
        "detach-device-alias" => s(AFFECT, &["--domain", "--alias"], &["domain", "alias"], 2),
        _ => return None,
    })
}

pub async fn run(uri: &str, readonly: bool, cmd: &str, rest: &[String]) -> Result<()> {
    let (p, c) = begin(uri, readonly, cmd, rest, spec).await?;
    let (a, opt) = (&p.args, |name: &str| p.opt(name));
    let r = match cmd {
        "iothreadinfo" => info(&c, a, &opt).await,
        "iothreadpin" => pin(&c, a, &opt).await,
        "iothreadadd" | "iothreaddel" => add_del(&c, a, &opt, cmd == "iothreadadd").await,
        "iothreadset" => set(&c, a, &opt).await,
        "guestvcpus" => guest_vcpus(&c, a, &opt).await,
        _ => detach_alias(&c, a, &opt).await,
    };
    finish(c, r).await
}

/// A command's options and positionals, by name.
/// `--live`, `--config`, `--current` as virsh takes them: `--current` with either of the
/// others is refused; none is the current state (0).
pub(crate) fn affect_flags(a: &Args) -> Result<u32> {
    let current = a.has("--current");
    for other in ["--live", "--config"] {
        if current && a.has(other) {
            bail!("Options --current and {other} are mutually exclusive");
        }
    }
    let mut flags = affect::CURRENT;
    if a.has("--config") {
        flags |= affect::CONFIG;
    }
    if a.has("--live") {
        flags |= affect::LIVE;
    }
    Ok(flags)
}

async fn info(c: &Connect, a: &Args<'_>, opt: &Opt<'_>) -> Result<()> {
    let flags = affect_flags(a)?;
    let d = domain(c, opt("domain")).await?;
    let threads = c
        .iothread_info(&d, flags)
        .await
        .context("Unable to get domain IOThreads information")?;
    if threads.is_empty() {
        // No line end: the blank line after the command ends it.
        print!("No IOThreads found for the domain");
        return Ok(());
    }
    let mut rows = vec![vec!["IOThread ID".to_string(), "CPU Affinity".to_string()]];
    for t in &threads {
        rows.push(vec![t.iothread_id.to_string(), map_text(&t.cpumap.0)]);
    }
    print!("{}", crate::commands::table_text(&rows));
    Ok(())
}

/// A CPU map (a bit per CPU) as libvirt spells it: `0-2,5`.
pub(crate) fn map_text(map: &[u8]) -> String {
    let set: BTreeSet<usize> = map
        .iter()
        .enumerate()
        .flat_map(|(i, b)| {
            (0..8)
                .filter(move |j| b & (1 << j) != 0)
                .map(move |j| i * 8 + j)
        })
        .collect();
    vireo_xml::format_cpuset(&set)
}

async fn pin(c: &Connect, a: &Args<'_>, opt: &Opt<'_>) -> Result<()> {
    let flags = affect_flags(a)?;
    let d = domain(c, opt("domain")).await?;
    let id = opt_uint("iothread", opt("iothread").unwrap_or_default())?;
    let list = given("cpulist", opt("cpulist"))?.unwrap_or_default();
    let max = host_cpus(c).await?;
    let map = cpu_map(list, max)?;
    c.pin_iothread(&d, id, &map, flags).await?;
    Ok(())
}

async fn add_del(c: &Connect, a: &Args<'_>, opt: &Opt<'_>, add: bool) -> Result<()> {
    let flags = affect_flags(a)?;
    let d = domain(c, opt("domain")).await?;
    let id = iothread_id(opt("id").unwrap_or_default())?;
    if add {
        c.add_iothread(&d, id, flags).await?;
    } else {
        c.del_iothread(&d, id, flags).await?;
    }
    Ok(())
}

async fn set(c: &Connect, a: &Args<'_>, opt: &Opt<'_>) -> Result<()> {
    let flags = affect_flags(a)?;
    let d = domain(c, opt("domain")).await?;
    let id = iothread_id(opt("id").unwrap_or_default())?;
    let mut params = Vec::new();
    if let Some(v) = opt("poll-max-ns") {
        let n = opt_ullong("poll-max-ns", v)?;
        params.push(TypedParam::new("poll_max_ns", TypedValue::ULLong(n)));
    }
    for (name, field) in [("poll-grow", "poll_grow"), ("poll-shrink", "poll_shrink")] {
        if let Some(v) = opt(name) {
            params.push(TypedParam::uint(field, opt_uint(name, v)?));
        }
    }
    for (name, field) in [
        ("thread-pool-min", "thread_pool_min"),
        ("thread-pool-max", "thread_pool_max"),
    ] {
        if let Some(v) = opt(name) {
            params.push(TypedParam::int(field, opt_int(name, v)?));
        }
    }
    if params.is_empty() {
        bail!("Not enough arguments passed, nothing to set");
    }
    c.set_iothread_params(&d, id, &params, flags).await?;
    Ok(())
}

async fn guest_vcpus(c: &Connect, a: &Args<'_>, opt: &Opt<'_>) -> Result<()> {
    let (enable, disable) = (a.has("--enable"), a.has("--disable"));
    if enable && disable {
        bail!("Options --enable and --disable are mutually exclusive");
    }
    for (on, name) in [(enable, "enable"), (disable, "disable")] {
        if on && opt("cpulist").is_none() {
            bail!("Option --cpulist is required by option --{name}");
        }
    }
    let list = given("cpulist", opt("cpulist"))?;
    if list.is_some() && !(enable || disable) {
        bail!("One of options --enable or --disable is required by option --cpulist");
    }
    let d = domain(c, opt("domain")).await?;
    match list {
        Some(list) => c.set_guest_vcpus(&d, list, enable).await?,
        None => {
            for p in c.guest_vcpus(&d).await? {
                println!("{:<15}: {}", p.field, crate::stats::value_text(&p.value));
            }
        }
    }
    Ok(())
}

async fn detach_alias(c: &Connect, a: &Args<'_>, opt: &Opt<'_>) -> Result<()> {
    let flags = affect_flags(a)?;
    let d = domain(c, opt("domain")).await?;
    let alias = given("alias", opt("alias"))?.unwrap_or_default();
    c.detach_device_alias(&d, alias, flags)
        .await
        .with_context(|| format!("Failed to detach device with alias {alias}"))?;
    println!("Device detach request sent successfully");
    Ok(())
}

/// An I/O thread's id for add, del and set: a positive `int`.
fn iothread_id(v: &str) -> Result<u32> {
    let id = opt_int("id", v)?;
    u32::try_from(id)
        .ok()
        .filter(|&id| id > 0)
        .ok_or_else(|| anyhow!("Invalid IOThread id value: '{id}'"))
}

/// The host's CPU count, as virsh finds it: the node's CPU map, else its info.
pub(crate) async fn host_cpus(c: &Connect) -> Result<usize> {
    let n = match c.host_cpus().await {
        Ok(n) => i64::from(n),
        Err(_) => {
            let i = c.node_info().await?;
            i64::from(i.nodes) * i64::from(i.sockets) * i64::from(i.cores) * i64::from(i.threads)
        }
    };
    usize::try_from(n).map_err(|_| anyhow!("failed to get the host's CPU count"))
}

/// `list` (a CPU list, or anything starting with `r`: every host CPU) as the CPU map
/// virsh sends, with virsh's refusals.
pub(crate) fn cpu_map(list: &str, max: usize) -> Result<Vec<u8>> {
    let set: BTreeSet<usize> = if list.starts_with('r') {
        (0..max).collect()
    } else {
        let invalid = || anyhow!("Invalid cpulist '{list}'");
        let set = parse_bitmap(list, CPULIST_BITS).ok_or_else(|| {
            anyhow!("invalid argument: Failed to parse bitmap '{list}'").context(invalid())
        })?;
        let Some(&last) = set.last() else {
            return Err(invalid());
        };
        if last >= max {
            bail!("CPU {last} in cpulist '{list}' exceed the maxcpu {max}");
        }
        set
    };
    let len = set.last().map_or(1, |l| l / 8 + 1);
    let mut map = vec![0u8; len];
    for cpu in set {
        map[cpu / 8] |= 1 << (cpu % 8);
    }
    Ok(map)
}

/// libvirt's bitmap syntax as `virBitmapParse` reads it, each entry in turn: `N`, `N-M`,
/// `^N` (taking N out of what came before), separated by commas, blanks allowed around
/// them; every bit below `limit`.
fn parse_bitmap(s: &str, limit: usize) -> Option<BTreeSet<usize>> {
    let b = s.as_bytes();
    let mut set = BTreeSet::new();
    let mut cur = skip_spaces(b, 0);
    if cur == b.len() {
        return None;
    }
    let bit = |v: i64| usize::try_from(v).ok().filter(|&v| v < limit);
    while cur < b.len() {
        let neg = b[cur] == b'^';
        if neg {
            cur += 1;
        }
        if !b.get(cur).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        let (start, end) = strtol(b, cur)?;
        i32::try_from(start).ok()?;
        cur = skip_spaces(b, end);
        match b.get(cur) {
            None | Some(b',') => {
                let n = bit(start)?;
                if neg {
                    set.remove(&n);
                } else {
                    set.insert(n);
                }
            }
            Some(b'-') => {
                if neg {
                    return None;
                }
                let (last, end) = strtol(b, skip_spaces(b, cur + 1))?;
                i32::try_from(last).ok()?;
                if last < start {
                    return None;
                }
                for v in start..=last {
                    set.insert(bit(v)?);
                }
                cur = skip_spaces(b, end);
            }
            Some(_) => {}
        }
        match b.get(cur) {
            Some(b',') => cur = skip_spaces(b, cur + 1),
            None => break,
            Some(_) => return None,
        }
    }
    Some(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &str) -> Option<Vec<usize>> {
        parse_bitmap(s, CPULIST_BITS).map(|s| s.into_iter().collect())
    }

    #[test]
    fn cpu_lists_as_libvirt_reads_them() {
        assert_eq!(list("0-1"), Some(vec![0, 1]));
        assert_eq!(list(" 0 , 1 "), Some(vec![0, 1]));
        assert_eq!(list("0,"), Some(vec![0]));
        assert_eq!(list("^1,0-1"), Some(vec![0, 1]));
        assert_eq!(list("0-1,^1"), Some(vec![0]));
        assert_eq!(list("0 - 1"), Some(vec![0, 1]));
        assert_eq!(list("0-+1"), Some(vec![0, 1]));
        assert_eq!(list("00-1"), Some(vec![0, 1]));
        assert_eq!(list("0-1,^0,^1"), Some(vec![]));
        assert_eq!(list("1023"), Some(vec![1023]));
        for bad in [
            "",
            " ",
            "1-0",
            "0-",
            "-1",
            "0,,1",
            ",0",
            "0-1 ^1",
            "+1",
            "0x1",
            "1024",
            "0-1-",
            "0 1",
            "^0-1",
            "2147483648",
        ] {
            assert_eq!(list(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn cpu_maps_and_their_refusals() {
        assert_eq!(cpu_map("1", 2).unwrap(), [2]);
        assert_eq!(cpu_map("r", 10).unwrap(), [0xff, 3]);
        assert_eq!(cpu_map("0,9", 16).unwrap(), [1, 2]);
        let e = cpu_map("5", 2).unwrap_err();
        assert_eq!(e.to_string(), "CPU 5 in cpulist '5' exceed the maxcpu 2");
        let e = cpu_map("^0", 2).unwrap_err();
        assert_eq!(e.chain().count(), 1);
        assert_eq!(e.to_string(), "Invalid cpulist '^0'");
        let e = cpu_map("x", 2).unwrap_err();
        let lines: Vec<String> = e.chain().map(|c| c.to_string()).collect();
        assert_eq!(
            lines,
            [
                "Invalid cpulist 'x'",
                "invalid argument: Failed to parse bitmap 'x'"
            ]
        );
        assert_eq!(map_text(&[0b1011, 0b1]), "0-1,3,8");
        assert_eq!(map_text(&[]), "");
    }

    #[test]
    fn iothread_ids() {
        assert_eq!(
            iothread_id("0").unwrap_err().to_string(),
            "Invalid IOThread id value: '0'"
        );
        assert_eq!(iothread_id("4").unwrap(), 4);
    }
}
