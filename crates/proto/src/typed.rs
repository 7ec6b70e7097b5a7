//! libvirt's typed parameters: `{field: string, value: union switch (int type)}`.

use vireo_xdr::{Decoder, Result, Xdr, XdrError};

#[derive(Debug, Clone, PartialEq)]
pub enum TypedValue {
    Int(i32),
    UInt(u32),
    LLong(i64),
    ULLong(u64),
    Double(f64),
    Boolean(bool),
    String(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TypedParam {
    pub field: String,
    pub value: TypedValue,
}

impl TypedParam {
    pub fn new(field: &str, value: TypedValue) -> Self {
        TypedParam {
            field: field.into(),
            value,
        }
    }
}

impl Default for TypedParam {
    fn default() -> Self {
        TypedParam::new("", TypedValue::Int(0))
    }
}

impl Xdr for TypedParam {
    const MIN_SIZE: usize = 12;
    fn encode(&self, out: &mut Vec<u8>) {
        self.field.encode(out);
        match &self.value {
            TypedValue::Int(v) => {
                1i32.encode(out);
                v.encode(out)
            }
            TypedValue::UInt(v) => {
                2i32.encode(out);
                v.encode(out)
            }
            TypedValue::LLong(v) => {
                3i32.encode(out);
                v.encode(out)
            }
            TypedValue::ULLong(v) => {
                4i32.encode(out);
                v.encode(out)
            }
            TypedValue::Double(v) => {
                5i32.encode(out);
                v.encode(out)
            }
            TypedValue::Boolean(v) => {
                6i32.encode(out);
                (*v as i32).encode(out)
            }
            TypedValue::String(v) => {
                7i32.encode(out);
                v.encode(out)
            }
        }
    }
    fn decode(d: &mut Decoder<'_>) -> Result<Self> {
        let field = String::decode(d)?;
        let value = match i32::decode(d)? {
            1 => TypedValue::Int(i32::decode(d)?),
            2 => TypedValue::UInt(u32::decode(d)?),
            3 => TypedValue::LLong(i64::decode(d)?),
            4 => TypedValue::ULLong(u64::decode(d)?),
            5 => TypedValue::Double(f64::decode(d)?),
            6 => TypedValue::Boolean(i32::decode(d)? != 0),
            7 => TypedValue::String(String::decode(d)?),
            t => {
                return Err(XdrError::BadValue {
                    what: "typed parameter type",
                    value: t as i64,
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
        assert!(
            vireo_xdr::from_bytes::<TypedParam>(&[0, 0, 0, 1, b'f', 0, 0, 0, 0, 0, 0, 9]).is_err()
        );
    }
}
