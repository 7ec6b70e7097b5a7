//! Frames on a byte stream: a 4-byte length word (counting itself), the header, the payload.

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};
use vireo_proto::header::{Header, HEADER_LEN};
use vireo_proto::MESSAGE_MAX;

const INITIAL_BUFFER: usize = 64 * 1024;

#[derive(Debug, Error)]
pub enum FrameError {
    #[error("connection closed")]
    Eof,
    #[error("packet of {0} bytes is too large, the maximum is {MESSAGE_MAX}")]
    TooLarge(usize),
    #[error("packet of {0} bytes is too small for a header")]
    TooSmall(usize),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// One received frame. The payload excludes the header.
#[derive(Debug)]
pub struct Frame {
    pub header: Header,
    pub payload: Vec<u8>,
}

/// Reads one frame, checking the length word before allocating anything for it.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Frame, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Eof),
        Err(e) => return Err(e.into()),
    }
    let total = u32::from_be_bytes(len) as usize;
    let body = total.checked_sub(4).ok_or(FrameError::TooSmall(total))?;
    if body > MESSAGE_MAX {
        return Err(FrameError::TooLarge(body));
    }
    if body < HEADER_LEN {
        return Err(FrameError::TooSmall(total));
    }
    let mut hdr = [0u8; HEADER_LEN];
    r.read_exact(&mut hdr).await?;
    // Grow with the data actually received, so a peer that only announces a large frame
    // costs at most the initial buffer.
    let want = body - HEADER_LEN;
    let mut payload = Vec::with_capacity(want.min(INITIAL_BUFFER));
    (&mut *r)
        .take(want as u64)
        .read_to_end(&mut payload)
        .await?;
    if payload.len() != want {
        return Err(FrameError::Eof);
    }
    Ok(Frame {
        header: Header::decode(&hdr),
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rejects_bad_lengths_before_reading_body() {
        let mut big: &[u8] = &[0x02, 0x00, 0x00, 0x05];
        assert!(matches!(
            read_frame(&mut big).await,
            Err(FrameError::TooLarge(_))
        ));
        let mut small: &[u8] = &[0, 0, 0, 3];
        assert!(matches!(
            read_frame(&mut small).await,
            Err(FrameError::TooSmall(3))
        ));
        let mut short_hdr: &[u8] = &[0, 0, 0, 20, 0, 0, 0, 0];
        assert!(matches!(
            read_frame(&mut short_hdr).await,
            Err(FrameError::TooSmall(20))
        ));
        let mut truncated: &[u8] = &[0, 0, 0, 40, 1, 2, 3];
        assert!(read_frame(&mut truncated).await.is_err());
    }

    #[tokio::test]
    async fn reads_a_void_frame() {
        let f = vireo_proto::header::encode_frame(
            &Header::new(
                0x20008086,
                1,
                66,
                vireo_proto::MessageType::Call,
                0,
                vireo_proto::Status::Ok,
            ),
            &[],
        );
        assert_eq!(f.len(), 28);
        let mut r: &[u8] = &f;
        let fr = read_frame(&mut r).await.unwrap();
        assert_eq!(fr.header.proc_, 66);
        assert!(fr.payload.is_empty());
    }
}
