//! `DOMAIN_SCREENSHOT`: the reply names the picture's MIME type; the picture follows as a
//! stream, ended by an empty packet; the client's finish is confirmed.

use std::sync::Arc;

use vireo_proto::remote::*;
use vireo_proto::{Header, Status};
use vireo_rpc::server::{BoxFuture, Outcome, StreamPacket};

use super::{args, ret, RemoteClient, RemoteService};

pub(super) fn open(
    s: Arc<RemoteService>,
    client: Arc<RemoteClient>,
    call: Header,
    payload: Vec<u8>,
) -> BoxFuture<Outcome> {
    Box::pin(async move {
        let taken = async {
            let a: DomainScreenshotArgs = args(&payload)?;
            let (mime, data) = s.hv()?.screenshot(&a.dom, a.screen, a.flags).await?;
            let reply = ret(DomainScreenshotRet { mime: Some(mime) })?;
            Ok::<_, vireo_proto::RemoteError>((reply, data))
        };
        let (reply, data) = match taken.await {
            Ok(t) => t,
            Err(e) => return Outcome::Error(e),
        };
        let (tx, mut rx) = client.open_stream(&call);
        let serial = call.serial;
        Outcome::ReplyThen(
            reply,
            Box::pin(async move {
                if tx.data(&data).await && tx.data(&[]).await {
                    if let Some(StreamPacket {
                        status: Status::Ok, ..
                    }) = rx.recv().await
                    {
                        let _ = tx.finish(None).await;
                    }
                }
                client.close_stream(serial);
            }),
        )
    })
}
