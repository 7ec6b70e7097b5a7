//! The net-* commands, each printing what virsh prints for it: its output, then the blank
//! line virsh ends every command it ran with (also when the command failed; not when its
//! arguments were refused before it ran).

use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use vireo_client::uri::{format_uuid, parse_uuid};
use vireo_client::{Connect, DhcpLease, Network, NetworkPort};
use vireo_proto::network::{
    event, ip_addr_type, list_flags, update_command, update_flags, update_section, CREATE_VALIDATE,
    DEFINE_VALIDATE, XML_INACTIVE,
};

use crate::args::Args;
use crate::commands::table_text;
use crate::virsh::{read_file, s, Spec};

/// A failure virsh reports with no message of its own (the exit status says it all).
#[derive(Debug)]
pub struct Quiet;

impl fmt::Display for Quiet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("")
    }
}

impl std::error::Error for Quiet {}

/// The commands of this module.
pub const NET_COMMANDS: &[&str] = &[
    "net-list",
    "net-info",
    "net-uuid",
    "net-name",
    "net-dumpxml",
    "net-define",
    "net-create",
    "net-start",
    "net-destroy",
    "net-undefine",
    "net-autostart",
    "net-update",
    "net-dhcp-leases",
    "net-port-list",
    "net-port-create",
    "net-port-dumpxml",
    "net-port-delete",
    "net-event",
];

pub(crate) fn spec(cmd: &str) -> Option<Spec> {
    const NET: &[&str] = &["network"];
    Some(match cmd {
        "net-list" => s(
            &[
                "--inactive",
                "--all",
                "--persistent",
                "--transient",
                "--autostart",
                "--no-autostart",
                "--uuid",
                "--name",
                "--table",
            ],
            &[],
            &[],
            0,
        ),
        "net-info" | "net-uuid" | "net-name" | "net-start" | "net-destroy" | "net-undefine" => {
            s(&[], &["--network"], NET, 1)
        }
        "net-dumpxml" => s(&["--inactive"], &["--network"], NET, 1),
        "net-autostart" => s(&["--disable"], &["--network"], NET, 1),
        "net-define" | "net-create" => s(&["--validate"], &["--file"], &["file"], 1),
        "net-update" => s(
            &["--config", "--live", "--current"],
            &[
                "--network",
                "--command",
                "--section",
                "--xml",
                "--parent-index",
            ],
            &["network", "command", "section", "xml"],
            4,
        ),
        "net-dhcp-leases" => s(&[], &["--network", "--mac"], NET, 1),
        "net-port-list" => s(&["--uuid", "--table"], &["--network"], NET, 1),
        "net-port-create" => s(
            &["--validate"],
            &["--network", "--file"],
            &["network", "file"],
            2,
        ),
        "net-port-dumpxml" | "net-port-delete" => {
            s(&[], &["--network", "--port"], &["network", "port"], 2)
        }
        "net-event" => s(
            &["--loop", "--list", "--timestamp"],
            &["--network", "--event", "--timeout"],
            NET,
            0,
        ),
        _ => return None,
    })
}

pub async fn run(uri: &str, readonly: bool, cmd: &str, rest: &[String]) -> Result<()> {
    let sp = spec(cmd).ok_or_else(|| anyhow!("unknown command: '{cmd}'"))?;
    let a = Args::parse(cmd, rest, sp.switches, sp.valued)?;
    // Missing and extra arguments are refused before anything runs, as virsh does.
    let given = a.positionals(sp.positionals, sp.required)?;
    let net_arg = given.first().copied().flatten();
    let pos: Vec<&str> = given.into_iter().map(Option::unwrap_or_default).collect();
    let c = Connect::open(uri, readonly)
        .await
        .context("failed to connect to the hypervisor")?;
    let r = exec(&c, cmd, &a, &pos, net_arg).await;
    // virsh's blank line after every command it ran, whether it worked or not.
    println!();
    let _ = c.close().await;
    r
}

/// A network by UUID (for a key as long as one) or name, as virsh finds it.
async fn get(c: &Connect, key: &str) -> Result<Network> {
    c.network_lookup(key)
        .await
        .with_context(|| format!("failed to get network '{key}'"))
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

async fn exec(
    c: &Connect,
    cmd: &str,
    a: &Args<'_>,
    pos: &[&str],
    net_arg: Option<&str>,
) -> Result<()> {
    let first = pos.first().copied().unwrap_or_default();
    match cmd {
        "net-list" => return list(c, a).await,
        "net-event" => return events(c, a, net_arg).await,
        "net-define" | "net-create" => {
            let xml = read_file(first)?;
            if cmd == "net-define" {
                let flags = if a.has("--validate") {
                    DEFINE_VALIDATE
                } else {
                    0
                };
                let n = c
                    .network_define_xml(&xml, flags)
                    .await
                    .with_context(|| format!("Failed to define network from {first}"))?;
                println!("Network {} defined from {first}", n.name);
            } else {
                let flags = if a.has("--validate") {
                    CREATE_VALIDATE
                } else {
                    0
                };
                let n = c
                    .network_create_xml(&xml, flags)
                    .await
                    .with_context(|| format!("Failed to create network from {first}"))?;
                println!("Network {} created from {first}", n.name);
            }
            return Ok(());
        }
        "net-uuid" => {
            // By name only.
            let n = c
                .network_lookup_by_name(first)
                .await
                .with_context(|| format!("failed to get network '{first}'"))?;
            println!("{}", format_uuid(&n.uuid));
            return Ok(());
        }
        "net-name" => {
            // By UUID only; a key that cannot be one is not even tried.
            let failed = || format!("failed to get network '{first}'");
            if first.len() != 36 {
                bail!(failed());
            }
            let u = parse_uuid(first).ok_or_else(|| {
                anyhow!("uuidstr in virNetworkLookupByUUIDString must be a valid UUID")
                    .context(failed())
            })?;
            let n = c.network_lookup_by_uuid(&u).await.with_context(failed)?;
            println!("{}", n.name);
            return Ok(());
        }
        "net-update" => return update(c, a, pos).await,
        "net-port-list" => {
            let table = a.has("--table");
            let uuid = a.has("--uuid");
            if table && uuid {
                bail!("Only one argument from --table and --uuid may be specified.");
            }
            let n = get(c, first).await?;
            let mut ports = c.network_list_all_ports(&n).await?;
            ports.sort_by_key(|p| p.uuid);
            if uuid {
                for p in &ports {
                    println!("{}", format_uuid(&p.uuid));
                }
            } else {
                let mut rows = vec![vec!["UUID".to_string()]];
                rows.extend(ports.iter().map(|p| vec![format_uuid(&p.uuid)]));
                print!("{}", table_text(&rows));
            }
            return Ok(());
        }
        _ => {}
    }
    // The rest act on one network, named by the key as given.
    let n = get(c, first).await?;
    match cmd {
        "net-info" => info(c, &n).await,
        "net-dumpxml" => {
            let flags = if a.has("--inactive") { XML_INACTIVE } else { 0 };
            print!("{}", c.network_xml_desc(&n, flags).await?);
        }
        "net-start" => {
            c.network_start(&n)
                .await
                .with_context(|| format!("Failed to start network {first}"))?;
            println!("Network {first} started");
        }
        "net-destroy" => {
            c.network_destroy(&n)
                .await
                .with_context(|| format!("Failed to destroy network {first}"))?;
            println!("Network {first} destroyed");
        }
        "net-undefine" => {
            c.network_undefine(&n)
                .await
                .with_context(|| format!("Failed to undefine network {first}"))?;
            println!("Network {first} has been undefined");
        }
        "net-autostart" => {
            let on = !a.has("--disable");
            let un = if on { "" } else { "un" };
            c.network_set_autostart(&n, on)
                .await
                .with_context(|| format!("failed to {un}mark network {first} as autostarted"))?;
            println!("Network {first} {un}marked as autostarted");
        }
        "net-dhcp-leases" => {
            let leases = c
                .network_dhcp_leases(&n, a.value("--mac"))
                .await
                .with_context(|| format!("Failed to get leases info for {first}"))?;
            print!("{}", leases_table(leases));
        }
        "net-port-create" => {
            let file = pos.get(1).copied().unwrap_or_default();
            let xml = read_file(file)?;
            let flags = if a.has("--validate") {
                vireo_proto::network::port_create_flags::VALIDATE
            } else {
                0
            };
            // (sic: virsh says "network" here.)
            let p = c
                .network_port_create_xml(&n, &xml, flags)
                .await
                .with_context(|| format!("Failed to create network from {file}"))?;
            println!("Network port {} created from {file}", format_uuid(&p.uuid));
        }
        "net-port-dumpxml" | "net-port-delete" => {
            let key = pos.get(1).copied().unwrap_or_default();
            let p = get_port(c, &n, key).await?;
            if cmd == "net-port-dumpxml" {
                print!("{}", c.network_port_xml_desc(&p).await?);
            } else {
                let u = format_uuid(&p.uuid);
                c.network_port_delete(&p)
                    .await
                    .with_context(|| format!("Failed to delete network port {u}"))?;
                println!("Network port {u} deleted");
            }
        }
        _ => bail!("unknown command: '{cmd}'"),
    }
    Ok(())
}

async fn get_port(c: &Connect, n: &Network, key: &str) -> Result<NetworkPort> {
    c.network_port_lookup(n, key)
        .await
        .with_context(|| format!("failed to get network port '{key}'"))
}

async fn info(c: &Connect, n: &Network) {
    let row = |k: &str, v: &str| println!("{k:<15} {v}");
    row("Name:", &n.name);
    row("UUID:", &format_uuid(&n.uuid));
    if let Ok(active) = c.network_is_active(n).await {
        row("Active:", yes_no(active));
    }
    match c.network_is_persistent(n).await {
        Ok(p) => row("Persistent:", yes_no(p)),
        Err(_) => row("Persistent:", "unknown"),
    }
    match c.network_autostart(n).await {
        Ok(a) => row("Autostart:", yes_no(a)),
        Err(_) => row("Autostart:", "no autostart"),
    }
    if let Ok(b) = c.network_bridge_name(n).await {
        row("Bridge:", &b);
    }
}

async fn list(c: &Connect, a: &Args<'_>) -> Result<()> {
    let mut flags = list_flags::ACTIVE;
    if a.has("--inactive") {
        flags = list_flags::INACTIVE;
    }
    if a.has("--all") {
        flags = list_flags::ACTIVE | list_flags::INACTIVE;
    }
    for (s, f) in [
        ("--persistent", list_flags::PERSISTENT),
        ("--transient", list_flags::TRANSIENT),
        ("--autostart", list_flags::AUTOSTART),
        ("--no-autostart", list_flags::NO_AUTOSTART),
    ] {
        if a.has(s) {
            flags |= f;
        }
    }
    let (name, uuid) = (a.has("--name"), a.has("--uuid"));
    if a.has("--table") as u8 + name as u8 + uuid as u8 > 1 {
        bail!("Only one argument from --table, --name and --uuid may be specified.");
    }
    let mut nets = c
        .list_all_networks(flags)
        .await
        .context("Failed to list networks")?;
    // virsh sorts by name, ignoring case.
    nets.sort_by(|x, y| {
        x.name
            .to_ascii_lowercase()
            .cmp(&y.name.to_ascii_lowercase())
            .then_with(|| x.name.cmp(&y.name))
    });
    if uuid || name {
        for n in &nets {
            if uuid {
                println!("{}", format_uuid(&n.uuid));
            } else {
                println!("{}", n.name);
            }
        }
        return Ok(());
    }
    let mut rows = vec![vec![
        "Name".to_string(),
        "State".into(),
        "Autostart".into(),
        "Persistent".into(),
    ]];
    for n in &nets {
        let autostart = match c.network_autostart(n).await {
            Ok(a) => yes_no(a),
            Err(_) => "no autostart",
        };
        // Like virsh, a state it cannot get counts as true.
        let active = c.network_is_active(n).await.unwrap_or(true);
        let persistent = c.network_is_persistent(n).await.unwrap_or(true);
        rows.push(vec![
            n.name.clone(),
            if active { "active" } else { "inactive" }.into(),
            autostart.into(),
            yes_no(persistent).into(),
        ]);
    }
    print!("{}", table_text(&rows));
    Ok(())
}

const COMMANDS: [(&str, u32); 5] = [
    ("add", update_command::ADD_LAST),
    ("modify", update_command::MODIFY),
    ("delete", update_command::DELETE),
    ("add-last", update_command::ADD_LAST),
    ("add-first", update_command::ADD_FIRST),
];

const SECTIONS: [(&str, u32); 12] = [
    ("bridge", update_section::BRIDGE),
    ("domain", update_section::DOMAIN),
    ("ip", update_section::IP),
    ("ip-dhcp-host", update_section::IP_DHCP_HOST),
    ("ip-dhcp-range", update_section::IP_DHCP_RANGE),
    ("forward", update_section::FORWARD),
    ("forward-interface", update_section::FORWARD_INTERFACE),
    ("forward-pf", update_section::FORWARD_PF),
    ("portgroup", update_section::PORTGROUP),
    ("dns-host", update_section::DNS_HOST),
    ("dns-txt", update_section::DNS_TXT),
    ("dns-srv", update_section::DNS_SRV),
];

fn lookup_word(table: &[(&str, u32)], word: &str) -> Option<u32> {
    table.iter().find(|(w, _)| *w == word).map(|(_, v)| *v)
}

/// virsh's integer options: decimal, in range, or its error.
fn int_opt(name: &str, v: &str) -> Result<i32> {
    v.parse().map_err(|_| {
        anyhow!("Numeric value '{v}' for <{name}> option is malformed or out of range")
    })
}

async fn update(c: &Connect, a: &Args<'_>, pos: &[&str]) -> Result<()> {
    let (config, live, current) = (a.has("--config"), a.has("--live"), a.has("--current"));
    for (other, set) in [("live", live), ("config", config)] {
        if current && set {
            bail!("Options --current and --{other} are mutually exclusive");
        }
    }
    let (key, cmd_word, section_word, xml_arg) = match pos {
        [n, c, s, x, ..] => (*n, *c, *s, *x),
        _ => bail!("command 'net-update' requires <network> option"),
    };
    let n = get(c, key).await?;
    let command = lookup_word(&COMMANDS, cmd_word)
        .ok_or_else(|| anyhow!("unrecognized command name '{cmd_word}'"))?;
    let section = lookup_word(&SECTIONS, section_word)
        .ok_or_else(|| anyhow!("unrecognized section name '{section_word}'"))?;
    let parent = match a.value("--parent-index") {
        Some(v) => int_opt("parent-index", v)?,
        None => -1,
    };
    // The XML itself when it starts with '<', else the name of a file holding it.
    let from_file;
    let xml = if xml_arg.starts_with('<') {
        xml_arg
    } else {
        from_file = read_file(xml_arg)?;
        &from_file
    };
    let mut flags = update_flags::AFFECT_CURRENT;
    if config {
        flags |= update_flags::AFFECT_CONFIG;
    }
    if live {
        flags |= update_flags::AFFECT_LIVE;
    }
    c.network_update(&n, command, section, parent, xml, flags)
        .await
        .with_context(|| format!("Failed to update network {}", n.name))?;
    let what = match (config, live) {
        (true, true) => "persistent config and live state",
        (true, false) => "persistent config",
        (false, true) => "live state",
        // Like virsh, a state it cannot get counts as active.
        (false, false) => {
            if c.network_is_active(&n).await.unwrap_or(true) {
                "live state"
            } else {
                "persistent config"
            }
        }
    };
    // No newline of its own: virsh's blank line ends it.
    print!("Updated network {} {what}", n.name);
    Ok(())
}

/// The lease table, sorted by MAC address (ignoring case), expiry times in local time.
fn leases_table(mut leases: Vec<DhcpLease>) -> String {
    let mac_key = |l: &DhcpLease| l.mac.clone().unwrap_or_default().to_ascii_lowercase();
    leases.sort_by_key(mac_key);
    let mut rows = vec![[
        "Expiry Time",
        "MAC address",
        "Protocol",
        "IP address",
        "Hostname",
        "Client ID or DUID",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect::<Vec<_>>()];
    let or_minus = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
    for l in &leases {
        let proto = match l.type_ {
            ip_addr_type::IPV4 => "ipv4",
            ip_addr_type::IPV6 => "ipv6",
            _ => "-",
        };
        rows.push(vec![
            local_time(l.expirytime),
            or_minus(&l.mac),
            proto.into(),
            format!("{}/{}", l.ipaddr, l.prefix),
            or_minus(&l.hostname),
            or_minus(&l.clientid),
        ]);
    }
    table_text(&rows)
}

/// `YYYY-MM-DD HH:MM:SS` of a time in seconds since the epoch, in the local time zone.
fn local_time(secs: i64) -> String {
    let Some(tm) = crate::virsh::local_tm(secs) else {
        return secs.to_string();
    };
    crate::virsh::tm_text(&tm, ' ')
}

/// Now, as virsh stamps events: UTC with milliseconds.
pub(crate) fn timestamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let Some(tm) = i64::try_from(now.as_secs())
        .ok()
        .and_then(crate::virsh::utc_tm)
    else {
        return String::new();
    };
    format!(
        "{}.{:03}+0000",
        crate::virsh::tm_text(&tm, ' '),
        now.subsec_millis()
    )
}

fn event_name(e: i32) -> &'static str {
    match e {
        event::DEFINED => "Defined",
        event::UNDEFINED => "Undefined",
        event::STARTED => "Started",
        event::STOPPED => "Stopped",
        _ => "unknown",
    }
}

/// net-event: lifecycle events, one (or, with --loop, all until the timeout or ^C).
async fn events(c: &Connect, a: &Args<'_>, net_arg: Option<&str>) -> Result<()> {
    if a.has("--list") {
        println!("lifecycle");
        return Ok(());
    }
    let name = a
        .value("--event")
        .ok_or_else(|| anyhow!("either --list or --event <type> is required"))?;
    if name != "lifecycle" {
        bail!("unknown event type {name}");
    }
    let timeout = match a.value("--timeout") {
        Some(v) => {
            let bad =
                || anyhow!("Numeric value '{v}' for <timeout> option is malformed or out of range");
            let s: i32 = v.parse().map_err(|_| bad())?;
            if !(1..=i32::MAX / 1000).contains(&s) {
                return Err(bad());
            }
            Some(Duration::from_secs(s as u64))
        }
        None => None,
    };
    let net = match net_arg {
        Some(k) => Some(get(c, k).await?),
        None => None,
    };
    let looping = a.has("--loop");
    let stamp = a.has("--timestamp");
    let mut evs = c.network_lifecycle_events(net.as_ref()).await?;
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut count = 0u32;
    let ended = loop {
        let wait = async {
            match deadline {
                Some(d) => tokio::time::timeout_at(d.into(), evs.next()).await.ok(),
                None => Some(evs.next().await),
            }
        };
        tokio::select! {
            r = wait => match r {
                None => break Some("event loop timed out"),
                Some(None) => break None,
                Some(Some(e)) => {
                    let text = format!(
                        "event 'lifecycle' for network {}: {}",
                        e.net.name,
                        event_name(e.event)
                    );
                    if stamp {
                        println!("{}: {text}", timestamp());
                    } else {
                        println!("{text}");
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
        // The connection went away.
        None => bail!("the connection to the daemon was closed"),
        Some("") => {}
        Some(why) => println!("{why}"),
    }
    println!("events received: {count}");
    let id = evs.callback_id();
    let _ = c.network_event_deregister(id).await;
    if count == 0 {
        return Err(Quiet.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(mac: Option<&str>, ip: &str, type_: i32) -> DhcpLease {
        DhcpLease {
            iface: "vbr0".into(),
            expirytime: 0,
            type_,
            mac: mac.map(str::to_string),
            iaid: None,
            ipaddr: ip.into(),
            prefix: 24,
            hostname: None,
            clientid: Some("01:aa".into()),
        }
    }

    #[test]
    fn leases_sort_by_mac_ignoring_case_and_fill_gaps_with_minus() {
        let t = leases_table(vec![
            lease(Some("52:54:00:BB:00:01"), "10.0.0.2", ip_addr_type::IPV4),
            lease(Some("52:54:00:aa:00:01"), "10.0.0.1", ip_addr_type::IPV4),
            lease(None, "fd00::1", 7),
        ]);
        let rows: Vec<&str> = t.lines().skip(2).collect();
        assert_eq!(rows.len(), 3, "{t}");
        // No MAC sorts first (as an empty one), then aa before BB.
        assert!(
            rows[0].contains("   -   ") && rows[0].contains("fd00::1/24"),
            "{t}"
        );
        assert!(rows[1].contains("52:54:00:aa:00:01   ipv4"), "{t}");
        assert!(rows[2].contains("52:54:00:BB:00:01"), "{t}");
        assert!(t.starts_with(" Expiry Time "), "{t}");
        assert!(!t.ends_with("\n\n"), "{t:?}");
    }

    #[test]
    fn update_words_are_virshs() {
        assert_eq!(
            lookup_word(&COMMANDS, "add"),
            Some(update_command::ADD_LAST)
        );
        assert_eq!(
            lookup_word(&COMMANDS, "add-first"),
            Some(update_command::ADD_FIRST)
        );
        assert_eq!(lookup_word(&COMMANDS, "none"), None);
        assert_eq!(
            lookup_word(&SECTIONS, "dns-srv"),
            Some(update_section::DNS_SRV)
        );
        assert_eq!(lookup_word(&SECTIONS, "none"), None);
        assert_eq!(int_opt("parent-index", "-1").ok(), Some(-1));
        assert_eq!(
            int_opt("parent-index", "1x").map_err(|e| e.to_string()),
            Err("Numeric value '1x' for <parent-index> option is malformed or out of range".into())
        );
    }

    #[test]
    fn unreadable_files_are_reported_as_virsh_does() {
        let e = read_file("/nonexistent/x.xml").map_err(|e| format!("{e:#}"));
        assert_eq!(
            e,
            Err("Failed to open file '/nonexistent/x.xml': No such file or directory".into())
        );
    }

    #[test]
    fn every_command_parses_its_own_options() {
        for &cmd in NET_COMMANDS {
            let sp = spec(cmd).unwrap();
            assert!(sp.required <= sp.positionals.len(), "{cmd}");
            for p in sp.positionals {
                assert!(sp.valued.contains(&format!("--{p}").as_str()), "{cmd} {p}");
            }
        }
        assert!(spec("net-edit").is_none());
    }
}
