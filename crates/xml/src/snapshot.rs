//! Domain snapshot XML (`<domainsnapshot>`): the snapshot's own elements are described once
//! with [`xml_element!`]; the `<domain>` it carries is a whole [`Domain`].

use roxmltree::Node;

use crate::model::{format_root, parse_document, XmlElement};
use crate::util::str_enum;
use crate::{xml_element, Domain, XmlError};

str_enum! {
    /// Where a snapshot keeps memory or a disk (`snapshot=` of `<memory>` and `<disk>`).
    SnapshotLocation, "snapshot location" {
        No => "no",
        Internal => "internal",
        External => "external",
        Manual => "manual",
    }
}

xml_element! {
    /// `<memory snapshot='…' file='…'/>`.
    pub struct SnapshotMemory {
        attr_opt snapshot: SnapshotLocation = "snapshot",
        attr_opt file: String = "file",
    }
}

xml_element! {
    /// `<source file='…'/>` of an external disk snapshot.
    pub struct SnapshotSource {
        attr_opt file: String = "file",
        attr_opt dev: String = "dev",
    }
}

xml_element! {
    /// `<disk name='vda' snapshot='…'>`: what the snapshot does with one disk.
    pub struct SnapshotDisk {
        attr name: String = "name",
        attr_opt snapshot: SnapshotLocation = "snapshot",
        attr_opt disk_type: String = "type",
        in_attr_opt driver: String = "driver@type",
        child_opt source: SnapshotSource = "source",
    }
}

xml_element! {
    /// `<disks>`.
    #[derive(Default)]
    pub struct SnapshotDisks {
        children disk: SnapshotDisk = "disk",
    }
}

xml_element! {
    /// `<parent><name>…</name></parent>`.
    pub struct SnapshotParent {
        leaf name: String = "name",
    }
}

xml_element! {
    /// The elements of `<domainsnapshot>` but its `<domain>`, in libvirt's order.
    #[derive(Default)]
    pub struct SnapshotHead {
        leaf_opt name: String = "name",
        leaf_opt description: String = "description",
        /// The domain's state when the snapshot was taken (`running`, `shutoff`,
        /// `disk-snapshot` …).
        leaf_opt state: String = "state",
        child_opt parent: SnapshotParent = "parent",
        leaf_opt creation_time: i64 = "creationTime",
        child_opt memory: SnapshotMemory = "memory",
        child_opt disks: SnapshotDisks = "disks",
    }
}

/// A domain snapshot: its elements and the domain definition it was taken of.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainSnapshot {
    pub head: SnapshotHead,
    pub domain: Option<Domain>,
}

/// The states `<state>` may name.
pub const SNAPSHOT_STATES: &[&str] = &[
    "nostate",
    "running",
    "blocked",
    "paused",
    "shutdown",
    "shutoff",
    "crashed",
    "pmsuspended",
    "disk-snapshot",
];

impl DomainSnapshot {
    /// Parses `<domainsnapshot>`; a `<domain>` inside is read as a definition.
    pub fn parse(xml: &str) -> Result<DomainSnapshot, XmlError> {
        parse_document(xml, "domainsnapshot", |root: Node| {
            let head = SnapshotHead::from_node(root)?;
            if let Some(s) = &head.state {
                if !SNAPSHOT_STATES.contains(&s.as_str()) {
                    return Err(XmlError::Invalid(format!(
                        "Invalid state '{s}' in domain snapshot XML"
                    )));
                }
            }
            if let Some(n) = &head.name {
                check_name(n)?;
            }
            let domain = root
                .children()
                .find(|c| c.is_element() && c.tag_name().name() == "domain")
                .map(|d| Domain::parse(&xml[d.range()]))
                .transpose()?;
            Ok(DomainSnapshot { head, domain })
        })
    }

    /// [`DomainSnapshot::parse`] for what a user gives: an element or attribute the
    /// model would not keep is refused by name, never dropped. (libvirt's `<cookie>`, the
    /// host CPU a snapshot was taken on, is the one thing let go.)
    pub fn parse_kept(xml: &str) -> Result<DomainSnapshot, XmlError> {
        let snap = DomainSnapshot::parse(xml)?;
        crate::fidelity::check_kept(
            xml,
            &snap.format(),
            &["domainsnapshot/domain", "domainsnapshot/cookie"],
            &["domainsnapshot/cookie", "domainsnapshot/domain@id"],
        )?;
        Ok(snap)
    }

    /// The snapshot's name (set once the driver accepted it).
    pub fn name(&self) -> &str {
        self.head.name.as_deref().unwrap_or_default()
    }

    /// The parent's name, if it has one.
    pub fn parent(&self) -> Option<&str> {
        self.head.parent.as_ref().map(|p| p.name.as_str())
    }

    /// libvirt's layout: the snapshot's elements, then the domain indented inside.
    pub fn format(&self) -> String {
        let head = format_root(&self.head, "domainsnapshot");
        let Some(dom) = &self.domain else {
            return head;
        };
        let mut inner = String::new();
        for line in dom.format().lines() {
            inner.push_str("  ");
            inner.push_str(line);
            inner.push('\n');
        }
        match head.strip_suffix("</domainsnapshot>\n") {
            Some(open) => format!("{open}{inner}</domainsnapshot>\n"),
            // `<domainsnapshot/>`: nothing but the domain inside.
            None => format!("<domainsnapshot>\n{inner}</domainsnapshot>\n"),
        }
    }
}

/// A snapshot name is a file name for us: no `/`, not `.` or `..`, nothing that cannot be
/// printed.
pub fn check_name(n: &str) -> Result<(), XmlError> {
    if n.is_empty()
        || n.contains('/')
        || n == "."
        || n == ".."
        || n.chars().any(char::is_control)
        || n.len() > 255
    {
        return Err(XmlError::Invalid(format!(
            "invalid snapshot name '{n}': it must be a file name of at most 255 bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOM: &str = "<domain type='qemu'><name>vm</name>\
        <uuid>11111111-2222-3333-4444-555555555555</uuid>\
        <memory unit='KiB'>65536</memory><os><type>hvm</type></os></domain>";

    #[test]
    fn round_trip_with_domain() {
        let xml = format!(
            "<domainsnapshot><name>s1</name><description>before &amp; after</description>\
             <state>running</state><parent><name>s0</name></parent>\
             <creationTime>1700000000</creationTime><memory snapshot='internal'/>\
             <disks><disk name='vda' snapshot='internal'/>\
             <disk name='vdb' snapshot='external' type='file'><driver type='qcow2'/>\
             <source file='/x/b.s1'/></disk></disks>{DOM}</domainsnapshot>"
        );
        let s = DomainSnapshot::parse(&xml).unwrap();
        assert_eq!(s.name(), "s1");
        assert_eq!(s.parent(), Some("s0"));
        let out = s.format();
        assert!(out.starts_with(
            "<domainsnapshot>\n  <name>s1</name>\n  <description>before &amp; after</description>\n"
        ));
        assert!(out.contains("  <memory snapshot='internal'/>\n"), "{out}");
        assert!(
            out.contains("    <disk name='vdb' snapshot='external' type='file'>\n      <driver type='qcow2'/>\n      <source file='/x/b.s1'/>\n    </disk>\n"),
            "{out}"
        );
        assert!(
            out.contains("  <domain type='qemu'>\n    <name>vm</name>\n"),
            "{out}"
        );
        assert_eq!(DomainSnapshot::parse(&out).unwrap(), s);
    }

    #[test]
    fn nothing_is_dropped_unsaid() {
        let e = DomainSnapshot::parse_kept("<domainsnapshot><bogus/></domainsnapshot>")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus") && e.contains("not supported"), "{e}");
        let e = DomainSnapshot::parse_kept(
            "<domainsnapshot><memory snapshot='no' x='1'/></domainsnapshot>",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("x"), "{e}");
        let xml =
            format!("<domainsnapshot><name>a</name><cookie><cpu/></cookie>{DOM}</domainsnapshot>");
        assert!(DomainSnapshot::parse_kept(&xml).is_ok());
    }

    #[test]
    fn empty_and_bad() {
        let s = DomainSnapshot::parse("<domainsnapshot/>").unwrap();
        assert_eq!(s.head, SnapshotHead::default());
        assert_eq!(s.format(), "<domainsnapshot/>\n");
        let e = |x: &str| DomainSnapshot::parse(x).unwrap_err().to_string();
        assert!(e("<domainsnapshot><name>a/b</name></domainsnapshot>")
            .contains("invalid snapshot name"));
        assert!(
            e("<domainsnapshot><state>asleep</state></domainsnapshot>").contains("Invalid state")
        );
        assert!(
            e("<domainsnapshot><memory snapshot='disk'/></domainsnapshot>")
                .contains("snapshot location")
        );
        assert!(e("<snapshot/>").contains("expected root element <domainsnapshot>"));
    }
}
