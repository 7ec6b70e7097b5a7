//! A domain's title, description and applications' metadata elements, read and set.

use vireo_proto::error::domain::DOMAIN;
use vireo_proto::remote::*;

use crate::{Connect, Result};

/// `virDomainMetadataType`.
pub mod metadata_type {
    pub const DESCRIPTION: i32 = 0;
    pub const TITLE: i32 = 1;
    pub const ELEMENT: i32 = 2;
}

impl Connect {
    /// `virDomainGetMetadata`: the title, the description, or the element of namespace
    /// `uri` ([`metadata_type`]).
    pub async fn metadata(
        &self,
        dom: &Domain,
        kind: i32,
        uri: Option<&str>,
        flags: u32,
    ) -> Result<String> {
        crate::live_or_config(flags)?;
        let r: DomainGetMetadataRet = self
            .call(
                procs::DOMAIN_GET_METADATA,
                &DomainGetMetadataArgs {
                    dom: dom.clone(),
                    type_: kind,
                    uri: uri.map(str::to_string),
                    flags,
                },
            )
            .await?;
        Ok(r.metadata)
    }

    /// `virDomainSetMetadata`: `metadata` (none: removed) as the title, the description,
    /// or the element of namespace `uri` with prefix `key`.
    pub async fn set_metadata(
        &self,
        dom: &Domain,
        kind: i32,
        metadata: Option<&str>,
        key: Option<&str>,
        uri: Option<&str>,
        flags: u32,
    ) -> Result<()> {
        self.check_writable("virDomainSetMetadata", DOMAIN)?;
        self.call(
            procs::DOMAIN_SET_METADATA,
            &DomainSetMetadataArgs {
                dom: dom.clone(),
                type_: kind,
                metadata: metadata.map(str::to_string),
                key: key.map(str::to_string),
                uri: uri.map(str::to_string),
                flags,
            },
        )
        .await
    }
}
