//! COPY data: rows in PostgreSQL's [text](text) or [binary](binary) COPY format, and the choice
//! between them ([`CopyFormat`]).

pub(crate) mod binary;
pub(crate) mod numeric;
pub(crate) mod text;

use std::fmt;
use std::str::FromStr;

use dmf_core::{Error, Value};

use binary::BinaryRows;

/// The format of the COPY data a [`PgLoader`](crate::PgLoader) sends, set with
/// [`PgDatabase::copy_format`](crate::PgDatabase::copy_format).
///
/// Both load exactly the same values: the binary form of each value is chosen by the target
/// column's type and follows what PostgreSQL's input function would make of the value's text.
/// Where it cannot (a table with a column of a type DMF has no binary encoding for, such as an
/// enum, a range, an array or `interval`; or a value whose kind has no exact binary form for its
/// column, such as text into a `uuid` column), the loader sends text instead: for the whole
/// table in the first case, for the rest of the run in the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum CopyFormat {
    /// `FORMAT binary`: each value in its column type's binary (`send`) form. PostgreSQL
    /// parses nothing, and DMF formats nothing as text.
    #[default]
    Binary,
    /// `FORMAT text`: each value as its input text, escaped.
    Text,
}

impl CopyFormat {
    /// The name in `COPY … (FORMAT name)`: `binary` or `text`.
    pub fn as_str(self) -> &'static str {
        match self {
            CopyFormat::Binary => "binary",
            CopyFormat::Text => "text",
        }
    }
}

impl fmt::Display for CopyFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CopyFormat {
    type Err = Error;

    /// `binary` or `text` (any case).
    fn from_str(text: &str) -> Result<Self, Error> {
        match text.to_ascii_lowercase().as_str() {
            "binary" => Ok(CopyFormat::Binary),
            "text" => Ok(CopyFormat::Text),
            _ => Err(Error::Config(format!("unknown COPY format `{text}`: expected `binary` or `text`"))),
        }
    }
}

/// How one COPY writes its rows.
#[derive(Clone, Copy)]
pub(crate) enum Encoder<'a> {
    /// Text format.
    Text,
    /// Binary format, for the columns' types.
    Binary(&'a BinaryRows),
}

impl Encoder<'_> {
    /// Appends what comes before the first row.
    pub(crate) fn start(&self, out: &mut Vec<u8>) {
        if let Encoder::Binary(_) = self {
            out.extend_from_slice(binary::HEADER);
        }
    }

    /// Appends one row; `null[i]` forces column `i` to NULL (a foreign key deferred to a
    /// later pass).
    pub(crate) fn write_row<'v>(
        &self,
        out: &mut Vec<u8>,
        values: impl Iterator<Item = &'v Value>,
        null: &[bool],
    ) -> Result<(), binary::Unencodable> {
        match self {
            Encoder::Text => {
                text::write_row(out, values, null);
                Ok(())
            }
            Encoder::Binary(rows) => rows.write_row(out, values, null),
        }
    }

    /// Appends what comes after the last row.
    pub(crate) fn end(&self, out: &mut Vec<u8>) {
        if let Encoder::Binary(_) = self {
            out.extend_from_slice(binary::TRAILER);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_print() {
        assert_eq!("binary".parse::<CopyFormat>().unwrap(), CopyFormat::Binary);
        assert_eq!("TEXT".parse::<CopyFormat>().unwrap(), CopyFormat::Text);
        assert_eq!(CopyFormat::Binary.to_string(), "binary");
        let error = "csv".parse::<CopyFormat>().unwrap_err().to_string();
        assert!(error.contains("unknown COPY format `csv`"), "{error}");
    }
}
