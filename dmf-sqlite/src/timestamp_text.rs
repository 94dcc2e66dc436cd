//! The text form of timestamps, written and read without chrono's format-string interpreter.
//!
//! A load writes one timestamp per row and column, and an extract reads one, so these sit on
//! the hot path: chrono's `format`/`parse_from_str` interpret their format string for every
//! value, which took about a tenth of a SQLite-to-SQLite load's CPU. The functions here handle
//! the common form, `YYYY-MM-DD HH:MM:SS[.fraction]` (or with `T`), directly; every other form
//! goes back to chrono, so the results are the same as before, only sooner.
//!
//! A whole second is written without a fraction (`2024-01-02 03:04:05`, as SQLite's own
//! `datetime()` writes it), any other with six digits (`…:05.120000`): a timestamp read from
//! SQLite, PostgreSQL or SQL Server and written back keeps its text form in the common case, and
//! every value reads back as the instant it was.

use chrono::{NaiveDate, NaiveDateTime, Timelike};

/// `YYYY-MM-DD HH:MM:SS.ffffff`, as chrono's `%Y-%m-%d %H:%M:%S%.6f` writes it, without the
/// `.ffffff` when it is `.000000`, followed by `suffix`. Fractions finer than a microsecond are
/// cut, as before.
pub(crate) fn format_timestamp(ts: &NaiveDateTime, suffix: &str) -> String {
    use chrono::Datelike;
    let (year, nanos) = (ts.year(), ts.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        // Signed or five-digit years, leap seconds: chrono's own rules.
        let fraction = if nanos / 1000 == 0 { "" } else { "%.6f" };
        return format!("{}{suffix}", ts.format(&format!("%Y-%m-%d %H:%M:%S{fraction}")));
    }
    let mut out = String::with_capacity(26 + suffix.len());
    push_digits(&mut out, year.unsigned_abs(), 4);
    out.push('-');
    push_digits(&mut out, ts.month(), 2);
    out.push('-');
    push_digits(&mut out, ts.day(), 2);
    out.push(' ');
    push_digits(&mut out, ts.hour(), 2);
    out.push(':');
    push_digits(&mut out, ts.minute(), 2);
    out.push(':');
    push_digits(&mut out, ts.second(), 2);
    if nanos / 1000 != 0 {
        out.push('.');
        push_digits(&mut out, nanos / 1000, 6);
    }
    out.push_str(suffix);
    out
}

/// Appends `value`'s last `width` decimal digits, zero-padded.
fn push_digits(out: &mut String, value: u32, width: u32) {
    for place in (0..width).rev() {
        let digit = value / 10u32.pow(place) % 10;
        out.push(char::from(b'0' + digit as u8));
    }
}

/// Reads `YYYY-MM-DD HH:MM:SS[.fraction]` or `YYYY-MM-DDTHH:MM:SS[.fraction]` (1 to 9
/// fraction digits); `None` for any other text, which the caller then gives to chrono.
pub(crate) fn parse_common_timestamp(text: &str) -> Option<NaiveDateTime> {
    let b = text.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b' ' | b'T') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |n, &c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')))
    };
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            let value = number(20..b.len())?;
            value * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    let year = i32::try_from(number(0..4)?).ok()?;
    NaiveDate::from_ymd_opt(year, number(5..7)?, number(8..10)?)?.and_hms_nano_opt(
        number(11..13)?,
        number(14..16)?,
        number(17..19)?,
        nanos,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_and_reads_the_common_form() {
        let ts = NaiveDate::from_ymd_opt(2021, 3, 4).and_then(|d| d.and_hms_micro_opt(5, 6, 7, 8)).unwrap();
        assert_eq!(format_timestamp(&ts, ""), "2021-03-04 05:06:07.000008");
        assert_eq!(format_timestamp(&ts, "+00:00"), "2021-03-04 05:06:07.000008+00:00");
        assert_eq!(parse_common_timestamp("2021-03-04 05:06:07.000008"), Some(ts));
        assert_eq!(parse_common_timestamp("2021-03-04T05:06:07.000008"), Some(ts));
        assert_eq!(parse_common_timestamp("2021-03-04 05:06:07.8"), ts.with_nanosecond(800_000_000));
        assert_eq!(parse_common_timestamp("2021-03-04 05:06:07"), ts.with_nanosecond(0));
    }

    #[test]
    fn a_whole_second_is_written_without_a_fraction() {
        let text = "2024-01-02 03:04:05";
        let ts = parse_common_timestamp(text).unwrap();
        assert_eq!(format_timestamp(&ts, ""), text, "no `.000000` added");
        assert_eq!(format_timestamp(&ts, "+00:00"), "2024-01-02 03:04:05+00:00");
        let below_a_microsecond = ts.with_nanosecond(999).unwrap();
        assert_eq!(format_timestamp(&below_a_microsecond, ""), text, "cut to microseconds, as before");
        assert_eq!(format_timestamp(&ts.with_nanosecond(120_000_000).unwrap(), ""), "2024-01-02 03:04:05.120000");
    }

    #[test]
    fn leaves_other_forms_to_chrono() {
        for text in [
            "2021-03-04 05:06",
            "2021-03-04",
            "2021-03-04 05:06:07.",
            "2021-03-04 05:06:07.1234567890",
            "2021-02-30 05:06:07",
            "2021-03-04 25:06:07",
            "2021-03-04 05:06:07+00:00",
            "２０２１-03-04 05:06:07",
            "+2021-03-04 05:06:07",
        ] {
            assert_eq!(parse_common_timestamp(text), None, "{text}");
        }
        let far = NaiveDate::from_ymd_opt(12345, 1, 2).and_then(|d| d.and_hms_opt(3, 4, 5)).unwrap();
        assert_eq!(format_timestamp(&far, ""), "+12345-01-02 03:04:05");
        let far_fraction = far.with_nanosecond(5_000).unwrap();
        assert_eq!(format_timestamp(&far_fraction, ""), "+12345-01-02 03:04:05.000005");
    }

    proptest! {
        #[test]
        fn agrees_with_chrono(seconds in -62_135_596_800i64..253_402_300_799, nanos in 0u32..1_000_000_000) {
            let ts = chrono::DateTime::from_timestamp(seconds, nanos).unwrap().naive_utc();
            let text = format_timestamp(&ts, "");
            let six = ts.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
            prop_assert_eq!(&text, six.strip_suffix(".000000").unwrap_or(&six));
            prop_assert_eq!(
                parse_common_timestamp(&text),
                NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f").ok()
            );
            let full = ts.format("%Y-%m-%dT%H:%M:%S%.9f").to_string();
            prop_assert_eq!(parse_common_timestamp(&full), Some(ts));
        }
    }
}
