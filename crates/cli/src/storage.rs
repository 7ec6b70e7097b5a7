//! The pool-* and vol-* commands, each printing what virsh prints for it; vol-upload and
//! vol-download show a progress bar on a terminal.

use anyhow::{anyhow, bail, Context, Result};
use vireo_client::uri::format_uuid;
use vireo_client::{Connect, Pool};
use vireo_proto::remote::procs;
use vireo_proto::storage::{build_flags, pool_list_flags, pool_state, resize_flags, vol_type};

use crate::args::Args;
use crate::commands::print_table;

/// (switches, valued options) of each command.
fn options(cmd: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    Some(match cmd {
        "pool-list" => (
            &[
                "--all",
                "--inactive",
                "--transient",
                "--persistent",
                "--autostart",
                "--no-autostart",
                "--name",
            ],
            &[],
        ),
        "pool-info" | "pool-dumpxml" | "pool-destroy" | "pool-undefine" | "pool-refresh"
        | "pool-uuid" => (&["--inactive"], &["--pool"]),
        "pool-start" => (&["--build", "--overwrite", "--no-overwrite"], &["--pool"]),
        "pool-build" => (&["--overwrite", "--no-overwrite"], &["--pool"]),
        "pool-delete" => (&[], &["--pool"]),
        "pool-autostart" => (&["--disable"], &["--pool"]),
        "pool-define" => (&[], &["--file"]),
        "pool-create" => (&["--build", "--overwrite", "--no-overwrite"], &["--file"]),
        "pool-define-as" | "pool-create-as" => (
            &["--build", "--overwrite", "--no-overwrite"],
            &[
                "--name",
                "--type",
                "--source-dev",
                "--source-name",
                "--source-format",
                "--source-path",
                "--target",
            ],
        ),
        "vol-list" => (&[], &["--pool"]),
        "vol-info" | "vol-dumpxml" | "vol-path" | "vol-delete" => (&[], &["--pool", "--vol"]),
        "vol-wipe" => (&[], &["--pool", "--vol", "--algorithm"]),
        "vol-create" => (&["--prealloc-metadata"], &["--pool", "--file"]),
        "vol-create-as" => (
            &["--prealloc-metadata"],
            &[
                "--pool",
                "--name",
                "--capacity",
                "--allocation",
                "--format",
                "--backing-vol",
                "--backing-vol-format",
            ],
        ),
        "vol-clone" => (&["--prealloc-metadata"], &["--pool", "--vol", "--newname"]),
        "vol-resize" => (
            &["--allocate", "--delta", "--shrink"],
            &["--pool", "--vol", "--capacity"],
        ),
        "vol-upload" | "vol-download" => (
            &["--sparse"],
            &["--pool", "--vol", "--file", "--offset", "--length"],
        ),
        _ => return None,
    })
}

pub async fn run(uri: &str, readonly: bool, cmd: &str, rest: &[String]) -> Result<()> {
    let (switches, valued) = options(cmd).ok_or_else(|| anyhow!("unknown command: '{cmd}'"))?;
    let a = Args::parse(cmd, rest, switches, valued)?;
    let c = Connect::open(uri, readonly)
        .await
        .context("failed to connect to the hypervisor")?;
    if cmd.starts_with("pool-") {
        pool_cmd(&c, cmd, &a).await?;
    } else {
        vol_cmd(&c, cmd, &a).await?;
    }
    let _ = c.close().await;
    Ok(())
}

async fn get_pool(c: &Connect, key: &str) -> Result<Pool> {
    c.pool_lookup(key)
        .await
        .with_context(|| format!("failed to get pool '{key}'"))
}

async fn pool_cmd(c: &Connect, cmd: &str, a: &Args<'_>) -> Result<()> {
    let build_flags = || {
        let mut f = 0;
        if a.has("--build") {
            f |= 1;
        }
        if a.has("--overwrite") {
            f |= 2;
        }
        if a.has("--no-overwrite") {
            f |= 4;
        }
        f
    };
    match cmd {
        "pool-list" => return pool_list(c, a).await,
        "pool-define" | "pool-create" => {
            let file = a.one("file")?;
            let xml = std::fs::read_to_string(file)
                .with_context(|| format!("Failed to open file '{file}'"))?;
            if cmd == "pool-define" {
                let p = c
                    .pool_define_xml(&xml)
                    .await
                    .with_context(|| format!("Failed to define pool from {file}"))?;
                println!("Pool {} defined from {file}\n", p.name);
            } else {
                let p = c
                    .pool_create_xml(&xml, build_flags())
                    .await
                    .with_context(|| format!("Failed to create pool from {file}"))?;
                println!("Pool {} created from {file}\n", p.name);
            }
            return Ok(());
        }
        "pool-define-as" | "pool-create-as" => {
            let p = a.positionals(&["name", "type"], 2)?;
            let (name, ty) = (p[0].unwrap_or_default(), p[1].unwrap_or_default());
            let xml = pool_xml(name, ty, a);
            if cmd == "pool-define-as" {
                c.pool_define_xml(&xml)
                    .await
                    .with_context(|| format!("Failed to define pool {name}"))?;
                println!("Pool {name} defined\n");
            } else {
                c.pool_create_xml(&xml, build_flags())
                    .await
                    .with_context(|| format!("Failed to create pool {name}"))?;
                println!("Pool {name} created\n");
            }
            return Ok(());
        }
        _ => {}
    }
    let p = get_pool(c, a.one("pool")?).await?;
    let n = &p.name;
    match cmd {
        "pool-info" => {
            let i = c.pool_info(&p).await?;
            let row = |k: &str, v: &str| println!("{:<16}{v}", format!("{k}:"));
            row("Name", n);
            row("UUID", &format_uuid(&p.uuid));
            row("State", state_name(i.state));
            row("Persistent", yes_no(c.pool_is_persistent(&p).await?));
            row("Autostart", yes_no(c.pool_autostart(&p).await?));
            if i.state == pool_state::RUNNING || i.state == pool_state::DEGRADED {
                row("Capacity", &pretty(i.capacity));
                row("Allocation", &pretty(i.allocation));
                row("Available", &pretty(i.available));
            }
            println!();
        }
        "pool-dumpxml" => println!("{}", c.pool_xml_desc(&p, a.has("--inactive") as u32).await?),
        "pool-uuid" => println!("{}\n", format_uuid(&p.uuid)),
        "pool-start" => {
            c.pool_flags_call(procs::STORAGE_POOL_CREATE, &p, build_flags())
                .await
                .with_context(|| format!("Failed to start pool {n}"))?;
            println!("Pool {n} started\n");
        }
        "pool-build" => {
            let mut f = build_flags::NEW;
            if a.has("--overwrite") {
                f |= build_flags::OVERWRITE;
            }
            if a.has("--no-overwrite") {
                f |= build_flags::NO_OVERWRITE;
            }
            c.pool_flags_call(procs::STORAGE_POOL_BUILD, &p, f)
                .await
                .with_context(|| format!("Failed to build pool {n}"))?;
            println!("Pool {n} built\n");
        }
        "pool-refresh" => {
            c.pool_flags_call(procs::STORAGE_POOL_REFRESH, &p, 0)
                .await
                .with_context(|| format!("Failed to refresh pool {n}"))?;
            println!("Pool {n} refreshed\n");
        }
        "pool-delete" => {
            c.pool_flags_call(procs::STORAGE_POOL_DELETE, &p, 0)
                .await
                .with_context(|| format!("Failed to delete pool {n}"))?;
            println!("Pool {n} deleted\n");
        }
        "pool-destroy" => {
            c.pool_void_call(procs::STORAGE_POOL_DESTROY, &p)
                .await
                .with_context(|| format!("Failed to destroy pool {n}"))?;
            println!("Pool {n} destroyed\n");
        }
        "pool-undefine" => {
            c.pool_void_call(procs::STORAGE_POOL_UNDEFINE, &p)
                .await
                .with_context(|| format!("Failed to undefine pool {n}"))?;
            println!("Pool {n} has been undefined\n");
        }
        "pool-autostart" => {
            let on = !a.has("--disable");
            c.pool_set_autostart(&p, on).await.with_context(|| {
                format!(
                    "failed to {}mark pool {n} as autostarted",
                    if on { "" } else { "un" }
                )
            })?;
            if on {
                println!("Pool {n} marked as autostarted\n");
            } else {
                println!("Pool {n} unmarked as autostarted\n");
            }
        }
        _ => bail!("unknown command: '{cmd}'"),
    }
    Ok(())
}

/// The XML pool-define-as and pool-create-as make from their options.
fn pool_xml(name: &str, ty: &str, a: &Args<'_>) -> String {
    let e = |s: &str| vireo_xml::escape(s);
    let mut source = String::new();
    if let Some(d) = a.value("--source-dev") {
        source.push_str(&format!("<device path='{}'/>", e(d)));
    }
    if let Some(d) = a.value("--source-path") {
        source.push_str(&format!("<dir path='{}'/>", e(d)));
    }
    if let Some(n) = a.value("--source-name") {
        source.push_str(&format!("<name>{}</name>", e(n)));
    }
    if let Some(f) = a.value("--source-format") {
        source.push_str(&format!("<format type='{}'/>", e(f)));
    }
    let target = a
        .value("--target")
        .map(|t| format!("<target><path>{}</path></target>", e(t)))
        .unwrap_or_default();
    format!(
        "<pool type='{}'><name>{}</name><source>{source}</source>{target}</pool>",
        e(ty),
        e(name)
    )
}

async fn pool_list(c: &Connect, a: &Args<'_>) -> Result<()> {
    use pool_list_flags::*;
    a.none()?;
    let mut flags = 0;
    if !a.has("--all") {
        flags |= if a.has("--inactive") {
            INACTIVE
        } else {
            ACTIVE
        };
    }
    for (s, f) in [
        ("--transient", TRANSIENT),
        ("--persistent", PERSISTENT),
        ("--autostart", AUTOSTART),
        ("--no-autostart", NO_AUTOSTART),
    ] {
        if a.has(s) {
            flags |= f;
        }
    }
    let mut pools = c
        .list_all_pools(flags)
        .await
        .context("Failed to list pools")?;
    pools.sort_by(|x, y| x.name.cmp(&y.name));
    if a.has("--name") {
        // virsh pads each name to 20 columns here.
        for p in &pools {
            println!("{:<20}", p.name);
        }
        println!();
        return Ok(());
    }
    let mut rows = vec![vec!["Name".to_string(), "State".into(), "Autostart".into()]];
    for p in &pools {
        let i = c.pool_info(p).await?;
        let state = if i.state == pool_state::INACTIVE {
            "inactive"
        } else {
            "active"
        };
        rows.push(vec![
            p.name.clone(),
            state.into(),
            yes_no(c.pool_autostart(p).await?).into(),
        ]);
    }
    print_table(&rows);
    Ok(())
}

async fn vol_cmd(c: &Connect, cmd: &str, a: &Args<'_>) -> Result<()> {
    let pool = match a.value("--pool") {
        Some(p) => Some(get_pool(c, p).await?),
        None => None,
    };
    match cmd {
        "vol-list" => {
            let p = match pool {
                Some(p) => p,
                None => get_pool(c, a.one("pool")?).await?,
            };
            let mut vols = c
                .list_all_volumes(&p)
                .await
                .context("Failed to list volumes")?;
            vols.sort_by(|x, y| x.name.cmp(&y.name));
            let mut rows = vec![vec!["Name".to_string(), "Path".into()]];
            for v in &vols {
                rows.push(vec![v.name.clone(), c.vol_path(v).await?]);
            }
            print_table(&rows);
            return Ok(());
        }
        "vol-create" => {
            let p = a.positionals(&["pool", "file"], 2)?;
            let pool = get_pool(c, p[0].unwrap_or_default()).await?;
            let file = p[1].unwrap_or_default();
            let xml = std::fs::read_to_string(file)
                .with_context(|| format!("Failed to open file '{file}'"))?;
            let v = c
                .vol_create_xml(&pool, &xml, a.has("--prealloc-metadata") as u32)
                .await
                .with_context(|| format!("Failed to create vol from {file}"))?;
            println!("Vol {} created from {file}\n", v.name);
            return Ok(());
        }
        "vol-create-as" => {
            let p = a.positionals(&["pool", "name", "capacity"], 3)?;
            let pool = get_pool(c, p[0].unwrap_or_default()).await?;
            let name = p[1].unwrap_or_default();
            let cap = scaled(p[2].unwrap_or_default())?;
            let e = |s: &str| vireo_xml::escape(s);
            let mut xml = format!("<volume><name>{}</name><capacity>{cap}</capacity>", e(name));
            if let Some(al) = a.value("--allocation") {
                xml.push_str(&format!("<allocation>{}</allocation>", scaled(al)?));
            }
            if let Some(f) = a.value("--format") {
                xml.push_str(&format!("<target><format type='{}'/></target>", e(f)));
            }
            if let Some(b) = a.value("--backing-vol") {
                // A name in the same pool, or a path.
                let path = match c.vol_lookup(Some(&pool), b).await {
                    Ok(v) => c.vol_path(&v).await?,
                    Err(_) => b.to_string(),
                };
                xml.push_str(&format!("<backingStore><path>{}</path>", e(&path)));
                if let Some(f) = a.value("--backing-vol-format") {
                    xml.push_str(&format!("<format type='{}'/>", e(f)));
                }
                xml.push_str("</backingStore>");
            }
            xml.push_str("</volume>");
            c.vol_create_xml(&pool, &xml, a.has("--prealloc-metadata") as u32)
                .await
                .with_context(|| format!("Failed to create vol {name}"))?;
            println!("Vol {name} created\n");
            return Ok(());
        }
        _ => {}
    }
    let key = match cmd {
        "vol-clone" => a.positionals(&["vol", "newname"], 2)?[0].unwrap_or_default(),
        "vol-resize" => a.positionals(&["vol", "capacity"], 2)?[0].unwrap_or_default(),
        "vol-upload" | "vol-download" => a.positionals(&["vol", "file"], 2)?[0].unwrap_or_default(),
        _ => a.one("vol")?,
    };
    let v = c
        .vol_lookup(pool.as_ref(), key)
        .await
        .with_context(|| format!("failed to get vol '{key}'"))?;
    let n = &v.name;
    match cmd {
        "vol-info" => {
            let i = c.vol_info(&v).await?;
            let row = |k: &str, val: &str| println!("{:<16}{val}", format!("{k}:"));
            row("Name", n);
            row(
                "Type",
                match i.type_ {
                    vol_type::FILE => "file",
                    vol_type::BLOCK => "block",
                    vol_type::DIR => "dir",
                    vol_type::NETWORK => "network",
                    vol_type::NETDIR => "netdir",
                    _ => "ploop",
                },
            );
            row("Capacity", &pretty(i.capacity));
            row("Allocation", &pretty(i.allocation));
            println!();
        }
        "vol-dumpxml" => println!("{}", c.vol_xml_desc(&v).await?),
        "vol-path" => println!("{}\n", c.vol_path(&v).await?),
        "vol-delete" => {
            c.vol_delete(&v)
                .await
                .with_context(|| format!("Failed to delete vol {n}"))?;
            println!("Vol {n} deleted\n");
        }
        "vol-wipe" => {
            let alg = match a.value("--algorithm").unwrap_or("zero") {
                "zero" => 0,
                "nnsa" => 1,
                "dod" => 2,
                "bsi" => 3,
                "gutmann" => 4,
                "schneier" => 5,
                "pfitzner7" => 6,
                "pfitzner33" => 7,
                "random" => 8,
                "trim" => 9,
                other => bail!("Unsupported algorithm '{other}'"),
            };
            c.vol_wipe(&v, alg)
                .await
                .with_context(|| format!("Failed to wipe vol {n}"))?;
            println!("Vol {n} wiped\n");
        }
        "vol-clone" => {
            let new = a.positionals(&["vol", "newname"], 2)?[1].unwrap_or_default();
            let pool = match &pool {
                Some(p) => p.clone(),
                None => get_pool(c, &v.pool).await?,
            };
            let xml = format!("<volume><name>{}</name></volume>", vireo_xml::escape(new));
            c.vol_create_xml_from(&pool, &xml, &v, a.has("--prealloc-metadata") as u32)
                .await
                .with_context(|| format!("Failed to clone vol from {n}"))?;
            println!("Vol {new} cloned from {n}\n");
        }
        "vol-resize" => {
            let text = a.positionals(&["vol", "capacity"], 2)?[1].unwrap_or_default();
            let (delta, t) = match text.strip_prefix('-') {
                Some(t) => (true, t),
                None => (a.has("--delta"), text),
            };
            let mut flags = 0;
            if delta {
                flags |= resize_flags::DELTA;
            }
            if a.has("--allocate") {
                flags |= resize_flags::ALLOCATE;
            }
            if a.has("--shrink") || text.starts_with('-') {
                flags |= resize_flags::SHRINK;
            }
            c.vol_resize(&v, scaled(t)?, flags)
                .await
                .with_context(|| format!("Failed to change size of volume '{n}' to {text}"))?;
            println!("Size of volume '{n}' successfully changed to {text}\n");
        }
        "vol-upload" | "vol-download" => {
            let file = a.positionals(&["vol", "file"], 2)?[1].unwrap_or_default();
            let offset = a.value("--offset").map(scaled).transpose()?.unwrap_or(0);
            let length = a.value("--length").map(scaled).transpose()?.unwrap_or(0);
            let sparse = a.has("--sparse");
            if cmd == "vol-upload" {
                let f = std::fs::File::open(file).with_context(|| format!("cannot read {file}"))?;
                let total = f.metadata().map(|m| m.len()).unwrap_or(0);
                let bar = progress(total);
                c.vol_upload(&v, &f, offset, sparse, |done| bar.set_position(done))
                    .await
                    .with_context(|| format!("cannot upload to volume {n}"))?;
                bar.finish_and_clear();
            } else {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(file)
                    .with_context(|| format!("cannot create {file}"))?;
                let total = if length > 0 {
                    length
                } else {
                    c.vol_info(&v).await.map(|i| i.capacity).unwrap_or(0)
                };
                let bar = progress(total);
                c.vol_download(&v, &f, offset, length, sparse, |done| {
                    bar.set_position(done)
                })
                .await
                .with_context(|| format!("cannot download from volume {n}"))?;
                bar.finish_and_clear();
            }
            println!();
        }
        _ => bail!("unknown command: '{cmd}'"),
    }
    Ok(())
}

/// A bar on stderr when it is a terminal, nothing otherwise.
fn progress(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bytes}/{total_bytes} [{bar:40}] {bytes_per_sec}, {eta} left",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// virsh's sizes: a number with an optional unit (`64M`, `1G`, `512KiB`, `10MB`).
fn scaled(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow!("Scaled numeric value '{s}' is invalid"))?;
    let mult = if unit.is_empty() {
        1
    } else {
        vireo_xml::unit_multiplier(unit)
            .ok_or_else(|| anyhow!("Scaled numeric value '{s}' is invalid"))?
    };
    n.checked_mul(mult)
        .ok_or_else(|| anyhow!("Scaled numeric value '{s}' is too large"))
}

/// virsh's sizes for people: two decimals and the largest binary unit below the value.
fn pretty(v: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut x = v as f64;
    let mut i = 0;
    while x >= 1024.0 && i < UNITS.len() - 1 {
        x /= 1024.0;
        i += 1;
    }
    format!("{x:.2} {}", UNITS[i])
}

fn state_name(s: u32) -> &'static str {
    match s {
        pool_state::INACTIVE => "inactive",
        pool_state::BUILDING => "building",
        pool_state::RUNNING => "running",
        pool_state::DEGRADED => "degraded",
        _ => "inaccessible",
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
