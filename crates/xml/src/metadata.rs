//! `virDomainGetMetadata` / `virDomainSetMetadata`: a domain's title, description, and
//! the elements of `<metadata>` that applications keep there, one per namespace URI.

use roxmltree::{Document, Node, ParsingOptions};

use crate::util::escape;
use crate::{Domain, XmlError};

/// `virDomainMetadataType`.
pub mod kind {
    pub const DESCRIPTION: i32 = 0;
    pub const TITLE: i32 = 1;
    pub const ELEMENT: i32 = 2;
}

fn parse(xml: &str) -> Result<Document<'_>, XmlError> {
    let opts = ParsingOptions {
        allow_dtd: false,
        nodes_limit: 1 << 20,
    };
    Document::parse_with_options(xml, opts)
        .map_err(|e| XmlError::Invalid(format!("(metadata_xml): {e}")))
}

/// Writes element `n` and its content; with `prefix`, every element that has no
/// namespace of its own is put in `prefix:` (the root also declares it for `uri`).
fn write(out: &mut String, n: Node, ns: Option<(&str, &str)>, root: bool) {
    let own = n.tag_name().namespace();
    let name = match (ns, own) {
        (Some((prefix, uri)), Some(u)) if u == uri => format!("{prefix}:{}", n.tag_name().name()),
        (Some((prefix, _)), None) => format!("{prefix}:{}", n.tag_name().name()),
        _ => n.tag_name().name().to_string(),
    };
    out.push('<');
    out.push_str(&name);
    if root {
        if let Some((prefix, uri)) = ns {
            out.push_str(&format!(" xmlns:{prefix}=\"{}\"", escape(uri)));
        }
    }
    for a in n.attributes() {
        out.push_str(&format!(" {}=\"{}\"", a.name(), escape(a.value())));
    }
    let kids: Vec<Node> = n.children().collect();
    if kids.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    for c in kids {
        if c.is_element() {
            write(out, c, ns, false);
        } else if let Some(t) = c.text() {
            out.push_str(&escape(t));
        }
    }
    out.push_str(&format!("</{name}>"));
}

/// The top-level elements of a domain's `<metadata>`, as (namespace URI, text) pairs.
fn elements(inner: &str) -> Result<Vec<(Option<String>, String)>, XmlError> {
    let wrapped = format!("<metadata>{inner}</metadata>");
    let doc = parse(&wrapped)?;
    Ok(doc
        .root_element()
        .children()
        .filter(|c| c.is_element())
        .map(|c| {
            let text = wrapped
                .get(c.range())
                .map(str::to_string)
                .unwrap_or_default();
            (c.tag_name().namespace().map(str::to_string), text)
        })
        .collect())
}

fn check_uri(uri: Option<&str>) -> Result<&str, XmlError> {
    match uri {
        Some(u) if !u.trim().is_empty() => Ok(u),
        _ => Err(XmlError::Invalid(
            "metadata of type ELEMENT needs a namespace URI".into(),
        )),
    }
}

impl Domain {
    /// The title, the description, or the `<metadata>` element of namespace `uri` (without
    /// its namespace prefix, as libvirt gives it). None when there is none.
    pub fn get_metadata(&self, kind: i32, uri: Option<&str>) -> Result<Option<String>, XmlError> {
        match kind {
            kind::DESCRIPTION => Ok(self.description.clone()),
            kind::TITLE => Ok(self.title.clone()),
            kind::ELEMENT => {
                let uri = check_uri(uri)?;
                let inner = self.metadata.clone().unwrap_or_default();
                for (ns, text) in elements(&inner)? {
                    if ns.as_deref() == Some(uri) {
                        let doc = parse(&text)?;
                        let mut out = String::new();
                        write(&mut out, doc.root_element(), None, true);
                        return Ok(Some(out));
                    }
                }
                Ok(None)
            }
            other => Err(XmlError::Invalid(format!("unknown metadata type {other}"))),
        }
    }

    /// Sets (or with `None` or an empty text, removes) the title, the description, or the
    /// `<metadata>` element of namespace `uri`, which is written with prefix `key`.
    pub fn set_metadata(
        &mut self,
        kind: i32,
        value: Option<&str>,
        key: Option<&str>,
        uri: Option<&str>,
    ) -> Result<(), XmlError> {
        let value = value.filter(|v| !v.is_empty());
        match kind {
            kind::DESCRIPTION => self.description = value.map(str::to_string),
            kind::TITLE => {
                if value.is_some_and(|v| v.contains('\n')) {
                    return Err(XmlError::Invalid(
                        "a domain title can't contain newlines".into(),
                    ));
                }
                self.title = value.map(str::to_string);
            }
            kind::ELEMENT => {
                let uri = check_uri(uri)?;
                let mut kept: Vec<String> = elements(&self.metadata.clone().unwrap_or_default())?
                    .into_iter()
                    .filter(|(ns, _)| ns.as_deref() != Some(uri))
                    .map(|(_, t)| t)
                    .collect();
                if let Some(xml) = value {
                    let key = match key {
                        Some(k)
                            if !k.is_empty()
                                && k.chars()
                                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                                && !k.starts_with(|c: char| c.is_ascii_digit() || c == '-') =>
                        {
                            k
                        }
                        _ => {
                            return Err(XmlError::Invalid(
                                "metadata of type ELEMENT needs a valid namespace prefix (key)"
                                    .into(),
                            ))
                        }
                    };
                    let doc = parse(xml)?;
                    let mut out = String::new();
                    write(&mut out, doc.root_element(), Some((key, uri)), true);
                    kept.push(out);
                }
                self.metadata = if kept.is_empty() {
                    None
                } else {
                    Some(kept.join("\n"))
                };
            }
            other => return Err(XmlError::Invalid(format!("unknown metadata type {other}"))),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dom() -> Domain {
        Domain::parse(
            "<domain type='qemu'><name>m</name><memory>1024</memory><os><type>hvm</type></os>\
             <metadata><a:keep xmlns:a='urn:a' x='1'>text</a:keep></metadata></domain>",
        )
        .unwrap()
    }

    #[test]
    fn elements_are_set_read_and_removed_by_namespace() {
        let mut d = dom();
        d.set_metadata(
            kind::ELEMENT,
            Some("<instance><name>vm &amp; co</name><flavor id='3'/></instance>"),
            Some("nova"),
            Some("http://openstack.org/xmlns/libvirt/nova/1.1"),
        )
        .unwrap();
        let xml = d.format();
        assert!(
            xml.contains("<a:keep xmlns:a='urn:a' x='1'>text</a:keep>"),
            "{xml}"
        );
        assert!(
            xml.contains(
                "<nova:instance xmlns:nova=\"http://openstack.org/xmlns/libvirt/nova/1.1\">\
                 <nova:name>vm &amp; co</nova:name><nova:flavor id=\"3\"/></nova:instance>"
            ),
            "{xml}"
        );
        // The stored definition reads back the same.
        let again = Domain::parse(&xml).unwrap();
        assert_eq!(
            again
                .get_metadata(
                    kind::ELEMENT,
                    Some("http://openstack.org/xmlns/libvirt/nova/1.1")
                )
                .unwrap()
                .as_deref(),
            Some("<instance><name>vm &amp; co</name><flavor id=\"3\"/></instance>")
        );
        // Replaced, then removed; the other namespace stays.
        d.set_metadata(kind::ELEMENT, Some("<x/>"), Some("n"), Some("urn:a"))
            .unwrap();
        assert_eq!(
            d.get_metadata(kind::ELEMENT, Some("urn:a"))
                .unwrap()
                .as_deref(),
            Some("<x/>")
        );
        d.set_metadata(kind::ELEMENT, None, None, Some("urn:a"))
            .unwrap();
        assert_eq!(d.get_metadata(kind::ELEMENT, Some("urn:a")).unwrap(), None);
        assert!(d.metadata.as_deref().unwrap().contains("nova:instance"));
    }

    #[test]
    fn title_and_description() {
        let mut d = dom();
        d.set_metadata(kind::DESCRIPTION, Some("a <long> one"), None, None)
            .unwrap();
        d.set_metadata(kind::TITLE, Some("short"), None, None)
            .unwrap();
        let again = Domain::parse(&d.format()).unwrap();
        assert_eq!(again.description.as_deref(), Some("a <long> one"));
        assert_eq!(
            again.get_metadata(kind::TITLE, None).unwrap().as_deref(),
            Some("short")
        );
        assert!(d
            .set_metadata(kind::TITLE, Some("a\nb"), None, None)
            .is_err());
        d.set_metadata(kind::TITLE, Some(""), None, None).unwrap();
        assert_eq!(d.title, None);
    }

    #[test]
    fn bad_input_is_refused_and_nothing_changes() {
        let mut d = dom();
        let before = d.clone();
        for (v, key, uri) in [
            (Some("<unclosed>"), Some("k"), Some("urn:k")),
            (Some("<x/>"), None, Some("urn:k")),
            (Some("<x/>"), Some("1bad"), Some("urn:k")),
            (Some("<x/>"), Some("k"), None),
        ] {
            assert!(
                d.set_metadata(kind::ELEMENT, v, key, uri).is_err(),
                "{v:?} {key:?} {uri:?}"
            );
            assert_eq!(d, before);
        }
        assert!(d.set_metadata(7, Some("x"), None, None).is_err());
    }
}
