//! Storage pool (`<pool>`) and volume (`<volume>`) XML, described once with
//! [`xml_element!`].

use crate::model::{format_root, parse_root};
use crate::util::str_enum;
use crate::{unit_multiplier, xml_element, XmlError};

str_enum! {
    /// `<pool type=...>`.
    PoolType, "storage pool type" {
        Dir => "dir",
        Fs => "fs",
        Netfs => "netfs",
        Logical => "logical",
        Disk => "disk",
        Iscsi => "iscsi",
        IscsiDirect => "iscsi-direct",
        Scsi => "scsi",
        Mpath => "mpath",
        Rbd => "rbd",
        Sheepdog => "sheepdog",
        Gluster => "gluster",
        Zfs => "zfs",
        Vstorage => "vstorage",
    }
}

str_enum! {
    /// `<volume type=...>`.
    VolType, "storage volume type" {
        File => "file",
        Block => "block",
        Dir => "dir",
        Network => "network",
        Netdir => "netdir",
        Ploop => "ploop",
    }
}

xml_element! {
    /// A size with a unit: `<capacity unit='G'>10</capacity>` (bytes when no unit).
    pub struct Size {
        attr_opt unit: String = "unit",
        text value: u64 = "",
    }
}

impl Size {
    /// `n` bytes, written as libvirt writes sizes.
    pub fn bytes(n: u64) -> Size {
        Size {
            unit: Some("bytes".into()),
            value: n,
        }
    }

    /// The size in bytes; `what` names the element in errors.
    pub fn in_bytes(&self, what: &str) -> Result<u64, XmlError> {
        let unit = self.unit.as_deref().unwrap_or("bytes");
        let mult = unit_multiplier(unit)
            .ok_or_else(|| XmlError::Invalid(format!("unknown unit '{unit}' of <{what}>")))?;
        self.value
            .checked_mul(mult)
            .ok_or_else(|| XmlError::Invalid(format!("<{what}> is too large")))
    }
}

xml_element! {
    /// `<permissions>` of a pool's target or a volume.
    pub struct Permissions {
        leaf_opt mode: String = "mode",
        leaf_opt owner: String = "owner",
        leaf_opt group: String = "group",
        leaf_opt label: String = "label",
    }
}

xml_element! {
    /// An element that only names a path: `<device path='/dev/sdb'/>`, `<dir path='…'/>`.
    pub struct PathRef {
        attr path: String = "path",
    }
}

xml_element! {
    /// `<format type='…'/>`.
    pub struct Format {
        attr format_type: String = "type",
    }
}

xml_element! {
    /// `<host name='…' port='…'/>` of a network pool's source.
    pub struct SourceHost {
        attr name: String = "name",
        attr_opt port: u16 = "port",
    }
}

xml_element! {
    /// `<source>` of a pool: where its storage comes from.
    pub struct PoolSource {
        children host: SourceHost = "host",
        children device: PathRef = "device",
        child_opt dir: PathRef = "dir",
        leaf_opt name: String = "name",
        child_opt format: Format = "format",
    }
}

xml_element! {
    /// `<target>` of a pool: where its volumes appear.
    pub struct PoolTarget {
        leaf_opt path: String = "path",
        child_opt permissions: Permissions = "permissions",
    }
}

xml_element! {
    /// `<pool>`.
    pub struct Pool {
        attr pool_type: PoolType = "type",
        leaf name: String = "name",
        leaf_opt uuid: [u8; 16] = "uuid",
        child_opt capacity: Size = "capacity",
        child_opt allocation: Size = "allocation",
        child_opt available: Size = "available",
        child_opt source: PoolSource = "source",
        child_opt target: PoolTarget = "target",
    }
}

impl Pool {
    /// Parses and checks a pool definition.
    pub fn parse(xml: &str) -> Result<Pool, XmlError> {
        let p: Pool = parse_root(xml, "pool")?;
        check_name(&p.name, "pool")?;
        Ok(p)
    }

    pub fn format(&self) -> String {
        format_root(self, "pool")
    }

    /// The target path, if the definition has one.
    pub fn target_path(&self) -> Option<&str> {
        self.target.as_ref().and_then(|t| t.path.as_deref())
    }

    /// The source device paths.
    pub fn source_devices(&self) -> Vec<&str> {
        self.source
            .as_ref()
            .map(|s| s.device.iter().map(|d| d.path.as_str()).collect())
            .unwrap_or_default()
    }

    /// The source format's type, if given.
    pub fn source_format(&self) -> Option<&str> {
        self.source
            .as_ref()
            .and_then(|s| s.format.as_ref())
            .map(|f| f.format_type.as_str())
    }
}

xml_element! {
    /// `<secret type='passphrase' uuid='…'/>` of an `<encryption>`.
    pub struct EncryptionSecret {
        attr secret_type: String = "type",
        attr_opt uuid: [u8; 16] = "uuid",
        attr_opt usage: String = "usage",
    }
}

xml_element! {
    /// `<encryption format='luks'>`.
    pub struct Encryption {
        attr format: String = "format",
        children secret: EncryptionSecret = "secret",
    }
}

xml_element! {
    /// `<features>` of a qcow2 volume.
    pub struct VolFeatures {
        flag lazy_refcounts: bool = "lazy_refcounts",
        flag extended_l2: bool = "extended_l2",
    }
}

xml_element! {
    /// `<target>` of a volume.
    pub struct VolTarget {
        leaf_opt path: String = "path",
        child_opt format: Format = "format",
        child_opt permissions: Permissions = "permissions",
        leaf_opt compat: String = "compat",
        child_opt cluster_size: Size = "clusterSize",
        flag nocow: bool = "nocow",
        child_opt features: VolFeatures = "features",
        child_opt encryption: Encryption = "encryption",
    }
}

xml_element! {
    /// `<backingStore>` of a volume: the image it is an overlay on.
    pub struct BackingStore {
        leaf_opt path: String = "path",
        child_opt format: Format = "format",
        child_opt permissions: Permissions = "permissions",
    }
}

xml_element! {
    /// `<volume>`.
    pub struct Volume {
        attr_opt vol_type: VolType = "type",
        leaf name: String = "name",
        leaf_opt key: String = "key",
        child_opt capacity: Size = "capacity",
        child_opt allocation: Size = "allocation",
        child_opt physical: Size = "physical",
        child_opt target: VolTarget = "target",
        child_opt backing_store: BackingStore = "backingStore",
    }
}

impl Volume {
    /// Parses and checks a volume definition.
    pub fn parse(xml: &str) -> Result<Volume, XmlError> {
        let v: Volume = parse_root(xml, "volume")?;
        check_name(&v.name, "volume")?;
        Ok(v)
    }

    pub fn format(&self) -> String {
        format_root(self, "volume")
    }

    /// The target format's type (`raw`, `qcow2`, …), if given.
    pub fn target_format(&self) -> Option<&str> {
        self.target
            .as_ref()
            .and_then(|t| t.format.as_ref())
            .map(|f| f.format_type.as_str())
    }
}

/// Names become file names: no `/`, not `.` or `..`, not empty, no control characters.
fn check_name(name: &str, what: &str) -> Result<(), XmlError> {
    if name.is_empty() {
        return Err(XmlError::Invalid(format!("{what} name must not be empty")));
    }
    if name.contains('/') || name == "." || name == ".." {
        return Err(XmlError::Invalid(format!(
            "{what} name '{name}' cannot contain '/' or be '.' or '..'"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(XmlError::Invalid(format!(
            "{what} name must not contain control characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_round_trip() {
        let p = Pool::parse(
            "<pool type='fs'><name>p</name><source><device path='/dev/vdb'/>\
             <format type='ext4'/></source><target><path>/mnt/p</path>\
             <permissions><mode>0755</mode></permissions></target></pool>",
        )
        .unwrap();
        assert_eq!(p.pool_type, PoolType::Fs);
        assert_eq!(p.source_devices(), ["/dev/vdb"]);
        assert_eq!(p.source_format(), Some("ext4"));
        assert_eq!(p.target_path(), Some("/mnt/p"));
        let again = Pool::parse(&p.format()).unwrap();
        assert_eq!(again, p);
    }

    #[test]
    fn volume_sizes_and_formats() {
        let v = Volume::parse(
            "<volume><name>a.qcow2</name><capacity unit='G'>2</capacity>\
             <allocation>0</allocation><target><format type='qcow2'/>\
             <encryption format='luks'><secret type='passphrase' \
             uuid='0a81f5b2-8403-7b23-c8d6-21ccc2f80d6f'/></encryption></target>\
             <backingStore><path>/p/base.img</path><format type='raw'/></backingStore></volume>",
        )
        .unwrap();
        assert_eq!(
            v.capacity.as_ref().unwrap().in_bytes("capacity").unwrap(),
            2 << 30
        );
        assert_eq!(v.target_format(), Some("qcow2"));
        let enc = v.target.as_ref().unwrap().encryption.as_ref().unwrap();
        assert_eq!(enc.format, "luks");
        assert!(enc.secret[0].uuid.is_some());
        assert_eq!(Volume::parse(&v.format()).unwrap(), v);
        let big = Size {
            unit: Some("E".into()),
            value: 1 << 20,
        };
        assert!(big.in_bytes("capacity").is_err());
    }

    #[test]
    fn names_that_are_not_file_names_are_refused() {
        for bad in ["../x", "a/b", "..", ".", "", "a\u{1}b"] {
            let xml = format!("<volume><name>{bad}</name></volume>");
            assert!(Volume::parse(&xml).is_err(), "{bad:?}");
        }
        let e = Pool::parse("<pool type='tape'><name>p</name></pool>").unwrap_err();
        assert!(
            e.to_string().contains("unknown storage pool type 'tape'"),
            "{e}"
        );
    }
}
