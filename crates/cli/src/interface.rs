//! The iface-* commands (host interfaces), each printing what virsh prints for it: its
//! output, then the blank line virsh ends every command it ran with (also when the command
//! failed; not when its arguments were refused before it ran).

use anyhow::{bail, Context, Result};
use vireo_client::{Connect, Interface};
use vireo_proto::interface::{list_flags, DEFINE_VALIDATE, XML_INACTIVE};
use vireo_proto::remote::procs;

use crate::network::Quiet;
use crate::virsh::{begin, finish, read_file, s, Parsed, Spec};

/// The commands of this module.
pub const COMMANDS: &[&str] = &[
    "iface-list",
    "iface-name",
    "iface-mac",
    "iface-dumpxml",
    "iface-define",
    "iface-undefine",
    "iface-start",
    "iface-destroy",
    "iface-begin",
    "iface-commit",
    "iface-rollback",
];

pub(crate) fn spec(cmd: &str) -> Option<Spec> {
    const IFACE: &[&str] = &["interface"];
    Some(match cmd {
        "iface-list" => s(&["--inactive", "--all"], &[], &[], 0),
        "iface-name" | "iface-mac" | "iface-undefine" | "iface-start" | "iface-destroy" => {
            s(&[], &["--interface"], IFACE, 1)
        }
        "iface-dumpxml" => s(&["--inactive"], &["--interface"], IFACE, 1),
        "iface-define" => s(&["--validate"], &["--file"], &["file"], 1),
        "iface-begin" | "iface-commit" | "iface-rollback" => s(&[], &[], &[], 0),
        _ => return None,
    })
}

pub async fn run(uri: &str, readonly: bool, cmd: &str, rest: &[String]) -> Result<()> {
    let (p, c) = begin(uri, readonly, cmd, rest, spec).await?;
    let r = exec(&c, cmd, &p).await;
    finish(c, r).await
}

/// Whether virsh reads `s` as a MAC address (six groups of one or two hex digits).
fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| (1..=2).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The interface `key` names, as virsh finds it: by MAC address when it reads as one, by
/// name otherwise, each only where the command allows (`by_name`, `by_mac`).
async fn get(c: &Connect, key: &str, by_name: bool, by_mac: bool) -> Result<Interface> {
    let what = || format!("failed to get interface '{key}'");
    match (is_mac(key), by_name, by_mac) {
        (false, true, _) => c.interface_lookup_by_name(key).await.with_context(what),
        (true, _, true) => c.interface_lookup_by_mac(key).await.with_context(what),
        // Not tried: virsh says only this.
        _ => bail!(what()),
    }
}

async fn exec(c: &Connect, cmd: &str, p: &Parsed<'_>) -> Result<()> {
    let key = p.opt("interface").unwrap_or_default();
    match cmd {
        "iface-list" => {
            let (inactive, all) = (p.args.has("--inactive"), p.args.has("--all"));
            if inactive && all {
                bail!("Options --all and --inactive are mutually exclusive");
            }
            let flags = if all {
                list_flags::ACTIVE | list_flags::INACTIVE
            } else if inactive {
                list_flags::INACTIVE
            } else {
                list_flags::ACTIVE
            };
            let mut ifaces = c
                .list_all_interfaces(flags)
                .await
                .context("Failed to list interfaces")?;
            ifaces.sort_by_key(|i| i.name.to_ascii_lowercase());
            let mut rows = vec![vec![
                "Name".to_string(),
                "State".into(),
                "MAC Address".into(),
            ]];
            for i in &ifaces {
                // As virsh asks each one; an error reads as active, as it does there.
                let active = c.interface_is_active(i).await.unwrap_or(true);
                let state = if active { "active" } else { "inactive" };
                rows.push(vec![i.name.clone(), state.into(), i.mac.clone()]);
            }
            print!("{}", table(&rows));
        }
        "iface-name" => println!("{}", get(c, key, false, true).await?.name),
        "iface-mac" => println!("{}", get(c, key, true, false).await?.mac),
        "iface-dumpxml" => {
            let i = get(c, key, true, true).await?;
            let flags = if p.args.has("--inactive") {
                XML_INACTIVE
            } else {
                0
            };
            print!("{}", c.interface_xml_desc(&i, flags).await?);
        }
        "iface-define" => {
            let file = p.opt("file").unwrap_or_default();
            let xml = read_file(file)?;
            let flags = if p.args.has("--validate") {
                DEFINE_VALIDATE
            } else {
                0
            };
            let i = c
                .interface_define_xml(&xml, flags)
                .await
                .with_context(|| format!("Failed to define interface from {file}"))?;
            println!("Interface {} defined from {file}", i.name);
        }
        "iface-undefine" => {
            let i = get(c, key, true, true).await?;
            c.interface_undefine(&i)
                .await
                .with_context(|| format!("Failed to undefine interface {key}"))?;
            println!("Interface {key} undefined");
        }
        "iface-start" => {
            let i = get(c, key, true, true).await?;
            c.interface_create(&i)
                .await
                .with_context(|| format!("Failed to start interface {key}"))?;
            println!("Interface {key} started");
        }
        "iface-destroy" => {
            let i = get(c, key, true, true).await?;
            c.interface_destroy(&i)
                .await
                .with_context(|| format!("Failed to destroy interface {key}"))?;
            println!("Interface {key} destroyed");
            // virsh 9 ends this command as failed even when the interface was destroyed.
            return Err(Quiet.into());
        }
        "iface-begin" => {
            c.interface_change(procs::INTERFACE_CHANGE_BEGIN)
                .await
                .context("Failed to begin network config change transaction")?;
            println!("Network config change transaction started");
        }
        "iface-commit" => {
            c.interface_change(procs::INTERFACE_CHANGE_COMMIT)
                .await
                .context("Failed to commit network config change transaction")?;
            println!("Network config change transaction committed");
        }
        "iface-rollback" => {
            c.interface_change(procs::INTERFACE_CHANGE_ROLLBACK)
                .await
                .context("Failed to rollback network config change transaction")?;
            println!("Network config change transaction rolled back");
        }
        _ => bail!("unknown command: '{cmd}'"),
    }
    Ok(())
}

/// virsh's table: each column but the last padded to its widest cell, three spaces
/// between columns, the last cell as it is (an empty one leaves the spaces before it).
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.first().map_or(0, Vec::len);
    let mut w = vec![0usize; cols];
    for r in rows {
        for (i, cell) in r.iter().enumerate().take(cols) {
            w[i] = w[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for (n, r) in rows.iter().enumerate() {
        for (i, cell) in r.iter().enumerate().take(cols) {
            out.push_str(if i == 0 { " " } else { "   " });
            out.push_str(cell);
            if i + 1 < cols {
                let pad = w[i].saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
        if n == 0 {
            out.push_str(&"-".repeat(w.iter().sum::<usize>() + 3 * cols));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_parses_its_own_options() {
        for cmd in COMMANDS {
            let sp = spec(cmd).unwrap();
            assert!(sp.required <= sp.positionals.len(), "{cmd}");
            for p in sp.positionals {
                assert!(sp.valued.contains(&format!("--{p}").as_str()), "{cmd} {p}");
            }
        }
        assert!(spec("iface-edit").is_none());
    }

    #[test]
    fn macs_as_virsh_reads_them() {
        assert!(is_mac("52:54:00:aa:bb:cc"));
        assert!(is_mac("2:4:0:A:b:c"));
        assert!(!is_mac("eth0"));
        assert!(!is_mac("52:54:00:aa:bb"));
        assert!(!is_mac("52:54:00:aa:bb:ccc"));
        assert!(!is_mac("52:54:00:aa:bb:cg"));
    }

    #[test]
    fn tables_keep_the_spaces_before_an_empty_last_cell() {
        let rows = vec![
            vec!["Name".to_string(), "State".into(), "MAC Address".into()],
            vec!["br0".into(), "inactive".into(), String::new()],
            vec!["lo".into(), "inactive".into(), "00:00:00:00:00:00".into()],
        ];
        assert_eq!(
            table(&rows),
            " Name   State      MAC Address\n\
             --------------------------------------\n \
             br0    inactive   \n \
             lo     inactive   00:00:00:00:00:00\n"
        );
    }
}
