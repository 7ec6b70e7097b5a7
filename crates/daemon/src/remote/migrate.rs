//! Live migration calls: libvirt's migration protocol version 3 with typed parameters
//! (Begin3, Prepare3, Perform3, Finish3, Confirm3 `…_PARAMS`) and the migration tuning
//! calls (speed, downtime, post-copy).
//!
//! A client (virsh, python) drives a normal migration itself: Begin here, Prepare on the
//! destination, Perform here, Finish there, Confirm here. With `VIR_MIGRATE_PEER2PEER`
//! the client only calls Perform here, with the destination's URI: this daemon then
//! connects to the destination itself, as a libvirt client of it, and runs the same steps
//! (Begin, Perform and Confirm locally, Prepare and Finish there).

use std::sync::Arc;
use std::time::Duration;

use vireo_driver::DriverError;
use vireo_proto::migrate::*;
use vireo_proto::remote::{procs, ConnectSupportsFeatureArgs, ConnectSupportsFeatureRet};
use vireo_proto::remote::{Domain, DomainFlagsArgs};
use vireo_proto::typed::TypedParam;
use vireo_proto::RemoteError;
use vireo_qemu::migrate::set_string;
use vireo_rpc::server::{BoxFuture, Outcome};
use vireo_xdr::{Array, Opaque};

use super::{args, ret, void, ProcResult, RemoteService};

/// `VIR_DRV_FEATURE_MIGRATION_PARAMS`, which a peer-to-peer destination must have.
const FEATURE_MIGRATION_PARAMS: i32 = 13;
/// Keepalive towards a peer-to-peer destination: a dead one is noticed within ~30 s.
const P2P_KEEPALIVE: Duration = Duration::from_secs(5);
const P2P_KEEPALIVE_COUNT: u32 = 6;

/// The procedures served here.
fn serves(p: i32) -> bool {
    matches!(
        p,
        procs::DOMAIN_MIGRATE_BEGIN3_PARAMS
            | procs::DOMAIN_MIGRATE_PREPARE3_PARAMS
            | procs::DOMAIN_MIGRATE_PREPARE_TUNNEL3_PARAMS
            | procs::DOMAIN_MIGRATE_PERFORM3_PARAMS
            | procs::DOMAIN_MIGRATE_FINISH3_PARAMS
            | procs::DOMAIN_MIGRATE_CONFIRM3_PARAMS
            | procs::DOMAIN_MIGRATE_SET_MAX_SPEED
            | procs::DOMAIN_MIGRATE_GET_MAX_SPEED
            | procs::DOMAIN_MIGRATE_SET_MAX_DOWNTIME
            | procs::DOMAIN_MIGRATE_GET_MAX_DOWNTIME
            | procs::DOMAIN_MIGRATE_START_POST_COPY
    )
}

/// Some(future) for a migration call: each step may take long (Perform: the whole
/// migration), so it is answered asynchronously, other calls of the connection going on.
pub(super) fn dispatch(
    s: &Arc<RemoteService>,
    p: i32,
    payload: &[u8],
) -> Option<BoxFuture<Outcome>> {
    if !serves(p) {
        return None;
    }
    let s = Arc::clone(s);
    let payload = payload.to_vec();
    Some(Box::pin(async move { serve(&s, p, &payload).await.into() }))
}

async fn serve(s: &RemoteService, p: i32, payload: &[u8]) -> ProcResult {
    let q = s.hv()?;
    match p {
        procs::DOMAIN_MIGRATE_BEGIN3_PARAMS => {
            let a: Begin3ParamsArgs = args(payload)?;
            let (cookie, xml) = q.migrate_begin(&a.dom, &a.params.0, a.flags).await?;
            ret(Begin3ParamsRet {
                cookie_out: Opaque(cookie),
                xml,
            })
        }
        procs::DOMAIN_MIGRATE_PREPARE3_PARAMS => {
            let a: Prepare3ParamsArgs = args(payload)?;
            let (cookie, uri) = q
                .migrate_prepare(&a.params.0, &a.cookie_in.0, a.flags)
                .await?;
            ret(Prepare3ParamsRet {
                cookie_out: Opaque(cookie),
                uri_out: Some(uri),
            })
        }
        procs::DOMAIN_MIGRATE_PREPARE_TUNNEL3_PARAMS => {
            let _: Prepare3ParamsArgs = args(payload)?;
            Err(DriverError::ArgUnsupported(
                "tunnelled migration is not supported by Vireo yet".into(),
            )
            .into())
        }
        procs::DOMAIN_MIGRATE_PERFORM3_PARAMS => {
            let a: Perform3ParamsArgs = args(payload)?;
            if a.flags & flags::PEER2PEER != 0 {
                let dconnuri = a.dconnuri.as_deref().ok_or_else(|| {
                    DriverError::InvalidArg(
                        "peer-to-peer migration needs the destination's URI".into(),
                    )
                })?;
                peer_to_peer(s, &a.dom, dconnuri, a.params.0, a.flags).await?;
                return ret(CookieRet::default());
            }
            let uri = vireo_qemu::migrate::Params::new(&a.params.0)?
                .string(param::URI)
                .map(str::to_string)
                .ok_or_else(|| {
                    DriverError::InvalidArg("the migration URI (migrate_uri) is missing".into())
                })?;
            let cookie = q
                .migrate_perform(&a.dom, &uri, &a.params.0, a.flags)
                .await?;
            ret(CookieRet {
                cookie_out: Opaque(cookie),
            })
        }
        procs::DOMAIN_MIGRATE_FINISH3_PARAMS => {
            let a: Finish3ParamsArgs = args(payload)?;
            let dom = q
                .migrate_finish(&a.params.0, &a.cookie_in.0, a.flags, a.cancelled != 0)
                .await?;
            ret(Finish3ParamsRet {
                dom,
                cookie_out: Opaque::default(),
            })
        }
        procs::DOMAIN_MIGRATE_CONFIRM3_PARAMS => {
            let a: Confirm3ParamsArgs = args(payload)?;
            q.migrate_confirm(&a.dom, &a.params.0, a.flags, a.cancelled != 0)
                .await?;
            void()
        }
        procs::DOMAIN_MIGRATE_SET_MAX_SPEED => {
            let a: SetMaxSpeedArgs = args(payload)?;
            if q.is_running(&a.dom)? {
                return q.forward(&a.dom, p, payload).await;
            }
            q.migrate_set_speed_inactive(&a.dom, a.bandwidth, a.flags)?;
            void()
        }
        procs::DOMAIN_MIGRATE_GET_MAX_SPEED => {
            let a: DomainFlagsArgs = args(payload)?;
            if q.is_running(&a.dom)? {
                return q.forward(&a.dom, p, payload).await;
            }
            ret(GetMaxSpeedRet {
                bandwidth: q.migrate_get_speed_inactive(&a.dom, a.flags)?,
            })
        }
        // The maximum downtime and the switch to post-copy are QEMU's, while it runs.
        _ => {
            let dom = first_dom(payload)?;
            if !q.is_running(&dom)? {
                return Err(DriverError::OperationInvalid("domain is not running".into()).into());
            }
            q.forward(&dom, p, payload).await
        }
    }
}

/// The domain the tuning calls start with.
fn first_dom(payload: &[u8]) -> Result<Domain, RemoteError> {
    <Domain as vireo_xdr::Xdr>::decode(&mut vireo_xdr::Decoder::new(payload))
        .map_err(|e| RemoteError::rpc(format!("Unable to decode message payload: {e}")))
}

/// A peer-to-peer migration of `dom` to the daemon at `dconnuri`, this daemon driving the
/// five steps. The guest is left running here whenever the destination does not run it.
async fn peer_to_peer(
    s: &RemoteService,
    dom: &Domain,
    dconnuri: &str,
    mut params: Vec<TypedParam>,
    flags: u32,
) -> Result<(), RemoteError> {
    let dest = vireo_client::Connect::open(dconnuri, false)
        .await
        .map_err(|e| {
            DriverError::OperationFailed(format!(
                "Failed to connect to remote libvirt URI {dconnuri}: {e}"
            ))
        })?;
    dest.set_keepalive(P2P_KEEPALIVE, P2P_KEEPALIVE_COUNT);
    let r = peer_to_peer_steps(s, &dest, dom, &mut params, flags).await;
    let _ = dest.close().await;
    r
}

async fn peer_to_peer_steps(
    s: &RemoteService,
    dest: &vireo_client::Connect,
    dom: &Domain,
    params: &mut Vec<TypedParam>,
    flags: u32,
) -> Result<(), RemoteError> {
    let q = s.hv()?;
    let supported: ConnectSupportsFeatureRet = dest
        .call(
            procs::CONNECT_SUPPORTS_FEATURE,
            &ConnectSupportsFeatureArgs {
                feature: FEATURE_MIGRATION_PARAMS,
            },
        )
        .await
        .map_err(peer_error)?;
    if supported.supported != 1 {
        return Err(DriverError::ArgUnsupported(
            "the destination does not support migration with typed parameters".into(),
        )
        .into());
    }
    let (cookie, xml) = q.migrate_begin(dom, params, flags).await?;
    // The destination resumes the guest unless it is paused here (or asked to stay so).
    let mut dest_flags = flags & !(flags::ABORT_ON_ERROR | flags::AUTO_CONVERGE);
    if q.state(dom)?.0 == vireo_proto::remote::state::PAUSED {
        dest_flags |= flags::PAUSED;
    }
    set_string(params, param::DEST_XML, &xml);
    let prepared: Prepare3ParamsRet = dest
        .call(
            procs::DOMAIN_MIGRATE_PREPARE3_PARAMS,
            &Prepare3ParamsArgs {
                params: Array(params.clone()),
                cookie_in: Opaque(cookie),
                flags: dest_flags,
            },
        )
        .await
        .map_err(peer_error)?;
    let uri = match prepared.uri_out {
        Some(u) => u,
        None => vireo_qemu::migrate::Params::new(params)?
            .string(param::URI)
            .map(str::to_string)
            .ok_or_else(|| DriverError::Internal("domainMigratePrepare3 did not set uri".into()))?,
    };
    set_string(params, param::URI, &uri);
    // The destination's daemon going away ends the migration: nobody would finish it.
    let mut lost = false;
    let performed = {
        let perform = q.migrate_perform(dom, &uri, params, flags);
        tokio::pin!(perform);
        tokio::select! {
            r = &mut perform => r,
            _ = dest.connection().closed() => {
                lost = true;
                let _ = q.migrate_abort(dom).await;
                perform.await
            }
        }
    };
    if !params.iter().any(|p| p.field == param::DEST_NAME) {
        set_string(params, param::DEST_NAME, &dom.name);
    }
    let finished: Result<Finish3ParamsRet, _> = dest
        .call(
            procs::DOMAIN_MIGRATE_FINISH3_PARAMS,
            &Finish3ParamsArgs {
                params: Array(params.clone()),
                cookie_in: Opaque(performed.as_ref().cloned().unwrap_or_default()),
                flags: dest_flags,
                cancelled: performed.is_err() as i32,
            },
        )
        .await;
    let lost_err = || DriverError::OperationFailed("Lost connection to destination host".into());
    // Perform failed: the guest is running here already, and the destination cleaned up.
    if let Err(e) = performed {
        return Err(if lost { lost_err().into() } else { e.into() });
    }
    let cancelled = finished.is_err();
    let confirmed = q.migrate_confirm(dom, params, flags, cancelled).await;
    if lost && cancelled {
        return Err(lost_err().into());
    }
    finished.map_err(peer_error)?;
    confirmed?;
    Ok(())
}

/// An error of the destination's daemon, as it came (or why it could not answer).
fn peer_error(e: vireo_client::ClientError) -> RemoteError {
    match e {
        vireo_client::ClientError::Remote(r) => *r,
        e => DriverError::OperationFailed(format!("the destination: {e}")).into(),
    }
}
