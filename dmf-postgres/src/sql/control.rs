//! The control tables in schema `dmf` (runs, migration records, checkpoints, rejects, undo
//! log): their creation and inspection, and [`PgDialect`], in which dmf-core's control plane
//! writes the statements that read and write them.

use dmf_core::control::ControlDialect;

use super::quote_ident;

/// The control schema.
pub(crate) const SCHEMA: &str = "dmf";

/// The control tables, in creation order.
pub(crate) const TABLES: [&str; 6] = ["runs", "migration_runs", "checkpoints", "rejects", "undo_log", "leases"];

/// A constant key for `pg_advisory_xact_lock`, so two processes creating the control tables
/// at once take turns (`CREATE … IF NOT EXISTS` alone can still collide in the catalog).
/// The bytes spell `dmf ctl`.
pub(crate) const LOCK_KEY: i64 = 0x0064_6d66_2063_746c;

/// Creates the schema and every control table when missing; run in one transaction after
/// `pg_advisory_xact_lock(LOCK_KEY)`.
pub(crate) const CREATE: &str = "\
CREATE SCHEMA IF NOT EXISTS dmf;
CREATE TABLE IF NOT EXISTS dmf.runs (
    id bigserial PRIMARY KEY,
    status text NOT NULL,
    plan jsonb NOT NULL,
    host text NOT NULL,
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    backup jsonb,
    error text
);
CREATE TABLE IF NOT EXISTS dmf.migration_runs (
    run_id bigint NOT NULL REFERENCES dmf.runs (id),
    migration text NOT NULL,
    status text NOT NULL,
    started_at timestamptz,
    finished_at timestamptz,
    rows_read bigint,
    rows_inserted bigint,
    rows_updated bigint,
    rows_unchanged bigint,
    rows_deleted bigint,
    rows_skipped bigint,
    rows_rejected bigint,
    duration_ms bigint,
    resumed boolean,
    error text,
    PRIMARY KEY (run_id, migration)
);
CREATE TABLE IF NOT EXISTS dmf.checkpoints (
    migration text PRIMARY KEY,
    position text,
    skip bigint NOT NULL,
    done boolean NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS dmf.rejects (
    id bigserial PRIMARY KEY,
    run_id bigint NOT NULL,
    migration text NOT NULL,
    stage text NOT NULL,
    source_key text NOT NULL,
    reason text NOT NULL,
    payload jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS dmf.undo_log (
    id bigserial PRIMARY KEY,
    run_id bigint NOT NULL,
    migration text NOT NULL,
    table_name text NOT NULL,
    key jsonb NOT NULL,
    action text NOT NULL,
    before_image jsonb
);
CREATE TABLE IF NOT EXISTS dmf.leases (
    scope text PRIMARY KEY,
    holder text NOT NULL,
    host text NOT NULL,
    pid bigint NOT NULL,
    run_id bigint,
    acquired_at timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS migration_runs_by_migration ON dmf.migration_runs (migration, run_id);
CREATE INDEX IF NOT EXISTS rejects_by_run ON dmf.rejects (run_id, migration, id);
CREATE INDEX IF NOT EXISTS undo_log_by_run ON dmf.undo_log (run_id, migration, id);
";

/// Which control tables exist: one row per table of [`TABLES`], `(name, exists)`; plus
/// whether the schema exists and whether the session may create in it (or create it).
pub(crate) const INSPECT: &str = "\
SELECT t.name, to_regclass(format('dmf.%I', t.name)) IS NOT NULL,
       n.oid IS NOT NULL,
       CASE WHEN n.oid IS NULL THEN has_database_privilege(current_database(), 'CREATE')
            ELSE has_schema_privilege(n.oid, 'CREATE') END
FROM unnest($1::text[]) WITH ORDINALITY AS t(name, ord)
LEFT JOIN pg_namespace n ON n.nspname = 'dmf'
ORDER BY t.ord";

/// The control plane's SQL in PostgreSQL, for dmf-core's [`SqlRunStore`](dmf_core::control::SqlRunStore)
/// and checkpoint statements: tables `"dmf"."runs"`, placeholders `$1`, `LIMIT … OFFSET …`,
/// `RETURNING "id"`, `INSERT … ON CONFLICT (key) DO UPDATE`, `BEGIN`/`COMMIT`/`ROLLBACK`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PgDialect;

impl ControlDialect for PgDialect {
    fn table(&self, name: &str) -> String {
        format!("{}.{}", quote_ident(SCHEMA), quote_ident(name))
    }

    fn column(&self, name: &str) -> String {
        quote_ident(name)
    }

    fn param(&self, n: usize) -> String {
        format!("${n}")
    }

    /// Well below the 65 535 parameters the protocol's 16-bit count allows.
    fn max_params(&self) -> usize {
        32_767
    }

    fn begin(&self) -> &'static str {
        "BEGIN"
    }

    fn commit(&self) -> &'static str {
        "COMMIT"
    }

    fn rollback(&self) -> &'static str {
        "ROLLBACK"
    }
}

#[cfg(test)]
mod tests {
    use dmf_core::control::checkpoints;

    use super::*;

    #[test]
    fn rule_checks_run_in_a_standard_read_only_transaction() {
        use dmf_core::catalog::TableName;
        use dmf_core::quality::{RuleCheck, count_statement, sample_statement};
        assert_eq!(PgDialect.begin_read_only(), "START TRANSACTION READ ONLY");
        assert_eq!(PgDialect.end_read_only(), "ROLLBACK");
        let check = RuleCheck::NotNull {
            table: TableName::new(Some("shop"), "lines"),
            key: vec!["order_id".into(), "code".into()],
            column: "sku".into(),
        };
        assert_eq!(
            sample_statement(&PgDialect, &check),
            r#"SELECT c."order_id", c."code" FROM "shop"."lines" AS c WHERE c."sku" IS NULL ORDER BY c."order_id", c."code" LIMIT $1"#
        );
        assert_eq!(
            count_statement(&PgDialect, &check),
            r#"SELECT count(*) FROM "shop"."lines" AS c WHERE c."sku" IS NULL"#
        );
    }

    #[test]
    fn every_control_table_is_created_if_missing() {
        for table in TABLES {
            assert!(CREATE.contains(&format!("CREATE TABLE IF NOT EXISTS {SCHEMA}.{table} (")), "{table}");
        }
        assert!(CREATE.starts_with("CREATE SCHEMA IF NOT EXISTS dmf;"));
    }

    #[test]
    fn control_statements_in_postgresql() {
        let dialect = PgDialect;
        assert_eq!(
            checkpoints::write_statement(&dialect),
            "INSERT INTO \"dmf\".\"checkpoints\" (\"migration\", \"position\", \"skip\", \"done\", \"updated_at\") \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (\"migration\") DO UPDATE SET \"position\" = excluded.\"position\", \
             \"skip\" = excluded.\"skip\", \"done\" = excluded.\"done\", \"updated_at\" = excluded.\"updated_at\""
        );
        assert_eq!(
            checkpoints::read_statement(&dialect),
            "SELECT \"position\", \"skip\", \"done\" FROM \"dmf\".\"checkpoints\" WHERE \"migration\" = $1"
        );
        assert_eq!(
            dialect.insert_returning_id(&dialect.table("runs"), "\"status\"", "$1"),
            "INSERT INTO \"dmf\".\"runs\" (\"status\") VALUES ($1) RETURNING \"id\""
        );
        assert_eq!(
            dialect.select_page("a", "t", "id", Some(3), Some(4)),
            "SELECT a FROM t ORDER BY id LIMIT $3 OFFSET $4"
        );
        assert_eq!(dialect.select_page("a", "t", "id", None, Some(2)), "SELECT a FROM t ORDER BY id OFFSET $2");
        assert_eq!(dialect.select_page("a", "t", "id", Some(1), None), "SELECT a FROM t ORDER BY id LIMIT $1");
        assert_eq!(dialect.table("odd\"name"), "\"dmf\".\"odd\"\"name\"");
    }
}
