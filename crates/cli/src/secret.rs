//! The secret-* commands, each printing what virsh prints for it.

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use vireo_client::uri::format_uuid;
use vireo_client::{Connect, Secret};
use vireo_proto::secret::{event, list_flags, usage};

use crate::args::Args;
use crate::commands::print_table;

/// The commands of this module.
pub const COMMANDS: &[&str] = &[
    "secret-define",
    "secret-undefine",
    "secret-dumpxml",
    "secret-list",
    "secret-set-value",
    "secret-get-value",
    "secret-event",
];

/// (switches, valued options) of each command.
pub(crate) fn options(cmd: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    Some(match cmd {
        "secret-define" => (&[], &["--file"]),
        "secret-undefine" | "secret-dumpxml" => (&[], &["--secret"]),
        "secret-list" => (
            &["--ephemeral", "--no-ephemeral", "--private", "--no-private"],
            &[],
        ),
        "secret-set-value" => (
            &["--plain", "--interactive"],
            &["--secret", "--file", "--base64"],
        ),
        "secret-get-value" => (&["--plain"], &["--secret"]),
        "secret-event" => (
            &["--loop", "--list", "--timestamp"],
            &["--secret", "--event", "--timeout"],
        ),
        _ => return None,
    })
}

pub async fn run(uri: &str, readonly: bool, cmd: &str, rest: &[String]) -> Result<()> {
    let (switches, valued) = options(cmd).ok_or_else(|| anyhow!("unknown command: '{cmd}'"))?;
    let a = Args::parse(cmd, rest, switches, valued)?;
    match cmd {
        "secret-list" => a.none()?,
        "secret-define" => drop(a.positionals(&["file"], 1)?),
        "secret-event" => {}
        _ => drop(a.positionals(&["secret"], 1)?),
    }
    let c = Connect::open(uri, readonly)
        .await
        .context("failed to connect to the hypervisor")?;
    if cmd == "secret-event" {
        let r = events(&c, &a).await;
        // virsh's blank line after the command, whether it worked or not.
        println!();
        let _ = c.close().await;
        return r;
    }
    let r = command(&c, cmd, &a).await;
    if r.is_err() {
        // virsh's blank line after a command it ran, which failed.
        println!();
    }
    let _ = c.close().await;
    r
}

async fn command(c: &Connect, cmd: &str, a: &Args<'_>) -> Result<()> {
    match cmd {
        "secret-define" => {
            let file = a.one("file")?;
            let xml = std::fs::read_to_string(file)
                .with_context(|| format!("Failed to open file '{file}'"))?;
            let s = c
                .secret_define_xml(&xml)
                .await
                .with_context(|| format!("Failed to set attributes from {file}"))?;
            println!("Secret {} created\n", format_uuid(&s.uuid));
        }
        "secret-undefine" => {
            let s = get(c, a.one("secret")?).await?;
            let u = format_uuid(&s.uuid);
            c.secret_undefine(&s)
                .await
                .with_context(|| format!("Failed to delete secret {u}"))?;
            println!("Secret {u} deleted\n");
        }
        "secret-dumpxml" => {
            let s = get(c, a.one("secret")?).await?;
            println!("{}", c.secret_xml_desc(&s).await?);
        }
        "secret-set-value" => {
            let given = |o: &str| a.has(o) || a.value(o).is_some();
            for (x, y) in [
                ("--file", "--base64"),
                ("--plain", "--base64"),
                ("--interactive", "--base64"),
                ("--interactive", "--plain"),
                ("--interactive", "--file"),
            ] {
                if given(x) && given(y) {
                    bail!("Options {x} and {y} are mutually exclusive");
                }
            }
            let s = get(c, a.one("secret")?).await?;
            let mut plain = a.has("--plain");
            let raw = if let Some(b) = a.value("--base64") {
                eprintln!("error: Passing secret value as command-line argument is insecure!");
                b.as_bytes().to_vec()
            } else if let Some(f) = a.value("--file") {
                read_value_file(f)?
            } else if a.has("--interactive") {
                use std::io::Write;
                print!("Enter new value for secret:");
                let _ = std::io::stdout().flush();
                plain = true;
                read_password().context("Failed to read secret")?
            } else {
                bail!("Input secret value is missing");
            };
            let value = if plain { raw } else { decode(&raw) };
            c.secret_set_value(&s, &value)
                .await
                .context("Failed to set secret value")?;
            println!("Secret value set\n");
        }
        "secret-get-value" => {
            let s = get(c, a.one("secret")?).await?;
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
    Ok(())
}

/// secret-event: the event types, or the first event of a type (with --loop, each until
/// the timeout or ^C), of one secret or of all.
async fn events(c: &Connect, a: &Args<'_>) -> Result<()> {
    use crate::storage::{event_timeout, wait_events};
    if a.has("--list") {
        println!("lifecycle\nvalue-changed");
        return Ok(());
    }
    let given = a.positionals(&["secret", "event"], 0)?;
    let name = given[1].ok_or_else(|| anyhow!("either --list or --event <type> is required"))?;
    let event_id = match name {
        "lifecycle" => event::ID_LIFECYCLE,
        "value-changed" => event::ID_VALUE_CHANGED,
        other => bail!("unknown event type {other}"),
    };
    let timeout = event_timeout(a)?;
    // virsh reports a secret it cannot find and waits for the events of every secret.
    let mut missed = None;
    let secret = match given[0] {
        Some(k) => match get(c, k).await {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("error: failed to get secret '{k}'");
                missed = e.chain().nth(1).map(|r| r.to_string());
                None
            }
        },
        None => None,
    };
    let mut evs = c.secret_events(secret.as_ref(), event_id).await?;
    let n = wait_events(&mut evs, a.has("--loop"), a.has("--timestamp"), timeout).await;
    let _ = c.secret_event_deregister(evs.callback_id()).await;
    if n? == 0 {
        if let Some(why) = missed {
            eprintln!("error: {why}");
        }
        return Err(crate::network::Quiet.into());
    }
    Ok(())
}

impl crate::storage::EventLines for vireo_client::SecretEvents {
    async fn next_line(&mut self) -> Option<String> {
        let e = self.next().await?;
        let uuid = format_uuid(&e.secret.uuid);
        Some(if e.event_id == event::ID_VALUE_CHANGED {
            format!("event 'value-changed' for secret {uuid}")
        } else {
            let what = match e.event {
                event::DEFINED => "Defined",
                event::UNDEFINED => "Undefined",
                _ => "unknown",
            };
            format!("event 'lifecycle' for secret {uuid}: {what}")
        })
    }
}

async fn get(c: &Connect, key: &str) -> Result<Secret> {
    let r = match vireo_client::uri::parse_uuid(key) {
        Some(u) => c
            .secret_lookup_by_uuid(&u)
            .await
            .map_err(anyhow::Error::from),
        // libvirt's own refusal of a key that is not a UUID.
        None => Err(anyhow!(
            "uuidstr in virSecretLookupByUUIDString must be a valid UUID"
        )),
    };
    r.with_context(|| format!("failed to get secret '{key}'"))
}

/// Base64 decoded as virsh decodes it (glib's way): characters outside the alphabet are
/// skipped, padding is optional, a lone trailing character is dropped.
fn decode(b64: &[u8]) -> Vec<u8> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let mut text: Vec<u8> = b64
        .iter()
        .copied()
        .filter(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
        .collect();
    if text.len() % 4 == 1 {
        text.pop();
    }
    let engine = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    engine.decode(&text).unwrap_or_default()
}

/// A line typed on the terminal without echo (as getpass(3), which virsh uses): from
/// /dev/tty when there is one, else from standard input; without its line end.
fn read_password() -> Result<Vec<u8>> {
    use std::io::{BufRead, Write};
    let mut line = Vec::new();
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    {
        Ok(mut tty) => {
            use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
            // A failure leaves echo as it is.
            let old = tcgetattr(&tty).ok();
            let echo_off = old.as_ref().is_some_and(|old| {
                let mut quiet = old.clone();
                quiet
                    .local_modes
                    .remove(LocalModes::ECHO | LocalModes::ECHONL);
                tcsetattr(&tty, OptionalActions::Flush, &quiet).is_ok()
            });
            let r = std::io::BufReader::new(&tty).read_until(b'\n', &mut line);
            if let (true, Some(old)) = (echo_off, &old) {
                // Restores the settings read above on the same tty.
                let _ = tcsetattr(&tty, OptionalActions::Flush, old);
                let _ = tty.write_all(b"\n");
            }
            r?;
        }
        Err(_) => {
            std::io::stdin().lock().read_until(b'\n', &mut line)?;
        }
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    Ok(line)
}

/// A value file as virsh reads it: at most 1024 bytes, else libvirt's refusal.
fn read_value_file(f: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(f)
        .map_err(|e| anyhow!("Failed to open file '{f}': {}", crate::virsh::os_text(&e)))?;
    let mut buf = Vec::new();
    file.take(1025)
        .read_to_end(&mut buf)
        .map_err(|e| anyhow!("Failed to read file '{f}': {}", crate::virsh::os_text(&e)))?;
    if buf.len() > 1024 {
        bail!("File '{f}' is too large");
    }
    Ok(buf)
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

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn base64_is_decoded_leniently_as_glib_does() {
        assert_eq!(decode(b"Y29ycmVjdCBob3JzZQ==\n"), b"correct horse");
        assert_eq!(decode(b"Y29y\ncmVj dCBob3JzZQ"), b"correct horse");
        assert_eq!(decode(b"Y29yc"), b"cor");
        assert_eq!(decode(b"!!"), b"");
    }
}
