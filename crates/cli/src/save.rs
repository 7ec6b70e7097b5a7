//! save, restore, managedsave, managedsave-remove, save-image-dumpxml, domjobinfo and
//! domjobabort, each printing what virsh prints for it; a save or restore shows its
//! progress on a terminal (or with --verbose), from the job's statistics.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use vireo_client::{Connect, Domain};
use vireo_proto::remote::{job, save_flags};
use vireo_proto::typed::{find, TypedValue};

use crate::args::Args;

pub const COMMANDS: [&str; 7] = [
    "save",
    "restore",
    "managedsave",
    "managedsave-remove",
    "save-image-dumpxml",
    "domjobinfo",
    "domjobabort",
];

/// (switches, valued options) of each command.
pub(crate) fn options(cmd: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    Some(match cmd {
        "save" => (
            &["--bypass-cache", "--running", "--paused", "--verbose"],
            &["--xml"],
        ),
        "restore" => (
            &["--bypass-cache", "--running", "--paused", "--verbose"],
            &["--xml"],
        ),
        "managedsave" => (
            &["--bypass-cache", "--running", "--paused", "--verbose"],
            &[],
        ),
        "save-image-dumpxml" => (&["--security-info"], &[]),
        "managedsave-remove" | "domjobinfo" | "domjobabort" => (&[], &[]),
        _ => return None,
    })
}

pub async fn run(uri: &str, readonly: bool, cmd: &str, rest: &[String]) -> Result<()> {
    let Some((switches, valued)) = options(cmd) else {
        bail!("unknown command: '{cmd}'");
    };
    let a = Args::parse(cmd, rest, switches, valued)?;
    let mut flags = 0;
    for (s, f) in [
        ("--bypass-cache", save_flags::BYPASS_CACHE),
        ("--running", save_flags::RUNNING),
        ("--paused", save_flags::PAUSED),
    ] {
        if a.has(s) {
            flags |= f;
        }
    }
    let xml = match a.value("--xml") {
        Some(f) => {
            Some(std::fs::read_to_string(f).with_context(|| format!("Failed to open file '{f}'"))?)
        }
        None => None,
    };
    let c = Connect::open(uri, readonly)
        .await
        .context("failed to connect to the hypervisor")?;
    match cmd {
        "save" => {
            let p = a.positionals(&["domain", "file"], 2)?;
            let (dom, file) = (p[0].unwrap_or_default(), p[1].unwrap_or_default());
            let d = domain(&c, dom).await?;
            let to = absolute(file)?;
            with_progress(&c, &d, "Save", a.has("--verbose"), async {
                c.save(&d, &to, xml.as_deref(), flags).await
            })
            .await
            .with_context(|| format!("Failed to save domain '{}' to {file}", d.name))?;
            println!("\nDomain '{}' saved to {file}\n", d.name);
        }
        "restore" => {
            let file = a.one("file")?;
            let path = absolute(file)?;
            // The domain the image holds (or the replacement definition names), whose
            // restore job the bar follows.
            let dom = match &xml {
                Some(x) => domain_of(x),
                None => c
                    .save_image_xml(&path, 0)
                    .await
                    .ok()
                    .and_then(|x| domain_of(&x)),
            };
            let call = c.restore(&path, xml.as_deref(), flags);
            let r = match dom {
                Some(d) => with_progress(&c, &d, "Restore", a.has("--verbose"), call).await,
                None => call.await.map_err(Into::into),
            };
            r.with_context(|| format!("Failed to restore domain from {file}"))?;
            println!("Domain restored from {file}\n");
        }
        "managedsave" => {
            let d = domain(&c, a.one("domain")?).await?;
            with_progress(&c, &d, "Managedsave", a.has("--verbose"), async {
                c.managed_save(&d, flags).await
            })
            .await
            .with_context(|| format!("Failed to save domain '{}' state", d.name))?;
            println!("\nDomain '{}' state saved by libvirt\n", d.name);
        }
        "managedsave-remove" => {
            let d = domain(&c, a.one("domain")?).await?;
            if !c.has_managed_save(&d).await? {
                println!(
                    "Domain '{}' has no manage save image; removal skipped\n",
                    d.name
                );
                return Ok(());
            }
            c.managed_save_remove(&d).await.with_context(|| {
                format!(
                    "Failed to remove managed save image for domain '{}'",
                    d.name
                )
            })?;
            println!("Removed managedsave image for domain '{}'\n", d.name);
        }
        "save-image-dumpxml" => {
            let file = a.one("file")?;
            let xml = c
                .save_image_xml(&absolute(file)?, a.has("--security-info") as u32)
                .await?;
            println!("{xml}");
        }
        "domjobinfo" => {
            let d = domain(&c, a.one("domain")?).await?;
            let (type_, params) = c.job_stats(&d).await?;
            print_job(type_, &params);
        }
        _ => {
            let d = domain(&c, a.one("domain")?).await?;
            c.abort_job(&d).await?;
        }
    }
    Ok(())
}

/// The domain a definition describes, as a handle (its name and UUID).
fn domain_of(xml: &str) -> Option<Domain> {
    let d = vireo_xml::Domain::parse(xml).ok()?;
    Some(Domain {
        name: d.name,
        uuid: d.uuid?,
        id: -1,
    })
}

async fn domain(c: &Connect, key: &str) -> Result<Domain> {
    c.lookup(key)
        .await
        .with_context(|| format!("failed to get domain '{key}'"))
}

/// The daemon does not share our working directory: paths go to it absolute, as virsh
/// sends them.
fn absolute(file: &str) -> Result<String> {
    let p = std::path::Path::new(file);
    if p.is_absolute() {
        return Ok(file.to_string());
    }
    let cwd = std::env::current_dir().context("cannot find the current directory")?;
    Ok(cwd.join(p).to_string_lossy().into_owned())
}

/// Runs `call` while a bar on stderr follows the domain's job (on a terminal, or always
/// with `verbose`).
async fn with_progress(
    c: &Connect,
    d: &Domain,
    what: &str,
    verbose: bool,
    call: impl std::future::Future<Output = vireo_client::Result<()>>,
) -> Result<()> {
    let target = indicatif::ProgressDrawTarget::stderr();
    if !verbose && target.is_hidden() {
        return Ok(call.await?);
    }
    let bar = indicatif::ProgressBar::with_draw_target(Some(100), target);
    if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
        "{what}: [{{bar:40}}] {{percent:>3}} % {{msg}}"
    )) {
        bar.set_style(style.progress_chars("=> "));
    }
    let mut call = std::pin::pin!(call);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let r = loop {
        tokio::select! {
            r = &mut call => break r,
            _ = tick.tick() => {
                // The job may not have begun, or have ended: nothing to show then.
                // A save's job is unbounded, a restore's bounded (the image's size).
                if let Ok((job::UNBOUNDED | 1, params)) = c.job_stats(d).await {
                    let get = |f: &str| find(&params, f).and_then(TypedValue::as_u64);
                    if let (Some(total), Some(done)) = (get("memory_total"), get("memory_processed")) {
                        if let Some(pct) = (done.min(total) * 100).checked_div(total) {
                            bar.set_position(pct);
                        }
                        if let Some(bps) = get("memory_bps") {
                            bar.set_message(format!("{}/s", size_text(bps)));
                        }
                    }
                }
            }
        }
    };
    if r.is_ok() {
        bar.set_position(100);
    }
    bar.finish();
    Ok(r?)
}

/// virsh's sizes in job info: three decimals and a binary unit.
fn size_text(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.3} {}", units[u])
}

/// `virsh domjobinfo`'s lines.
fn print_job(type_: i32, params: &[vireo_proto::typed::TypedParam]) {
    let type_name = match type_ {
        job::NONE => "None",
        1 => "Bounded",
        job::UNBOUNDED => "Unbounded",
        3 => "Completed",
        4 => "Failed",
        5 => "Cancelled",
        _ => "Unknown",
    };
    println!("{:<17} {:<12}", "Job type:", type_name);
    if type_ == job::NONE {
        println!();
        return;
    }
    let get = |f: &str| find(params, f).and_then(TypedValue::as_u64);
    if let Some(op) = get("operation") {
        let name = match op {
            1 => "Start",
            2 => "Save",
            3 => "Restore",
            4 => "Incoming migration",
            5 => "Outgoing migration",
            6 => "Snapshot",
            7 => "Snapshot revert",
            8 => "Dump",
            9 => "Backup",
            10 => "Snapshot delete",
            _ => "Unknown",
        };
        println!("{:<17} {:<12}", "Operation:", name);
    }
    if let Some(t) = get("time_elapsed") {
        println!("{:<17} {:<12} ms", "Time elapsed:", t);
    }
    for (field, label) in [
        ("data_processed", "Data processed:"),
        ("data_remaining", "Data remaining:"),
        ("data_total", "Data total:"),
        ("memory_processed", "Memory processed:"),
        ("memory_remaining", "Memory remaining:"),
        ("memory_total", "Memory total:"),
    ] {
        if let Some(v) = get(field).filter(|v| *v > 0) {
            println!("{label:<17} {}", size_text(v));
        }
    }
    if let Some(v) = get("memory_bps").filter(|v| *v > 0) {
        println!("{:<17} {}/s", "Memory bandwidth:", size_text(v));
    }
    for (field, label) in [
        ("memory_dirty_rate", "Dirty rate:"),
        ("memory_page_size", "Page size:"),
        ("memory_iteration", "Iteration:"),
        ("memory_constant", "Constant pages:"),
        ("memory_normal", "Normal pages:"),
    ] {
        if let Some(v) = get(field) {
            let unit = if field == "memory_dirty_rate" {
                " pages/s"
            } else {
                ""
            };
            println!("{label:<17} {v:<12}{unit}");
        }
    }
    if let Some(v) = get("memory_normal_bytes") {
        println!("{:<17} {}", "Normal data:", size_text(v));
    }
    if let Some(v) = get("setup_time") {
        println!("{:<17} {:<12} ms", "Setup time:", v);
    }
    println!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_virsh_prints_them() {
        assert_eq!(size_text(0), "0.000 B");
        assert_eq!(size_text(1536), "1.500 KiB");
        assert_eq!(size_text(128 << 20), "128.000 MiB");
    }

    #[test]
    fn relative_paths_are_made_absolute() {
        assert_eq!(absolute("/a/b").unwrap(), "/a/b");
        let here = std::env::current_dir().unwrap();
        assert_eq!(
            absolute("x.save").unwrap(),
            here.join("x.save").to_string_lossy()
        );
    }
}
