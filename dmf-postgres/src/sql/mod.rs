//! Every SQL statement the adapter sends, as pure functions of names (tested by exact text).
//! Identifiers pass through [`quote_ident`]; values never appear here: they travel as bound
//! parameters or COPY data (the one exception, a snapshot identifier that `SET TRANSACTION
//! SNAPSHOT` cannot take as a parameter, is validated first: [`snapshot::begin_import`]).

pub(crate) mod catalog;
pub(crate) mod control;
pub(crate) mod extract;
pub(crate) mod load;
pub(crate) mod relation;
pub(crate) mod snapshot;
pub(crate) mod undo;

use dmf_core::catalog::TableName;

/// `name` as a quoted identifier: always quoted, `"` doubled, so reserved words, mixed case
/// and any character stay exactly as stored.
pub(crate) fn quote_ident(name: &str) -> String {
    let mut quoted = String::with_capacity(name.len() + 2);
    quoted.push('"');
    for c in name.chars() {
        if c == '"' {
            quoted.push('"');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// `"schema"."table"`, or `"table"` when the name has no schema (then PostgreSQL's search
/// path decides).
pub(crate) fn qualified(table: &TableName) -> String {
    match &table.schema {
        Some(schema) => format!("{}.{}", quote_ident(schema), quote_ident(&table.name)),
        None => quote_ident(&table.name),
    }
}

/// `"a", "b", "c"`.
pub(crate) fn column_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names.into_iter().map(quote_ident).collect::<Vec<_>>().join(", ")
}

/// The type to cast a text parameter to so that it compares with a column of `native` type
/// (as `format_type` spells it) without losing anything: the type modifier is dropped
/// (`numeric(38,10)` → `numeric`, `character varying(20)` → `character varying`, so a longer
/// or more precise value from the other side is neither rounded nor truncated), and
/// `character` / `bit`, whose bare names mean length 1, become `bpchar` / `bit varying`.
pub(crate) fn cast_type(native: &str) -> String {
    let mut out = String::with_capacity(native.len());
    let (mut depth, mut quoted) = (0_u32, false);
    for c in native.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                if depth == 0 {
                    out.push(c);
                }
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    let bare = out.split_whitespace().collect::<Vec<_>>().join(" ");
    // Array suffixes stay (`character(3)[]` → `bpchar[]`).
    let (base, arrays) = match bare.find("[]") {
        Some(i) => (bare[..i].to_owned(), bare[i..].to_owned()),
        None => (bare, String::new()),
    };
    let base = match base.as_str() {
        "character" => "bpchar".to_owned(),
        "bit" => "bit varying".to_owned(),
        _ => base,
    };
    format!("{base}{arrays}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_always_quoted_with_quotes_doubled() {
        assert_eq!(quote_ident("id"), r#""id""#);
        assert_eq!(quote_ident("Order"), r#""Order""#);
        assert_eq!(quote_ident("select"), r#""select""#);
        assert_eq!(quote_ident(r#"say "hi""#), r#""say ""hi""""#);
        assert_eq!(quote_ident(""), r#""""#);
        assert_eq!(quote_ident("emoji 🦀"), "\"emoji 🦀\"");
    }

    #[test]
    fn qualified_names_quote_both_parts() {
        assert_eq!(qualified(&TableName::new(Some("public"), "user")), r#""public"."user""#);
        assert_eq!(qualified(&TableName::new(Some("My.Schema"), "a\"b")), r#""My.Schema"."a""b""#);
        assert_eq!(qualified(&TableName::new(None, "t")), r#""t""#);
    }

    #[test]
    fn lists() {
        assert_eq!(column_list(["a", "B", "c d"]), r#""a", "B", "c d""#);
    }

    #[test]
    fn casts_drop_type_modifiers() {
        assert_eq!(cast_type("numeric(38,10)"), "numeric");
        assert_eq!(cast_type("character varying(20)"), "character varying");
        assert_eq!(cast_type("character(5)"), "bpchar");
        assert_eq!(cast_type("character"), "bpchar");
        assert_eq!(cast_type("bit(3)"), "bit varying");
        assert_eq!(cast_type("timestamp(3) without time zone"), "timestamp without time zone");
        assert_eq!(cast_type("timestamp with time zone"), "timestamp with time zone");
        assert_eq!(cast_type("character varying(10)[]"), "character varying[]");
        assert_eq!(cast_type("bigint"), "bigint");
        assert_eq!(cast_type(r#"public."My (odd) type""#), r#"public."My (odd) type""#);
    }
}
