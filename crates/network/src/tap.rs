//! Tap devices for guests: made here, put in the network's bridge, and handed to the QEMU
//! driver as an open descriptor, so the process that runs QEMU needs no network privilege.
//! The device is not persistent: it goes away with the last descriptor (QEMU's).

use std::os::fd::{AsRawFd, OwnedFd};

use crate::error::{NetworkError, Result};
use crate::host::{link_exists, run};

const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
/// `TUNSETIFF`, `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags.
#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// A tap device and the descriptor that keeps it.
pub struct Tap {
    pub name: String,
    /// Its interface index: the name may be another device's once this one is gone.
    pub index: u32,
    pub fd: OwnedFd,
}

/// The first `vnetN` no link uses.
fn free_name() -> Result<String> {
    for i in 0..65536 {
        let n = format!("vnet{i}");
        if !link_exists(&n) {
            return Ok(n);
        }
    }
    Err(NetworkError::Internal("no free tap device name".into()))
}

/// Opens a new tap device (with virtio-net headers, as QEMU's virtio NICs want), gives it
/// `mac` (the guest's with its first byte 0xfe, as libvirt does, so the bridge never takes
/// the guest's address), puts it in `bridge` with the bridge's MTU (an empty `bridge`:
/// in none, `<interface type='ethernet'>`), and brings it up.
pub fn create(bridge: &str, guest_mac: [u8; 6]) -> Result<Tap> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|e| NetworkError::io("cannot open /dev/net/tun", e))?;
    let fd: OwnedFd = file.into();
    // Two tries: another process may take the free name first.
    let mut last = None;
    for _ in 0..2 {
        let name = free_name()?;
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR,
            _pad: [0; 22],
        };
        for (d, s) in req.name.iter_mut().zip(name.bytes()) {
            *d = s as libc::c_char;
        }
        // SAFETY: TUNSETIFF reads an ifreq from the pointer; `req` lives across the call
        // and has the layout the kernel expects (name, then the flags).
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, &mut req) };
        if r < 0 {
            last = Some(std::io::Error::last_os_error());
            continue;
        }
        let mut mac = guest_mac;
        mac[0] = 0xfe;
        let mac = vireo_xml::format_mac(&mac);
        let set = (|| -> Result<()> {
            run("ip", &["link", "set", "dev", &name, "address", &mac])?;
            if bridge.is_empty() {
                run("ip", &["link", "set", "dev", &name, "up"])?;
                return Ok(());
            }
            // (From `ip`, not sysfs: sysfs shows the namespace it was mounted in.)
            let shown = run("ip", &["-o", "link", "show", "dev", bridge])?;
            let mtu = shown
                .split_whitespace()
                .skip_while(|w| *w != "mtu")
                .nth(1)
                .map(str::to_string);
            if let Some(m) = mtu.filter(|m| m != "1500") {
                run("ip", &["link", "set", "dev", &name, "mtu", &m])?;
            }
            run("ip", &["link", "set", "dev", &name, "master", bridge, "up"])?;
            Ok(())
        })();
        let index = crate::host::link_index(&name);
        return match (set, index) {
            (Ok(()), Some(index)) => Ok(Tap { name, index, fd }),
            (Err(e), _) => Err(e),
            (Ok(()), None) => Err(NetworkError::Internal(format!(
                "tap device {name} has no interface index"
            ))),
        };
    }
    Err(NetworkError::io(
        "cannot make a tap device",
        last.unwrap_or_else(|| std::io::Error::other("TUNSETIFF failed")),
    ))
}
