//! What a viewer asks of a running domain: a screenshot of one of its screens, an image
//! that follows the call's reply as a stream.

use vireo_proto::error::domain::DOMAIN;
use vireo_proto::remote::*;
use vireo_proto::{MessageType, Status, REMOTE_PROGRAM, REMOTE_VERSION};
use vireo_rpc::client::{CallError, ClientStream};
use vireo_xdr::Xdr;

use crate::storage::{finish, remote_error};
use crate::{Connect, Result};

/// The image of a screenshot, still to be read from its stream.
pub struct Screenshot {
    /// The image's MIME type (`image/png`, `image/x-portable-pixmap`).
    pub mime: String,
    stream: ClientStream,
}

impl Connect {
    /// `virDomainScreenshot` of screen `screen`: the image's type, and the stream it comes
    /// in.
    pub async fn screenshot(&self, dom: &Domain, screen: u32) -> Result<Screenshot> {
        self.check_writable("virDomainScreenshot", DOMAIN)?;
        let args = DomainScreenshotArgs {
            dom: dom.clone(),
            screen,
            flags: 0,
        };
        let (reply, stream) = self
            .connection()
            .call_stream(
                REMOTE_PROGRAM,
                REMOTE_VERSION,
                procs::DOMAIN_SCREENSHOT,
                |o| args.encode(o),
            )
            .await?;
        let r: DomainScreenshotRet = vireo_xdr::from_bytes(&reply).map_err(CallError::Decode)?;
        Ok(Screenshot {
            mime: r.mime.unwrap_or_default(),
            stream,
        })
    }
}

impl Screenshot {
    /// Every byte of the image, each piece to `sink` as it comes; then the stream is
    /// finished as libvirt finishes it. A piece `sink` refuses aborts the stream.
    pub async fn recv_all(
        mut self,
        mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<()> {
        loop {
            let f = self.stream.recv().await.ok_or(CallError::Closed)?;
            if f.header.status == Status::Error as i32 {
                return Err(remote_error(&f.payload));
            }
            if f.payload.is_empty() {
                break;
            }
            if let Err(e) = sink(&f.payload) {
                self.abort().await;
                return Err(CallError::Io(e).into());
            }
        }
        self.stream
            .send(MessageType::Stream, Status::Ok, &[])
            .await?;
        finish(&mut self.stream).await
    }

    /// Gives the image up: the daemon is told to stop sending it.
    pub async fn abort(self) {
        let _ = self
            .stream
            .send(MessageType::Stream, Status::Error, &[])
            .await;
    }
}
