//! Two tables referencing each other through NOT NULL foreign keys: no insert order exists.
//! As a user who may set `session_replication_role`, a `full` sync takes the fast path, an
//! `upsert` writes the cycle's first table without per-row checks, both followed by the
//! set-based proof, and verification compares them; for a role that may not, pre-flight
//! refuses the upsert naming the cycle, and writes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use common::*;
use dmf_core::sync::{FK_CHECK, SyncJob, SyncMode};
use dmf_core::{EngineConfig, RunRequest, RunSummary};
use dmf_postgres::PgDatabase;

const SCHEMA: &str = "
    CREATE TABLE authors (id bigint PRIMARY KEY, name text NOT NULL, first_book_id bigint NOT NULL);
    CREATE TABLE books (id bigint PRIMARY KEY, title text NOT NULL, author_id bigint NOT NULL REFERENCES authors (id));
    ALTER TABLE authors ADD CONSTRAINT authors_first_book FOREIGN KEY (first_book_id) REFERENCES books (id);";

/// Rows of both tables, written without per-row checks (no order satisfies them).
async fn write(db: &TestDb, statements: &str) {
    let sql = format!("BEGIN; SET LOCAL session_replication_role = replica; {statements} COMMIT;");
    db.client().await.batch_execute(&sql).await.unwrap();
}

async fn rows(db: &TestDb) -> Vec<(i64, String, i64)> {
    let client = db.client().await;
    let mut all = Vec::new();
    for sql in [
        "SELECT id, name, first_book_id FROM authors ORDER BY id",
        "SELECT id, title, author_id FROM books ORDER BY id",
    ] {
        all.extend(client.query(sql, &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1), r.get(2))));
    }
    all
}

fn job(source: &TestDb, target: Arc<PgDatabase>, mode: SyncMode) -> SyncJob<PgDatabase, PgDatabase> {
    SyncJob::new(source.database(), target, mode).engine(EngineConfig::builder().batch_size(2).build().unwrap())
}

fn fk_line(summary: &RunSummary) -> String {
    summary.preflight.outcomes.iter().find(|o| o.check == FK_CHECK).map(|o| o.detail.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_not_null_cycle_is_loaded_without_per_row_checks_or_refused_naming_it() {
    let (source, target) = (TestDb::create("nn_cycle_src").await, TestDb::create("nn_cycle_dst").await);
    for db in [&source, &target] {
        db.client().await.batch_execute(SCHEMA).await.unwrap();
    }
    write(
        &source,
        "INSERT INTO authors VALUES (1, 'Ann', 10), (2, 'Bo', 20), (3, 'Cy', 10);
         INSERT INTO books VALUES (10, 'First', 1), (11, 'Second', 1), (20, 'Third', 2), (21, 'Fourth', 3);",
    )
    .await;

    let full = job(&source, target.database(), SyncMode::Full).run(RunRequest::all().force()).await.unwrap();
    assert!(full.succeeded(), "{full}");
    assert!(fk_line(&full).contains("NOT NULL foreign-key cycle"), "{}", fk_line(&full));
    assert_eq!(rows(&target).await, rows(&source).await);

    write(
        &source,
        "INSERT INTO authors VALUES (4, 'Di', 40); INSERT INTO books VALUES (40, 'Fifth', 4);
         UPDATE books SET title = 'First, revised' WHERE id = 10;",
    )
    .await;
    let before = rows(&target).await;

    // A role that may not skip per-row checks: the upsert is refused before it writes.
    let role = format!("dmf_cycle_{}", &target.name[target.name.len() - 10..]);
    target
        .client()
        .await
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN; GRANT CREATE ON DATABASE \"{db}\" TO {role};
             GRANT USAGE ON SCHEMA public, dmf TO {role}; GRANT ALL ON ALL TABLES IN SCHEMA public, dmf TO {role};
             GRANT ALL ON ALL SEQUENCES IN SCHEMA dmf TO {role};",
            db = target.name
        ))
        .await
        .unwrap();
    let plain = Arc::new(PgDatabase::lazy(&target.url.replacen("postgres@", &format!("{role}@"), 1)).unwrap());
    let refused = job(&source, plain, SyncMode::Upsert).run(RunRequest::all().force()).await.unwrap();
    assert!(!refused.succeeded(), "{refused}");
    let line = fk_line(&refused);
    assert!(line.contains("cycle whose columns are all NOT NULL") && line.contains("may not set"), "{line}");
    assert_eq!(rows(&target).await, before, "nothing written");

    // As the superuser the upsert writes the new cycle rows, then proves the keys.
    let upsert = job(&source, target.database(), SyncMode::Upsert).run(RunRequest::all().force()).await.unwrap();
    assert!(upsert.succeeded(), "{upsert}");
    assert!(fk_line(&upsert).contains("NOT NULL foreign-key cycle"), "{}", fk_line(&upsert));
    assert_eq!(rows(&target).await, rows(&source).await);

    let plan = job(&source, target.database(), SyncMode::Diff).plan().await.unwrap();
    let report = dmf_core::quality::compare(&*source.database(), &*target.database(), &plan, 5).await.unwrap();
    assert!(report.is_equal(), "{report}");
}
