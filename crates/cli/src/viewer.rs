//! What a viewer asks — screenshot, domdisplay, vncdisplay — each printing what virsh
//! prints for it: the image saved to a file, the display's URI built from the running
//! domain's `<graphics>`, and virsh's refusals.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use anyhow::{anyhow, bail, Context, Result};
use vireo_client::Connect;

use crate::cnum::opt_uint;
use crate::virsh::{begin, domain, finish, given, s, Parsed, Spec};
use crate::xmlnode::Element;

pub const COMMANDS: [&str; 3] = ["screenshot", "domdisplay", "vncdisplay"];

/// `VIR_DOMAIN_XML_SECURE`.
const XML_SECURE: u32 = 1;

/// The display protocols domdisplay looks for, in its order.
const SCHEMES: [&str; 4] = ["vnc", "spice", "rdp", "dbus"];

pub(crate) fn spec(cmd: &str) -> Option<Spec> {
    Some(match cmd {
        "screenshot" => s(
            &[],
            &["--domain", "--file", "--screen"],
            &["domain", "file", "screen"],
            1,
        ),
        "domdisplay" => s(
            &["--include-password", "--all"],
            &["--domain", "--type"],
            &["domain", "type"],
            1,
        ),
        "vncdisplay" => s(&[], &["--domain"], &["domain"], 1),
        _ => return None,
    })
}

pub async fn run(uri: &str, readonly: bool, cmd: &str, rest: &[String]) -> Result<()> {
    let (p, c) = begin(uri, readonly, cmd, rest, spec).await?;
    let r = match cmd {
        "screenshot" => screenshot(&c, &p).await,
        "domdisplay" => display(&c, &p).await,
        _ => vnc_display(&c, &p).await,
    };
    finish(c, r).await
}

async fn screenshot(c: &Connect, p: &Parsed<'_>) -> Result<()> {
    let file = given("file", p.opt("file"))?;
    let screen = p
        .opt("screen")
        .map(|v| opt_uint("screen", v))
        .transpose()?
        .unwrap_or(0);
    let name = p.opt("domain").unwrap_or_default();
    let d = domain(c, Some(name)).await?;
    let shot = c
        .screenshot(&d, screen)
        .await
        .with_context(|| format!("could not take a screenshot of {name}"))?;
    let file = match file {
        Some(f) => f.to_string(),
        None => generated_name(&d.name, &shot.mime),
    };
    // A new file, or an existing one emptied; one that was made here goes if this fails.
    let open = |new: bool| {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).mode(0o666);
        if new {
            o.create_new(true);
        } else {
            o.truncate(true);
        }
        o.open(&file)
    };
    let (mut f, created) = match open(true) {
        Ok(f) => (f, true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match open(false) {
            Ok(f) => (f, false),
            Err(_) => {
                shot.abort().await;
                bail!("cannot create file {file}");
            }
        },
        Err(_) => {
            shot.abort().await;
            bail!("cannot create file {file}");
        }
    };
    let mime = shot.mime.clone();
    let r = shot
        .recv_all(|piece| f.write_all(piece))
        .await
        .with_context(|| format!("could not receive data from domain '{name}'"));
    let r = r.and_then(|()| {
        f.sync_all()
            .map_err(|_| anyhow!("cannot close file {file}"))
    });
    if let Err(e) = r {
        if created {
            let _ = std::fs::remove_file(&file);
        }
        return Err(e);
    }
    print!("Screenshot saved to {file}, with type of {mime}");
    Ok(())
}

/// virsh's name for a screenshot saved without `--file`: the domain's name, the local
/// time, and the extension of the image's type.
fn generated_name(dom: &str, mime: &str) -> String {
    let ext = match mime {
        "image/x-portable-pixmap" => ".ppm",
        "image/png" => ".png",
        _ => "",
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let when = crate::virsh::local_tm(now)
        .map(|tm| crate::virsh::tm_text(&tm, '-'))
        .unwrap_or_default();
    format!("{dom}-{when}{ext}")
}

/// The running domain's XML (`flags`), or virsh's refusal when it does not run.
async fn running_xml(c: &Connect, p: &Parsed<'_>, flags: u32) -> Result<Element> {
    let d = domain(c, p.opt("domain")).await?;
    if !c.is_active(&d).await.unwrap_or(false) {
        bail!("Domain is not running");
    }
    Element::parse(&c.xml_desc(&d, flags).await?, "domain")
}

async fn display(c: &Connect, p: &Parsed<'_>) -> Result<()> {
    p.exclusive(&[("all", "type")])?;
    let all = p.args.has("--all");
    let flags = if p.args.has("--include-password") {
        XML_SECURE
    } else {
        0
    };
    let xml = running_xml(c, p, flags).await?;
    let only = p.string("type")?;
    let mut found = false;
    for scheme in SCHEMES {
        if !all && only.is_some_and(|t| t != scheme) {
            continue;
        }
        let Some(uri) = one_display(c, &xml, scheme) else {
            continue;
        };
        print!("{uri}");
        found = true;
        if !all {
            break;
        }
        println!();
    }
    if !found {
        match only {
            Some(t) => bail!("No graphical display with type '{t}' found"),
            None => bail!("No graphical display found"),
        }
    }
    Ok(())
}

/// The URI of the domain's first display of `scheme`, as virsh builds it.
fn one_display(c: &Connect, xml: &Element, scheme: &str) -> Option<String> {
    let g = xml
        .find_all("devices/graphics")
        .into_iter()
        .find(|g| g.attr("type") == Some(scheme))?;
    if scheme == "dbus" {
        let addr = g.attr("address")?;
        return match addr.strip_prefix("unix:path=") {
            Some(path) => Some(format!("dbus+unix://{path}")),
            None => {
                // virsh says so and goes on with the other displays.
                eprintln!("error: '{addr}' D-Bus address is not handled");
                None
            }
        };
    }
    let int = |v: Option<&str>| v.and_then(|v| v.trim().parse::<i32>().ok()).unwrap_or(0);
    let mut port = int(g.attr("port"));
    let tls_port = int(g.attr("tlsPort"));
    let listen_el = g.child("listen");
    let sockpath = listen_el
        .filter(|l| l.attr("type") == Some("socket"))
        .and_then(|l| l.attr("socket"));
    if port == 0 && tls_port == 0 && sockpath.is_none() {
        return None;
    }
    let listen = match g.attr("listen") {
        None => listen_el
            .and_then(|l| l.attr("address"))
            .map(str::to_string),
        Some(a) => match a.parse::<std::net::IpAddr>() {
            // A wildcard tells nothing: the host of the connection's URI, if it has one.
            Ok(ip) if ip.is_unspecified() => c.uri().host.clone(),
            _ => Some(a.to_string()),
        },
    };
    let passwd = g.attr("passwd");
    let mut out = String::new();
    out.push_str(scheme);
    out.push_str(if sockpath.is_some() {
        "+unix://"
    } else {
        "://"
    });
    if scheme == "vnc" {
        if let Some(pw) = passwd {
            out.push_str(&format!(":{pw}@"));
        }
    }
    match (sockpath, listen.as_deref()) {
        (Some(sock), _) => out.push_str(sock),
        (None, None) => out.push_str("localhost"),
        (None, Some(l)) if l.contains(':') => out.push_str(&format!("[{l}]")),
        (None, Some(l)) => out.push_str(l),
    }
    if port != 0 {
        if scheme == "vnc" {
            port -= 5900;
        }
        out.push_str(&format!(":{port}"));
    }
    out.push('?');
    if tls_port != 0 {
        out.push_str(&format!("tls-port={tls_port}&"));
    }
    if scheme == "spice" {
        if let Some(pw) = passwd {
            out.push_str(&format!("password={pw}&"));
        }
    }
    out.pop();
    Some(out)
}

async fn vnc_display(c: &Connect, p: &Parsed<'_>) -> Result<()> {
    let xml = running_xml(c, p, 0).await?;
    let vnc = xml
        .find_all("devices/graphics")
        .into_iter()
        .find(|g| g.attr("type") == Some("vnc"));
    let port = vnc
        .and_then(|g| g.attr("port"))
        .and_then(|v| v.trim().parse::<i32>().ok())
        .ok_or_else(|| anyhow!("Failed to get VNC port. Is this domain using VNC?"))?;
    let listen = vnc.and_then(|g| {
        g.attr("listen")
            .or_else(|| g.child("listen").and_then(|l| l.attr("address")))
    });
    match listen {
        None | Some("0.0.0.0") => println!(":{}", port - 5900),
        Some(l) => println!("{l}:{}", port - 5900),
    }
    Ok(())
}
