//! Live migration as libvirt's client library does it: the five steps of the migration
//! protocol version 3 with typed parameters, the managed flow that drives two daemons
//! (`virDomainMigrate3`), the peer-to-peer one that leaves it to the source's daemon
//! (`virDomainMigrateToURI3`), and the migration tuning calls.

use vireo_proto::migrate::*;
use vireo_proto::remote::{procs, state, ConnectSupportsFeatureArgs, ConnectSupportsFeatureRet};
use vireo_proto::remote::{Domain, DomainFlagsArgs};
use vireo_proto::typed::TypedParam;
use vireo_xdr::{Array, Opaque};

use crate::{Connect, Result};

/// Replaces (or adds) a string parameter.
pub fn set_param(params: &mut Vec<TypedParam>, name: &str, value: &str) {
    params.retain(|p| p.field != name);
    params.push(TypedParam::string(name, value));
}

impl Connect {
    /// `virConnectSupportsFeature`.
    pub async fn supports_feature(&self, feature: i32) -> Result<bool> {
        let r: ConnectSupportsFeatureRet = self
            .call(
                procs::CONNECT_SUPPORTS_FEATURE,
                &ConnectSupportsFeatureArgs { feature },
            )
            .await?;
        Ok(r.supported == 1)
    }

    /// Begin (source): the cookie and the definition the destination starts with.
    pub async fn migrate_begin(
        &self,
        dom: &Domain,
        params: &[TypedParam],
        flags: u32,
    ) -> Result<(Vec<u8>, String)> {
        let r: Begin3ParamsRet = self
            .call(
                procs::DOMAIN_MIGRATE_BEGIN3_PARAMS,
                &Begin3ParamsArgs {
                    dom: dom.clone(),
                    params: Array(params.to_vec()),
                    flags,
                },
            )
            .await?;
        Ok((r.cookie_out.0, r.xml))
    }

    /// Prepare (destination): its cookie and where the stream goes.
    pub async fn migrate_prepare(
        &self,
        params: &[TypedParam],
        cookie: &[u8],
        flags: u32,
    ) -> Result<(Vec<u8>, Option<String>)> {
        let r: Prepare3ParamsRet = self
            .call(
                procs::DOMAIN_MIGRATE_PREPARE3_PARAMS,
                &Prepare3ParamsArgs {
                    params: Array(params.to_vec()),
                    cookie_in: Opaque(cookie.to_vec()),
                    flags,
                },
            )
            .await?;
        Ok((r.cookie_out.0, r.uri_out))
    }

    /// Perform (source): the migration itself; with `dconnuri` (peer to peer) the
    /// source's daemon runs every step.
    pub async fn migrate_perform(
        &self,
        dom: &Domain,
        dconnuri: Option<&str>,
        params: &[TypedParam],
        cookie: &[u8],
        flags: u32,
    ) -> Result<Vec<u8>> {
        let r: CookieRet = self
            .call(
                procs::DOMAIN_MIGRATE_PERFORM3_PARAMS,
                &Perform3ParamsArgs {
                    dom: dom.clone(),
                    dconnuri: dconnuri.map(str::to_string),
                    params: Array(params.to_vec()),
                    cookie_in: Opaque(cookie.to_vec()),
                    flags,
                },
            )
            .await?;
        Ok(r.cookie_out.0)
    }

    /// Finish (destination): the domain there, or the error that stopped it.
    pub async fn migrate_finish(
        &self,
        params: &[TypedParam],
        cookie: &[u8],
        flags: u32,
        cancelled: bool,
    ) -> Result<(Domain, Vec<u8>)> {
        let r: Finish3ParamsRet = self
            .call(
                procs::DOMAIN_MIGRATE_FINISH3_PARAMS,
                &Finish3ParamsArgs {
                    params: Array(params.to_vec()),
                    cookie_in: Opaque(cookie.to_vec()),
                    flags,
                    cancelled: cancelled as i32,
                },
            )
            .await?;
        Ok((r.dom, r.cookie_out.0))
    }

    /// Confirm (source): the domain ends here, or (cancelled) goes on.
    pub async fn migrate_confirm(
        &self,
        dom: &Domain,
        params: &[TypedParam],
        cookie: &[u8],
        flags: u32,
        cancelled: bool,
    ) -> Result<()> {
        self.call(
            procs::DOMAIN_MIGRATE_CONFIRM3_PARAMS,
            &Confirm3ParamsArgs {
                dom: dom.clone(),
                params: Array(params.to_vec()),
                cookie_in: Opaque(cookie.to_vec()),
                flags,
                cancelled: cancelled as i32,
            },
        )
        .await
    }

    /// `virDomainMigrateToURI3` with PEER2PEER: the source's daemon reaches `dconnuri`.
    pub async fn migrate_to_uri(
        &self,
        dom: &Domain,
        dconnuri: &str,
        params: &[TypedParam],
        flags: u32,
    ) -> Result<()> {
        self.migrate_perform(dom, Some(dconnuri), params, &[], flags | flags::PEER2PEER)
            .await
            .map(|_| ())
    }

    /// `virDomainMigrate3`: this client drives the source (`self`) and the destination
    /// (`dest`) through the five steps, as libvirt's client does; the domain at the
    /// destination. On failure the source's guest goes on (Confirm is told so).
    pub async fn migrate(
        &self,
        dom: &Domain,
        dest: &Connect,
        mut params: Vec<TypedParam>,
        mut flags: u32,
    ) -> Result<Domain> {
        let (cookie, xml) = self.migrate_begin(dom, &params, flags).await?;
        if self.state(dom).await.is_ok_and(|s| s.0 == state::PAUSED) {
            flags |= flags::PAUSED;
        }
        let dest_flags = flags & !(flags::ABORT_ON_ERROR | flags::AUTO_CONVERGE);
        set_param(&mut params, param::DEST_XML, &xml);
        let (cookie, uri) = dest.migrate_prepare(&params, &cookie, dest_flags).await?;
        if let Some(u) = uri {
            set_param(&mut params, param::URI, &u);
        }
        let performed = self
            .migrate_perform(dom, None, &params, &cookie, flags)
            .await;
        if !params.iter().any(|p| p.field == param::DEST_NAME) {
            set_param(&mut params, param::DEST_NAME, &dom.name);
        }
        let cookie = performed.as_ref().cloned().unwrap_or_default();
        let finished = dest
            .migrate_finish(&params, &cookie, dest_flags, performed.is_err())
            .await;
        // A Perform that failed already left the guest running at the source.
        performed?;
        let (cancelled, cookie) = match &finished {
            Ok((_, c)) => (false, c.clone()),
            Err(_) => (true, Vec::new()),
        };
        // If Confirm fails, the worst is a guest left paused at the source.
        let _ = self
            .migrate_confirm(dom, &params, &cookie, flags, cancelled)
            .await;
        finished.map(|(d, _)| d)
    }

    /// `virDomainMigrateSetMaxSpeed` (MiB/s).
    pub async fn migrate_set_speed(&self, dom: &Domain, mib: u64, flags: u32) -> Result<()> {
        self.call(
            procs::DOMAIN_MIGRATE_SET_MAX_SPEED,
            &SetMaxSpeedArgs {
                dom: dom.clone(),
                bandwidth: mib,
                flags,
            },
        )
        .await
    }

    /// `virDomainMigrateGetMaxSpeed` (MiB/s).
    pub async fn migrate_get_speed(&self, dom: &Domain, flags: u32) -> Result<u64> {
        let r: GetMaxSpeedRet = self
            .call(
                procs::DOMAIN_MIGRATE_GET_MAX_SPEED,
                &DomainFlagsArgs {
                    dom: dom.clone(),
                    flags,
                },
            )
            .await?;
        Ok(r.bandwidth)
    }

    /// `virDomainMigrateSetMaxDowntime` (milliseconds).
    pub async fn migrate_set_max_downtime(&self, dom: &Domain, ms: u64) -> Result<()> {
        self.call(
            procs::DOMAIN_MIGRATE_SET_MAX_DOWNTIME,
            &SetMaxDowntimeArgs {
                dom: dom.clone(),
                downtime: ms,
                flags: 0,
            },
        )
        .await
    }

    /// `virDomainMigrateGetMaxDowntime` (milliseconds).
    pub async fn migrate_get_max_downtime(&self, dom: &Domain) -> Result<u64> {
        let r: GetMaxDowntimeRet = self
            .call(
                procs::DOMAIN_MIGRATE_GET_MAX_DOWNTIME,
                &DomainFlagsArgs {
                    dom: dom.clone(),
                    flags: 0,
                },
            )
            .await?;
        Ok(r.downtime)
    }

    /// `virDomainMigrateStartPostCopy`.
    pub async fn migrate_start_postcopy(&self, dom: &Domain) -> Result<()> {
        self.call(
            procs::DOMAIN_MIGRATE_START_POST_COPY,
            &DomainFlagsArgs {
                dom: dom.clone(),
                flags: 0,
            },
        )
        .await
    }
}
