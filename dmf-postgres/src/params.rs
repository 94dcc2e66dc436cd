//! [`Value`]s bound as statement parameters by the type PostgreSQL infers for each
//! placeholder (read from the prepared statement), each in that type's binary form exactly as
//! a binary COPY field of a column of that type carries it.

use dmf_core::Value;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use crate::copy::binary::{self, Refusal, Wire, kind_name};

/// One bound parameter: the binary form of its placeholder's type, or NULL.
#[derive(Debug)]
pub(crate) struct Param(Option<Vec<u8>>);

impl ToSql for Param {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match &self.0 {
            Some(bytes) => {
                out.extend_from_slice(bytes);
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        }
    }

    /// Any: [`bind`] encoded the value for the type of its placeholder.
    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// `values` bound to parameters of `types` (a prepared statement's: `$1` takes the first),
/// each encoded for its placeholder's type; NULL binds to any type. When a value does not fit,
/// the error says which parameter, its type and the value's kind.
pub(crate) fn bind(types: &[Type], values: &[Value]) -> Result<Vec<Param>, String> {
    if types.len() != values.len() {
        return Err(format!("the statement has {} parameters, but {} values were given", types.len(), values.len()));
    }
    types
        .iter()
        .zip(values)
        .enumerate()
        .map(|(i, (ty, value))| {
            if value.is_null() {
                return Ok(Param(None));
            }
            let refused = |why: &str| {
                format!("cannot bind a {} value to parameter ${} of type {ty}: {why}", kind_name(value), i + 1)
            };
            let wire = Wire::of(ty).ok_or_else(|| refused("DMF binds no value to that type (cast the placeholder)"))?;
            binary::parameter(wire, value).map(Param).map_err(|refusal| match refusal {
                Refusal::Kind => refused("no value of that kind converts to the type"),
                Refusal::Value => {
                    refused("the value is out of the type's range, or spelled in a way DMF does not read")
                }
            })
        })
        .collect()
}

/// The parameters as tokio-postgres takes them.
pub(crate) fn as_refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}
