//! Numbers as C reads them (`strtol`, `strtoull`, libvirt's `virStrToLong_*`): leading
//! blanks, a sign, decimal digits, and where the reading stopped; virsh's options are read
//! this way, so `vireo` reads them the same.

/// C's `isspace` in the C locale.
pub(crate) fn c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Where the blanks from `i` on end.
pub(crate) fn skip_spaces(b: &[u8], mut i: usize) -> usize {
    while b.get(i).copied().is_some_and(c_space) {
        i += 1;
    }
    i
}

/// A number as read: its sign and magnitude (`None`: too large for 64 bits).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CNumber {
    pub negative: bool,
    pub magnitude: Option<u64>,
}

impl CNumber {
    /// As `strtoll` gives it (`None`: out of range).
    pub fn signed(self) -> Option<i64> {
        let m = self.magnitude?;
        if self.negative {
            0i64.checked_sub_unsigned(m)
        } else {
            i64::try_from(m).ok()
        }
    }

    /// As `strtoull` gives it: a negative number wraps around (`-1` is the largest).
    pub fn unsigned(self) -> Option<u64> {
        let m = self.magnitude?;
        Some(if self.negative { m.wrapping_neg() } else { m })
    }

    /// As libvirt's `virStrToLong_ui` gives it: `-N` wraps around within 32 bits.
    pub fn uint(self) -> Option<u32> {
        let m = u32::try_from(self.magnitude?).ok()?;
        Some(if self.negative { m.wrapping_neg() } else { m })
    }
}

/// The number C reads at `b[i..]` and where it stopped; `None` when there are no digits.
pub(crate) fn c_number(b: &[u8], i: usize) -> Option<(CNumber, usize)> {
    let mut i = skip_spaces(b, i);
    let negative = match b.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let start = i;
    let mut magnitude = Some(0u64);
    while let Some(d) = b.get(i).filter(|d| d.is_ascii_digit()) {
        magnitude = magnitude
            .and_then(|m| m.checked_mul(10))
            .and_then(|m| m.checked_add(u64::from(d - b'0')));
        i += 1;
    }
    (i > start).then_some((
        CNumber {
            negative,
            magnitude,
        },
        i,
    ))
}

/// A whole string that is only a number (after blanks and a sign): its sign and
/// magnitude; `None` otherwise, or when it does not fit in 64 bits.
pub(crate) fn whole_number(v: &str) -> Option<(bool, u64)> {
    let (n, end) = c_number(v.as_bytes(), 0)?;
    (end == v.len()).then_some((n.negative, n.magnitude?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_c_reads_them() {
        let (n, end) = c_number(b"  -12kb", 0).unwrap();
        assert_eq!((n.signed(), end), (Some(-12), 5));
        assert_eq!(n.unsigned(), Some(u64::MAX - 11));
        assert_eq!(n.uint(), Some(u32::MAX - 11));
        assert!(c_number(b" x", 0).is_none());
        assert!(c_number(b"99999999999999999999", 0)
            .unwrap()
            .0
            .signed()
            .is_none());
        assert_eq!(whole_number("+7"), Some((false, 7)));
        assert_eq!(whole_number("7 "), None);
    }
}
