//! NULL parameters become the `NULL` keyword before a statement goes over the wire.
//!
//! tiberius sends a `NULL` parameter with the TDS type `NULLTYPE` (0x1F) and declares it
//! `nvarchar(4000)` in `sp_executesql`. A server may refuse the type byte (Babelfish answers
//! error 8009 "Data type 0x1F is unknown"), and SQL Server refuses the declared type where no
//! implicit conversion exists (an `nvarchar` NULL into a `varbinary` or `datetimeoffset`
//! column). The keyword `NULL` converts to every type, so each `@Pn` whose value is NULL is
//! written as `NULL` and the remaining parameters are renumbered. This is not a value spliced
//! into SQL: the keyword is a constant, and every other value still travels as a parameter.

use std::borrow::Cow;

use dmf_core::Value;

/// `sql` with every reference to a NULL parameter written as `NULL` and the others renumbered
/// from `@P1`, and the values that remain to be bound, in order.
///
/// References inside string literals, quoted identifiers and comments are left alone, as is
/// anything longer that merely starts with `@P` and digits (`@P1x`, `@@P1`).
pub(crate) fn inline_null_params<'a>(sql: &'a str, params: &'a [Value]) -> (Cow<'a, str>, Vec<&'a Value>) {
    if !params.iter().any(Value::is_null) {
        return (Cow::Borrowed(sql), params.iter().collect());
    }
    // The new number of each parameter (None: written as NULL), indexed by old number - 1.
    let mut renumbered = Vec::with_capacity(params.len());
    let mut next = 0usize;
    for value in params {
        if value.is_null() {
            renumbered.push(None);
        } else {
            next += 1;
            renumbered.push(Some(next));
        }
    }
    let mut out = String::with_capacity(sql.len());
    let bytes = sql.as_bytes();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => i = skip_quoted(bytes, i, b'\''),
            b'"' => i = skip_quoted(bytes, i, b'"'),
            b'[' => i = skip_quoted(bytes, i, b']'),
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = bytes[i..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |n| i + n + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = skip_block_comment(bytes, i),
            b'@' => {
                let Some((number, end)) = parameter_at(bytes, i) else {
                    // Skip the whole word so that `@@P1`'s second `@` is not taken for a start.
                    i = word_end(bytes, i + 1);
                    continue;
                };
                // A number with no value is left as it is: the server will name it.
                if let Some(new) = renumbered.get(number.wrapping_sub(1)) {
                    out.push_str(&sql[copied..i]);
                    match new {
                        Some(n) => {
                            out.push_str("@P");
                            out.push_str(&n.to_string());
                        }
                        None => out.push_str("NULL"),
                    }
                    copied = end;
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied..]);
    (Cow::Owned(out), params.iter().filter(|v| !v.is_null()).collect())
}

/// Past the literal or identifier opened at `start` by its quote and closed by `close`, where
/// a doubled `close` stands for itself.
fn skip_quoted(bytes: &[u8], start: usize, close: u8) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        if bytes[i] == close {
            if bytes.get(i + 1) == Some(&close) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

/// Past the block comment opened at `start` (T-SQL block comments nest).
fn skip_block_comment(bytes: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'@' | b'#' | b'$') || b >= 0x80
}

fn word_end(bytes: &[u8], from: usize) -> usize {
    bytes[from..].iter().position(|&b| !is_word_byte(b)).map_or(bytes.len(), |n| from + n)
}

/// The number of the parameter `@Pn` at `at` and the position after it, when the word there is
/// exactly `@P` and digits and does not continue a longer word.
fn parameter_at(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    if at > 0 && is_word_byte(bytes[at - 1]) {
        return None;
    }
    if !matches!(bytes.get(at + 1), Some(b'P' | b'p')) {
        return None;
    }
    let end = word_end(bytes, at + 1);
    let digits = &bytes[at + 2..end];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok().map(|n| (n, end))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn run(sql: &str, params: &[Value]) -> (String, Vec<Value>) {
        let (sql, kept) = inline_null_params(sql, params);
        (sql.into_owned(), kept.into_iter().cloned().collect())
    }

    #[test]
    fn without_nulls_the_statement_is_untouched() {
        let params = [Value::Int(1), Value::Text("a".into())];
        let (sql, kept) = inline_null_params("UPDATE t SET a = @P2 WHERE id = @P1", &params);
        assert!(matches!(sql, Cow::Borrowed(_)));
        assert_eq!(kept.len(), 2);
    }

    #[test]
    fn a_null_becomes_the_keyword_and_later_parameters_move_down() {
        let params = [Value::Int(7), Value::Null, Value::Text("x".into()), Value::Null];
        let (sql, kept) = run("INSERT INTO t VALUES (@P1, @P2, @P3, @P4); SELECT @P3, @P1", &params);
        assert_eq!(sql, "INSERT INTO t VALUES (@P1, NULL, @P2, NULL); SELECT @P2, @P1");
        assert_eq!(kept, vec![Value::Int(7), Value::Text("x".into())]);
    }

    #[test]
    fn literals_identifiers_comments_and_longer_words_are_left_alone() {
        let params = [Value::Null, Value::Int(2)];
        let sql = "SELECT '@P1 it''s', N'@P2', [@P1]]x], \"@P1\"\"\" -- @P1\n, /* @P1 /* @P2 */ @P1 */ @P10, @P1x, @@P1, x@P1, @p1, @P2";
        let (out, kept) = run(sql, &params);
        assert_eq!(
            out,
            "SELECT '@P1 it''s', N'@P2', [@P1]]x], \"@P1\"\"\" -- @P1\n, /* @P1 /* @P2 */ @P1 */ @P10, @P1x, @@P1, x@P1, NULL, @P1"
        );
        assert_eq!(kept, vec![Value::Int(2)]);
    }

    #[test]
    fn every_parameter_null_leaves_none_to_bind() {
        let (sql, kept) = run("EXEC p @a = @P1, @b = @P2", &[Value::Null, Value::Null]);
        assert_eq!(sql, "EXEC p @a = NULL, @b = NULL");
        assert!(kept.is_empty());
    }

    proptest! {
        /// Each reference ends up as NULL exactly when its value is NULL, and otherwise names
        /// the position of its value among the values kept.
        #[test]
        fn references_follow_their_values(nulls in proptest::collection::vec(any::<bool>(), 1..12),
                                          order in proptest::collection::vec(0usize..12, 1..20)) {
            let params: Vec<Value> = nulls.iter().enumerate()
                .map(|(i, &null)| if null { Value::Null } else { Value::Int(i as i64) }).collect();
            let refs: Vec<usize> = order.iter().map(|i| i % params.len()).collect();
            let sql = refs.iter().map(|i| format!("@P{}", i + 1)).collect::<Vec<_>>().join(",");
            let (out, kept) = run(&sql, &params);
            for (reference, written) in refs.iter().zip(out.split(',')) {
                match &params[*reference] {
                    Value::Null => prop_assert_eq!(written, "NULL"),
                    value => {
                        let n: usize = written.trim_start_matches("@P").parse().unwrap();
                        prop_assert_eq!(&kept[n - 1], value);
                    }
                }
            }
        }
    }
}
