//! Live (needs `DMF_TEST_MSSQL_URL`): failures the server itself causes. A batch holding a
//! row that breaks the target's unique key fails with SQL Server error 2627; the engine bisects
//! it down to that row, which goes to the reject quarantine with its key and the server's
//! reason, and the rest loads. A loader's session killed by the server (`KILL <spid>` from
//! another session) breaks its next batch with a transient error; the engine retries it on a
//! new session and the run completes exactly. The kill happens while the load is held at a
//! gate (dmf-testkit's `FaultPlan::hold_before`), so it hits the session between two batches
//! every time, never by timing.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod live_common;

use std::sync::Arc;

use dmf_core::catalog::TableName;
use dmf_core::sync::{Database, SyncJob, SyncMode};
use dmf_core::{EngineConfig, RejectLimit, RunRequest, RunStatus, Stage, Value};
use dmf_testkit::{FaultPlan, FaultyDatabase, Gate};
use live_common::{TestDb, UPSERT_STRATEGIES, server_url};

const ROWS: i64 = 30;

/// The source's `dbo.items`: 30 rows, each with a `code`; `duplicate` takes the code of row
/// 5 (the target's `code` is unique, the source's is not).
async fn items(url: &str, label: &str, duplicate: Option<i64>) -> (TestDb, TestDb) {
    let source = TestDb::create(url, &format!("{label}_src")).await;
    let target = TestDb::create(url, &format!("{label}_dst")).await;
    source
        .batch("CREATE TABLE dbo.items (id bigint NOT NULL PRIMARY KEY, code nvarchar(20) NOT NULL, n int NULL)")
        .await;
    target
        .batch("CREATE TABLE dbo.items (id bigint NOT NULL PRIMARY KEY, code nvarchar(20) NOT NULL UNIQUE, n int NULL)")
        .await;
    source
        .batch(&format!(
            "WITH n AS (SELECT TOP ({ROWS}) CAST(ROW_NUMBER() OVER (ORDER BY (SELECT NULL)) AS bigint) AS g
                        FROM sys.all_objects)
             INSERT INTO dbo.items (id, code, n) SELECT g, CONCAT(N'code-', g), CAST(g * 7 AS int) FROM n;"
        ))
        .await;
    if let Some(id) = duplicate {
        source.batch(&format!("UPDATE dbo.items SET code = N'code-5' WHERE id = {id}")).await;
    }
    (source, target)
}

/// Every row of `dbo.items` in key order, as the server sends it.
async fn rows(db: &TestDb) -> Vec<Vec<Value>> {
    let rows = db.session().await.query("SELECT id, code, n FROM dbo.items ORDER BY id", &[]).await.unwrap();
    rows.iter().map(|row| row.values().unwrap()).collect()
}

async fn duplicate_key_isolated(mode: SyncMode, strategy: dmf_mssql::UpsertStrategy) {
    let url = server_url("duplicate_key").await;
    let (source_db, target_db) = items(&url, "dupkey", Some(13)).await;
    let (source, target) = (source_db.database(), target_db.upserting(strategy));
    let engine = EngineConfig::builder().batch_size(10).reject_limit(RejectLimit::Count(5)).build().unwrap();
    let summary = SyncJob::new(Arc::clone(&source), Arc::clone(&target), mode.clone())
        .engine(engine)
        .run(RunRequest::all().force())
        .await
        .unwrap();
    assert!(summary.succeeded(), "{mode}: {summary}");
    let counts = summary.migration("dbo.items").unwrap().counts;
    assert_eq!((counts.read, counts.inserted, counts.rejected), (30, 29, 1), "{mode}: {summary}");

    let store = target.run_store().await.unwrap();
    let rejects = store.rejects(summary.run, Some(&"dbo.items".into()), 10, 0).await.unwrap();
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    let reject = &rejects[0].reject;
    assert_eq!((reject.stage, reject.key.as_str()), (Stage::Load, "id=13"), "{mode}: exactly the duplicate");
    assert!(reject.reason.contains("SQL Server error 2627"), "{mode}: {}", reject.reason);
    assert!(reject.payload.to_string().contains("code-5"), "{mode}: the row itself is kept: {}", reject.payload);

    let mut expected = rows(&source_db).await;
    expected.retain(|row| row[0] != Value::Int(13));
    assert_eq!(rows(&target_db).await, expected, "{mode}: every other row, exactly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
async fn a_duplicate_key_in_a_bulk_load_is_isolated_and_the_rest_loads() {
    duplicate_key_isolated(SyncMode::Full, dmf_mssql::UpsertStrategy::Merge).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
async fn a_duplicate_key_in_an_upsert_is_isolated_and_the_rest_loads() {
    for &strategy in UPSERT_STRATEGIES {
        duplicate_key_isolated(SyncMode::Upsert, strategy).await;
    }
}

/// Ends every session of `db` but the caller's with `KILL`, and says how many.
async fn kill_sessions_of(db: &TestDb) -> usize {
    let mut killer = db.session().await;
    let sessions = killer
        .query(
            "SELECT CAST(session_id AS bigint) FROM sys.dm_exec_sessions \
             WHERE database_id = DB_ID() AND session_id <> @@SPID",
            &[],
        )
        .await
        .unwrap();
    for session in &sessions {
        let spid = session.int_required(0).unwrap();
        killer.batch(&format!("KILL {spid}")).await.unwrap_or_else(|e| panic!("KILL {spid}: {e}"));
    }
    sessions.len()
}

async fn killed_session_retried(mode: SyncMode, strategy: dmf_mssql::UpsertStrategy) {
    let url = server_url("killed_session").await;
    let (source_db, target_db) = items(&url, "killed", None).await;
    // The second batch waits at the gate, its loader's session open and idle.
    let gate = Gate::new();
    let plan = FaultPlan::new().hold_before(2, &gate);
    let target = Arc::new(
        FaultyDatabase::new(target_db.upserting(strategy).as_ref().clone()).faults_for("dbo.items", plan.clone()),
    );
    let engine = EngineConfig::builder().batch_size(10).reject_limit(RejectLimit::Count(0)).build().unwrap();
    let job = SyncJob::new(source_db.database(), Arc::clone(&target), mode.clone())
        .engine(engine)
        .tables(vec![TableName::new(Some("dbo"), "items")]);
    let run = tokio::spawn(async move { job.run(RunRequest::all().force()).await });
    tokio::pin!(run);
    tokio::select! {
        () = gate.reached() => {}
        finished = &mut run => panic!("{mode}: the run ended before its second batch: {finished:?}"),
    }
    let killed = kill_sessions_of(&target_db).await;
    assert!(killed >= 1, "{mode}: the loader's session was there to kill");
    gate.open();
    let summary = run.await.unwrap().unwrap();

    assert_eq!(summary.status, RunStatus::Completed, "{mode}: {summary}");
    let record = summary.migration("dbo.items").unwrap();
    assert_eq!((record.counts.read, record.counts.inserted, record.counts.rejected), (30, 30, 0), "{mode}: {summary}");
    // Three batches, and the one whose session was killed once more: the retry.
    assert!(plan.calls() >= 4, "{mode}: {} loads; the batch on the killed session was not retried", plan.calls());
    assert_eq!(rows(&target_db).await, rows(&source_db).await, "{mode}: every row once, exactly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
async fn a_bulk_load_whose_session_was_killed_is_retried_and_the_run_completes_exactly() {
    killed_session_retried(SyncMode::Full, dmf_mssql::UpsertStrategy::Merge).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
async fn an_upsert_whose_session_was_killed_is_retried_and_the_run_completes_exactly() {
    for &strategy in UPSERT_STRATEGIES {
        killed_session_retried(SyncMode::Upsert, strategy).await;
    }
}
