//! Storage calls: pools, volumes, and volume uploads and downloads as streams (sparse or
//! dense), reporting progress as they go.

use std::fs::File;
use std::os::unix::fs::FileExt;

use tokio::sync::mpsc::UnboundedReceiver;
use vireo_proto::network::{EventDeregisterAnyArgs, EventRegisterAnyRet};
use vireo_proto::remote::procs;
use vireo_proto::storage::*;
use vireo_proto::{MessageType, RemoteError, Status, REMOTE_PROGRAM, REMOTE_VERSION, STREAM_CHUNK};
use vireo_rpc::client::{CallError, ClientStream};
use vireo_rpc::Frame;
use vireo_xdr::Xdr;

use crate::{ClientError, Connect, Result};

/// One volume's data in a stream: a chunk (of that many bytes, in the buffer), or a hole
/// of that many bytes.
enum Piece {
    Data(usize),
    Hole(u64),
}

/// One storage pool event: a lifecycle event (`event_id` is `event::ID_LIFECYCLE`, `event`
/// one of `event::DEFINED` … `event::DELETED`) or a refresh (`event::ID_REFRESH`, `event`
/// and `detail` 0).
#[derive(Debug, Clone)]
pub struct PoolEvent {
    pub pool: Pool,
    pub event_id: i32,
    pub event: i32,
    pub detail: i32,
}

/// The events of one registration (see [`Connect::pool_events`]).
pub struct PoolEvents {
    rx: UnboundedReceiver<Frame>,
    callback_id: i32,
}

impl PoolEvents {
    /// The daemon's id of this registration.
    pub fn callback_id(&self) -> i32 {
        self.callback_id
    }

    /// The next event of this registration; `None` once the connection is gone. Messages
    /// that are not ours, or that do not decode, are skipped.
    pub async fn next(&mut self) -> Option<PoolEvent> {
        loop {
            let f = self.rx.recv().await?;
            let Some((id, body)) = split_callback(&f.payload) else {
                continue;
            };
            if id != self.callback_id {
                continue;
            }
            match f.header.proc_ {
                procs::STORAGE_POOL_EVENT_LIFECYCLE => {
                    if let Ok(b) = vireo_xdr::from_bytes::<PoolEventLifecycleBody>(body) {
                        return Some(PoolEvent {
                            pool: b.pool,
                            event_id: event::ID_LIFECYCLE,
                            event: b.event,
                            detail: b.detail,
                        });
                    }
                }
                procs::STORAGE_POOL_EVENT_REFRESH => {
                    if let Ok(b) = vireo_xdr::from_bytes::<PoolEventRefreshBody>(body) {
                        return Some(PoolEvent {
                            pool: b.pool,
                            event_id: event::ID_REFRESH,
                            event: 0,
                            detail: 0,
                        });
                    }
                }
                _ => {}
            }
        }
    }
}

/// An object event message: the registration's callback id, then the event's body.
pub(crate) fn split_callback(payload: &[u8]) -> Option<(i32, &[u8])> {
    let id = payload.get(..4)?;
    let id = i32::from_be_bytes(id.try_into().ok()?);
    Some((id, &payload[4..]))
}

impl Connect {
    async fn pool_call<A: Xdr>(&self, proc_: i32, args: &A) -> Result<Pool> {
        let r: PoolRet = self.call(proc_, args).await?;
        Ok(r.pool)
    }

    async fn vol_call<A: Xdr>(&self, proc_: i32, args: &A) -> Result<Vol> {
        let r: VolRet = self.call(proc_, args).await?;
        Ok(r.vol)
    }

    pub async fn list_all_pools(&self, flags: u32) -> Result<Vec<Pool>> {
        let r: ListAllPoolsRet = self
            .call(
                procs::CONNECT_LIST_ALL_STORAGE_POOLS,
                &ListAllPoolsArgs {
                    need_results: 1,
                    flags,
                },
            )
            .await?;
        Ok(r.pools.0)
    }

    pub async fn pool_lookup_by_name(&self, name: &str) -> Result<Pool> {
        self.pool_call(
            procs::STORAGE_POOL_LOOKUP_BY_NAME,
            &NameArgs { name: name.into() },
        )
        .await
    }

    /// A pool by name, else by UUID (as virsh looks them up).
    pub async fn pool_lookup(&self, key: &str) -> Result<Pool> {
        match self.pool_lookup_by_name(key).await {
            Ok(p) => Ok(p),
            Err(e) => match crate::uri::parse_uuid(key) {
                Some(uuid) => {
                    self.pool_call(procs::STORAGE_POOL_LOOKUP_BY_UUID, &UuidArgs { uuid })
                        .await
                }
                None => Err(e),
            },
        }
    }

    pub async fn pool_lookup_by_uuid(&self, uuid: &vireo_proto::remote::Uuid) -> Result<Pool> {
        self.pool_call(
            procs::STORAGE_POOL_LOOKUP_BY_UUID,
            &UuidArgs { uuid: *uuid },
        )
        .await
    }

    /// The pool that holds `vol`.
    pub async fn pool_lookup_by_volume(&self, vol: &Vol) -> Result<Pool> {
        self.pool_call(
            procs::STORAGE_POOL_LOOKUP_BY_VOLUME,
            &VolArgs { vol: vol.clone() },
        )
        .await
    }

    pub async fn pool_is_active(&self, pool: &Pool) -> Result<bool> {
        let r: ActiveRet = self
            .call(
                procs::STORAGE_POOL_IS_ACTIVE,
                &PoolArgs { pool: pool.clone() },
            )
            .await?;
        Ok(r.active != 0)
    }

    /// The `<sources>` document of the pools of `pool_type` the host could have
    /// (`spec`: a `<source>` document narrowing the search).
    pub async fn find_storage_pool_sources(
        &self,
        pool_type: &str,
        spec: Option<&str>,
        flags: u32,
    ) -> Result<String> {
        let r: XmlRet = self
            .call(
                procs::CONNECT_FIND_STORAGE_POOL_SOURCES,
                &FindPoolSourcesArgs {
                    type_: pool_type.into(),
                    src_spec: spec.map(str::to_string),
                    flags,
                },
            )
            .await?;
        Ok(r.xml)
    }

    /// The storage driver's `<storagepoolCapabilities>` document.
    pub async fn storage_pool_capabilities(&self) -> Result<String> {
        let r: CapabilitiesRet = self
            .call(
                procs::CONNECT_GET_STORAGE_POOL_CAPABILITIES,
                &FlagsArgs { flags: 0 },
            )
            .await?;
        Ok(r.capabilities)
    }

    /// Registers for the pool events of `event_id` (`event::ID_LIFECYCLE` or
    /// `event::ID_REFRESH`) of `pool`, or of every pool, and returns them as they come.
    /// Takes this connection's event stream: one registration per connection.
    pub async fn pool_events(&self, pool: Option<&Pool>, event_id: i32) -> Result<PoolEvents> {
        let rx = self.connection().events();
        let r: EventRegisterAnyRet = self
            .call(
                procs::CONNECT_STORAGE_POOL_EVENT_REGISTER_ANY,
                &PoolEventRegisterAnyArgs {
                    event_id,
                    pool: pool.cloned(),
                },
            )
            .await?;
        Ok(PoolEvents {
            rx,
            callback_id: r.callback_id,
        })
    }

    pub async fn pool_event_deregister(&self, callback_id: i32) -> Result<()> {
        self.call(
            procs::CONNECT_STORAGE_POOL_EVENT_DEREGISTER_ANY,
            &EventDeregisterAnyArgs { callback_id },
        )
        .await
    }

    pub async fn pool_define_xml(&self, xml: &str) -> Result<Pool> {
        self.pool_call(
            procs::STORAGE_POOL_DEFINE_XML,
            &XmlFlagsArgs {
                xml: xml.into(),
                flags: 0,
            },
        )
        .await
    }

    pub async fn pool_create_xml(&self, xml: &str, flags: u32) -> Result<Pool> {
        self.pool_call(
            procs::STORAGE_POOL_CREATE_XML,
            &XmlFlagsArgs {
                xml: xml.into(),
                flags,
            },
        )
        .await
    }

    /// Pool calls that take the pool and flags and return nothing: start (78), build (79),
    /// delete (81), refresh (83).
    pub async fn pool_flags_call(&self, proc_: i32, pool: &Pool, flags: u32) -> Result<()> {
        self.call(
            proc_,
            &PoolFlagsArgs {
                pool: pool.clone(),
                flags,
            },
        )
        .await
    }

    /// Pool calls that take just the pool and return nothing: destroy (80), undefine (82).
    pub async fn pool_void_call(&self, proc_: i32, pool: &Pool) -> Result<()> {
        self.call(proc_, &PoolArgs { pool: pool.clone() }).await
    }

    pub async fn pool_info(&self, pool: &Pool) -> Result<PoolGetInfoRet> {
        self.call(
            procs::STORAGE_POOL_GET_INFO,
            &PoolArgs { pool: pool.clone() },
        )
        .await
    }

    pub async fn pool_xml_desc(&self, pool: &Pool, flags: u32) -> Result<String> {
        let r: XmlRet = self
            .call(
                procs::STORAGE_POOL_GET_XML_DESC,
                &PoolFlagsArgs {
                    pool: pool.clone(),
                    flags,
                },
            )
            .await?;
        Ok(r.xml)
    }

    pub async fn pool_autostart(&self, pool: &Pool) -> Result<bool> {
        let r: AutostartRet = self
            .call(
                procs::STORAGE_POOL_GET_AUTOSTART,
                &PoolArgs { pool: pool.clone() },
            )
            .await?;
        Ok(r.autostart != 0)
    }

    pub async fn pool_set_autostart(&self, pool: &Pool, on: bool) -> Result<()> {
        self.call(
            procs::STORAGE_POOL_SET_AUTOSTART,
            &PoolSetAutostartArgs {
                pool: pool.clone(),
                autostart: on as i32,
            },
        )
        .await
    }

    pub async fn pool_is_persistent(&self, pool: &Pool) -> Result<bool> {
        let r: PersistentRet = self
            .call(
                procs::STORAGE_POOL_IS_PERSISTENT,
                &PoolArgs { pool: pool.clone() },
            )
            .await?;
        Ok(r.persistent != 0)
    }

    pub async fn list_all_volumes(&self, pool: &Pool) -> Result<Vec<Vol>> {
        let r: ListAllVolumesRet = self
            .call(
                procs::STORAGE_POOL_LIST_ALL_VOLUMES,
                &ListAllVolumesArgs {
                    pool: pool.clone(),
                    need_results: 1,
                    flags: 0,
                },
            )
            .await?;
        Ok(r.vols.0)
    }

    /// A volume: by name in `pool`, or (without a pool) by path, then by key.
    pub async fn vol_lookup(&self, pool: Option<&Pool>, key: &str) -> Result<Vol> {
        if let Some(p) = pool {
            return self
                .vol_call(
                    procs::STORAGE_VOL_LOOKUP_BY_NAME,
                    &VolLookupByNameArgs {
                        pool: p.clone(),
                        name: key.into(),
                    },
                )
                .await;
        }
        match self
            .vol_call(
                procs::STORAGE_VOL_LOOKUP_BY_PATH,
                &PathArgs { path: key.into() },
            )
            .await
        {
            Ok(v) => Ok(v),
            Err(_) => {
                self.vol_call(
                    procs::STORAGE_VOL_LOOKUP_BY_KEY,
                    &KeyArgs { key: key.into() },
                )
                .await
            }
        }
    }

    pub async fn vol_lookup_by_name(&self, pool: &Pool, name: &str) -> Result<Vol> {
        self.vol_call(
            procs::STORAGE_VOL_LOOKUP_BY_NAME,
            &VolLookupByNameArgs {
                pool: pool.clone(),
                name: name.into(),
            },
        )
        .await
    }

    pub async fn vol_lookup_by_key(&self, key: &str) -> Result<Vol> {
        self.vol_call(
            procs::STORAGE_VOL_LOOKUP_BY_KEY,
            &KeyArgs { key: key.into() },
        )
        .await
    }

    pub async fn vol_lookup_by_path(&self, path: &str) -> Result<Vol> {
        self.vol_call(
            procs::STORAGE_VOL_LOOKUP_BY_PATH,
            &PathArgs { path: path.into() },
        )
        .await
    }

    pub async fn vol_create_xml(&self, pool: &Pool, xml: &str, flags: u32) -> Result<Vol> {
        self.vol_call(
            procs::STORAGE_VOL_CREATE_XML,
            &VolCreateXmlArgs {
                pool: pool.clone(),
                xml: xml.into(),
                flags,
            },
        )
        .await
    }

    pub async fn vol_create_xml_from(
        &self,
        pool: &Pool,
        xml: &str,
        src: &Vol,
        flags: u32,
    ) -> Result<Vol> {
        self.vol_call(
            procs::STORAGE_VOL_CREATE_XML_FROM,
            &VolCreateXmlFromArgs {
                pool: pool.clone(),
                xml: xml.into(),
                clonevol: src.clone(),
                flags,
            },
        )
        .await
    }

    pub async fn vol_delete(&self, vol: &Vol) -> Result<()> {
        self.call(
            procs::STORAGE_VOL_DELETE,
            &VolFlagsArgs {
                vol: vol.clone(),
                flags: 0,
            },
        )
        .await
    }

    pub async fn vol_wipe(&self, vol: &Vol, algorithm: u32) -> Result<()> {
        self.call(
            procs::STORAGE_VOL_WIPE_PATTERN,
            &VolWipePatternArgs {
                vol: vol.clone(),
                algorithm,
                flags: 0,
            },
        )
        .await
    }

    pub async fn vol_resize(&self, vol: &Vol, capacity: u64, flags: u32) -> Result<()> {
        self.call(
            procs::STORAGE_VOL_RESIZE,
            &VolResizeArgs {
                vol: vol.clone(),
                capacity,
                flags,
            },
        )
        .await
    }

    pub async fn vol_info(&self, vol: &Vol) -> Result<VolGetInfoRet> {
        self.call(procs::STORAGE_VOL_GET_INFO, &VolArgs { vol: vol.clone() })
            .await
    }

    /// `virStorageVolGetInfoFlags`: with `GET_PHYSICAL`, the allocation is the host
    /// file's size.
    pub async fn vol_info_flags(&self, vol: &Vol, flags: u32) -> Result<VolGetInfoRet> {
        self.call(
            procs::STORAGE_VOL_GET_INFO_FLAGS,
            &VolFlagsArgs {
                vol: vol.clone(),
                flags,
            },
        )
        .await
    }

    pub async fn vol_xml_desc(&self, vol: &Vol) -> Result<String> {
        let r: XmlRet = self
            .call(
                procs::STORAGE_VOL_GET_XML_DESC,
                &VolFlagsArgs {
                    vol: vol.clone(),
                    flags: 0,
                },
            )
            .await?;
        Ok(r.xml)
    }

    pub async fn vol_path(&self, vol: &Vol) -> Result<String> {
        let r: VolGetPathRet = self
            .call(procs::STORAGE_VOL_GET_PATH, &VolArgs { vol: vol.clone() })
            .await?;
        Ok(r.name)
    }

    async fn open_transfer(
        &self,
        proc_: i32,
        vol: &Vol,
        offset: u64,
        length: u64,
        sparse: bool,
    ) -> Result<ClientStream> {
        let args = VolTransferArgs {
            vol: vol.clone(),
            offset,
            length,
            flags: if sparse { SPARSE_STREAM } else { 0 },
        };
        let (_, stream) = self
            .connection()
            .call_stream(REMOTE_PROGRAM, REMOTE_VERSION, proc_, |o| args.encode(o))
            .await?;
        Ok(stream)
    }

    /// Sends `file` into `vol` at `offset` (holes as holes when `sparse`); `progress` is
    /// told the bytes done so far (holes included).
    pub async fn vol_upload(
        &self,
        vol: &Vol,
        file: &File,
        offset: u64,
        sparse: bool,
        mut progress: impl FnMut(u64),
    ) -> Result<()> {
        let mut stream = self
            .open_transfer(procs::STORAGE_VOL_UPLOAD, vol, offset, 0, sparse)
            .await?;
        let len = file
            .metadata()
            .map_err(|e| ClientError::Uri(format!("cannot stat the file: {e}")))?
            .len();
        let mut pos = 0u64;
        // One buffer for the whole transfer.
        let mut buf = vec![0u8; STREAM_CHUNK];
        while pos < len {
            let piece = next_piece(file, pos, len, sparse, &mut buf)
                .map_err(|e| ClientError::Uri(format!("cannot read the file: {e}")))?;
            let sent = match piece {
                Piece::Data(n) => {
                    stream.send_data(&buf[..n]).await?;
                    n as u64
                }
                Piece::Hole(n) => {
                    stream.send_hole(n).await?;
                    n
                }
            };
            pos += sent;
            progress(pos);
        }
        stream.send(MessageType::Stream, Status::Ok, &[]).await?;
        // The daemon confirms once the data is on its disk (or says what went wrong).
        finish(&mut stream).await
    }

    /// Receives `vol` (from `offset`, `length` bytes or to its end) into `file`, holes as
    /// holes when `sparse`; `progress` is told the bytes done so far.
    pub async fn vol_download(
        &self,
        vol: &Vol,
        file: &File,
        offset: u64,
        length: u64,
        sparse: bool,
        mut progress: impl FnMut(u64),
    ) -> Result<()> {
        let mut stream = self
            .open_transfer(procs::STORAGE_VOL_DOWNLOAD, vol, offset, length, sparse)
            .await?;
        let mut pos = 0u64;
        let io = |e: std::io::Error| ClientError::Uri(format!("cannot write the file: {e}"));
        loop {
            let f = stream.recv().await.ok_or(CallError::Closed)?;
            let h = f.header;
            if h.status == Status::Error as i32 {
                return Err(remote_error(&f.payload));
            }
            match h.message_type() {
                Some(MessageType::StreamHole) => {
                    let n = f
                        .payload
                        .get(..8)
                        .and_then(|b| b.try_into().ok())
                        .map(u64::from_be_bytes)
                        .unwrap_or(0);
                    pos += n;
                    file.set_len(pos).map_err(io)?;
                }
                _ if f.payload.is_empty() => break,
                _ => {
                    file.write_all_at(&f.payload, pos).map_err(io)?;
                    pos += f.payload.len() as u64;
                }
            }
            progress(pos);
        }
        file.set_len(pos).map_err(io)?;
        stream.send(MessageType::Stream, Status::Ok, &[]).await?;
        finish(&mut stream).await
    }
}

/// Waits for the daemon's last packet of a stream: OK, or an error.
pub(crate) async fn finish(stream: &mut ClientStream) -> Result<()> {
    loop {
        let f = stream.recv().await.ok_or(CallError::Closed)?;
        match f.header.status {
            s if s == Status::Ok as i32 => return Ok(()),
            s if s == Status::Error as i32 => return Err(remote_error(&f.payload)),
            _ => {}
        }
    }
}

pub(crate) fn remote_error(payload: &[u8]) -> ClientError {
    match vireo_xdr::from_bytes::<RemoteError>(payload) {
        Ok(e) => ClientError::Remote(Box::new(e)),
        Err(e) => ClientError::Call(CallError::Decode(e)),
    }
}

/// The next piece of `file` at `pos`: data up to the next hole (at most a chunk, read into
/// `buf`), or the hole there when `sparse`.
fn next_piece(
    file: &File,
    pos: u64,
    len: u64,
    sparse: bool,
    buf: &mut [u8],
) -> std::io::Result<Piece> {
    let mut end = len;
    if sparse {
        use rustix::fs::{seek, SeekFrom};
        let data = seek(file, SeekFrom::Data(pos)).unwrap_or(len);
        if data > pos {
            return Ok(Piece::Hole(data.min(len) - pos));
        }
        if let Ok(hole) = seek(file, SeekFrom::Hole(pos)) {
            if hole > 0 {
                end = hole.min(len);
            }
        }
    }
    let n = (end - pos).min(buf.len() as u64) as usize;
    file.read_exact_at(&mut buf[..n], pos)?;
    Ok(Piece::Data(n))
}
