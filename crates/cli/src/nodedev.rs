//! The nodedev-* commands, each printing what virsh prints for it: those that read the
//! host's devices, nodedev-list (by capability, or as a tree), nodedev-dumpxml (a device by
//! name, or a SCSI host by its world wide names), nodedev-info and nodedev-event; those
//! that give PCI devices to VMs and back, nodedev-detach, -reattach and -reset; those that
//! make and keep (mediated) devices, nodedev-create, -destroy, -define, -undefine, -start
//! and -autostart; then the blank line virsh ends every command it ran with.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use vireo_client::{Connect, NodeDevice, NodeDeviceEventKind};
use vireo_proto::nodedev::{event, LIST_ACTIVE, LIST_CAPS, LIST_INACTIVE};

use crate::network::{timestamp, Quiet};
use crate::virsh::{begin, finish, given, read_file, s, Parsed, Spec};

pub const COMMANDS: &[&str] = &[
    "nodedev-list",
    "nodedev-dumpxml",
    "nodedev-event",
    "nodedev-info",
    "nodedev-detach",
    "nodedev-dettach",
    "nodedev-reattach",
    "nodedev-reset",
    "nodedev-create",
    "nodedev-destroy",
    "nodedev-define",
    "nodedev-undefine",
    "nodedev-start",
    "nodedev-autostart",
];

pub(crate) fn spec(cmd: &str) -> Option<Spec> {
    const DEVICE: &[&str] = &["device"];
    Some(match cmd {
        "nodedev-list" => s(&["--tree", "--inactive", "--all"], &["--cap"], &["cap"], 0),
        "nodedev-dumpxml" | "nodedev-info" | "nodedev-reattach" | "nodedev-reset"
        | "nodedev-undefine" | "nodedev-start" => s(&[], &["--device"], DEVICE, 1),
        "nodedev-detach" | "nodedev-dettach" => s(&[], &["--device", "--driver"], DEVICE, 1),
        "nodedev-destroy" => s(&[], &["--device"], DEVICE, 1),
        "nodedev-autostart" => s(&["--disable"], &["--device"], DEVICE, 1),
        "nodedev-create" | "nodedev-define" => s(&["--validate"], &["--file"], &["file"], 1),
        "nodedev-event" => s(
            &["--loop", "--list", "--timestamp"],
            &["--device", "--event", "--timeout"],
            &["device", "event", "timeout"],
            0,
        ),
        _ => return None,
    })
}

pub async fn run(uri: &str, readonly: bool, cmd: &str, rest: &[String]) -> Result<()> {
    // nodedev-destroy takes `--name` for `--device`.
    let renamed: Vec<String>;
    let rest = if cmd == "nodedev-destroy" {
        renamed = rest
            .iter()
            .map(|a| match a.strip_prefix("--name") {
                Some(tail) if tail.is_empty() || tail.starts_with('=') => format!("--device{tail}"),
                _ => a.clone(),
            })
            .collect();
        &renamed[..]
    } else {
        rest
    };
    let (p, c) = begin(uri, readonly, cmd, rest, spec).await?;
    let r = match cmd {
        "nodedev-list" => list(&c, &p).await,
        "nodedev-dumpxml" => dumpxml(&c, &p).await,
        "nodedev-event" => events(&c, &p).await,
        "nodedev-info" => info(&c, &p).await,
        "nodedev-create" | "nodedev-define" => make(&c, cmd, &p).await,
        "nodedev-detach" | "nodedev-dettach" | "nodedev-reattach" | "nodedev-reset"
        | "nodedev-start" => by_name(&c, cmd, &p).await,
        _ => change(&c, cmd, &p).await,
    };
    finish(c, r).await
}

/// The flags of `--validate` (`VIR_NODE_DEVICE_{CREATE,DEFINE}_XML_VALIDATE`).
fn validate_flag(p: &Parsed<'_>) -> u32 {
    if p.args.has("--validate") {
        vireo_proto::nodedev::XML_VALIDATE
    } else {
        0
    }
}

/// nodedev-create and nodedev-define: a device made (or kept) from the XML in a file.
async fn make(c: &Connect, cmd: &str, p: &Parsed<'_>) -> Result<()> {
    let file = given("file", p.opt("file"))?.unwrap_or_default();
    let xml = read_file(file)?;
    let flags = validate_flag(p);
    if cmd == "nodedev-create" {
        let dev = c
            .node_device_create_xml(&xml, flags)
            .await
            .with_context(|| format!("Failed to create node device from {file}"))?;
        println!("Node device {} created from {file}", dev.name);
    } else {
        let dev = c
            .node_device_define_xml(&xml, flags)
            .await
            .with_context(|| format!("Failed to define node device from '{file}'"))?;
        println!("Node device '{}' defined from '{file}'", dev.name);
    }
    Ok(())
}

/// The commands that look the device up by its name alone (not by world wide names):
/// nodedev-detach (its driver named with `--driver`, or the host's default), -reattach,
/// -reset and -start.
async fn by_name(c: &Connect, cmd: &str, p: &Parsed<'_>) -> Result<()> {
    let name = given("device", p.opt("device"))?.unwrap_or_default();
    let driver = p.args.value("--driver");
    let dev = c
        .node_device_lookup_by_name(name)
        .await
        .with_context(|| format!("Could not find matching device '{name}'"))?;
    match cmd {
        "nodedev-reattach" => {
            c.node_device_reattach(&dev)
                .await
                .with_context(|| format!("Failed to re-attach device {name}"))?;
            println!("Device {name} re-attached");
        }
        "nodedev-reset" => {
            c.node_device_reset(&dev)
                .await
                .with_context(|| format!("Failed to reset device {name}"))?;
            println!("Device {name} reset");
        }
        "nodedev-start" => {
            c.node_device_start(&dev)
                .await
                .with_context(|| format!("Failed to start device {name}"))?;
            println!("Device {name} started");
        }
        _ => {
            c.node_device_detach(&dev, driver)
                .await
                .with_context(|| format!("Failed to detach device {name}"))?;
            println!("Device {name} detached");
        }
    }
    Ok(())
}

/// The commands that find the device as nodedev-dumpxml does (by name, or a SCSI host by
/// its world wide names): nodedev-destroy, -undefine and -autostart.
async fn change(c: &Connect, cmd: &str, p: &Parsed<'_>) -> Result<()> {
    let value = given("device", p.opt("device"))?.unwrap_or_default();
    let dev = find(c, value).await?;
    match cmd {
        "nodedev-destroy" => {
            c.node_device_destroy(&dev)
                .await
                .with_context(|| format!("Failed to destroy node device '{value}'"))?;
            println!("Destroyed node device '{value}'");
        }
        "nodedev-undefine" => {
            c.node_device_undefine(&dev)
                .await
                .with_context(|| format!("Failed to undefine node device '{value}'"))?;
            println!("Undefined node device '{value}'");
        }
        _ => {
            let on = !p.args.has("--disable");
            let (done, failed) = if on {
                ("marked", "mark")
            } else {
                ("unmarked", "unmark")
            };
            c.node_device_set_autostart(&dev, on)
                .await
                .with_context(|| format!("failed to {failed} device {value} as autostarted"))?;
            println!("Device {value} {done} as autostarted");
        }
    }
    Ok(())
}

/// nodedev-info: the device's name, parent, state, persistence and autostart, as virsh
/// lays them out (a failed question reads as virsh reads it: active, persistent, no
/// autostart).
async fn info(c: &Connect, p: &Parsed<'_>) -> Result<()> {
    let value = given("device", p.opt("device"))?.unwrap_or_default();
    let dev = find(c, value).await?;
    let parent = c.node_device_parent(&dev).await.ok().flatten();
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let active = c.node_device_is_active(&dev).await.unwrap_or(true);
    let persistent = c.node_device_is_persistent(&dev).await.unwrap_or(true);
    let autostart = match c.node_device_autostart(&dev).await {
        Ok(a) => yes_no(a),
        Err(_) => "no autostart",
    };
    println!("{:<15} {}", "Name:", dev.name);
    println!("{:<15} {}", "Parent:", parent.unwrap_or_default());
    println!("{:<15} {}", "Active:", yes_no(active));
    println!("{:<15} {}", "Persistent:", yes_no(persistent));
    println!("{:<15} {autostart}", "Autostart:");
    Ok(())
}

/// The capability flags of `--cap a,b`, as virsh reads them: every name must be one
/// libvirt knows.
fn cap_flags(caps: &str) -> Result<u32> {
    caps.split(',').try_fold(0, |flags, name| {
        LIST_CAPS
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(bit, _)| flags | bit)
            .ok_or_else(|| anyhow!("Invalid capability type"))
    })
}

/// virsh's order of names: ignoring case.
fn sort_names(devs: &mut [NodeDevice]) {
    devs.sort_by(|x, y| {
        x.name
            .to_ascii_lowercase()
            .cmp(&y.name.to_ascii_lowercase())
            .then_with(|| x.name.cmp(&y.name))
    });
}

async fn list(c: &Connect, p: &Parsed<'_>) -> Result<()> {
    let a = &p.args;
    let (tree, inactive, all) = (a.has("--tree"), a.has("--inactive"), a.has("--all"));
    // An empty --cap is none.
    let cap = p.opt("cap").filter(|c| !c.is_empty());
    if inactive && all {
        bail!("Option --all is incompatible with --inactive");
    }
    if tree && (cap.is_some() || inactive) {
        bail!("Option --tree is incompatible with --cap and --inactive");
    }
    let mut flags = cap.map(cap_flags).transpose()?.unwrap_or(0);
    if inactive {
        flags |= LIST_INACTIVE;
    } else if !all {
        flags |= LIST_ACTIVE;
    }
    let mut devs = c
        .list_all_node_devices(flags)
        .await
        .context("Failed to list node devices")?;
    sort_names(&mut devs);
    if !tree {
        for d in &devs {
            println!("{}", d.name);
        }
        return Ok(());
    }
    let names: Vec<String> = devs.iter().map(|d| d.name.clone()).collect();
    let mut parents = Vec::with_capacity(devs.len());
    for d in &devs {
        parents.push(if d.name == "computer" {
            None
        } else {
            c.node_device_parent(d).await.ok().flatten()
        });
    }
    let mut out = String::new();
    for i in 0..names.len() {
        if parents[i].is_none() {
            tree_print(&mut out, &names, &parents, i, i, true, &mut String::new());
        }
    }
    print!("{out}");
    Ok(())
}

/// virsh's tree: a device, a `|` line when it has children, each child under `+- ` with
/// `|` down the side while more siblings follow, a blank (indented) line after the last
/// of a family that has no children.
fn tree_print(
    out: &mut String,
    names: &[String],
    parents: &[Option<String>],
    dev: usize,
    last: usize,
    root: bool,
    indent: &mut String,
) {
    out.push_str(indent);
    if !root {
        out.push_str("+- ");
    }
    out.push_str(&names[dev]);
    out.push('\n');
    if !root {
        indent.push(if dev == last { ' ' } else { '|' });
        indent.push(' ');
    }
    let children: Vec<usize> = (0..names.len())
        .filter(|&i| parents[i].as_deref() == Some(names[dev].as_str()))
        .collect();
    let next_last = children.last().copied();
    if next_last.is_some() {
        out.push_str(indent);
        out.push_str("  |\n");
    }
    indent.push_str("  ");
    for &i in &children {
        tree_print(
            out,
            names,
            parents,
            i,
            next_last.unwrap_or(i),
            false,
            indent,
        );
    }
    indent.truncate(indent.len() - 2);
    if next_last.is_none() && dev == last {
        out.push_str(indent);
        out.push('\n');
    }
    if !root {
        indent.truncate(indent.len() - 2);
    }
}

/// Whether `wwn` is a world wide name as virsh takes one: 16 hexadecimal digits, with or
/// without `0x`.
fn valid_wwn(wwn: &str) -> bool {
    let digits = wwn.strip_prefix("0x").unwrap_or(wwn);
    digits.len() == 16 && digits.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The device `value` names, as virsh finds it: `WWNN,WWPN` is a SCSI host's world wide
/// names, anything else a device's name.
async fn find(c: &Connect, value: &str) -> Result<NodeDevice> {
    let found = if value.contains(',') {
        let parts: Vec<&str> = value.split(',').collect();
        let [wwnn, wwpn] = parts[..] else {
            bail!("Malformed device value '{value}'");
        };
        if let Some(bad) = [wwnn, wwpn].into_iter().find(|w| !valid_wwn(w)) {
            bail!("internal error: Malformed wwn: {bad}");
        }
        c.node_device_lookup_scsi_host_by_wwn(wwnn, wwpn).await
    } else {
        c.node_device_lookup_by_name(value).await
    };
    found.with_context(|| format!("Could not find matching device '{value}'"))
}

async fn dumpxml(c: &Connect, p: &Parsed<'_>) -> Result<()> {
    let value = given("device", p.opt("device"))?.unwrap_or_default();
    let dev = find(c, value).await?;
    print!("{}", c.node_device_xml_desc(&dev).await?);
    Ok(())
}

/// The event types, in virsh's order (their ids).
const EVENTS: [&str; 2] = ["lifecycle", "update"];

/// What virsh calls a lifecycle event.
fn lifecycle_name(e: i32) -> &'static str {
    match e {
        event::CREATED => "Created",
        event::DELETED => "Deleted",
        event::DEFINED => "Defined",
        event::UNDEFINED => "Undefined",
        _ => "unknown",
    }
}

/// `--timeout` as virsh reads it: whole seconds, at least 1, at most what fits in
/// milliseconds in an int.
fn timeout(v: Option<&str>) -> Result<Option<Duration>> {
    let Some(v) = v else { return Ok(None) };
    let bad = || anyhow!("Numeric value '{v}' for <timeout> option is malformed or out of range");
    let secs: i32 = v.parse().map_err(|_| bad())?;
    if !(1..=i32::MAX / 1000).contains(&secs) {
        return Err(bad());
    }
    Ok(Some(Duration::from_secs(secs as u64)))
}

/// nodedev-event: the events of one type (of one device, or all), one (or, with --loop,
/// all until the timeout or ^C).
async fn events(c: &Connect, p: &Parsed<'_>) -> Result<()> {
    let a = &p.args;
    if a.has("--list") {
        for e in EVENTS {
            println!("{e}");
        }
        return Ok(());
    }
    let name = given("event", p.opt("event"))?
        .ok_or_else(|| anyhow!("either --list or --event <type> is required"))?;
    let id = EVENTS
        .iter()
        .position(|e| *e == name)
        .ok_or_else(|| anyhow!("unknown event type {name}"))?;
    let looping = a.has("--loop");
    let stamp = a.has("--timestamp");
    let wait = timeout(p.opt("timeout"))?;
    let dev = match given("device", p.opt("device"))? {
        Some(v) => Some(
            c.node_device_lookup_by_name(v)
                .await
                .with_context(|| format!("Could not find matching device '{v}'"))?,
        ),
        None => None,
    };
    let mut evs = c.node_device_events(dev.as_ref(), id as i32).await?;
    let deadline = wait.map(|t| Instant::now() + t);
    let mut count = 0u32;
    let ended = loop {
        let next = async {
            match deadline {
                Some(d) => tokio::time::timeout_at(d.into(), evs.next()).await.ok(),
                None => Some(evs.next().await),
            }
        };
        tokio::select! {
            r = next => match r {
                None => break Some("event loop timed out"),
                Some(None) => break None,
                Some(Some(e)) => {
                    let text = match e.kind {
                        NodeDeviceEventKind::Lifecycle { event, .. } => format!(
                            "event 'lifecycle' for node device {}: {}",
                            e.dev.name,
                            lifecycle_name(event)
                        ),
                        NodeDeviceEventKind::Update => {
                            format!("event 'update' for node device {}", e.dev.name)
                        }
                    };
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
    let _ = c.node_device_event_deregister(evs.callback_id()).await;
    if count == 0 {
        return Err(Quiet.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(pairs: &[(&str, Option<&str>)]) -> String {
        let names: Vec<String> = pairs.iter().map(|(n, _)| n.to_string()).collect();
        let parents: Vec<Option<String>> =
            pairs.iter().map(|(_, p)| p.map(str::to_string)).collect();
        let mut out = String::new();
        for i in 0..names.len() {
            if parents[i].is_none() {
                tree_print(&mut out, &names, &parents, i, i, true, &mut String::new());
            }
        }
        out
    }

    #[test]
    fn trees_as_virsh_draws_them() {
        let t = tree(&[
            ("computer", None),
            ("net_lo", Some("computer")),
            ("pci_0000_00_02_0", Some("computer")),
            ("pci_0000_00_03_0", Some("computer")),
            ("net_eth0", Some("pci_0000_00_03_0")),
            ("block_vda", Some("pci_0000_00_02_0")),
            ("pci_0000_00_04_0", Some("computer")),
        ]);
        assert_eq!(
            t,
            "computer
  |
  +- net_lo
  +- pci_0000_00_02_0
  |   |
  |   +- block_vda
  |     
  +- pci_0000_00_03_0
  |   |
  |   +- net_eth0
  |     
  +- pci_0000_00_04_0
    
"
        );
        // Deeper: the last child's column stays blank below it.
        let t = tree(&[
            ("computer", None),
            ("a", Some("computer")),
            ("b", Some("a")),
            ("c", Some("b")),
        ]);
        assert_eq!(
            t,
            "computer\n  |\n  +- a\n      |\n      +- b\n          |\n          +- c\n            \n"
        );
    }

    #[test]
    fn capabilities_and_names() {
        assert_eq!(cap_flags("system").unwrap(), 1);
        assert_eq!(cap_flags("pci,usb_device").unwrap(), 2 | 4);
        assert_eq!(cap_flags("mdev_types").unwrap(), 1 << 13);
        assert_eq!(
            cap_flags("pci,bogus").unwrap_err().to_string(),
            "Invalid capability type"
        );
        assert!(cap_flags("pci,").is_err());
        assert!(valid_wwn("20000000c9848140"));
        assert!(valid_wwn("0x20000000c9848140"));
        assert!(!valid_wwn("20000000c984814"));
        assert!(!valid_wwn("2000000zc9848140"));
        assert_eq!(lifecycle_name(event::DELETED), "Deleted");
        assert!(timeout(Some("0")).is_err());
        assert_eq!(timeout(Some("2")).unwrap(), Some(Duration::from_secs(2)));
    }
}
