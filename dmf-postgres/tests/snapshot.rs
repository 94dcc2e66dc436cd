//! A snapshot handle reads every table as of one exported snapshot while other sessions insert,
//! update and delete parents and children: its extractors return exactly the rows of that moment,
//! a full sync from it copies that moment exactly in one pass, its sessions end when it is
//! dropped, and a lost snapshot is an error rather than a silent read of the current rows. The
//! default extractor keeps no transaction open between pages.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::TestDb;
use dmf_core::catalog::TableName;
use dmf_core::sync::{Database, ExtractSpec, SyncJob, SyncMode};
use dmf_core::{EngineConfig, ErrorKind, Extractor, RunRequest, Value};
use dmf_postgres::PgDatabase;
use futures::StreamExt;
use tokio_postgres::Client;

const SCHEMA: &str = "
CREATE TABLE parents (id bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE children (id bigint PRIMARY KEY, parent_id bigint NOT NULL REFERENCES parents (id), note text);";

/// The schema with `parents` parents and three children each.
async fn source_with(db: &TestDb, parents: i64) {
    db.client()
        .await
        .batch_execute(&format!(
            "{SCHEMA}
             INSERT INTO parents SELECT g, 'parent ' || g FROM generate_series(1, {parents}) g;
             INSERT INTO children SELECT p * 10 + n, p, 'child ' || (p * 10 + n)
                 FROM generate_series(1, {parents}) p, generate_series(0, 2) n;
             ANALYZE;"
        ))
        .await
        .unwrap();
}

/// Each table's row count and an md5 of its rows in key order, computed by PostgreSQL alone.
async fn fingerprint(client: &Client) -> Vec<(i64, String)> {
    let mut prints = Vec::new();
    for table in ["parents", "children"] {
        let sql = format!("SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY id), '')) FROM {table} t");
        let row = client.query_one(&sql, &[]).await.unwrap();
        prints.push((row.get(0), row.get(1)));
    }
    prints
}

/// The database with an `application_name` of its own, to find its sessions in
/// `pg_stat_activity`.
fn named(db: &TestDb, application: &str) -> PgDatabase {
    let separator = if db.url.contains('?') { '&' } else { '?' };
    PgDatabase::lazy(&format!("{}{separator}application_name={application}", db.url)).unwrap()
}

async fn spec(database: &PgDatabase, table: &str) -> ExtractSpec {
    let catalog = database.read_catalog().await.unwrap();
    ExtractSpec::whole_table(catalog.table(&TableName::new(Some("public"), table)).unwrap()).unwrap()
}

/// Every row an extractor reads, in batches of 100.
async fn read_all(extractor: &mut impl Extractor<Item = dmf_core::Row>) -> Vec<Vec<Value>> {
    let batches: Vec<_> = extractor.extract(None, NonZeroUsize::new(100).unwrap()).collect().await;
    batches.into_iter().flat_map(|b| b.unwrap().records).map(|r| r.values().to_vec()).collect()
}

/// One writer transaction: a new parent with two children, a renamed parent, a deleted child.
async fn write_once(client: &mut Client, n: i64) {
    let tx = client.transaction().await.unwrap();
    let parent = 1_000_000 + n;
    tx.execute("INSERT INTO parents (id, name) VALUES ($1, 'new')", &[&parent]).await.unwrap();
    tx.execute(
        "INSERT INTO children VALUES ($1::bigint * 10, $1, 'new'), ($1::bigint * 10 + 1, $1, 'new')",
        &[&parent],
    )
    .await
    .unwrap();
    tx.execute("UPDATE parents SET name = name || ' renamed' WHERE id = $1", &[&(1 + (n * 37) % 400)]).await.unwrap();
    tx.execute("DELETE FROM children WHERE id = (SELECT max(id) FROM children WHERE id < 1000000)", &[]).await.unwrap();
    tx.commit().await.unwrap();
}

/// `(state, in a transaction, holds a snapshot)` of the sessions named `application`, except
/// the one that exported a snapshot.
async fn readers(observer: &Client, application: &str) -> Vec<(String, bool, bool)> {
    observer
        .query(
            "SELECT state, xact_start IS NOT NULL, backend_xmin IS NOT NULL FROM pg_stat_activity
             WHERE application_name = $1 AND query <> 'SELECT pg_export_snapshot()'",
            &[&application],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// How many sessions named `application` are in a transaction.
async fn open_transactions(observer: &Client, application: &str) -> i64 {
    observer
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND xact_start IS NOT NULL",
            &[&application],
        )
        .await
        .unwrap()
        .get(0)
}

/// Waits until the server reports `expected` open transactions for `application` (a closed
/// connection's backend exits shortly after the client is dropped; there is no event to await).
async fn until_open_transactions(observer: &Client, application: &str, expected: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let open = open_transactions(observer, application).await;
        if open == expected {
            return;
        }
        assert!(Instant::now() < deadline, "{open} transactions of {application} still open, expected {expected}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_extractors_read_the_rows_as_of_the_snapshot_while_others_commit() {
    let db = TestDb::create("snap_pages").await;
    source_with(&db, 400).await;
    let source = db.database();
    let (parents, children) = (spec(&source, "parents").await, spec(&source, "children").await);
    let before_parents = read_all(&mut source.extractor(parents.clone())).await;
    let before_children = read_all(&mut source.extractor(children.clone())).await;
    assert_eq!((before_parents.len(), before_children.len()), (400, 1200));

    // Only the snapshot's sessions carry this name.
    let named = named(&db, "dmf_snap_pages");
    let snapshot = named.snapshot().await.unwrap();
    let id = snapshot.snapshot_id().unwrap().to_owned();
    assert_eq!(snapshot.display_name(), format!("{} (snapshot {id})", named.display_name()));
    let observer = db.client().await;
    let mut snapshot_parents = snapshot.extractor(parents.clone());
    let mut read = Vec::new();
    {
        let mut pages = snapshot_parents.extract(None, NonZeroUsize::new(50).unwrap());
        let first = pages.next().await.unwrap().unwrap();
        read.extend(first.records.iter().map(|r| r.values().to_vec()));
        // Between pages the reader is in its snapshot transaction.
        assert_eq!(readers(&observer, "dmf_snap_pages").await, vec![("idle in transaction".to_owned(), true, true)]);

        // Between two pages, another session commits into both tables: rows after the reader's
        // position and before it, updates and deletes.
        let mut writer = db.client().await;
        for n in 0..5 {
            write_once(&mut writer, n).await;
        }
        writer.execute("UPDATE parents SET name = 'changed' WHERE id IN (1, 399)", &[]).await.unwrap();

        while let Some(page) = pages.next().await {
            read.extend(page.unwrap().records.iter().map(|r| r.values().to_vec()));
        }
    }
    assert_eq!(read, before_parents, "the snapshot's parents are the rows as of the snapshot");
    // An extractor of the snapshot made after the writes still reads the snapshot.
    assert_eq!(read_all(&mut snapshot.extractor(children.clone())).await, before_children);

    // A plain extractor reads the current rows.
    let now_parents = read_all(&mut source.extractor(parents)).await;
    assert_eq!(now_parents.len(), 405);
    assert!(now_parents.iter().any(|r| r[1] == Value::Text("changed".into())));
    assert_eq!(read_all(&mut source.extractor(children)).await.len(), 1200 + 10 - 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_extractor_keeps_no_transaction_open_between_pages() {
    let db = TestDb::create("snap_idle").await;
    source_with(&db, 300).await;
    // The catalog is read under another name: only the extractor's session carries this one.
    let spec = spec(&db.database(), "children").await;
    let mut extractor = named(&db, "dmf_snap_idle").extractor(spec);
    let observer = db.client().await;
    let mut pages = extractor.extract(None, NonZeroUsize::new(100).unwrap());
    let mut rows = 0;
    while let Some(page) = pages.next().await {
        rows += page.unwrap().records.len();
        // `state` is reported before the server answers, so it is current once the page is here.
        assert_eq!(
            readers(&observer, "dmf_snap_idle").await,
            vec![("idle".to_owned(), false, false)],
            "after {rows} rows"
        );
    }
    assert_eq!(rows, 900);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_sync_from_a_snapshot_copies_it_exactly_while_writers_commit() {
    let (source_db, target_db) = (TestDb::create("snap_sync_src").await, TestDb::create("snap_sync_dst").await);
    source_with(&source_db, 3000).await;
    target_db.client().await.batch_execute(SCHEMA).await.unwrap();
    let observer = source_db.client().await;
    let as_of_snapshot = fingerprint(&observer).await;
    let snapshot = source_db.database().snapshot().await.unwrap();

    // A writer commits parents and children in transactions of its own, from before the sync
    // starts reading until it has finished.
    let (stop, commits) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let (first_commit, first_committed) = tokio::sync::oneshot::channel();
    let writer = tokio::spawn({
        let (stop, commits, mut client) = (Arc::clone(&stop), Arc::clone(&commits), source_db.client().await);
        async move {
            let mut first_commit = Some(first_commit);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                write_once(&mut client, n).await;
                n += 1;
                commits.fetch_add(1, Ordering::Relaxed);
                if let Some(sender) = first_commit.take() {
                    sender.send(()).unwrap();
                }
            }
        }
    });
    first_committed.await.unwrap();
    let at_start = commits.load(Ordering::Relaxed);

    let engine = EngineConfig::builder().batch_size(100).build().unwrap();
    let job = SyncJob::new(Arc::new(snapshot), target_db.database(), SyncMode::Full).engine(engine).jobs(2);
    let summary = job.run(RunRequest::all()).await.unwrap();
    let during = commits.load(Ordering::Relaxed) - at_start;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert!(summary.succeeded(), "{summary}");
    assert!(during > 0, "the writer committed while the sync ran");

    let target = target_db.client().await;
    assert_eq!(fingerprint(&target).await, as_of_snapshot, "the target is the snapshot, exactly");
    assert_ne!(fingerprint(&observer).await, as_of_snapshot, "the source changed meanwhile");
    assert_eq!(summary.migration("public.parents").unwrap().counts.inserted, 3000, "{summary}");
    assert_eq!(summary.migration("public.children").unwrap().counts.inserted, 9000, "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_handle_and_its_extractors_ends_their_transactions() {
    let db = TestDb::create("snap_drop").await;
    source_with(&db, 100).await;
    let source = named(&db, "dmf_snap_drop");
    let parents = spec(&source, "parents").await;
    let observer = db.client().await;

    let snapshot = source.snapshot().await.unwrap();
    let clone = snapshot.clone();
    let mut extractor = snapshot.extractor(parents);
    assert_eq!(read_all(&mut extractor).await.len(), 100);
    assert_eq!(open_transactions(&observer, "dmf_snap_drop").await, 2, "the exporter and the reader");

    drop(extractor);
    until_open_transactions(&observer, "dmf_snap_drop", 1).await;
    drop(snapshot);
    assert_eq!(open_transactions(&observer, "dmf_snap_drop").await, 1, "a clone still holds the snapshot");
    drop(clone);
    until_open_transactions(&observer, "dmf_snap_drop", 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_snapshot_is_a_fatal_error_not_a_read_of_the_current_rows() {
    let db = TestDb::create("snap_lost").await;
    source_with(&db, 100).await;
    let source = named(&db, "dmf_snap_lost");
    let parents = spec(&source, "parents").await;
    let snapshot = source.snapshot().await.unwrap();
    let id = snapshot.snapshot_id().unwrap().to_owned();

    let observer = db.client().await;
    let killed: bool = observer
        .query_one(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = 'dmf_snap_lost' AND query = 'SELECT pg_export_snapshot()'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(killed);
    // pg_terminate_backend only signals: wait until the exporting backend is gone.
    until_open_transactions(&observer, "dmf_snap_lost", 0).await;

    let mut extractor = snapshot.extractor(parents);
    let error = extractor.extract(None, NonZeroUsize::new(10).unwrap()).next().await.unwrap().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Fatal, "{}", error.chain());
    assert!(error.to_string().contains(&format!("snapshot {id} of")), "{}", error.chain());
    // The reader's session, whose import failed, is closed: it never reads the current rows.
    until_open_transactions(&observer, "dmf_snap_lost", 0).await;
}
