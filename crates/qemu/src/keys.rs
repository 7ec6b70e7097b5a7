//! `virDomainSendKey`: keys named in one of libvirt's codesets, turned into the numbers
//! QEMU's `send-key` takes ("qnum": PC scancode set 1, an extended key as 0x80 | code).

/// libvirt's codesets (`virKeycodeSet`).
pub mod codeset {
    pub const LINUX: u32 = 0;
    pub const XT: u32 = 1;
    pub const ATSET1: u32 = 2;
    pub const XT_KBD: u32 = 6;
    pub const RFB: u32 = 9;
    pub const QNUM: u32 = 10;
}

/// The codesets' names, as libvirt names them (for errors).
const NAMES: [&str; 11] = [
    "linux", "xt", "atset1", "atset2", "atset3", "os_x", "xt_kbd", "usb", "win32", "rfb", "qnum",
];

/// Linux input key codes above the range where they equal set-1 scancodes (1-83, 86-88),
/// with their qnum.
const LINUX_EXTENDED: [(u32, u32); 27] = [
    (96, 0x9c),  // KEY_KPENTER
    (97, 0x9d),  // KEY_RIGHTCTRL
    (98, 0xb5),  // KEY_KPSLASH
    (99, 0xb7),  // KEY_SYSRQ
    (100, 0xb8), // KEY_RIGHTALT
    (102, 0xc7), // KEY_HOME
    (103, 0xc8), // KEY_UP
    (104, 0xc9), // KEY_PAGEUP
    (105, 0xcb), // KEY_LEFT
    (106, 0xcd), // KEY_RIGHT
    (107, 0xcf), // KEY_END
    (108, 0xd0), // KEY_DOWN
    (109, 0xd1), // KEY_PAGEDOWN
    (110, 0xd2), // KEY_INSERT
    (111, 0xd3), // KEY_DELETE
    (113, 0xa0), // KEY_MUTE
    (114, 0xae), // KEY_VOLUMEDOWN
    (115, 0xb0), // KEY_VOLUMEUP
    (116, 0xde), // KEY_POWER
    (117, 0x59), // KEY_KPEQUAL
    (119, 0xc6), // KEY_PAUSE
    (125, 0xdb), // KEY_LEFTMETA
    (126, 0xdc), // KEY_RIGHTMETA
    (127, 0xdd), // KEY_COMPOSE
    (142, 0xdf), // KEY_SLEEP
    (143, 0xe3), // KEY_WAKEUP
    (86, 0x56),  // KEY_102ND
];

/// The qnum of key `code` of `set`, or why there is none.
pub fn to_qnum(set: u32, code: u32) -> Result<u32, String> {
    let unknown = || {
        format!(
            "cannot translate keycode {code} of {} codeset to qnum keycode",
            NAMES.get(set as usize).copied().unwrap_or("unknown")
        )
    };
    match set {
        codeset::LINUX => match code {
            1..=83 | 87 | 88 => Ok(code),
            _ => LINUX_EXTENDED
                .iter()
                .find(|(l, _)| *l == code)
                .map(|(_, q)| *q)
                .ok_or_else(unknown),
        },
        // The original XT keyboard: no extended keys.
        codeset::XT => (1..0x80)
            .contains(&code)
            .then_some(code)
            .ok_or_else(unknown),
        // Set 1, an extended key written with its 0xe0 prefix.
        codeset::ATSET1 => match code {
            1..=0x7f => Ok(code),
            0xe001..=0xe07f => Ok(0x80 | (code & 0x7f)),
            _ => Err(unknown()),
        },
        codeset::XT_KBD | codeset::RFB | codeset::QNUM => (1..=0xff)
            .contains(&code)
            .then_some(code)
            .ok_or_else(unknown),
        other => Err(format!(
            "the {} codeset is not supported by Vireo (linux, xt, atset1, xt_kbd, rfb, qnum)",
            NAMES.get(other as usize).copied().unwrap_or("unknown")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codesets() {
        // KEY_A, KEY_F12, KEY_UP, KEY_LEFTMETA.
        assert_eq!(to_qnum(codeset::LINUX, 30), Ok(0x1e));
        assert_eq!(to_qnum(codeset::LINUX, 88), Ok(0x58));
        assert_eq!(to_qnum(codeset::LINUX, 103), Ok(0xc8));
        assert_eq!(to_qnum(codeset::LINUX, 125), Ok(0xdb));
        assert!(to_qnum(codeset::LINUX, 0).is_err());
        assert!(to_qnum(codeset::LINUX, 240)
            .unwrap_err()
            .contains("linux codeset"));
        assert_eq!(to_qnum(codeset::ATSET1, 0xe048), Ok(0xc8));
        assert_eq!(to_qnum(codeset::XT, 0x1e), Ok(0x1e));
        assert!(to_qnum(codeset::XT, 0x9e).is_err());
        assert_eq!(to_qnum(codeset::QNUM, 0xc8), Ok(0xc8));
        assert!(to_qnum(7, 4)
            .unwrap_err()
            .contains("usb codeset is not supported"));
        assert!(to_qnum(99, 4).unwrap_err().contains("unknown"));
    }
}
