//! Secret calls: define, look up, values, list.

use vireo_proto::remote::{procs, Uuid};
use vireo_proto::secret::*;
use vireo_xdr::Opaque;

use crate::{uri, Connect, Result};

impl Connect {
    pub async fn secret_define_xml(&self, xml: &str) -> Result<Secret> {
        let r: SecretRet = self
            .call(
                procs::SECRET_DEFINE_XML,
                &SecretDefineXmlArgs {
                    xml: xml.into(),
                    flags: 0,
                },
            )
            .await?;
        Ok(r.secret)
    }

    pub async fn secret_undefine(&self, s: &Secret) -> Result<()> {
        self.call(procs::SECRET_UNDEFINE, &SecretArgs { secret: s.clone() })
            .await
    }

    pub async fn secret_lookup_by_uuid(&self, uuid: &Uuid) -> Result<Secret> {
        let r: SecretRet = self
            .call(
                procs::SECRET_LOOKUP_BY_UUID,
                &SecretLookupByUuidArgs { uuid: *uuid },
            )
            .await?;
        Ok(r.secret)
    }

    pub async fn secret_lookup_by_usage(&self, usage_type: i32, usage_id: &str) -> Result<Secret> {
        let r: SecretRet = self
            .call(
                procs::SECRET_LOOKUP_BY_USAGE,
                &SecretLookupByUsageArgs {
                    usage_type,
                    usage_id: usage_id.into(),
                },
            )
            .await?;
        Ok(r.secret)
    }

    /// Finds a secret the way virsh does: by UUID.
    pub async fn secret_lookup(&self, key: &str) -> Result<Secret> {
        match uri::parse_uuid(key) {
            Some(u) => self.secret_lookup_by_uuid(&u).await,
            None => Err(crate::ClientError::Uri(format!("'{key}' is not a UUID"))),
        }
    }

    pub async fn secret_xml_desc(&self, s: &Secret) -> Result<String> {
        let r: SecretGetXmlDescRet = self
            .call(
                procs::SECRET_GET_XML_DESC,
                &SecretFlagsArgs {
                    secret: s.clone(),
                    flags: 0,
                },
            )
            .await?;
        Ok(r.xml)
    }

    pub async fn secret_set_value(&self, s: &Secret, value: &[u8]) -> Result<()> {
        self.call(
            procs::SECRET_SET_VALUE,
            &SecretSetValueArgs {
                secret: s.clone(),
                value: Opaque(value.to_vec()),
                flags: 0,
            },
        )
        .await
    }

    pub async fn secret_get_value(&self, s: &Secret) -> Result<Vec<u8>> {
        let r: SecretGetValueRet = self
            .call(
                procs::SECRET_GET_VALUE,
                &SecretFlagsArgs {
                    secret: s.clone(),
                    flags: 0,
                },
            )
            .await?;
        Ok(r.value.0)
    }

    pub async fn list_all_secrets(&self, flags: u32) -> Result<Vec<Secret>> {
        let r: ConnectListAllSecretsRet = self
            .call(
                procs::CONNECT_LIST_ALL_SECRETS,
                &ConnectListAllSecretsArgs {
                    need_results: 1,
                    flags,
                },
            )
            .await?;
        Ok(r.secrets.0)
    }
}
