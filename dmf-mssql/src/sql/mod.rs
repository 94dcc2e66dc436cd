//! Every T-SQL statement the adapter sends, as pure functions of names (tested by exact text,
//! and parsed with `sqlparser`'s `MsSqlDialect` where it can parse them; see [`corpus`]).
//! Identifiers pass through [`quote_ident`]; values travel as bound parameters (`@P1`…) or
//! bulk-load rows. The exceptions are the few places T-SQL accepts no parameter: text through
//! [`quote_literal`] (a JSON path in `OPENJSON … WITH`, a table name in `DBCC CHECKIDENT`), and
//! integers formatted from an `i64` (`DBCC CHECKIDENT … RESEED, n`, `ALTER SEQUENCE … RESTART
//! WITH n`).

pub(crate) mod admin;
pub(crate) mod catalog;
pub(crate) mod control;
#[cfg(test)]
pub(crate) mod corpus;
pub(crate) mod extract;
pub(crate) mod load;
pub(crate) mod session;
pub(crate) mod trust;

use dmf_core::catalog::TableName;

/// `name` as a bracket-quoted identifier: always quoted, `]` doubled, so reserved words,
/// spaces, quotes and any character stay exactly as stored.
pub(crate) fn quote_ident(name: &str) -> String {
    let mut quoted = String::with_capacity(name.len() + 2);
    quoted.push('[');
    for c in name.chars() {
        if c == ']' {
            quoted.push(']');
        }
        quoted.push(c);
    }
    quoted.push(']');
    quoted
}

/// `[schema].[table]`, or `[table]` when the name has no schema (the login's default
/// schema then decides).
pub(crate) fn qualified(table: &TableName) -> String {
    match &table.schema {
        Some(schema) => format!("{}.{}", quote_ident(schema), quote_ident(&table.name)),
        None => quote_ident(&table.name),
    }
}

/// `text` as a string literal with `'` doubled: `'…'`, or `N'…'` (Unicode) when it holds
/// anything beyond ASCII. Only for the few places where T-SQL takes no parameter; values
/// from rows never go through it.
pub(crate) fn quote_literal(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 3);
    if !text.is_ascii() {
        quoted.push('N');
    }
    quoted.push('\'');
    for c in text.chars() {
        if c == '\'' {
            quoted.push('\'');
        }
        quoted.push(c);
    }
    quoted.push('\'');
    quoted
}

/// The binary collation that orders text keys by code point, as every DMF adapter reads them
/// (PostgreSQL `COLLATE "C"`), so merges of two databases agree on the order.
pub(crate) const BINARY_COLLATION: &str = "Latin1_General_100_BIN2";

/// True for a collation name as SQL Server spells them (`Latin1_General_CI_AS`,
/// `SQL_Latin1_General_CP1_CI_AS`, `Japanese_XJIS_140_CI_AS_UTF8`): letters, digits and `_`.
/// Collation names cannot be bracket-quoted, so anything else is refused before it reaches
/// a statement.
pub(crate) fn is_collation_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_always_bracketed_with_closing_brackets_doubled() {
        assert_eq!(quote_ident("id"), "[id]");
        assert_eq!(quote_ident("select"), "[select]");
        assert_eq!(quote_ident("a]b"), "[a]]b]");
        assert_eq!(quote_ident("]]"), "[]]]]]");
        assert_eq!(quote_ident("[x]"), "[[x]]]");
        assert_eq!(quote_ident("it's \"quoted\""), "[it's \"quoted\"]");
        assert_eq!(quote_ident("with space; DROP TABLE t--"), "[with space; DROP TABLE t--]");
        assert_eq!(quote_ident("Zoë 日本 🦀"), "[Zoë 日本 🦀]");
        assert_eq!(quote_ident(""), "[]");
    }

    #[test]
    fn qualified_names_quote_both_parts() {
        assert_eq!(qualified(&TableName::new(Some("dbo"), "Order")), "[dbo].[Order]");
        assert_eq!(qualified(&TableName::new(Some("my.schema"), "a]b")), "[my.schema].[a]]b]");
        assert_eq!(qualified(&TableName::new(None, "t")), "[t]");
    }

    #[test]
    fn literals_double_single_quotes() {
        assert_eq!(quote_literal("plain"), "'plain'");
        assert_eq!(quote_literal("O'Brien"), "'O''Brien'");
        assert_eq!(quote_literal("'; DROP TABLE t; --"), "'''; DROP TABLE t; --'");
        assert_eq!(quote_literal("''"), "''''''");
        assert_eq!(quote_literal("日本 🦀 \\ \" 'x'"), "N'日本 🦀 \\ \" ''x'''");
        assert_eq!(quote_literal("Zoë"), "N'Zoë'");
        assert_eq!(quote_literal(""), "''");
    }

    #[test]
    fn collation_names_are_checked() {
        assert!(is_collation_name("SQL_Latin1_General_CP1_CI_AS"));
        assert!(is_collation_name(BINARY_COLLATION));
        assert!(!is_collation_name("Latin1 General"));
        assert!(!is_collation_name("x; DROP TABLE t"));
        assert!(!is_collation_name(""));
    }
}
