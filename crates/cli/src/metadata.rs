//! desc and metadata: a domain's description, title and applications' metadata elements
//! read and set as virsh reads and sets them (the running domain, the definition, or the
//! current state), with virsh's words and refusals.

use anyhow::{bail, Context, Result};
use vireo_client::metadata::metadata_type;
use vireo_client::{Connect, Domain};
use vireo_proto::error::code;
use vireo_proto::remote::affect;

use crate::virsh::{begin, domain, finish, s, Parsed, Spec};
use crate::xmlnode::Element;

pub const COMMANDS: [&str; 2] = ["desc", "metadata"];

pub(crate) fn spec(cmd: &str) -> Option<Spec> {
    Some(match cmd {
        "desc" => Spec {
            list: Some("--new-desc"),
            ..s(
                &["--live", "--config", "--current", "--title", "--edit"],
                &["--domain", "--new-desc"],
                &["domain"],
                1,
            )
        },
        "metadata" => s(
            &["--live", "--config", "--current", "--edit", "--remove"],
            &["--domain", "--uri", "--key", "--set"],
            &["domain", "uri", "key", "set"],
            2,
        ),
        _ => return None,
    })
}

pub async fn run(uri: &str, readonly: bool, cmd: &str, rest: &[String]) -> Result<()> {
    let (p, c) = begin(uri, readonly, cmd, rest, spec).await?;
    let r = match cmd {
        "desc" => desc(&c, &p).await,
        _ => metadata(&c, &p).await,
    };
    finish(c, r).await
}

/// `--live`, `--config`, `--current` as these commands take them.
fn state_flags(p: &Parsed<'_>) -> Result<u32> {
    p.exclusive(&[("current", "live"), ("current", "config")])?;
    Ok(p.args
        .flags(&[("--config", affect::CONFIG), ("--live", affect::LIVE)]))
}

async fn desc(c: &Connect, p: &Parsed<'_>) -> Result<()> {
    let flags = state_flags(p)?;
    let title = p.args.has("--title");
    let d = domain(c, p.opt("domain")).await?;
    c.state(&d).await?;
    let (kind, what) = desc_kind(title);
    // The words given, one space between each.
    let new = (!p.list.is_empty()).then(|| p.list.join(" "));
    // virsh reads the definition's when --config is given.
    let query = flags & affect::CONFIG;
    let edit = p.args.has("--edit");
    if !edit && new.is_none() {
        let text = description(c, &d, title, query).await?;
        if text.is_empty() {
            print!("No {what} for domain: {}", d.name);
        } else {
            print!("{text}");
        }
        return Ok(());
    }
    let now = description(c, &d, title, query).await?;
    let text = match new {
        Some(words) if !edit => words,
        words => {
            // The editor starts from the words given, else from what there is.
            let mut edited = crate::edit::edit_text(words.as_deref().unwrap_or(&now))?;
            // An editor's line end after a title is not part of it.
            if title && edited.ends_with('\n') {
                edited.pop();
            }
            if edited == now {
                println!("Domain {what} not changed");
                return Ok(());
            }
            edited
        }
    };
    c.set_metadata(&d, kind, Some(&text), None, None, flags)
        .await
        .with_context(|| format!("Failed to set new domain {what}"))?;
    print!("Domain {what} updated successfully");
    Ok(())
}

/// What desc is about: the title or the description, and its element's name.
fn desc_kind(title: bool) -> (i32, &'static str) {
    if title {
        (metadata_type::TITLE, "title")
    } else {
        (metadata_type::DESCRIPTION, "description")
    }
}

/// The title or description as virsh reads it: none is empty; a daemon without the call
/// has it read from the domain's XML.
async fn description(c: &Connect, d: &Domain, title: bool, flags: u32) -> Result<String> {
    let (kind, name) = desc_kind(title);
    match c.metadata(d, kind, None, flags).await {
        Ok(t) => Ok(t),
        Err(e) if e.code() == Some(code::NO_DOMAIN_METADATA) => Ok(String::new()),
        Err(e) if e.code() == Some(code::NO_SUPPORT) => {
            let xml = Element::parse(&c.xml_desc(d, flags).await?, "domain")?;
            Ok(xml.child(name).map(Element::text).unwrap_or_default())
        }
        Err(e) => Err(e.into()),
    }
}

async fn metadata(c: &Connect, p: &Parsed<'_>) -> Result<()> {
    let flags = state_flags(p)?;
    p.exclusive(&[("edit", "set"), ("remove", "set"), ("remove", "edit")])?;
    let d = domain(c, p.opt("domain")).await?;
    let uri = p.string("uri")?;
    let key = p.string("key")?;
    let set = p.string("set")?;
    let (edit, remove) = (p.args.has("--edit"), p.args.has("--remove"));
    if (set.is_some() || edit) && key.is_none() {
        bail!("namespace key is required when modifying metadata");
    }
    if set.is_some() || remove {
        c.set_metadata(&d, metadata_type::ELEMENT, set, key, uri, flags)
            .await?;
        println!(
            "{}",
            if remove {
                "Metadata removed"
            } else {
                "Metadata modified"
            }
        );
    } else if edit {
        let get = || async {
            // Nothing yet: the editor starts from an empty line.
            let now = c.metadata(&d, metadata_type::ELEMENT, uri, flags).await;
            Ok::<_, anyhow::Error>(now.unwrap_or_else(|_| "\n".to_string()))
        };
        let set = |doc: String| {
            let d = &d;
            async move {
                c.set_metadata(d, metadata_type::ELEMENT, Some(&doc), key, uri, flags)
                    .await
                    .map(|()| String::new())
            }
        };
        crate::edit::run(get, set, "Metadata not changed", |_| {
            "Metadata modified".to_string()
        })
        .await?;
    } else {
        let data = c.metadata(&d, metadata_type::ELEMENT, uri, flags).await?;
        println!("{data}");
    }
    Ok(())
}
