//! libvirt's taints: what was done to a running VM that its management can no longer vouch
//! for (QEMU running as root, QEMU or the guest agent told things as the client wrote them,
//! a device tree of the user's, the host's cdrom drive). Each is written once to the
//! domain's log (the shim's stderr) and told by `virDomainGetMessages`, the "Messages" of
//! `virsh dominfo`, as libvirt does. They last as long as the VM runs.

use std::sync::atomic::{AtomicU32, Ordering};

use vireo_proto::error::{code, domain as errdom};
use vireo_proto::remote::message;
use vireo_proto::RemoteError;
use vireo_xml::{DiskDevice, DiskType, Domain};

/// `virDomainGetMessages` refuses flags it does not know, as libvirt does.
pub fn check_message_flags(flags: u32) -> Result<(), RemoteError> {
    let bad = flags & !(message::DEPRECATION | message::TAINTING);
    if bad != 0 {
        return Err(RemoteError::new(
            code::INVALID_ARG,
            errdom::QEMU,
            format!("invalid argument: unsupported flags (0x{bad:x})"),
        ));
    }
    Ok(())
}

/// The taints Vireo marks; the value is the taint's place in libvirt's `virDomainTaint`
/// enumeration, which orders the messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Taint {
    CustomMonitor = 1,
    HighPrivileges = 2,
    CdromPassthrough = 8,
    CustomDtb = 9,
    CustomGaCommand = 10,
}

impl Taint {
    const ALL: [Taint; 5] = [
        Taint::CustomMonitor,
        Taint::HighPrivileges,
        Taint::CdromPassthrough,
        Taint::CustomDtb,
        Taint::CustomGaCommand,
    ];

    /// The name in the domain's log, and the message of `virDomainGetMessages`.
    fn words(self) -> (&'static str, &'static str) {
        match self {
            Taint::CustomMonitor => ("custom-monitor", "custom monitor control commands issued"),
            Taint::HighPrivileges => (
                "high-privileges",
                "running with undesirable elevated privileges",
            ),
            Taint::CdromPassthrough => ("cdrom-passthrough", "use of host cdrom passthrough"),
            Taint::CustomDtb => ("custom-dtb", "custom device tree blob used"),
            Taint::CustomGaCommand => (
                "custom-ga-command",
                "custom guest agent control commands issued",
            ),
        }
    }

    fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// The taints of one running VM.
#[derive(Default, Debug)]
pub struct Taints(AtomicU32);

impl Taints {
    /// Those a VM of `def` has from its start, its QEMU running as `uid`:`gid` (root's
    /// user or group is libvirt's "high privileges").
    pub fn at_start(def: &Domain, uid: u32, gid: u32) -> Taints {
        let t = Taints::default();
        if uid == 0 || gid == 0 {
            t.0.fetch_or(Taint::HighPrivileges.bit(), Ordering::Relaxed);
        }
        if def.os.dtb.is_some() {
            t.0.fetch_or(Taint::CustomDtb.bit(), Ordering::Relaxed);
        }
        let host_cdrom = def
            .devices
            .disks
            .iter()
            .any(|d| d.device == DiskDevice::Cdrom && d.disk_type == DiskType::Block);
        if host_cdrom {
            t.0.fetch_or(Taint::CdromPassthrough.bit(), Ordering::Relaxed);
        }
        t
    }

    /// Marks `t`; true the first time (when the domain's log is to say so).
    pub fn mark(&self, t: Taint) -> bool {
        self.0.fetch_or(t.bit(), Ordering::Relaxed) & t.bit() == 0
    }

    /// The log's line for `t` of the domain `id` `name` `uuid`.
    pub fn log_line(t: Taint, id: i32, name: &str, uuid: &str) -> String {
        format!(
            "Domain id={id} name='{name}' uuid={uuid} is tainted: {}",
            t.words().0
        )
    }

    /// Those marked, in libvirt's order.
    pub fn marked(&self) -> Vec<Taint> {
        let bits = self.0.load(Ordering::Relaxed);
        Taint::ALL
            .into_iter()
            .filter(|t| bits & t.bit() != 0)
            .collect()
    }

    /// `virDomainGetMessages`: the taints' messages unless `flags` asks for deprecations
    /// only (Vireo has none to tell).
    pub fn messages(&self, flags: u32) -> Vec<String> {
        if flags != 0 && flags & message::TAINTING == 0 {
            return Vec::new();
        }
        self.marked()
            .into_iter()
            .map(|t| format!("tainted: {}", t.words().1))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marked_once_and_told_in_libvirts_order() {
        let t = Taints::default();
        assert!(t.messages(0).is_empty());
        assert!(t.mark(Taint::CustomGaCommand));
        assert!(t.mark(Taint::CustomMonitor));
        assert!(!t.mark(Taint::CustomMonitor), "the log says it once");
        assert_eq!(
            t.messages(0),
            [
                "tainted: custom monitor control commands issued",
                "tainted: custom guest agent control commands issued"
            ]
        );
        assert_eq!(t.messages(message::TAINTING).len(), 2);
        assert!(t.messages(message::DEPRECATION).is_empty());
        assert_eq!(
            Taints::log_line(Taint::CustomMonitor, 3, "vm", "u"),
            "Domain id=3 name='vm' uuid=u is tainted: custom-monitor"
        );
    }

    #[test]
    fn a_device_tree_and_a_host_cdrom_taint_from_the_start() {
        let xml = "<domain type='qemu'><name>a</name><memory>65536</memory>\
            <os><type>hvm</type><dtb>/d.dtb</dtb></os><devices>\
            <disk type='block' device='cdrom'><source dev='/dev/sr0'/>\
            <target dev='hdc' bus='ide'/></disk></devices></domain>";
        let def = Domain::parse(xml).expect("xml");
        assert_eq!(
            Taints::at_start(&def, 107, 107).marked(),
            [Taint::CdromPassthrough, Taint::CustomDtb]
        );
        let plain = Domain::parse(
            "<domain type='qemu'><name>a</name><memory>65536</memory>\
             <os><type>hvm</type></os></domain>",
        )
        .expect("xml");
        assert!(Taints::at_start(&plain, 107, 107).marked().is_empty());
        assert_eq!(
            Taints::at_start(&plain, 107, 0).marked(),
            [Taint::HighPrivileges],
            "root's group"
        );
        assert_eq!(
            Taints::at_start(&plain, 0, 107).messages(0),
            ["tainted: running with undesirable elevated privileges"]
        );
    }
}
