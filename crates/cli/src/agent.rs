//! The guest agent's commands — qemu-agent-command, guestinfo, domfsfreeze, domfsthaw,
//! domfsinfo, set-user-password, domtime and domhostname — each printing what virsh prints
//! for it, with its refusals in virsh's order and the blank line after.

use anyhow::{anyhow, bail, Context, Result};
use vireo_client::agent::{agent_timeout, guest_info};
use vireo_client::Connect;

use crate::cnum::{opt_int, opt_llong};
use crate::virsh::{begin, domain, finish, given, s, Parsed, Spec};

pub const COMMANDS: [&str; 8] = [
    "qemu-agent-command",
    "guestinfo",
    "domfsfreeze",
    "domfsthaw",
    "domfsinfo",
    "set-user-password",
    "domtime",
    "domhostname",
];

/// guestinfo's switches and the groups they ask for.
const GROUPS: [(&str, u32); 7] = [
    ("--user", guest_info::USERS),
    ("--os", guest_info::OS),
    ("--timezone", guest_info::TIMEZONE),
    ("--hostname", guest_info::HOSTNAME),
    ("--filesystem", guest_info::FILESYSTEM),
    ("--disk", guest_info::DISKS),
    ("--interface", guest_info::INTERFACES),
];

/// `VIR_DOMAIN_PASSWORD_ENCRYPTED`, `VIR_DOMAIN_TIME_SYNC`.
const PASSWORD_ENCRYPTED: u32 = 1;
const TIME_SYNC: u32 = 1;
/// `VIR_DOMAIN_GET_HOSTNAME_LEASE`, `VIR_DOMAIN_GET_HOSTNAME_AGENT`.
const HOSTNAME_LEASE: u32 = 1;
const HOSTNAME_AGENT: u32 = 2;

pub(crate) fn spec(cmd: &str) -> Option<Spec> {
    Some(match cmd {
        "qemu-agent-command" => Spec {
            list: Some("--cmd"),
            ..s(
                &["--async", "--block", "--pretty"],
                &["--domain", "--timeout", "--cmd"],
                &["domain"],
                0,
            )
        },
        "guestinfo" => s(
            &[
                "--user",
                "--os",
                "--timezone",
                "--hostname",
                "--filesystem",
                "--disk",
                "--interface",
            ],
            &["--domain"],
            &["domain"],
            1,
        ),
        "domfsfreeze" | "domfsthaw" => Spec {
            list: Some("--mountpoint"),
            ..s(&[], &["--domain", "--mountpoint"], &["domain"], 1)
        },
        "domfsinfo" => s(&[], &["--domain"], &["domain"], 1),
        "set-user-password" => s(
            &["--encrypted"],
            &["--domain", "--user", "--password"],
            &["domain", "user", "password"],
            3,
        ),
        "domtime" => s(
            &["--now", "--pretty", "--sync"],
            &["--domain", "--time"],
            &["domain", "time"],
            1,
        ),
        "domhostname" => s(&[], &["--domain", "--source"], &["domain", "source"], 1),
        _ => return None,
    })
}

pub async fn run(uri: &str, readonly: bool, cmd: &str, rest: &[String]) -> Result<()> {
    if cmd == "qemu-agent-command" {
        // The command is required too: refused before anything runs, as the domain is.
        if let Some(sp) = spec(cmd) {
            agent_command_given(&Parsed::new(cmd, rest, &sp)?)?;
        }
    }
    let (p, c) = begin(uri, readonly, cmd, rest, spec).await?;
    let r = match cmd {
        "qemu-agent-command" => agent_command(&c, &p).await,
        "guestinfo" => info(&c, &p).await,
        "domfsfreeze" | "domfsthaw" => freeze(&c, &p, cmd == "domfsthaw").await,
        "domfsinfo" => fs_info(&c, &p).await,
        "set-user-password" => password(&c, &p).await,
        "domtime" => time(&c, &p).await,
        _ => hostname(&c, &p).await,
    };
    finish(c, r).await
}

/// qemu-agent-command's domain and command, both required: virsh names each missing one.
fn agent_command_given(p: &Parsed<'_>) -> Result<()> {
    let missing = |what: &str| format!("command 'qemu-agent-command' requires <{what}> option");
    match (p.opt("domain"), p.list.is_empty()) {
        (None, true) => Err(anyhow!(missing("cmd")).context(missing("domain"))),
        (None, false) => Err(anyhow!(missing("domain"))),
        (Some(_), true) => Err(anyhow!(missing("cmd"))),
        _ => Ok(()),
    }
}

async fn agent_command(c: &Connect, p: &Parsed<'_>) -> Result<()> {
    let d = domain(c, p.opt("domain")).await?;
    let command = p.list.join(" ");
    let mut timeout = agent_timeout::DEFAULT;
    let mut ways = 0;
    if let Some(v) = p.args.value("--timeout") {
        timeout = opt_int("timeout", v)?;
        if timeout < 1 {
            bail!("timeout must be positive");
        }
        ways += 1;
    }
    if p.args.has("--async") {
        timeout = agent_timeout::NOWAIT;
        ways += 1;
    }
    if p.args.has("--block") {
        timeout = agent_timeout::BLOCK;
        ways += 1;
    }
    if ways > 1 {
        bail!("timeout, async and block options are exclusive");
    }
    let Some(result) = c.agent_command(&d, &command, timeout).await? else {
        // libvirt hands virsh nothing, and no reason, when it did not wait.
        bail!("An error occurred, but the cause is unknown");
    };
    let shown = if p.args.has("--pretty") {
        crate::json::pretty(&result).unwrap_or(result)
    } else {
        result
    };
    println!("{shown}");
    Ok(())
}

async fn info(c: &Connect, p: &Parsed<'_>) -> Result<()> {
    let types = p.args.flags(&GROUPS);
    let d = domain(c, p.opt("domain")).await?;
    for param in c.guest_info(&d, types).await? {
        println!(
            "{:<20}: {}",
            param.field,
            crate::stats::value_text(&param.value)
        );
    }
    Ok(())
}

async fn freeze(c: &Connect, p: &Parsed<'_>, thaw: bool) -> Result<()> {
    let d = domain(c, p.opt("domain")).await?;
    let n = c.fs_freeze(&d, &p.list, thaw).await.with_context(|| {
        if thaw {
            "Unable to thaw filesystems"
        } else {
            "Unable to freeze filesystems"
        }
    })?;
    if thaw {
        println!("Thawed {n} filesystem(s)");
    } else {
        println!("Froze {n} filesystem(s)");
    }
    Ok(())
}

async fn fs_info(c: &Connect, p: &Parsed<'_>) -> Result<()> {
    let d = domain(c, p.opt("domain")).await?;
    let fs = c
        .fs_info(&d)
        .await
        .context("Unable to get filesystem information")?;
    if fs.is_empty() {
        print!("No filesystems are mounted in the domain");
        return Ok(());
    }
    let mut rows = vec![["Mountpoint", "Name", "Type", "Target"]
        .map(String::from)
        .to_vec()];
    for f in fs {
        rows.push(vec![
            f.mountpoint,
            f.name,
            f.fstype,
            f.dev_aliases.0.join(","),
        ]);
    }
    print!("{}", crate::commands::table_text(&rows));
    Ok(())
}

async fn password(c: &Connect, p: &Parsed<'_>) -> Result<()> {
    let flags = if p.args.has("--encrypted") {
        PASSWORD_ENCRYPTED
    } else {
        0
    };
    let user = given("user", p.opt("user"))?.unwrap_or_default();
    let password = given("password", p.opt("password"))?.unwrap_or_default();
    let name = p.opt("domain").unwrap_or_default();
    let d = domain(c, Some(name)).await?;
    c.set_user_password(&d, user, password, flags).await?;
    print!("Password set successfully for {user} in {name}");
    Ok(())
}

async fn time(c: &Connect, p: &Parsed<'_>) -> Result<()> {
    p.exclusive(&[("time", "now"), ("time", "sync"), ("now", "sync")])?;
    let d = domain(c, p.opt("domain")).await?;
    let set = p.opt("time").map(|v| opt_llong("time", v)).transpose()?;
    let (now, sync) = (p.args.has("--now"), p.args.has("--sync"));
    if set.is_some() || now || sync {
        let secs = if now {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|_| anyhow!("Unable to get current time"))?
                .as_secs() as i64
        } else {
            set.unwrap_or_default()
        };
        let flags = if sync { TIME_SYNC } else { 0 };
        c.set_guest_time(&d, secs, 0, flags).await?;
        return Ok(());
    }
    let (secs, _) = c.guest_time(&d).await?;
    if p.args.has("--pretty") {
        let tm = crate::virsh::utc_tm(secs).ok_or_else(|| anyhow!("time out of range"))?;
        print!("Time: {}", crate::virsh::tm_text(&tm, ' '));
    } else {
        print!("Time: {secs}");
    }
    Ok(())
}

async fn hostname(c: &Connect, p: &Parsed<'_>) -> Result<()> {
    let d = domain(c, p.opt("domain")).await?;
    let flags = match p.string("source")? {
        None => 0,
        Some("agent") => HOSTNAME_AGENT,
        Some("lease") => HOSTNAME_LEASE,
        Some(other) => bail!("Unknown data source '{other}'"),
    };
    let name = c
        .domain_hostname(&d, flags)
        .await
        .context("failed to get hostname")?;
    println!("{name}");
    Ok(())
}
