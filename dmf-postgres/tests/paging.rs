//! 50,000 rows are read one page per batch in byte order of a text-and-integer key, resume
//! exactly after any position, and sync into another database unchanged.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::num::NonZeroUsize;

use dmf_core::sync::{Database, ReadOrder, SyncMode, SyncPlan};
use dmf_core::{Extractor, Position, RunStatus, Value};
use futures::StreamExt;

const ROWS: i64 = 50_000;

fn keys(batch: &[dmf_core::Row]) -> Vec<Vec<Value>> {
    batch.iter().map(|r| r.key_values().cloned().collect()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_thousand_rows_stream_page_by_page_and_resume_exactly() {
    let (source_db, target_db) =
        (common::TestDb::create("paging_src").await, common::TestDb::create("paging_dst").await);
    let ddl = "CREATE TABLE events (region text NOT NULL, seq bigint NOT NULL, payload text, at timestamptz NOT NULL,
                                     PRIMARY KEY (region, seq))";
    let source_client = source_db.client().await;
    source_client.batch_execute(ddl).await.unwrap();
    // Regions whose byte order differs from most collations' order: case, accents, emoji.
    source_client
        .batch_execute(&format!(
            "INSERT INTO events SELECT (ARRAY['b', 'B', 'a', 'é', 'z', '🦀', 'A b'])[1 + g % 7], g, repeat('x', g % 50),
                    timestamptz '2024-01-01 00:00:00+00' + g * interval '1 millisecond'
             FROM generate_series(1, {ROWS}) g;
             ANALYZE events;"
        ))
        .await
        .unwrap();
    target_db.client().await.batch_execute(ddl).await.unwrap();

    let source = source_db.database();
    let catalog = source.read_catalog().await.unwrap();
    let plan = SyncPlan::build(&catalog, &catalog, None, SyncMode::Full).unwrap();
    let table = &plan.tables[0];
    let mut extractor = source.extractor(table.extract_spec(&table.columns, ReadOrder::Key, false));
    let estimate = extractor.estimate(None).await.unwrap().unwrap();
    assert!((45_000..=55_000).contains(&estimate), "reltuples estimate {estimate}");

    let size = NonZeroUsize::new(1000).unwrap();
    let batches: Vec<_> = extractor.extract(None, size).map(Result::unwrap).collect().await;
    assert_eq!(batches.len(), 50);
    let mut all = Vec::new();
    for batch in &batches {
        assert_eq!(batch.records.len(), 1000);
        let last = batch.records.last().unwrap().key_values().cloned().collect::<Vec<_>>();
        assert_eq!(batch.position, dmf_core::sync::key_position(&last).unwrap(), "a page ends at its last key");
        all.extend(keys(&batch.records));
    }
    assert_eq!(all.len() as i64, ROWS);
    assert!(
        all.windows(2).all(|w| {
            let (a, b) = (&w[0], &w[1]);
            a[0].cmp_key(&b[0]).then_with(|| a[1].cmp_key(&b[1])) == std::cmp::Ordering::Less
        }),
        "keys strictly increasing in byte order, no row read twice"
    );
    assert_eq!(all[0], [Value::Text("A b".into()), Value::Int(6)]);
    assert_eq!(all[all.len() - 1][0], Value::Text("🦀".into()));

    // Resuming after the 25th page reads exactly the rest.
    let from: Position = batches[24].position.clone();
    let rest: Vec<_> = extractor.extract(Some(from), size).map(Result::unwrap).collect().await;
    let rest_keys: Vec<Vec<Value>> = rest.iter().flat_map(|b| keys(&b.records)).collect();
    assert_eq!(rest_keys, all[25_000..]);

    let summary = common::sync(&source, &target_db.database(), SyncMode::Full, false).await;
    assert_eq!(summary.status, RunStatus::Completed, "{summary}");
    let fingerprint = "SELECT count(*), md5(string_agg(e::text, '|' ORDER BY e::text)) FROM events e";
    let (expected, actual) = (
        source_client.query_one(fingerprint, &[]).await.unwrap(),
        target_db.client().await.query_one(fingerprint, &[]).await.unwrap(),
    );
    assert_eq!((expected.get::<_, i64>(0), expected.get::<_, String>(1)), (actual.get(0), actual.get(1)));
}

/// Rows ordered by a nullable watermark (NULLs first) then the key, read in small pages as
/// binary `COPY`s: every row once, in order, and a read resumed after any page (inside the
/// NULLs, across their end, past them) reads exactly the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nullable_watermark_pages_through_its_nulls_first_and_resumes_after_any_page() {
    let db = common::TestDb::create("paging_watermark").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE marks (id bigint PRIMARY KEY, at timestamptz, note text);
             INSERT INTO marks SELECT g,
                 CASE WHEN g % 3 = 0 THEN NULL ELSE timestamptz '2024-01-01 00:00:00+00' + (g % 10) * interval '1 hour' END,
                 'n' || g
             FROM generate_series(1, 100) g;",
        )
        .await
        .unwrap();
    let expected: Vec<Value> = client
        .query("SELECT id FROM marks ORDER BY at NULLS FIRST, id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| Value::Int(row.get(0)))
        .collect();
    let source = db.database();
    let catalog = source.read_catalog().await.unwrap();
    let plan = SyncPlan::build(&catalog, &catalog, None, SyncMode::Full).unwrap();
    let table = &plan.tables[0];
    let order = ReadOrder::Watermark { column: "at".into() };
    let mut extractor = source.extractor(table.extract_spec(&table.columns, order, false));
    let size = NonZeroUsize::new(7).unwrap();
    let ids = |batches: &[dmf_core::SourceBatch<dmf_core::Row>]| -> Vec<Value> {
        batches.iter().flat_map(|b| &b.records).map(|row| row.get("id").unwrap().clone()).collect()
    };

    let batches: Vec<_> = extractor.extract(None, size).map(Result::unwrap).collect().await;
    assert!(batches.iter().flat_map(|b| &b.records).all(|row| row.native_bytes().is_some()), "read by COPY");
    assert_eq!(ids(&batches), expected);
    // 33 rows without a watermark: pages 1-4 hold only those, page 5 crosses their end.
    for page in [1, 4, 5, 9] {
        let from = batches[page].position.clone();
        let rest: Vec<_> = extractor.extract(Some(from), size).map(Result::unwrap).collect().await;
        assert_eq!(ids(&rest), expected[(page + 1) * 7..], "resumed after page {}", page + 1);
    }
}

/// A table of 30 rows read in pages of 7 by binary `COPY`s, and its expected ids in key order.
async fn marks(label: &str) -> (common::TestDb, Vec<Value>) {
    let db = common::TestDb::create(label).await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE marks (id bigint PRIMARY KEY, at timestamptz NOT NULL, note text);
             INSERT INTO marks SELECT g, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 hour', 'n' || g
             FROM generate_series(1, 30) g;",
        )
        .await
        .unwrap();
    (db, (1..=30).map(Value::Int).collect())
}

/// An extractor of the database's only table in key order.
async fn key_extractor(source: &std::sync::Arc<dmf_postgres::PgDatabase>) -> dmf_postgres::PgExtractor {
    let catalog = source.read_catalog().await.unwrap();
    let plan = SyncPlan::build(&catalog, &catalog, None, SyncMode::Full).unwrap();
    let table = &plan.tables[0];
    source.extractor(table.extract_spec(&table.columns, ReadOrder::Key, false))
}

/// Binary COPY data says nothing of its columns' types: a column whose type changes between
/// two pages (to another of the same width) fails the next page instead of being misread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_type_changed_between_pages_fails_the_next_page() {
    let (db, _) = marks("paging_retyped").await;
    let source = db.database();
    let mut extractor = key_extractor(&source).await;
    let size = NonZeroUsize::new(7).unwrap();
    let mut pages = extractor.extract(None, size);
    let first = pages.next().await.unwrap().unwrap();
    assert!(first.records[0].native_bytes().is_some(), "read by COPY");
    db.client().await.batch_execute("ALTER TABLE marks ALTER COLUMN at TYPE timestamp").await.unwrap();
    let error = pages.next().await.unwrap().unwrap_err().to_string();
    assert!(error.contains("marks") && error.contains("must not change result type"), "{error}");
}

/// The extractor's connection is killed between two pages: a read resumed from the last
/// position (after at most one failed attempt, if the extractor had not yet seen its connection
/// die) prepares its statements and sets its parameters again on a new connection, and reads
/// exactly the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_resumed_on_a_new_connection_after_its_connection_died_reads_exactly_the_rest() {
    let (db, expected) = marks("paging_reconnect").await;
    let source = db.database();
    let mut extractor = key_extractor(&source).await;
    let size = NonZeroUsize::new(7).unwrap();
    let first = extractor.extract(None, size).next().await.unwrap().unwrap();
    let killed: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(killed >= 1, "the extractor's connection was there to kill");
    let mut attempts = 0;
    let rest = loop {
        attempts += 1;
        let read: Result<Vec<_>, _> =
            extractor.extract(Some(first.position.clone()), size).collect::<Vec<_>>().await.into_iter().collect();
        match read {
            Ok(rest) => break rest,
            Err(error) if attempts < 3 => eprintln!("attempt {attempts}: {error}"),
            Err(error) => panic!("still failing after {attempts} attempts: {error}"),
        }
    };
    let ids: Vec<Value> = rest.iter().flat_map(|b| &b.records).map(|row| row.get("id").unwrap().clone()).collect();
    assert_eq!(ids, expected[7..]);
}
