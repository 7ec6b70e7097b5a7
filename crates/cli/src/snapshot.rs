//! snapshot-create-as, snapshot-create, snapshot-list, snapshot-current, snapshot-info,
//! snapshot-dumpxml, snapshot-parent, snapshot-revert and snapshot-delete, each printing
//! what virsh prints for it: the same messages, tables and tree, the same refusals.

use anyhow::{anyhow, bail, Context, Result};
use vireo_client::{Connect, Domain, DomainSnapshot};
use vireo_proto::error::code;
use vireo_proto::remote::snapshot_flags as sf;

use crate::args::Args;
use crate::virsh::{domain, escape, finish, given, read_file, s, Spec};

pub const COMMANDS: [&str; 9] = [
    "snapshot-create-as",
    "snapshot-create",
    "snapshot-list",
    "snapshot-current",
    "snapshot-info",
    "snapshot-dumpxml",
    "snapshot-parent",
    "snapshot-revert",
    "snapshot-delete",
];

/// libvirt's `VIR_ERR_SNAPSHOT_REVERT_RISKY`: what makes `--force` try again.
const REVERT_RISKY: i32 = 77;

pub(crate) fn spec(cmd: &str) -> Option<Spec> {
    const NAMED: &[&str] = &["domain", "snapshotname"];
    const NAMED_OPTS: &[&str] = &["--domain", "--snapshotname"];
    Some(match cmd {
        "snapshot-create-as" => Spec {
            switches: &[
                "--print-xml",
                "--no-metadata",
                "--halt",
                "--disk-only",
                "--reuse-external",
                "--quiesce",
                "--atomic",
                "--live",
                "--validate",
            ],
            valued: &[
                "--domain",
                "--name",
                "--description",
                "--memspec",
                "--diskspec",
            ],
            // --memspec is only ever given by name.
            positionals: &["domain", "name", "description"],
            required: 1,
            list: Some("--diskspec"),
        },
        "snapshot-create" => s(
            &[
                "--redefine",
                "--current",
                "--no-metadata",
                "--halt",
                "--disk-only",
                "--reuse-external",
                "--quiesce",
                "--atomic",
                "--live",
                "--validate",
            ],
            &["--domain", "--xmlfile"],
            &["domain", "xmlfile"],
            1,
        ),
        "snapshot-list" => s(
            &[
                "--parent",
                "--roots",
                "--leaves",
                "--no-leaves",
                "--metadata",
                "--no-metadata",
                "--inactive",
                "--active",
                "--disk-only",
                "--internal",
                "--external",
                "--tree",
                "--current",
                "--descendants",
                "--name",
                "--topological",
            ],
            &["--domain", "--from"],
            &["domain", "from"],
            1,
        ),
        "snapshot-current" => s(&["--name", "--security-info"], NAMED_OPTS, NAMED, 1),
        "snapshot-info" | "snapshot-parent" => s(&["--current"], NAMED_OPTS, NAMED, 1),
        "snapshot-dumpxml" => s(&["--security-info"], NAMED_OPTS, NAMED, 2),
        "snapshot-revert" => s(
            &[
                "--current",
                "--running",
                "--paused",
                "--force",
                "--reset-nvram",
            ],
            NAMED_OPTS,
            NAMED,
            1,
        ),
        "snapshot-delete" => s(
            &["--current", "--children", "--children-only", "--metadata"],
            NAMED_OPTS,
            NAMED,
            1,
        ),
        _ => return None,
    })
}

pub async fn run(uri: &str, readonly: bool, cmd: &str, rest: &[String]) -> Result<()> {
    let sp = spec(cmd).ok_or_else(|| anyhow!("unknown command: '{cmd}'"))?;
    let a = Args::parse_with_list(cmd, rest, sp.switches, sp.valued, sp.list)?;
    // Missing and extra arguments are refused before anything runs, as virsh does.
    let (pos, list) = a.positionals_and_list(sp.positionals, sp.required)?;
    let c = Connect::open(uri, readonly)
        .await
        .context("failed to connect to the hypervisor")?;
    let r = exec(&c, cmd, &a, &pos, &list).await;
    finish(c, r).await
}

/// snapshot-create's and snapshot-create-as's switches, as creation flags.
const CREATE_FLAGS: &[(&str, u32)] = &[
    ("--redefine", sf::CREATE_REDEFINE),
    ("--current", sf::CREATE_CURRENT),
    ("--no-metadata", sf::CREATE_NO_METADATA),
    ("--halt", sf::CREATE_HALT),
    ("--disk-only", sf::CREATE_DISK_ONLY),
    ("--reuse-external", sf::CREATE_REUSE_EXT),
    ("--quiesce", sf::CREATE_QUIESCE),
    ("--atomic", sf::CREATE_ATOMIC),
    ("--live", sf::CREATE_LIVE),
    ("--validate", sf::CREATE_VALIDATE),
];

/// Runs `cmd`: `pos` are its positionals (by place or by name), `list` its diskspecs.
async fn exec(
    c: &Connect,
    cmd: &str,
    a: &Args<'_>,
    pos: &[Option<&str>],
    list: &[&str],
) -> Result<()> {
    let at = |i: usize| pos.get(i).copied().flatten();
    match cmd {
        "snapshot-create-as" => {
            let flags = a.flags(CREATE_FLAGS);
            let d = domain(c, at(0)).await?;
            let name = given("name", at(1))?;
            let description = given("description", at(2))?;
            let memspec = given("memspec", a.value("--memspec"))?;
            let xml = snapshot_xml(name, description, memspec, list)?;
            if a.has("--print-xml") {
                println!("{xml}");
                return Ok(());
            }
            let snap = c.snapshot_create_xml(&d, &xml, flags).await?;
            print!("Domain snapshot {} created", snap.name);
        }
        "snapshot-create" => {
            let flags = a.flags(CREATE_FLAGS);
            let d = domain(c, at(0)).await?;
            let file = given("xmlfile", at(1))?;
            let xml = match file {
                Some(f) => read_file(f)?,
                None => "<domainsnapshot/>".to_string(),
            };
            let snap = c.snapshot_create_xml(&d, &xml, flags).await?;
            match file {
                Some(f) => print!("Domain snapshot {} created from '{f}'", snap.name),
                None => print!("Domain snapshot {} created", snap.name),
            }
        }
        "snapshot-list" => list_snapshots(c, a, at(0), at(1)).await?,
        "snapshot-current" => {
            if a.has("--name") && at(1).is_some() {
                bail!("Options --name and --snapshotname are mutually exclusive");
            }
            let d = domain(c, at(0)).await?;
            let wanted = given("snapshotname", at(1))?;
            if let Some(name) = wanted {
                // Made current by redefining it so.
                let snap = c.snapshot_lookup(&d, name).await?;
                let xml = c.snapshot_xml(&snap, sf::XML_SECURE).await?;
                let snap = c
                    .snapshot_create_xml(&d, &xml, sf::CREATE_REDEFINE | sf::CREATE_CURRENT)
                    .await?;
                print!("Snapshot {} set as current", snap.name);
                return Ok(());
            }
            if !c.has_current_snapshot(&d).await? {
                bail!("domain '{}' has no current snapshot", d.name);
            }
            let snap = c.snapshot_current(&d).await?;
            if a.has("--name") {
                print!("{}", snap.name);
            } else {
                let secure = if a.has("--security-info") {
                    sf::XML_SECURE
                } else {
                    0
                };
                print!("{}", c.snapshot_xml(&snap, secure).await?);
            }
        }
        "snapshot-info" => {
            let d = domain(c, at(0)).await?;
            let snap = chosen(c, a, &d, at(1)).await?;
            info(c, &d, &snap).await?;
        }
        "snapshot-dumpxml" => {
            let name = given("snapshotname", at(1))?.unwrap_or_default();
            let d = domain(c, at(0)).await?;
            let snap = c.snapshot_lookup(&d, name).await?;
            let secure = if a.has("--security-info") {
                sf::XML_SECURE
            } else {
                0
            };
            print!("{}", c.snapshot_xml(&snap, secure).await?);
        }
        "snapshot-parent" => {
            let d = domain(c, at(0)).await?;
            let snap = chosen(c, a, &d, at(1)).await?;
            match parent_of(c, &snap).await? {
                Some(p) => print!("{p}"),
                None => bail!("snapshot '{}' has no parent", snap.name),
            }
        }
        "snapshot-revert" => {
            let flags = a.flags(&[
                ("--running", sf::REVERT_RUNNING),
                ("--paused", sf::REVERT_PAUSED),
                ("--reset-nvram", sf::REVERT_RESET_NVRAM),
            ]);
            let d = domain(c, at(0)).await?;
            let snap = chosen(c, a, &d, at(1)).await?;
            // As virsh: --force only when the plain revert was refused as risky.
            let mut r = c.revert_to_snapshot(&snap, flags).await;
            if a.has("--force") && r.as_ref().err().and_then(|e| e.code()) == Some(REVERT_RISKY) {
                r = c.revert_to_snapshot(&snap, flags | sf::REVERT_FORCE).await;
            }
            r.with_context(|| format!("Failed to revert snapshot {}", snap.name))?;
            println!("Domain snapshot {} reverted", snap.name);
        }
        "snapshot-delete" => {
            let flags = a.flags(&[
                ("--children", sf::DELETE_CHILDREN),
                ("--children-only", sf::DELETE_CHILDREN_ONLY),
                ("--metadata", sf::DELETE_METADATA_ONLY),
            ]);
            let d = domain(c, at(0)).await?;
            let snap = chosen(c, a, &d, at(1)).await?;
            c.snapshot_delete(&snap, flags)
                .await
                .with_context(|| format!("Failed to delete snapshot {}", snap.name))?;
            if a.has("--children-only") {
                println!("Domain snapshot {} children deleted", snap.name);
            } else {
                println!("Domain snapshot {} deleted", snap.name);
            }
        }
        other => bail!("unknown command: '{other}'"),
    }
    Ok(())
}

/// The snapshot named, or with `--current` the current one.
async fn chosen(
    c: &Connect,
    a: &Args<'_>,
    d: &Domain,
    name: Option<&str>,
) -> Result<DomainSnapshot> {
    let name = given("snapshotname", name)?;
    match (name, a.has("--current")) {
        (Some(_), true) => bail!("--snapshotname and --current are mutually exclusive"),
        (Some(n), false) => Ok(c.snapshot_lookup(d, n).await?),
        (None, true) => Ok(c.snapshot_current(d).await?),
        (None, false) => bail!("--snapshotname or --current is required"),
    }
}

/// The parent's name; `None` for a root.
async fn parent_of(c: &Connect, snap: &DomainSnapshot) -> Result<Option<String>> {
    match c.snapshot_parent(snap).await {
        Ok(p) => Ok(Some(p.name)),
        Err(e) if e.code() == Some(code::NO_DOMAIN_SNAPSHOT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `snapshot-info`'s lines.
async fn info(c: &Connect, d: &Domain, snap: &DomainSnapshot) -> Result<()> {
    let current = c.snapshot_is_current(snap).await?;
    let xml = c.snapshot_xml(snap, 0).await?;
    let head: vireo_xml::SnapshotHead = vireo_xml::parse_root(&xml, "domainsnapshot")
        .map_err(|e| anyhow!("cannot read the snapshot's XML: {e}"))?;
    let state = head.state.clone().unwrap_or_default();
    // External: said of the memory or of a disk; of snapshots without <memory>, a disk
    // snapshot.
    let external = match &head.memory {
        Some(m) => {
            use vireo_xml::SnapshotLocation::External;
            m.snapshot == Some(External)
                || head
                    .disks
                    .iter()
                    .flat_map(|ds| &ds.disk)
                    .any(|x| x.snapshot == Some(External))
        }
        None => state == "disk-snapshot",
    };
    let row = |k: &str, v: &str| println!("{k:<15} {v}");
    row("Name:", &snap.name);
    row("Domain:", &d.name);
    row("Current:", if current { "yes" } else { "no" });
    row("State:", &state);
    row("Location:", if external { "external" } else { "internal" });
    row(
        "Parent:",
        head.parent.as_ref().map_or("-", |p| p.name.as_str()),
    );
    let children = c.snapshot_num_children(snap, 0).await?;
    row("Children:", &children.to_string());
    let descendants = c.snapshot_num_children(snap, sf::LIST_DESCENDANTS).await?;
    row("Descendants:", &descendants.to_string());
    if let Ok(m) = c.snapshot_has_metadata(snap).await {
        row("Metadata:", if m { "yes" } else { "no" });
    }
    Ok(())
}

/// `snapshot-list`: a table (name, creation time, state, and parent with `--parent`), the
/// names, or the tree; of all snapshots or of a snapshot's children (`--from`,
/// `--current`), filtered by the daemon.
async fn list_snapshots(
    c: &Connect,
    a: &Args<'_>,
    dom: Option<&str>,
    from: Option<&str>,
) -> Result<()> {
    let has = |s: &str| a.has(s);
    let tree = has("--tree");
    let current = has("--current");
    for (x, y, gx, gy) in [
        ("tree", "name", tree, has("--name")),
        ("parent", "roots", has("--parent"), has("--roots")),
        ("parent", "tree", has("--parent"), tree),
        ("roots", "tree", has("--roots"), tree),
        ("roots", "from", has("--roots"), from.is_some()),
        ("roots", "current", has("--roots"), current),
    ] {
        if gx && gy {
            bail!("Options --{x} and --{y} are mutually exclusive");
        }
    }
    let mut flags = 0;
    for (s, f) in [
        ("leaves", sf::LIST_LEAVES),
        ("no-leaves", sf::LIST_NO_LEAVES),
        ("inactive", sf::LIST_INACTIVE),
        ("active", sf::LIST_ACTIVE),
        ("disk-only", sf::LIST_DISK_ONLY),
        ("internal", sf::LIST_INTERNAL),
        ("external", sf::LIST_EXTERNAL),
    ] {
        if has(&format!("--{s}")) {
            if tree {
                bail!("--{s} and --tree are mutually exclusive");
            }
            flags |= f;
        }
    }
    flags |= a.flags(&[
        ("--metadata", sf::LIST_METADATA),
        ("--no-metadata", sf::LIST_NO_METADATA),
        ("--topological", sf::LIST_TOPOLOGICAL),
        ("--roots", sf::LIST_ROOTS),
    ]);
    if has("--descendants") {
        if from.is_none() && !current {
            bail!("--descendants requires either --from or --current");
        }
        flags |= sf::LIST_DESCENDANTS;
    }
    let d = domain(c, dom).await?;
    let from = given("from", from)?;
    if from.is_some() && current {
        bail!("--from and --current are mutually exclusive");
    }
    let start = match from {
        Some(n) => Some(c.snapshot_lookup(&d, n).await?),
        None if current => Some(c.snapshot_current(&d).await?),
        None => None,
    };
    let mut snaps = match &start {
        Some(s) => c.snapshot_list_all_children(s, flags).await?,
        None => c.list_all_snapshots(&d, flags).await?,
    };
    if !has("--topological") {
        snaps.sort_by_key(|s| s.name.to_ascii_lowercase());
    }
    if tree {
        // The starting snapshot is the root of the tree it shows.
        let mut nodes: Vec<(String, Option<String>)> = Vec::new();
        if let Some(s) = &start {
            nodes.push((s.name.clone(), None));
        }
        for s in &snaps {
            nodes.push((s.name.clone(), parent_of(c, s).await?));
        }
        print!("{}", tree_text(&nodes));
        return Ok(());
    }
    if has("--name") {
        for s in &snaps {
            println!("{}", s.name);
        }
        return Ok(());
    }
    let with_parent = has("--parent");
    let mut head = vec!["Name", "Creation Time", "State"];
    if with_parent {
        head.push("Parent");
    }
    let mut rows = vec![head.into_iter().map(String::from).collect::<Vec<_>>()];
    for s in &snaps {
        let xml = c.snapshot_xml(s, 0).await?;
        let Ok(h) = vireo_xml::parse_root::<vireo_xml::SnapshotHead>(&xml, "domainsnapshot") else {
            continue;
        };
        let (Some(state), Some(time)) = (h.state.clone(), h.creation_time) else {
            continue;
        };
        let mut row = vec![s.name.clone(), local_time(time), state];
        if with_parent {
            row.push(h.parent.map(|p| p.name).unwrap_or_default());
        }
        rows.push(row);
    }
    print!("{}", table_text(&rows));
    Ok(())
}

/// virsh's table: a leading space, columns three spaces apart, each padded to its width
/// but the last, and a dash rule as wide as the columns and their gaps plus three.
fn table_text(rows: &[Vec<String>]) -> String {
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

/// virsh's tree of `(name, parent)` nodes, from each node without a parent: a child is
/// drawn under its parent after a `|` line, `+- ` before its name; the last child of a
/// parent leaves a blank column below it, and the last leaf of a branch a line of its own.
fn tree_text(nodes: &[(String, Option<String>)]) -> String {
    let mut out = String::new();
    for (i, (_, parent)) in nodes.iter().enumerate() {
        if parent.is_none() {
            branch(nodes, i, i, true, &mut String::new(), &mut out);
        }
    }
    out
}

fn branch(
    nodes: &[(String, Option<String>)],
    me: usize,
    last_sibling: usize,
    root: bool,
    indent: &mut String,
    out: &mut String,
) {
    let name = &nodes[me].0;
    out.push_str(indent);
    if !root {
        out.push_str("+- ");
    }
    out.push_str(name);
    out.push('\n');
    if !root {
        indent.push(if me == last_sibling { ' ' } else { '|' });
        indent.push(' ');
    }
    let children: Vec<usize> = (0..nodes.len())
        .filter(|&j| nodes[j].1.as_deref() == Some(name.as_str()))
        .collect();
    if let Some(&last) = children.last() {
        out.push_str(indent);
        out.push_str("  |\n");
        indent.push_str("  ");
        for &j in &children {
            branch(nodes, j, last, false, indent, out);
        }
        indent.truncate(indent.len() - 2);
    } else if me == last_sibling {
        out.push_str(indent);
        out.push('\n');
    }
    if !root {
        indent.truncate(indent.len() - 2);
    }
}

/// A creation time as virsh shows it: local time, `%Y-%m-%d %H:%M:%S %z`.
fn local_time(secs: i64) -> String {
    let Some(tm) = crate::virsh::local_tm(secs) else {
        return secs.to_string();
    };
    let off = tm.gmtoff;
    let (sign, off) = if off < 0 { ('-', -off) } else { ('+', off) };
    format!(
        "{} {sign}{:02}{:02}",
        crate::virsh::tm_text(&tm, ' '),
        off / 3600,
        off % 3600 / 60
    )
}

/// The `<domainsnapshot>` snapshot-create-as sends: name, description, memory and disks,
/// as virsh writes it.
fn snapshot_xml(
    name: Option<&str>,
    description: Option<&str>,
    memspec: Option<&str>,
    diskspecs: &[&str],
) -> Result<String> {
    let mut x = String::from("<domainsnapshot>\n");
    if let Some(n) = name {
        x.push_str(&format!("  <name>{}</name>\n", escape(n)));
    }
    if let Some(d) = description {
        x.push_str(&format!("  <description>{}</description>\n", escape(d)));
    }
    if let Some(m) = memspec {
        x.push_str(&memory_xml(m).ok_or_else(|| anyhow!("unable to parse memspec: {m}"))?);
    }
    if !diskspecs.is_empty() {
        x.push_str("  <disks>\n");
        for d in diskspecs {
            // virsh says why before it says which, when it says why.
            let disk = disk_xml(d).map_err(|why| {
                let e = anyhow!("unable to parse diskspec: {d}");
                match why {
                    Some(why) => e.context(why),
                    None => e,
                }
            })?;
            x.push_str(&disk);
        }
        x.push_str("  </disks>\n");
    }
    x.push_str("</domainsnapshot>\n");
    Ok(x)
}

/// virsh's list syntax: comma-separated, a doubled comma standing for a comma.
fn split_spec(s: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut it = s.chars().peekable();
    while let Some(ch) = it.next() {
        if ch != ',' {
            cur.push(ch);
        } else if it.peek() == Some(&',') {
            it.next();
            cur.push(',');
        } else {
            items.push(std::mem::take(&mut cur));
        }
    }
    items.push(cur);
    items
}

/// `--memspec [file=]name[,snapshot=type]` as `<memory …/>` (a name without `file=` must
/// be absolute); `None` if it does not parse.
fn memory_xml(spec: &str) -> Option<String> {
    let (mut file, mut snapshot) = (None, None);
    for item in split_spec(spec) {
        if let (None, Some(v)) = (&snapshot, item.strip_prefix("snapshot=")) {
            snapshot = Some(v.to_string());
        } else if let (None, Some(v)) = (&file, item.strip_prefix("file=")) {
            file = Some(v.to_string());
        } else if file.is_none() && item.starts_with('/') {
            file = Some(item);
        } else {
            return None;
        }
    }
    let mut x = String::from("  <memory");
    if let Some(s) = snapshot {
        x.push_str(&format!(" snapshot='{}'", escape(&s)));
    }
    if let Some(f) = file {
        x.push_str(&format!(" file='{}'", escape(&f)));
    }
    x.push_str("/>\n");
    Some(x)
}

/// `--diskspec disk[,snapshot=type][,driver=type][,stype=file|block][,file=name]` as a
/// snapshot's `<disk>`; `Err` if it does not parse, with what was wrong when virsh says
/// it.
fn disk_xml(spec: &str) -> std::result::Result<String, Option<String>> {
    let items = split_spec(spec);
    let (name, rest) = match items.split_first() {
        Some((n, r)) if !n.is_empty() || !r.is_empty() => (n, r),
        _ => return Err(None),
    };
    let mut keys: [(&str, Option<String>); 4] = [
        ("snapshot=", None),
        ("driver=", None),
        ("stype=", None),
        ("file=", None),
    ];
    for item in rest {
        let slot = keys
            .iter_mut()
            .find(|(k, _)| item.starts_with(k))
            .ok_or(None)?;
        let v = item[slot.0.len()..].to_string();
        if slot.1.replace(v).is_some() {
            return Err(None);
        }
    }
    let [(_, snapshot), (_, driver), (_, stype), (_, file)] = keys;
    let block = match stype.as_deref() {
        None | Some("file") => false,
        Some("block") => true,
        Some(t) => return Err(Some(format!("Unknown storage type: '{t}'"))),
    };
    let mut x = format!("    <disk name='{}'", escape(name));
    if let Some(s) = &snapshot {
        x.push_str(&format!(" snapshot='{}'", escape(s)));
    }
    if let Some(t) = &stype {
        x.push_str(&format!(" type='{}'", escape(t)));
    }
    if driver.is_none() && file.is_none() {
        x.push_str("/>\n");
        return Ok(x);
    }
    x.push_str(">\n");
    if let Some(d) = &driver {
        x.push_str(&format!("      <driver type='{}'/>\n", escape(d)));
    }
    if let Some(f) = &file {
        let attr = if block { "dev" } else { "file" };
        x.push_str(&format!("      <source {attr}='{}'/>\n", escape(f)));
    }
    x.push_str("    </disk>\n");
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(n: &str, p: Option<&str>) -> (String, Option<String>) {
        (n.to_string(), p.map(str::to_string))
    }

    #[test]
    fn trees_are_drawn_as_virsh_draws_them() {
        let nodes = [
            node("off1", None),
            node("a1", Some("off1")),
            node("Bb", Some("off1")),
            node("fx", Some("off1")),
            node("run1", Some("fx")),
            node("Zz", Some("a1")),
        ];
        assert_eq!(
            tree_text(&nodes),
            "off1\n  |\n  +- a1\n  |   |\n  |   +- Zz\n  |     \n  +- Bb\n  +- fx\n      |\n      +- run1\n        \n"
        );
        assert_eq!(tree_text(&[node("c1", None)]), "c1\n\n");
        assert_eq!(tree_text(&[]), "");
    }

    #[test]
    fn tables_pad_every_column_but_the_last() {
        let rows = vec![
            vec!["Name".to_string(), "State".into(), "Parent".into()],
            vec!["off1".to_string(), "shutoff".into(), String::new()],
        ];
        assert_eq!(
            table_text(&rows),
            " Name   State     Parent\n--------------------------\n off1   shutoff   \n"
        );
    }

    #[test]
    fn specs_become_virsh_xml() {
        let x = snapshot_xml(
            Some("a'b<"),
            None,
            Some("/tmp/m1"),
            &[
                "vda,driver=qcow2,stype=block,file=/dev/x,snapshot=external",
                "vdb,stype=file,file=/a,,b",
                "vdc",
            ],
        )
        .unwrap();
        assert_eq!(
            x,
            "<domainsnapshot>\n  <name>a&apos;b&lt;</name>\n  <memory file='/tmp/m1'/>\n  <disks>\n    \
             <disk name='vda' snapshot='external' type='block'>\n      <driver type='qcow2'/>\n      \
             <source dev='/dev/x'/>\n    </disk>\n    <disk name='vdb' type='file'>\n      \
             <source file='/a,b'/>\n    </disk>\n    <disk name='vdc'/>\n  </disks>\n</domainsnapshot>\n"
        );
        assert_eq!(
            memory_xml("file=/m,snapshot=external").as_deref(),
            Some("  <memory snapshot='external' file='/m'/>\n")
        );
        assert_eq!(
            memory_xml("snapshot=no,/m").as_deref(),
            Some("  <memory snapshot='no' file='/m'/>\n")
        );
        for bad in [
            "a,b",
            "m",
            "file=a,file=b",
            "/a,snapshot=x,snapshot=y",
            "/a,/b",
        ] {
            assert!(memory_xml(bad).is_none(), "{bad}");
        }
        let e = snapshot_xml(None, None, None, &["vda,stype=dir"])
            .err()
            .unwrap();
        let lines: Vec<String> = e.chain().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "Unknown storage type: 'dir'",
                "unable to parse diskspec: vda,stype=dir"
            ]
        );
        assert!(snapshot_xml(None, None, None, &["vda,bogus=1"]).is_err());
        assert_eq!(
            snapshot_xml(None, None, None, &[]).unwrap(),
            "<domainsnapshot>\n</domainsnapshot>\n"
        );
    }
}
