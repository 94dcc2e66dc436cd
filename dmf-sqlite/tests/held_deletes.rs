//! A `diff` whose delete the target refuses because a row of a table the sync does not write
//! still references the row: the row is rejected into the quarantine with that reason, counted
//! as rejected, and not reported as a row that "waited for a parent row the target lacked".
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use common::*;
use dmf_core::catalog::TableName;
use dmf_core::sync::{Database, SyncJob, SyncMode};
use dmf_core::{EngineConfig, RejectLimit, RunRequest, RunStatus};
use dmf_sqlite::SqliteDatabase;

const SCHEMA: &str = "PRAGMA foreign_keys = ON;
    CREATE TABLE parents (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
    CREATE TABLE kids (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parents (id));";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_held_back_by_a_referencing_target_row_is_rejected_with_that_reason() {
    let dir = Dir::new("held-deletes");
    let (source, target) = (dir.file("source.db"), dir.file("target.db"));
    connect(&source).execute_batch(&format!("{SCHEMA} INSERT INTO parents VALUES (1, 'one'), (2, 'two');")).unwrap();
    // Parents 3 and 4 are gone from the source; a kid of the target, in a table this sync does
    // not write, still references 3.
    connect(&target)
        .execute_batch(&format!(
            "{SCHEMA} INSERT INTO parents VALUES (1, 'one'), (2, 'old two'), (3, 'three'), (4, 'four');
             INSERT INTO kids VALUES (30, 3);"
        ))
        .unwrap();

    let engine = EngineConfig::builder().batch_size(10).reject_limit(RejectLimit::Count(5)).build().unwrap();
    let job = SyncJob::new(
        Arc::new(SqliteDatabase::open(&source).unwrap()),
        Arc::new(SqliteDatabase::open(&target).unwrap()),
        SyncMode::Diff,
    )
    .tables(vec![TableName::parse("parents")])
    .engine(engine);
    let summary = job.run(RunRequest::all()).await.unwrap();

    assert_eq!(summary.status, RunStatus::Completed, "{summary}");
    let deletes = summary.migration("parents (deletes)").expect("a delete pass");
    assert_eq!((deletes.counts.deleted, deletes.counts.rejected, deletes.counts.deferred), (1, 1, 0), "{summary}");
    assert!(!summary.to_string().contains("waited for a parent row"), "{summary}");
    let store = SqliteDatabase::open(&target).unwrap().run_store().await.unwrap();
    let rejects = store.rejects(summary.run, None, 10, 0).await.unwrap();
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    assert!(rejects[0].reject.key.contains('3'), "{rejects:?}");
    assert!(rejects[0].reject.reason.contains("still referenced by a row of the target"), "{rejects:?}");
    let kept: Vec<i64> = connect(&target)
        .prepare("SELECT id FROM parents ORDER BY id")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(kept, vec![1, 2, 3], "4 deleted, 3 kept for its kid");
}
