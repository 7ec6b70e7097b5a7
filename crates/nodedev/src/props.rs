//! A device's properties as udev gives them to libvirt: the kernel's (the device's `uevent`
//! file: `DEVTYPE`, `DEVNAME`, `MAJOR`, `BUSNUM`, …), then those udev's rules added (its
//! entry in udev's database under `/run/udev/data`: `ID_SERIAL`, `ID_TYPE`, …), and the
//! other names udev made for its node (`/dev/disk/by-id/…`). A host without udev has the
//! kernel's alone.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::sysfs::Sysfs;

/// udev's database, one file per device.
const UDEV_DATA: &str = "/run/udev/data";
/// A `uevent` file is a page at most; a database entry a few KiB. Anything longer is read
/// this far.
const MAX_FILE: u64 = 64 * 1024;
/// Properties kept from one file.
const MAX_PROPS: usize = 256;

/// One device's properties.
#[derive(Debug, Default, Clone)]
pub(crate) struct Props {
    /// `KEY=value`, the kernel's first, udev's after (a later one wins).
    vars: Vec<(String, String)>,
    /// Other names of its node, relative to /dev.
    links: Vec<String>,
}

/// At most [`MAX_FILE`] bytes of `path`, as text; `None` when it cannot be read.
fn read_bounded(path: &Path) -> Option<String> {
    let mut buf = Vec::new();
    let r = File::open(path).and_then(|f| f.take(MAX_FILE).read_to_end(&mut buf));
    match r {
        Ok(_) => Some(String::from_utf8_lossy(&buf).into_owned()),
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                log::debug!("cannot read {}: {e}", path.display());
            }
            None
        }
    }
}

impl Props {
    /// The properties of the device in directory `path` (inside the root) of `subsystem`.
    pub(crate) fn read(sysfs: &Sysfs, path: &Path, subsystem: &str) -> Props {
        let mut p = Props::default();
        if let Some(text) = read_bounded(&sysfs.host(&path.join("uevent"))) {
            p.add_lines(&text, |l| Some(("", l)));
        }
        if let Some(id) = p.database_id(path, subsystem) {
            let file = sysfs.host(&PathBuf::from(UDEV_DATA).join(id));
            if let Some(text) = read_bounded(&file) {
                p.add_lines(&text, |l| l.split_once(':'));
            }
        }
        p
    }

    /// The `KEY=value` lines of a file (each split by `tag` into its kind and text: `E`
    /// a property, `S` a link; the kernel's lines are all properties).
    fn add_lines<'a>(
        &mut self,
        text: &'a str,
        tag: impl Fn(&'a str) -> Option<(&'a str, &'a str)>,
    ) {
        for line in text.lines() {
            if self.vars.len() + self.links.len() >= MAX_PROPS {
                break;
            }
            match tag(line) {
                Some(("" | "E", kv)) => {
                    if let Some((k, v)) = kv.split_once('=') {
                        self.vars.push((k.to_string(), v.to_string()));
                    }
                }
                Some(("S", link)) if !link.is_empty() => self.links.push(link.to_string()),
                _ => {}
            }
        }
    }

    /// The name of the device's entry in udev's database: `b8:0` for a block device, `c…`
    /// for another with a node, `n2` for interface 2, `+usb:1-1` for the rest.
    fn database_id(&self, path: &Path, subsystem: &str) -> Option<String> {
        if let (Some(maj), Some(min)) = (self.get("MAJOR"), self.get("MINOR")) {
            let kind = if subsystem == "block" { 'b' } else { 'c' };
            return Some(format!("{kind}{maj}:{min}"));
        }
        if let Some(i) = self.get("IFINDEX").filter(|_| subsystem == "net") {
            return Some(format!("n{i}"));
        }
        let sysname = path.file_name()?.to_str()?;
        Some(format!("+{subsystem}:{sysname}"))
    }

    /// A property's value (udev's over the kernel's).
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// `DEVTYPE`: what the kernel says the device is within its subsystem.
    pub(crate) fn devtype(&self) -> Option<&str> {
        self.get("DEVTYPE")
    }

    /// The device's node (`/dev/` and its `DEVNAME`), when it has one.
    pub(crate) fn devnode(&self) -> Option<String> {
        let name = self.get("DEVNAME").filter(|n| !n.is_empty())?;
        Some(if name.starts_with('/') {
            name.to_string()
        } else {
            format!("/dev/{name}")
        })
    }

    /// The other names of its node, as paths.
    pub(crate) fn devlinks(&self) -> Vec<String> {
        self.links.iter().map(|l| format!("/dev/{l}")).collect()
    }

    /// A property read as an unsigned number in `radix` (as `strtoul` would: the digits
    /// that are there; none is no value).
    pub(crate) fn num(&self, key: &str, radix: u32) -> Option<u32> {
        parse_num(self.get(key)?, radix)
    }
}

/// `s` read as a number in `radix` (10 or 16; 0: C's rule, `0x` hexadecimal, a leading 0
/// octal, else decimal).
pub(crate) fn parse_num(s: &str, radix: u32) -> Option<u32> {
    let t = s.trim();
    let (digits, radix) = match radix {
        0 => {
            if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                (h, 16)
            } else if t.len() > 1 && t.starts_with('0') {
                (&t[1..], 8)
            } else {
                (t, 10)
            }
        }
        16 => (
            t.strip_prefix("0x")
                .or_else(|| t.strip_prefix("0X"))
                .unwrap_or(t),
            16,
        ),
        r => (t, r),
    };
    u32::from_str_radix(digits, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_then_udevs() {
        let t = tempfile::tempdir().unwrap();
        let dev = t.path().join("sys/devices/x/block/sda");
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::write(
            dev.join("uevent"),
            "MAJOR=8\nMINOR=0\nDEVNAME=sda\nDEVTYPE=disk\nID_TYPE=kernel\n",
        )
        .unwrap();
        let data = t.path().join("run/udev/data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(
            data.join("b8:0"),
            "S:disk/by-id/ata-QEMU_HARDDISK_1\nW:1\nI:123\nE:ID_TYPE=disk\nE:ID_SERIAL=QEMU_1\nG:systemd\n",
        )
        .unwrap();
        let s = Sysfs::new(t.path().to_path_buf());
        let p = Props::read(&s, Path::new("/sys/devices/x/block/sda"), "block");
        assert_eq!(p.get("ID_TYPE"), Some("disk"));
        assert_eq!(p.get("ID_SERIAL"), Some("QEMU_1"));
        assert_eq!(p.devtype(), Some("disk"));
        assert_eq!(p.devnode().as_deref(), Some("/dev/sda"));
        assert_eq!(p.devlinks(), ["/dev/disk/by-id/ata-QEMU_HARDDISK_1"]);
        assert_eq!(p.num("MAJOR", 10), Some(8));
        assert!(!p.has("ID_CDROM"));
        // No database entry: the kernel's alone.
        let p = Props::read(&s, Path::new("/sys/devices/none"), "usb");
        assert_eq!(p.get("DEVTYPE"), None);
    }

    #[test]
    fn numbers_as_c_reads_them() {
        assert_eq!(parse_num("001", 10), Some(1));
        assert_eq!(parse_num("46f4", 16), Some(0x46f4));
        assert_eq!(parse_num("0x1d", 16), Some(0x1d));
        assert_eq!(parse_num("0x0c", 0), Some(12));
        assert_eq!(parse_num("010", 0), Some(8));
        assert_eq!(parse_num("5", 0), Some(5));
        assert_eq!(parse_num("0", 0), Some(0));
        assert_eq!(parse_num("zz", 16), None);
    }
}
