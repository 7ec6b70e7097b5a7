//! A domain's resource tuning: its scheduler (type, parameters read and set, with and
//! without flags), its memory parameters and its block I/O parameters (the count first,
//! then the values; set). The checks libvirt's client library makes before it sends
//! these calls are made here too, with its words: a read-only connection refuses the
//! changes, and a read asking for both the live domain and its definition is refused.

use vireo_proto::error::{code, domain::DOMAIN};
use vireo_proto::remote::*;
use vireo_proto::typed::TypedParam;
use vireo_proto::RemoteError;

use crate::{ClientError, Connect, Result};

/// `VIR_TYPED_PARAM_STRING_OKAY`: the caller of a read takes string parameters (libvirt's
/// library adds it when the daemon supports them, as ours do).
const STRING_OKAY: u32 = 1 << 2;

/// libvirt's refusal of `VIR_DOMAIN_AFFECT_LIVE` with `VIR_DOMAIN_AFFECT_CONFIG` on a read.
fn live_or_config(flags: u32) -> Result<()> {
    if flags & affect::LIVE != 0 && flags & affect::CONFIG != 0 {
        return Err(ClientError::Remote(Box::new(RemoteError::new(
            code::INVALID_ARG,
            DOMAIN,
            "Flags 'VIR_DOMAIN_AFFECT_LIVE' and 'VIR_DOMAIN_AFFECT_CONFIG' are mutually \
             exclusive"
                .to_string(),
        ))));
    }
    Ok(())
}

impl Connect {
    /// `virDomainGetSchedulerType`: the scheduler's name and how many parameters it has.
    pub async fn scheduler_type(&self, dom: &Domain) -> Result<(String, i32)> {
        let r: DomainGetSchedulerTypeRet = self.call(procs::DOMAIN_GET_SCHEDULER_TYPE, dom).await?;
        Ok((r.kind, r.nparams))
    }

    /// `virDomainGetSchedulerParameters`: up to `nparams` parameters of the running
    /// domain, else of its definition.
    pub async fn scheduler_params(&self, dom: &Domain, nparams: i32) -> Result<Vec<TypedParam>> {
        let r: DomainGetSchedulerParametersRet = self
            .call(
                procs::DOMAIN_GET_SCHEDULER_PARAMETERS,
                &DomainGetSchedulerParametersArgs {
                    dom: dom.clone(),
                    nparams,
                },
            )
            .await?;
        Ok(r.params.0)
    }

    /// `virDomainGetSchedulerParametersFlags`: up to `nparams` parameters of the live
    /// domain or of its definition (`flags`: `affect::*`).
    pub async fn scheduler_params_flags(
        &self,
        dom: &Domain,
        nparams: i32,
        flags: u32,
    ) -> Result<Vec<TypedParam>> {
        live_or_config(flags)?;
        let r: DomainGetSchedulerParametersRet = self
            .call(
                procs::DOMAIN_GET_SCHEDULER_PARAMETERS_FLAGS,
                &DomainGetSchedulerParametersFlagsArgs {
                    dom: dom.clone(),
                    nparams,
                    flags: flags | STRING_OKAY,
                },
            )
            .await?;
        Ok(r.params.0)
    }

    /// `virDomainSetSchedulerParameters`: the running domain, else its definition.
    pub async fn set_scheduler_params(&self, dom: &Domain, params: &[TypedParam]) -> Result<()> {
        self.check_writable("virDomainSetSchedulerParameters", DOMAIN)?;
        self.call(
            procs::DOMAIN_SET_SCHEDULER_PARAMETERS,
            &DomainSetSchedulerParametersArgs {
                dom: dom.clone(),
                params: vireo_xdr::Array(params.to_vec()),
            },
        )
        .await
    }

    /// `virDomainSetSchedulerParametersFlags`.
    pub async fn set_scheduler_params_flags(
        &self,
        dom: &Domain,
        params: &[TypedParam],
        flags: u32,
    ) -> Result<()> {
        self.check_writable("virDomainSetSchedulerParametersFlags", DOMAIN)?;
        self.set_tune(
            procs::DOMAIN_SET_SCHEDULER_PARAMETERS_FLAGS,
            dom,
            params,
            flags,
        )
        .await
    }

    /// `virDomainGetMemoryParameters`: with `nparams` 0, no parameters and how many there
    /// are; else up to `nparams` of them and how many came (`hard_limit`, `soft_limit`,
    /// `swap_hard_limit`: KiB, 9007199254740991 for no limit).
    pub async fn memory_params(
        &self,
        dom: &Domain,
        nparams: i32,
        flags: u32,
    ) -> Result<(Vec<TypedParam>, i32)> {
        self.get_tune(procs::DOMAIN_GET_MEMORY_PARAMETERS, dom, nparams, flags)
            .await
    }

    /// `virDomainSetMemoryParameters`.
    pub async fn set_memory_params(
        &self,
        dom: &Domain,
        params: &[TypedParam],
        flags: u32,
    ) -> Result<()> {
        self.check_writable("virDomainSetMemoryParameters", DOMAIN)?;
        self.set_tune(procs::DOMAIN_SET_MEMORY_PARAMETERS, dom, params, flags)
            .await
    }

    /// `virDomainGetBlkioParameters`: as [`Connect::memory_params`] (`weight`, and the
    /// per-device strings).
    pub async fn blkio_params(
        &self,
        dom: &Domain,
        nparams: i32,
        flags: u32,
    ) -> Result<(Vec<TypedParam>, i32)> {
        self.get_tune(procs::DOMAIN_GET_BLKIO_PARAMETERS, dom, nparams, flags)
            .await
    }

    /// `virDomainSetBlkioParameters`.
    pub async fn set_blkio_params(
        &self,
        dom: &Domain,
        params: &[TypedParam],
        flags: u32,
    ) -> Result<()> {
        self.check_writable("virDomainSetBlkioParameters", DOMAIN)?;
        self.set_tune(procs::DOMAIN_SET_BLKIO_PARAMETERS, dom, params, flags)
            .await
    }

    async fn get_tune(
        &self,
        proc_: i32,
        dom: &Domain,
        nparams: i32,
        flags: u32,
    ) -> Result<(Vec<TypedParam>, i32)> {
        live_or_config(flags)?;
        let r: DomainGetTuneParametersRet = self
            .call(
                proc_,
                &DomainGetTuneParametersArgs {
                    dom: dom.clone(),
                    nparams,
                    flags: flags | STRING_OKAY,
                },
            )
            .await?;
        Ok((r.params.0, r.nparams))
    }

    async fn set_tune(
        &self,
        proc_: i32,
        dom: &Domain,
        params: &[TypedParam],
        flags: u32,
    ) -> Result<()> {
        self.call(
            proc_,
            &DomainSetTuneParametersArgs {
                dom: dom.clone(),
                params: vireo_xdr::Array(params.to_vec()),
                flags,
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_of_both_live_and_config_are_refused() {
        assert!(live_or_config(affect::LIVE).is_ok());
        assert!(live_or_config(affect::CONFIG).is_ok());
        let e = live_or_config(affect::LIVE | affect::CONFIG).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Flags 'VIR_DOMAIN_AFFECT_LIVE' and 'VIR_DOMAIN_AFFECT_CONFIG' are mutually exclusive"
        );
    }
}
