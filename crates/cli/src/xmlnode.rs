//! A domain's XML as virsh holds it to pick a device out and change it: an owned tree that
//! keeps every text node (the indentation included), a few XPath-like lookups, and the
//! tree written back as libxml2 writes one node (`xmlNodeDump`: double quotes, its
//! escapes, the text as it was).

use anyhow::{anyhow, Result};

/// A node of the tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Element(Element),
    Text(String),
    Comment(String),
}

/// An element: its name, its attributes in their order, its children.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
}

impl Element {
    /// The document `xml`, whose root must be `root`.
    pub fn parse(xml: &str, root: &str) -> Result<Element> {
        vireo_xml::model::parse_document(xml, root, |r| Ok(Element::from_node(r)))
            .map_err(|e| anyhow!("{e}"))
    }

    fn from_node(n: roxmltree::Node) -> Element {
        let mut e = Element {
            name: n.tag_name().name().to_string(),
            attrs: n
                .attributes()
                .map(|a| (a.name().to_string(), a.value().to_string()))
                .collect(),
            children: Vec::new(),
        };
        for c in n.children() {
            if c.is_element() {
                e.children.push(Node::Element(Element::from_node(c)));
            } else if c.is_text() {
                e.children
                    .push(Node::Text(c.text().unwrap_or_default().to_string()));
            } else if c.is_comment() {
                e.children
                    .push(Node::Comment(c.text().unwrap_or_default().to_string()));
            }
        }
        e
    }

    /// A new element without children.
    pub fn new(name: &str, attrs: &[(&str, &str)]) -> Element {
        Element {
            name: name.to_string(),
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            children: Vec::new(),
        }
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets attribute `name` (in its place when it is there, else last).
    pub fn set_attr(&mut self, name: &str, value: &str) {
        match self.attrs.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = value.to_string(),
            None => self.attrs.push((name.to_string(), value.to_string())),
        }
    }

    /// The child elements.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|c| match c {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }

    /// The child elements called `name`.
    pub fn all<'s, 'n>(&'s self, name: &'n str) -> impl Iterator<Item = &'s Element> + use<'s, 'n> {
        self.elements().filter(move |e| e.name == name)
    }

    /// The first child element called `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.all(name).next()
    }

    /// The first child element called `name`, to change.
    pub fn child_mut(&mut self, name: &str) -> Option<&mut Element> {
        self.children.iter_mut().find_map(|c| match c {
            Node::Element(e) if e.name == name => Some(e),
            _ => None,
        })
    }

    /// The elements down `path` (names separated by `/`, from this element's children).
    pub fn find_all<'s>(&'s self, path: &str) -> Vec<&'s Element> {
        let mut level = vec![self];
        for step in path.split('/') {
            level = level
                .into_iter()
                .flat_map(|e| e.elements().filter(|c| c.name == step))
                .collect();
        }
        level
    }

    /// Attribute `attr` of the first element down `path` (`./path/@attr`).
    pub fn attr_at(&self, path: &str, attr: &str) -> Option<&str> {
        self.find_all(path).first().and_then(|e| e.attr(attr))
    }

    /// The first of `attrs` that element `path` has, in the element's own order (what
    /// XPath's `string(a|b|…)` gives).
    pub fn first_attr_of(&self, path: &str, attrs: &[&str]) -> Option<&str> {
        let e = *self.find_all(path).first()?;
        e.attrs
            .iter()
            .find(|(k, _)| attrs.contains(&k.as_str()))
            .map(|(_, v)| v.as_str())
    }

    /// The text inside the element (its text nodes joined, as XPath's `string()`).
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.children {
            match c {
                Node::Text(t) => out.push_str(t),
                Node::Element(e) => out.push_str(&e.text()),
                Node::Comment(_) => {}
            }
        }
        out
    }

    /// Takes out the first child element called `name` (its neighbouring text stays);
    /// whether there was one.
    pub fn remove_child(&mut self, name: &str) -> bool {
        let at = self
            .children
            .iter()
            .position(|c| matches!(c, Node::Element(e) if e.name == name));
        if let Some(i) = at {
            self.children.remove(i);
        }
        at.is_some()
    }

    /// The element as libxml2's `xmlNodeDump` writes it (level 0, formatted where no child
    /// is text).
    pub fn dump(&self) -> String {
        let mut out = String::new();
        self.dump_into(&mut out, 0, true);
        out
    }

    fn dump_into(&self, out: &mut String, level: usize, format: bool) {
        out.push('<');
        out.push_str(&self.name);
        for (k, v) in &self.attrs {
            out.push(' ');
            out.push_str(k);
            out.push_str("=\"");
            escape_into(out, v, true);
            out.push('"');
        }
        if self.children.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        // libxml2 indents only where every child is an element (or a comment).
        let format = format && self.children.iter().all(|c| !matches!(c, Node::Text(_)));
        if format {
            out.push('\n');
        }
        for c in &self.children {
            if format {
                out.push_str(&"  ".repeat(level + 1));
            }
            match c {
                Node::Element(e) => e.dump_into(out, level + 1, format),
                Node::Text(t) => escape_into(out, t, false),
                Node::Comment(t) => {
                    out.push_str("<!--");
                    out.push_str(t);
                    out.push_str("-->");
                }
            }
            if format {
                out.push('\n');
            }
        }
        if format {
            out.push_str(&"  ".repeat(level));
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }
}

/// libxml2's escaping of text (`attr`: of an attribute's value) for a document without a
/// declared encoding: markup characters as entities, other characters beyond ASCII as
/// hexadecimal character references.
fn escape_into(out: &mut String, s: &str, attr: bool) {
    for ch in s.chars() {
        match ch {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\r' => out.push_str("&#13;"),
            '"' if attr => out.push_str("&quot;"),
            '\n' if attr => out.push_str("&#10;"),
            '\t' if attr => out.push_str("&#9;"),
            c if !c.is_ascii() => out.push_str(&format!("&#x{:X};", c as u32)),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOM: &str = "<domain>\n  <devices>\n    <interface type='user'>\n      \
        <mac address='52:54:00:aa:bb:01'/>\n      <model type='virtio'/>\n    \
        </interface>\n  </devices>\n</domain>\n";

    #[test]
    fn a_node_is_written_back_as_libxml2_writes_it() {
        let d = Element::parse(DOM, "domain").unwrap();
        let i = d.find_all("devices/interface")[0];
        assert_eq!(
            i.dump(),
            "<interface type=\"user\">\n      <mac address=\"52:54:00:aa:bb:01\"/>\n      \
             <model type=\"virtio\"/>\n    </interface>"
        );
        let mut i = i.clone();
        i.children
            .push(Node::Element(Element::new("link", &[("state", "down")])));
        assert!(i.dump().ends_with("    <link state=\"down\"/></interface>"));
        let mut e = Element::new("a", &[("v", "x\"<é\n")]);
        e.children.push(Node::Element(Element::new("b", &[])));
        assert_eq!(e.dump(), "<a v=\"x&quot;&lt;&#xE9;&#10;\">\n  <b/>\n</a>");
        assert_eq!(
            d.attr_at("devices/interface/mac", "address"),
            Some("52:54:00:aa:bb:01")
        );
        assert_eq!(
            d.first_attr_of("devices/interface/model", &["x", "type"]),
            Some("virtio")
        );
    }
}
