//! Live (needs `DMF_TEST_MSSQL_URL`): pre-flight on a real server, the catalog of the rich
//! schema, a COPY_ONLY backup verified and restored, and the control plane's conformance
//! suites (run store, checkpoints) over the `MssqlConnector`, and rejects too long for an
//! `nvarchar(4000)`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod live_common;

use std::sync::Arc;

use dmf_core::catalog::{DataType, LoadOrder, TableName};
use dmf_core::sync::{Database, DatabaseRole};
use dmf_core::{Backup, CheckStatus, RunId};
use live_common::{ODD_NAME, ORDER_NAME, RICH_SCHEMA, TestDb, server_url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
async fn preflight_passes_on_a_standalone_server_and_the_control_tables_get_created() {
    let url = server_url("preflight").await;
    let db = TestDb::create(&url, "preflight").await;
    let database = db.database();
    let outcomes = database.preflight(DatabaseRole::Target).await;
    assert!(outcomes.iter().all(|o| o.status != CheckStatus::Failed), "{outcomes:#?}");
    let control = outcomes.iter().find(|o| o.check == "target control tables").unwrap();
    assert!(control.detail.ends_with("missing: they will be created"), "{}", control.detail);
    let connectivity = outcomes.iter().find(|o| o.check == "target connectivity").unwrap();
    assert!(connectivity.detail.contains("SQL Server 1"), "{}", connectivity.detail);

    database.run_store().await.unwrap();
    let outcomes = database.preflight(DatabaseRole::Target).await;
    let control = outcomes.iter().find(|o| o.check == "target control tables").unwrap();
    assert_eq!(
        control.detail,
        "dmf.runs, dmf.migration_runs, dmf.checkpoints, dmf.rejects, dmf.undo_log, dmf.leases exist"
    );
    let source = database.preflight(DatabaseRole::Source).await;
    assert!(source.iter().all(|o| o.status == CheckStatus::Passed), "{source:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
#[cfg_attr(dmf_mssql_server = "babelfish", ignore = "needs SQL Server: ALTER DATABASE … SET READ_ONLY")]
async fn preflight_refuses_a_read_only_database_as_a_target() {
    let url = server_url("preflight_read_only").await;
    let db = TestDb::create(&url, "read_only").await;
    db.batch(&format!("ALTER DATABASE [{}] SET READ_ONLY WITH ROLLBACK IMMEDIATE", db.name)).await;
    let outcomes = db.database().preflight(DatabaseRole::Target).await;
    let state = outcomes.iter().find(|o| o.check == "target database state").unwrap();
    assert_eq!(state.status, CheckStatus::Failed, "{outcomes:#?}");
    db.batch(&format!("ALTER DATABASE [{}] SET READ_WRITE WITH ROLLBACK IMMEDIATE", db.name)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
async fn the_catalog_of_the_rich_schema() {
    let url = server_url("catalog").await;
    let db = TestDb::create(&url, "catalog").await;
    for batch in RICH_SCHEMA {
        db.batch(batch).await;
    }
    let database = db.database();
    database.run_store().await.unwrap();
    let catalog = database.read_catalog().await.unwrap();
    let names: Vec<String> = catalog.tables.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(
        names,
        [
            &format!("dbo.{ODD_NAME}"),
            "shop.customers",
            "shop.departments",
            "shop.employees",
            &format!("shop.{ORDER_NAME}"),
            "shop.order_lines"
        ],
        "the dmf control tables are left out"
    );
    let customers = catalog.table(&TableName::new(Some("shop"), "customers")).unwrap();
    assert!(customers.column("id").unwrap().identity);
    assert!(customers.column("name_upper").unwrap().generated);
    let rv = customers.column("rv").unwrap();
    assert!(rv.generated && rv.native_type == "rowversion", "{rv:?}");
    assert_eq!(
        customers.column("credit").unwrap().data_type,
        DataType::Decimal { precision: Some(19), scale: Some(4) }
    );
    assert_eq!(customers.column("email").unwrap().data_type, DataType::Text { max_len: Some(200) });
    assert_eq!(customers.column("updated_at").unwrap().data_type, DataType::TimestampTz);
    assert_eq!(customers.column("wake_up").unwrap().native_type, "time(3)");
    assert_eq!(customers.unique_keys, vec![vec!["email".to_owned()]]);
    assert_eq!(customers.foreign_keys.len(), 1);
    let lines = catalog.table(&TableName::new(Some("shop"), "order_lines")).unwrap();
    assert_eq!(lines.primary_key, ["order_id", "line"]);
    assert_eq!(lines.column("updated_at").unwrap().native_type, "datetime");

    let order = LoadOrder::plan(&catalog.tables).unwrap();
    let position = |name: &str| order.steps.iter().position(|s| s.table.name == name).unwrap();
    assert!(position("customers") < position(ORDER_NAME) && position(ORDER_NAME) < position("order_lines"));
    let cyclic = order.steps.iter().filter(|s| !s.deferred.is_empty()).count();
    assert_eq!(cyclic, 2, "the customers self-reference and the departments/employees cycle are deferred");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
#[cfg_attr(dmf_mssql_server = "babelfish", ignore = "needs SQL Server: ALTER TABLE … NOCHECK CONSTRAINT")]
async fn a_disabled_foreign_key_is_read_as_not_enforced() {
    let url = server_url("disabled_foreign_key").await;
    let db = TestDb::create(&url, "disabled_fk").await;
    for batch in RICH_SCHEMA {
        db.batch(batch).await;
    }
    let database = db.database();
    let catalog = database.read_catalog().await.unwrap();
    let lines = catalog.table(&TableName::new(Some("shop"), "order_lines")).unwrap();
    assert!(lines.foreign_keys[0].enforced);
    db.batch("ALTER TABLE shop.order_lines NOCHECK CONSTRAINT ALL").await;
    let catalog = database.read_catalog().await.unwrap();
    let lines = catalog.table(&TableName::new(Some("shop"), "order_lines")).unwrap();
    assert!(!lines.foreign_keys[0].enforced, "a disabled foreign key is read as not enforced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
#[cfg_attr(dmf_mssql_server = "babelfish", ignore = "needs SQL Server: BACKUP DATABASE and RESTORE")]
async fn a_copy_only_backup_is_verified_and_restores_the_database() {
    let url = server_url("backup").await;
    let db = TestDb::create(&url, "backup").await;
    db.batch("CREATE TABLE dbo.t (id int PRIMARY KEY, v nvarchar(20)); INSERT INTO dbo.t VALUES (1, N'before');").await;
    let directory = std::env::var("DMF_TEST_MSSQL_BACKUP_DIR").ok();
    let backup = db.database().backup(directory.as_deref());
    let record = backup.backup(RunId(1)).await.unwrap();
    assert!(record.location.ends_with(".bak"), "{record:?}");
    assert!(record.size_bytes.unwrap_or(0) > 0);
    let copy_only = db
        .scalar(&format!(
            "SELECT CAST(MAX(CAST(is_copy_only AS int)) AS bigint) FROM msdb.dbo.backupset WHERE database_name = N'{}'",
            db.name
        ))
        .await;
    assert_eq!(copy_only, 1, "the server's own backup chain is not disturbed");

    db.batch("UPDATE dbo.t SET v = N'after'; INSERT INTO dbo.t VALUES (2, N'new');").await;
    backup.restore(&record).await.unwrap();
    assert_eq!(db.scalar("SELECT COUNT_BIG(*) FROM dbo.t").await, 1);
    assert_eq!(db.scalar("SELECT COUNT_BIG(*) FROM dbo.t WHERE v = N'before'").await, 1);
    let access =
        db.scalar(&format!("SELECT CAST(user_access AS bigint) FROM sys.databases WHERE name = N'{}'", db.name)).await;
    assert_eq!(access, 0, "back in MULTI_USER mode");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
async fn the_run_store_passes_the_conformance_suite() {
    let url = server_url("run_store").await;
    let db = TestDb::create(&url, "run_store").await;
    let store = db.database().run_store().await.unwrap();
    dmf_testkit::conformance::run_store(store.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
async fn leases_pass_the_conformance_suite() {
    let url = server_url("leases").await;
    let db = TestDb::create(&url, "leases").await;
    let store = db.database().run_store().await.unwrap();
    dmf_testkit::conformance::leases(store.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
async fn checkpoints_pass_the_conformance_suite() {
    let url = server_url("checkpoints").await;
    let db = TestDb::create(&url, "checkpoints").await;
    let database = db.database();
    database.create_control_tables().await.unwrap();
    dmf_testkit::conformance::checkpoints(Arc::new(database.control_connector())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
async fn long_reject_reasons_and_payloads_round_trip() {
    let url = server_url("long_rejects").await;
    let db = TestDb::create(&url, "long_rejects").await;
    let store = db.database().run_store().await.unwrap();
    let migration = dmf_core::MigrationName::new("dbo.t");
    let run = store.start_run(std::slice::from_ref(&migration), "host").await.unwrap();
    let reject = dmf_core::Reject {
        stage: dmf_core::Stage::Load,
        key: "k".repeat(5000),
        reason: "Zoë 🦀 ".repeat(2000),
        payload: serde_json::json!({"text": "ü".repeat(9000)}),
    };
    store.record_rejects(run, &migration, std::slice::from_ref(&reject)).await.unwrap();
    let read = store.rejects(run, None, 10, 0).await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].reject, reject);
}

/// A session that checked a foreign key and then created its first `#temp` table can still
/// write the child table: on Babelfish 4.3 it could not (the cached check re-planned with
/// the schema mapped twice, `relation "<db>_<db>_dmf.runs" does not exist`) until every
/// connection opens its temporary namespace first. The pool has one connection, so the
/// run store's writes and the staged table share it, as a run's do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
async fn a_session_that_checked_a_foreign_key_still_writes_the_child_after_creating_a_temp_table() {
    let url = server_url("fk_then_temp").await;
    let db = TestDb::create(&url, "fk_then_temp").await;
    db.batch(
        "CREATE SCHEMA s; \
         CREATE TABLE s.parent (id int PRIMARY KEY); \
         CREATE TABLE s.child (id int PRIMARY KEY, parent int NOT NULL REFERENCES s.parent (id)); \
         INSERT INTO s.parent (id) VALUES (1);",
    )
    .await;
    let mut session = db.session().await;
    let insert = |id: i64| format!("INSERT INTO s.child (id, parent) VALUES ({id}, 1)");
    session.batch(&insert(1)).await.unwrap();
    session.batch(&insert(2)).await.unwrap();
    session.batch("CREATE TABLE #stage (x int)").await.unwrap();
    session.batch(&insert(3)).await.unwrap_or_else(|e| panic!("the child after a temp table: {e}"));
    assert_eq!(db.scalar("SELECT COUNT(*) FROM s.child").await, 3);
}
