//! The authentication calls of the REMOTE program: AUTH_LIST's answer types, the SASL
//! exchange (AUTH_SASL_INIT / START / STEP) and AUTH_POLKIT, in libvirt's field order.

use vireo_xdr::{xdr_struct, Decoder, Xdr};

/// Procedure numbers (REMOTE program).
pub mod procs {
    pub const AUTH_LIST: i32 = 66;
    pub const AUTH_SASL_INIT: i32 = 67;
    pub const AUTH_SASL_START: i32 = 68;
    pub const AUTH_SASL_STEP: i32 = 69;
    pub const AUTH_POLKIT: i32 = 70;
}

/// `remote_auth_type`.
pub const AUTH_NONE: i32 = 0;
pub const AUTH_SASL: i32 = 1;
pub const AUTH_POLKIT: i32 = 2;

/// libvirt's `REMOTE_AUTH_SASL_DATA_MAX`.
pub const SASL_DATA_MAX: usize = 65536;

/// libvirt's `char data<REMOTE_AUTH_SASL_DATA_MAX>`: rpcgen sends each byte as a 4-byte
/// int (sign-extended, as C's `char` is signed here); no NUL is added.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SaslData(pub Vec<u8>);

impl Xdr for SaslData {
    const MIN_SIZE: usize = 4;
    fn encode(&self, out: &mut Vec<u8>) {
        let n = self.0.len().min(SASL_DATA_MAX);
        (n as u32).encode(out);
        for &b in &self.0[..n] {
            (b as i8 as i32).encode(out);
        }
    }
    fn decode(d: &mut Decoder<'_>) -> vireo_xdr::Result<Self> {
        let n = d.count(SASL_DATA_MAX, 4)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(d.u32()? as u8);
        }
        Ok(SaslData(v))
    }
}

xdr_struct! { pub struct AuthSaslInitRet { pub mechlist: String } }
xdr_struct! {
    pub struct AuthSaslStartArgs {
        pub mech: String,
        pub nil: i32,
        pub data: SaslData,
    }
}
xdr_struct! {
    pub struct AuthSaslStartRet {
        pub complete: i32,
        pub nil: i32,
        pub data: SaslData,
    }
}
xdr_struct! {
    pub struct AuthSaslStepArgs {
        pub nil: i32,
        pub data: SaslData,
    }
}
/// AUTH_SASL_STEP's answer has AUTH_SASL_START's shape.
pub type AuthSaslStepRet = AuthSaslStartRet;
xdr_struct! {
    /// AUTH_POLKIT's answer (the call has no arguments): 1 once polkit said yes.
    pub struct AuthPolkitRet { pub complete: i32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_data_is_four_bytes_a_byte() {
        let a = AuthSaslStepArgs {
            nil: 0,
            data: SaslData(vec![b'n', 0xC3]),
        };
        let b = vireo_xdr::to_bytes(&a);
        assert_eq!(
            b,
            [0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, b'n', 0xff, 0xff, 0xff, 0xC3]
        );
        assert_eq!(vireo_xdr::from_bytes::<AuthSaslStepArgs>(&b).unwrap(), a);
    }
}
