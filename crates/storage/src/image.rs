//! Disk images: their format read from their own header (never from the file's name), the
//! facts a volume's XML shows, and `qemu-img` to make, copy and resize them.
//!
//! Headers are read natively (a few hundred bytes, no process): qcow2's fields and header
//! extensions give the virtual size, the compat level, lazy refcounts, encryption and the
//! backing file with its recorded format. A backing file without a recorded format is
//! reported as raw and never probed: its contents belong to the guest.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::{Result, StorageError};

const QCOW2_MAGIC: &[u8; 4] = b"QFI\xfb";
const LUKS_MAGIC: &[u8; 6] = b"LUKS\xba\xbe";
/// qcow2 header extension: the backing file's format.
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
/// The most of a header we read.
const HEADER_MAX: usize = 64 * 1024;
/// Longest backing file name qcow2 allows.
const BACKING_NAME_MAX: usize = 1023;

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backing {
    pub path: String,
    /// As recorded in the image; `None` means none was recorded (then treated as raw).
    pub format: Option<String>,
}

/// Reads the format and facts of the image at `path`.
pub fn probe(path: &Path) -> Result<ImageInfo> {
    let mut f = File::open(path)
        .map_err(|e| StorageError::io(format!("cannot open volume '{}'", path.display()), e))?;
    let meta = f
        .metadata()
        .map_err(|e| StorageError::io(format!("cannot stat '{}'", path.display()), e))?;
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
        .map_err(|e| StorageError::io(format!("cannot read '{}'", path.display()), e))?;
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
        parse_qcow2(&head, &mut info)?;
    } else if head.starts_with(LUKS_MAGIC) {
        info.format = "luks".into();
        info.encryption = Some("luks".into());
        // The payload follows the LUKS header: qemu-img knows where.
        if let Ok(v) = qemu_img_info(path, "luks") {
            info.capacity = v["virtual-size"].as_u64().unwrap_or(info.capacity);
        }
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

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn parse_qcow2(h: &[u8], info: &mut ImageInfo) -> Result<()> {
    let bad = || StorageError::Internal("qcow2 header is damaged".into());
    info.format = "qcow2".into();
    let version = be32(h, 4).ok_or_else(bad)?;
    let backing_off = be64(h, 8).ok_or_else(bad)? as usize;
    let backing_len = be32(h, 16).ok_or_else(bad)? as usize;
    let cluster_bits = be32(h, 20).ok_or_else(bad)?;
    info.capacity = be64(h, 24).ok_or_else(bad)?;
    let crypt = be32(h, 32).ok_or_else(bad)?;
    if (9..=21).contains(&cluster_bits) {
        info.cluster_size = Some(1 << cluster_bits);
    }
    if crypt == 2 {
        info.encryption = Some("luks".into());
    } else if crypt == 1 {
        info.encryption = Some("qcow".into());
    }
    let mut ext_start = 72;
    if version >= 3 {
        info.compat = Some("1.1".into());
        let compatible = be64(h, 80).ok_or_else(bad)?;
        info.lazy_refcounts = compatible & 1 != 0;
        ext_start = be32(h, 100).ok_or_else(bad)? as usize;
    } else {
        info.compat = Some("0.10".into());
    }
    let mut backing_format = None;
    // Header extensions: type, length, data padded to 8 bytes; type 0 ends them.
    let mut at = ext_start;
    while let (Some(ty), Some(len)) = (be32(h, at), be32(h, at + 4)) {
        if ty == 0 {
            break;
        }
        let len = len as usize;
        let data = h.get(at + 8..at + 8 + len).ok_or_else(bad)?;
        if ty == EXT_BACKING_FORMAT {
            backing_format = Some(String::from_utf8_lossy(data).into_owned());
        }
        at += 8 + len.div_ceil(8) * 8;
    }
    if backing_off != 0 && backing_len != 0 {
        if backing_len > BACKING_NAME_MAX {
            return Err(bad());
        }
        let name = h
            .get(backing_off..backing_off + backing_len)
            .ok_or_else(bad)?;
        info.backing = Some(Backing {
            path: String::from_utf8_lossy(name).into_owned(),
            format: backing_format,
        });
    }
    Ok(())
}

/// Size of a block device in bytes.
fn block_size(f: &File) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let mut size: u64 = 0;
    // BLKGETSIZE64 = _IOR(0x12, 114, size_t)
    const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
    // SAFETY: the fd is open for the call; the kernel writes one u64 into `size`.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), BLKGETSIZE64, &mut size) };
    (r == 0).then_some(size)
}

/// Preallocation of a new image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prealloc {
    Off,
    Metadata,
    Full,
}

/// What a new image is made with.
#[derive(Debug, Clone, Default)]
pub struct CreateOpts<'a> {
    pub backing: Option<(&'a str, &'a str)>,
    pub compat: Option<&'a str>,
    pub cluster_size: Option<u64>,
    pub lazy_refcounts: bool,
}

/// Formats Vireo makes volumes in.
pub const CREATABLE: &[&str] = &["raw", "qcow2"];

/// Makes a new image of `format` at `path` (which must not exist).
pub fn create(
    path: &Path,
    format: &str,
    capacity: u64,
    prealloc: Prealloc,
    opts: &CreateOpts,
) -> Result<()> {
    if !CREATABLE.contains(&format) {
        return Err(StorageError::Unsupported(format!(
            "creating volumes of format '{format}' is not supported (use raw or qcow2)"
        )));
    }
    let mut o: Vec<String> = Vec::new();
    match (format, prealloc) {
        (_, Prealloc::Off) => {}
        ("raw", Prealloc::Metadata) => {}
        (_, Prealloc::Metadata) => o.push("preallocation=metadata".into()),
        (_, Prealloc::Full) => o.push("preallocation=falloc".into()),
    }
    if format == "qcow2" {
        o.push(format!("compat={}", opts.compat.unwrap_or("1.1")));
        if let Some(c) = opts.cluster_size {
            o.push(format!("cluster_size={c}"));
        }
        if opts.lazy_refcounts {
            o.push("lazy_refcounts=on".into());
        }
    }
    let mut args: Vec<String> = vec!["create".into(), "-q".into(), "-f".into(), format.into()];
    if let Some((b, bf)) = opts.backing {
        args.extend(["-b".into(), b.into(), "-F".into(), bf.into()]);
    }
    if !o.is_empty() {
        args.extend(["-o".into(), o.join(",")]);
    }
    args.push(path_str(path)?.into());
    args.push(capacity.to_string());
    qemu_img(&args)
}

/// Copies `src` (of `src_format`) into a new image at `dst` in `dst_format`, holes kept.
/// With `backing` (path, format) the copy is an overlay on it holding what differs.
pub fn convert(
    src: &Path,
    src_format: &str,
    dst: &Path,
    dst_format: &str,
    prealloc: Prealloc,
    backing: Option<(&str, &str)>,
) -> Result<()> {
    if !CREATABLE.contains(&dst_format) {
        return Err(StorageError::Unsupported(format!(
            "creating volumes of format '{dst_format}' is not supported (use raw or qcow2)"
        )));
    }
    let mut args: Vec<String> = vec![
        "convert".into(),
        "-q".into(),
        "-f".into(),
        src_format.into(),
        "-O".into(),
        dst_format.into(),
    ];
    match (dst_format, prealloc) {
        ("qcow2", Prealloc::Metadata) => {
            args.extend(["-o".into(), "preallocation=metadata".into()])
        }
        (_, Prealloc::Full) => args.extend(["-o".into(), "preallocation=falloc".into()]),
        _ => {}
    }
    if let Some((b, bf)) = backing {
        args.extend(["-B".into(), b.into(), "-F".into(), bf.into()]);
    }
    args.push(path_str(src)?.into());
    args.push(path_str(dst)?.into());
    qemu_img(&args)
}

/// Changes an image's virtual size.
pub fn resize(path: &Path, format: &str, size: u64, shrink: bool, allocate: bool) -> Result<()> {
    let mut args: Vec<String> = vec!["resize".into(), "-q".into(), "-f".into(), format.into()];
    if shrink {
        args.push("--shrink".into());
    }
    if allocate {
        args.push("--preallocation=falloc".into());
    }
    args.push(path_str(path)?.into());
    args.push(size.to_string());
    qemu_img(&args)
}

/// `qemu-img info --output=json`.
pub fn qemu_img_info(path: &Path, format: &str) -> Result<serde_json::Value> {
    let prog = vireo_hostprog::find("qemu-img")?;
    let out = Command::new(prog)
        .args(["info", "--output=json", "-f", format])
        .arg(path)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| StorageError::io("cannot run qemu-img", e))?;
    if !out.status.success() {
        return Err(StorageError::Command(format!(
            "qemu-img info failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| StorageError::Internal(format!("qemu-img info: {e}")))
}

fn qemu_img(args: &[String]) -> Result<()> {
    let prog = vireo_hostprog::find("qemu-img")?;
    let out = Command::new(prog)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| StorageError::io("cannot run qemu-img", e))?;
    if !out.status.success() {
        return Err(StorageError::Command(format!(
            "qemu-img {} failed: {}",
            args.first().map(String::as_str).unwrap_or(""),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .ok_or_else(|| StorageError::InvalidArg(format!("path {} is not UTF-8", p.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_headers_not_names() {
        let dir = tempfile::tempdir().unwrap();
        // A raw file named .qcow2 is raw; sparse: allocation below capacity.
        let raw = dir.path().join("looks.qcow2");
        let f = File::create(&raw).unwrap();
        f.set_len(8 << 20).unwrap();
        let i = probe(&raw).unwrap();
        assert_eq!((i.format.as_str(), i.capacity), ("raw", 8 << 20));
        assert!(i.allocation < i.capacity, "{i:?}");
        assert!(i.backing.is_none());
    }

    #[test]
    fn qcow2_with_backing_file() {
        vireo_hostprog::require("qemu-img");
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.img");
        create(&base, "raw", 1 << 20, Prealloc::Off, &CreateOpts::default()).unwrap();
        let top = dir.path().join("top.raw");
        let opts = CreateOpts {
            backing: Some((base.to_str().unwrap(), "raw")),
            lazy_refcounts: true,
            ..CreateOpts::default()
        };
        create(&top, "qcow2", 4 << 20, Prealloc::Off, &opts).unwrap();
        let i = probe(&top).unwrap();
        assert_eq!(i.format, "qcow2");
        assert_eq!(i.capacity, 4 << 20);
        assert_eq!(i.compat.as_deref(), Some("1.1"));
        assert!(i.lazy_refcounts);
        assert_eq!(i.cluster_size, Some(65536));
        assert_eq!(
            i.backing,
            Some(Backing {
                path: base.to_str().unwrap().into(),
                format: Some("raw".into())
            })
        );
        resize(&top, "qcow2", 8 << 20, false, false).unwrap();
        assert_eq!(probe(&top).unwrap().capacity, 8 << 20);
        assert!(resize(&top, "qcow2", 1 << 20, false, false).is_err());
        let copy = dir.path().join("copy");
        convert(&top, "qcow2", &copy, "raw", Prealloc::Off, None).unwrap();
        let c = probe(&copy).unwrap();
        assert_eq!((c.format.as_str(), c.capacity), ("raw", 8 << 20));
    }

    #[test]
    fn damaged_headers_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad");
        let mut h = QCOW2_MAGIC.to_vec();
        h.extend_from_slice(&3u32.to_be_bytes());
        std::fs::write(&p, &h).unwrap();
        assert!(probe(&p).is_err());
        // A backing name pointing past the header.
        let mut h = vec![0u8; 104];
        h[..4].copy_from_slice(QCOW2_MAGIC);
        h[4..8].copy_from_slice(&2u32.to_be_bytes());
        h[8..16].copy_from_slice(&5000u64.to_be_bytes());
        h[16..20].copy_from_slice(&10u32.to_be_bytes());
        std::fs::write(&p, &h).unwrap();
        assert!(probe(&p).is_err());
    }
}
