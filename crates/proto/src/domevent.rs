//! The domain events beyond lifecycle, devices and jobs: reboot, RTC change, watchdog, I/O
//! errors, graphics, control errors, disk and tray changes, power management, balloon,
//! tunables. Each has libvirt's two message forms: the legacy one (`REGISTER_ANY`, the
//! message alone) and the callback one (`CALLBACK_REGISTER_ANY`: the callback id in
//! front, and for the power-management events a reason after it).
//!
//! Producers encode the legacy form ([`Event::body`]); [`Forms`] says how a registration of
//! either kind receives it, so one path carries them all.

use vireo_xdr::{xdr_struct, Array};

use crate::remote::{procs, Domain};
use crate::typed::TypedParam;

/// `VIR_DOMAIN_EVENT_ID_*` of the events this module carries.
pub mod id {
    pub const REBOOT: i32 = 1;
    pub const RTC_CHANGE: i32 = 2;
    pub const WATCHDOG: i32 = 3;
    pub const IO_ERROR: i32 = 4;
    pub const GRAPHICS: i32 = 5;
    pub const IO_ERROR_REASON: i32 = 6;
    pub const CONTROL_ERROR: i32 = 7;
    pub const DISK_CHANGE: i32 = 9;
    pub const TRAY_CHANGE: i32 = 10;
    pub const PMWAKEUP: i32 = 11;
    pub const PMSUSPEND: i32 = 12;
    pub const BALLOON_CHANGE: i32 = 13;
    pub const PMSUSPEND_DISK: i32 = 14;
    pub const TUNABLE: i32 = 17;
    pub const BLOCK_THRESHOLD: i32 = 24;
}

/// `virDomainEventWatchdogAction`.
pub mod watchdog {
    pub const NONE: i32 = 0;
    pub const PAUSE: i32 = 1;
    pub const RESET: i32 = 2;
    pub const POWEROFF: i32 = 3;
    pub const SHUTDOWN: i32 = 4;
    pub const DEBUG: i32 = 5;
    pub const INJECTNMI: i32 = 6;
}

/// `virDomainEventIOErrorAction`.
pub mod io_error {
    pub const NONE: i32 = 0;
    pub const PAUSE: i32 = 1;
    pub const REPORT: i32 = 2;
}

/// `virDomainEventGraphicsPhase` and `virDomainEventGraphicsAddressType`.
pub mod graphics {
    pub const CONNECT: i32 = 0;
    pub const INITIALIZE: i32 = 1;
    pub const DISCONNECT: i32 = 2;
    pub const IPV4: i32 = 0;
    pub const IPV6: i32 = 1;
    pub const UNIX: i32 = 2;
}

/// `virDomainEventTrayChangeReason`.
pub mod tray {
    pub const OPEN: i32 = 0;
    pub const CLOSE: i32 = 1;
}

xdr_struct! {
    /// REBOOT, CONTROL_ERROR, PMWAKEUP, PMSUSPEND, PMSUSPEND_DISK: the domain alone.
    pub struct DomainOnlyMsg { pub dom: Domain }
}
xdr_struct! {
    /// RTC_CHANGE: the guest's clock offset from the host's, in seconds.
    pub struct RtcChangeMsg { pub dom: Domain, pub offset: i64 }
}
xdr_struct! {
    pub struct WatchdogMsg { pub dom: Domain, pub action: i32 }
}
xdr_struct! {
    pub struct IoErrorMsg {
        pub dom: Domain,
        pub src_path: String,
        pub dev_alias: String,
        pub action: i32,
    }
}
xdr_struct! {
    pub struct IoErrorReasonMsg {
        pub dom: Domain,
        pub src_path: String,
        pub dev_alias: String,
        pub action: i32,
        pub reason: String,
    }
}
xdr_struct! {
    pub struct GraphicsAddress { pub family: i32, pub node: String, pub service: String }
}
xdr_struct! {
    pub struct GraphicsIdentity { pub type_: String, pub name: String }
}

/// `REMOTE_DOMAIN_EVENT_GRAPHICS_IDENTITY_MAX`.
pub const GRAPHICS_IDENTITY_MAX: usize = 20;

xdr_struct! {
    pub struct GraphicsMsg {
        pub dom: Domain,
        pub phase: i32,
        pub local: GraphicsAddress,
        pub remote: GraphicsAddress,
        pub auth_scheme: String,
        pub subject: Array<GraphicsIdentity, GRAPHICS_IDENTITY_MAX>,
    }
}
xdr_struct! {
    pub struct DiskChangeMsg {
        pub dom: Domain,
        pub old_src_path: Option<String>,
        pub new_src_path: Option<String>,
        pub dev_alias: String,
        pub reason: i32,
    }
}
xdr_struct! {
    pub struct TrayChangeMsg { pub dom: Domain, pub dev_alias: String, pub reason: i32 }
}
xdr_struct! {
    /// BALLOON_CHANGE: the balloon's size now, in KiB.
    pub struct BalloonChangeMsg { pub dom: Domain, pub actual: u64 }
}

/// `REMOTE_DOMAIN_EVENT_TUNABLE_MAX`.
pub const TUNABLE_MAX: usize = 2048;

xdr_struct! {
    /// TUNABLE (callback form only; its "legacy" body is this without the callback id).
    pub struct TunableMsg {
        pub dom: Domain,
        pub params: Array<TypedParam, TUNABLE_MAX>,
    }
}

xdr_struct! {
    /// `DOMAIN_PM_SUSPEND_FOR_DURATION`: target memory 0, disk 1, hybrid 2.
    pub struct DomainPmSuspendForDurationArgs {
        pub dom: Domain,
        pub target: u32,
        pub duration: u64,
        pub flags: u32,
    }
}

/// `virNodeSuspendTarget`.
pub mod pm_target {
    pub const MEM: u32 = 0;
    pub const DISK: u32 = 1;
    pub const HYBRID: u32 = 2;
}

xdr_struct! {
    /// BLOCK_THRESHOLD (callback form only): `dev` is the disk's target, or `vda[N]` for
    /// a layer of its backing chain.
    pub struct BlockThresholdMsg {
        pub dom: Domain,
        pub dev: String,
        pub path: Option<String>,
        pub threshold: u64,
        pub excess: u64,
    }
}
xdr_struct! {
    /// `DOMAIN_SET_BLOCK_THRESHOLD`.
    pub struct DomainSetBlockThresholdArgs {
        pub dom: Domain,
        pub dev: String,
        pub threshold: u64,
        pub flags: u32,
    }
}

/// How registrations receive an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forms {
    /// The callback form's procedure.
    pub callback: i32,
    /// The legacy form's procedure (none for events newer than the callback API).
    pub legacy: Option<i32>,
    /// The callback form has a reason (always 0) between the id and the message.
    pub reason: bool,
}

/// The message forms of event `event_id`, if it is one of this module's.
pub fn forms(event_id: i32) -> Option<Forms> {
    use procs::*;
    let (callback, legacy, reason) = match event_id {
        id::REBOOT => (DOMAIN_EVENT_CALLBACK_REBOOT, DOMAIN_EVENT_REBOOT, false),
        id::RTC_CHANGE => (
            DOMAIN_EVENT_CALLBACK_RTC_CHANGE,
            DOMAIN_EVENT_RTC_CHANGE,
            false,
        ),
        id::WATCHDOG => (DOMAIN_EVENT_CALLBACK_WATCHDOG, DOMAIN_EVENT_WATCHDOG, false),
        id::IO_ERROR => (DOMAIN_EVENT_CALLBACK_IO_ERROR, DOMAIN_EVENT_IO_ERROR, false),
        id::GRAPHICS => (DOMAIN_EVENT_CALLBACK_GRAPHICS, DOMAIN_EVENT_GRAPHICS, false),
        id::IO_ERROR_REASON => (
            DOMAIN_EVENT_CALLBACK_IO_ERROR_REASON,
            DOMAIN_EVENT_IO_ERROR_REASON,
            false,
        ),
        id::CONTROL_ERROR => (
            DOMAIN_EVENT_CALLBACK_CONTROL_ERROR,
            DOMAIN_EVENT_CONTROL_ERROR,
            false,
        ),
        id::DISK_CHANGE => (
            DOMAIN_EVENT_CALLBACK_DISK_CHANGE,
            DOMAIN_EVENT_DISK_CHANGE,
            false,
        ),
        id::TRAY_CHANGE => (
            DOMAIN_EVENT_CALLBACK_TRAY_CHANGE,
            DOMAIN_EVENT_TRAY_CHANGE,
            false,
        ),
        id::PMWAKEUP => (DOMAIN_EVENT_CALLBACK_PMWAKEUP, DOMAIN_EVENT_PMWAKEUP, true),
        id::PMSUSPEND => (
            DOMAIN_EVENT_CALLBACK_PMSUSPEND,
            DOMAIN_EVENT_PMSUSPEND,
            true,
        ),
        id::BALLOON_CHANGE => (
            DOMAIN_EVENT_CALLBACK_BALLOON_CHANGE,
            DOMAIN_EVENT_BALLOON_CHANGE,
            false,
        ),
        id::PMSUSPEND_DISK => (
            DOMAIN_EVENT_CALLBACK_PMSUSPEND_DISK,
            DOMAIN_EVENT_PMSUSPEND_DISK,
            true,
        ),
        id::TUNABLE | id::BLOCK_THRESHOLD => {
            return Some(Forms {
                callback: if event_id == id::TUNABLE {
                    DOMAIN_EVENT_CALLBACK_TUNABLE
                } else {
                    DOMAIN_EVENT_BLOCK_THRESHOLD
                },
                legacy: None,
                reason: false,
            })
        }
        _ => return None,
    };
    Some(Forms {
        callback,
        legacy: Some(legacy),
        reason,
    })
}

/// The event whose callback form is procedure `proc_`.
pub fn by_callback_proc(proc_: i32) -> Option<(i32, Forms)> {
    (1..=id::BLOCK_THRESHOLD).find_map(|e| forms(e).filter(|f| f.callback == proc_).map(|f| (e, f)))
}

impl Forms {
    /// The callback message for registration `callback_id` of `body` (the legacy form).
    pub fn callback_message(&self, callback_id: i32, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(body.len() + 8);
        out.extend_from_slice(&callback_id.to_be_bytes());
        if self.reason {
            out.extend_from_slice(&0i32.to_be_bytes());
        }
        out.extend_from_slice(body);
        out
    }

    /// The legacy body inside callback message `msg` (None if it is too short).
    pub fn body_of<'a>(&self, msg: &'a [u8]) -> Option<&'a [u8]> {
        msg.get(if self.reason { 8 } else { 4 }..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dom() -> Domain {
        Domain {
            name: "vm".into(),
            uuid: [7; 16],
            id: 3,
        }
    }

    #[test]
    fn callback_form_puts_the_id_and_reason_in_front() {
        let body = vireo_xdr::to_bytes(&DomainOnlyMsg { dom: dom() });
        let f = forms(id::PMSUSPEND).unwrap();
        let msg = f.callback_message(9, &body);
        assert_eq!(&msg[..8], &[0, 0, 0, 9, 0, 0, 0, 0]);
        assert_eq!(f.body_of(&msg), Some(&body[..]));
        let f = forms(id::REBOOT).unwrap();
        let msg = f.callback_message(9, &body);
        assert_eq!(&msg[..4], &[0, 0, 0, 9]);
        assert_eq!(f.body_of(&msg), Some(&body[..]));
    }

    #[test]
    fn every_form_is_found_by_its_callback_procedure() {
        for e in [1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 17, 24] {
            let f = forms(e).unwrap();
            assert_eq!(by_callback_proc(f.callback), Some((e, f)));
        }
        assert_eq!(forms(8), None);
        assert_eq!(forms(id::TUNABLE).unwrap().legacy, None);
    }
}
