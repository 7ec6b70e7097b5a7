//! A restore as a job: while a VM starts from a save image (`virsh restore`, a start from
//! a managed save, a revert to a snapshot with its memory in a file), `domjobinfo` shows
//! how far QEMU has read the image. The daemon keeps a duplicate of the descriptor it
//! gave QEMU: both share one file offset, which is QEMU's progress.

use std::collections::HashMap;
use std::fs::File;
use std::io::Seek;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use vireo_proto::remote::{procs, Domain as Handle, DomainGetJobInfoRet, DomainGetJobStatsRet};
use vireo_proto::typed::{TypedParam, TypedValue};

use crate::driver::QemuDriver;

/// `VIR_DOMAIN_JOB_BOUNDED`: a job whose total is known.
const BOUNDED: i32 = 1;
/// `VIR_DOMAIN_JOB_OPERATION_RESTORE`.
const OPERATION_RESTORE: i32 = 3;

/// One restore in progress.
struct Restoring {
    file: File,
    start: u64,
    end: u64,
    began: Instant,
}

/// The restores in progress, by domain UUID.
#[derive(Default)]
pub(crate) struct Restores(Mutex<HashMap<[u8; 16], Restoring>>);

impl Restoring {
    /// (total, processed, remaining) bytes of the image's stream, and the time so far.
    fn progress(&self) -> (u64, u64, u64, u64) {
        let at = (&self.file).stream_position().unwrap_or(self.start);
        let total = self.end.saturating_sub(self.start);
        let done = at.saturating_sub(self.start).min(total);
        let ms = u64::try_from(self.began.elapsed().as_millis()).unwrap_or(u64::MAX);
        (total, done, total - done, ms)
    }
}

/// Forgets the restore when the start it belongs to ends, whichever way.
pub(crate) struct Tracked {
    driver: Arc<QemuDriver>,
    uuid: [u8; 16],
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Ok(mut m) = self.driver.restores.0.lock() {
            m.remove(&self.uuid);
        }
    }
}

impl QemuDriver {
    /// Follows the restore of `uuid` from `image` (at its stream's offset) until the
    /// returned guard goes.
    pub(crate) fn track_restore(
        self: &Arc<Self>,
        uuid: [u8; 16],
        image: &OwnedFd,
    ) -> Option<Tracked> {
        let file = File::from(image.try_clone().ok()?);
        let start = (&file).stream_position().ok()?;
        let end = file.metadata().ok()?.len();
        self.restores.0.lock().ok()?.insert(
            uuid,
            Restoring {
                file,
                start,
                end,
                began: Instant::now(),
            },
        );
        Some(Tracked {
            driver: Arc::clone(self),
            uuid,
        })
    }

    /// GET_JOB_INFO or GET_JOB_STATS of a domain being restored (None: it is not).
    pub fn restore_job(&self, h: &Handle, p: i32) -> Option<Vec<u8>> {
        let m = self.restores.0.lock().ok()?;
        let (total, done, left, ms) = m.get(&h.uuid)?.progress();
        let remaining_ms = if done == 0 {
            0
        } else {
            u64::try_from(u128::from(ms) * u128::from(left) / u128::from(done)).unwrap_or(0)
        };
        if p == procs::DOMAIN_GET_JOB_INFO {
            return Some(vireo_xdr::to_bytes(&DomainGetJobInfoRet {
                type_: BOUNDED,
                time_elapsed: ms,
                time_remaining: remaining_ms,
                data_total: total,
                data_processed: done,
                data_remaining: left,
                mem_total: total,
                mem_processed: done,
                mem_remaining: left,
                ..Default::default()
            }));
        }
        let u = |f: &str, v: u64| TypedParam::new(f, TypedValue::ULLong(v));
        Some(vireo_xdr::to_bytes(&DomainGetJobStatsRet {
            type_: BOUNDED,
            params: vireo_xdr::Array(vec![
                TypedParam::int("operation", OPERATION_RESTORE),
                u("time_elapsed", ms),
                u("time_remaining", remaining_ms),
                u("data_total", total),
                u("data_processed", done),
                u("data_remaining", left),
                u("memory_total", total),
                u("memory_processed", done),
                u("memory_remaining", left),
            ]),
        }))
    }
}
