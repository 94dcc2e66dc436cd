//! Catalog queries on `pg_catalog`: user tables with their columns, and their keys.

/// Schemas never read: the standard's views and DMF's control schema (every schema starting
/// with `pg_`, system and temporary ones, is excluded by the query itself).
pub(crate) const EXCLUDED_SCHEMAS: [&str; 2] = ["information_schema", super::control::SCHEMA];

/// Every column of every ordinary or partitioned table (partitions are read through their
/// parent; tables belonging to an extension are left out). Parameter: excluded schemas.
///
/// Columns: table oid, schema, table, column, native type, `pg_catalog` type name (NULL for
/// other types), NOT NULL, default expression, `attidentity`, `attgenerated`.
pub(crate) const COLUMNS: &str = "\
SELECT c.oid, n.nspname::text, c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod),
       CASE WHEN t.typnamespace = 'pg_catalog'::regnamespace THEN t.typname::text END,
       a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname <> ALL ($1::text[]) AND n.nspname !~ '^pg_'
  AND NOT EXISTS (SELECT 1 FROM pg_depend e
                  WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid AND e.deptype = 'e')
ORDER BY n.nspname, c.relname, a.attnum";

/// Primary, unique and foreign keys of the given tables, columns in key order. Parameter: table
/// oids. `server_version_num` decides how "enforced" is read: PostgreSQL 18 has
/// `conenforced`; on every version a foreign key whose check triggers are disabled
/// (`ALTER TABLE … DISABLE TRIGGER ALL`) is not enforced.
///
/// Columns: table oid, type (`p`, `u`, `f`), name, columns, referenced schema, referenced
/// table, referenced columns, enforced.
pub(crate) fn constraints(server_version_num: i32) -> String {
    let declared = if server_version_num >= 180_000 { "con.conenforced AND " } else { "" };
    format!(
        "\
SELECT con.conrelid, con.contype::text, con.conname::text,
       ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY AS k(num, ord)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num ORDER BY k.ord),
       fn.nspname::text, fc.relname::text,
       ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY AS k(num, ord)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num ORDER BY k.ord),
       {declared}NOT EXISTS (SELECT 1 FROM pg_trigger tg
                  WHERE tg.tgconstraint = con.oid AND tg.tgrelid = con.conrelid AND tg.tgenabled = 'D')
FROM pg_constraint con
LEFT JOIN pg_class fc ON fc.oid = con.confrelid
LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace
WHERE con.contype IN ('p', 'u', 'f') AND con.conrelid = ANY ($1::oid[])
ORDER BY con.conrelid, con.contype, con.conname"
    )
}

/// The enabled user triggers on the tables named in `$1` (qualified, quoted names): schema,
/// table, name, `pg_trigger.tgtype` (timing and operation bits) and `tgenabled` (`O` fires in
/// ordinary sessions, `A` always, `R` only in `replica` sessions). Internal triggers (foreign
/// keys) excluded; `replica`-only ones too, which a sync's sessions fire only when they skip
/// the others, and are then listed by `tgenabled = 'R'`.
pub(crate) const TRIGGERS: &str = "SELECT n.nspname::text, c.relname::text, t.tgname::text, t.tgtype::int, \
     t.tgenabled::text \
     FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE NOT t.tgisinternal AND t.tgenabled <> 'D' AND c.oid = ANY (($1::text[])::regclass[]) \
     ORDER BY 1, 2, 3";

/// The sequences that fill columns of the given tables: owned by a column (serial: dependency
/// `a`; identity: `i`) or named in a column's default (its expression depends on the sequence),
/// with the last value each handed out (`pg_sequence_last_value`: NULL when it handed out none).
/// Parameter: the tables' quoted qualified names.
///
/// Columns: sequence schema, sequence, table schema, table, column, last value.
pub(crate) const SEQUENCES: &str = "\
SELECT sn.nspname::text, s.relname::text, tn.nspname::text, tc.relname::text, a.attname::text,
       pg_sequence_last_value(s.oid)
FROM (SELECT d.objid AS seq, d.refobjid AS rel, d.refobjsubid AS att
      FROM pg_depend d
      WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
        AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
      UNION
      SELECT d.refobjid, ad.adrelid, ad.adnum
      FROM pg_attrdef ad
      JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
                      AND d.refclassid = 'pg_class'::regclass) AS u
JOIN pg_class s ON s.oid = u.seq AND s.relkind = 'S'
JOIN pg_namespace sn ON sn.oid = s.relnamespace
JOIN pg_class tc ON tc.oid = u.rel
JOIN pg_namespace tn ON tn.oid = tc.relnamespace
JOIN pg_attribute a ON a.attrelid = u.rel AND a.attnum = u.att
WHERE u.rel = ANY (ARRAY(SELECT t::regclass::oid FROM unnest($1::text[]) AS t))
ORDER BY 3, 4, a.attnum, 1, 2";

/// Sets a sequence so that the next value follows `$2` (`setval(…, $2, true)`), or, when `$2` is
/// NULL, so that the next value is its start (`setval(…, start, false)`). Parameters: `$1` the
/// sequence's quoted qualified name, `$2` the last value handed out. One row when the
/// sequence exists, none otherwise. Like every `setval`, not undone by a rollback.
pub(crate) const SET_SEQUENCE: &str = "\
SELECT setval(s.seqrelid, coalesce($2::bigint, s.seqstart), $2::bigint IS NOT NULL)
FROM pg_sequence s WHERE s.seqrelid = $1::text::regclass";

/// The server's version number (`150004`).
pub(crate) const SERVER_VERSION_NUM: &str = "SELECT current_setting('server_version_num')::int4";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enforcement_reads_conenforced_only_where_it_exists() {
        assert!(!constraints(150_004).contains("conenforced"));
        assert!(constraints(180_000).contains("con.conenforced AND NOT EXISTS (SELECT 1 FROM pg_trigger tg"));
    }

    #[test]
    fn control_schema_is_never_read() {
        assert_eq!(EXCLUDED_SCHEMAS, ["information_schema", "dmf"]);
        assert!(COLUMNS.contains("n.nspname <> ALL ($1::text[]) AND n.nspname !~ '^pg_'"));
    }
}
