//! Describe an XML element once, get its parser and its formatter from that description.
//!
//! ```ignore
//! xml_element! {
//!     /// `<usage type='volume'><volume>/path</volume></usage>`
//!     pub struct Usage {
//!         attr kind: UsageType = "type",
//!         leaf_opt volume: String = "volume",
//!     }
//! }
//! ```
//!
//! Each field line is `KIND name: Type = "xml-name"`; the kind says where the value lives
//! and how many there are, the type how it is spelled:
//!
//! | kind | XML | Rust field |
//! |---|---|---|
//! | `attr` / `attr_opt` | an attribute | `T` / `Option<T>` (`T: XmlValue`) |
//! | `attr_def` | an attribute, `T::default()` when absent, always written | `T` |
//! | `yes_no` / `on_off` | a `yes`/`no` or `on`/`off` attribute (the type is ignored) | `Option<bool>` |
//! | `in_attr_opt` | `"el@attr"`: the attribute of a child `<el attr='v'/>` | `Option<T>` |
//! | `attrs_in` | every attribute of a child `<el …/>`, in order (the type is ignored) | `Vec<(String, String)>` |
//! | `leaf` / `leaf_opt` / `leaves` | `<name>value</name>` children | `T` / `Option<T>` / `Vec<T>` |
//! | `child` / `child_opt` / `children` | child elements of their own model | `T` / `Option<T>` / `Vec<T>` (`T: XmlElement`) |
//! | `flag` | an empty child `<name/>` that is there or not | `bool` |
//! | `text` / `text_opt` | the element's own text (`"xml-name"` is ignored) | `T` / `Option<T>` (empty is `None`) |
//!
//! After the fields, `check path;` names a `fn(&mut Self) -> Result<(), XmlError>` run on
//! every parsed value: checks that span fields, and normalising (a MAC in lowercase).
//!
//! Formatting writes attributes in the order of the description, then the children in
//! that order, libvirt-style (two-space indentation, single quotes); an element with
//! nothing inside is written `<name/>`. Parsing checks every value, reports a missing
//! required attribute or child by name, and ignores elements it does not describe, as
//! libvirt does. Checks that need the whole object (a name without `/` in a pool
//! definition, a size within a pool) belong to the object's own `validate`.

use roxmltree::{Document, Node, ParsingOptions};

use crate::util::{child, children, el_name, line_col, precheck, str_enum, text, Writer};
use crate::{format_uuid, parse_uuid, XmlError};

/// A value that is written as an attribute or as the text of an element.
pub trait XmlValue: Sized {
    /// Parses the XML spelling; `Err` carries why it is not valid.
    fn from_xml(s: &str) -> Result<Self, String>;
    /// The XML spelling.
    fn to_xml(&self) -> String;
}

macro_rules! value_by_fromstr {
    ($($t:ty => $what:literal),* $(,)?) => {$(
        impl XmlValue for $t {
            fn from_xml(s: &str) -> Result<Self, String> {
                s.trim().parse().map_err(|_| format!("expected {}", $what))
            }
            fn to_xml(&self) -> String {
                self.to_string()
            }
        }
    )*};
}

value_by_fromstr! {
    u8 => "an integer from 0 to 255",
    u16 => "an integer from 0 to 65535",
    u32 => "a non-negative integer",
    u64 => "a non-negative integer",
    i32 => "an integer",
    i64 => "an integer",
}

impl XmlValue for String {
    fn from_xml(s: &str) -> Result<Self, String> {
        Ok(s.to_string())
    }
    fn to_xml(&self) -> String {
        self.clone()
    }
}

/// A UUID: any spelling libvirt accepts in, lowercase 8-4-4-4-12 out.
impl XmlValue for [u8; 16] {
    fn from_xml(s: &str) -> Result<Self, String> {
        parse_uuid(s).ok_or_else(|| "expected a UUID".to_string())
    }
    fn to_xml(&self) -> String {
        format_uuid(self)
    }
}

str_enum! {
    /// A `yes`/`no` attribute.
    YesNo, "value (expected 'yes' or 'no')" {
        Yes => "yes",
        No => "no",
    }
}

str_enum! {
    /// An `on`/`off` attribute.
    OnOff, "value (expected 'on' or 'off')" {
        On => "on",
        Off => "off",
    }
}

impl From<bool> for OnOff {
    fn from(b: bool) -> OnOff {
        if b {
            OnOff::On
        } else {
            OnOff::Off
        }
    }
}

impl From<bool> for YesNo {
    fn from(b: bool) -> YesNo {
        if b {
            YesNo::Yes
        } else {
            YesNo::No
        }
    }
}

/// An element with a model of its own.
pub trait XmlElement: Sized {
    /// Reads the element `n` (its name was matched by the caller).
    fn from_node(n: Node) -> Result<Self, XmlError>;
    /// Writes the element as `<name …>`.
    fn write_to(&self, w: &mut Writer, name: &str);
}

/// Parses a whole document whose root element must be `root`.
pub fn parse_document<T>(
    xml: &str,
    root: &str,
    read: impl FnOnce(Node) -> Result<T, XmlError>,
) -> Result<T, XmlError> {
    precheck(xml)?;
    let opts = ParsingOptions {
        allow_dtd: false,
        nodes_limit: u32::MAX,
    };
    let doc = Document::parse_with_options(xml, opts).map_err(|e| syntax_error(xml, &e))?;
    let r = doc.root_element();
    if r.tag_name().namespace().is_some() || r.tag_name().name() != root {
        return Err(XmlError::Invalid(format!(
            "expected root element <{root}>, found <{}>",
            r.tag_name().name()
        )));
    }
    read(r)
}

/// Parses a document whose root element `root` is described by `T`.
pub fn parse_root<T: XmlElement>(xml: &str, root: &str) -> Result<T, XmlError> {
    parse_document(xml, root, T::from_node)
}

/// [`parse_root`] for what a user gives: refuses the document when the model would not
/// keep every element and attribute of it (see [`crate::fidelity`]).
pub fn parse_root_kept<T: XmlElement>(xml: &str, root: &str) -> Result<T, XmlError> {
    let v: T = parse_root(xml, root)?;
    crate::fidelity::check_kept(xml, &format_root(&v, root), &[], &[])?;
    Ok(v)
}

/// Formats `v` as a document with root element `root`.
pub fn format_root<T: XmlElement>(v: &T, root: &str) -> String {
    let mut w = Writer::new();
    v.write_to(&mut w, root);
    w.finish()
}

/// Turns a roxmltree error into [`XmlError::Syntax`], with a useful position even for
/// errors that roxmltree reports without one (end of input).
fn syntax_error(input: &str, e: &roxmltree::Error) -> XmlError {
    use roxmltree::Error as E;
    let (line, col, msg) = match e {
        E::UnexpectedEndOfStream | E::UnclosedRootNode | E::NoRootNode => {
            let (l, c) = line_col(input, input.len());
            let msg = match e {
                E::UnclosedRootNode => "unexpected end of stream: root element is not closed",
                E::NoRootNode => "no root element",
                _ => "unexpected end of stream",
            };
            (l, c, msg.to_string())
        }
        E::DtdDetected => (1, 1, "DTD is not allowed".to_string()),
        _ => {
            let pos = e.pos();
            let full = e.to_string();
            let msg = full.replace(&format!(" at {pos}"), "");
            (pos.row, pos.col, msg)
        }
    };
    XmlError::Syntax { line, col, msg }
}

// ---------------------------------------------------------------------------
// What the macro expands to: one small function per kind, so the macro stays a table.
// ---------------------------------------------------------------------------

#[doc(hidden)]
pub mod field {
    use super::*;

    fn bad(value: &str, whose: String, why: String) -> XmlError {
        XmlError::Invalid(format!("invalid value '{value}' for {whose}: {why}"))
    }

    fn value<T: XmlValue>(s: &str, whose: impl FnOnce() -> String) -> Result<T, XmlError> {
        T::from_xml(s).map_err(|why| bad(s, whose(), why))
    }

    pub fn attr_opt<T: XmlValue>(n: Node, name: &str) -> Result<Option<T>, XmlError> {
        n.attribute(name)
            .map(|s| value(s, || format!("attribute '{name}' of {}", el_name(n))))
            .transpose()
    }

    pub fn attr<T: XmlValue>(n: Node, name: &str) -> Result<T, XmlError> {
        attr_opt(n, name)?.ok_or_else(|| {
            XmlError::Invalid(format!("missing attribute '{name}' in {}", el_name(n)))
        })
    }

    fn leaf_value<T: XmlValue>(parent: Node, c: Node) -> Result<T, XmlError> {
        let t = text(c);
        value(t.trim(), || {
            format!("{} in {}", el_name(c), el_name(parent))
        })
    }

    pub fn leaf_opt<T: XmlValue>(n: Node, name: &str) -> Result<Option<T>, XmlError> {
        child(n, name).map(|c| leaf_value(n, c)).transpose()
    }

    pub fn leaf<T: XmlValue>(n: Node, name: &str) -> Result<T, XmlError> {
        leaf_opt(n, name)?.ok_or_else(|| missing_child(n, name))
    }

    pub fn leaves<T: XmlValue>(n: Node, name: &str) -> Result<Vec<T>, XmlError> {
        children(n, name).map(|c| leaf_value(n, c)).collect()
    }

    pub fn child_opt<T: XmlElement>(n: Node, name: &str) -> Result<Option<T>, XmlError> {
        child(n, name).map(T::from_node).transpose()
    }

    pub fn child_req<T: XmlElement>(n: Node, name: &str) -> Result<T, XmlError> {
        child_opt(n, name)?.ok_or_else(|| missing_child(n, name))
    }

    pub fn children_of<T: XmlElement>(n: Node, name: &str) -> Result<Vec<T>, XmlError> {
        children(n, name).map(T::from_node).collect()
    }

    pub fn flag(n: Node, name: &str) -> Result<bool, XmlError> {
        Ok(child(n, name).is_some())
    }

    pub fn own_text<T: XmlValue>(n: Node) -> Result<T, XmlError> {
        let t = text(n);
        value(t.trim(), || format!("the text of {}", el_name(n)))
    }

    pub fn own_text_opt<T: XmlValue>(n: Node) -> Result<Option<T>, XmlError> {
        let t = text(n);
        if t.trim().is_empty() {
            return Ok(None);
        }
        own_text(n).map(Some)
    }

    pub fn attr_def<T: XmlValue + Default>(n: Node, name: &str) -> Result<T, XmlError> {
        Ok(attr_opt(n, name)?.unwrap_or_default())
    }

    pub fn yes_no(n: Node, name: &str) -> Result<Option<bool>, XmlError> {
        Ok(attr_opt::<YesNo>(n, name)?.map(|v| v == YesNo::Yes))
    }

    pub fn on_off(n: Node, name: &str) -> Result<Option<bool>, XmlError> {
        Ok(attr_opt::<OnOff>(n, name)?.map(|v| v == OnOff::On))
    }

    /// Splits `"el@attr"`.
    fn el_attr(path: &str) -> (&str, &str) {
        path.split_once('@').unwrap_or((path, ""))
    }

    /// The attribute of a child element; when the child is there, so must be the attribute.
    pub fn in_attr_opt<T: XmlValue>(n: Node, path: &str) -> Result<Option<T>, XmlError> {
        let (el, a) = el_attr(path);
        child(n, el).map(|c| attr::<T>(c, a)).transpose()
    }

    pub fn attrs_in(n: Node, name: &str) -> Result<Vec<(String, String)>, XmlError> {
        Ok(child(n, name)
            .map(|c| crate::util::attr_list(c, &[]))
            .unwrap_or_default())
    }

    fn missing_child(n: Node, name: &str) -> XmlError {
        XmlError::Invalid(format!("missing <{name}> in {}", el_name(n)))
    }

    /// An element being written: attributes first, then its text or its children.
    pub struct Out<'w> {
        w: &'w mut Writer,
        tag: String,
        text: Option<String>,
        mark: Option<usize>,
    }

    impl<'w> Out<'w> {
        pub fn start(w: &'w mut Writer, name: &str) -> Self {
            w.start_tag(name);
            Out {
                w,
                tag: name.to_string(),
                text: None,
                mark: None,
            }
        }

        pub fn attr<T: XmlValue>(&mut self, name: &str, v: &T) {
            self.w.attr(name, &v.to_xml());
        }

        pub fn attr_opt<T: XmlValue>(&mut self, name: &str, v: &Option<T>) {
            if let Some(v) = v {
                self.attr(name, v);
            }
        }

        pub fn text<T: XmlValue>(&mut self, v: &T) {
            self.text = Some(v.to_xml());
        }

        pub fn text_opt<T: XmlValue>(&mut self, v: &Option<T>) {
            if let Some(v) = v {
                self.text(v);
            }
        }

        pub fn yes_no(&mut self, name: &str, v: Option<bool>) {
            self.attr_opt(name, &v.map(YesNo::from));
        }

        pub fn on_off(&mut self, name: &str, v: Option<bool>) {
            self.attr_opt(name, &v.map(OnOff::from));
        }

        pub fn in_attr_opt<T: XmlValue>(&mut self, path: &str, v: &Option<T>) {
            if let Some(v) = v {
                let (el, a) = el_attr(path);
                let w = self.body();
                w.start_tag(el);
                w.attr(a, &v.to_xml());
                w.end_empty();
            }
        }

        pub fn attrs_in(&mut self, name: &str, v: &[(String, String)]) {
            if !v.is_empty() {
                self.body().elem(name).attrs(v).empty();
            }
        }

        fn body(&mut self) -> &mut Writer {
            if self.mark.is_none() {
                self.mark = Some(self.w.open_body());
            }
            self.w
        }

        pub fn leaf<T: XmlValue>(&mut self, name: &str, v: &T) {
            self.body().text_elem(name, &v.to_xml());
        }

        pub fn leaf_opt<T: XmlValue>(&mut self, name: &str, v: &Option<T>) {
            if let Some(v) = v {
                self.leaf(name, v);
            }
        }

        pub fn leaves<T: XmlValue>(&mut self, name: &str, v: &[T]) {
            for x in v {
                self.leaf(name, x);
            }
        }

        pub fn child<T: XmlElement>(&mut self, name: &str, v: &T) {
            v.write_to(self.body(), name);
        }

        pub fn child_opt<T: XmlElement>(&mut self, name: &str, v: &Option<T>) {
            if let Some(v) = v {
                self.child(name, v);
            }
        }

        pub fn children<T: XmlElement>(&mut self, name: &str, v: &[T]) {
            for x in v {
                self.child(name, x);
            }
        }

        pub fn flag(&mut self, name: &str, v: bool) {
            if v {
                self.body().elem(name).empty();
            }
        }

        pub fn finish(self) {
            match (self.mark, self.text) {
                (Some(_), _) => self.w.close(&self.tag),
                (None, Some(t)) if !t.is_empty() => self.w.end_with_text(&t, &self.tag),
                (None, _) => self.w.end_empty(),
            }
        }
    }
}

/// Declares a struct that models one XML element, and its `XmlElement` impl. See the
/// module documentation for the field kinds.
#[macro_export]
macro_rules! xml_element {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $kind:ident $field:ident : $ty:ty = $xml:literal
            ),* $(,)?
        }
        $(check $check:path;)?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        $vis struct $name {
            $( $(#[$fmeta])* pub $field: $crate::xml_element!(@ty $kind $ty), )*
        }

        impl $crate::model::XmlElement for $name {
            fn from_node(n: ::roxmltree::Node) -> Result<Self, $crate::XmlError> {
                #[allow(unused_mut)]
                let mut v = $name {
                    $( $field: $crate::xml_element!(@parse $kind n $ty, $xml), )*
                };
                $( $check(&mut v)?; )?
                Ok(v)
            }

            fn write_to(&self, w: &mut $crate::util::Writer, name: &str) {
                let mut out = $crate::model::field::Out::start(w, name);
                $( $crate::xml_element!(@attr $kind out self.$field, $xml); )*
                $( $crate::xml_element!(@body $kind out self.$field, $xml); )*
                out.finish();
            }
        }
    };

    (@ty attr $t:ty) => { $t };
    (@ty attr_opt $t:ty) => { Option<$t> };
    (@ty attr_def $t:ty) => { $t };
    (@ty yes_no $t:ty) => { Option<bool> };
    (@ty on_off $t:ty) => { Option<bool> };
    (@ty in_attr_opt $t:ty) => { Option<$t> };
    (@ty attrs_in $t:ty) => { Vec<(String, String)> };
    (@ty text_opt $t:ty) => { Option<$t> };
    (@ty leaf $t:ty) => { $t };
    (@ty leaf_opt $t:ty) => { Option<$t> };
    (@ty leaves $t:ty) => { Vec<$t> };
    (@ty child $t:ty) => { $t };
    (@ty child_opt $t:ty) => { Option<$t> };
    (@ty children $t:ty) => { Vec<$t> };
    (@ty flag $t:ty) => { $t };
    (@ty text $t:ty) => { $t };

    (@parse attr $n:ident $t:ty, $x:literal) => { $crate::model::field::attr::<$t>($n, $x)? };
    (@parse attr_opt $n:ident $t:ty, $x:literal) => { $crate::model::field::attr_opt::<$t>($n, $x)? };
    (@parse attr_def $n:ident $t:ty, $x:literal) => { $crate::model::field::attr_def::<$t>($n, $x)? };
    (@parse yes_no $n:ident $t:ty, $x:literal) => { $crate::model::field::yes_no($n, $x)? };
    (@parse on_off $n:ident $t:ty, $x:literal) => { $crate::model::field::on_off($n, $x)? };
    (@parse in_attr_opt $n:ident $t:ty, $x:literal) => { $crate::model::field::in_attr_opt::<$t>($n, $x)? };
    (@parse attrs_in $n:ident $t:ty, $x:literal) => { $crate::model::field::attrs_in($n, $x)? };
    (@parse text_opt $n:ident $t:ty, $x:literal) => { $crate::model::field::own_text_opt::<$t>($n)? };
    (@parse leaf $n:ident $t:ty, $x:literal) => { $crate::model::field::leaf::<$t>($n, $x)? };
    (@parse leaf_opt $n:ident $t:ty, $x:literal) => { $crate::model::field::leaf_opt::<$t>($n, $x)? };
    (@parse leaves $n:ident $t:ty, $x:literal) => { $crate::model::field::leaves::<$t>($n, $x)? };
    (@parse child $n:ident $t:ty, $x:literal) => { $crate::model::field::child_req::<$t>($n, $x)? };
    (@parse child_opt $n:ident $t:ty, $x:literal) => { $crate::model::field::child_opt::<$t>($n, $x)? };
    (@parse children $n:ident $t:ty, $x:literal) => { $crate::model::field::children_of::<$t>($n, $x)? };
    (@parse flag $n:ident $t:ty, $x:literal) => { $crate::model::field::flag($n, $x)? };
    (@parse text $n:ident $t:ty, $x:literal) => { $crate::model::field::own_text::<$t>($n)? };

    (@attr attr $o:ident $v:expr, $x:literal) => { $o.attr($x, &$v) };
    (@attr attr_opt $o:ident $v:expr, $x:literal) => { $o.attr_opt($x, &$v) };
    (@attr attr_def $o:ident $v:expr, $x:literal) => { $o.attr($x, &$v) };
    (@attr yes_no $o:ident $v:expr, $x:literal) => { $o.yes_no($x, $v) };
    (@attr on_off $o:ident $v:expr, $x:literal) => { $o.on_off($x, $v) };
    (@attr text $o:ident $v:expr, $x:literal) => { $o.text(&$v) };
    (@attr text_opt $o:ident $v:expr, $x:literal) => { $o.text_opt(&$v) };
    (@attr $k:ident $o:ident $v:expr, $x:literal) => { () };

    (@body leaf $o:ident $v:expr, $x:literal) => { $o.leaf($x, &$v) };
    (@body leaf_opt $o:ident $v:expr, $x:literal) => { $o.leaf_opt($x, &$v) };
    (@body leaves $o:ident $v:expr, $x:literal) => { $o.leaves($x, &$v) };
    (@body child $o:ident $v:expr, $x:literal) => { $o.child($x, &$v) };
    (@body child_opt $o:ident $v:expr, $x:literal) => { $o.child_opt($x, &$v) };
    (@body children $o:ident $v:expr, $x:literal) => { $o.children($x, &$v) };
    (@body flag $o:ident $v:expr, $x:literal) => { $o.flag($x, $v) };
    (@body in_attr_opt $o:ident $v:expr, $x:literal) => { $o.in_attr_opt($x, &$v) };
    (@body attrs_in $o:ident $v:expr, $x:literal) => { $o.attrs_in($x, &$v) };
    (@body $k:ident $o:ident $v:expr, $x:literal) => { () };
}

#[cfg(test)]
mod tests {
    use super::*;

    str_enum! {
        #[derive(Default)]
        Shape, "shape" {
            Round => "round",
            #[default]
            Square => "square",
        }
    }

    xml_element! {
        struct Size {
            attr_opt unit: String = "unit",
            text value: u64 = "",
        }
    }

    xml_element! {
        struct Part {
            attr name: String = "name",
        }
    }

    xml_element! {
        struct Thing {
            attr shape: Shape = "shape",
            attr_opt id: u32 = "id",
            leaf name: String = "name",
            leaf_opt uuid: [u8; 16] = "uuid",
            leaves tag: String = "tag",
            child_opt size: Size = "size",
            children part: Part = "part",
            flag sealed: bool = "sealed",
        }
    }

    const FULL: &str = "<thing shape='round' id='7'>
  <name>a &amp; b</name>
  <uuid>8e3e1c2a-6b1f-4a36-9d1e-1a2b3c4d5e6f</uuid>
  <tag>x</tag>
  <tag>y</tag>
  <size unit='KiB'>12</size>
  <part name='p1'/>
  <part name='p2'/>
  <sealed/>
</thing>
";

    #[test]
    fn formats_what_it_parsed_in_described_order() {
        let t: Thing = parse_root(FULL, "thing").unwrap();
        assert_eq!(t.shape, Shape::ALL[0]);
        assert_eq!(t.id, Some(7));
        assert_eq!(t.name, "a & b");
        assert_eq!(t.tag, ["x", "y"]);
        assert_eq!(t.size.as_ref().map(|s| s.value), Some(12));
        assert_eq!(t.part.len(), 2);
        assert!(t.sealed);
        assert_eq!(format_root(&t, "thing"), FULL);
    }

    #[test]
    fn an_element_with_nothing_inside_is_empty() {
        let t: Thing = parse_root("<thing shape='square'><name>n</name></thing>", "thing").unwrap();
        assert_eq!(
            format_root(&t, "thing"),
            "<thing shape='square'>\n  <name>n</name>\n</thing>\n"
        );
        let p = Part { name: "x".into() };
        assert_eq!(format_root(&p, "part"), "<part name='x'/>\n");
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let e = |xml: &str| parse_root::<Thing>(xml, "thing").unwrap_err().to_string();
        assert_eq!(
            e("<thing><name>n</name></thing>"),
            "XML error: missing attribute 'shape' in <thing>"
        );
        assert_eq!(
            e("<thing shape='oval'><name>n</name></thing>"),
            "XML error: invalid value 'oval' for attribute 'shape' of <thing>: unknown shape 'oval'"
        );
        assert_eq!(
            e("<thing shape='round'/>"),
            "XML error: missing <name> in <thing>"
        );
        assert_eq!(
            e("<thing shape='round' id='-1'><name>n</name></thing>"),
            "XML error: invalid value '-1' for attribute 'id' of <thing>: expected a non-negative integer"
        );
        assert_eq!(
            e("<thing shape='round'><name>n</name><size>big</size></thing>"),
            "XML error: invalid value 'big' for the text of <size>: expected a non-negative integer"
        );
        assert_eq!(
            e("<thing shape='round'><name>n</name><uuid>nope</uuid></thing>"),
            "XML error: invalid value 'nope' for <uuid> in <thing>: expected a UUID"
        );
        assert_eq!(
            e("<other/>"),
            "XML error: expected root element <thing>, found <other>"
        );
        assert!(e("<thing").starts_with("XML error at line 1"));
    }

    xml_element! {
        struct Gadget {
            attr_def shape: Shape = "shape",
            yes_no shiny: bool = "shiny",
            on_off power: bool = "power",
            in_attr_opt alias: String = "alias@name",
            attrs_in target: () = "target",
            text_opt label: String = "",
        }
        check Gadget::check;
    }

    impl Gadget {
        fn check(&mut self) -> Result<(), XmlError> {
            if self.power == Some(true) && self.shiny == Some(false) {
                return Err(XmlError::Invalid("a powered gadget shines".into()));
            }
            if let Some(a) = &mut self.alias {
                a.make_ascii_lowercase();
            }
            Ok(())
        }
    }

    #[test]
    fn defaults_switches_child_attributes_and_checks() {
        let g: Gadget = parse_root(
            "<gadget shiny='yes' power='off'><alias name='UA'/><target a='1' b='2'/></gadget>",
            "gadget",
        )
        .unwrap();
        assert_eq!(g.shape, Shape::Square);
        assert_eq!((g.shiny, g.power), (Some(true), Some(false)));
        assert_eq!(g.alias.as_deref(), Some("ua"));
        assert_eq!(
            g.target,
            [("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert_eq!(g.label, None);
        assert_eq!(
            format_root(&g, "gadget"),
            "<gadget shape='square' shiny='yes' power='off'>\n  <alias name='ua'/>\n  <target a='1' b='2'/>\n</gadget>\n"
        );
        let g: Gadget = parse_root("<gadget>  text </gadget>", "gadget").unwrap();
        assert_eq!(g.label.as_deref(), Some("text"));
        assert_eq!(
            format_root(&g, "gadget"),
            "<gadget shape='square'>text</gadget>\n"
        );

        let e = |xml: &str| parse_root::<Gadget>(xml, "gadget").unwrap_err().to_string();
        assert_eq!(
            e("<gadget power='on' shiny='no'/>"),
            "XML error: a powered gadget shines"
        );
        assert_eq!(
            e("<gadget power='1'/>"),
            "XML error: invalid value '1' for attribute 'power' of <gadget>: unknown value (expected 'on' or 'off') '1'"
        );
        assert_eq!(
            e("<gadget><alias/></gadget>"),
            "XML error: missing attribute 'name' in <alias>"
        );
    }

    #[test]
    fn unknown_elements_are_ignored() {
        let t: Thing = parse_root(
            "<thing shape='round'><name>n</name><x:y xmlns:x='urn:x'/><junk/></thing>",
            "thing",
        )
        .unwrap();
        assert_eq!(t.name, "n");
    }
}
