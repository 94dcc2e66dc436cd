//! A bulk-loaded batch whose COMMIT reached the server but whose answer was lost (the session
//! breaks: a transient error) is not sent again in a `full` sync: the engine asks, on a new
//! session, for the migration's checkpoint, the server answers with the one stored in that
//! batch's transaction, and the run goes on with the next batch. Source and target are scripted
//! SQL Servers; the engine is dmf-core's, unchanged.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use dmf_core::sync::{SyncJob, SyncMode};
use dmf_core::{EngineConfig, RejectLimit, RetryPolicy, RunRequest, RunStatus, Value};
use dmf_mssql::executor::{Recorded, RecordedKind, Response, Script};
use dmf_mssql::{MssqlDatabase, MssqlOptions, SqlError};
use tiberius::ColumnData;

const COMMIT: &str = "COMMIT TRANSACTION;";
const BULK: &str = "INSERT BULK [dbo].[items]";

/// dbo.items (id int primary key, name nvarchar(50)), on either side.
fn catalog(script: &Script) {
    let column = |name: &str, type_name: &str, length: i32, nullable: bool| {
        catalog_column(1, "items", name, type_name, length, nullable)
    };
    script.always(
        pattern::CATALOG_COLUMNS,
        Response::rows(vec![column("id", "int", 4, false), column("name", "nvarchar", 100, true)]),
    );
    script.always(pattern::CATALOG_KEYS, Response::rows(vec![vec![int(1), int(1), flag(true), text("id")]]));
    healthy_standalone(script);
}

fn item(id: i32) -> Vec<ColumnData<'static>> {
    vec![int(id), text(&format!("item {id}"))]
}

/// The source: items 1 to 5, read in pages of 2.
fn source() -> Arc<MssqlDatabase> {
    let (script, db) = scripted(MssqlOptions::default());
    catalog(&script);
    script.on(pattern::PAGE, Response::rows(vec![item(1), item(2)]));
    script.on(pattern::PAGE, Response::rows(vec![item(3), item(4)]));
    script.on(pattern::PAGE, Response::rows(vec![item(5)]));
    db
}

/// The target: the same table, empty, with the control tables.
fn target() -> (Script, Arc<MssqlDatabase>) {
    let (script, db) = scripted(MssqlOptions::default());
    catalog(&script);
    control_tables(&script, true, true);
    script.always(pattern::START_RUN, Response::rows(vec![vec![big(1)]]));
    script.always(pattern::UPDATE_RUN, Response::Affected(1));
    script.always(
        pattern::TABLE_COLUMNS,
        Response::rows(vec![
            column("id", "int", 4, 10, 0, false, false, false, None),
            column("name", "nvarchar", 100, 0, 0, true, false, false, Some("Latin1_General_CI_AS")),
        ]),
    );
    script
        .always("HAS_PERMS_BY_NAME(@P1, N'OBJECT', N'ALTER')", Response::rows(vec![vec![int(1), text("dmf_loader")]]));
    (script, db)
}

/// The keys of every row bulk-loaded into dbo.items, in the order sent.
fn bulk_loaded(log: &[Recorded]) -> Vec<i32> {
    log.iter()
        .filter(|r| r.sql.starts_with(BULK))
        .flat_map(|r| match &r.kind {
            RecordedKind::BulkInsert { rows, .. } => rows.clone(),
            other => panic!("{other:?}"),
        })
        .map(|row| match row[0] {
            ColumnData::I32(Some(id)) => id,
            ref other => panic!("{other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn a_bulk_load_whose_commit_answer_was_lost_is_not_sent_again() {
    let (script, target) = target();
    // The first batch's COMMIT (the one after its checkpoint write) commits on the server, then
    // the connection breaks before the answer arrives.
    let reset = SqlError::Io { kind: std::io::ErrorKind::ConnectionReset, message: "connection reset by peer".into() };
    script.on_after(pattern::SAVE_CHECKPOINT, COMMIT, Response::Fail(reset));
    // The checkpoint reads: when the migration starts, none; after the failure, the one the
    // first batch (items 1 and 2) stored in its transaction.
    let first_batch = "[{\"t\":\"int\",\"v\":2}]";
    script.on(pattern::CHECKPOINT, Response::rows(vec![]));
    script.on(pattern::CHECKPOINT, Response::rows(vec![vec![text(first_batch), big(0), flag(false)]]));
    let retry = RetryPolicy {
        max_attempts: 3,
        initial_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        factor: 2.0,
        jitter: false,
    };
    let engine =
        EngineConfig::builder().batch_size(2).retry(retry).reject_limit(RejectLimit::Count(0)).build().unwrap();
    let summary = SyncJob::new(source(), Arc::clone(&target), SyncMode::Full)
        .engine(engine)
        .run(RunRequest::all())
        .await
        .unwrap();

    assert_eq!(summary.status, RunStatus::Completed, "{summary}");
    let items = summary.migration("dbo.items").unwrap();
    assert_eq!((items.counts.read, items.counts.inserted, items.counts.rejected), (5, 5, 0), "{summary}");
    let log = script.log();
    assert_eq!(bulk_loaded(&log), [1, 2, 3, 4, 5], "every row sent once: no duplicate insert");

    // The fault hit the first batch's COMMIT, after the checkpoint the answer is read back from.
    let failed = log.iter().position(|r| r.sql == COMMIT).unwrap();
    let saved = &log[failed - 1];
    assert!(saved.sql.contains(pattern::SAVE_CHECKPOINT), "{}", saved.sql);
    assert_eq!(saved.params[1], Value::Text(first_batch.into()), "the answer is the checkpoint the batch wrote");
    // Then, on a new session, the checkpoint was read before anything else was loaded.
    let read = failed + log[failed..].iter().position(|r| r.sql.contains(pattern::CHECKPOINT)).unwrap();
    let next_bulk = failed + log[failed..].iter().position(|r| r.sql.starts_with(BULK)).unwrap();
    assert!(read < next_bulk, "asked before loading on");
    assert!(log[read].session > log[failed].session, "on a new session");
    assert!(!statements(&script).iter().any(|s| s.contains("[dmf].[rejects]")), "nothing quarantined");
}
