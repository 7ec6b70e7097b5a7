//! The pool-* and vol-* commands, each printing what virsh prints for it; vol-upload and
//! vol-download show a progress bar on a terminal.

use anyhow::{anyhow, bail, Context, Result};
use vireo_client::uri::format_uuid;
use vireo_client::{Connect, Pool, Vol};
use vireo_proto::remote::procs;
use vireo_proto::storage::{
    build_flags, event, pool_list_flags, pool_state, resize_flags, vol_create_flags, vol_type,
    XML_INACTIVE,
};

use crate::args::Args;
use crate::commands::print_table;

/// The commands of this module.
pub const COMMANDS: &[&str] = &[
    "pool-list",
    "pool-info",
    "pool-dumpxml",
    "pool-uuid",
    "pool-name",
    "pool-edit",
    "pool-capabilities",
    "pool-event",
    "find-storage-pool-sources",
    "find-storage-pool-sources-as",
    "pool-define",
    "pool-create",
    "pool-define-as",
    "pool-create-as",
    "pool-build",
    "pool-start",
    "pool-destroy",
    "pool-delete",
    "pool-undefine",
    "pool-refresh",
    "pool-autostart",
    "vol-list",
    "vol-info",
    "vol-dumpxml",
    "vol-path",
    "vol-key",
    "vol-name",
    "vol-pool",
    "vol-create",
    "vol-create-as",
    "vol-create-from",
    "vol-clone",
    "vol-resize",
    "vol-delete",
    "vol-wipe",
    "vol-upload",
    "vol-download",
];

/// (switches, valued options) of each command.
pub(crate) fn options(cmd: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
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
                "--uuid",
                "--details",
            ],
            &["--type"],
        ),
        "pool-info" => (&["--bytes"], &["--pool"]),
        "pool-dumpxml" | "pool-destroy" | "pool-undefine" | "pool-refresh" | "pool-uuid" => {
            (&["--inactive"], &["--pool"])
        }
        "pool-name" | "pool-edit" => (&[], &["--pool"]),
        "pool-capabilities" => (&[], &[]),
        "pool-event" => (
            &["--loop", "--list", "--timestamp"],
            &["--pool", "--event", "--timeout"],
        ),
        "find-storage-pool-sources" => (&[], &["--type", "--srcSpec"]),
        "find-storage-pool-sources-as" => (&[], &["--type", "--host", "--port", "--initiator"]),
        "pool-start" => (&["--build", "--overwrite", "--no-overwrite"], &["--pool"]),
        "pool-build" => (&["--overwrite", "--no-overwrite"], &["--pool"]),
        "pool-delete" => (&[], &["--pool"]),
        "pool-autostart" => (&["--disable"], &["--pool"]),
        "pool-define" => (&[], &["--file"]),
        "pool-create" => (&["--build", "--overwrite", "--no-overwrite"], &["--file"]),
        "pool-define-as" => (&["--print-xml"], POOL_AS),
        "pool-create-as" => (
            &["--print-xml", "--build", "--overwrite", "--no-overwrite"],
            POOL_AS,
        ),
        "vol-list" => (&["--details"], &["--pool"]),
        "vol-create-from" => (
            &["--prealloc-metadata", "--reflink", "--validate"],
            &["--pool", "--file", "--vol", "--inputpool"],
        ),
        "vol-key" => (&[], &["--vol", "--pool"]),
        "vol-name" => (&[], &["--vol"]),
        "vol-pool" => (&["--uuid"], &["--vol"]),
        "vol-info" => (&["--bytes", "--physical"], &["--pool", "--vol"]),
        "vol-dumpxml" | "vol-path" | "vol-delete" => (&[], &["--pool", "--vol"]),
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

/// The valued options of pool-define-as and pool-create-as.
const POOL_AS: &[&str] = &[
    "--name",
    "--type",
    "--source-host",
    "--source-path",
    "--source-dev",
    "--source-name",
    "--target",
    "--source-format",
    "--auth-type",
    "--auth-username",
    "--secret-usage",
    "--secret-uuid",
    "--adapter-name",
    "--adapter-wwnn",
    "--adapter-wwpn",
    "--adapter-parent",
    "--adapter-parent-wwnn",
    "--adapter-parent-wwpn",
    "--adapter-parent-fabric-wwn",
    "--source-protocol-ver",
    "--source-initiator",
];

pub async fn run(uri: &str, readonly: bool, cmd: &str, rest: &[String]) -> Result<()> {
    let (switches, valued) = options(cmd).ok_or_else(|| anyhow!("unknown command: '{cmd}'"))?;
    let a = Args::parse(cmd, rest, switches, valued)?;
    // The new commands' missing and extra arguments are refused before anything runs.
    let (names, required): (&[&str], usize) = match cmd {
        "pool-name" | "pool-edit" => (&["pool"], 1),
        "pool-capabilities" => (&[], 0),
        "pool-event" => (&["pool", "event"], 0),
        "find-storage-pool-sources" | "find-storage-pool-sources-as" => (&["type"], 1),
        "vol-create-from" => (&["pool", "file", "vol"], 3),
        "vol-key" => (&["vol", "pool"], 1),
        "vol-name" | "vol-pool" => (&["vol"], 1),
        "pool-list" => (&[], usize::MAX),
        "vol-create" => (&["pool", "file"], 2),
        "vol-create-as" => (&["pool", "name", "capacity"], 3),
        "pool-define" | "pool-create" => (&["file"], 1),
        "pool-define-as" | "pool-create-as" => (&["name", "type"], 2),
        "vol-clone" => (&["vol", "newname"], 2),
        "vol-resize" => (&["vol", "capacity"], 2),
        "vol-upload" | "vol-download" => (&["vol", "file"], 2),
        "vol-list" => (&["pool"], 1),
        c if c.starts_with("vol-") => (&["vol"], 1),
        _ => (&["pool"], 1),
    };
    if cmd == "pool-list" {
        a.none()?;
    }
    if required != usize::MAX {
        a.positionals(names, required)?;
    }
    let c = Connect::open(uri, readonly)
        .await
        .context("failed to connect to the hypervisor")?;
    if NEW.contains(&cmd) {
        // These print virsh's blank line whether they worked or not, as virsh does after
        // every command it ran.
        let r = more_cmd(&c, cmd, &a).await;
        println!();
        let _ = c.close().await;
        return r;
    }
    let r = if cmd.starts_with("pool-") {
        pool_cmd(&c, cmd, &a).await
    } else {
        vol_cmd(&c, cmd, &a).await
    };
    if r.is_err() {
        // virsh's blank line after a command it ran, which failed.
        println!();
    }
    let _ = c.close().await;
    r
}

/// The commands [`more_cmd`] runs.
const NEW: &[&str] = &[
    "pool-name",
    "pool-edit",
    "pool-capabilities",
    "pool-event",
    "find-storage-pool-sources",
    "find-storage-pool-sources-as",
    "vol-create-from",
    "vol-key",
    "vol-name",
    "vol-pool",
];

/// A pool as virsh's `virshCommandOptPoolBy` finds it: by UUID (when `key` is as long as
/// one) then by name, as `by_uuid` and `by_name` allow; its failure names the key, then
/// the daemon's reason (none when nothing was asked).
async fn pool_by(c: &Connect, key: &str, by_uuid: bool, by_name: bool) -> Result<Pool> {
    let mut last = None;
    if by_uuid && key.len() == 36 {
        match vireo_client::uri::parse_uuid(key) {
            Some(u) => match c.pool_lookup_by_uuid(&u).await {
                Ok(p) => return Ok(p),
                Err(e) => last = Some(anyhow::Error::from(e)),
            },
            None => last = Some(anyhow!("invalid argument: {key}")),
        }
    }
    if by_name {
        match c.pool_lookup_by_name(key).await {
            Ok(p) => return Ok(p),
            Err(e) => last = Some(e.into()),
        }
    }
    let msg = format!("failed to get pool '{key}'");
    Err(match last {
        Some(e) => e.context(msg),
        None => anyhow!(msg),
    })
}

/// A volume as virsh's `virshCommandOptVolBy` finds it: with `pool_key`, by name in that
/// (active) pool, then by key, then by path; without, by key then path (`by_name` false:
/// by key and path only). A volume found elsewhere than the pool named is refused.
async fn vol_by(
    c: &Connect,
    key: &str,
    pool_opt: Option<&str>,
    pool_key: Option<&str>,
) -> Result<Vol> {
    let pool = match pool_key {
        Some(k) => {
            let p = pool_by(c, k, true, true).await?;
            if !c.pool_is_active(&p).await.unwrap_or(false) {
                bail!("pool '{k}' is not active");
            }
            Some(p)
        }
        None => None,
    };
    let mut found = None;
    let mut last = None;
    if let Some(p) = &pool {
        match c.vol_lookup_by_name(p, key).await {
            Ok(v) => found = Some(v),
            Err(e) => last = Some(e),
        }
    }
    if found.is_none() {
        match c.vol_lookup_by_key(key).await {
            Ok(v) => found = Some(v),
            Err(e) => last = Some(e),
        }
    }
    if found.is_none() {
        match c.vol_lookup_by_path(key).await {
            Ok(v) => found = Some(v),
            Err(e) => last = Some(e),
        }
    }
    let Some(v) = found else {
        let msg = match pool_opt {
            Some(opt) if pool.is_none() => {
                format!("failed to get vol '{key}', specifying --{opt} might help")
            }
            _ => format!("failed to get vol '{key}'"),
        };
        return Err(match last {
            Some(e) => anyhow::Error::from(e).context(msg),
            None => anyhow!(msg),
        });
    };
    if let Some(p) = &pool {
        if let Ok(vp) = c.pool_lookup_by_volume(&v).await {
            if vp.name != p.name {
                bail!("Requested volume '{key}' is not in pool '{}'", p.name);
            }
        }
    }
    Ok(v)
}

/// The pool, volume and discovery commands virsh has beside the first ones: pool-name,
/// pool-edit, pool-capabilities, pool-event, find-storage-pool-sources(-as),
/// vol-create-from, vol-key, vol-name, vol-pool.
async fn more_cmd(c: &Connect, cmd: &str, a: &Args<'_>) -> Result<()> {
    match cmd {
        "pool-name" => {
            let key = a.one("pool")?;
            let p = pool_by(c, key, true, false).await?;
            println!("{}", p.name);
        }
        "pool-edit" => {
            let key = a.one("pool")?;
            let p = pool_by(c, key, true, true).await?;
            crate::edit::run(
                || c.pool_xml_desc(&p, XML_INACTIVE),
                |xml: String| async move { c.pool_define_xml(&xml).await.map(|q| q.name) },
                &format!("Pool {} XML configuration not changed.\n", p.name),
                |name: &str| format!("Pool {name} XML configuration edited."),
            )
            .await?;
        }
        "pool-capabilities" => {
            a.none()?;
            let caps = c
                .storage_pool_capabilities()
                .await
                .context("failed to get storage pool capabilities")?;
            println!("{caps}");
        }
        "find-storage-pool-sources" | "find-storage-pool-sources-as" => {
            let ty = a.one("type")?;
            let spec = if cmd == "find-storage-pool-sources" {
                match a.value("--srcSpec") {
                    Some(f) => Some(crate::virsh::read_file(f)?),
                    None => None,
                }
            } else {
                match a.value("--host") {
                    Some(host) => {
                        let e = |s: &str| vireo_xml::escape(s);
                        let mut x = format!("<source>\n  <host name='{}'", e(host));
                        if let Some(port) = a.value("--port") {
                            x.push_str(&format!(" port='{}'", e(port)));
                        }
                        x.push_str("/>\n");
                        if let Some(iqn) = a.value("--initiator") {
                            x.push_str(&format!(
                                "  <initiator>\n    <iqn name='{}'/>\n  </initiator>\n",
                                e(iqn)
                            ));
                        }
                        x.push_str("</source>\n");
                        Some(x)
                    }
                    None => None,
                }
            };
            let found = c
                .find_storage_pool_sources(ty, spec.as_deref(), 0)
                .await
                .with_context(|| format!("Failed to find any {ty} pool sources"))?;
            print!("{found}");
        }
        "pool-event" => {
            if a.has("--list") {
                println!("lifecycle\nrefresh");
                return Ok(());
            }
            let given = a.positionals(&["pool", "event"], 0)?;
            let (pool_key, name) = (given[0], given[1]);
            let name =
                name.ok_or_else(|| anyhow!("either --list or --event <type> is required"))?;
            let event_id = match name {
                "lifecycle" => event::ID_LIFECYCLE,
                "refresh" => event::ID_REFRESH,
                other => bail!("unknown event type {other}"),
            };
            let timeout = event_timeout(a)?;
            // virsh reports a pool it cannot find and waits for the events of every pool.
            let mut missed = None;
            let pool = match pool_key {
                Some(k) => match pool_by(c, k, true, true).await {
                    Ok(p) => Some(p),
                    Err(e) => {
                        eprintln!("error: failed to get pool '{k}'");
                        missed = e.chain().nth(1).map(|r| r.to_string());
                        None
                    }
                },
                None => None,
            };
            let mut evs = c.pool_events(pool.as_ref(), event_id).await?;
            let n = wait_events(&mut evs, a.has("--loop"), a.has("--timestamp"), timeout).await;
            let _ = c.pool_event_deregister(evs.callback_id()).await;
            if n? == 0 {
                if let Some(why) = missed {
                    eprintln!("error: {why}");
                }
                return Err(crate::network::Quiet.into());
            }
        }
        "vol-create-from" => {
            let p = a.positionals(&["pool", "file", "vol"], 3)?;
            let (pool_key, file, vol_key) = (
                p[0].unwrap_or_default(),
                p[1].unwrap_or_default(),
                p[2].unwrap_or_default(),
            );
            let pool = pool_by(c, pool_key, true, true).await?;
            let input = vol_by(c, vol_key, Some("inputpool"), a.value("--inputpool")).await?;
            let xml = crate::virsh::read_file(file)?;
            let flags = a.flags(&[
                ("--prealloc-metadata", vol_create_flags::PREALLOC_METADATA),
                ("--reflink", vol_create_flags::REFLINK),
                ("--validate", vol_create_flags::VALIDATE),
            ]);
            let v = c
                .vol_create_xml_from(&pool, &xml, &input, flags)
                .await
                .with_context(|| format!("Failed to create vol from {file}"))?;
            println!("Vol {} created from input vol {}", v.name, input.name);
        }
        "vol-key" => {
            let p = a.positionals(&["vol", "pool"], 1)?;
            let key = p[0].unwrap_or_default();
            let v = vol_by(c, key, Some("pool"), p[1]).await?;
            println!("{}", v.key);
        }
        "vol-name" | "vol-pool" => {
            let key = a.one("vol")?;
            let v = vol_by(c, key, None, None).await?;
            if cmd == "vol-name" {
                println!("{}", v.name);
            } else {
                let p = c
                    .pool_lookup_by_volume(&v)
                    .await
                    .context("failed to get parent pool")?;
                if a.has("--uuid") {
                    println!("{}", format_uuid(&p.uuid));
                } else {
                    println!("{}", p.name);
                }
            }
        }
        _ => bail!("unknown command: '{cmd}'"),
    }
    Ok(())
}

/// virsh's `--timeout`: whole seconds, at least one.
pub(crate) fn event_timeout(a: &Args<'_>) -> Result<Option<std::time::Duration>> {
    let Some(v) = a.value("--timeout") else {
        return Ok(None);
    };
    let bad = || anyhow!("Numeric value '{v}' for <timeout> option is malformed or out of range");
    let s: i32 = v.parse().map_err(|_| bad())?;
    if !(1..=i32::MAX / 1000).contains(&s) {
        return Err(bad());
    }
    Ok(Some(std::time::Duration::from_secs(s as u64)))
}

/// Events as virsh prints them, one line each.
pub(crate) trait EventLines {
    /// The next event's line; `None` once the connection is gone.
    async fn next_line(&mut self) -> Option<String>;
}

impl EventLines for vireo_client::PoolEvents {
    async fn next_line(&mut self) -> Option<String> {
        let e = self.next().await?;
        Some(if e.event_id == event::ID_REFRESH {
            format!("event 'refresh' for storage pool {}", e.pool.name)
        } else {
            let what = match e.event {
                event::DEFINED => "Defined",
                event::UNDEFINED => "Undefined",
                event::STARTED => "Started",
                event::STOPPED => "Stopped",
                event::CREATED => "Created",
                event::DELETED => "Deleted",
                _ => "unknown",
            };
            format!("event 'lifecycle' for storage pool {}: {what}", e.pool.name)
        })
    }
}

/// virsh's event wait: the first event (with `looping`, each until the timeout or ^C),
/// stamped with `stamp`; then why it stopped, and the count. The count is returned.
pub(crate) async fn wait_events(
    evs: &mut impl EventLines,
    looping: bool,
    stamp: bool,
    timeout: Option<std::time::Duration>,
) -> Result<u32> {
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut count = 0u32;
    let ended = loop {
        let wait = async {
            match deadline {
                Some(d) => tokio::time::timeout_at(d, evs.next_line()).await.ok(),
                None => Some(evs.next_line().await),
            }
        };
        tokio::select! {
            r = wait => match r {
                None => break Some("event loop timed out"),
                Some(None) => break None,
                Some(Some(line)) => {
                    if stamp {
                        println!("{}: {line}", crate::network::timestamp());
                    } else {
                        println!("{line}");
                    }
                    count += 1;
                    if !looping {
                        break Some("");
                    }
                }
            },
            _ = tokio::signal::ctrl_c() => break Some("event loop interrupted"),
        }
    };
    match ended {
        None => bail!("the connection to the daemon was closed"),
        Some("") => {}
        Some(why) => println!("{why}"),
    }
    println!("events received: {count}");
    Ok(count)
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
            exclusive(a, "--overwrite", "--no-overwrite")?;
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
            exclusive(a, "--overwrite", "--no-overwrite")?;
            exclusive(a, "--secret-usage", "--secret-uuid")?;
            let p = a.positionals(&["name", "type"], 2)?;
            let (name, ty) = (p[0].unwrap_or_default(), p[1].unwrap_or_default());
            let xml = pool_xml(name, ty, a);
            if a.has("--print-xml") {
                println!("{xml}\n");
                return Ok(());
            }
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
                let size = |v: u64| {
                    if a.has("--bytes") {
                        v.to_string()
                    } else {
                        pretty(v)
                    }
                };
                row("Capacity", &size(i.capacity));
                row("Allocation", &size(i.allocation));
                row("Available", &size(i.available));
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

/// The XML pool-define-as and pool-create-as make from their options, laid out as
/// virsh lays it out (their `--print-xml`), without its final newline.
fn pool_xml(name: &str, ty: &str, a: &Args<'_>) -> String {
    let e = |s: &str| vireo_xml::escape(s);
    let v = |k: &str| a.value(k).map(e);
    let mut x = format!("<pool type='{}'>\n  <name>{}</name>\n", e(ty), e(name));
    let (host, path, dev, init) = (
        v("--source-host"),
        v("--source-path"),
        v("--source-dev"),
        v("--source-initiator"),
    );
    let (format, sname) = (v("--source-format"), v("--source-name"));
    let (wwnn, wwpn, adapter) = (
        v("--adapter-wwnn"),
        v("--adapter-wwpn"),
        v("--adapter-name"),
    );
    let fc = wwnn.is_some() && wwpn.is_some();
    if host.is_some()
        || path.is_some()
        || dev.is_some()
        || init.is_some()
        || format.is_some()
        || sname.is_some()
        || fc
        || adapter.is_some()
    {
        x.push_str("  <source>\n");
        if let Some(h) = host {
            x.push_str(&format!("    <host name='{h}'/>\n"));
        }
        if let Some(p) = path {
            x.push_str(&format!("    <dir path='{p}'/>\n"));
        }
        if let Some(d) = dev {
            x.push_str(&format!("    <device path='{d}'/>\n"));
        }
        if let Some(i) = init {
            x.push_str(&format!(
                "    <initiator>\n      <iqn name='{i}'/>\n    </initiator>\n"
            ));
        }
        if let (Some(nn), Some(pn)) = (&wwnn, &wwpn) {
            x.push_str("    <adapter type='fc_host'");
            let (pw, pp) = (v("--adapter-parent-wwnn"), v("--adapter-parent-wwpn"));
            if let Some(p) = v("--adapter-parent") {
                x.push_str(&format!(" parent='{p}'"));
            } else if let (Some(pw), Some(pp)) = (pw, pp) {
                x.push_str(&format!(" parent_wwnn='{pw}' parent_wwpn='{pp}'"));
            } else if let Some(f) = v("--adapter-parent-fabric-wwn") {
                x.push_str(&format!(" parent_fabric_wwn='{f}'"));
            }
            x.push_str(&format!(" wwnn='{nn}' wwpn='{pn}'/>\n"));
        } else if let Some(n) = adapter {
            x.push_str(&format!("    <adapter type='scsi_host' name='{n}'/>\n"));
        }
        let (su, sid) = (v("--secret-usage"), v("--secret-uuid"));
        if let (Some(t), Some(u), true) = (
            v("--auth-type"),
            v("--auth-username"),
            su.is_some() || sid.is_some(),
        ) {
            x.push_str(&format!("    <auth type='{t}' username='{u}'>\n"));
            match (su, sid) {
                (Some(s), _) => x.push_str(&format!("      <secret usage='{s}'/>\n")),
                (None, Some(s)) => x.push_str(&format!("      <secret uuid='{s}'/>\n")),
                _ => {}
            }
            x.push_str("    </auth>\n");
        }
        if let Some(f) = format {
            x.push_str(&format!("    <format type='{f}'/>\n"));
        }
        if let Some(n) = sname {
            x.push_str(&format!("    <name>{n}</name>\n"));
        }
        if let Some(p) = v("--source-protocol-ver") {
            x.push_str(&format!("    <protocol ver='{p}'/>\n"));
        }
        x.push_str("  </source>\n");
    }
    if let Some(t) = v("--target") {
        x.push_str(&format!("  <target>\n    <path>{t}</path>\n  </target>\n"));
    }
    x.push_str("</pool>");
    x
}

/// virsh's refusal of two options given together.
fn exclusive(a: &Args<'_>, x: &str, y: &str) -> Result<()> {
    let given = |o: &str| a.has(o) || a.value(o).is_some();
    if given(x) && given(y) {
        bail!("Options {x} and {y} are mutually exclusive");
    }
    Ok(())
}

/// A `--type` list's flags: pool types, comma-separated.
fn pool_type_flags(list: &str) -> Result<u32> {
    use pool_list_flags::*;
    if list.is_empty() {
        bail!("Failed to get option 'type': Option argument is empty");
    }
    let mut flags = 0;
    for t in list.split(',') {
        flags |= match t {
            "dir" => DIR,
            "fs" => FS,
            "netfs" => NETFS,
            "logical" => LOGICAL,
            "disk" => DISK,
            "iscsi" => ISCSI,
            "iscsi-direct" => ISCSI_DIRECT,
            "scsi" => SCSI,
            "mpath" => MPATH,
            "rbd" => RBD,
            "sheepdog" => SHEEPDOG,
            "gluster" => GLUSTER,
            "zfs" => ZFS,
            "vstorage" => VSTORAGE,
            other => bail!("Invalid pool type '{other}'"),
        };
    }
    Ok(flags)
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
    let details = a.has("--details");
    exclusive(a, "--details", "--uuid")?;
    exclusive(a, "--details", "--name")?;
    if let Some(t) = a.value("--type") {
        flags |= pool_type_flags(t)?;
    }
    let mut pools = c
        .list_all_pools(flags)
        .await
        .context("Failed to list pools")?;
    pools.sort_by(|x, y| x.name.cmp(&y.name));
    let (uuid, name) = (a.has("--uuid"), a.has("--name"));
    if uuid || name {
        // virsh pads each UUID to 36 columns and each name to 20 here.
        for p in &pools {
            match (uuid, name) {
                (true, true) => println!("{:<36} {:<20}", format_uuid(&p.uuid), p.name),
                (true, false) => println!("{:<36}", format_uuid(&p.uuid)),
                _ => println!("{:<20}", p.name),
            }
        }
        println!();
        return Ok(());
    }
    let mut head = vec!["Name".to_string(), "State".into(), "Autostart".into()];
    if details {
        head.extend(["Persistent", "Capacity", "Allocation", "Available"].map(String::from));
    }
    let mut rows = vec![head];
    for p in &pools {
        let i = c.pool_info(p).await?;
        let mut row = vec![p.name.clone()];
        if details {
            row.push(state_name(i.state).into());
        } else if i.state == pool_state::INACTIVE {
            row.push("inactive".into());
        } else {
            row.push("active".into());
        }
        row.push(yes_no(c.pool_autostart(p).await?).into());
        if details {
            row.push(yes_no(c.pool_is_persistent(p).await?).into());
            let live = i.state == pool_state::RUNNING || i.state == pool_state::DEGRADED;
            for v in [i.capacity, i.allocation, i.available] {
                row.push(if live { pretty(v) } else { "-".into() });
            }
        }
        rows.push(row);
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
            let details = a.has("--details");
            let mut head = vec!["Name".to_string(), "Path".into()];
            if details {
                head.extend(["Type", "Capacity", "Allocation"].map(String::from));
            }
            let mut rows = vec![head];
            for v in &vols {
                let mut row = vec![v.name.clone(), c.vol_path(v).await?];
                if details {
                    match c.vol_info(v).await {
                        Ok(i) => row.extend([
                            vol_type_name(i.type_).to_string(),
                            pretty(i.capacity),
                            pretty(i.allocation),
                        ]),
                        Err(_) => row.extend(["unknown"; 3].map(String::from)),
                    }
                }
                rows.push(row);
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
    let v = vol_by(c, key, Some("pool"), a.value("--pool")).await?;
    let n = &v.name;
    match cmd {
        "vol-info" => {
            let row = |k: &str, val: &str| println!("{:<16}{val}", format!("{k}:"));
            row("Name", n);
            let physical = a.has("--physical");
            let i = if physical {
                c.vol_info_flags(&v, vireo_proto::storage::GET_PHYSICAL)
                    .await?
            } else {
                c.vol_info(&v).await?
            };
            row("Type", vol_type_name(i.type_));
            let size = |v: u64| {
                if a.has("--bytes") {
                    format!("{v} bytes")
                } else {
                    pretty(v)
                }
            };
            row("Capacity", &size(i.capacity));
            row(
                if physical { "Physical" } else { "Allocation" },
                &size(i.allocation),
            );
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

fn vol_type_name(t: i32) -> &'static str {
    match t {
        vol_type::FILE => "file",
        vol_type::BLOCK => "block",
        vol_type::DIR => "dir",
        vol_type::NETWORK => "network",
        vol_type::NETDIR => "netdir",
        _ => "ploop",
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_xml_is_laid_out_as_virsh_lays_it() {
        let rest: Vec<String> = [
            "--source-dev",
            "/dev/sdb",
            "--target",
            "/m",
            "--source-host",
            "h",
            "--source-name",
            "a<b",
        ]
        .map(String::from)
        .to_vec();
        let a = Args::parse("pool-define-as", &rest, &["--print-xml"], POOL_AS).unwrap();
        assert_eq!(
            pool_xml("p", "fs", &a),
            "<pool type='fs'>\n  <name>p</name>\n  <source>\n    <host name='h'/>\n    \
             <device path='/dev/sdb'/>\n    <name>a&lt;b</name>\n  </source>\n  <target>\n    \
             <path>/m</path>\n  </target>\n</pool>"
        );
        let a = Args::parse("pool-define-as", &[], &[], POOL_AS).unwrap();
        assert_eq!(
            pool_xml("p", "dir", &a),
            "<pool type='dir'>\n  <name>p</name>\n</pool>"
        );
    }

    #[test]
    fn pool_type_lists() {
        use pool_list_flags::*;
        assert_eq!(pool_type_flags("dir,logical").ok(), Some(DIR | LOGICAL));
        assert_eq!(pool_type_flags("iscsi-direct").ok(), Some(ISCSI_DIRECT));
        let err = |t: &str| pool_type_flags(t).map_err(|e| e.to_string());
        assert_eq!(err("dir,x"), Err("Invalid pool type 'x'".into()));
        assert_eq!(
            err(""),
            Err("Failed to get option 'type': Option argument is empty".into())
        );
    }

    #[test]
    fn event_timeouts_are_whole_seconds_from_one() {
        let parse = |v: &str| {
            let rest = vec!["--timeout".to_string(), v.to_string()];
            let a = Args::parse("pool-event", &rest, &[], &["--timeout"]).unwrap();
            event_timeout(&a).map_err(|e| e.to_string())
        };
        assert_eq!(parse("5"), Ok(Some(std::time::Duration::from_secs(5))));
        for bad in ["0", "-1", "1.5", "x", "2147484"] {
            assert_eq!(
                parse(bad),
                Err(format!(
                    "Numeric value '{bad}' for <timeout> option is malformed or out of range"
                )),
            );
        }
        let a = Args::parse("pool-event", &[], &[], &["--timeout"]).unwrap();
        assert_eq!(event_timeout(&a).ok(), Some(None));
    }
}
