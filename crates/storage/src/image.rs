//! Making, copying and resizing disk images with `qemu-img`. What an image is (format,
//! sizes, backing file) is read from its header by `vireo-storagefile`.

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

pub use vireo_storagefile::{Backing, ImageInfo};

use crate::error::{Result, StorageError};

/// Reads the format and facts of the image at `path` from its header.
pub fn probe(path: &Path) -> Result<ImageInfo> {
    vireo_storagefile::probe(path).map_err(StorageError::from)
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
    /// Encrypt the contents with LUKS under this passphrase (a raw volume becomes a LUKS
    /// image; a qcow2 one is encrypted inside). It reaches qemu-img through a pipe, never
    /// its command line or a file.
    pub luks_passphrase: Option<&'a [u8]>,
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
    let image_format = match (format, opts.luks_passphrase) {
        ("raw", Some(_)) => {
            o.push("key-secret=sec0".into());
            "luks"
        }
        (_, Some(_)) => {
            o.push("encrypt.format=luks".into());
            o.push("encrypt.key-secret=sec0".into());
            format
        }
        _ => format,
    };
    let mut args: Vec<String> = vec![
        "create".into(),
        "-q".into(),
        "-f".into(),
        image_format.into(),
    ];
    if opts.luks_passphrase.is_some() {
        args.extend([
            "--object".into(),
            format!("secret,id=sec0,file=/dev/fd/{SECRET_FD},format=raw"),
        ]);
    }
    if let Some((b, bf)) = opts.backing {
        args.extend(["-b".into(), b.into(), "-F".into(), bf.into()]);
    }
    if !o.is_empty() {
        args.extend(["-o".into(), o.join(",")]);
    }
    args.push(path_str(path)?.into());
    args.push(capacity.to_string());
    // Making a LUKS header times a first round of key derivation by the thread's CPU time,
    // which the kernel brings up to date only at a tick or a switch: on a fast CPU that
    // round can end between two ticks, read as 0 ms, and QEMU gives up. Each try is a
    // fresh chance (a few ms); CI saw five in a row fail, so allow many.
    let mut tries = 0;
    loop {
        match run_qemu_img(&args, opts.luks_passphrase) {
            Err(StorageError::Command(m))
                if tries < LUKS_TRIES && m.contains("Unable to get accurate CPU usage") =>
            {
                tries += 1;
                let _ = std::fs::remove_file(path);
            }
            r => return r,
        }
    }
}

/// How many times making a LUKS header is tried before QEMU's timing refusal is final.
const LUKS_TRIES: u32 = 40;

/// The fd a passphrase reaches qemu-img on.
const SECRET_FD: i32 = 3;

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

/// Copies `src` (of `src_format`) into the existing raw device or file `dst`.
pub fn convert_into(src: &Path, src_format: &str, dst: &Path) -> Result<()> {
    qemu_img(&[
        "convert".into(),
        "-q".into(),
        "-n".into(),
        "-f".into(),
        src_format.into(),
        "-O".into(),
        "raw".into(),
        path_str(src)?.into(),
        path_str(dst)?.into(),
    ])
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

fn qemu_img(args: &[String]) -> Result<()> {
    run_qemu_img(args, None)
}

/// Runs qemu-img; a `secret` is the whole content of fd 3 (a pipe, written and closed
/// before qemu-img runs: it is at most 64 KiB, what a pipe holds).
fn run_qemu_img(args: &[String], secret: Option<&[u8]>) -> Result<()> {
    let prog = vireo_hostprog::find("qemu-img")?;
    let mut cmd = Command::new(prog);
    cmd.args(args).env("LC_ALL", "C").stdin(Stdio::null());
    let _pipe_end = match secret {
        Some(s) => {
            let r = vireo_fdpass::pipe_with(s)
                .map_err(|e| StorageError::io("cannot pass the passphrase to qemu-img", e))?;
            let raw = r.as_raw_fd();
            // SAFETY: fork/exec: between fork and exec only inherit_as (async-signal-safe fcntl and
            // dup2) runs, on an fd open in the child.
            unsafe {
                cmd.pre_exec(move || vireo_fdpass::inherit_as(raw, SECRET_FD));
            }
            Some(r)
        }
        None => None,
    };
    let out = cmd
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
}
