//! A SASL security layer under the RPC frames, as libvirt's sockets run one once SASL
//! negotiated it (GSSAPI with confidentiality on plain TCP): every byte each way travels
//! in packets of a 4-byte big-endian length followed by that many bytes of the mechanism's
//! token (cyrus-sasl's `sasl_encode` output; for GSSAPI a `gss_wrap` token), each made from
//! at most [`SecurityLayer::max_plain`] bytes of the stream. The layer starts on the
//! server right after the reply that completed the exchange is written, on the client as
//! soon as that reply is read.
//!
//! [`Layered`] is a byte stream that passes bytes through until a layer is started on it
//! (the server's connections); [`LayerReader`] and [`LayerWriter`] are the same for the two
//! halves of a split stream, started together through a shared [`LayerSwitch`] (a client)
//! or each on its own (a proxy whose writer runs in its own task).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The mechanism's protection of one packet.
pub trait SecurityLayer: Send + Sync {
    /// Protects `plain` (at most [`SecurityLayer::max_plain`] bytes) into one token.
    fn wrap(&self, plain: &[u8]) -> io::Result<Vec<u8>>;
    /// Checks and opens one token.
    fn unwrap(&self, token: &[u8]) -> io::Result<Vec<u8>>;
    /// The most stream bytes one token may carry (the peer's buffer, less the overhead).
    fn max_plain(&self) -> usize;
    /// The longest token accepted from the peer (the buffer size we announced).
    fn max_token(&self) -> usize;
}

pub type Layer = Arc<dyn SecurityLayer>;

/// Starts a layer on both halves of a split stream at once.
pub type LayerSwitch = Arc<OnceLock<Layer>>;

fn bad(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Appends `plain` to `out` as packets: for each chunk of at most `max_plain` bytes, its
/// token's length (4 bytes, big-endian) and the token.
pub fn encode_into(layer: &dyn SecurityLayer, plain: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    let max = layer.max_plain().max(1);
    for chunk in plain.chunks(max) {
        let token = layer.wrap(chunk)?;
        let len = u32::try_from(token.len()).map_err(|_| bad("security layer token too long"))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&token);
    }
    Ok(())
}

/// Takes the first whole packet off `wire` and returns what it carries; `None` until all
/// of it is there. The length is checked against the layer's limit before any byte of the
/// packet is waited for.
pub fn decode_one(layer: &dyn SecurityLayer, wire: &mut Vec<u8>) -> io::Result<Option<Vec<u8>>> {
    let Some(len) = wire.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if len == 0 {
        return Err(bad("empty security layer packet"));
    }
    if len > layer.max_token() {
        return Err(bad(
            "security layer packet larger than the negotiated buffer",
        ));
    }
    if wire.len() < 4 + len {
        return Ok(None);
    }
    let plain = layer.unwrap(&wire[4..4 + len])?;
    wire.drain(..4 + len);
    Ok(Some(plain))
}

/// Bytes read from the wire at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Plain bytes wrapped per write call (several packets).
const WRITE_CHUNK: usize = 256 * 1024;

#[derive(Default)]
struct ReadSide {
    layer: Option<Layer>,
    switch: Option<LayerSwitch>,
    /// Packet bytes read but not yet opened.
    wire: Vec<u8>,
    /// Opened bytes not yet handed out.
    plain: Vec<u8>,
    pos: usize,
    /// What each read off the wire goes into (made at the first).
    tmp: Vec<u8>,
}

impl ReadSide {
    fn poll_read<R: AsyncRead + Unpin>(
        &mut self,
        inner: &mut R,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.layer.is_none() {
            if let Some(l) = self.switch.as_ref().and_then(|s| s.get()) {
                self.layer = Some(Arc::clone(l));
            }
        }
        let Some(layer) = self.layer.clone() else {
            return Pin::new(inner).poll_read(cx, buf);
        };
        loop {
            if self.pos < self.plain.len() {
                let n = (self.plain.len() - self.pos).min(buf.remaining());
                buf.put_slice(&self.plain[self.pos..self.pos + n]);
                self.pos += n;
                if self.pos == self.plain.len() {
                    self.plain.clear();
                    self.pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if let Some(p) = decode_one(&*layer, &mut self.wire)? {
                self.plain = p;
                self.pos = 0;
                continue;
            }
            if self.tmp.is_empty() {
                self.tmp = vec![0u8; READ_CHUNK];
            }
            let mut rb = ReadBuf::new(&mut self.tmp);
            ready!(Pin::new(&mut *inner).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                if self.wire.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a security layer packet",
                )));
            }
            self.wire.extend_from_slice(rb.filled());
        }
    }
}

#[derive(Default)]
struct WriteSide {
    layer: Option<Layer>,
    switch: Option<LayerSwitch>,
    /// Packets made but not yet written.
    out: Vec<u8>,
    pos: usize,
}

impl WriteSide {
    fn layer(&mut self) -> Option<Layer> {
        if self.layer.is_none() {
            if let Some(l) = self.switch.as_ref().and_then(|s| s.get()) {
                self.layer = Some(Arc::clone(l));
            }
        }
        self.layer.clone()
    }

    /// Writes out the packets made so far.
    fn poll_drain<W: AsyncWrite + Unpin>(
        &mut self,
        inner: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while self.pos < self.out.len() {
            let n = ready!(Pin::new(&mut *inner).poll_write(cx, &self.out[self.pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pos += n;
        }
        self.out.clear();
        self.pos = 0;
        Poll::Ready(Ok(()))
    }

    fn poll_write<W: AsyncWrite + Unpin>(
        &mut self,
        inner: &mut W,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let Some(layer) = self.layer() else {
            return Pin::new(inner).poll_write(cx, buf);
        };
        ready!(self.poll_drain(inner, cx))?;
        let n = buf.len().min(WRITE_CHUNK);
        encode_into(&*layer, &buf[..n], &mut self.out)?;
        // Start sending now; what does not fit yet goes at the next write or flush.
        if let Poll::Ready(Err(e)) = self.poll_drain(inner, cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush<W: AsyncWrite + Unpin>(
        &mut self,
        inner: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(inner, cx))?;
        Pin::new(inner).poll_flush(cx)
    }

    fn poll_shutdown<W: AsyncWrite + Unpin>(
        &mut self,
        inner: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(inner, cx))?;
        Pin::new(inner).poll_shutdown(cx)
    }
}

/// A byte stream that carries its bytes plainly until [`Layered::start`] puts a security
/// layer under them.
pub struct Layered<T> {
    inner: T,
    rd: ReadSide,
    wr: WriteSide,
}

impl<T> Layered<T> {
    pub fn new(inner: T) -> Layered<T> {
        Layered {
            inner,
            rd: ReadSide::default(),
            wr: WriteSide::default(),
        }
    }

    /// Runs every later byte through `layer`; `read_ahead` is what was already read off
    /// the wire past the last plain byte (the first packets).
    pub fn start(&mut self, layer: Layer, read_ahead: Vec<u8>) {
        self.rd.layer = Some(Arc::clone(&layer));
        self.rd.wire = read_ahead;
        self.wr.layer = Some(layer);
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// Whether a layer runs.
    pub fn is_layered(&self) -> bool {
        self.wr.layer.is_some()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Layered<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        me.rd.poll_read(&mut me.inner, cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Layered<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        me.wr.poll_write(&mut me.inner, cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        me.wr.poll_flush(&mut me.inner, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        me.wr.poll_shutdown(&mut me.inner, cx)
    }
}

/// The reading half of a split stream, plain until a layer is started on it.
pub struct LayerReader<R> {
    inner: R,
    side: ReadSide,
}

impl<R> LayerReader<R> {
    pub fn new(inner: R) -> LayerReader<R> {
        LayerReader {
            inner,
            side: ReadSide::default(),
        }
    }

    /// One that starts its layer when `switch` is set (checked at each read).
    pub fn switched(inner: R, switch: LayerSwitch) -> LayerReader<R> {
        LayerReader {
            inner,
            side: ReadSide {
                switch: Some(switch),
                ..ReadSide::default()
            },
        }
    }

    /// Runs every byte read from now on through `layer`.
    pub fn start(&mut self, layer: Layer) {
        self.side.layer = Some(layer);
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for LayerReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        me.side.poll_read(&mut me.inner, cx, buf)
    }
}

/// The writing half of a split stream, plain until a layer is started on it.
pub struct LayerWriter<W> {
    inner: W,
    side: WriteSide,
}

impl<W> LayerWriter<W> {
    pub fn new(inner: W) -> LayerWriter<W> {
        LayerWriter {
            inner,
            side: WriteSide::default(),
        }
    }

    /// One that starts its layer when `switch` is set (checked at each write).
    pub fn switched(inner: W, switch: LayerSwitch) -> LayerWriter<W> {
        LayerWriter {
            inner,
            side: WriteSide {
                switch: Some(switch),
                ..WriteSide::default()
            },
        }
    }

    /// Runs every byte written from now on through `layer` (flush what came before
    /// first).
    pub fn start(&mut self, layer: Layer) {
        self.side.layer = Some(layer);
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for LayerWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        me.side.poll_write(&mut me.inner, cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        me.side.poll_flush(&mut me.inner, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        me.side.poll_shutdown(&mut me.inner, cx)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A stand-in mechanism: XORs with a key and appends a 1-byte sum, so that a test sees
    /// neither the plain bytes on the wire nor a damaged token accepted.
    pub(crate) struct Xor {
        pub key: u8,
        pub max_plain: usize,
        pub max_token: usize,
    }

    impl SecurityLayer for Xor {
        fn wrap(&self, plain: &[u8]) -> io::Result<Vec<u8>> {
            assert!(plain.len() <= self.max_plain);
            let mut t: Vec<u8> = plain.iter().map(|b| b ^ self.key).collect();
            t.push(plain.iter().fold(0u8, |a, b| a.wrapping_add(*b)));
            Ok(t)
        }
        fn unwrap(&self, token: &[u8]) -> io::Result<Vec<u8>> {
            let (body, sum) = token.split_at(token.len() - 1);
            let p: Vec<u8> = body.iter().map(|b| b ^ self.key).collect();
            if p.iter().fold(0u8, |a, b| a.wrapping_add(*b)) != sum[0] {
                return Err(bad("bad token"));
            }
            Ok(p)
        }
        fn max_plain(&self) -> usize {
            self.max_plain
        }
        fn max_token(&self) -> usize {
            self.max_token
        }
    }

    fn xor(max_plain: usize) -> Layer {
        Arc::new(Xor {
            key: 0x5a,
            max_plain,
            max_token: max_plain + 1,
        })
    }

    #[test]
    fn packets_are_length_and_token_split_at_the_limit() {
        let l = xor(4);
        let mut out = Vec::new();
        encode_into(&*l, b"abcdefghij", &mut out).unwrap();
        // 10 bytes in chunks of 4: tokens of 5, 5 and 3 bytes, each after its length.
        assert_eq!(&out[..4], &[0, 0, 0, 5]);
        assert_eq!(&out[9..13], &[0, 0, 0, 5]);
        assert_eq!(&out[18..22], &[0, 0, 0, 3]);
        assert_eq!(out.len(), 4 + 5 + 4 + 5 + 4 + 3);
        assert!(!out.windows(3).any(|w| w == b"abc"));
        // Decoded a byte at a time: nothing until a packet is whole.
        let mut wire = Vec::new();
        let mut plain = Vec::new();
        for b in out {
            wire.push(b);
            while let Some(p) = decode_one(&*l, &mut wire).unwrap() {
                plain.extend(p);
            }
        }
        assert_eq!(plain, b"abcdefghij");
        assert!(wire.is_empty());
    }

    #[test]
    fn bad_packets_are_refused_before_their_bytes_arrive() {
        let l = xor(4);
        // A length over the negotiated buffer is refused from its 4 bytes alone.
        let mut wire = vec![0, 0, 0, 6];
        assert!(decode_one(&*l, &mut wire).is_err());
        let mut wire = vec![0xff, 0xff, 0xff, 0xff];
        assert!(decode_one(&*l, &mut wire).is_err());
        let mut wire = vec![0, 0, 0, 0];
        assert!(decode_one(&*l, &mut wire).is_err());
        // A damaged token is refused.
        let mut out = Vec::new();
        encode_into(&*l, b"abc", &mut out).unwrap();
        out[5] ^= 1;
        assert!(decode_one(&*l, &mut out).is_err());
    }

    #[tokio::test]
    async fn a_stream_goes_layered_at_start_both_ways() {
        let (a, b) = tokio::io::duplex(1 << 20);
        let mut server = Layered::new(a);
        let switch: LayerSwitch = Arc::new(OnceLock::new());
        let (br, bw) = tokio::io::split(b);
        let mut crd = LayerReader::switched(br, Arc::clone(&switch));
        let mut cwr = LayerWriter::switched(bw, Arc::clone(&switch));
        // Plain first.
        cwr.write_all(b"hello").await.unwrap();
        cwr.flush().await.unwrap();
        let mut five = [0u8; 5];
        server.read_exact(&mut five).await.unwrap();
        assert_eq!(&five, b"hello");
        server.write_all(b"reply").await.unwrap();
        server.flush().await.unwrap();
        crd.read_exact(&mut five).await.unwrap();
        assert_eq!(&five, b"reply");
        // The client sends its first layered bytes before the server starts its layer:
        // they are what the server read ahead.
        switch.set(xor(1000)).ok().unwrap();
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let send = {
            let big = big.clone();
            tokio::spawn(async move {
                cwr.write_all(&big).await.unwrap();
                cwr.flush().await.unwrap();
                cwr
            })
        };
        let mut ahead = vec![0u8; 7];
        server.get_ref();
        tokio::io::AsyncReadExt::read_exact(&mut server.inner, &mut ahead)
            .await
            .unwrap();
        server.start(xor(1000), ahead);
        assert!(server.is_layered());
        let mut got = vec![0u8; big.len()];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(got, big);
        let _ = send.await.unwrap();
        server.write_all(&big).await.unwrap();
        server.flush().await.unwrap();
        let mut back = vec![0u8; big.len()];
        crd.read_exact(&mut back).await.unwrap();
        assert_eq!(back, big);
    }
}
