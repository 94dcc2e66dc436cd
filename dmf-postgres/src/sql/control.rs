//! The control tables in schema `dmf` (runs, migration records, checkpoints, rejects, undo
//! log) and the statements that read and write them.

/// The control schema.
pub(crate) const SCHEMA: &str = "dmf";

/// The control tables, in creation order.
pub(crate) const TABLES: [&str; 5] = ["runs", "migration_runs", "checkpoints", "rejects", "undo_log"];

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

/// Stores a checkpoint. Parameters: migration, position, skip, done.
pub(crate) const SAVE_CHECKPOINT: &str = "\
INSERT INTO dmf.checkpoints (migration, position, skip, done, updated_at) VALUES ($1, $2, $3, $4, now())
ON CONFLICT (migration) DO UPDATE
SET position = EXCLUDED.position, skip = EXCLUDED.skip, done = EXCLUDED.done, updated_at = EXCLUDED.updated_at";

/// Reads a checkpoint. Parameter: migration.
pub(crate) const CHECKPOINT: &str = "SELECT position, skip, done FROM dmf.checkpoints WHERE migration = $1";

/// Forgets a checkpoint. Parameter: migration.
pub(crate) const CLEAR_CHECKPOINT: &str = "DELETE FROM dmf.checkpoints WHERE migration = $1";

/// Records a new run. Parameters: status, plan, host.
pub(crate) const START_RUN: &str =
    "INSERT INTO dmf.runs (status, plan, host, started_at) VALUES ($1, $2, $3, now()) RETURNING id";

/// Records how a run ended. Parameters: id, status, error.
pub(crate) const FINISH_RUN: &str = "UPDATE dmf.runs SET status = $2, error = $3, finished_at = now() WHERE id = $1";

/// Records a run's backup. Parameters: id, backup.
pub(crate) const RECORD_BACKUP: &str = "UPDATE dmf.runs SET backup = $2 WHERE id = $1";

const RUN_COLUMNS: &str = "id, status, plan, host, started_at, finished_at, backup, error";

/// One run. Parameter: id.
pub(crate) fn run() -> String {
    format!("SELECT {RUN_COLUMNS} FROM dmf.runs WHERE id = $1")
}

/// The latest runs first. Parameter: limit.
pub(crate) fn runs() -> String {
    format!("SELECT {RUN_COLUMNS} FROM dmf.runs ORDER BY id DESC LIMIT $1")
}

/// Inserts or replaces a migration record. Parameters in column order.
pub(crate) const SAVE_MIGRATION_RECORD: &str = "\
INSERT INTO dmf.migration_runs (run_id, migration, status, started_at, finished_at, rows_read, rows_inserted,
    rows_updated, rows_unchanged, rows_deleted, rows_skipped, rows_rejected, duration_ms, resumed, error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
ON CONFLICT (run_id, migration) DO UPDATE SET status = EXCLUDED.status, started_at = EXCLUDED.started_at,
    finished_at = EXCLUDED.finished_at, rows_read = EXCLUDED.rows_read, rows_inserted = EXCLUDED.rows_inserted,
    rows_updated = EXCLUDED.rows_updated, rows_unchanged = EXCLUDED.rows_unchanged,
    rows_deleted = EXCLUDED.rows_deleted, rows_skipped = EXCLUDED.rows_skipped,
    rows_rejected = EXCLUDED.rows_rejected, duration_ms = EXCLUDED.duration_ms, resumed = EXCLUDED.resumed,
    error = EXCLUDED.error";

const RECORD_COLUMNS: &str = "m.run_id, m.migration, m.status, m.started_at, m.finished_at, m.rows_read, \
     m.rows_inserted, m.rows_updated, m.rows_unchanged, m.rows_deleted, m.rows_skipped, m.rows_rejected, \
     m.duration_ms, m.resumed, m.error";

/// The latest record of a migration in which it ran or was rolled back (pending and skipped
/// records are ignored). Parameter: migration.
pub(crate) fn latest_record() -> String {
    format!(
        "SELECT {RECORD_COLUMNS} FROM dmf.migration_runs m WHERE m.migration = $1 \
         AND m.status NOT IN ('pending', 'skipped') ORDER BY m.run_id DESC LIMIT 1"
    )
}

/// Every record of a run, in the run's plan order. Parameter: run id.
pub(crate) fn migration_records() -> String {
    format!(
        "SELECT {RECORD_COLUMNS} FROM dmf.migration_runs m JOIN dmf.runs r ON r.id = m.run_id \
         LEFT JOIN LATERAL (SELECT p.ord FROM jsonb_array_elements_text(r.plan) WITH ORDINALITY AS p(name, ord) \
         WHERE p.name = m.migration LIMIT 1) planned ON true \
         WHERE m.run_id = $1 ORDER BY planned.ord NULLS LAST, m.migration"
    )
}

/// Adds rejects, one per array element. Parameters: run, migration, then arrays of stage,
/// source key, reason and payload (JSON text).
pub(crate) const RECORD_REJECTS: &str = "\
INSERT INTO dmf.rejects (run_id, migration, stage, source_key, reason, payload)
SELECT $1, $2, r.stage, r.source_key, r.reason, r.payload::jsonb
FROM unnest($3::text[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS r(stage, source_key, reason, payload, ord)
ORDER BY r.ord";

/// A page of a run's rejects in the order recorded. Parameters: run, migration (NULL for
/// all), limit, offset.
pub(crate) const REJECTS: &str = "\
SELECT run_id, migration, stage, source_key, reason, payload FROM dmf.rejects
WHERE run_id = $1 AND ($2::text IS NULL OR migration = $2)
ORDER BY id LIMIT $3 OFFSET $4";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_control_table_is_created_if_missing() {
        for table in TABLES {
            assert!(CREATE.contains(&format!("CREATE TABLE IF NOT EXISTS {SCHEMA}.{table} (")), "{table}");
        }
        assert!(CREATE.starts_with("CREATE SCHEMA IF NOT EXISTS dmf;"));
    }

    #[test]
    fn run_queries() {
        assert_eq!(
            runs(),
            "SELECT id, status, plan, host, started_at, finished_at, backup, error FROM dmf.runs ORDER BY id DESC LIMIT $1"
        );
        assert!(latest_record().ends_with(
            "FROM dmf.migration_runs m WHERE m.migration = $1 AND m.status NOT IN ('pending', 'skipped') ORDER BY m.run_id DESC LIMIT 1"
        ));
    }
}
