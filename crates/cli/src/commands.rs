//! The commands, each printing what virsh prints for it.

use anyhow::{anyhow, bail, Context, Result};
use vireo_client::uri::format_uuid;
use vireo_client::{Connect, DeviceOp, Domain};
use vireo_proto::remote::list_flags;

use crate::virsh::{s, Spec};

/// The commands served here; the others are their modules' (see [`crate::table`]).
pub const COMMANDS: &[&str] = &[
    "version",
    "uri",
    "hostname",
    "nodeinfo",
    "capabilities",
    "list",
    "define",
    "undefine",
    "dumpxml",
    "dominfo",
    "domstate",
    "domuuid",
    "domid",
    "domname",
    "autostart",
    "start",
    "create",
    "shutdown",
    "destroy",
    "suspend",
    "resume",
    "reboot",
    "reset",
    "attach-device",
    "detach-device",
    "update-device",
];

/// Each command's switches and positionals (none takes a valued option).
pub(crate) fn spec(cmd: &str) -> Option<Spec> {
    const DEVICE: &[&str] = &["--live", "--config", "--current", "--persistent"];
    Some(match cmd {
        "version" | "uri" | "hostname" | "nodeinfo" | "capabilities" => s(&[], &[], &[], 0),
        "list" => s(&["--all", "--inactive", "--name", "--uuid"], &[], &[], 0),
        "autostart" => s(&["--disable"], &[], &["domain"], 1),
        "start" => s(&["--paused", "--force-boot"], &[], &["domain"], 1),
        "create" => s(&["--paused"], &[], &["file"], 1),
        "destroy" | "shutdown" | "suspend" | "resume" | "reboot" | "reset" => {
            s(&[], &[], &["domain"], 1)
        }
        "domstate" => s(&["--reason"], &[], &["domain"], 1),
        "attach-device" | "detach-device" => s(DEVICE, &[], &["domain", "file"], 2),
        "update-device" => s(
            &["--live", "--config", "--current", "--persistent", "--force"],
            &[],
            &["domain", "file"],
            2,
        ),
        "undefine" => s(&["--managed-save"], &[], &["domain"], 1),
        "define" => s(&[], &[], &["file"], 1),
        "dumpxml" | "dominfo" | "domuuid" | "domid" | "domname" => s(&[], &[], &["domain"], 1),
        _ => return None,
    })
}

pub async fn run(uri: &str, readonly: bool, args: &[String]) -> Result<()> {
    let (cmd, rest) = args.split_first().ok_or_else(|| anyhow!("no command"))?;
    if cmd.starts_with("secret-") {
        return crate::secret::run(uri, readonly, cmd, rest).await;
    }
    if cmd.starts_with("pool-")
        || cmd.starts_with("vol-")
        || cmd.starts_with("find-storage-pool-sources")
    {
        return crate::storage::run(uri, readonly, cmd, rest).await;
    }
    if cmd.starts_with("net-") {
        return crate::network::run(uri, readonly, cmd, rest).await;
    }
    if crate::nodedev::COMMANDS.contains(&cmd.as_str()) {
        return crate::nodedev::run(uri, readonly, cmd, rest).await;
    }
    if matches!(
        cmd.as_str(),
        "domstats" | "dommemstat" | "domblkstat" | "domifstat" | "domblkinfo"
    ) {
        return crate::stats::run(uri, readonly, cmd, rest).await;
    }
    if crate::tuning::COMMANDS.contains(&cmd.as_str()) {
        return crate::tuning::run(uri, readonly, cmd, rest).await;
    }
    if crate::save::COMMANDS.contains(&cmd.as_str()) {
        return crate::save::run(uri, readonly, cmd, rest).await;
    }
    if crate::migrate::COMMANDS.contains(&cmd.as_str()) {
        return crate::migrate::run(uri, readonly, cmd, rest).await;
    }
    if crate::snapshot::COMMANDS.contains(&cmd.as_str()) {
        return crate::snapshot::run(uri, readonly, cmd, rest).await;
    }
    if crate::blockjob::COMMANDS.contains(&cmd.as_str()) {
        return crate::blockjob::run(uri, readonly, cmd, rest).await;
    }
    if crate::iothread::COMMANDS.contains(&cmd.as_str()) {
        return crate::iothread::run(uri, readonly, cmd, rest).await;
    }
    if crate::cpu::COMMANDS.contains(&cmd.as_str()) {
        return crate::cpu::run(uri, readonly, cmd, rest).await;
    }
    if crate::agent::COMMANDS.contains(&cmd.as_str()) {
        return crate::agent::run(uri, readonly, cmd, rest).await;
    }
    if crate::viewer::COMMANDS.contains(&cmd.as_str()) {
        return crate::viewer::run(uri, readonly, cmd, rest).await;
    }
    if crate::metadata::COMMANDS.contains(&cmd.as_str()) {
        return crate::metadata::run(uri, readonly, cmd, rest).await;
    }
    if crate::vcpu::COMMANDS.contains(&cmd.as_str()) {
        return crate::vcpu::run(uri, readonly, cmd, rest).await;
    }
    if crate::devices::COMMANDS.contains(&cmd.as_str()) {
        return crate::devices::run(uri, readonly, cmd, rest).await;
    }
    if crate::resources::COMMANDS.contains(&cmd.as_str()) {
        return crate::resources::run(uri, readonly, cmd, rest).await;
    }
    if cmd.starts_with("nwfilter-") {
        return crate::nwfilter::run(uri, readonly, cmd, rest).await;
    }
    if crate::interface::COMMANDS.contains(&cmd.as_str()) {
        return crate::interface::run(uri, readonly, cmd, rest).await;
    }
    if crate::metrics::COMMANDS.contains(&cmd.as_str()) {
        return crate::metrics::run(uri, readonly, cmd, rest).await;
    }
    let (flags, pos): (Vec<&str>, Vec<&str>) = rest
        .iter()
        .map(String::as_str)
        .partition(|a| a.starts_with("--"));
    let known = |allowed: &[&str]| -> Result<()> {
        for f in &flags {
            if !allowed.contains(f) {
                bail!("command '{cmd}' doesn't support option {f}");
            }
        }
        Ok(())
    };
    let one = |what: &str| -> Result<&str> {
        match pos.as_slice() {
            [x] => Ok(*x),
            [] => Err(anyhow!("command '{cmd}' requires <{what}> option")),
            _ => Err(anyhow!("unexpected data '{}'", pos[1])),
        }
    };
    let none = || -> Result<()> {
        match pos.first() {
            Some(x) => Err(anyhow!("unexpected data '{x}'")),
            None => Ok(()),
        }
    };
    let sp = spec(cmd).ok_or_else(|| anyhow!("unknown command: '{cmd}'"))?;
    known(sp.switches)?;
    if sp.positionals.is_empty() {
        none()?
    }
    let c = Connect::open(uri, readonly)
        .await
        .context("failed to connect to the hypervisor")?;
    let has = |f: &str| flags.contains(&f);
    match cmd.as_str() {
        "version" => {
            let lib = c.get_lib_version().await?;
            let ty = c.get_type().await?;
            let hv = c.get_version().await?;
            println!(
                "Compiled against library: vireo {}",
                env!("CARGO_PKG_VERSION")
            );
            println!("Using library: vireo {}", env!("CARGO_PKG_VERSION"));
            println!("Using API: {ty} {}", version(lib));
            println!("Running hypervisor: {ty} {}", version(hv));
            println!();
        }
        "uri" => println!("{}\n", c.uri_text()),
        "hostname" => println!("{}\n", c.get_hostname().await?),
        "capabilities" => println!("{}", c.get_capabilities().await?),
        "nodeinfo" => {
            let n = c.node_info().await?;
            println!("{:<21}{}", "CPU model:", n.model.0);
            println!("{:<21}{}", "CPU(s):", n.cpus);
            println!("{:<21}{} MHz", "CPU frequency:", n.mhz);
            println!("{:<21}{}", "CPU socket(s):", n.sockets);
            println!("{:<21}{}", "Core(s) per socket:", n.cores);
            println!("{:<21}{}", "Thread(s) per core:", n.threads);
            println!("{:<21}{}", "NUMA cell(s):", n.nodes);
            println!("{:<21}{} KiB\n", "Memory size:", n.memory);
        }
        "list" => {
            list(
                &c,
                has("--all"),
                has("--inactive"),
                has("--name"),
                has("--uuid"),
            )
            .await?
        }
        "define" => {
            let file = one("file")?;
            let xml = std::fs::read_to_string(file)
                .with_context(|| format!("Failed to open file '{file}'"))?;
            let d = c
                .define_xml(&xml)
                .await
                .with_context(|| format!("Failed to define domain from {file}"))?;
            println!("Domain '{}' defined from {file}\n", d.name);
        }
        "undefine" => {
            let d = get_domain(&c, one("domain")?).await?;
            // VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
            c.undefine_flags(&d, has("--managed-save") as u32)
                .await
                .with_context(|| format!("Failed to undefine domain '{}'", d.name))?;
            println!("Domain '{}' has been undefined\n", d.name);
        }
        "dumpxml" => {
            let d = get_domain(&c, one("domain")?).await?;
            println!("{}", c.xml_desc(&d, 0).await?);
        }
        "dominfo" => dominfo(&c, &get_domain(&c, one("domain")?).await?).await?,
        "domstate" => {
            let d = get_domain(&c, one("domain")?).await?;
            let (st, reason) = c.state(&d).await?;
            if has("--reason") {
                println!("{} ({})\n", state_name(st), reason_name(st, reason));
            } else {
                println!("{}\n", state_name(st));
            }
        }
        "domuuid" => {
            let d = get_domain(&c, one("domain")?).await?;
            println!("{}\n", format_uuid(&d.uuid));
        }
        "domid" => {
            let d = get_domain(&c, one("domain")?).await?;
            println!("{}\n", id_text(&d));
        }
        "domname" => {
            let d = get_domain(&c, one("domain")?).await?;
            println!("{}\n", d.name);
        }
        "start" => {
            let d = get_domain(&c, one("domain")?).await?;
            // VIR_DOMAIN_START_PAUSED, VIR_DOMAIN_START_FORCE_BOOT
            let flags = has("--paused") as u32 | if has("--force-boot") { 8 } else { 0 };
            c.start(&d, flags)
                .await
                .with_context(|| format!("Failed to start domain '{}'", d.name))?;
            println!("Domain '{}' started\n", d.name);
        }
        "create" => {
            let file = one("file")?;
            let xml = std::fs::read_to_string(file)
                .with_context(|| format!("Failed to open file '{file}'"))?;
            let d = c
                .create_xml(&xml, has("--paused") as u32)
                .await
                .with_context(|| format!("Failed to create domain from {file}"))?;
            println!("Domain '{}' created from {file}\n", d.name);
        }
        "destroy" | "shutdown" | "suspend" | "resume" | "reboot" | "reset" => {
            let d = get_domain(&c, one("domain")?).await?;
            let (r, failed, done) = match cmd.as_str() {
                "destroy" => (c.destroy(&d).await, "destroy", "destroyed"),
                "shutdown" => (c.shutdown(&d).await, "shutdown", "is being shutdown"),
                "suspend" => (c.suspend(&d).await, "suspend", "suspended"),
                "resume" => (c.resume(&d).await, "resume", "resumed"),
                "reboot" => (c.reboot(&d).await, "reboot", "is being rebooted"),
                _ => (c.reset(&d).await, "reset", "was reset"),
            };
            r.with_context(|| format!("Failed to {failed} domain '{}'", d.name))?;
            println!("Domain '{}' {done}\n", d.name);
        }
        "attach-device" | "detach-device" | "update-device" => {
            let (dom, file) = match pos.as_slice() {
                [d, f] => (*d, *f),
                [] => bail!("command '{cmd}' requires <domain> option"),
                [_] => bail!("command '{cmd}' requires <file> option"),
                _ => bail!("unexpected data '{}'", pos[2]),
            };
            let d = get_domain(&c, dom).await?;
            let xml = std::fs::read_to_string(file)
                .with_context(|| format!("Failed to open file '{file}'"))?;
            let (op, verb, done) = match cmd.as_str() {
                "attach-device" => (DeviceOp::Attach, "attach", "attached"),
                "detach-device" => (DeviceOp::Detach, "detach", "detached"),
                _ => (DeviceOp::Update, "update", "updated"),
            };
            // As virsh: no option is the plain call (the running domain only; update has
            // none: the current definition); --persistent is the definition, and the
            // running domain too when it runs.
            let mut flags = 0;
            if has("--live") {
                flags |= vireo_proto::remote::affect::LIVE;
            }
            if has("--config") {
                flags |= vireo_proto::remote::affect::CONFIG;
            }
            if has("--persistent") {
                flags |= vireo_proto::remote::affect::CONFIG;
                if c.is_active(&d).await? {
                    flags |= vireo_proto::remote::affect::LIVE;
                }
            }
            if has("--force") {
                flags |= vireo_proto::remote::affect::FORCE;
            }
            let given = flags != 0 || has("--current") || op == DeviceOp::Update;
            c.device(op, &d, &xml, given.then_some(flags))
                .await
                .with_context(|| format!("Failed to {verb} device from {file}"))?;
            println!("Device {done} successfully\n");
        }
        "autostart" => {
            let d = get_domain(&c, one("domain")?).await?;
            let on = !has("--disable");
            c.set_autostart(&d, on).await.with_context(|| {
                format!(
                    "Failed to {}mark domain '{}' as autostarted",
                    if on { "" } else { "un" },
                    d.name
                )
            })?;
            if on {
                println!("Domain '{}' marked as autostarted\n", d.name);
            } else {
                println!("Domain '{}' unmarked as autostarted\n", d.name);
            }
        }
        _ => unreachable!("checked above"),
    }
    let _ = c.close().await;
    Ok(())
}

async fn get_domain(c: &Connect, key: &str) -> Result<Domain> {
    c.lookup(key)
        .await
        .with_context(|| format!("failed to get domain '{key}'"))
}

fn version(v: u64) -> String {
    format!("{}.{}.{}", v / 1_000_000, (v / 1000) % 1000, v % 1000)
}

fn id_text(d: &Domain) -> String {
    if d.id < 0 {
        "-".into()
    } else {
        d.id.to_string()
    }
}

pub fn state_name(s: i32) -> &'static str {
    match s {
        1 => "running",
        2 => "idle",
        3 => "paused",
        4 => "in shutdown",
        5 => "shut off",
        6 => "crashed",
        7 => "pmsuspended",
        _ => "no state",
    }
}

fn reason_name(state: i32, reason: i32) -> &'static str {
    match (state, reason) {
        (1, 1) => "booted",
        (1, 2) => "migrated",
        (1, 3) => "restored",
        (1, 4) => "from snapshot",
        (1, 5) => "unpaused",
        (3, 1) => "user",
        (5, 1) => "shutdown",
        (5, 2) => "destroyed",
        (5, 3) => "crashed",
        (5, 4) => "migrated",
        (5, 5) => "saved",
        (5, 6) => "failed",
        (5, 7) => "from snapshot",
        _ => "unknown",
    }
}

async fn list(
    c: &Connect,
    all: bool,
    inactive: bool,
    name_only: bool,
    uuid_only: bool,
) -> Result<()> {
    let flags = if all {
        list_flags::ACTIVE | list_flags::INACTIVE
    } else if inactive {
        list_flags::INACTIVE
    } else {
        list_flags::ACTIVE
    };
    let mut doms = c
        .list_all_domains(flags)
        .await
        .context("failed to list domains")?;
    // virsh: running domains by id first, then the rest by name.
    doms.sort_by(|a, b| match (a.id >= 0, b.id >= 0) {
        (true, true) => a.id.cmp(&b.id),
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        (false, false) => a.name.cmp(&b.name),
    });
    if name_only || uuid_only {
        for d in &doms {
            match (name_only, uuid_only) {
                (true, true) => println!("{}  {}", format_uuid(&d.uuid), d.name),
                (true, false) => println!("{}", d.name),
                _ => println!("{}", format_uuid(&d.uuid)),
            }
        }
        println!();
        return Ok(());
    }
    let mut rows = vec![vec![
        "Id".to_string(),
        "Name".to_string(),
        "State".to_string(),
    ]];
    for d in &doms {
        let (st, _) = c.state(d).await?;
        rows.push(vec![id_text(d), d.name.clone(), state_name(st).to_string()]);
    }
    print_table(&rows);
    Ok(())
}

/// virsh's table layout: a leading space, columns separated by three spaces, a dash rule
/// as wide as the columns and their gaps plus three. `rows[0]` is the header. Then the
/// blank line virsh ends each command with.
pub fn print_table(rows: &[Vec<String>]) {
    print!("{}", table_text(rows));
    println!();
}

/// The lines of [`print_table`], each ending in a newline, without the final blank line.
pub fn table_text(rows: &[Vec<String>]) -> String {
    let cols = rows.first().map_or(0, Vec::len);
    let mut w = vec![0usize; cols];
    for r in rows {
        for (i, cell) in r.iter().enumerate().take(cols) {
            w[i] = w[i].max(cell.chars().count());
        }
    }
    let line = |r: &[String]| {
        let mut s = String::new();
        for (i, cell) in r.iter().enumerate().take(cols) {
            s.push_str(if i == 0 { " " } else { "   " });
            s.push_str(cell);
            let pad = w[i].saturating_sub(cell.chars().count());
            s.extend(std::iter::repeat_n(' ', pad));
        }
        s.trim_end().to_string()
    };
    let mut out = String::new();
    let Some((head, body)) = rows.split_first() else {
        return out;
    };
    out.push_str(&line(head));
    out.push('\n');
    out.push_str(&"-".repeat(w.iter().sum::<usize>() + 3 * cols));
    out.push('\n');
    for r in body {
        out.push_str(&line(r));
        out.push('\n');
    }
    out
}

async fn dominfo(c: &Connect, d: &Domain) -> Result<()> {
    let os = c.os_type(d).await?;
    let info = c.info(d).await?;
    let persistent = c.is_persistent(d).await?;
    let autostart = c.autostart(d).await?;
    let row = |k: &str, v: &str| println!("{:<16}{v}", format!("{k}:"));
    row("Id", &id_text(d));
    row("Name", &d.name);
    row("UUID", &format_uuid(&d.uuid));
    row("OS Type", &os);
    row("State", state_name(info.state as i32));
    row("CPU(s)", &info.nr_virt_cpu.to_string());
    if info.state == 1 {
        row("CPU time", &format!("{:.1}s", info.cpu_time as f64 / 1e9));
    }
    row("Max memory", &format!("{} KiB", info.max_mem));
    row("Used memory", &format!("{} KiB", info.memory));
    row("Persistent", if persistent { "yes" } else { "no" });
    row("Autostart", if autostart { "enable" } else { "disable" });
    let managed = c.has_managed_save(d).await.unwrap_or(false);
    row("Managed save", if managed { "yes" } else { "no" });
    if let Ok(m) = c.security_model().await {
        row("Security model", &m.model.0);
        row("Security DOI", &m.doi.0);
    }
    // What taints the domain, as virsh shows it: under one heading.
    for (i, m) in c
        .messages(d, 0)
        .await
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        println!("{:<16}{m}", if i == 0 { "Messages:" } else { "" });
    }
    println!();
    Ok(())
}
