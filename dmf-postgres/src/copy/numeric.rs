//! `numeric` in PostgreSQL's binary form, from a decimal's text read as `numeric_in` reads it, and
//! back to the text `numeric_out` prints ([`read_text`]).
//!
//! The form: the number of base-10000 digits, the weight (the power of 10000 of the first
//! digit), the sign (`0x0000` positive, `0x4000` negative, `0xC000` NaN, `0xD000` and
//! `0xF000` ±Infinity), the display scale (digits after the point), then the digits, each an
//! i16. `12.3400` is digits `[12, 3400]`, weight 0, scale 4.

use super::binary::Refusal;

type BoxError = Box<dyn std::error::Error + Sync + Send>;

const POSITIVE: u16 = 0x0000;
const NEGATIVE: u16 = 0x4000;
const NAN: u16 = 0xC000;
const INFINITY: u16 = 0xD000;
const NEG_INFINITY: u16 = 0xF000;
/// The largest display scale the binary form carries (`NUMERIC_DSCALE_MASK`).
const MAX_SCALE: i64 = 0x3FFF;

/// Writes the decimal `text`: `[+-]digits[.digits][e[+-]digits]` (either side of the point may
/// be empty, not both), `NaN`, `[+-]Infinity` or `[+-]inf` in any case. Anything else
/// (surrounding spaces, say) is refused, for `numeric_in` to judge.
pub(crate) fn write_text(out: &mut Vec<u8>, text: &str) -> Result<(), Refusal> {
    if text.ends_with(|c: char| c.is_ascii_alphabetic()) {
        const SPECIAL: [(&str, u16); 7] = [
            ("NaN", NAN),
            ("Infinity", INFINITY),
            ("+Infinity", INFINITY),
            ("inf", INFINITY),
            ("+inf", INFINITY),
            ("-Infinity", NEG_INFINITY),
            ("-inf", NEG_INFINITY),
        ];
        let (_, sign) = SPECIAL.iter().find(|(name, _)| text.eq_ignore_ascii_case(name)).ok_or(Refusal::Value)?;
        header(out, 0, 0, *sign, 0);
        return Ok(());
    }
    let bytes = text.as_bytes();
    let (negative, rest) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, bytes),
    };
    let (int, rest) = rest.split_at(rest.iter().take_while(|b| b.is_ascii_digit()).count());
    let (frac, rest) = match rest.split_first() {
        Some((b'.', after)) => after.split_at(after.iter().take_while(|b| b.is_ascii_digit()).count()),
        _ => (&[][..], rest),
    };
    if int.is_empty() && frac.is_empty() {
        return Err(Refusal::Value);
    }
    let exponent = match rest.split_first() {
        None => 0,
        Some((b'e' | b'E', exponent)) => parse_exponent(exponent)?,
        Some(_) => return Err(Refusal::Value),
    };
    write_digits(out, negative, int, frac, exponent)
}

/// Writes an integer (scale 0).
pub(crate) fn write_int(out: &mut Vec<u8>, value: i64) {
    let mut buffer = [0_u8; 20];
    let mut start = buffer.len();
    let mut rest = value.unsigned_abs();
    loop {
        start -= 1;
        buffer[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    // Twenty digits and no exponent are always within the binary form's limits.
    let _ = write_digits(out, value < 0, &buffer[start..], &[], 0);
}

/// Writes a float as the text path does: its shortest text (`1e300`, `0.1`), NaN, ±Infinity.
pub(crate) fn write_float(out: &mut Vec<u8>, value: f64) -> Result<(), Refusal> {
    if value.is_nan() {
        header(out, 0, 0, NAN, 0);
        Ok(())
    } else if value.is_infinite() {
        header(out, 0, 0, if value > 0.0 { INFINITY } else { NEG_INFINITY }, 0);
        Ok(())
    } else {
        write_text(out, &format!("{value:?}"))
    }
}

/// `[+-]digits`, at most six of them (a larger exponent is out of range anyway: the weight and
/// scale it gives are checked afterwards).
fn parse_exponent(text: &[u8]) -> Result<i64, Refusal> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', digits)) => (true, digits),
        Some((b'+', digits)) => (false, digits),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 6 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Refusal::Value);
    }
    let magnitude = digits.iter().fold(0_i64, |n, d| n * 10 + i64::from(d - b'0'));
    Ok(if negative { -magnitude } else { magnitude })
}

/// Writes `±int.frac × 10^exponent` with the display scale `numeric_in` gives it: the digits
/// after the point, less the exponent, at least 0.
fn write_digits(out: &mut Vec<u8>, negative: bool, int: &[u8], frac: &[u8], exponent: i64) -> Result<(), Refusal> {
    let len = int.len() + frac.len();
    let digit = |i: i64| -> i16 {
        match usize::try_from(i) {
            Ok(i) if i < int.len() => i16::from(int[i] - b'0'),
            Ok(i) if i < len => i16::from(frac[i - int.len()] - b'0'),
            _ => 0,
        }
    };
    let (int_len, frac_len) = (i64::try_from(int.len()), i64::try_from(frac.len()));
    let (Ok(int_len), Ok(frac_len)) = (int_len, frac_len) else { return Err(Refusal::Value) };
    let scale = (frac_len - exponent).max(0);
    if scale > MAX_SCALE {
        return Err(Refusal::Value);
    }
    let scale = scale as u16;
    // Digit `i` is worth 10^(point - 1 - i).
    let point = int_len + exponent;
    let is_nonzero = |i: &i64| digit(*i) != 0;
    let (Some(first), Some(last)) =
        ((0..int_len + frac_len).find(is_nonzero), (0..int_len + frac_len).rfind(is_nonzero))
    else {
        // Zero, whatever its sign, is positive.
        header(out, 0, 0, POSITIVE, scale);
        return Ok(());
    };
    let weight = (point - 1 - first).div_euclid(4);
    let last_weight = (point - 1 - last).div_euclid(4);
    let (Ok(count), Ok(weight16)) = (i16::try_from(weight - last_weight + 1), i16::try_from(weight)) else {
        return Err(Refusal::Value);
    };
    header(out, count, weight16, if negative { NEGATIVE } else { POSITIVE }, scale);
    for group in (last_weight..=weight).rev() {
        // The four decimal digits worth 10^(4·group + 3) … 10^(4·group).
        let top = point - 1 - (4 * group + 3);
        let value = (0..4).fold(0_i16, |value, k| value * 10 + digit(top + k));
        out.extend_from_slice(&value.to_be_bytes());
    }
    Ok(())
}

fn header(out: &mut Vec<u8>, count: i16, weight: i16, sign: u16, scale: u16) {
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&scale.to_be_bytes());
}

/// Checks that `raw` is a well-formed binary `numeric` (see [`read_text`]).
pub(crate) fn check(raw: &[u8]) -> Result<(), BoxError> {
    parts(raw).map(drop)
}

/// The parts of a binary `numeric`: sign, weight, display scale and base-10000 digits.
struct NumericParts<'a> {
    sign: u16,
    weight: i16,
    scale: u16,
    /// Big-endian i16 digits, each 0..=9999.
    digits: &'a [u8],
}

impl NumericParts<'_> {
    fn digit(&self, index: i32) -> u16 {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.digits.get(2 * i..2 * i + 2))
            .map_or(0, |d| u16::from_be_bytes([d[0], d[1]]))
    }

    fn count(&self) -> i32 {
        (self.digits.len() / 2) as i32
    }
}

/// The parts of a binary `numeric`, checked: the digit count matches the digits, the sign is
/// one of the five, the scale within `NUMERIC_DSCALE_MASK`, each digit at most 9999.
fn parts(raw: &[u8]) -> Result<NumericParts<'_>, BoxError> {
    let (header, digits) = raw.split_first_chunk::<8>().ok_or("a numeric shorter than its header")?;
    let count = i16::from_be_bytes([header[0], header[1]]);
    let parts = NumericParts {
        weight: i16::from_be_bytes([header[2], header[3]]),
        sign: u16::from_be_bytes([header[4], header[5]]),
        scale: u16::from_be_bytes([header[6], header[7]]),
        digits,
    };
    if usize::try_from(count).ok().map(|c| 2 * c) != Some(digits.len()) {
        return Err("a numeric's digits do not match its digit count".into());
    }
    if !matches!(parts.sign, POSITIVE | NEGATIVE | NAN | INFINITY | NEG_INFINITY) {
        return Err(format!("a numeric with an unknown sign {:#06x}", parts.sign).into());
    }
    if i64::from(parts.scale) > MAX_SCALE {
        return Err(format!("a numeric with a display scale of {}", parts.scale).into());
    }
    if (0..parts.count()).any(|i| parts.digit(i) > 9999) {
        return Err("a numeric digit above 9999".into());
    }
    Ok(parts)
}

/// A binary `numeric` as `numeric_out` prints it: every integer digit, then exactly the display
/// scale's digits after the point (`12.30`, `-0.001`, `0`), or `NaN`, `Infinity`, `-Infinity`.
pub(crate) fn read_text(raw: &[u8]) -> Result<String, BoxError> {
    use std::fmt::Write as _;
    let parts = parts(raw)?;
    match parts.sign {
        NAN => return Ok("NaN".to_owned()),
        INFINITY => return Ok("Infinity".to_owned()),
        NEG_INFINITY => return Ok("-Infinity".to_owned()),
        _ => {}
    }
    let weight = i32::from(parts.weight);
    let scale = usize::from(parts.scale);
    let mut text = String::with_capacity(2 + 4 * (weight.max(0) as usize + 1) + scale);
    if parts.sign == NEGATIVE {
        text.push('-');
    }
    let mut index = 0;
    if weight < 0 {
        text.push('0');
        index = weight + 1;
    } else {
        while index <= weight {
            let digit = parts.digit(index);
            let _ = if index == 0 { write!(text, "{digit}") } else { write!(text, "{digit:04}") };
            index += 1;
        }
    }
    if scale > 0 {
        text.push('.');
        let end = text.len() + scale;
        while text.len() < end {
            let _ = write!(text, "{:04}", parts.digit(index));
            index += 1;
        }
        text.truncate(end);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `(digits, weight, sign, scale)` of `text`.
    fn parts(text: &str) -> (Vec<i16>, i16, u16, u16) {
        let mut out = Vec::new();
        write_text(&mut out, text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
        decode(&out)
    }

    fn decode(out: &[u8]) -> (Vec<i16>, i16, u16, u16) {
        let word = |i: usize| [out[2 * i], out[2 * i + 1]];
        let count = i16::from_be_bytes(word(0));
        assert_eq!(out.len(), 8 + 2 * count as usize);
        let digits = (0..count as usize).map(|i| i16::from_be_bytes(word(4 + i))).collect();
        (digits, i16::from_be_bytes(word(1)), u16::from_be_bytes(word(2)), u16::from_be_bytes(word(3)))
    }

    #[test]
    fn decimals_become_base_10000_digits_with_their_scale() {
        assert_eq!(parts("12.3400"), (vec![12, 3400], 0, POSITIVE, 4));
        assert_eq!(parts("-12.34"), (vec![12, 3400], 0, NEGATIVE, 2));
        assert_eq!(parts("0"), (vec![], 0, POSITIVE, 0));
        assert_eq!(parts("-0.000"), (vec![], 0, POSITIVE, 3));
        assert_eq!(parts("10000"), (vec![1], 1, POSITIVE, 0));
        assert_eq!(parts("123456789"), (vec![1, 2345, 6789], 2, POSITIVE, 0));
        assert_eq!(parts("0.0001"), (vec![1], -1, POSITIVE, 4));
        assert_eq!(parts("0.00001"), (vec![1000], -2, POSITIVE, 5));
        assert_eq!(parts(".5"), (vec![5000], -1, POSITIVE, 1));
        assert_eq!(parts("5."), (vec![5], 0, POSITIVE, 0));
        assert_eq!(parts("+007"), (vec![7], 0, POSITIVE, 0));
        assert_eq!(
            parts("12345678901234567890123456789.0123456789"),
            (vec![1, 2345, 6789, 123, 4567, 8901, 2345, 6789, 123, 4567, 8900], 7, POSITIVE, 10)
        );
    }

    #[test]
    fn exponents_move_the_point_and_lower_the_scale() {
        assert_eq!(parts("1e300"), (vec![1], 75, POSITIVE, 0));
        assert_eq!(parts("1.5e-7"), (vec![15], -2, POSITIVE, 8));
        assert_eq!(parts("1.23456E2"), (vec![123, 4560], 0, POSITIVE, 3));
        assert_eq!(parts("-2.5e+1"), (vec![25], 0, NEGATIVE, 0));
        assert_eq!(parts("1e-1000").3, 1000);
        assert_eq!(parts("1e131071"), (vec![1000], 32767, POSITIVE, 0));
        assert_eq!(parts("1e-16383").3, 16383);
    }

    #[test]
    fn special_values() {
        assert_eq!(parts("NaN"), (vec![], 0, NAN, 0));
        assert_eq!(parts("-Infinity"), (vec![], 0, NEG_INFINITY, 0));
        assert_eq!(parts("inf"), (vec![], 0, INFINITY, 0));
    }

    #[test]
    fn what_numeric_in_may_read_differently_is_left_to_it() {
        for text in [
            "",
            "-",
            ".",
            " 1",
            "1 ",
            "1e",
            "1e+",
            "1e1000000",
            "1e131072",
            "1e-16384",
            "1.2.3",
            "0x1F",
            "1_000",
            "e5",
            "١٢",
        ] {
            assert_eq!(write_text(&mut Vec::new(), text), Err(Refusal::Value), "{text:?}");
        }
        // Past the binary form's limits (scale 16383, weight ±32767).
        assert_eq!(write_text(&mut Vec::new(), &format!("0.{}", "1".repeat(16_384))), Err(Refusal::Value));
        assert_eq!(write_text(&mut Vec::new(), &format!("1{}", "0".repeat(131_072))), Err(Refusal::Value));
        assert!(write_text(&mut Vec::new(), &format!("0.{}", "1".repeat(16_383))).is_ok());
    }

    #[test]
    fn integers_and_floats() {
        let int = |i| {
            let mut out = Vec::new();
            write_int(&mut out, i);
            decode(&out)
        };
        assert_eq!(int(0), (vec![], 0, POSITIVE, 0));
        assert_eq!(int(-10_000), (vec![1], 1, NEGATIVE, 0));
        assert_eq!(int(i64::MIN), (vec![922, 3372, 368, 5477, 5808], 4, NEGATIVE, 0));
        let float = |f| {
            let mut out = Vec::new();
            write_float(&mut out, f).unwrap();
            decode(&out)
        };
        assert_eq!(float(0.1), (vec![1000], -1, POSITIVE, 1));
        assert_eq!(float(-0.0), (vec![], 0, POSITIVE, 1));
        assert_eq!(float(f64::NAN), (vec![], 0, NAN, 0));
        assert_eq!(float(f64::NEG_INFINITY), (vec![], 0, NEG_INFINITY, 0));
    }

    fn binary(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        write_text(&mut out, text).unwrap();
        out
    }

    #[test]
    fn numerics_print_as_numeric_out_does() {
        for text in [
            "0",
            "12.30",
            "-0.001",
            "10000",
            "99990000.0001",
            "0.00000001",
            "1234567890123456789.123456789",
            "-5",
            "NaN",
            "Infinity",
            "-Infinity",
            "0.0",
            "100000000",
        ] {
            assert_eq!(read_text(&binary(text)).unwrap(), text);
        }
    }

    #[test]
    fn malformed_numerics_are_refused() {
        assert!(read_text(&[0, 1, 0, 0, 0, 0, 0, 0]).is_err(), "a digit missing");
        assert!(read_text(&[0, 0, 0, 0, 0x12, 0x34, 0, 0]).is_err(), "unknown sign");
        assert!(read_text(&[0, 1, 0, 0, 0, 0, 0, 0, 0x27, 0x10]).is_err(), "digit 10000");
        assert!(read_text(&[0, 0]).is_err(), "short header");
        assert!(read_text(&[0, 0, 0, 0, 0, 0, 0x40, 0]).is_err(), "scale above 0x3FFF");
    }

    proptest! {
        /// Decimals in the form `numeric_out` prints (no leading zeros, any scale) come back
        /// as they were written.
        #[test]
        fn numerics_round_trip(negative: bool, int in "[1-9][0-9]{0,30}|0", frac in "[0-9]{0,30}") {
            let mut text = String::new();
            if negative && !(int == "0" && frac.chars().all(|c| c == '0')) {
                text.push('-');
            }
            text.push_str(&int);
            if !frac.is_empty() {
                text.push('.');
                text.push_str(&frac);
            }
            prop_assert_eq!(read_text(&binary(&text)).unwrap(), text);
        }
    }
}
