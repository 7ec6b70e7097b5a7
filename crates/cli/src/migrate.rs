//! migrate, migrate-setspeed, migrate-getspeed, migrate-setmaxdowntime,
//! migrate-getmaxdowntime and migrate-postcopy, as virsh has them; a migration shows its
//! progress on a terminal (or with --verbose), from the job's statistics.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use vireo_client::{Connect, Domain};
use vireo_proto::migrate::{flags, param, MAX_SPEED_POSTCOPY};
use vireo_proto::typed::{find, TypedParam, TypedValue};

use crate::args::Args;

pub const COMMANDS: [&str; 6] = [
    "migrate",
    "migrate-setspeed",
    "migrate-getspeed",
    "migrate-setmaxdowntime",
    "migrate-getmaxdowntime",
    "migrate-postcopy",
];

/// virsh's switches of `migrate` and the flags they set (0: handled apart).
const SWITCHES: &[(&str, u32)] = &[
    ("--live", flags::LIVE),
    ("--p2p", flags::PEER2PEER),
    ("--tunnelled", flags::TUNNELLED),
    ("--persistent", flags::PERSIST_DEST),
    ("--undefinesource", flags::UNDEFINE_SOURCE),
    ("--suspend", flags::PAUSED),
    ("--copy-storage-all", flags::NON_SHARED_DISK),
    ("--copy-storage-inc", flags::NON_SHARED_INC),
    ("--change-protection", flags::CHANGE_PROTECTION),
    ("--unsafe", flags::UNSAFE),
    ("--offline", flags::OFFLINE),
    ("--compressed", flags::COMPRESSED),
    ("--abort-on-error", flags::ABORT_ON_ERROR),
    ("--auto-converge", flags::AUTO_CONVERGE),
    ("--postcopy", flags::POSTCOPY),
    ("--tls", flags::TLS),
    ("--parallel", flags::PARALLEL),
    ("--verbose", 0),
    ("--postcopy-after-precopy", 0),
];

/// (switches, valued options) of each command.
pub(crate) fn options(cmd: &str) -> Option<(Vec<&'static str>, &'static [&'static str])> {
    Some(match cmd {
        "migrate" => (
            SWITCHES.iter().map(|(s, _)| *s).collect(),
            &[
                "--migrateuri",
                "--dname",
                "--xml",
                "--persistent-xml",
                "--bandwidth",
                "--postcopy-bandwidth",
                "--listen-address",
                "--migrate-disks",
                "--disks-port",
                "--disks-uri",
                "--auto-converge-initial",
                "--auto-converge-increment",
            ],
        ),
        "migrate-setspeed" | "migrate-getspeed" => (vec!["--postcopy"], &[]),
        "migrate-setmaxdowntime" | "migrate-getmaxdowntime" | "migrate-postcopy" => {
            (Vec::new(), &[])
        }
        _ => return None,
    })
}

pub async fn run(uri: &str, readonly: bool, cmd: &str, rest: &[String]) -> Result<()> {
    let Some((switches, valued)) = options(cmd) else {
        bail!("unknown command: '{cmd}'");
    };
    let a = Args::parse(cmd, rest, &switches, valued)?;
    let c = Connect::open(uri, readonly)
        .await
        .context("failed to connect to the hypervisor")?;
    // virsh ends each of these commands' output with an empty line, whatever happened.
    let r = command(&c, &a, cmd).await;
    println!();
    r
}

async fn command(c: &Connect, a: &Args<'_>, cmd: &str) -> Result<()> {
    match cmd {
        "migrate" => migrate(c, a).await,
        "migrate-setspeed" => {
            let p = a.positionals(&["domain", "bandwidth"], 2)?;
            let d = domain(c, p[0].unwrap_or_default()).await?;
            let bw = number("bandwidth", p[1].unwrap_or_default())?;
            let f = if a.has("--postcopy") {
                MAX_SPEED_POSTCOPY
            } else {
                0
            };
            Ok(c.migrate_set_speed(&d, bw, f).await?)
        }
        "migrate-getspeed" => {
            let d = domain(c, a.one("domain")?).await?;
            let f = if a.has("--postcopy") {
                MAX_SPEED_POSTCOPY
            } else {
                0
            };
            println!("{}", c.migrate_get_speed(&d, f).await?);
            Ok(())
        }
        "migrate-setmaxdowntime" => {
            let p = a.positionals(&["domain", "downtime"], 2)?;
            let d = domain(c, p[0].unwrap_or_default()).await?;
            let ms = number("downtime", p[1].unwrap_or_default())?;
            if ms < 1 {
                bail!("migrate: Invalid downtime");
            }
            Ok(c.migrate_set_max_downtime(&d, ms).await?)
        }
        "migrate-getmaxdowntime" => {
            let d = domain(c, a.one("domain")?).await?;
            println!("{}", c.migrate_get_max_downtime(&d).await?);
            Ok(())
        }
        _ => {
            let d = domain(c, a.one("domain")?).await?;
            Ok(c.migrate_start_postcopy(&d).await?)
        }
    }
}

fn number(what: &str, v: &str) -> Result<u64> {
    v.parse().map_err(|_| {
        anyhow::anyhow!("Numeric value '{v}' for <{what}> option is malformed or out of range")
    })
}

async fn domain(c: &Connect, key: &str) -> Result<Domain> {
    c.lookup(key)
        .await
        .with_context(|| format!("failed to get domain '{key}'"))
}

/// `virsh migrate`: peer to peer (the source's daemon reaches the destination) or managed
/// (this client drives both daemons).
async fn migrate(c: &Connect, a: &Args<'_>) -> Result<()> {
    let p = a.positionals(&["domain", "desturi"], 2)?;
    // virsh's migrate says no more than this of a domain it cannot find.
    let key = p[0].unwrap_or_default();
    let Ok(d) = c.lookup(key).await else {
        bail!("failed to get domain '{key}'");
    };
    let desturi = p[1].unwrap_or_default();
    let mut flags = 0;
    for (s, f) in SWITCHES {
        if a.has(s) {
            flags |= f;
        }
    }
    if a.has("--postcopy-after-precopy") && flags & flags::POSTCOPY == 0 {
        bail!("--postcopy-after-precopy can only be used with --postcopy");
    }
    let mut params: Vec<TypedParam> = Vec::new();
    for (opt, name) in [
        ("--migrateuri", param::URI),
        ("--dname", param::DEST_NAME),
        ("--listen-address", param::LISTEN_ADDRESS),
        ("--disks-uri", param::DISKS_URI),
    ] {
        if let Some(v) = a.value(opt) {
            params.push(TypedParam::string(name, v));
        }
    }
    for (opt, name) in [
        ("--xml", param::DEST_XML),
        ("--persistent-xml", param::PERSIST_XML),
    ] {
        if let Some(f) = a.value(opt) {
            let xml =
                std::fs::read_to_string(f).with_context(|| format!("Failed to open file '{f}'"))?;
            params.push(TypedParam::string(name, xml));
        }
    }
    for (opt, name) in [
        ("--bandwidth", param::BANDWIDTH),
        ("--postcopy-bandwidth", param::BANDWIDTH_POSTCOPY),
    ] {
        if let Some(v) = a.value(opt) {
            params.push(TypedParam::new(
                name,
                TypedValue::ULLong(number(&opt[2..], v)?),
            ));
        }
    }
    for (opt, name) in [
        ("--disks-port", param::DISKS_PORT),
        ("--auto-converge-initial", param::AUTO_CONVERGE_INITIAL),
        ("--auto-converge-increment", param::AUTO_CONVERGE_INCREMENT),
    ] {
        if let Some(v) = a.value(opt) {
            let n = i32::try_from(number(&opt[2..], v)?).map_err(|_| {
                anyhow::anyhow!(
                    "Numeric value '{v}' for <{}> option is malformed or out of range",
                    &opt[2..]
                )
            })?;
            params.push(TypedParam::int(name, n));
        }
    }
    if let Some(disks) = a.value("--migrate-disks") {
        for disk in disks.split(',').filter(|s| !s.is_empty()) {
            params.push(TypedParam::string(param::MIGRATE_DISKS, disk));
        }
    }
    let verbose = a.has("--verbose");
    let switch = a.has("--postcopy-after-precopy");
    if flags & flags::PEER2PEER != 0 {
        follow(
            c,
            &d,
            verbose,
            switch,
            c.migrate_to_uri(&d, desturi, &params, flags),
        )
        .await
    } else {
        if flags & flags::TUNNELLED != 0 {
            bail!("migrate: Unsupported flags (0x{:x})", flags::TUNNELLED);
        }
        let dest = Connect::open(desturi, false)
            .await
            .context("failed to connect to the destination hypervisor")?;
        follow(c, &d, verbose, switch, async {
            c.migrate(&d, &dest, params, flags).await.map(|_| ())
        })
        .await
    }
}

/// Runs the migration while its progress shows on stderr: a bar on a terminal, virsh's
/// `Migration: [ NN %]` lines with `verbose` elsewhere; with `switch`, post-copy starts
/// after the first pass over memory.
async fn follow(
    c: &Connect,
    d: &Domain,
    verbose: bool,
    switch: bool,
    call: impl std::future::Future<Output = vireo_client::Result<()>>,
) -> Result<()> {
    let target = indicatif::ProgressDrawTarget::stderr();
    let tty = !target.is_hidden();
    let bar = indicatif::ProgressBar::with_draw_target(Some(100), target);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("Migration: [{bar:40}] {percent:>3} % {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    let text = verbose && !tty;
    let mut call = std::pin::pin!(call);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut switched = false;
    let r = loop {
        tokio::select! {
            r = &mut call => break r,
            _ = tick.tick() => {
                if !tty && !text && !switch {
                    continue;
                }
                // Nothing to show before the job began or after it ended.
                let Ok((vireo_proto::remote::job::UNBOUNDED, params)) = c.job_stats(d).await
                else {
                    continue;
                };
                let get = |f: &str| find(&params, f).and_then(TypedValue::as_u64);
                if let (Some(total), Some(left)) = (get("data_total"), get("data_remaining")) {
                    if let Some(pct) = (total.saturating_sub(left) * 100).checked_div(total) {
                        bar.set_position(pct.min(99));
                        if text {
                            eprint!("\rMigration: [{:3} %]", pct.min(99));
                        }
                    }
                }
                if let Some(bps) = get("memory_bps") {
                    bar.set_message(format!("{:.3} MiB/s", bps as f64 / f64::from(1 << 20)));
                }
                if switch && !switched && get("memory_iteration").is_some_and(|i| i >= 2) {
                    switched = true;
                    c.migrate_start_postcopy(d).await?;
                }
            }
        }
    };
    if r.is_ok() {
        bar.set_position(100);
        if text {
            eprintln!("\rMigration: [100 %]");
        }
    }
    bar.finish();
    Ok(r?)
}
