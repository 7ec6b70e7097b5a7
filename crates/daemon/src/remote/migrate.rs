//! Live migration calls: libvirt's migration protocol version 3 with typed parameters
//! (Begin3, Prepare3, Perform3, Finish3, Confirm3 `…_PARAMS`) and the migration tuning
//! calls (speed, downtime, post-copy).
//!
//! A client (virsh, python) drives a normal migration itself: Begin here, Prepare on the
//! destination, Perform here, Finish there, Confirm here. With `VIR_MIGRATE_PEER2PEER`
//! the client only calls Perform here, with the destination's URI: this daemon then
//! connects to the destination itself, as a libvirt client of it, and runs the same steps
//! (Begin, Perform and Confirm locally, Prepare and Finish there).

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use vireo_driver::DriverError;
use vireo_proto::migrate::*;
use vireo_proto::remote::{procs, ConnectSupportsFeatureArgs, ConnectSupportsFeatureRet};
use vireo_proto::remote::{Domain, DomainFlagsArgs};
use vireo_proto::typed::TypedParam;
use vireo_proto::RemoteError;
use vireo_proto::{Header, MessageType, Status, REMOTE_PROGRAM, REMOTE_VERSION};
use vireo_qemu::migrate::set_string;
use vireo_rpc::server::{BoxFuture, Outcome, StreamPacket, StreamSender};
use vireo_xdr::{Array, Opaque, Xdr};

use super::{args, ret, void, ProcResult, RemoteClient, RemoteService};

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
    client: &Arc<RemoteClient>,
    p: i32,
    payload: &[u8],
) -> Option<BoxFuture<Outcome>> {
    if !serves(p) {
        return None;
    }
    let s = Arc::clone(s);
    let payload = payload.to_vec();
    // Where a client that came over the network reaches this host: the stream comes there.
    let local = client
        .conn
        .addr
        .and_then(|a| vireo_qemu::migrate::local_address_towards(a.ip()));
    let client = Arc::clone(client);
    Some(Box::pin(async move {
        serve(&s, &client, p, &payload, local).await.into()
    }))
}

/// A migration prepared here for `client` is cancelled if the client goes away before
/// its Finish (a source daemon that died, a virsh killed): nobody would finish it, and the
/// guest must not wait here, paused, for ever.
fn abandon_with(s: &RemoteService, client: &Arc<RemoteClient>, name: String) {
    let Ok(q) = s.hv().map(Arc::clone) else {
        return;
    };
    let client = Arc::clone(client);
    tokio::spawn(async move {
        while q.incoming_pending(&name) {
            if client.is_closed() {
                log::warn!("migration of '{name}': its client has gone before Finish: cancelled");
                let params = [TypedParam::string(param::DEST_NAME, &name)];
                let _ = q.migrate_finish(&params, &[], 0, true).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
}

async fn serve(
    s: &RemoteService,
    client: &Arc<RemoteClient>,
    p: i32,
    payload: &[u8],
    local: Option<std::net::IpAddr>,
) -> ProcResult {
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
                .migrate_prepare(&a.params.0, &a.cookie_in.0, a.flags, local)
                .await?;
            if let Some(name) = vireo_qemu::migrate::Cookie::parse(&cookie)?.map(|c| c.name) {
                abandon_with(s, client, name);
            }
            ret(Prepare3ParamsRet {
                cookie_out: Opaque(cookie),
                uri_out: Some(uri),
            })
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
                .migrate_perform(&a.dom, &uri, &a.params.0, &a.cookie_in.0, a.flags)
                .await?;
            ret(CookieRet {
                cookie_out: Opaque(cookie),
            })
        }
        procs::DOMAIN_MIGRATE_FINISH3_PARAMS => {
            let a: Finish3ParamsArgs = args(payload)?;
            let (dom, cookie) = q
                .migrate_finish(&a.params.0, &a.cookie_in.0, a.flags, a.cancelled != 0)
                .await?;
            ret(Finish3ParamsRet {
                dom,
                cookie_out: Opaque(cookie),
            })
        }
        procs::DOMAIN_MIGRATE_CONFIRM3_PARAMS => {
            let a: Confirm3ParamsArgs = args(payload)?;
            q.migrate_confirm(
                &a.dom,
                &a.params.0,
                &a.cookie_in.0,
                a.flags,
                a.cancelled != 0,
            )
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
    if flags & flags::TUNNELLED != 0 {
        return tunnelled_steps(s, dest, dom, params, flags, dest_flags, cookie).await;
    }
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
        let perform = q.migrate_perform(dom, &uri, params, &prepared.cookie_out.0, flags);
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
    finish_and_confirm(s, dest, dom, params, flags, dest_flags, performed, lost).await
}

/// The last two steps of a peer-to-peer migration: Finish at the destination (told
/// whether Perform failed), then Confirm here (told whether Finish failed).
#[allow(clippy::too_many_arguments)]
async fn finish_and_confirm(
    s: &RemoteService,
    dest: &vireo_client::Connect,
    dom: &Domain,
    params: &mut Vec<TypedParam>,
    flags: u32,
    dest_flags: u32,
    performed: Result<Vec<u8>, DriverError>,
    lost: bool,
) -> Result<(), RemoteError> {
    let q = s.hv()?;
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
    let cookie = finished
        .as_ref()
        .map(|f| f.cookie_out.0.clone())
        .unwrap_or_default();
    let confirmed = q
        .migrate_confirm(dom, params, &cookie, flags, cancelled)
        .await;
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

/// PREPARE_TUNNEL3_PARAMS (destination): the domain's start from a tunnel, and the stream
/// after the reply: its packets are the migration stream, written into the tunnel; the
/// client's finish is confirmed once all of it is there.
pub(super) fn prepare_tunnel(
    s: Arc<RemoteService>,
    client: Arc<RemoteClient>,
    call: Header,
    payload: Vec<u8>,
) -> BoxFuture<Outcome> {
    Box::pin(async move {
        let prepared = async {
            let a: Prepare3ParamsArgs = args(&payload)?;
            let r = s
                .hv()?
                .migrate_prepare_tunnel(&a.params.0, &a.cookie_in.0, a.flags)
                .await?;
            Ok::<_, RemoteError>(r)
        };
        let (cookie, tunnel) = match prepared.await {
            Ok(p) => p,
            Err(e) => return Outcome::Error(e),
        };
        let (tx, rx) = client.open_stream(&call);
        let serial = call.serial;
        Outcome::ReplyThen(
            vireo_xdr::to_bytes(&CookieRet {
                cookie_out: Opaque(cookie),
            }),
            Box::pin(async move {
                into_tunnel(tunnel, tx, rx).await;
                client.close_stream(serial);
            }),
        )
    })
}

/// Writes the stream's packets into the tunnel until the client finishes (confirmed) or
/// aborts (the tunnel closes: the incoming migration fails). A tunnel that breaks (the
/// VM died) is reported on the stream, and the rest of the packets are dropped.
async fn into_tunnel(tunnel: OwnedFd, tx: StreamSender, mut rx: mpsc::Receiver<StreamPacket>) {
    let std = std::os::unix::net::UnixStream::from(tunnel);
    let mut w = match std
        .set_nonblocking(true)
        .and_then(|_| tokio::net::UnixStream::from_std(std))
    {
        Ok(w) => Some(w),
        Err(e) => {
            let err = DriverError::io("cannot use the migration tunnel", e).into();
            let _ = tx.finish(Some(&err)).await;
            None
        }
    };
    while let Some(p) = rx.recv().await {
        match p.status {
            Status::Continue if !p.hole => {
                let Some(sock) = w.as_mut() else { continue };
                if let Err(e) = sock.write_all(&p.data).await {
                    let err: RemoteError =
                        DriverError::OperationFailed(format!("the incoming migration: {e}")).into();
                    let _ = tx.finish(Some(&err)).await;
                    // The rest is dropped, so the client's connection keeps flowing.
                    w = None;
                }
            }
            Status::Ok => {
                if let Some(mut sock) = w.take() {
                    let _ = sock.shutdown().await;
                    let _ = tx.finish(None).await;
                }
                return;
            }
            // A hole has no place in a migration stream; an abort ends it.
            _ => return,
        }
    }
}

/// A tunnelled peer-to-peer migration: the destination prepares with a stream on this
/// daemon's connection to it; the VM's shim migrates into one end of a socket pair, and
/// this daemon sends what comes out of the other as the stream's packets.
#[allow(clippy::too_many_arguments)]
async fn tunnelled_steps(
    s: &RemoteService,
    dest: &vireo_client::Connect,
    dom: &Domain,
    params: &mut Vec<TypedParam>,
    flags: u32,
    dest_flags: u32,
    cookie: Vec<u8>,
) -> Result<(), RemoteError> {
    let q = s.hv()?;
    let prep = Prepare3ParamsArgs {
        params: Array(params.clone()),
        cookie_in: Opaque(cookie),
        flags: dest_flags,
    };
    let (reply, stream) = dest
        .connection()
        .call_stream(
            REMOTE_PROGRAM,
            REMOTE_VERSION,
            procs::DOMAIN_MIGRATE_PREPARE_TUNNEL3_PARAMS,
            |o| prep.encode(o),
        )
        .await
        .map_err(|e| peer_error(e.into()))?;
    vireo_xdr::from_bytes::<CookieRet>(&reply)
        .map_err(|e| RemoteError::rpc(format!("Unable to decode message payload: {e}")))?;
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()
        .map_err(|e| DriverError::io("cannot make the migration tunnel's socket", e))?;
    let (outcome_tx, outcome_rx) = oneshot::channel();
    let pump = tokio::spawn(out_of_tunnel(ours, stream, outcome_rx));
    let mut lost = false;
    let performed = {
        let perform = q.migrate_perform_tunnelled(dom, theirs.into(), params, flags);
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
    let _ = outcome_tx.send(performed.is_ok());
    let sent = pump.await.unwrap_or_else(|e| Err(format!("tunnel: {e}")));
    // The destination has the stream only if the tunnel delivered all of it.
    let performed = match (performed, sent) {
        (Ok(c), Ok(())) => Ok(c),
        (Ok(_), Err(why)) => {
            // The source finished sending but the destination did not take it all: the
            // guest must go on here.
            Err(DriverError::OperationFailed(format!(
                "migration failed: the tunnel to the destination: {why}"
            )))
        }
        (Err(e), _) => Err(e),
    };
    finish_and_confirm(s, dest, dom, params, flags, dest_flags, performed, lost).await
}

/// Sends what QEMU writes into the tunnel as stream packets; at its end (QEMU closed it),
/// finishes the stream if the migration went well (and waits for the destination's
/// confirmation), else aborts it.
async fn out_of_tunnel(
    ours: std::os::unix::net::UnixStream,
    mut stream: vireo_rpc::client::ClientStream,
    outcome: oneshot::Receiver<bool>,
) -> Result<(), String> {
    let mut r = ours
        .set_nonblocking(true)
        .and_then(|_| tokio::net::UnixStream::from_std(ours))
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; vireo_proto::STREAM_CHUNK];
    let mut failed = None;
    loop {
        tokio::select! {
            n = r.read(&mut buf) => match n {
                Ok(0) => break,
                Ok(n) => {
                    if let Err(e) = stream.send_data(&buf[..n]).await {
                        failed = Some(e.to_string());
                        break;
                    }
                }
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            },
            // The destination reports a failure (its VM could not take the stream).
            f = stream.recv() => {
                let why = match f {
                    Some(f) if f.header.status == Status::Error as i32 => {
                        vireo_xdr::from_bytes::<RemoteError>(&f.payload)
                            .map(|e| e.text().to_string())
                            .unwrap_or_else(|_| "the destination failed".into())
                    }
                    Some(_) => "unexpected stream packet from the destination".into(),
                    None => "the connection to the destination closed".into(),
                };
                failed = Some(why);
                break;
            }
        }
    }
    // Closing our end makes QEMU's writes fail if it is still sending.
    drop(r);
    let ok = outcome.await.unwrap_or(false);
    if let Some(why) = failed {
        let _ = stream.send(MessageType::Stream, Status::Error, &[]).await;
        return Err(why);
    }
    if !ok {
        let _ = stream.send(MessageType::Stream, Status::Error, &[]).await;
        return Err("the migration failed".into());
    }
    stream
        .send(MessageType::Stream, Status::Ok, &[])
        .await
        .map_err(|e| e.to_string())?;
    match stream.recv().await {
        Some(f) if f.header.status == Status::Ok as i32 => Ok(()),
        Some(f) => Err(vireo_xdr::from_bytes::<RemoteError>(&f.payload)
            .map(|e| e.text().to_string())
            .unwrap_or_else(|_| "the destination refused the end of the stream".into())),
        None => Err("the connection to the destination closed".into()),
    }
}
