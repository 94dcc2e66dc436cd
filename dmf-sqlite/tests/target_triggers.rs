//! Target triggers on SQLite, which cannot skip a trigger in a session: pre-flight names
//! every trigger that fires on the sync's writes, with its operation, and with
//! `--skip-target-triggers` says why it fires all the same; emptying tables in a `full` sync
//! (`DELETE`) fires delete triggers, named too.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use dmf_core::sync::{SyncJob, SyncMode, TRIGGER_CHECK};
use dmf_core::{CheckStatus, RunRequest, RunStatus, RunSummary};
use dmf_sqlite::SqliteDatabase;

const SCHEMA: &str = "
    CREATE TABLE film (id INTEGER PRIMARY KEY, title TEXT NOT NULL, last_update TEXT NOT NULL);
    CREATE TABLE film_log (n INTEGER PRIMARY KEY AUTOINCREMENT, film_id INTEGER, what TEXT);";

const TRIGGERS: &str = "
    CREATE TRIGGER film_last_update AFTER UPDATE ON film BEGIN
        UPDATE film SET last_update = 'stamped' WHERE id = NEW.id; END;
    CREATE TRIGGER \"film gone\" BEFORE DELETE ON film BEGIN
        INSERT INTO film_log (film_id, what) VALUES (OLD.id, 'deleted'); END;";

fn job(source: &Path, target: &Path, mode: SyncMode, skip: bool) -> SyncJob<SqliteDatabase, SqliteDatabase> {
    let film = dmf_core::catalog::TableName::new(None, "film");
    SyncJob::new(Arc::new(SqliteDatabase::open(source).unwrap()), Arc::new(SqliteDatabase::open(target).unwrap()), mode)
        .tables(vec![film])
        .skip_target_triggers(skip)
}

fn trigger_line(summary: &RunSummary) -> (CheckStatus, String) {
    let line = summary.preflight.outcomes.iter().find(|o| o.check == TRIGGER_CHECK).unwrap();
    (line.status, line.detail.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_names_the_triggers_that_fire_and_the_flag_cannot_skip_them() {
    let dir = Dir::new("target-triggers");
    let (source, target) = (dir.file("source.db"), dir.file("target.db"));
    connect(&source).execute_batch(SCHEMA).unwrap();
    connect(&source).execute_batch("INSERT INTO film VALUES (1, 'a', '2006'), (2, 'b', '2006')").unwrap();
    connect(&target).execute_batch(&format!("{SCHEMA}{TRIGGERS}")).unwrap();

    let full = job(&source, &target, SyncMode::Full, false).run(RunRequest::all()).await.unwrap();
    assert_eq!(full.status, RunStatus::Completed, "{full}");
    let (status, detail) = trigger_line(&full);
    assert_eq!(status, CheckStatus::Warning);
    assert_eq!(
        detail,
        "no trigger fires on the sync's writes (INSERT); emptying the tables (DELETE) fires: film gone (BEFORE DELETE) \
         on film"
    );

    connect(&source).execute_batch("UPDATE film SET title = 'a2' WHERE id = 1").unwrap();
    let upsert = job(&source, &target, SyncMode::Upsert, false).run(RunRequest::all()).await.unwrap();
    let (status, detail) = trigger_line(&upsert);
    assert_eq!(status, CheckStatus::Warning);
    assert!(
        detail.starts_with(
            "these triggers fire on the sync's writes (INSERT, UPDATE): film_last_update (AFTER UPDATE) on film."
        ),
        "{detail}"
    );
    let stamp: String =
        connect(&target).query_row("SELECT last_update FROM film WHERE id = 1", [], |r| r.get(0)).unwrap();
    assert_eq!(stamp, "stamped", "the trigger fired, as pre-flight said");

    let skipping = job(&source, &target, SyncMode::Diff, true).run(RunRequest::all()).await.unwrap();
    assert_eq!(skipping.status, RunStatus::Completed, "{skipping}");
    let (status, detail) = trigger_line(&skipping);
    assert_eq!(status, CheckStatus::Warning);
    assert!(
        detail.starts_with(
            "--skip-target-triggers was asked for, but these triggers fire on the sync's writes (INSERT, UPDATE, \
             DELETE): film gone (BEFORE DELETE) on film, because the target fires triggers whatever the session does; \
             film_last_update (AFTER UPDATE) on film, because the target fires triggers whatever the session does"
        ),
        "{detail}"
    );
}
