//! libvirt's CPU set syntax (`<vcpu cpuset>`, `<vcpupin cpuset>`, `virsh vcpupin`):
//! comma-separated CPUs and ranges, `^N` taking one out: `0-3,^2,6`.

use std::collections::BTreeSet;

use crate::XmlError;

/// The highest CPU number accepted (libvirt's limit is 16384).
const MAX_CPU: usize = 16383;

/// The CPUs `s` names.
pub fn parse_cpuset(s: &str) -> Result<BTreeSet<usize>, XmlError> {
    let bad = || XmlError::Invalid(format!("invalid CPU set '{s}'"));
    let num = |t: &str| -> Result<usize, XmlError> {
        let n: usize = t.trim().parse().map_err(|_| bad())?;
        if n > MAX_CPU {
            return Err(bad());
        }
        Ok(n)
    };
    let mut set = BTreeSet::new();
    let mut minus = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        if let Some(n) = part.strip_prefix('^') {
            minus.push(num(n)?);
        } else if let Some((a, b)) = part.split_once('-') {
            let (a, b) = (num(a)?, num(b)?);
            if a > b {
                return Err(bad());
            }
            set.extend(a..=b);
        } else {
            set.insert(num(part)?);
        }
    }
    for m in minus {
        set.remove(&m);
    }
    if set.is_empty() {
        return Err(XmlError::Invalid(format!("CPU set '{s}' is empty")));
    }
    Ok(set)
}

/// libvirt's spelling of a CPU set: ranges where they run (`0-2,5`).
pub fn format_cpuset(set: &BTreeSet<usize>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut it = set.iter().copied().peekable();
    while let Some(start) = it.next() {
        let mut end = start;
        while it.peek() == Some(&(end + 1)) {
            end += 1;
            it.next();
        }
        out.push(if end == start {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_exclusions_and_errors() {
        let s = parse_cpuset("0-3,^2,6").unwrap();
        assert_eq!(s.iter().copied().collect::<Vec<_>>(), [0, 1, 3, 6]);
        assert_eq!(format_cpuset(&s), "0-1,3,6");
        assert_eq!(format_cpuset(&parse_cpuset(" 1 ").unwrap()), "1");
        for bad in ["", "a", "3-1", "1,,2", "99999", "^1", "-1"] {
            assert!(parse_cpuset(bad).is_err(), "{bad}");
        }
    }
}
