//! Saving a domain's state to a file and back, its managed save image, and the job a save
//! runs as.

use vireo_proto::remote::*;
use vireo_proto::typed::TypedParam;

use crate::{Connect, Result};

impl Connect {
    /// `virDomainSaveFlags` (`dxml` replaces the definition stored in the image).
    pub async fn save(&self, dom: &Domain, to: &str, dxml: Option<&str>, flags: u32) -> Result<()> {
        self.call(
            procs::DOMAIN_SAVE_FLAGS,
            &DomainSaveFlagsArgs {
                dom: dom.clone(),
                to: to.to_string(),
                dxml: dxml.map(str::to_string),
                flags,
            },
        )
        .await
    }

    /// `virDomainRestoreFlags`.
    pub async fn restore(&self, from: &str, dxml: Option<&str>, flags: u32) -> Result<()> {
        self.call(
            procs::DOMAIN_RESTORE_FLAGS,
            &DomainRestoreFlagsArgs {
                from: from.to_string(),
                dxml: dxml.map(str::to_string),
                flags,
            },
        )
        .await
    }

    /// `virDomainSaveImageGetXMLDesc`.
    pub async fn save_image_xml(&self, file: &str, flags: u32) -> Result<String> {
        let r: DomainSaveImageGetXmlDescRet = self
            .call(
                procs::DOMAIN_SAVE_IMAGE_GET_XML_DESC,
                &DomainSaveImageGetXmlDescArgs {
                    file: file.to_string(),
                    flags,
                },
            )
            .await?;
        Ok(r.xml)
    }

    async fn dom_flags<R: vireo_xdr::Xdr>(&self, p: i32, dom: &Domain, flags: u32) -> Result<R> {
        self.call(
            p,
            &DomainFlagsArgs {
                dom: dom.clone(),
                flags,
            },
        )
        .await
    }

    /// `virDomainManagedSave`.
    pub async fn managed_save(&self, dom: &Domain, flags: u32) -> Result<()> {
        self.dom_flags(procs::DOMAIN_MANAGED_SAVE, dom, flags).await
    }

    /// `virDomainManagedSaveRemove`.
    pub async fn managed_save_remove(&self, dom: &Domain) -> Result<()> {
        self.dom_flags(procs::DOMAIN_MANAGED_SAVE_REMOVE, dom, 0)
            .await
    }

    /// `virDomainHasManagedSaveImage`.
    pub async fn has_managed_save(&self, dom: &Domain) -> Result<bool> {
        let r: DomainHasManagedSaveImageRet = self
            .dom_flags(procs::DOMAIN_HAS_MANAGED_SAVE_IMAGE, dom, 0)
            .await?;
        Ok(r.result != 0)
    }

    /// `virDomainGetJobStats`: the job type and its statistics.
    pub async fn job_stats(&self, dom: &Domain) -> Result<(i32, Vec<TypedParam>)> {
        let r: DomainGetJobStatsRet = self.dom_flags(procs::DOMAIN_GET_JOB_STATS, dom, 0).await?;
        Ok((r.type_, r.params.0))
    }

    /// `virDomainAbortJob`.
    pub async fn abort_job(&self, dom: &Domain) -> Result<()> {
        self.call(procs::DOMAIN_ABORT_JOB, &DomainArgs { dom: dom.clone() })
            .await
    }
}
