//! `DOMAIN_OPEN_CONSOLE`: a stream joined to the VM's serial pty, both ways.

use std::sync::Arc;

use vireo_driver::DriverError;
use vireo_proto::remote::*;
use vireo_proto::{Header, RemoteError};
use vireo_rpc::server::{BoxFuture, Outcome};
use vireo_xml::Domain as Def;

use super::{args, RemoteClient, RemoteService};

/// Opens the console stream: replies, then pumps bytes until either side ends.
pub(super) fn open(
    s: Arc<RemoteService>,
    client: Arc<RemoteClient>,
    call: Header,
    payload: Vec<u8>,
) -> BoxFuture<Outcome> {
    Box::pin(async move {
        match prepare(&s, &payload).await {
            Ok(pty) => {
                let (tx, rx) = client.open_stream(&call);
                let serial = call.serial;
                Outcome::ReplyThen(
                    Vec::new(),
                    Box::pin(async move {
                        vireo_rpc::pty::pump(pty, tx, rx).await;
                        client.close_stream(serial);
                    }),
                )
            }
            Err(e) => Outcome::Error(e),
        }
    })
}

async fn prepare(s: &RemoteService, payload: &[u8]) -> Result<vireo_rpc::pty::Pty, RemoteError> {
    let a: DomainOpenConsoleArgs = args(payload)?;
    if !s.hv()?.is_running(&a.dom)? {
        return Err(DriverError::OperationInvalid("domain is not running".into()).into());
    }
    let xml: DomainGetXmlDescRet = vireo_xdr::from_bytes(&s.hv()?.live_xml(&a.dom).await?)
        .map_err(|e| RemoteError::rpc(format!("bad reply from the shim: {e}")))?;
    let def = Def::parse(&xml.xml)
        .map_err(|e| DriverError::Internal(format!("bad live XML from the shim: {e}")))?;
    let tty = vireo_qemu::console::pty_of(&def, a.dev_name.as_deref())?;
    vireo_rpc::pty::open_raw(std::path::Path::new(&tty))
        .map_err(|e| DriverError::io(format!("cannot open console {tty}"), e).into())
}
