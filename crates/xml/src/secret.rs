//! Secret XML (`<secret>`), described once with [`xml_element!`].

use crate::model::{format_root, parse_root, YesNo};
use crate::util::str_enum;
use crate::{xml_element, XmlError};

str_enum! {
    /// `<usage type=...>`.
    SecretUsageType, "secret usage type" {
        Volume => "volume",
        Ceph => "ceph",
        Iscsi => "iscsi",
        Tls => "tls",
        Vtpm => "vtpm",
    }
}

impl SecretUsageType {
    /// libvirt's `virSecretUsageType` number.
    pub fn number(self) -> i32 {
        match self {
            SecretUsageType::Volume => 1,
            SecretUsageType::Ceph => 2,
            SecretUsageType::Iscsi => 3,
            SecretUsageType::Tls => 4,
            SecretUsageType::Vtpm => 5,
        }
    }
}

xml_element! {
    /// `<usage type='…'>` and the element that names what the secret is for.
    pub struct SecretUsage {
        attr usage_type: SecretUsageType = "type",
        /// The volume's path (type volume).
        leaf_opt volume: String = "volume",
        /// The name (types ceph, tls and vtpm).
        leaf_opt name: String = "name",
        /// The iSCSI target (type iscsi).
        leaf_opt target: String = "target",
    }
}

xml_element! {
    /// `<secret>`.
    pub struct Secret {
        /// Kept in memory only, never on disk.
        attr_opt ephemeral: YesNo = "ephemeral",
        /// The value is never given to clients.
        attr_opt private: YesNo = "private",
        leaf_opt uuid: [u8; 16] = "uuid",
        leaf_opt description: String = "description",
        child_opt usage: SecretUsage = "usage",
    }
}

impl Secret {
    /// Parses and checks a secret definition.
    pub fn parse(xml: &str) -> Result<Secret, XmlError> {
        let s: Secret = parse_root(xml, "secret")?;
        s.usage_id()?;
        Ok(s)
    }

    /// libvirt's layout: both flags always written, the UUID always (it must be set).
    pub fn format(&self) -> String {
        let mut full = self.clone();
        full.ephemeral = Some(YesNo::from(self.is_ephemeral()));
        full.private = Some(YesNo::from(self.is_private()));
        format_root(&full, "secret")
    }

    pub fn is_ephemeral(&self) -> bool {
        self.ephemeral == Some(YesNo::Yes)
    }

    pub fn is_private(&self) -> bool {
        self.private == Some(YesNo::Yes)
    }

    /// The usage type number and id of the handle (`0, ""` for a secret without usage).
    pub fn usage_id(&self) -> Result<(i32, String), XmlError> {
        let Some(u) = &self.usage else {
            return Ok((0, String::new()));
        };
        let (value, what) = match u.usage_type {
            SecretUsageType::Volume => (&u.volume, "volume path"),
            SecretUsageType::Iscsi => (&u.target, "iSCSI target"),
            SecretUsageType::Ceph | SecretUsageType::Tls | SecretUsageType::Vtpm => {
                (&u.name, "name")
            }
        };
        match value.as_deref().map(str::trim) {
            Some(v) if !v.is_empty() => Ok((u.usage_type.number(), v.to_string())),
            _ => Err(XmlError::Invalid(format!(
                "{} usage specified, but {what} is missing",
                u.usage_type
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_libvirts_layout() {
        let s = Secret::parse(
            "<secret private='yes'><uuid>0a81f5b2-8403-7b23-c8d6-21ccc2f80d6f</uuid>\
             <description>disk</description>\
             <usage type='volume'><volume>/var/lib/x.img</volume></usage></secret>",
        )
        .unwrap();
        assert_eq!(s.usage_id().unwrap(), (1, "/var/lib/x.img".to_string()));
        let out = s.format();
        assert_eq!(
            out,
            "<secret ephemeral='no' private='yes'>
  <uuid>0a81f5b2-8403-7b23-c8d6-21ccc2f80d6f</uuid>
  <description>disk</description>
  <usage type='volume'>
    <volume>/var/lib/x.img</volume>
  </usage>
</secret>
"
        );
        assert_eq!(Secret::parse(&out).unwrap().format(), out);
    }

    #[test]
    fn usage_must_name_its_object() {
        let e = Secret::parse("<secret><usage type='ceph'><volume>x</volume></usage></secret>")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "XML error: ceph usage specified, but name is missing"
        );
        let e = Secret::parse("<secret><usage type='nfs'/></secret>").unwrap_err();
        assert!(
            e.to_string().contains("unknown secret usage type 'nfs'"),
            "{e}"
        );
        let e = Secret::parse("<secret ephemeral='maybe'/>").unwrap_err();
        assert!(e.to_string().contains("'ephemeral'"), "{e}");
        let s = Secret::parse("<secret><usage type='tls'><name>t</name></usage></secret>").unwrap();
        assert_eq!(s.usage_id().unwrap(), (4, "t".to_string()));
        assert_eq!(Secret::parse("<secret/>").unwrap().usage_id().unwrap().0, 0);
    }
}
