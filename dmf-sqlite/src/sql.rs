//! Every SQL statement the SQLite adapter sends, as pure functions. Identifiers pass through
//! [`quote`]; values are always bound parameters (`?`).

use dmf_core::catalog::TableName;

/// Quotes an identifier: `my "table"` → `"my ""table"""`.
pub fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// A table's name as SQL (SQLite has one schema here, `main`, left implicit).
pub fn table(name: &TableName) -> String {
    quote(&name.name)
}

fn list(columns: &[String]) -> String {
    columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// What a read selects from: the table, or a query source's query as a subquery
/// (`(SELECT …) AS "dmf_query"`, its text as the user wrote it).
pub fn relation(spec: &dmf_core::sync::ExtractSpec) -> String {
    match &spec.query {
        Some(query) => format!("({query}) AS \"dmf_query\""),
        None => table(&spec.table),
    }
}

/// `SELECT cols FROM t [WHERE (order cols) > (?, …)] [AND (order cols) <= (?, …)] ORDER BY order
/// cols LIMIT ?`: the page after a position (`after`), within a key range's upper bound
/// (`up_to`). Parameters: the position's values, the bound's values, the limit.
///
/// `order` lists the columns of the keyset (key columns, or the watermark then the key).
/// SQLite compares text with the BINARY collation (byte order), the order DMF uses everywhere.
/// `relation` is what [`relation`] gives.
pub fn keyset_page(relation: &str, columns: &[String], order: &[String], after: bool, up_to: bool) -> String {
    format!(
        "SELECT {} FROM {}{} ORDER BY {} LIMIT ?",
        list(columns),
        relation,
        bounds(order, after, up_to),
        list(order)
    )
}

/// `SELECT count(*) FROM t [WHERE (order cols) > (?, …)] [AND (order cols) <= (?, …)]`.
pub fn count_after(relation: &str, order: &[String], after: bool, up_to: bool) -> String {
    format!("SELECT count(*) FROM {relation}{}", bounds(order, after, up_to))
}

/// ` WHERE (cols) > (?, …) AND (cols) <= (?, …)`, either part left out.
fn bounds(order: &[String], after: bool, up_to: bool) -> String {
    let (columns, values) = (list(order), placeholders(order.len()));
    let mut conditions = Vec::new();
    if after {
        conditions.push(format!("({columns}) > ({values})"));
    }
    if up_to {
        conditions.push(format!("({columns}) <= ({values})"));
    }
    if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) }
}

/// `SELECT min(k), max(k) FROM t`: the bounds of a single integer key, from its index.
pub fn key_min_max(table_name: &TableName, key: &str) -> String {
    let key = quote(key);
    format!("SELECT min({key}), max({key}) FROM {}", table(table_name))
}

/// `SELECT k1, k2 FROM t ORDER BY k1, k2 LIMIT 1 OFFSET ?`: the key at a rank, in the order
/// the extractor reads (a walk of the key's index up to the rank).
pub fn key_at(table_name: &TableName, key: &[String]) -> String {
    let key = list(key);
    format!("SELECT {key} FROM {} ORDER BY {key} LIMIT 1 OFFSET ?", table(table_name))
}

/// `INSERT INTO t (cols) VALUES (?, …)`.
pub fn insert(table_name: &TableName, columns: &[String]) -> String {
    format!("INSERT INTO {} ({}) VALUES ({})", table(table_name), list(columns), placeholders(columns.len()))
}

/// `INSERT … ON CONFLICT (key) DO NOTHING`: inserts a row whose key is new.
pub fn insert_if_new(table_name: &TableName, columns: &[String], key: &[String]) -> String {
    format!("{} ON CONFLICT ({}) DO NOTHING", insert(table_name, columns), list(key))
}

/// `PRAGMA foreign_key_list("t")`: one row per column of each foreign key of the table.
pub fn foreign_key_list(table_name: &TableName) -> String {
    format!("PRAGMA foreign_key_list({})", table(table_name))
}

/// `SELECT 1 FROM t WHERE k = ? AND …`: whether a key is present (one index lookup). Insert
/// or skip asks this, then inserts the absent rows: `INSERT … SELECT … WHERE NOT EXISTS` would
/// copy the select into a temporary table for every row (it reads the table it writes), and
/// `ON CONFLICT (key) DO NOTHING` would fail a row whose key exists when another of its
/// unique columns also conflicts.
pub fn key_exists(table_name: &TableName, key: &[String]) -> String {
    format!("SELECT 1 FROM {} WHERE {}", table(table_name), key_match(key))
}

/// `UPDATE t SET c = ?, … WHERE k = ? AND … AND (c, …) IS NOT (?, …)`: updates a row only when
/// a value differs. Parameters: the non-key values, the key values, the non-key values again.
pub fn update_if_different(table_name: &TableName, columns: &[String], key: &[String]) -> Option<String> {
    let rest: Vec<String> = columns.iter().filter(|c| !key.contains(c)).cloned().collect();
    if rest.is_empty() {
        return None;
    }
    let set = rest.iter().map(|c| format!("{} = ?", quote(c))).collect::<Vec<_>>().join(", ");
    Some(format!(
        "UPDATE {} SET {set} WHERE {} AND ({}) IS NOT ({})",
        table(table_name),
        key_match(key),
        list(&rest),
        placeholders(rest.len())
    ))
}

/// `SELECT * FROM t WHERE k = ? AND …` (a row's before-image for the undo log).
pub fn select_row(table_name: &TableName, key: &[String]) -> String {
    format!("SELECT * FROM {} WHERE {}", table(table_name), key_match(key))
}

/// `UPDATE t SET c = ?, … WHERE k = ? AND …`, every given column (restoring a before-image).
pub fn update_all(table_name: &TableName, columns: &[String], key: &[String]) -> String {
    let set = columns.iter().map(|c| format!("{} = ?", quote(c))).collect::<Vec<_>>().join(", ");
    format!("UPDATE {} SET {set} WHERE {}", table(table_name), key_match(key))
}

/// `DELETE FROM t WHERE k = ? AND …`.
pub fn delete(table_name: &TableName, key: &[String]) -> String {
    format!("DELETE FROM {} WHERE {}", table(table_name), key_match(key))
}

/// `DELETE FROM t` (every row).
pub fn delete_all(table_name: &TableName) -> String {
    format!("DELETE FROM {}", table(table_name))
}

fn key_match(key: &[String]) -> String {
    key.iter().map(|k| format!("{} = ?", quote(k))).collect::<Vec<_>>().join(" AND ")
}

/// `PRAGMA table_xinfo("t")`: columns with their declared type, NOT NULL, default, key
/// position and whether they are generated.
pub fn table_info(name: &str) -> String {
    format!("PRAGMA table_xinfo({})", quote(name))
}

/// `PRAGMA foreign_key_list("t")`.
pub fn foreign_keys(name: &str) -> String {
    format!("PRAGMA foreign_key_list({})", quote(name))
}

/// `PRAGMA index_list("t")`.
pub fn index_list(name: &str) -> String {
    format!("PRAGMA index_list({})", quote(name))
}

/// `PRAGMA index_info("i")`.
pub fn index_info(name: &str) -> String {
    format!("PRAGMA index_info({})", quote(name))
}

/// The user tables: not SQLite's own, not DMF's control tables.
pub const USER_TABLES: &str = "SELECT name FROM sqlite_schema WHERE type = 'table' \
     AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE 'dmf\\_%' ESCAPE '\\' ORDER BY name";

/// The tables declared with `AUTOINCREMENT` (whose counters `sqlite_sequence` keeps), by the
/// text of their `CREATE TABLE`: SQLite keeps no other record of the keyword.
pub const AUTOINCREMENT_TABLES: &str =
    "SELECT name FROM sqlite_schema WHERE type = 'table' AND sql LIKE '%AUTOINCREMENT%' ORDER BY name";

/// The largest rowid an `AUTOINCREMENT` table handed out (no row: none yet). Parameter: the
/// table's name.
pub const SEQUENCE_VALUE: &str = "SELECT seq FROM sqlite_sequence WHERE name = ?1";

/// Every trigger: its table, name and `CREATE TRIGGER` text.
pub const TRIGGERS: &str =
    "SELECT tbl_name, name, sql FROM sqlite_schema WHERE type = 'trigger' ORDER BY tbl_name, name";

/// Forgets an `AUTOINCREMENT` table's counter (its next rowid is then one past the largest
/// in the table). Parameter: the table's name.
pub const SEQUENCE_FORGET: &str = "DELETE FROM sqlite_sequence WHERE name = ?1";

/// Sets an `AUTOINCREMENT` table's counter, after [`SEQUENCE_FORGET`] (the table has no
/// unique key). Parameters: the table's name, the value.
pub const SEQUENCE_SET: &str = "INSERT INTO sqlite_sequence (name, seq) VALUES (?1, ?2)";

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> TableName {
        TableName::new(None, name)
    }

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn hostile_identifiers_are_quoted() {
        assert_eq!(quote(r#"we"ird"#), r#""we""ird""#);
        assert_eq!(quote("select"), r#""select""#);
        assert_eq!(quote(""), r#""""#);
    }

    #[test]
    fn keyset_pages() {
        assert_eq!(
            keyset_page(&table(&t("Order")), &cols(&["id", "line", "note"]), &cols(&["id", "line"]), true, false),
            r#"SELECT "id", "line", "note" FROM "Order" WHERE ("id", "line") > (?, ?) ORDER BY "id", "line" LIMIT ?"#
        );
        assert_eq!(
            keyset_page(&table(&t("t")), &cols(&["id"]), &cols(&["id"]), false, false),
            r#"SELECT "id" FROM "t" ORDER BY "id" LIMIT ?"#
        );
        assert_eq!(
            count_after(&table(&t("t")), &cols(&["w", "id"]), true, false),
            r#"SELECT count(*) FROM "t" WHERE ("w", "id") > (?, ?)"#
        );
    }

    #[test]
    fn key_range_pages_stop_at_the_upper_bound() {
        assert_eq!(
            keyset_page(&table(&t("Order")), &cols(&["id", "line", "note"]), &cols(&["id", "line"]), true, true),
            r#"SELECT "id", "line", "note" FROM "Order" WHERE ("id", "line") > (?, ?) AND ("id", "line") <= (?, ?) ORDER BY "id", "line" LIMIT ?"#
        );
        assert_eq!(
            keyset_page(&table(&t("t")), &cols(&["k"]), &cols(&["k"]), false, true),
            r#"SELECT "k" FROM "t" WHERE ("k") <= (?) ORDER BY "k" LIMIT ?"#
        );
        assert_eq!(
            count_after(&table(&t("t")), &cols(&["a", "b"]), true, true),
            r#"SELECT count(*) FROM "t" WHERE ("a", "b") > (?, ?) AND ("a", "b") <= (?, ?)"#
        );
        assert_eq!(
            count_after(&table(&t("t")), &cols(&["a"]), false, true),
            r#"SELECT count(*) FROM "t" WHERE ("a") <= (?)"#
        );
    }

    #[test]
    fn key_splits() {
        assert_eq!(key_min_max(&t("Order"), "i\"d"), r#"SELECT min("i""d"), max("i""d") FROM "Order""#);
        assert_eq!(
            key_at(&t("t"), &cols(&["region", "seq"])),
            r#"SELECT "region", "seq" FROM "t" ORDER BY "region", "seq" LIMIT 1 OFFSET ?"#
        );
    }

    #[test]
    fn writes() {
        let c = cols(&["id", "a", "b"]);
        let k = cols(&["id"]);
        assert_eq!(insert(&t("t"), &c), r#"INSERT INTO "t" ("id", "a", "b") VALUES (?, ?, ?)"#);
        assert_eq!(
            insert_if_new(&t("t"), &c, &k),
            r#"INSERT INTO "t" ("id", "a", "b") VALUES (?, ?, ?) ON CONFLICT ("id") DO NOTHING"#
        );
        assert_eq!(
            update_if_different(&t("t"), &c, &k).unwrap(),
            r#"UPDATE "t" SET "a" = ?, "b" = ? WHERE "id" = ? AND ("a", "b") IS NOT (?, ?)"#
        );
        assert_eq!(update_if_different(&t("t"), &k, &k), None);
        assert_eq!(delete(&t("t"), &cols(&["a", "b"])), r#"DELETE FROM "t" WHERE "a" = ? AND "b" = ?"#);
        assert_eq!(delete_all(&t("x\"y")), r#"DELETE FROM "x""y""#);
        assert_eq!(select_row(&t("t"), &k), r#"SELECT * FROM "t" WHERE "id" = ?"#);
        assert_eq!(update_all(&t("t"), &c, &k), r#"UPDATE "t" SET "id" = ?, "a" = ?, "b" = ? WHERE "id" = ?"#);
    }
}
