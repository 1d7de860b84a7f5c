//! Bind parameters of extended-protocol queries. Each variant checks the
//! type the server inferred, so a generator mistake fails loudly instead of
//! failing the same way on both sides (which would count as equal).

use std::error::Error;

use bytes::BytesMut;
use tokio_postgres::types::{Format, IsNull, ToSql, Type, to_sql_checked};

/// One `$n` value.
#[derive(Debug, Clone)]
pub enum Param {
    /// `integer`, binary.
    Int4(i32),
    /// `bigint`, binary.
    Int8(i64),
    /// `bigint[]`, binary.
    Int8Array(Vec<i64>),
    /// `text`, binary (UTF-8 bytes).
    Text(String),
    /// `uuid`, binary (16 bytes).
    Uuid([u8; 16]),
    /// Any type, sent in text format: the server (and the router) parse it
    /// as they parse a literal.
    TextFormat(String),
}

/// The parameter's type does not match what the server inferred.
fn wrong_type(param: &Param, ty: &Type) -> Box<dyn Error + Sync + Send> {
    format!("test generator bug: {param:?} bound to a parameter of type {ty}").into()
}

impl ToSql for Param {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match (self, ty) {
            (Param::Int4(v), &Type::INT4) => v.to_sql(ty, out),
            (Param::Int8(v), &Type::INT8) => v.to_sql(ty, out),
            (Param::Int8Array(v), &Type::INT8_ARRAY) => v.to_sql(ty, out),
            (Param::Text(v), &Type::TEXT) => v.to_sql(ty, out),
            (Param::Uuid(bytes), &Type::UUID) => {
                out.extend_from_slice(bytes);
                Ok(IsNull::No)
            }
            (Param::TextFormat(v), _) => {
                out.extend_from_slice(v.as_bytes());
                Ok(IsNull::No)
            }
            _ => Err(wrong_type(self, ty)),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, _: &Type) -> Format {
        match self {
            Param::TextFormat(_) => Format::Text,
            _ => Format::Binary,
        }
    }

    to_sql_checked!();
}
