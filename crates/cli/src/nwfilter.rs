//! The nwfilter-* and nwfilter-binding-* commands, each printing what virsh prints for it:
//! its output, then the blank line virsh ends every command it ran with (also when the
//! command failed; not when its arguments were refused before it ran).

use anyhow::{anyhow, bail, Context, Result};
use vireo_client::uri::format_uuid;
use vireo_client::{Connect, NwFilter, NwFilterBinding};
use vireo_proto::error::code;
use vireo_proto::nwfilter::{BINDING_CREATE_VALIDATE, DEFINE_VALIDATE};

use crate::args::Args;
use crate::commands::table_text;
use crate::virsh::{read_file, s, Spec};

/// The commands of this module.
pub const COMMANDS: &[&str] = &[
    "nwfilter-list",
    "nwfilter-define",
    "nwfilter-undefine",
    "nwfilter-dumpxml",
    "nwfilter-binding-list",
    "nwfilter-binding-create",
    "nwfilter-binding-delete",
    "nwfilter-binding-dumpxml",
];

pub(crate) fn spec(cmd: &str) -> Option<Spec> {
    Some(match cmd {
        "nwfilter-list" | "nwfilter-binding-list" => s(&[], &[], &[], 0),
        "nwfilter-define" | "nwfilter-binding-create" => {
            s(&["--validate"], &["--file"], &["file"], 1)
        }
        "nwfilter-undefine" | "nwfilter-dumpxml" => s(&[], &["--nwfilter"], &["nwfilter"], 1),
        "nwfilter-binding-delete" | "nwfilter-binding-dumpxml" => {
            s(&[], &["--binding"], &["binding"], 1)
        }
        _ => return None,
    })
}

pub async fn run(uri: &str, readonly: bool, cmd: &str, rest: &[String]) -> Result<()> {
    let sp = spec(cmd).ok_or_else(|| anyhow!("unknown command: '{cmd}'"))?;
    let a = Args::parse(cmd, rest, sp.switches, sp.valued)?;
    // Missing and extra arguments are refused before anything runs, as virsh does.
    let given = a.positionals(sp.positionals, sp.required)?;
    let first = given.first().copied().flatten().unwrap_or_default();
    let c = Connect::open(uri, readonly)
        .await
        .context("failed to connect to the hypervisor")?;
    let r = exec(&c, cmd, &a, first).await;
    // virsh's blank line after every command it ran, whether it worked or not.
    println!();
    let _ = c.close().await;
    r
}

/// A filter by UUID (for a key as long as one) or name, as virsh finds it.
async fn get(c: &Connect, key: &str) -> Result<NwFilter> {
    c.nwfilter_lookup(key)
        .await
        .with_context(|| format!("failed to get nwfilter '{key}'"))
}

/// A binding by its port device.
async fn get_binding(c: &Connect, portdev: &str) -> Result<NwFilterBinding> {
    c.nwfilter_binding_lookup(portdev)
        .await
        .with_context(|| format!("failed to get nwfilter binding '{portdev}'"))
}

async fn exec(c: &Connect, cmd: &str, a: &Args<'_>, first: &str) -> Result<()> {
    match cmd {
        "nwfilter-list" => {
            let filters = list(c).await?;
            let mut rows = vec![vec!["UUID".to_string(), "Name".into()]];
            rows.extend(
                filters
                    .iter()
                    .map(|f| vec![format_uuid(&f.uuid), f.name.clone()]),
            );
            print!("{}", table_text(&rows));
        }
        "nwfilter-define" => {
            let xml = read_file(first)?;
            let flags = if a.has("--validate") {
                DEFINE_VALIDATE
            } else {
                0
            };
            let f = c
                .nwfilter_define_xml(&xml, flags)
                .await
                .with_context(|| format!("Failed to define network filter from {first}"))?;
            println!("Network filter {} defined from {first}", f.name);
        }
        "nwfilter-undefine" => {
            let f = get(c, first).await?;
            c.nwfilter_undefine(&f)
                .await
                .with_context(|| format!("Failed to undefine network filter {first}"))?;
            println!("Network filter {first} undefined");
        }
        "nwfilter-dumpxml" => {
            let f = get(c, first).await?;
            print!("{}", c.nwfilter_xml_desc(&f).await?);
        }
        "nwfilter-binding-list" => {
            let mut bindings = c
                .list_all_nwfilter_bindings()
                .await
                .context("Failed to list network filter bindings")?;
            sort_ignoring_case(&mut bindings, |b| &b.portdev);
            let mut rows = vec![vec!["Port Dev".to_string(), "Filter".into()]];
            rows.extend(
                bindings
                    .iter()
                    .map(|b| vec![b.portdev.clone(), b.filtername.clone()]),
            );
            print!("{}", table_text(&rows));
        }
        "nwfilter-binding-create" => {
            let xml = read_file(first)?;
            let flags = if a.has("--validate") {
                BINDING_CREATE_VALIDATE
            } else {
                0
            };
            // (sic: virsh says "network filter" here.)
            let b = c
                .nwfilter_binding_create_xml(&xml, flags)
                .await
                .with_context(|| format!("Failed to create network filter from {first}"))?;
            println!(
                "Network filter binding on {} created from {first}",
                b.portdev
            );
        }
        "nwfilter-binding-delete" => {
            let b = get_binding(c, first).await?;
            c.nwfilter_binding_delete(&b)
                .await
                .with_context(|| format!("Failed to delete network filter binding on {first}"))?;
            println!("Network filter binding on {first} deleted");
        }
        "nwfilter-binding-dumpxml" => {
            let b = get_binding(c, first).await?;
            print!("{}", c.nwfilter_binding_xml_desc(&b).await?);
        }
        _ => bail!("unknown command: '{cmd}'"),
    }
    Ok(())
}

/// Every filter, sorted by name ignoring case, as virsh lists them: with the one call
/// that lists them all or, from a daemon without it, name by name.
async fn list(c: &Connect) -> Result<Vec<NwFilter>> {
    let mut filters = match c.list_all_nwfilters().await {
        Ok(f) => f,
        Err(e) if e.code() == Some(code::NO_SUPPORT) => old_list(c).await?,
        Err(e) => return Err(anyhow::Error::new(e).context("Failed to list network filters")),
    };
    sort_ignoring_case(&mut filters, |f| &f.name);
    Ok(filters)
}

/// The list from a daemon older than virConnectListAllNWFilters: the names, then each
/// filter by its name (those gone meanwhile left out).
async fn old_list(c: &Connect) -> Result<Vec<NwFilter>> {
    let n = c
        .num_of_nwfilters()
        .await
        .context("Failed to count network filters")?;
    if n <= 0 {
        return Ok(Vec::new());
    }
    let names = c
        .list_nwfilter_names(n)
        .await
        .context("Failed to list network filters")?;
    let mut filters = Vec::with_capacity(names.len());
    for name in &names {
        if let Ok(f) = c.nwfilter_lookup_by_name(name).await {
            filters.push(f);
        }
    }
    Ok(filters)
}

/// virsh's order: by a name compared ignoring (ASCII) case.
fn sort_ignoring_case<T>(v: &mut [T], key: impl Fn(&T) -> &str) {
    v.sort_by(|x, y| {
        let (x, y) = (key(x), key(y));
        x.to_ascii_lowercase()
            .cmp(&y.to_ascii_lowercase())
            .then_with(|| x.cmp(y))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_parses_its_own_options() {
        for &cmd in COMMANDS {
            let sp = spec(cmd).unwrap();
            assert!(sp.required <= sp.positionals.len(), "{cmd}");
            for p in sp.positionals {
                assert!(sp.valued.contains(&format!("--{p}").as_str()), "{cmd} {p}");
            }
        }
        assert!(spec("nwfilter-edit").is_none());
    }

    #[test]
    fn names_sort_ignoring_case() {
        let mut v = vec!["b", "A", "a", "C"];
        sort_ignoring_case(&mut v, |s| s);
        assert_eq!(v, ["A", "a", "b", "C"]);
    }
}
