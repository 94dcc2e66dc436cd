//! Live (needs `DMF_TEST_MSSQL_URL`): every sync mode between two SQL Server databases with
//! the rich schema, checked by SQL Server's own fingerprints; exact upsert counts, with MERGE
//! and without (`UpsertStrategy::UpdateInsert`, the only one on Babelfish); identity values
//! kept; incremental by rowversion, by datetime and datetimeoffset; rollback from the undo
//! log; the fast path of a full sync leaving every constraint as trusted as it was.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod live_common;

use std::sync::Arc;

use dmf_core::catalog::TableName;
use dmf_core::sync::{FK_CHECK, ForeignKeyChecks, SyncJob, SyncMode};
use dmf_core::{EngineConfig, RunRequest, RunStatus};
use live_common::{
    BABELFISH, CHANGES, ODD_NAME, ORDER_NAME, UPSERT_STRATEGIES, counts, fingerprints, rich_pair,
    rich_pair_for_this_server, rich_pair_without_decimals, server_url, sync,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
#[cfg_attr(
    dmf_mssql_server = "babelfish",
    ignore = "known failure over TDS on Babelfish 4.3 (its bug, not DMF's): bulk-loaded decimals come out wrong; see `bulk_loaded_decimals_read_back_equal`. The rest of this test passes there with the decimal columns as float"
)]
async fn a_full_sync_copies_every_table_exactly_identity_values_included() {
    let url = server_url("full_sync").await;
    let (source_db, target_db) = rich_pair(&url, "full").await;
    let (source, target) = (source_db.database(), target_db.database());
    let summary = sync(&source, &target, SyncMode::Full, false).await;
    assert_eq!(summary.status, RunStatus::Completed, "{summary}");
    assert_eq!(fingerprints(&target_db).await, fingerprints(&source_db).await);
    assert_eq!(counts(&summary, "shop.customers").1, 1000);
    // The identity moved past the copied ids: the target's own inserts do not collide.
    target_db
        .batch("INSERT INTO shop.customers (email, name, created_at, updated_at, external_id) VALUES (N'own@x', N'own', '2024-01-01', '2024-01-01', NEWID())")
        .await;
    assert!(target_db.scalar("SELECT MAX(id) FROM shop.customers").await > 1000);
    let untrusted = target_db.scalar("SELECT COUNT_BIG(*) FROM sys.foreign_keys WHERE is_not_trusted = 1").await;
    assert_eq!(untrusted, 0, "the fast path re-validated the foreign keys its bulk loads left not trusted");

    // Again: the tables are emptied and loaded anew.
    let again = sync(&source, &target, SyncMode::Full, false).await;
    assert_eq!(again.status, RunStatus::Completed, "{again}");
    assert_eq!(fingerprints(&target_db).await, fingerprints(&source_db).await);
}

/// The full sync above on every server, Babelfish included, without the decimal columns
/// Babelfish garbles: a 100 KB text (beyond what tiberius bulk-loads, so inserted with
/// parameters), identity values kept and the identity moved past them, the departments ⇄
/// employees cycle filled by the deferred-keys pass and emptied again by the second run, and
/// the quality report equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
async fn a_full_sync_without_decimals_runs_twice_exactly_on_every_server() {
    let url = server_url("full_sync_no_decimals").await;
    let (source_db, target_db) = rich_pair_without_decimals(&url, "full_nodec").await;
    let (source, target) = (source_db.database(), target_db.database());
    for run in 1..=2 {
        let summary = sync(&source, &target, SyncMode::Full, false).await;
        assert_eq!(summary.status, RunStatus::Completed, "run {run}: {summary}");
        assert_eq!(counts(&summary, "shop.customers"), (1000, 1000, 0, 0, 0), "run {run}: no row rejected");
        assert_eq!(fingerprints(&target_db).await, fingerprints(&source_db).await, "run {run}");
    }
    let long = "SELECT CAST(LEN(bio) AS bigint) FROM shop.customers WHERE id = 7";
    assert_eq!(target_db.scalar(long).await, source_db.scalar(long).await, "the 100 KB text, whole");
    assert!(target_db.scalar(long).await >= 80_000);
    target_db
        .batch("INSERT INTO shop.customers (email, name, created_at, updated_at, external_id) VALUES (N'own@x', N'own', '2024-01-01', '2024-01-01', NEWID())")
        .await;
    assert!(
        target_db.scalar("SELECT MAX(id) FROM shop.customers").await > 1000,
        "the identity moved past the copied ids"
    );
    // Rows only: the target's own insert moved its identity past the source's, on purpose.
    let plan =
        SyncJob::new(Arc::clone(&source), Arc::clone(&target), SyncMode::Diff).sequences(false).plan().await.unwrap();
    target_db.batch("DELETE FROM shop.customers WHERE email = N'own@x'").await;
    let report = dmf_core::quality::compare(source.as_ref(), target.as_ref(), &plan, 10).await.unwrap();
    assert!(report.is_equal(), "{report}");
}

/// Reads `is_not_trusted` of a foreign key or CHECK constraint by name.
async fn not_trusted(db: &live_common::TestDb, constraint: &str) -> i64 {
    db.scalar(&format!(
        "SELECT CAST(is_not_trusted AS bigint) FROM sys.foreign_keys WHERE name = N'{constraint}' \
         UNION ALL SELECT CAST(is_not_trusted AS bigint) FROM sys.check_constraints WHERE name = N'{constraint}'"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
#[cfg_attr(
    dmf_mssql_server = "babelfish",
    ignore = "needs SQL Server: constraint trust (WITH NOCHECK, is_not_trusted) and FIRE_TRIGGERS in bulk loads"
)]
async fn the_fast_path_leaves_every_constraint_as_trusted_as_it_was_and_fires_triggers_only_per_row() {
    let url = server_url("fast_full_sync").await;
    let (source_db, target_db) = rich_pair(&url, "fast").await;
    for db in [&source_db, &target_db] {
        db.batch("ALTER TABLE shop.order_lines ADD CONSTRAINT CK_order_lines_quantity CHECK (quantity > 0)").await;
    }
    // Not trusted before the load, on purpose: DMF must leave it so.
    target_db
        .batch("ALTER TABLE shop.employees WITH NOCHECK ADD CONSTRAINT CK_employees_name CHECK (LEN(name) > 0)")
        .await;
    // A table with an insert trigger stays on the per-row path, which fires it.
    target_db.batch("CREATE TABLE dbo.audit (n int NOT NULL)").await;
    target_db
        .batch(
            "CREATE TRIGGER dbo.trg_odd ON dbo.$ODD AFTER INSERT AS \
             INSERT INTO dbo.audit (n) SELECT COUNT(*) FROM inserted",
        )
        .await;
    assert_eq!(not_trusted(&target_db, "CK_employees_name").await, 1);
    let (source, target) = (source_db.database(), target_db.database());

    let summary = SyncJob::new(Arc::clone(&source), Arc::clone(&target), SyncMode::Full)
        .engine(EngineConfig::builder().batch_size(300).build().unwrap())
        .jobs(2)
        .foreign_key_checks(ForeignKeyChecks::Auto)
        .run(RunRequest::all().force())
        .await
        .unwrap();
    assert_eq!(summary.status, RunStatus::Completed, "{summary}");
    let line = summary.preflight.outcomes.iter().find(|o| o.check == FK_CHECK).unwrap().detail.clone();
    assert!(line.starts_with("deferred to a set-based proof (bulk loads without CHECK_CONSTRAINTS"), "{line}");
    assert!(line.contains("CHECK constraint `CK_employees_name` of shop.employees"), "{line}");
    assert!(line.contains(&format!("dbo.{ODD_NAME} per row, because its insert triggers trg_odd")), "{line}");
    assert_eq!(fingerprints(&target_db).await, fingerprints(&source_db).await);

    let untrusted = target_db.scalar("SELECT COUNT_BIG(*) FROM sys.foreign_keys WHERE is_not_trusted = 1").await;
    assert_eq!(untrusted, 0, "every foreign key is trusted again");
    assert_eq!(not_trusted(&target_db, "CK_order_lines_quantity").await, 0, "re-validated after the bulk load");
    assert_eq!(not_trusted(&target_db, "CK_employees_name").await, 1, "left as it was");
    assert_eq!(target_db.scalar("SELECT SUM(n) FROM dbo.audit").await, 200, "FIRE_TRIGGERS on the per-row path");
}

/// Both upsert strategies on SQL Server, the MERGE-free one on Babelfish (no MERGE there),
/// each with the rich schema as far as the server loads it correctly
/// ([`rich_pair_for_this_server`]: no decimals on Babelfish).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
async fn upsert_counts_are_exact_and_an_unchanged_rerun_writes_nothing() {
    let url = server_url("upsert").await;
    for &strategy in UPSERT_STRATEGIES {
        let (source_db, target_db) = rich_pair_for_this_server(&url, "upsert").await;
        let (source, target) = (source_db.database(), target_db.upserting(strategy));
        let first = sync(&source, &target, SyncMode::Upsert, false).await;
        assert_eq!(first.status, RunStatus::Completed, "{strategy:?}: {first}");
        assert_eq!(counts(&first, "shop.customers"), (1000, 1000, 0, 0, 0), "{strategy:?}");
        assert_eq!(fingerprints(&target_db).await, fingerprints(&source_db).await, "{strategy:?}");

        let rerun = sync(&source, &target, SyncMode::Upsert, false).await;
        assert_eq!(rerun.totals().inserted + rerun.totals().updated, 0, "{strategy:?}: {rerun}");

        source_db.batch(CHANGES).await;
        let changed = sync(&source, &target, SyncMode::Upsert, false).await;
        assert_eq!(changed.status, RunStatus::Completed, "{strategy:?}: {changed}");
        assert_eq!(counts(&changed, "shop.customers"), (1010, 10, 10, 990, 0), "{strategy:?}");
        assert_eq!(counts(&changed, &format!("shop.{ORDER_NAME}")), (993, 3, 10, 980, 0), "{strategy:?}");
        assert_eq!(counts(&changed, "shop.order_lines"), (1983, 3, 10, 1970, 0), "{strategy:?}");
        assert_eq!(counts(&changed, &format!("dbo.{ODD_NAME}")), (200, 2, 2, 196, 0), "{strategy:?}");
        assert_eq!(counts(&changed, "shop.employees"), (500, 0, 0, 500, 0), "{strategy:?}");
        let prints = (fingerprints(&source_db).await, fingerprints(&target_db).await);
        // The others had rows deleted in the source, which an upsert leaves in the target.
        for table in ["shop.customers", "shop.customers lengths", "shop.employees"] {
            assert_eq!(prints.0[table], prints.1[table], "{strategy:?}: {table}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
async fn diff_writes_only_the_differences_deletes_included() {
    let url = server_url("diff").await;
    for &strategy in UPSERT_STRATEGIES {
        let (source_db, target_db) = rich_pair_for_this_server(&url, "diff").await;
        let (source, target) = (source_db.database(), target_db.upserting(strategy));
        assert_eq!(sync(&source, &target, SyncMode::Full, false).await.status, RunStatus::Completed);
        source_db.batch(CHANGES).await;
        let summary = sync(&source, &target, SyncMode::Diff, false).await;
        assert_eq!(summary.status, RunStatus::Completed, "{strategy:?}: {summary}");
        assert_eq!(fingerprints(&target_db).await, fingerprints(&source_db).await, "{strategy:?}");
        assert_eq!(counts(&summary, &format!("shop.{ORDER_NAME} (deletes)")).4, 10, "{strategy:?}");
        assert_eq!(counts(&summary, "shop.order_lines (deletes)").4, 20, "{strategy:?}");
        assert_eq!(counts(&summary, &format!("dbo.{ODD_NAME} (deletes)")).4, 2, "{strategy:?}");
        let (_, inserted, updated, _, _) = counts(&summary, "shop.customers");
        assert_eq!((inserted, updated), (10, 10), "{strategy:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
#[cfg_attr(
    dmf_mssql_server = "babelfish",
    ignore = "needs SQL Server: MIN_ACTIVE_ROWVERSION(), which bounds a rowversion watermark (Babelfish 4.3: \"function min_active_rowversion() does not exist\")"
)]
async fn incremental_by_rowversion_reads_only_rows_changed_since_the_last_run() {
    let url = server_url("rowversion").await;
    for &strategy in UPSERT_STRATEGIES {
        let (source_db, target_db) = rich_pair_for_this_server(&url, "rowversion").await;
        let (source, target) = (source_db.database(), target_db.upserting(strategy));
        let job = SyncJob::new(
            Arc::clone(&source),
            Arc::clone(&target),
            SyncMode::Incremental { column: "rv".into(), propagate_deletes: false },
        )
        .tables(vec![TableName::new(Some("shop"), "customers")])
        .engine(EngineConfig::builder().batch_size(250).build().unwrap());
        // Completed migrations run again only when forced; incremental ones keep their watermark.
        let first = job.run(RunRequest::all().force()).await.unwrap();
        assert_eq!(first.status, RunStatus::Completed, "{strategy:?}: {first}");
        assert_eq!(counts(&first, "shop.customers").0, 1000, "{strategy:?}");

        source_db.batch(CHANGES).await;
        let mode = SyncMode::Incremental { column: "updated_at".into(), propagate_deletes: true };
        let tables = vec![TableName::new(Some("shop"), ORDER_NAME), TableName::new(Some("shop"), "order_lines")];
        let job = SyncJob::new(Arc::clone(&source), Arc::clone(&target), mode).tables(tables);
        let second = job.run(RunRequest::all().force()).await.unwrap();
        assert_eq!(second.status, RunStatus::Completed, "{strategy:?}: {second}");
        let (read, inserted, updated, _, _) = counts(&second, "shop.customers");
        assert_eq!((read, inserted, updated), (20, 10, 10), "{strategy:?}: only the renamed and the new rows are read");
        let third = job.run(RunRequest::all().force()).await.unwrap();
        assert_eq!(counts(&third, "shop.customers").0, 0, "{strategy:?}: nothing changed since");
        let prints = (fingerprints(&source_db).await, fingerprints(&target_db).await);
        assert_eq!(prints.0["shop.customers"], prints.1["shop.customers"], "{strategy:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
async fn incremental_by_datetime_and_datetimeoffset_with_deletes() {
    let url = server_url("incremental").await;
    for &strategy in UPSERT_STRATEGIES {
        let (source_db, target_db) = rich_pair_for_this_server(&url, "incremental").await;
        let (source, target) = (source_db.database(), target_db.upserting(strategy));
        assert_eq!(sync(&source, &target, SyncMode::Full, false).await.status, RunStatus::Completed);
        let mode = SyncMode::Incremental { column: "updated_at".into(), propagate_deletes: true };
        let tables = vec![TableName::new(Some("shop"), ORDER_NAME), TableName::new(Some("shop"), "order_lines")];
        let job = SyncJob::new(Arc::clone(&source), Arc::clone(&target), mode).tables(tables);
        // Completed migrations run again only when forced; incremental ones keep their
        // watermark. The first reads every row (the full sync's checkpoint is in key order).
        let first = job.run(RunRequest::all().force()).await.unwrap();
        assert_eq!(first.status, RunStatus::Completed, "{strategy:?}: {first}");
        assert_eq!(counts(&first, "shop.order_lines").0, 2000, "{strategy:?}");
        source_db.batch(CHANGES).await;
        let mode = SyncMode::Incremental { column: "updated_at".into(), propagate_deletes: true };
        let tables = vec![TableName::new(Some("shop"), ORDER_NAME), TableName::new(Some("shop"), "order_lines")];
        let job = SyncJob::new(Arc::clone(&source), Arc::clone(&target), mode).tables(tables);
        let second = job.run(RunRequest::all().force()).await.unwrap();
        assert_eq!(second.status, RunStatus::Completed, "{strategy:?}: {second}");
        assert_eq!(
            counts(&second, "shop.order_lines").0,
            13,
            "{strategy:?}: 10 updated and 3 new lines, by their datetime watermark"
        );
        assert_eq!(
            counts(&second, &format!("shop.{ORDER_NAME}")).0,
            13,
            "{strategy:?}: 10 updated and 3 new orders, by their datetimeoffset watermark"
        );
        let (source_prints, target_prints) = (fingerprints(&source_db).await, fingerprints(&target_db).await);
        assert_eq!(source_prints["shop.[Order]"], target_prints["shop.[Order]"], "{strategy:?}");
        assert_eq!(source_prints["shop.order_lines"], target_prints["shop.order_lines"], "{strategy:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
async fn rollback_from_the_undo_log_restores_every_table_exactly() {
    let url = server_url("rollback").await;
    for &strategy in UPSERT_STRATEGIES {
        for mode in [SyncMode::Upsert, SyncMode::Diff] {
            let (source_db, target_db) = rich_pair_for_this_server(&url, "rollback").await;
            let (source, target) = (source_db.database(), target_db.upserting(strategy));
            assert_eq!(sync(&source, &target, SyncMode::Full, false).await.status, RunStatus::Completed);
            source_db.batch(CHANGES).await;
            target_db.batch("UPDATE shop.customers SET name = N'local edit' WHERE id % 50 = 7").await;
            let before = fingerprints(&target_db).await;

            let mut job = SyncJob::new(Arc::clone(&source), Arc::clone(&target), mode.clone())
                .engine(EngineConfig::builder().batch_size(300).build().unwrap())
                .jobs(2)
                .undo(true);
            if BABELFISH {
                // Two tables are left out there. Babelfish 4.3 has no FOR JSON of binary
                // values ("binary types are not supported with FOR JSON"), which the undo
                // log's before-images are made with: the customers have a varbinary avatar.
                // Its OPENJSON … WITH cuts a column path at a space (`'$."key k"'`:
                // "unterminated quoted string at end of jsonpath input"), which the replay
                // reads them with: the odd table's key is `key "k"`.
                let table = |name| TableName::new(Some("shop"), name);
                job =
                    job.tables(vec![table(ORDER_NAME), table("order_lines"), table("departments"), table("employees")]);
            }
            let summary = job.run(RunRequest::all().force()).await.unwrap();
            assert!(summary.succeeded(), "{strategy:?}, {mode}: {summary}");
            assert_ne!(fingerprints(&target_db).await, before, "the sync changed the target");

            let (run, undone) = job.rollback(None, false).await.unwrap();
            assert_eq!(run, summary.run);
            assert!(undone.undone.iter().any(|(_, _, report)| report.restored > 0));
            assert_eq!(fingerprints(&target_db).await, before, "exactly the pre-run content ({strategy:?}, {mode})");
            assert_eq!(
                target_db.scalar(&format!("SELECT COUNT_BIG(*) FROM dmf.undo_log WHERE run_id = {}", run.0)).await,
                0
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
#[cfg_attr(
    dmf_mssql_server = "babelfish",
    ignore = "known failure over TDS on Babelfish 4.3 (its bug, not DMF's): bulk-loaded decimals come out wrong; see `bulk_loaded_decimals_read_back_equal`. The rest of this test passes there with the decimal columns as float"
)]
async fn the_quality_report_is_equal_after_a_sync_and_names_a_planted_difference() {
    let url = server_url("quality_report").await;
    let (source_db, target_db) = rich_pair(&url, "quality").await;
    let (source, target) = (source_db.database(), target_db.database());
    let summary = sync(&source, &target, SyncMode::Full, false).await;
    assert_eq!(summary.status, RunStatus::Completed, "{summary}");
    let job = SyncJob::new(Arc::clone(&source), Arc::clone(&target), SyncMode::Diff);
    let plan = job.plan().await.unwrap();
    let report = dmf_core::quality::compare(source.as_ref(), target.as_ref(), &plan, 10).await.unwrap();
    assert!(report.is_equal(), "{report}");

    target_db.batch("UPDATE shop.customers SET name = N'planted' WHERE id = 7").await;
    let report = dmf_core::quality::compare(source.as_ref(), target.as_ref(), &plan, 10).await.unwrap();
    let customers = report.tables.iter().find(|t| t.table == "shop.customers").unwrap();
    assert_eq!(customers.changed, 1, "{report}");
    assert_eq!(customers.sample[0].key, "id=7");
}

/// The smallest proof of the Babelfish 4.3 bug the two rich-schema syncs above meet.
///
/// TDS sends a bulk-loaded decimal as a length byte, a sign byte and 4, 8, 12 or 16 bytes of
/// magnitude. Babelfish's `TdsTypeNumericToDatum` (babelfishpg_tds `tdstypeio.c`, unchanged
/// on its main branch) always copies 16 magnitude bytes, whatever the length byte says: a
/// value sent in fewer bytes takes the bytes after it (the next column's) as its high digits,
/// giving wrong numbers or `invalid input syntax for type numeric: "r-2778…"`. tiberius sends
/// the shortest length that holds the value; clients that send the length of the column's
/// precision, as SQL Server's own do, fail too (pytds `copy_to` of 1.50 into a
/// `decimal(12,2)` column followed by an `int`: `invalid input syntax for type numeric:
/// "))2 ,83(LAMICED ]-1993…"`); only 17-byte values (precision 29 and up) survive. The same
/// values go through Babelfish's RPC path (`TdsRecvTypeNumeric`, which honours the length)
/// unharmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
#[cfg_attr(
    dmf_mssql_server = "babelfish",
    ignore = "known failure over TDS on Babelfish 4.3 (its bug, not DMF's): INSERT BULK reads 16 magnitude bytes of every decimal whatever its length byte says (TdsTypeNumericToDatum in babelfishpg_tds/tdstypeio.c), so a value shorter than 17 bytes takes the next column's bytes; pytds fails the same way"
)]
async fn bulk_loaded_decimals_read_back_equal() {
    let url = server_url("bulk_decimals").await;
    let source_db = live_common::TestDb::create(&url, "decimals_src").await;
    let target_db = live_common::TestDb::create(&url, "decimals_dst").await;
    let table = "CREATE TABLE dbo.amounts (id int NOT NULL PRIMARY KEY, small decimal(12,2) NULL, \
                 big decimal(38,10) NULL, after_them int NULL)";
    for db in [&source_db, &target_db] {
        db.batch(table).await;
    }
    source_db
        .batch(
            "INSERT INTO dbo.amounts VALUES (1, 1.50, 1.5, 7), (2, -0.01, -12345.0123456789, -1), \
             (3, 9999999999.99, 9999999999999999999999999999.9999999999, 0), (4, NULL, NULL, NULL)",
        )
        .await;
    let summary = sync(&source_db.database(), &target_db.database(), SyncMode::Full, false).await;
    assert_eq!(summary.status, RunStatus::Completed, "{summary}");
    let sql =
        "SELECT id, CAST(small AS nvarchar(50)), CAST(big AS nvarchar(50)), after_them FROM dbo.amounts ORDER BY id";
    let source = source_db.session().await.query(sql, &[]).await.unwrap();
    let target = target_db.session().await.query(sql, &[]).await.unwrap();
    assert_eq!(target.len(), 4);
    assert_eq!(target, source, "every decimal exactly as in the source");
}

/// Pre-flight reads the target's triggers from `sys.triggers` and `sys.trigger_events` and
/// names those that fire on the sync's writes; with `--skip-target-triggers`, an upsert
/// (which SQL Server cannot run without firing them) names them with why.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
async fn preflight_names_the_target_triggers_that_fire_on_the_sync_writes() {
    use dmf_core::sync::TRIGGER_CHECK;
    let url = server_url("triggers").await;
    let (source_db, target_db) =
        (live_common::TestDb::create(&url, "trg_src").await, live_common::TestDb::create(&url, "trg_dst").await);
    let schema = "CREATE TABLE dbo.film (id int PRIMARY KEY, title nvarchar(50) NOT NULL)";
    source_db.batch(schema).await;
    source_db.batch("INSERT INTO dbo.film (id, title) VALUES (1, N'a'), (2, N'b')").await;
    target_db.batch(schema).await;
    target_db.batch("CREATE TABLE dbo.audit (n int NOT NULL)").await;
    target_db
        .batch("CREATE TRIGGER dbo.film_changed ON dbo.film AFTER UPDATE, DELETE AS INSERT INTO dbo.audit (n) SELECT COUNT(*) FROM deleted")
        .await;
    let film = TableName::new(Some("dbo"), "film");
    let target = target_db.upserting(UPSERT_STRATEGIES[0]);
    let line = |summary: &dmf_core::RunSummary| {
        let line = summary.preflight.outcomes.iter().find(|o| o.check == TRIGGER_CHECK).unwrap();
        (line.status, line.detail.clone())
    };
    let job = |skip: bool| {
        SyncJob::new(source_db.database(), Arc::clone(&target), SyncMode::Upsert)
            .tables(vec![film.clone()])
            .skip_target_triggers(skip)
    };
    let plain = job(false).run(RunRequest::all()).await.unwrap();
    assert_eq!(plain.status, RunStatus::Completed, "{plain}");
    let (status, detail) = line(&plain);
    assert_eq!(status, dmf_core::CheckStatus::Warning);
    assert!(
        detail.starts_with(
            "these triggers fire on the sync's writes (INSERT, UPDATE): film_changed (AFTER UPDATE OR DELETE) on dbo.film."
        ),
        "{detail}"
    );
    let skipping = job(true).run(RunRequest::all()).await.unwrap();
    let (_, detail) = line(&skipping);
    assert!(
        detail.starts_with(
            "--skip-target-triggers was asked for, but these triggers fire on the sync's writes (INSERT, UPDATE): \
             film_changed (AFTER UPDATE OR DELETE) on dbo.film, because SQL Server skips foreign-key checks and \
             triggers only in bulk inserts"
        ),
        "{detail}"
    );
}
