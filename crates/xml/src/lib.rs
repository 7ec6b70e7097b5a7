//! Typed model of libvirt's domain XML, with a parser (built on `roxmltree`)
//! and a formatter that writes libvirt-style XML (two-space indentation,
//! single-quoted attributes, libvirt's element ordering).
//!
//! ```
//! use vireo_xml::Domain;
//!
//! let xml = "<domain type='qemu'><name>vm</name>\
//!            <memory unit='MiB'>64</memory><os><type>hvm</type></os></domain>";
//! let dom = Domain::parse(xml).unwrap();
//! assert_eq!(dom.memory_kib, 65536);
//! let again = Domain::parse(&dom.format()).unwrap();
//! assert_eq!(dom, again);
//! ```
//!
//! Every element is described once with [`xml_element!`] (see [`model`]), which gives
//! both its parser and its formatter. The few that are not tables are written by hand:
//! the `<domain>` root (values normalised across elements: memory units, vCPU counts,
//! boot orders over all devices), `<features>` (kept generically), `<metadata>` (kept
//! verbatim) and `<address>` (its attributes depend on its type).
//!
//! Elements that are not modelled are dropped by the plain parsers, as libvirt does
//! with elements it does not know; definitions that users give go through
//! [`Domain::parse_kept`] or [`parse_root_kept`], which refuse them instead ([`fidelity`]). Values of modelled enumerations are
//! checked, and unknown ones are rejected with [`XmlError::Invalid`].

mod cpuset;
mod devices;
mod domain;
pub mod fidelity;
mod hostdev;
mod interface;
mod iothread;
mod memory;
pub mod metadata;
pub mod model;
mod netport;
mod network;
mod nodedev;
mod nwfilter;
mod platform;
mod secret;
mod snapshot;
mod storage;
mod tune;
#[doc(hidden)]
pub mod util;

pub use cpuset::{format_cpuset, parse_cpuset};
pub use devices::*;
pub use domain::*;
pub use hostdev::*;
pub use interface::*;
pub use iothread::*;
pub use memory::*;
pub use model::{format_root, parse_root, parse_root_kept, XmlElement, XmlValue, YesNo};
pub use netport::*;
pub use network::*;
pub use nodedev::*;
pub use nwfilter::*;
pub use platform::*;
pub use secret::*;
pub use snapshot::*;
pub use storage::*;
pub use tune::*;
pub use util::{escape, Writer};

/// libvirt's `VIR_ERR_XML_ERROR`.
pub const VIR_ERR_XML_ERROR: i32 = 27;
/// libvirt's `VIR_ERR_XML_DETAIL`.
pub const VIR_ERR_XML_DETAIL: i32 = 35;
/// libvirt's `VIR_ERR_CONFIG_UNSUPPORTED`.
pub const VIR_ERR_CONFIG_UNSUPPORTED: i32 = 67;

/// Everything that can go wrong while parsing domain XML.
///
/// `Display` gives the message as libvirt words it for the matching error
/// code (for example `XML error: missing <name> in domain`);
/// [`XmlError::detail`] gives the bare message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// The document is not well-formed XML.
    #[error("XML error at line {line}, column {col}: {msg}")]
    Syntax { line: u32, col: u32, msg: String },
    /// Well-formed XML that is not a valid definition (missing element,
    /// bad number, unknown enum value, wrong root element, ...).
    #[error("XML error: {0}")]
    Invalid(String),
    /// A valid definition using something this implementation does not
    /// support.
    #[error("unsupported configuration: {0}")]
    Unsupported(String),
}

impl XmlError {
    /// The libvirt `virErrorNumber` to report for this error.
    pub fn libvirt_code(&self) -> i32 {
        match self {
            XmlError::Syntax { .. } => VIR_ERR_XML_DETAIL,
            XmlError::Invalid(_) => VIR_ERR_XML_ERROR,
            XmlError::Unsupported(_) => VIR_ERR_CONFIG_UNSUPPORTED,
        }
    }

    /// The message without the libvirt-style prefix.
    pub fn detail(&self) -> String {
        match self {
            XmlError::Syntax { line, col, msg } => format!("line {line}, column {col}: {msg}"),
            XmlError::Invalid(m) | XmlError::Unsupported(m) => m.clone(),
        }
    }
}

/// Format a UUID the way libvirt does: lowercase, 8-4-4-4-12.
pub fn format_uuid(u: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(hex_digit(b >> 4));
        s.push(hex_digit(b & 0x0f));
    }
    s
}

fn hex_digit(n: u8) -> char {
    char::from_digit(u32::from(n), 16).unwrap_or('0')
}

/// Parse a UUID written as 32 hex digits, optionally with dashes between
/// bytes (as libvirt accepts) and surrounding whitespace.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    let mut n = 0usize;
    let mut chars = s.trim().chars().peekable();
    while let Some(c) = chars.next() {
        if c == '-' {
            // Dashes only between whole bytes, never first or doubled.
            if n == 0 || chars.peek() == Some(&'-') {
                return None;
            }
            continue;
        }
        let hi = c.to_digit(16)?;
        let lo = chars.next()?.to_digit(16)?;
        if n >= 16 {
            return None;
        }
        out[n] = ((hi << 4) | lo) as u8;
        n += 1;
    }
    if n == 16 && !s.trim().ends_with('-') {
        Some(out)
    } else {
        None
    }
}

/// Number of bytes in one `unit` as accepted by libvirt's scaled integers
/// (`b`, `bytes`, `KB`, `k`, `KiB`, `MB`, `M`, `MiB`, ... up to exa),
/// case-insensitively. `None` for an unknown unit.
pub fn unit_multiplier(unit: &str) -> Option<u64> {
    let u = unit.to_ascii_lowercase();
    if matches!(u.as_str(), "b" | "byte" | "bytes") {
        return Some(1);
    }
    let mut chars = u.chars();
    let power = match chars.next()? {
        'k' => 1,
        'm' => 2,
        'g' => 3,
        't' => 4,
        'p' => 5,
        'e' => 6,
        _ => return None,
    };
    let base: u64 = match chars.as_str() {
        "" | "ib" => 1024,
        "b" => 1000,
        _ => return None,
    };
    base.checked_pow(power)
}

/// Convert `value` in `unit` to KiB, rounding up like libvirt.
pub fn to_kib(value: u64, unit: &str) -> Option<u64> {
    let mult = unit_multiplier(unit)?;
    let bytes = value.checked_mul(mult)?;
    Some(bytes.div_ceil(1024))
}

/// Parse a MAC address `aa:bb:cc:dd:ee:ff` (also accepts `-` separators
/// and single-digit groups).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for slot in out.iter_mut() {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 || !p.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        *slot = u8::from_str_radix(p, 16).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(out)
}

/// Format a MAC address as libvirt does: lowercase, colon separated.
pub fn format_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests;
