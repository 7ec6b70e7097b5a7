//! Nothing a user writes is lost without a word: compares a definition as it came in with
//! the same definition as the model writes it back, and names the first element or
//! attribute of the input that the model did not keep.
//!
//! The comparison is by place, not by value: every element path of the input (tag names
//! from the root down) must occur at least as often in the output, and every attribute name
//! seen on an element path of the input must be seen on that path in the output. Values
//! may change on the way (units become KiB, a machine alias its canonical name); what a
//! model normalises away on purpose is listed in the `allowed` set the caller passes.
//! Elements whose content is kept verbatim (`<metadata>`) are not looked into.

use std::collections::{BTreeMap, BTreeSet};

use roxmltree::{Document, Node, ParsingOptions};

use crate::XmlError;

/// What a definition holds, by place: how many elements at each path, and which
/// attribute names each path carries.
#[derive(Default)]
struct Shape {
    /// Paths in first-seen document order, with their counts.
    order: Vec<String>,
    counts: BTreeMap<String, usize>,
    attrs: BTreeMap<String, BTreeSet<String>>,
}

impl Shape {
    fn of(root: Node, verbatim: &[&str]) -> Shape {
        let mut s = Shape::default();
        s.walk(root, String::new(), verbatim);
        s
    }

    fn walk(&mut self, n: Node, parent: String, verbatim: &[&str]) {
        let tag = match n.tag_name().namespace() {
            // A namespaced element is a different element from its local name.
            Some(ns) => format!("{{{ns}}}{}", n.tag_name().name()),
            None => n.tag_name().name().to_string(),
        };
        let path = if parent.is_empty() {
            tag
        } else {
            format!("{parent}/{tag}")
        };
        let count = self.counts.entry(path.clone()).or_insert(0);
        if *count == 0 {
            self.order.push(path.clone());
        }
        *count += 1;
        let names = self.attrs.entry(path.clone()).or_default();
        for a in n.attributes() {
            names.insert(match a.namespace() {
                Some(ns) => format!("{{{ns}}}{}", a.name()),
                None => a.name().to_string(),
            });
        }
        if verbatim.contains(&path.as_str()) {
            return;
        }
        for c in n.children().filter(|c| c.is_element()) {
            self.walk(c, path.clone(), verbatim);
        }
    }
}

/// How a path is shown in a message: `<sound> in <devices>`.
fn describe(path: &str) -> String {
    let mut parts = path.rsplit('/');
    let own = parts.next().unwrap_or(path);
    match parts.next() {
        Some(parent) => format!("<{own}> in <{parent}>"),
        None => format!("<{own}>"),
    }
}

/// Checks that `output` (the model's formatting of `input`) keeps every element and
/// attribute of `input`. `verbatim` lists paths (`domain/metadata`) kept as they are;
/// `allowed` lists paths (`domain/devices`) and attributes (`domain/vcpu@current`) that
/// the model may leave out because it writes the same meaning another way.
///
/// Both documents must be well-formed (the caller parsed `input` already, and `output`
/// is ours); a failure to parse either is reported as invalid XML.
pub fn check_kept(
    input: &str,
    output: &str,
    verbatim: &[&str],
    allowed: &[&str],
) -> Result<(), XmlError> {
    let opts = ParsingOptions {
        allow_dtd: false,
        nodes_limit: u32::MAX,
    };
    fn parse(s: &str, opts: ParsingOptions) -> Result<Document<'_>, XmlError> {
        Document::parse_with_options(s, opts)
            .map_err(|e| XmlError::Invalid(format!("cannot compare definitions: {e}")))
    }
    let (a, b) = (parse(input, opts)?, parse(output, opts)?);
    let (was, is) = (
        Shape::of(a.root_element(), verbatim),
        Shape::of(b.root_element(), verbatim),
    );
    for path in &was.order {
        if allowed.contains(&path.as_str()) {
            continue;
        }
        let kept = is.counts.get(path).copied().unwrap_or(0);
        if kept < was.counts[path] {
            let what = describe(path);
            return Err(XmlError::Unsupported(if kept == 0 {
                format!("{what} is not supported by Vireo yet; it would be lost")
            } else {
                format!(
                    "only {kept} of the {} {what} would be kept; the rest is not supported by \
                     Vireo yet",
                    was.counts[path]
                )
            }));
        }
        let empty = BTreeSet::new();
        let there = is.attrs.get(path).unwrap_or(&empty);
        for attr in &was.attrs[path] {
            if !there.contains(attr) && !allowed.contains(&format!("{path}@{attr}").as_str()) {
                return Err(XmlError::Unsupported(format!(
                    "attribute '{attr}' of {} is not supported by Vireo yet; it would be lost",
                    describe(path)
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(a: &str, b: &str) -> Result<(), XmlError> {
        check_kept(a, b, &["r/keep"], &["r/gone", "r/x@old"])
    }

    #[test]
    fn same_shape_passes_whatever_the_values() {
        check("<r><x a='1'>t</x></r>", "<r><x a='2'>u</x><y/></r>").unwrap();
    }

    #[test]
    fn a_missing_element_is_named_with_its_parent() {
        let e = check("<r><x/><sound model='ich9'/></r>", "<r><x/></r>").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unsupported configuration: <sound> in <r> is not supported by Vireo yet; it would be lost"
        );
    }

    #[test]
    fn fewer_copies_are_refused() {
        let e = check("<r><x/><x/><x/></r>", "<r><x/></r>").unwrap_err();
        assert!(e.to_string().contains("only 1 of the 3 <x> in <r>"), "{e}");
    }

    #[test]
    fn a_missing_attribute_is_named() {
        let e = check("<r><x a='1' b='2'/></r>", "<r><x a='1'/></r>").unwrap_err();
        assert!(e.to_string().contains("attribute 'b' of <x> in <r>"), "{e}");
    }

    #[test]
    fn namespaced_elements_are_their_own() {
        let e = check("<r xmlns:q='urn:q'><q:x/></r>", "<r><x/></r>").unwrap_err();
        assert!(e.to_string().contains("<{urn:q}x> in <r>"), "{e}");
    }

    #[test]
    fn verbatim_and_allowed_places_are_not_looked_into() {
        check(
            "<r><keep><deep a='1'/></keep><gone/><x old='1'/></r>",
            "<r><keep/><x/></r>",
        )
        .unwrap();
    }
}
