//! Disk image files as the drivers read them: the format, the sizes and the backing
//! chain, from the images' own headers (never from a file's name).
//!
//! Headers are read natively (a few hundred bytes, no process): qcow2's fields and header
//! extensions give the virtual size, the compat level, lazy refcounts, encryption and the
//! backing file with its recorded format. A backing file without a recorded format is
//! taken as raw and never probed: its contents may be the guest's to write, and a guest
//! must not be able to make the host read its disk as another format.
//!
//! The storage driver uses this for its volumes; the QEMU driver (in the shim) for the
//! backing chain of a disk, so that QEMU is told every layer's format.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

const QCOW2_MAGIC: &[u8; 4] = b"QFI\xfb";
const LUKS_MAGIC: &[u8; 6] = b"LUKS\xba\xbe";
/// qcow2 header extension: the backing file's format.
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
/// The most of a header we read.
const HEADER_MAX: usize = 64 * 1024;
/// Longest backing file name qcow2 allows.
const BACKING_NAME_MAX: usize = 1023;
/// Deepest backing chain followed.
pub const CHAIN_MAX: usize = 16;

#[derive(Debug, Error)]
pub enum ImageError {
    #[error("{what}: {err}")]
    Io {
        what: String,
        #[source]
        err: std::io::Error,
    },
    #[error("{0}: the image header is damaged")]
    Damaged(String),
    #[error("{0}")]
    Chain(String),
}

pub type Result<T> = std::result::Result<T, ImageError>;

fn io(what: String, err: std::io::Error) -> ImageError {
    ImageError::Io { what, err }
}

/// What an image's header says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageInfo {
    /// `raw`, `qcow2`, `luks`, `vmdk`, `vdi`, `vpc`, `qed`, `iso`.
    pub format: String,
    /// The size the guest sees, in bytes.
    pub capacity: u64,
    /// Bytes the file occupies on disk.
    pub allocation: u64,
    /// The file's (or device's) size in bytes.
    pub physical: u64,
    pub backing: Option<Backing>,
    /// `1.1` (qcow2 v3) or `0.10` (v2).
    pub compat: Option<String>,
    pub lazy_refcounts: bool,
    pub cluster_size: Option<u64>,
    /// `luks` when the image's contents are encrypted (qcow2 with LUKS, or a LUKS image).
    pub encryption: Option<String>,
    pub is_block: bool,
}

/// A backing file as an image records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backing {
    pub path: String,
    /// As recorded in the image; `None` means none was recorded (then taken as raw).
    pub format: Option<String>,
}

/// Reads the format and facts of the image at `path`.
pub fn probe(path: &Path) -> Result<ImageInfo> {
    let shown = || path.display().to_string();
    let mut f = File::open(path).map_err(|e| io(format!("cannot open '{}'", shown()), e))?;
    let meta = f
        .metadata()
        .map_err(|e| io(format!("cannot stat '{}'", shown()), e))?;
    let is_block = meta.file_type().is_block_device();
    let physical = if is_block {
        block_size(&f).unwrap_or(0)
    } else {
        meta.len()
    };
    let mut head = Vec::with_capacity(4096);
    (&mut f)
        .take(HEADER_MAX as u64)
        .read_to_end(&mut head)
        .map_err(|e| io(format!("cannot read '{}'", shown()), e))?;
    let mut info = ImageInfo {
        format: "raw".into(),
        capacity: physical,
        allocation: if is_block {
            physical
        } else {
            meta.blocks() * 512
        },
        physical,
        is_block,
        ..ImageInfo::default()
    };
    if head.starts_with(QCOW2_MAGIC) {
        parse_qcow2(&head, &mut info).ok_or_else(|| ImageError::Damaged(shown()))?;
    } else if head.starts_with(LUKS_MAGIC) {
        info.format = "luks".into();
        info.encryption = Some("luks".into());
        // LUKS1: the payload starts `payload-offset` sectors in.
        let sectors = be32(&head, 104).ok_or_else(|| ImageError::Damaged(shown()))?;
        info.capacity = physical.saturating_sub(u64::from(sectors) * 512);
    } else if head.starts_with(b"KDMV") {
        info.format = "vmdk".into();
    } else if head.starts_with(b"QED\0") {
        info.format = "qed".into();
    } else if head.starts_with(b"conectix") {
        info.format = "vpc".into();
    } else if head.get(64..68) == Some(&[0x7f, 0x10, 0xda, 0xbe]) {
        info.format = "vdi".into();
    } else if head.get(0x8001..0x8006) == Some(b"CD001") {
        info.format = "iso".into();
    }
    Ok(info)
}

/// One layer of a disk: a file and the format to open it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub path: PathBuf,
    pub format: String,
}

/// The backing chain of the image at `path`, opened as `format`: the image itself first,
/// then each backing file with the format its overlay records (raw when none is). Only
/// qcow2 layers are read for a backing file: a raw layer is never looked into.
pub fn chain(path: &Path, format: &str) -> Result<Vec<Layer>> {
    let mut out = vec![Layer {
        path: path.to_path_buf(),
        format: format.to_string(),
    }];
    loop {
        let last = &out[out.len() - 1];
        if last.format != "qcow2" {
            return Ok(out);
        }
        let info = probe(&last.path)?;
        if info.format != "qcow2" {
            return Err(ImageError::Chain(format!(
                "'{}' was given as qcow2 but its header says {}",
                last.path.display(),
                info.format
            )));
        }
        let Some(b) = info.backing else {
            return Ok(out);
        };
        let p = Path::new(&b.path);
        let next = if p.is_absolute() {
            p.to_path_buf()
        } else {
            last.path.parent().unwrap_or(Path::new("/")).join(p)
        };
        if out.iter().any(|l| l.path == next) {
            return Err(ImageError::Chain(format!(
                "the backing chain of '{}' loops at '{}'",
                path.display(),
                next.display()
            )));
        }
        if out.len() >= CHAIN_MAX {
            return Err(ImageError::Chain(format!(
                "the backing chain of '{}' is deeper than {CHAIN_MAX}",
                path.display()
            )));
        }
        out.push(Layer {
            path: next,
            format: b.format.unwrap_or_else(|| "raw".into()),
        });
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The qcow2 header fields and extensions; `None` when they do not fit the data read.
fn parse_qcow2(h: &[u8], info: &mut ImageInfo) -> Option<()> {
    info.format = "qcow2".into();
    let version = be32(h, 4)?;
    let backing_off = usize::try_from(be64(h, 8)?).ok()?;
    let backing_len = be32(h, 16)? as usize;
    let cluster_bits = be32(h, 20)?;
    info.capacity = be64(h, 24)?;
    let crypt = be32(h, 32)?;
    if (9..=21).contains(&cluster_bits) {
        info.cluster_size = Some(1 << cluster_bits);
    }
    info.encryption = match crypt {
        2 => Some("luks".into()),
        1 => Some("qcow".into()),
        _ => None,
    };
    let mut at = 72;
    if version >= 3 {
        info.compat = Some("1.1".into());
        info.lazy_refcounts = be64(h, 80)? & 1 != 0;
        at = be32(h, 100)? as usize;
    } else {
        info.compat = Some("0.10".into());
    }
    let mut backing_format = None;
    // Header extensions: type, length, data padded to 8 bytes; type 0 ends them.
    while let (Some(ty), Some(len)) = (be32(h, at), be32(h, at + 4)) {
        if ty == 0 {
            break;
        }
        let len = len as usize;
        let data = h.get(at + 8..(at + 8).checked_add(len)?)?;
        if ty == EXT_BACKING_FORMAT {
            backing_format = Some(String::from_utf8_lossy(data).into_owned());
        }
        at = at.checked_add(8 + len.div_ceil(8) * 8)?;
    }
    if backing_off != 0 && backing_len != 0 {
        if backing_len > BACKING_NAME_MAX {
            return None;
        }
        let name = h.get(backing_off..backing_off.checked_add(backing_len)?)?;
        info.backing = Some(Backing {
            path: String::from_utf8_lossy(name).into_owned(),
            format: backing_format,
        });
    }
    Some(())
}

/// Size of a block device in bytes.
fn block_size(f: &File) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let mut size: u64 = 0;
    // BLKGETSIZE64 = _IOR(0x12, 114, size_t)
    const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
    // SAFETY: ioctl: the fd is open for the call; the kernel writes one u64 into `size`.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), BLKGETSIZE64, &mut size) };
    (r == 0).then_some(size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn qemu_img(args: &[&str]) {
        let st = Command::new(vireo_hostprog::require("qemu-img"))
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "qemu-img {args:?}");
    }

    #[test]
    fn formats_come_from_headers_not_names() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("looks.qcow2");
        let f = File::create(&raw).unwrap();
        f.set_len(8 << 20).unwrap();
        let i = probe(&raw).unwrap();
        assert_eq!((i.format.as_str(), i.capacity), ("raw", 8 << 20));
        assert!(i.allocation < i.capacity, "{i:?}");
    }

    #[test]
    fn chains_follow_recorded_formats_and_stop_at_raw() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        let s = |n: &str| p(n).to_str().unwrap().to_string();
        // base (raw, but holding a qcow2 header: a guest could write one) ← mid ← top.
        qemu_img(&["create", "-q", "-f", "qcow2", &s("base"), "1M"]);
        qemu_img(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            &s("base"),
            "-F",
            "raw",
            &s("mid"),
            "1M",
        ]);
        qemu_img(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "mid",
            "-F",
            "qcow2",
            &s("top"),
            "2M",
        ]);
        let c = chain(&p("top"), "qcow2").unwrap();
        let got: Vec<(PathBuf, &str)> = c
            .iter()
            .map(|l| (l.path.clone(), l.format.as_str()))
            .collect();
        assert_eq!(
            got,
            [(p("top"), "qcow2"), (p("mid"), "qcow2"), (p("base"), "raw")],
            "the raw base is not probed"
        );
        let i = probe(&p("top")).unwrap();
        assert_eq!((i.capacity, i.compat.as_deref()), (2 << 20, Some("1.1")));
        // Given as qcow2 but raw: refused, not guessed.
        File::create(p("plain")).unwrap().set_len(1 << 20).unwrap();
        assert!(chain(&p("plain"), "qcow2").is_err());
        assert_eq!(chain(&p("plain"), "raw").unwrap().len(), 1);
        // A loop.
        qemu_img(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            &s("loop2"),
            "-F",
            "qcow2",
            "-u",
            &s("loop1"),
            "1M",
        ]);
        qemu_img(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            &s("loop1"),
            "-F",
            "qcow2",
            "-u",
            &s("loop2"),
            "1M",
        ]);
        assert!(chain(&p("loop1"), "qcow2").is_err());
    }

    #[test]
    fn damaged_headers_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad");
        let mut h = QCOW2_MAGIC.to_vec();
        h.extend_from_slice(&3u32.to_be_bytes());
        std::fs::write(&p, &h).unwrap();
        assert!(probe(&p).is_err());
        let mut h = vec![0u8; 104];
        h[..4].copy_from_slice(QCOW2_MAGIC);
        h[4..8].copy_from_slice(&2u32.to_be_bytes());
        h[8..16].copy_from_slice(&u64::MAX.to_be_bytes());
        h[16..20].copy_from_slice(&10u32.to_be_bytes());
        std::fs::write(&p, &h).unwrap();
        assert!(probe(&p).is_err());
        std::fs::write(&p, LUKS_MAGIC).unwrap();
        assert!(probe(&p).is_err());
    }
}
