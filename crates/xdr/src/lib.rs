//! XDR (RFC 4506) as libvirt's RPC protocol uses it.
//!
//! Every decoder checks the remaining input and the declared maximum **before** it allocates,
//! so a hostile length word costs nothing. The [`xdr_struct!`] and [`xdr_enum!`] macros let
//! `proto` declare argument/return structs in a few lines each.

use thiserror::Error;

/// libvirt's `REMOTE_STRING_MAX`: longest string accepted anywhere.
pub const STRING_MAX: usize = 4 * 1024 * 1024;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum XdrError {
    #[error("truncated payload: need {need} bytes at offset {at}, have {have}")]
    Truncated { at: usize, need: usize, have: usize },
    #[error("array length {len} exceeds maximum {max}")]
    TooLong { len: usize, max: usize },
    #[error("string is not valid UTF-8")]
    Utf8,
    #[error("invalid value {value} for {what}")]
    BadValue { what: &'static str, value: i64 },
    #[error("{0} trailing bytes after payload")]
    Trailing(usize),
}

pub type Result<T> = std::result::Result<T, XdrError>;

/// A cursor over a received payload.
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Decoder { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    /// Takes `n` raw bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(XdrError::Truncated {
                at: self.pos,
                need: n,
                have: self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Takes `n` bytes plus the XDR padding to the next multiple of 4.
    pub fn take_padded(&mut self, n: usize) -> Result<&'a [u8]> {
        let padded = n.checked_add(pad_len(n)).ok_or(XdrError::TooLong {
            len: n,
            max: usize::MAX - 3,
        })?;
        let s = self.take(padded)?;
        Ok(&s[..n])
    }

    pub fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// Reads an array count and checks it against `max` and against what is left to read,
    /// given that every element takes at least `min_elem` bytes.
    pub fn count(&mut self, max: usize, min_elem: usize) -> Result<usize> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(XdrError::TooLong { len: n, max });
        }
        let need = n.saturating_mul(min_elem);
        if need > self.remaining() {
            return Err(XdrError::Truncated {
                at: self.pos,
                need,
                have: self.remaining(),
            });
        }
        Ok(n)
    }

    /// Succeeds only when the whole buffer was consumed.
    pub fn finish(&self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(XdrError::Trailing(n)),
        }
    }
}

pub fn pad_len(n: usize) -> usize {
    (4 - n % 4) % 4
}

/// A value with an XDR representation.
pub trait Xdr: Sized {
    /// The fewest bytes one value can take on the wire; used to bound array counts.
    const MIN_SIZE: usize = 4;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(d: &mut Decoder<'_>) -> Result<Self>;
}

/// Decodes a whole payload, ignoring trailing bytes as libvirtd does.
pub fn from_bytes<T: Xdr>(buf: &[u8]) -> Result<T> {
    let mut d = Decoder::new(buf);
    T::decode(&mut d)
}

pub fn to_bytes<T: Xdr>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    v.encode(&mut out);
    out
}

impl Xdr for () {
    const MIN_SIZE: usize = 0;
    fn encode(&self, _out: &mut Vec<u8>) {}
    fn decode(_d: &mut Decoder<'_>) -> Result<Self> {
        Ok(())
    }
}

impl Xdr for u32 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn decode(d: &mut Decoder<'_>) -> Result<Self> {
        d.u32()
    }
}

impl Xdr for i32 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn decode(d: &mut Decoder<'_>) -> Result<Self> {
        Ok(d.u32()? as i32)
    }
}

impl Xdr for u64 {
    const MIN_SIZE: usize = 8;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn decode(d: &mut Decoder<'_>) -> Result<Self> {
        d.u64()
    }
}

impl Xdr for i64 {
    const MIN_SIZE: usize = 8;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn decode(d: &mut Decoder<'_>) -> Result<Self> {
        Ok(d.u64()? as i64)
    }
}

impl Xdr for f64 {
    const MIN_SIZE: usize = 8;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bits().to_be_bytes());
    }
    fn decode(d: &mut Decoder<'_>) -> Result<Self> {
        Ok(f64::from_bits(d.u64()?))
    }
}

/// XDR `bool` (a 4-byte 0 or 1). libvirt mostly uses `int` for flags; this is for the few real bools.
impl Xdr for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        (*self as u32).encode(out);
    }
    fn decode(d: &mut Decoder<'_>) -> Result<Self> {
        match d.u32()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(XdrError::BadValue {
                what: "bool",
                value: v as i64,
            }),
        }
    }
}

/// `string<STRING_MAX>` (libvirt's `remote_nonnull_string`).
impl Xdr for String {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_opaque(self.as_bytes(), out);
    }
    fn decode(d: &mut Decoder<'_>) -> Result<Self> {
        let n = d.count(STRING_MAX, 1)?;
        let b = d.take_padded(n)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| XdrError::Utf8)
    }
}

/// Optional data (`T *`): a 4-byte 0/1 then the value.
impl<T: Xdr> Xdr for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => 0u32.encode(out),
            Some(v) => {
                1u32.encode(out);
                v.encode(out);
            }
        }
    }
    fn decode(d: &mut Decoder<'_>) -> Result<Self> {
        match d.u32()? {
            0 => Ok(None),
            1 => Ok(Some(T::decode(d)?)),
            v => Err(XdrError::BadValue {
                what: "optional-data flag",
                value: v as i64,
            }),
        }
    }
}

/// Fixed-length opaque data (`opaque[N]`), e.g. a UUID.
impl<const N: usize> Xdr for [u8; N] {
    const MIN_SIZE: usize = N + (4 - N % 4) % 4;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
        out.resize(out.len() + pad_len(N), 0);
    }
    fn decode(d: &mut Decoder<'_>) -> Result<Self> {
        let b = d.take_padded(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }
}

fn encode_opaque(b: &[u8], out: &mut Vec<u8>) {
    (b.len() as u32).encode(out);
    out.extend_from_slice(b);
    out.resize(out.len() + pad_len(b.len()), 0);
}

/// Variable-length array `T<MAX>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Array<T, const MAX: usize>(pub Vec<T>);

impl<T: Xdr, const MAX: usize> Xdr for Array<T, MAX> {
    fn encode(&self, out: &mut Vec<u8>) {
        (self.0.len() as u32).encode(out);
        for v in &self.0 {
            v.encode(out);
        }
    }
    fn decode(d: &mut Decoder<'_>) -> Result<Self> {
        let n = d.count(MAX, T::MIN_SIZE)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(T::decode(d)?);
        }
        Ok(Array(v))
    }
}

impl<T, const MAX: usize> From<Vec<T>> for Array<T, MAX> {
    fn from(v: Vec<T>) -> Self {
        Array(v)
    }
}

/// Variable-length opaque data `opaque<MAX>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Opaque<const MAX: usize>(pub Vec<u8>);

impl<const MAX: usize> Xdr for Opaque<MAX> {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_opaque(&self.0, out);
    }
    fn decode(d: &mut Decoder<'_>) -> Result<Self> {
        let n = d.count(MAX, 1)?;
        Ok(Opaque(d.take_padded(n)?.to_vec()))
    }
}

/// libvirt's `char x<MAX>`: rpcgen sends each char as a 4-byte int, and libvirt counts the
/// trailing NUL. Holds the text without the NUL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CharArray<const MAX: usize>(pub String);

impl<const MAX: usize> Xdr for CharArray<MAX> {
    fn encode(&self, out: &mut Vec<u8>) {
        let b = self.0.as_bytes();
        let n = (b.len() + 1).min(MAX);
        (n as u32).encode(out);
        for i in 0..n {
            (*b.get(i).unwrap_or(&0) as i32).encode(out);
        }
    }
    fn decode(d: &mut Decoder<'_>) -> Result<Self> {
        let n = d.count(MAX, 4)?;
        let mut s = Vec::with_capacity(n);
        for _ in 0..n {
            s.push(d.u32()? as u8);
        }
        Ok(CharArray(chars_to_string(s)))
    }
}

/// libvirt's fixed `char x[N]`: N 4-byte ints, NUL-padded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FixedChars<const N: usize>(pub String);

impl<const N: usize> Xdr for FixedChars<N> {
    const MIN_SIZE: usize = 4 * N;
    fn encode(&self, out: &mut Vec<u8>) {
        let b = self.0.as_bytes();
        for i in 0..N {
            // Keep the last slot NUL, as a C string must end in one.
            let c = if i + 1 < N {
                *b.get(i).unwrap_or(&0)
            } else {
                0
            };
            (c as i32).encode(out);
        }
    }
    fn decode(d: &mut Decoder<'_>) -> Result<Self> {
        let mut s = Vec::with_capacity(N);
        for _ in 0..N {
            s.push(d.u32()? as u8);
        }
        Ok(FixedChars(chars_to_string(s)))
    }
}

fn chars_to_string(mut s: Vec<u8>) -> String {
    if let Some(p) = s.iter().position(|&c| c == 0) {
        s.truncate(p);
    }
    String::from_utf8_lossy(&s).into_owned()
}

/// Declares a struct whose XDR form is its fields in order.
#[macro_export]
macro_rules! xdr_struct {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Default)]
        pub struct $name { $($(#[$fm])* pub $f: $t),* }
        impl $crate::Xdr for $name {
            const MIN_SIZE: usize = 0 $(+ <$t as $crate::Xdr>::MIN_SIZE)*;
            fn encode(&self, out: &mut Vec<u8>) {
                $( $crate::Xdr::encode(&self.$f, out); )*
                let _ = out;
            }
            fn decode(d: &mut $crate::Decoder<'_>) -> $crate::Result<Self> {
                let _ = &d;
                Ok($name { $($f: <$t as $crate::Xdr>::decode(d)?),* })
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    xdr_struct! {
        pub struct Sample {
            pub name: String,
            pub uuid: [u8; 16],
            pub id: i32,
            pub opt: Option<String>,
        }
    }

    #[test]
    fn string_padding_matches_libvirt() {
        assert_eq!(to_bytes(&"wp1".to_string()), hex("0000000377703100"));
        assert_eq!(to_bytes(&String::new()), hex("00000000"));
        assert_eq!(to_bytes(&"abcd".to_string()), hex("0000000461626364"));
    }

    #[test]
    fn struct_roundtrip() {
        let s = Sample {
            name: "vm".into(),
            uuid: [7; 16],
            id: -1,
            opt: Some("x".into()),
        };
        let b = to_bytes(&s);
        assert_eq!(b.len(), 8 + 16 + 4 + 4 + 8);
        assert_eq!(from_bytes::<Sample>(&b).unwrap(), s);
        assert_eq!(Sample::MIN_SIZE, 4 + 16 + 4 + 4);
    }

    #[test]
    fn char_arrays_are_four_bytes_per_char() {
        let b = to_bytes(&CharArray::<257>("none".into()));
        assert_eq!(b, hex("000000050000006e0000006f0000006e0000006500000000"));
        assert_eq!(from_bytes::<CharArray<257>>(&b).unwrap().0, "none");
        let f = to_bytes(&FixedChars::<32>("x86_64".into()));
        assert_eq!(f.len(), 128);
        assert_eq!(from_bytes::<FixedChars<32>>(&f).unwrap().0, "x86_64");
    }

    #[test]
    fn hostile_lengths_fail_before_allocating() {
        // A string claiming 4 GiB.
        assert!(matches!(
            from_bytes::<String>(&hex("ffffffff")),
            Err(XdrError::TooLong { .. })
        ));
        // A string claiming more than is there.
        assert!(matches!(
            from_bytes::<String>(&hex("0000001000")),
            Err(XdrError::Truncated { .. })
        ));
        // An array within its maximum but longer than the buffer could hold.
        assert!(matches!(
            from_bytes::<Array<Sample, 16384>>(&hex("00004000")),
            Err(XdrError::Truncated { .. })
        ));
        assert!(matches!(
            from_bytes::<Array<u32, 2>>(&hex("00000003000000010000000200000003")),
            Err(XdrError::TooLong { len: 3, max: 2 })
        ));
        assert!(matches!(
            from_bytes::<Option<u32>>(&hex("00000002")),
            Err(XdrError::BadValue { .. })
        ));
        assert!(from_bytes::<String>(&hex("00000002ffff0000")).is_err());
    }

    #[test]
    fn trailing_detected_by_finish() {
        let b = hex("0000000100000002");
        let mut d = Decoder::new(&b);
        assert_eq!(u32::decode(&mut d).unwrap(), 1);
        assert_eq!(d.finish(), Err(XdrError::Trailing(4)));
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
