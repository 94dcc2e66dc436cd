//! Rows as COPY text format: one line per row, fields separated by tabs, NULL as `\N`, and
//! `\`, tab, newline and carriage return escaped with a backslash. Every PostgreSQL type
//! accepts its input text here, so one encoding serves every column.

use dmf_core::Value;

use crate::types::pg_text;

/// Appends one row. `null[i]` forces column `i` to NULL (a foreign key deferred to a later
/// pass).
pub(crate) fn write_row<'a>(out: &mut Vec<u8>, values: impl Iterator<Item = &'a Value>, null: &[bool]) {
    for (i, value) in values.enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        match pg_text(value) {
            Some(text) if !null.get(i).copied().unwrap_or(false) => escape_into(out, &text),
            _ => out.extend_from_slice(b"\\N"),
        }
    }
    out.push(b'\n');
}

fn escape_into(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, byte) in bytes.iter().enumerate() {
        let escaped: &[u8] = match byte {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escaped);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, NaiveTime};

    use super::*;

    fn line(values: &[Value]) -> String {
        let mut out = Vec::new();
        write_row(&mut out, values.iter(), &[]);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_escapes_backslash_tab_newline_and_carriage_return() {
        assert_eq!(line(&[Value::Text("a\\b\tc\nd\re".into())]), "a\\\\b\\tc\\nd\\re\n");
        assert_eq!(line(&[Value::Text("\\N".into())]), "\\\\N\n");
        assert_eq!(line(&[Value::Text("héllo 🦀 \"q\" ,;|".into())]), "héllo 🦀 \"q\" ,;|\n");
        assert_eq!(line(&[Value::Text(String::new())]), "\n");
    }

    #[test]
    fn every_value_kind_has_its_copy_form() {
        let date = NaiveDate::from_ymd_opt(2024, 1, 31).unwrap();
        let time = NaiveTime::from_hms_micro_opt(23, 59, 58, 123_456).unwrap();
        let values = [
            Value::Null,
            Value::Bool(false),
            Value::Int(i64::MIN),
            Value::Float(-2.5),
            Value::Decimal("12345678901234567890123456789.0123456789".into()),
            Value::Bytes(vec![0x00, 0x5c, 0xff]),
            Value::Date(date),
            Value::Time(time),
            Value::Timestamp(date.and_time(time)),
            Value::TimestampTz(date.and_time(time).and_utc()),
            Value::Uuid(uuid::Uuid::nil()),
            Value::Json("{\"k\": \"tab\\there\"}".into()),
        ];
        assert_eq!(
            line(&values),
            [
                "\\N",
                "f",
                "-9223372036854775808",
                "-2.5",
                "12345678901234567890123456789.0123456789",
                "\\\\x005cff",
                "2024-01-31",
                "23:59:58.123456",
                "2024-01-31 23:59:58.123456",
                "2024-01-31 23:59:58.123456+00",
                "00000000-0000-0000-0000-000000000000",
                "{\"k\": \"tab\\\\there\"}",
            ]
            .join("\t")
                + "\n"
        );
    }

    #[test]
    fn deferred_columns_are_written_as_null() {
        let mut out = Vec::new();
        write_row(&mut out, [Value::Int(1), Value::Int(7), Value::Text("x".into())].iter(), &[false, true, false]);
        assert_eq!(out, b"1\t\\N\tx\n");
    }
}
