//! Secondary drivers: a client of vireo-qemud may call network, storage, secret, node
//! device, nwfilter and interface APIs; vireo-qemud opens a connection to the daemon that
//! serves them (per client, on first use), vouches for the caller's identity with the
//! shared token, and forwards the calls, payload untouched. Their events come back the same
//! way, and so do the packets of the streams their calls open (volume uploads and
//! downloads).

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use vireo_proto::error::{code, domain as errdom};
use vireo_proto::family::Family;
use vireo_proto::remote::opens_stream;
use vireo_proto::{Header, MessageType, RemoteError, Status};
use vireo_rpc::client::{CallError, ClientStream, Connection};
use vireo_rpc::server::{BoxFuture, Outcome, StreamPacket, StreamSender};

use super::{RemoteClient, RemoteService};

/// One client's connections to other daemons.
#[derive(Default)]
pub struct Peers(tokio::sync::Mutex<HashMap<Family, Arc<Connection>>>);

impl Peers {
    /// Drops them all (the client left).
    pub fn clear(&self) {
        if let Ok(mut m) = self.0.try_lock() {
            m.clear();
        }
    }
}

pub(super) fn forward(
    s: Arc<RemoteService>,
    client: Arc<RemoteClient>,
    fam: Family,
    h: Header,
    payload: Vec<u8>,
) -> BoxFuture<Outcome> {
    Box::pin(async move {
        // A daemon restarted since the last call leaves a dead connection: try a new one once.
        for attempt in 0..2 {
            let conn = match peer(&s, &client, fam).await {
                Ok(c) => c,
                Err(e) => return Outcome::Error(e),
            };
            if opens_stream(h.proc_) {
                vireo_rpc::keep_stream_buffers();
                match conn
                    .call_stream(h.prog, h.vers, h.proc_, |o| o.extend_from_slice(&payload))
                    .await
                {
                    Ok((reply, peer)) => {
                        let (tx, rx) = client.open_stream(&h);
                        let c = Arc::clone(&client);
                        return Outcome::ReplyThen(
                            reply,
                            Box::pin(async move {
                                relay(peer, tx, rx).await;
                                c.close_stream(h.serial);
                            }),
                        );
                    }
                    Err(CallError::Remote(e)) => return Outcome::Error(e),
                    Err(e) => return Outcome::Error(unreachable(&s, fam, &e.to_string())),
                }
            }
            match conn
                .call_raw(h.prog, h.vers, h.proc_, |o| o.extend_from_slice(&payload))
                .await
            {
                Ok(p) => return Outcome::Reply(p),
                Err(CallError::Remote(e)) => return Outcome::Error(e),
                Err(e) if attempt == 0 => {
                    drop(e);
                    client.data.peers.0.lock().await.remove(&fam);
                }
                Err(e) => return Outcome::Error(unreachable(&s, fam, &e.to_string())),
            }
        }
        Outcome::Error(unreachable(&s, fam, "connection lost"))
    })
}

/// Passes a stream's packets both ways between the client and the daemon that serves it,
/// as they are, until the daemon ends it (confirm or error) or either side goes away.
async fn relay(mut peer: ClientStream, tx: StreamSender, mut rx: mpsc::Receiver<StreamPacket>) {
    let mut client_done = false;
    loop {
        tokio::select! {
            p = rx.recv(), if !client_done => match p {
                Some(p) => {
                    let mtype = if p.hole { MessageType::StreamHole } else { MessageType::Stream };
                    if peer.send(mtype, p.status, &p.data).await.is_err() {
                        let _ = tx.finish(Some(&RemoteError::rpc("the storage daemon went away"))).await;
                        return;
                    }
                    if p.status == Status::Error {
                        return;
                    }
                    // Finished: what is left is the daemon's confirmation.
                    client_done = p.status != Status::Continue;
                }
                None => return,
            },
            f = peer.recv() => match f {
                Some(f) => {
                    let h = f.header;
                    let (Some(mtype), Some(status)) = (h.message_type(), h.status()) else {
                        continue;
                    };
                    if !tx.raw(mtype, status, &f.payload).await || status != Status::Continue {
                        return;
                    }
                }
                None => {
                    let _ = tx.finish(Some(&RemoteError::rpc("the daemon serving the stream went away"))).await;
                    return;
                }
            },
        }
    }
}

fn unreachable(s: &RemoteService, fam: Family, why: &str) -> RemoteError {
    let daemon = fam.daemon();
    RemoteError::new(
        code::SYSTEM_ERROR,
        errdom::RPC,
        format!(
            "cannot reach {daemon} ({why}); is it running? start it with `{daemon} --root …` or its systemd socket ({})",
            s.paths.socket(daemon).display()
        ),
    )
}

async fn peer(
    s: &RemoteService,
    client: &Arc<RemoteClient>,
    fam: Family,
) -> Result<Arc<Connection>, RemoteError> {
    let mut peers = client.data.peers.0.lock().await;
    if let Some(c) = peers.get(&fam).filter(|c| c.is_open()) {
        return Ok(Arc::clone(c));
    }
    let readonly = client.readonly || client.data.lock().readonly;
    let daemon = fam.daemon();
    let path = if readonly {
        s.paths.socket_ro(daemon)
    } else {
        s.paths.socket(daemon)
    };
    let conn = Connection::connect(&path)
        .await
        .map_err(|e| unreachable(s, fam, &e.to_string()))?;
    crate::identity::open_as_peer(
        &conn,
        &s.token,
        Some(client.effective_identity()),
        fam,
        &s.paths,
        readonly,
    )
    .await
    .map_err(|e| match e {
        CallError::Remote(r) => r,
        e => unreachable(s, fam, &e.to_string()),
    })?;
    // The other daemon's events for this client go to the client as they are.
    let weak = Arc::downgrade(client);
    conn.on_message(move |f| {
        if let Some(c) = weak.upgrade() {
            let h = f.header;
            c.send_message(h.prog, h.vers, h.proc_, h.serial, &f.payload);
        }
    });
    let conn = Arc::new(conn);
    peers.insert(fam, Arc::clone(&conn));
    Ok(conn)
}
