//! Shared helpers: an indenting XML writer, escaping, and small accessors
//! over `roxmltree` nodes that turn malformed values into [`XmlError`]s.

use std::fmt::Display;
use std::str::FromStr;

use roxmltree::Node;

use crate::XmlError;

/// Maximum nesting depth accepted for the generic element trees we keep
/// (for example `<features>` children such as `<hyperv>`).
pub(crate) const MAX_GENERIC_DEPTH: usize = 16;

/// Maximum number of attributes a single element may carry. Real libvirt
/// elements have a handful; this bound protects the parser (whose duplicate
/// attribute check is quadratic) from hostile input.
pub(crate) const MAX_ATTRIBUTES_PER_ELEMENT: usize = 1024;

/// Maximum element nesting depth of a document (libxml2, which libvirt
/// uses, has the same default limit). The parser recurses per level, so
/// this also protects the stack.
pub(crate) const MAX_DOCUMENT_DEPTH: usize = 256;

// ---------------------------------------------------------------------------
// Escaping
// ---------------------------------------------------------------------------

/// Append `s` to `out`, escaped for use in element text or a single-quoted
/// attribute value. Characters that XML 1.0 cannot represent are dropped.
pub(crate) fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            // Keep these as character references so that a re-parse gives
            // back exactly the same value (line-end and attribute-value
            // normalisation would otherwise alter them).
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            c if is_xml_char(c) => out.push(c),
            _ => {}
        }
    }
}

/// Like [`escape_into`] but keeps newlines literal; used for element text,
/// where a literal newline survives a re-parse unchanged.
pub(crate) fn escape_text_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\n' => out.push('\n'),
            '\t' => out.push('\t'),
            c => {
                let mut buf = [0u8; 4];
                escape_into(out, c.encode_utf8(&mut buf));
            }
        }
    }
}

/// Escape a string into a new `String` (attribute/text safe).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

fn is_xml_char(c: char) -> bool {
    matches!(c,
        '\u{9}' | '\u{A}' | '\u{D}'
        | '\u{20}'..='\u{D7FF}'
        | '\u{E000}'..='\u{FFFD}'
        | '\u{10000}'..='\u{10FFFF}')
}

// ---------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------

/// An indenting writer producing libvirt-style XML: two-space indentation,
/// single-quoted attributes, one element per line.
pub struct Writer {
    buf: String,
    depth: usize,
}

impl Writer {
    pub(crate) fn new() -> Self {
        Writer {
            buf: String::with_capacity(4096),
            depth: 0,
        }
    }

    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.buf.push_str("  ");
        }
    }

    /// Start an element; finish it with one of [`Elem::empty`],
    /// [`Elem::open`] or [`Elem::text`].
    pub(crate) fn elem<'w>(&'w mut self, name: &'w str) -> Elem<'w> {
        self.start_tag(name);
        Elem { w: self, name }
    }

    /// Close an element previously started with [`Elem::open`].
    pub(crate) fn close(&mut self, name: &str) {
        self.depth = self.depth.saturating_sub(1);
        self.indent();
        self.buf.push_str("</");
        self.buf.push_str(name);
        self.buf.push_str(">\n");
    }

    /// Writes `<name` at the current depth; attributes and an end follow.
    pub(crate) fn start_tag(&mut self, name: &str) {
        self.indent();
        self.buf.push('<');
        self.buf.push_str(name);
    }

    /// Writes ` key='value'` into the start tag being written.
    pub(crate) fn attr(&mut self, key: &str, value: &str) {
        self.buf.push(' ');
        self.buf.push_str(key);
        self.buf.push_str("='");
        escape_into(&mut self.buf, value);
        self.buf.push('\'');
    }

    /// Ends the start tag with `>`: children follow, then [`Writer::close`].
    pub(crate) fn open_body(&mut self) -> usize {
        self.buf.push_str(">\n");
        self.depth += 1;
        self.buf.len()
    }

    /// Ends the start tag with `/>`.
    pub(crate) fn end_empty(&mut self) {
        self.buf.push_str("/>\n");
    }

    /// Ends the start tag with `>text</tag>`.
    pub(crate) fn end_with_text(&mut self, text: &str, tag: &str) {
        self.buf.push('>');
        escape_text_into(&mut self.buf, text);
        self.buf.push_str("</");
        self.buf.push_str(tag);
        self.buf.push_str(">\n");
    }

    /// Shorthand for `<name>text</name>`.
    pub(crate) fn text_elem(&mut self, name: &str, text: &str) {
        self.elem(name).text(text);
    }

    /// Emit pre-formatted XML (already well-formed) at the current depth.
    /// Only the first line is indented; the rest is kept as-is.
    pub(crate) fn raw(&mut self, xml: &str) {
        self.indent();
        self.buf.push_str(xml);
        self.buf.push('\n');
    }

    pub(crate) fn finish(self) -> String {
        self.buf
    }
}

/// An element whose start tag is being written.
pub(crate) struct Elem<'w> {
    w: &'w mut Writer,
    name: &'w str,
}

impl<'w> Elem<'w> {
    pub(crate) fn attr(self, key: &str, value: impl Display) -> Self {
        self.w.attr(key, &value.to_string());
        self
    }

    pub(crate) fn opt<T: Display>(self, key: &str, value: Option<T>) -> Self {
        match value {
            Some(v) => self.attr(key, v),
            None => self,
        }
    }

    pub(crate) fn attrs(mut self, list: &[(String, String)]) -> Self {
        for (k, v) in list {
            self = self.attr(k, v);
        }
        self
    }

    /// `<name .../>`
    pub(crate) fn empty(self) {
        self.w.end_empty();
    }

    /// `<name ...>` followed by children; call [`Writer::close`] afterwards.
    pub(crate) fn open(self) {
        self.w.open_body();
    }

    /// `<name ...>text</name>`
    pub(crate) fn text(self, text: &str) {
        self.w.end_with_text(text, self.name);
    }
}

// ---------------------------------------------------------------------------
// Node accessors
// ---------------------------------------------------------------------------

/// Is `n` a libvirt (un-namespaced) element called `name`?
pub(crate) fn is_el(n: &Node, name: &str) -> bool {
    n.is_element() && n.tag_name().namespace().is_none() && n.tag_name().name() == name
}

/// First child element called `name`.
pub(crate) fn child<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    n.children().find(|c| is_el(c, name))
}

/// All child elements called `name`, in document order.
pub(crate) fn children<'a, 'i: 'a>(
    n: Node<'a, 'i>,
    name: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    n.children().filter(move |c| is_el(c, name))
}

/// Concatenated text content of the direct text children of `n`.
pub(crate) fn text(n: Node) -> String {
    let mut s = String::new();
    for c in n.children() {
        if c.is_text() {
            if let Some(t) = c.text() {
                s.push_str(t);
            }
        }
    }
    s
}

/// Text of child `name`, if that child exists.
pub(crate) fn child_text(n: Node, name: &str) -> Option<String> {
    child(n, name).map(text)
}

/// An attribute value as an owned string.
pub(crate) fn attr(n: Node, name: &str) -> Option<String> {
    n.attribute(name).map(str::to_string)
}

/// Element name used in messages, e.g. `<disk>`.
pub(crate) fn el_name(n: Node) -> String {
    format!("<{}>", n.tag_name().name())
}

/// Parse an integer; `what` describes where it came from.
pub(crate) fn parse_int<T: FromStr>(value: &str, what: &str) -> Result<T, XmlError> {
    value.trim().parse::<T>().map_err(|_| {
        XmlError::Invalid(format!(
            "invalid value '{value}' for {what}: expected an integer"
        ))
    })
}

/// Optional integer attribute.
pub(crate) fn attr_int<T: FromStr>(n: Node, name: &str) -> Result<Option<T>, XmlError> {
    match n.attribute(name) {
        None => Ok(None),
        Some(v) => parse_int(v, &format!("attribute '{name}' of {}", el_name(n))).map(Some),
    }
}

/// Optional enum attribute.
pub(crate) fn attr_enum<T: FromStr<Err = XmlError>>(
    n: Node,
    name: &str,
) -> Result<Option<T>, XmlError> {
    n.attribute(name).map(|v| v.parse::<T>()).transpose()
}

/// All un-namespaced attributes of `n` except those listed in `skip`, in
/// document order.
pub(crate) fn attr_list(n: Node, skip: &[&str]) -> Vec<(String, String)> {
    n.attributes()
        .filter(|a| a.namespace().is_none() && !skip.contains(&a.name()))
        .map(|a| (a.name().to_string(), a.value().to_string()))
        .collect()
}

/// Fails unless `v` is absent or one of `allowed`; `what` names the value in the error.
pub(crate) fn one_of(v: &Option<String>, allowed: &[&str], what: &str) -> Result<(), XmlError> {
    match v {
        Some(s) if !allowed.contains(&s.as_str()) => {
            Err(XmlError::Invalid(format!("unknown {what} '{s}'")))
        }
        _ => Ok(()),
    }
}

/// Fails when `v` is zero; `what` names the value in the error.
pub(crate) fn positive(v: Option<u32>, what: &str) -> Result<(), XmlError> {
    match v {
        Some(0) => Err(XmlError::Invalid(format!(
            "invalid value '0' for {what}: must be greater than zero"
        ))),
        _ => Ok(()),
    }
}

/// Error for a required element that is missing.
pub(crate) fn missing(what: &str, parent: &str) -> XmlError {
    XmlError::Invalid(format!("missing {what} in {parent}"))
}

// ---------------------------------------------------------------------------
// String enums
// ---------------------------------------------------------------------------

/// Define a `Copy` enum mapped one-to-one onto XML string values, with
/// `as_str`, `Display` and `FromStr` (unknown values → [`XmlError::Invalid`]).
macro_rules! str_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal {
            $( $(#[$vmeta:meta])* $var:ident => $s:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $var ),+
        }

        impl $name {
            /// Every value, in schema order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];

            /// The XML spelling of this value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$var => $s ),+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::model::XmlValue for $name {
            fn from_xml(s: &str) -> Result<Self, String> {
                s.parse::<$name>().map_err(|e| e.detail())
            }
            fn to_xml(&self) -> String {
                self.as_str().to_string()
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::XmlError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $s => Ok($name::$var), )+
                    _ => Err($crate::XmlError::Invalid(format!("unknown {} '{}'", $what, s))),
                }
            }
        }
    };
}

pub(crate) use str_enum;

// ---------------------------------------------------------------------------
// Input pre-check
// ---------------------------------------------------------------------------

/// Cheap scan rejecting documents nested too deeply or with elements
/// carrying an absurd number of attributes, before handing the text to the
/// (recursive) parser.
pub(crate) fn precheck(xml: &str) -> Result<(), XmlError> {
    let b = xml.as_bytes();
    let mut i = 0usize;
    let mut depth = 0usize;
    while i < b.len() {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        let rest = &b[i..];
        if rest.starts_with(b"<!--") {
            i = skip_past(b, i + 4, b"-->");
            continue;
        }
        if rest.starts_with(b"<![CDATA[") {
            i = skip_past(b, i + 9, b"]]>");
            continue;
        }
        if rest.starts_with(b"<?") {
            i = skip_past(b, i + 2, b"?>");
            continue;
        }
        // A tag: count '=' outside quotes until the closing '>'.
        let is_end = rest.starts_with(b"</");
        let is_decl = rest.starts_with(b"<!");
        let mut count = 0usize;
        let mut j = i + 1;
        let mut quote: Option<u8> = None;
        while j < b.len() {
            let c = b[j];
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None => match c {
                    b'\'' | b'"' => quote = Some(c),
                    b'=' => count += 1,
                    b'>' => break,
                    _ => {}
                },
            }
            j += 1;
        }
        if count > MAX_ATTRIBUTES_PER_ELEMENT {
            let (line, col) = line_col(xml, i);
            return Err(XmlError::Invalid(format!(
                "element at line {line}, column {col} has more than {MAX_ATTRIBUTES_PER_ELEMENT} attributes"
            )));
        }
        let self_closing = j > 0 && b.get(j - 1) == Some(&b'/');
        if is_end {
            depth = depth.saturating_sub(1);
        } else if !is_decl && !self_closing {
            depth += 1;
            if depth > MAX_DOCUMENT_DEPTH {
                let (line, col) = line_col(xml, i);
                return Err(XmlError::Syntax {
                    line,
                    col,
                    msg: format!("excessive depth in document: more than {MAX_DOCUMENT_DEPTH} nested elements"),
                });
            }
        }
        i = j + 1;
    }
    Ok(())
}

/// 1-based line and column (in characters) of byte offset `pos`.
pub(crate) fn line_col(text: &str, pos: usize) -> (u32, u32) {
    let before = text.get(..pos).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(col).unwrap_or(u32::MAX),
    )
}

fn skip_past(b: &[u8], from: usize, pat: &[u8]) -> usize {
    let mut k = from;
    while k + pat.len() <= b.len() {
        if &b[k..k + pat.len()] == pat {
            return k + pat.len();
        }
        k += 1;
    }
    b.len()
}
