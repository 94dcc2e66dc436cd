//! The control tables in schema `dmf` (runs, migration records, checkpoints, rejects, undo
//! log; the same columns as dmf-postgres's) and the statements that read and write them.
//! JSON columns (`plan`, `backup`, `payload`, `key`, `before_image`) are `nvarchar(max)`;
//! times are UTC `datetime2(7)`.

/// The control schema.
pub(crate) const SCHEMA: &str = "dmf";

/// The control tables with their columns, in creation order (pre-flight checks the shape).
pub(crate) const TABLES: [(&str, &[&str]); 5] = dmf_core::sync::CONTROL_TABLES;

/// Creates the schema and every missing control table, in one transaction holding an
/// application lock (two processes starting at once take turns). A plain batch: `CREATE
/// SCHEMA` must be alone in its batch, hence `sp_executesql`.
pub(crate) const CREATE: &str = "\
SET XACT_ABORT ON;
BEGIN TRANSACTION;
EXEC sp_getapplock @Resource = N'dmf:control-tables', @LockMode = N'Exclusive', @LockOwner = N'Transaction', @LockTimeout = 60000;
IF SCHEMA_ID(N'dmf') IS NULL EXEC sp_executesql N'CREATE SCHEMA dmf AUTHORIZATION dbo';
IF OBJECT_ID(N'dmf.runs', N'U') IS NULL CREATE TABLE dmf.runs (
    id bigint IDENTITY(1,1) NOT NULL PRIMARY KEY,
    status nvarchar(20) NOT NULL,
    [plan] nvarchar(max) NOT NULL,
    host nvarchar(256) NOT NULL,
    started_at datetime2(7) NOT NULL,
    finished_at datetime2(7) NULL,
    [backup] nvarchar(max) NULL,
    error nvarchar(max) NULL
);
IF OBJECT_ID(N'dmf.migration_runs', N'U') IS NULL CREATE TABLE dmf.migration_runs (
    run_id bigint NOT NULL REFERENCES dmf.runs (id),
    migration nvarchar(450) NOT NULL,
    status nvarchar(20) NOT NULL,
    started_at datetime2(7) NULL,
    finished_at datetime2(7) NULL,
    rows_read bigint NULL,
    rows_inserted bigint NULL,
    rows_updated bigint NULL,
    rows_unchanged bigint NULL,
    rows_deleted bigint NULL,
    rows_skipped bigint NULL,
    rows_rejected bigint NULL,
    duration_ms bigint NULL,
    resumed bit NULL,
    error nvarchar(max) NULL,
    PRIMARY KEY (run_id, migration)
);
IF OBJECT_ID(N'dmf.checkpoints', N'U') IS NULL CREATE TABLE dmf.checkpoints (
    migration nvarchar(450) NOT NULL PRIMARY KEY,
    [position] nvarchar(max) NULL,
    skip bigint NOT NULL,
    done bit NOT NULL,
    updated_at datetime2(7) NOT NULL
);
IF OBJECT_ID(N'dmf.rejects', N'U') IS NULL CREATE TABLE dmf.rejects (
    id bigint IDENTITY(1,1) NOT NULL PRIMARY KEY,
    run_id bigint NOT NULL,
    migration nvarchar(450) NOT NULL,
    stage nvarchar(20) NOT NULL,
    source_key nvarchar(max) NOT NULL,
    reason nvarchar(max) NOT NULL,
    payload nvarchar(max) NULL,
    created_at datetime2(7) NOT NULL DEFAULT SYSUTCDATETIME()
);
IF OBJECT_ID(N'dmf.undo_log', N'U') IS NULL CREATE TABLE dmf.undo_log (
    id bigint IDENTITY(1,1) NOT NULL PRIMARY KEY,
    run_id bigint NOT NULL,
    migration nvarchar(450) NOT NULL,
    table_name nvarchar(400) NOT NULL,
    [key] nvarchar(max) NOT NULL,
    [action] nvarchar(10) NOT NULL,
    before_image nvarchar(max) NULL
);
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'migration_runs_by_migration' AND object_id = OBJECT_ID(N'dmf.migration_runs'))
    CREATE INDEX migration_runs_by_migration ON dmf.migration_runs (migration, run_id);
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'rejects_by_run' AND object_id = OBJECT_ID(N'dmf.rejects'))
    CREATE INDEX rejects_by_run ON dmf.rejects (run_id, migration, id);
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'undo_log_by_run' AND object_id = OBJECT_ID(N'dmf.undo_log'))
    CREATE INDEX undo_log_by_run ON dmf.undo_log (run_id, migration, id);
COMMIT TRANSACTION;";

/// The columns of the control tables that exist, and whether the session may create what is
/// missing: rows `(table, column)`, plus one row `(NULL, NULL)` carrying in columns 2–4
/// whether the schema exists and the CREATE SCHEMA / CREATE TABLE permissions.
pub(crate) const INSPECT: &str = "\
SELECT t.name AS table_name, c.name AS column_name, NULL AS schema_exists, NULL AS can_create_schema, NULL AS can_create_table
FROM sys.tables AS t
JOIN sys.schemas AS s ON s.schema_id = t.schema_id
JOIN sys.columns AS c ON c.object_id = t.object_id
WHERE s.name = N'dmf'
UNION ALL
SELECT NULL, NULL, CAST(CASE WHEN SCHEMA_ID(N'dmf') IS NULL THEN 0 ELSE 1 END AS int),
       CAST(HAS_PERMS_BY_NAME(DB_NAME(), N'DATABASE', N'CREATE SCHEMA') AS int),
       CAST(HAS_PERMS_BY_NAME(DB_NAME(), N'DATABASE', N'CREATE TABLE') AS int)";

/// Stores a checkpoint (inside a loader's transaction). Parameters: `@P1` migration, `@P2`
/// position, `@P3` skip, `@P4` done.
pub(crate) const SAVE_CHECKPOINT: &str = "\
UPDATE dmf.checkpoints SET [position] = @P2, skip = @P3, done = @P4, updated_at = SYSUTCDATETIME() WHERE migration = @P1; \
IF @@ROWCOUNT = 0 INSERT INTO dmf.checkpoints (migration, [position], skip, done, updated_at) VALUES (@P1, @P2, @P3, @P4, SYSUTCDATETIME());";

/// Reads a checkpoint. Parameter: migration.
pub(crate) const CHECKPOINT: &str =
    "SELECT [position], skip, CAST(done AS int) AS done FROM dmf.checkpoints WHERE migration = @P1";

/// Forgets a checkpoint. Parameter: migration.
pub(crate) const CLEAR_CHECKPOINT: &str = "DELETE FROM dmf.checkpoints WHERE migration = @P1";

/// Records a new run and returns its id. Parameters: status, plan (JSON), host.
pub(crate) const START_RUN: &str = "\
INSERT INTO dmf.runs (status, [plan], host, started_at) VALUES (@P1, @P2, @P3, SYSUTCDATETIME()); \
SELECT CAST(SCOPE_IDENTITY() AS bigint) AS id;";

/// Records how a run ended. Parameters: id, status, error.
pub(crate) const FINISH_RUN: &str =
    "UPDATE dmf.runs SET status = @P2, error = @P3, finished_at = SYSUTCDATETIME() WHERE id = @P1";

/// Records a run's backup. Parameters: id, backup (JSON).
pub(crate) const RECORD_BACKUP: &str = "UPDATE dmf.runs SET [backup] = @P2 WHERE id = @P1";

const RUN_COLUMNS: &str = "id, status, [plan], host, started_at, finished_at, [backup], error";

/// One run. Parameter: id.
pub(crate) fn run() -> String {
    format!("SELECT {RUN_COLUMNS} FROM dmf.runs WHERE id = @P1")
}

/// The latest runs first. Parameter: limit.
pub(crate) fn runs() -> String {
    format!("SELECT TOP (@P1) {RUN_COLUMNS} FROM dmf.runs ORDER BY id DESC")
}

/// Inserts or replaces a migration record. Parameters in column order (`@P1` run … `@P15`
/// error).
pub(crate) const SAVE_MIGRATION_RECORD: &str = "\
UPDATE dmf.migration_runs SET status = @P3, started_at = @P4, finished_at = @P5, rows_read = @P6, rows_inserted = @P7, \
rows_updated = @P8, rows_unchanged = @P9, rows_deleted = @P10, rows_skipped = @P11, rows_rejected = @P12, \
duration_ms = @P13, resumed = @P14, error = @P15 WHERE run_id = @P1 AND migration = @P2; \
IF @@ROWCOUNT = 0 INSERT INTO dmf.migration_runs (run_id, migration, status, started_at, finished_at, rows_read, \
rows_inserted, rows_updated, rows_unchanged, rows_deleted, rows_skipped, rows_rejected, duration_ms, resumed, error) \
VALUES (@P1, @P2, @P3, @P4, @P5, @P6, @P7, @P8, @P9, @P10, @P11, @P12, @P13, @P14, @P15);";

const RECORD_COLUMNS: &str = "m.run_id, m.migration, m.status, m.started_at, m.finished_at, m.rows_read, \
m.rows_inserted, m.rows_updated, m.rows_unchanged, m.rows_deleted, m.rows_skipped, m.rows_rejected, m.duration_ms, \
CAST(m.resumed AS int) AS resumed, m.error";

/// The latest record of a migration in which it ran or was rolled back (pending and skipped
/// records are ignored). Parameter: migration.
pub(crate) fn latest_record() -> String {
    format!(
        "SELECT TOP (1) {RECORD_COLUMNS} FROM dmf.migration_runs AS m WHERE m.migration = @P1 \
         AND m.status NOT IN (N'pending', N'skipped') ORDER BY m.run_id DESC"
    )
}

/// Every record of a run, in the run's plan order. Parameter: run id.
pub(crate) fn migration_records() -> String {
    format!(
        "SELECT {RECORD_COLUMNS} FROM dmf.migration_runs AS m JOIN dmf.runs AS r ON r.id = m.run_id \
         OUTER APPLY (SELECT TOP (1) CAST(p.[key] AS int) AS ord FROM OPENJSON(r.[plan]) AS p WHERE p.[value] = m.migration) AS planned \
         WHERE m.run_id = @P1 ORDER BY CASE WHEN planned.ord IS NULL THEN 1 ELSE 0 END, planned.ord, m.migration"
    )
}

/// Adds rejects, in order. Parameters: run, migration, and a JSON array of objects with
/// `stage`, `key`, `reason`, `payload`.
pub(crate) const RECORD_REJECTS: &str = "\
INSERT INTO dmf.rejects (run_id, migration, stage, source_key, reason, payload) \
SELECT @P1, @P2, r.stage, r.source_key, r.reason, r.payload \
FROM OPENJSON(@P3) AS j CROSS APPLY OPENJSON(j.[value]) WITH (stage nvarchar(20) '$.stage', source_key nvarchar(max) '$.key', \
reason nvarchar(max) '$.reason', payload nvarchar(max) '$.payload' AS JSON) AS r ORDER BY CAST(j.[key] AS int)";

/// A page of a run's rejects in the order recorded. Parameters: run, migration (NULL for
/// all), limit, offset.
pub(crate) const REJECTS: &str = "\
SELECT r.run_id, r.migration, r.stage, r.source_key, r.reason, r.payload FROM (\
SELECT run_id, migration, stage, source_key, reason, payload, ROW_NUMBER() OVER (ORDER BY id) AS rn FROM dmf.rejects \
WHERE run_id = @P1 AND (@P2 IS NULL OR migration = @P2)) AS r WHERE r.rn > @P4 AND r.rn <= @P4 + @P3 ORDER BY r.rn";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_control_table_is_created_if_missing_with_the_inspected_columns() {
        for (table, columns) in TABLES {
            let start = CREATE
                .find(&format!("IF OBJECT_ID(N'{SCHEMA}.{table}', N'U') IS NULL CREATE TABLE {SCHEMA}.{table} ("));
            let start = start.unwrap_or_else(|| panic!("{table} is not created"));
            let body = &CREATE[start..];
            let body = &body[..body.find(");").unwrap()];
            for column in columns.iter() {
                let plain = format!("\n    {column} ");
                let bracketed = format!("\n    [{column}] ");
                assert!(body.contains(&plain) || body.contains(&bracketed), "{table}.{column}");
            }
        }
        assert!(CREATE.starts_with("SET XACT_ABORT ON;\nBEGIN TRANSACTION;\nEXEC sp_getapplock"));
        assert!(CREATE.ends_with("COMMIT TRANSACTION;"));
    }

    #[test]
    fn run_queries() {
        assert_eq!(
            run(),
            "SELECT id, status, [plan], host, started_at, finished_at, [backup], error FROM dmf.runs WHERE id = @P1"
        );
        assert_eq!(
            runs(),
            "SELECT TOP (@P1) id, status, [plan], host, started_at, finished_at, [backup], error FROM dmf.runs ORDER BY id DESC"
        );
        assert!(latest_record().ends_with(
            "FROM dmf.migration_runs AS m WHERE m.migration = @P1 AND m.status NOT IN (N'pending', N'skipped') ORDER BY m.run_id DESC"
        ));
        assert!(
            migration_records()
                .contains("OUTER APPLY (SELECT TOP (1) CAST(p.[key] AS int) AS ord FROM OPENJSON(r.[plan]) AS p")
        );
    }

    #[test]
    fn checkpoints_are_upserted_without_merge() {
        assert_eq!(
            SAVE_CHECKPOINT,
            "UPDATE dmf.checkpoints SET [position] = @P2, skip = @P3, done = @P4, updated_at = SYSUTCDATETIME() WHERE migration = @P1; \
             IF @@ROWCOUNT = 0 INSERT INTO dmf.checkpoints (migration, [position], skip, done, updated_at) VALUES (@P1, @P2, @P3, @P4, SYSUTCDATETIME());"
        );
        assert_eq!(
            CHECKPOINT,
            "SELECT [position], skip, CAST(done AS int) AS done FROM dmf.checkpoints WHERE migration = @P1"
        );
        assert_eq!(CLEAR_CHECKPOINT, "DELETE FROM dmf.checkpoints WHERE migration = @P1");
    }
}
