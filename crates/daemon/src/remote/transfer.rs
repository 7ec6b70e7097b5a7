//! `STORAGE_VOL_UPLOAD` and `STORAGE_VOL_DOWNLOAD`: a volume's bytes as a stream, with
//! holes as STREAM_HOLE packets when the call asked for a sparse stream.
//!
//! The disk side runs on a thread of its own, a few chunks ahead of (or behind) the
//! socket, so reading the network and writing the disk overlap. Both directions are
//! bounded: a client that sends faster than the disk writes waits on its socket, and one
//! that reads slower than the disk makes the reading thread wait (stream credit); the
//! daemon never holds more than a few chunks of a volume.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use tokio::sync::mpsc;
use vireo_proto::storage::{VolTransferArgs, SPARSE_STREAM};
use vireo_proto::{Header, RemoteError, Status, STREAM_CHUNK};
use vireo_rpc::server::{BoxFuture, Outcome, StreamPacket, StreamSender};
use vireo_storage::{Reservation, StorageDriver, StorageError};

use super::{args, RemoteClient, RemoteService};

/// Chunks in flight between the socket and the disk thread.
const PIPE: usize = 8;

type Held = Reservation<Arc<StorageDriver>>;

pub(super) fn open(
    s: Arc<RemoteService>,
    client: Arc<RemoteClient>,
    call: Header,
    payload: Vec<u8>,
    upload: bool,
) -> BoxFuture<Outcome> {
    Box::pin(async move {
        vireo_rpc::keep_stream_buffers();
        let prepared = (|| -> Result<(Held, File, VolTransferArgs), RemoteError> {
            let a: VolTransferArgs = args(&payload)?;
            if a.flags & !SPARSE_STREAM != 0 {
                return Err(StorageError::InvalidArg(format!(
                    "unsupported flags (0x{:x})",
                    a.flags & !SPARSE_STREAM
                ))
                .into());
            }
            let d = s.storage.as_ref().ok_or_else(|| {
                super::not_supported(s.role, vireo_proto::family::Family::Storage)
            })?;
            let held = d.begin_transfer(&a.vol, upload)?;
            let file = if upload {
                OpenOptions::new().write(true).open(&held.path)
            } else {
                File::open(&held.path)
            }
            .map_err(|e| {
                StorageError::io(format!("cannot open volume '{}'", held.path.display()), e)
            })?;
            if a.offset > held.physical && !upload {
                return Err(StorageError::InvalidArg(format!(
                    "offset {} is past the end of the volume ({} bytes)",
                    a.offset, held.physical
                ))
                .into());
            }
            Ok((held, file, a))
        })();
        let (held, file, a) = match prepared {
            Ok(p) => p,
            Err(e) => return Outcome::Error(e),
        };
        let (tx, rx) = client.open_stream(&call);
        let serial = call.serial;
        let sparse = a.flags & SPARSE_STREAM != 0;
        Outcome::ReplyThen(
            Vec::new(),
            Box::pin(async move {
                if upload {
                    receive(held, file, a.offset, a.length, tx, rx).await;
                } else {
                    send(held, file, a.offset, a.length, sparse, tx, rx).await;
                }
                client.close_stream(serial);
            }),
        )
    })
}

/// What the socket side hands the disk thread.
enum Write {
    Data(Vec<u8>),
    Hole(u64),
    Finish,
}

/// Upload: the client's packets are written at `offset` onwards; a hole skips ahead (and
/// releases the blocks there), the finish makes the data durable and is confirmed.
async fn receive(
    held: Held,
    file: File,
    offset: u64,
    length: u64,
    tx: StreamSender,
    mut rx: mpsc::Receiver<StreamPacket>,
) {
    let (wtx, wrx) = mpsc::channel::<Write>(PIPE);
    let disk = tokio::task::spawn_blocking(move || write_loop(file, offset, length, wrx));
    // Why the stream ends here, when it is this side's doing.
    let mut refused = None;
    while let Some(p) = rx.recv().await {
        let w = match (p.status, p.hole) {
            (Status::Continue, false) => Write::Data(p.data),
            (Status::Continue, true) => match p.hole_len() {
                Some(n) => Write::Hole(n),
                None => {
                    refused = Some(RemoteError::rpc("malformed stream hole"));
                    break;
                }
            },
            (Status::Ok, _) => Write::Finish,
            // Aborted by the client: whatever was written stays, nothing is confirmed.
            _ => break,
        };
        let finish = matches!(w, Write::Finish);
        // A send fails only when the disk thread stopped on an error: it is reported below.
        if wtx.send(w).await.is_err() || finish {
            break;
        }
    }
    // The disk thread ends once it has no more to write; the volume is let go after it.
    drop(wtx);
    let result = disk
        .await
        .unwrap_or_else(|e| Err(StorageError::Internal(format!("upload thread: {e}"))));
    drop(held);
    let err = match (refused, result) {
        (Some(e), _) => Some(e),
        (None, Err(e)) => Some(RemoteError::from(e)),
        (None, Ok(true)) => None,
        // The client went away (or aborted) before finishing: nothing to confirm.
        (None, Ok(false)) => return,
    };
    let _ = tx.finish(err.as_ref()).await;
}

/// The disk side of an upload. Ok(true) once finished and synced; Ok(false) when the
/// packets stopped without a finish.
fn write_loop(
    file: File,
    offset: u64,
    length: u64,
    mut rx: mpsc::Receiver<Write>,
) -> Result<bool, StorageError> {
    let io = |what: &str, e| StorageError::io(format!("volume upload: cannot {what}"), e);
    let end = (length > 0).then(|| offset.saturating_add(length));
    let mut pos = offset;
    let mut size = file.metadata().map_err(|e| io("stat", e))?.len();
    while let Some(w) = rx.blocking_recv() {
        let n = match &w {
            Write::Data(d) => d.len() as u64,
            Write::Hole(n) => *n,
            Write::Finish => 0,
        };
        if end.is_some_and(|e| pos.saturating_add(n) > e) {
            return Err(StorageError::InvalidArg(format!(
                "the stream sends more than the {length} bytes asked for"
            )));
        }
        match w {
            Write::Data(d) => {
                file.write_all_at(&d, pos).map_err(|e| io("write", e))?;
                pos += n;
                size = size.max(pos);
            }
            Write::Hole(n) => {
                // Blocks already there in the hole's range are released: the result is as
                // sparse as the source.
                let punch = size.min(pos.saturating_add(n)).saturating_sub(pos);
                if punch > 0 {
                    punch_hole(&file, pos, punch).map_err(|e| io("punch a hole", e))?;
                }
                pos = pos.saturating_add(n);
            }
            Write::Finish => {
                if pos > size {
                    file.set_len(pos).map_err(|e| io("extend", e))?;
                }
                file.sync_data().map_err(|e| io("sync", e))?;
                return Ok(true);
            }
        }
    }
    Ok(false)
}

fn punch_hole(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    let flags = rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE;
    if rustix::fs::fallocate(file, flags, offset, len).is_err() {
        // No hole punching on this filesystem: write the zeros.
        let zeros = vec![0u8; STREAM_CHUNK];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(zeros.len() as u64) as usize;
            file.write_all_at(&zeros[..n], offset + done)?;
            done += n as u64;
        }
    }
    Ok(())
}

/// What the disk thread hands the socket side of a download.
enum Read {
    Data(Vec<u8>),
    Hole(u64),
    End,
    Failed(StorageError),
}

/// Download: the volume's bytes from `offset` (for `length`, or to the end), holes as
/// STREAM_HOLE when sparse; then the empty packet that ends the data, and the client's
/// finish is confirmed.
async fn send(
    held: Held,
    file: File,
    offset: u64,
    length: u64,
    sparse: bool,
    tx: StreamSender,
    mut rx: mpsc::Receiver<StreamPacket>,
) {
    let size = held.physical;
    let end = if length == 0 {
        size
    } else {
        offset.saturating_add(length).min(size)
    };
    let (dtx, mut drx) = mpsc::channel::<Read>(PIPE);
    let disk = tokio::task::spawn_blocking(move || read_loop(&file, offset, end, sparse, &dtx));
    loop {
        tokio::select! {
            r = drx.recv() => match r {
                Some(Read::Data(d)) => {
                    if !tx.data(&d).await {
                        break;
                    }
                }
                Some(Read::Hole(n)) => {
                    if !tx.hole(n).await {
                        break;
                    }
                }
                Some(Read::End) => {
                    // The empty data packet ends the stream; the client finishes, we confirm.
                    if tx.data(&[]).await {
                        if let Some(StreamPacket { status: Status::Ok, .. }) = rx.recv().await {
                            let _ = tx.finish(None).await;
                        }
                    }
                    break;
                }
                Some(Read::Failed(e)) => {
                    let _ = tx.finish(Some(&RemoteError::from(e))).await;
                    break;
                }
                None => break,
            },
            // The client aborted (or sent something else than it should): stop.
            p = rx.recv() => {
                let _ = p;
                break;
            }
        }
    }
    drop(drx);
    let _ = disk.await;
    drop(held);
}

fn read_loop(file: &File, mut pos: u64, end: u64, sparse: bool, out: &mpsc::Sender<Read>) {
    let fail = |what: &str, e| {
        Read::Failed(StorageError::io(
            format!("volume download: cannot {what}"),
            e,
        ))
    };
    while pos < end {
        if sparse {
            match next_data(file, pos, end) {
                Ok(data) if data > pos => {
                    if out.blocking_send(Read::Hole(data - pos)).is_err() {
                        return;
                    }
                    pos = data;
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = out.blocking_send(fail("find data", e));
                    return;
                }
            }
        }
        // Data up to the next hole (or the end).
        let stop = if sparse {
            next_hole(file, pos, end).unwrap_or(end)
        } else {
            end
        };
        while pos < stop {
            let n = (stop - pos).min(STREAM_CHUNK as u64) as usize;
            let mut buf = vec![0u8; n];
            if let Err(e) = file.read_exact_at(&mut buf, pos) {
                let _ = out.blocking_send(fail("read", e));
                return;
            }
            if out.blocking_send(Read::Data(buf)).is_err() {
                return;
            }
            pos += n as u64;
        }
    }
    let _ = out.blocking_send(Read::End);
}

/// The start of the next data at or after `pos` (`end` when only a hole is left).
fn next_data(file: &File, pos: u64, end: u64) -> std::io::Result<u64> {
    match rustix::fs::seek(file, rustix::fs::SeekFrom::Data(pos)) {
        Ok(r) => Ok(r.min(end)),
        Err(rustix::io::Errno::NXIO) => Ok(end),
        Err(e) => Err(e.into()),
    }
}

/// The start of the next hole at or after `pos`, at most `end`.
fn next_hole(file: &File, pos: u64, end: u64) -> std::io::Result<u64> {
    let r = rustix::fs::seek(file, rustix::fs::SeekFrom::Hole(pos))?;
    Ok(r.min(end))
}
