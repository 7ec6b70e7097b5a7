//! The secret-* commands, each printing what virsh prints for it.

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use vireo_client::uri::format_uuid;
use vireo_client::{Connect, Secret};
use vireo_proto::secret::{list_flags, usage};

use crate::commands::print_table;

/// Options that take a value; every other `--x` is a switch.
const VALUED: &[&str] = &["--file", "--base64", "--secret"];

struct Args<'a> {
    switches: Vec<&'a str>,
    values: Vec<(&'a str, &'a str)>,
    pos: Vec<&'a str>,
}

impl<'a> Args<'a> {
    fn parse(cmd: &str, rest: &'a [String], allowed: &[&str]) -> Result<Args<'a>> {
        let mut a = Args {
            switches: Vec::new(),
            values: Vec::new(),
            pos: Vec::new(),
        };
        let mut it = rest.iter().map(String::as_str);
        while let Some(x) = it.next() {
            if !x.starts_with("--") {
                a.pos.push(x);
                continue;
            }
            if !allowed.contains(&x) {
                bail!("command '{cmd}' doesn't support option {x}");
            }
            if VALUED.contains(&x) {
                let v = it
                    .next()
                    .ok_or_else(|| anyhow!("option '{x}' requires an argument"))?;
                a.values.push((x, v));
            } else {
                a.switches.push(x);
            }
        }
        Ok(a)
    }

    fn has(&self, s: &str) -> bool {
        self.switches.contains(&s)
    }

    fn value(&self, k: &str) -> Option<&'a str> {
        self.values.iter().find(|(n, _)| *n == k).map(|(_, v)| *v)
    }

    /// The one positional argument (or `--NAME value`).
    fn one(&self, cmd: &str, name: &str) -> Result<&'a str> {
        if let Some(v) = self.value(&format!("--{name}")) {
            return match self.pos.first() {
                Some(x) => Err(anyhow!("unexpected data '{x}'")),
                None => Ok(v),
            };
        }
        match self.pos.as_slice() {
            [x] => Ok(*x),
            [] => Err(anyhow!("command '{cmd}' requires <{name}> option")),
            _ => Err(anyhow!("unexpected data '{}'", self.pos[1])),
        }
    }
}

pub async fn run(uri: &str, readonly: bool, cmd: &str, rest: &[String]) -> Result<()> {
    let allowed: &[&str] = match cmd {
        "secret-define" | "secret-undefine" | "secret-dumpxml" => &["--secret"],
        "secret-list" => &["--ephemeral", "--no-ephemeral", "--private", "--no-private"],
        "secret-set-value" => &["--secret", "--file", "--plain", "--base64"],
        "secret-get-value" => &["--secret", "--plain"],
        other => bail!("unknown command: '{other}'"),
    };
    let a = Args::parse(cmd, rest, allowed)?;
    if cmd == "secret-list" {
        if let Some(x) = a.pos.first() {
            bail!("unexpected data '{x}'");
        }
    }
    let c = Connect::open(uri, readonly)
        .await
        .context("failed to connect to the hypervisor")?;
    match cmd {
        "secret-define" => {
            let file = a.one(cmd, "file")?;
            let xml = std::fs::read_to_string(file)
                .with_context(|| format!("Failed to open file '{file}'"))?;
            let s = c
                .secret_define_xml(&xml)
                .await
                .with_context(|| format!("Failed to set attributes from {file}"))?;
            println!("Secret {} created\n", format_uuid(&s.uuid));
        }
        "secret-undefine" => {
            let s = get(&c, a.one(cmd, "secret")?).await?;
            let u = format_uuid(&s.uuid);
            c.secret_undefine(&s)
                .await
                .with_context(|| format!("Failed to delete secret {u}"))?;
            println!("Secret {u} deleted\n");
        }
        "secret-dumpxml" => {
            let s = get(&c, a.one(cmd, "secret")?).await?;
            println!("{}", c.secret_xml_desc(&s).await?);
        }
        "secret-set-value" => {
            let s = get(&c, a.one(cmd, "secret")?).await?;
            let value = match (a.value("--file"), a.value("--base64")) {
                (Some(f), None) => {
                    let raw = std::fs::read(f).with_context(|| format!("failed to read '{f}'"))?;
                    if a.has("--plain") {
                        raw
                    } else {
                        decode(String::from_utf8_lossy(&raw).trim())?
                    }
                }
                (None, Some(b)) => {
                    eprintln!("error: Passing secret value as command-line argument is insecure!");
                    decode(b)?
                }
                _ => bail!("one of --file or --base64 is required"),
            };
            c.secret_set_value(&s, &value)
                .await
                .context("Failed to set secret value")?;
            println!("Secret value set\n");
        }
        "secret-get-value" => {
            let s = get(&c, a.one(cmd, "secret")?).await?;
            let v = c.secret_get_value(&s).await?;
            if a.has("--plain") {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                out.write_all(&v)?;
                out.write_all(b"\n")?;
            } else {
                println!("{}", base64::engine::general_purpose::STANDARD.encode(&v));
            }
        }
        "secret-list" => {
            let mut flags = 0;
            for (s, f) in [
                ("--ephemeral", list_flags::EPHEMERAL),
                ("--no-ephemeral", list_flags::NO_EPHEMERAL),
                ("--private", list_flags::PRIVATE),
                ("--no-private", list_flags::NO_PRIVATE),
            ] {
                if a.has(s) {
                    flags |= f;
                }
            }
            let list = c
                .list_all_secrets(flags)
                .await
                .context("Failed to list secrets")?;
            let mut rows = vec![vec!["UUID".to_string(), "Usage".to_string()]];
            for s in &list {
                rows.push(vec![format_uuid(&s.uuid), usage_text(s)]);
            }
            print_table(&rows);
        }
        _ => unreachable!("checked above"),
    }
    let _ = c.close().await;
    Ok(())
}

async fn get(c: &Connect, key: &str) -> Result<Secret> {
    c.secret_lookup(key)
        .await
        .with_context(|| format!("failed to get secret '{key}'"))
}

fn decode(b64: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| anyhow!("Invalid base64 data"))
}

/// virsh's Usage column: the usage type and what it names, or "Unused".
fn usage_text(s: &Secret) -> String {
    let ty = match s.usage_type {
        usage::VOLUME => "volume",
        usage::CEPH => "ceph",
        usage::ISCSI => "iscsi",
        usage::TLS => "tls",
        usage::VTPM => "vtpm",
        _ => return "Unused".into(),
    };
    format!("{ty} {}", s.usage_id)
}
