//! Numbers as C reads them (`strtol`, `strtoull`, libvirt's `virStrToLong_*`): leading
//! blanks, a sign, decimal digits, and where the reading stopped; virsh's options are read
//! this way, so `vireo` reads them the same.

use anyhow::{anyhow, Result};

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
    c_number_radix(b, i, 10)
}

/// As [`c_number`] in base `radix` (10 or 16; base 16 takes an optional `0x`, as
/// `strtoul` does).
pub(crate) fn c_number_radix(b: &[u8], i: usize, radix: u32) -> Option<(CNumber, usize)> {
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
    let digit = |d: u8| char::from(d).to_digit(radix);
    // "0x" then a digit: the prefix; "0x" alone is the number 0, ending at the "x".
    if radix == 16
        && b.get(i) == Some(&b'0')
        && matches!(b.get(i + 1), Some(b'x' | b'X'))
        && b.get(i + 2).copied().and_then(digit).is_some()
    {
        i += 2;
    }
    let start = i;
    let mut magnitude = Some(0u64);
    while let Some(d) = b.get(i).copied().and_then(digit) {
        magnitude = magnitude
            .and_then(|m| m.checked_mul(u64::from(radix)))
            .and_then(|m| m.checked_add(u64::from(d)));
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

/// What C's `strtol` reads at `b[i..]` in base 10: the value and where it stopped; `None`
/// when there are no digits or the value overflows.
pub(crate) fn strtol(b: &[u8], i: usize) -> Option<(i64, usize)> {
    let (n, j) = c_number(b, i)?;
    Some((n.signed()?, j))
}

/// virsh's refusal of a number option's value.
pub(crate) fn malformed(name: &str, v: &str) -> anyhow::Error {
    anyhow!("Numeric value '{v}' for <{name}> option is malformed or out of range")
}

/// An `int` option, as virsh reads it (`strtol`, the whole text).
pub(crate) fn opt_int(name: &str, v: &str) -> Result<i32> {
    let b = v.as_bytes();
    strtol(b, 0)
        .filter(|&(_, end)| end == b.len())
        .and_then(|(n, _)| i32::try_from(n).ok())
        .ok_or_else(|| malformed(name, v))
}

/// An unsigned option, as virsh reads it (`strtoull`, the whole text, no minus sign).
pub(crate) fn opt_unsigned(name: &str, v: &str) -> Result<u64> {
    let b = v.as_bytes();
    let mut j = skip_spaces(b, 0);
    match b.get(j) {
        Some(b'-') => return Err(malformed(name, v)),
        Some(b'+') => j += 1,
        _ => {}
    }
    let digits = &v[j..];
    if digits.is_empty() || !digits.bytes().all(|d| d.is_ascii_digit()) {
        return Err(malformed(name, v));
    }
    digits.parse().map_err(|_| malformed(name, v))
}

/// An `unsigned int` option, as virsh reads it.
pub(crate) fn opt_uint(name: &str, v: &str) -> Result<u32> {
    u32::try_from(opt_unsigned(name, v)?).map_err(|_| malformed(name, v))
}

/// An `unsigned long long` option, as virsh reads it.
pub(crate) fn opt_ullong(name: &str, v: &str) -> Result<u64> {
    opt_unsigned(name, v)
}

/// A `long long` option, as virsh reads it (`strtoll`, the whole text).
pub(crate) fn opt_llong(name: &str, v: &str) -> Result<i64> {
    let b = v.as_bytes();
    c_number(b, 0)
        .filter(|&(_, end)| end == b.len())
        .and_then(|(n, _)| n.signed())
        .ok_or_else(|| malformed(name, v))
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
        let hex = |s: &str| c_number_radix(s.as_bytes(), 0, 16).map(|(n, end)| (n.magnitude, end));
        assert_eq!(hex("0x1f."), Some((Some(31), 4)));
        assert_eq!(hex("fe"), Some((Some(254), 2)));
        assert_eq!(hex("0xg"), Some((Some(0), 1)));
        assert_eq!(hex("g"), None);
    }

    #[test]
    fn options_as_virsh_reads_them() {
        assert_eq!(opt_int("id", " +7").unwrap(), 7);
        assert_eq!(opt_int("id", "010").unwrap(), 10);
        assert_eq!(opt_int("id", "-3").unwrap(), -3);
        for bad in [
            "",
            " ",
            "5 ",
            "0x10",
            "x",
            "2147483648",
            "99999999999999999999",
        ] {
            let e = opt_int("id", bad).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("Numeric value '{bad}' for <id> option is malformed or out of range")
            );
        }
        assert_eq!(opt_uint("poll-grow", "+3").unwrap(), 3);
        assert!(opt_uint("poll-grow", "-1").is_err());
        assert!(opt_uint("poll-grow", "-0").is_err());
        assert!(opt_uint("poll-grow", "4294967296").is_err());
        assert_eq!(
            opt_ullong("poll-max-ns", "18446744073709551615").unwrap(),
            u64::MAX
        );
        assert!(opt_ullong("poll-max-ns", "18446744073709551616").is_err());
        assert_eq!(opt_llong("time", "-5").unwrap(), -5);
        assert!(opt_llong("time", "x").is_err());
    }
}
