//! Secondary drivers: a client of vireo-qemud may call network, storage, secret, node
//! device, nwfilter and interface APIs; vireo-qemud opens a connection to the daemon that
//! serves them (per client, on first use), vouches for the caller's identity with the
//! shared token, and forwards the calls, payload untouched. Their events come back the same
//! way.

use std::collections::HashMap;
use std::sync::Arc;

use vireo_proto::error::{code, domain as errdom};
use vireo_proto::family::Family;
use vireo_proto::remote::{procs, ConnectOpenArgs, ConnectSetIdentityArgs, CONNECT_RO};
use vireo_proto::typed::{TypedParam, TypedValue};
use vireo_proto::{Header, RemoteError};
use vireo_rpc::client::{CallError, Connection};
use vireo_rpc::server::{BoxFuture, Outcome};
use vireo_xdr::Array;

use super::{RemoteClient, RemoteService};
use crate::identity::TOKEN_PARAM;

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
    let id = client.effective_identity();
    let mut params = vec![
        TypedParam::new(TOKEN_PARAM, TypedValue::String(s.token.clone())),
        TypedParam::new("unix-user-id", TypedValue::ULLong(id.uid as u64)),
        TypedParam::new("unix-group-id", TypedValue::ULLong(id.gid as u64)),
    ];
    if let Some(pid) = id.pid {
        params.push(TypedParam::new("process-id", TypedValue::LLong(pid as i64)));
    }
    let call = |e: CallError| match e {
        CallError::Remote(r) => r,
        e => unreachable(s, fam, &e.to_string()),
    };
    conn.call::<_, ()>(
        procs::CONNECT_SET_IDENTITY,
        &ConnectSetIdentityArgs {
            params: Array(params),
            flags: 0,
        },
    )
    .await
    .map_err(call)?;
    let mode = if s.paths.privileged {
        "system"
    } else {
        "session"
    };
    conn.call::<_, ()>(
        procs::CONNECT_OPEN,
        &ConnectOpenArgs {
            name: Some(format!("{}:///{mode}", fam.scheme())),
            flags: if readonly { CONNECT_RO } else { 0 },
        },
    )
    .await
    .map_err(call)?;
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
