//! libvirt's typed parameters: `{field: string, value: union switch (int type)}`, used by
//! the REMOTE program (e.g. CONNECT_SET_IDENTITY) and the ADMIN program alike.

use vireo_xdr::{Decoder, Xdr, XdrError};

/// `virTypedParameterType` numbers, the discriminant of a typed parameter's value.
pub mod param_type {
    pub const INT: i32 = 1;
    pub const UINT: i32 = 2;
    pub const LLONG: i32 = 3;
    pub const ULLONG: i32 = 4;
    pub const DOUBLE: i32 = 5;
    pub const BOOLEAN: i32 = 6;
    pub const STRING: i32 = 7;
}

/// The value of a typed parameter (`remote_typed_param_value`, a union on `int type`).
#[derive(Debug, Clone, PartialEq)]
pub enum TypedValue {
    Int(i32),
    UInt(u32),
    LLong(i64),
    ULLong(u64),
    Double(f64),
    /// Sent as an `int` (0/1), not an XDR bool.
    Boolean(bool),
    String(String),
}

impl Default for TypedValue {
    fn default() -> Self {
        TypedValue::Int(0)
    }
}

impl TypedValue {
    /// The union's discriminant.
    pub fn type_code(&self) -> i32 {
        match self {
            TypedValue::Int(_) => param_type::INT,
            TypedValue::UInt(_) => param_type::UINT,
            TypedValue::LLong(_) => param_type::LLONG,
            TypedValue::ULLong(_) => param_type::ULLONG,
            TypedValue::Double(_) => param_type::DOUBLE,
            TypedValue::Boolean(_) => param_type::BOOLEAN,
            TypedValue::String(_) => param_type::STRING,
        }
    }

    /// The value as an unsigned number, when it is an integer that fits.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            TypedValue::Int(v) => u64::try_from(v).ok(),
            TypedValue::UInt(v) => Some(v.into()),
            TypedValue::LLong(v) => u64::try_from(v).ok(),
            TypedValue::ULLong(v) => Some(v),
            TypedValue::Boolean(b) => Some(b.into()),
            TypedValue::Double(_) | TypedValue::String(_) => None,
        }
    }
}

/// One typed parameter (`remote_typed_param`): a field name and a tagged value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TypedParam {
    pub field: String,
    pub value: TypedValue,
}

impl TypedParam {
    pub fn new(field: impl Into<String>, value: TypedValue) -> Self {
        TypedParam {
            field: field.into(),
            value,
        }
    }

    pub fn uint(field: &str, v: u32) -> Self {
        Self::new(field, TypedValue::UInt(v))
    }

    pub fn int(field: &str, v: i32) -> Self {
        Self::new(field, TypedValue::Int(v))
    }

    pub fn boolean(field: &str, v: bool) -> Self {
        Self::new(field, TypedValue::Boolean(v))
    }

    pub fn string(field: &str, v: impl Into<String>) -> Self {
        Self::new(field, TypedValue::String(v.into()))
    }
}

impl Xdr for TypedParam {
    /// An empty field name, the discriminant and the smallest arm (4 bytes).
    const MIN_SIZE: usize = 12;

    fn encode(&self, out: &mut Vec<u8>) {
        self.field.encode(out);
        self.value.type_code().encode(out);
        match &self.value {
            TypedValue::Int(v) => v.encode(out),
            TypedValue::UInt(v) => v.encode(out),
            TypedValue::LLong(v) => v.encode(out),
            TypedValue::ULLong(v) => v.encode(out),
            TypedValue::Double(v) => v.encode(out),
            TypedValue::Boolean(b) => i32::from(*b).encode(out),
            TypedValue::String(s) => s.encode(out),
        }
    }

    fn decode(d: &mut Decoder<'_>) -> vireo_xdr::Result<Self> {
        let field = String::decode(d)?;
        let value = match i32::decode(d)? {
            param_type::INT => TypedValue::Int(i32::decode(d)?),
            param_type::UINT => TypedValue::UInt(u32::decode(d)?),
            param_type::LLONG => TypedValue::LLong(i64::decode(d)?),
            param_type::ULLONG => TypedValue::ULLong(u64::decode(d)?),
            param_type::DOUBLE => TypedValue::Double(f64::decode(d)?),
            // libvirt's boolean arm is an int: anything but 0 is true.
            param_type::BOOLEAN => TypedValue::Boolean(i32::decode(d)? != 0),
            param_type::STRING => TypedValue::String(String::decode(d)?),
            t => {
                return Err(XdrError::BadValue {
                    what: "typed parameter type",
                    value: t.into(),
                })
            }
        };
        Ok(TypedParam { field, value })
    }
}

/// Finds a parameter by name.
pub fn find<'a>(params: &'a [TypedParam], field: &str) -> Option<&'a TypedValue> {
    params.iter().find(|p| p.field == field).map(|p| &p.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_type() {
        for v in [
            TypedValue::Int(-5),
            TypedValue::UInt(7),
            TypedValue::LLong(-1 << 40),
            TypedValue::ULLong(1 << 50),
            TypedValue::Double(1.5),
            TypedValue::Boolean(true),
            TypedValue::String("x".into()),
        ] {
            let p = TypedParam::new("f", v);
            let b = vireo_xdr::to_bytes(&p);
            assert_eq!(vireo_xdr::from_bytes::<TypedParam>(&b).unwrap(), p);
        }
        let bad = [0, 0, 0, 1, b'f', 0, 0, 0, 0, 0, 0, 9];
        assert!(vireo_xdr::from_bytes::<TypedParam>(&bad).is_err());
    }
}
