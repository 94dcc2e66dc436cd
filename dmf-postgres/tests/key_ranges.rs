//! Large tables read by several key-range readers at once: a full sync with three ranges per
//! table (an integer key, a text key, a composite key) copies exactly the source while its
//! ranges load side by side and the table referencing a split table waits for all its ranges;
//! a diff sync in ranges writes only the differences; a run stopped inside its ranges resumes
//! them, even after the source changed, with no row lost or loaded twice; a large table is
//! split from a sample of its pages.
//!
//! "Side by side" is proved by events, not timing: the first load of each range of `items` waits
//! at a gate ([`FaultyDatabase`] on the target) until every range's first load has reached its
//! own ([`rendezvous`]), which can only happen if all three load at the same time. The run that
//! is stopped is cancelled while a chosen load of one range waits at a gate ([`cancel_at`]).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use common::TestDb;
use dmf_core::sync::{Database, ForeignKeyChecks, KeyRange, ReadOrder, SyncJob, SyncMode, SyncPlan};
use dmf_core::{
    CancellationToken, EngineConfig, MigrationName, MigrationStatus, Phase, ProgressEvent, ProgressHub, RunRequest,
    RunStatus, Value,
};
use dmf_postgres::PgDatabase;
use dmf_testkit::{FaultPlan, FaultyDatabase, Gate, cancel_at, rendezvous};
use tokio_postgres::Client;

const SCHEMA: &str = r#"
CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, price numeric(12,2));
CREATE TABLE labels (code text PRIMARY KEY, item_id bigint NOT NULL REFERENCES items (id), note text);
CREATE TABLE events (region text NOT NULL, seq integer NOT NULL, payload text, PRIMARY KEY (region, seq));
"#;

const DATA: &str = r#"
INSERT INTO items SELECT g, 'item ' || g, (g * 1.25)::numeric(12,2) FROM generate_series(1, 12000) g;
INSERT INTO labels
SELECT (ARRAY['a', 'B', 'é', '🦀', 'Z'])[1 + g % 5] || g, 1 + g % 12000, CASE WHEN g % 7 = 0 THEN NULL ELSE md5(g::text) END
FROM generate_series(1, 9000) g;
INSERT INTO events SELECT (ARRAY['b', 'B', 'é', '🦀'])[1 + g % 4], g, md5(g::text) FROM generate_series(1, 6000) g;
ANALYZE;
"#;

const TABLES: [&str; 3] = ["items", "labels", "events"];

async fn pair(label: &str) -> (TestDb, TestDb) {
    let (source, target) =
        (TestDb::create(&format!("{label}_src")).await, TestDb::create(&format!("{label}_dst")).await);
    let client = source.client().await;
    client.batch_execute(SCHEMA).await.unwrap();
    client.batch_execute(DATA).await.unwrap();
    target.client().await.batch_execute(SCHEMA).await.unwrap();
    (source, target)
}

/// Each table's row count and an md5 of its rows in byte order, computed by PostgreSQL alone.
async fn fingerprints(client: &Client) -> Vec<(i64, String)> {
    let mut prints = Vec::new();
    for table in TABLES {
        let sql = format!(
            "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text COLLATE \"C\"), '')) FROM {table} t"
        );
        let row = client.query_one(&sql, &[]).await.unwrap();
        prints.push((row.get(0), row.get(1)));
    }
    prints
}

fn job<T: Database>(
    source: &Arc<PgDatabase>,
    target: &Arc<T>,
    mode: SyncMode,
    hub: &ProgressHub,
) -> SyncJob<PgDatabase, T> {
    SyncJob::new(Arc::clone(source), Arc::clone(target), mode)
        .engine(EngineConfig::builder().batch_size(250).build().unwrap())
        .jobs(3)
        .range_readers(3)
        .range_min_rows(1000)
        .progress(hub.clone())
}

/// Collects every event of the hub until the run ends.
fn record(hub: &ProgressHub) -> tokio::task::JoinHandle<Vec<ProgressEvent>> {
    let mut events = hub.subscribe();
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Ok(event) = events.recv().await {
            let run_ended = event.migration.is_none() && matches!(event.phase, Phase::Completed | Phase::Failed);
            seen.push(event);
            if run_ended {
                break;
            }
        }
        seen
    })
}

fn migration(event: &ProgressEvent) -> &str {
    event.migration.as_ref().map_or("", |m| m.as_str())
}

fn ranges_of<'a>(plan: &'a SyncPlan, table: &str) -> &'a [KeyRange] {
    &plan.tables.iter().find(|t| t.target.name.name == table).unwrap().ranges
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_and_diff_syncs_in_key_ranges_copy_the_source_with_ranges_loading_side_by_side() {
    let (source_db, target_db) = pair("ranges").await;
    let (source, target) = (source_db.database(), target_db.database());
    let (source_client, target_client) = (source_db.client().await, target_db.client().await);
    let hub = ProgressHub::new();
    let events = record(&hub);
    // The first load of each range of items waits at its gate until all three are there.
    let gates = [Gate::new(), Gate::new(), Gate::new()];
    let mut gated = FaultyDatabase::new(PgDatabase::lazy(&target_db.url).unwrap());
    for (i, gate) in (1..=3).zip(&gates) {
        gated =
            gated.faults_for_migration(&format!("public.items [range {i}/3]"), FaultPlan::new().hold_before(1, gate));
    }
    // Per-row checks, so that tables wait for their parents (on the fast path they load beside
    // them: tests/concurrent_tables.rs).
    let job = job(&source, &Arc::new(gated), SyncMode::Full, &hub).foreign_key_checks(ForeignKeyChecks::PerRow);
    let plan = job.plan().await.unwrap();
    for table in TABLES {
        assert_eq!(ranges_of(&plan, table).len(), 3, "{table} is split");
    }
    assert_eq!(ranges_of(&plan, "items")[0].up_to, Some(vec![Value::Int(4000)]), "integer keys: equal widths");

    // Ranges of one table load at the same time: all three first loads of items are in flight
    // together, or the rendezvous fails.
    let orchestrator = job.orchestrator(&plan).await.unwrap();
    let summary = rendezvous(&gates, orchestrator.run(RunRequest::all()), Duration::from_secs(120))
        .await
        .unwrap_or_else(|apart| panic!("the ranges of items did not load side by side: {apart}"))
        .unwrap();
    assert_eq!(summary.status, RunStatus::Completed, "{summary}");
    assert_eq!(fingerprints(&target_client).await, fingerprints(&source_client).await);
    for (table, rows) in [("items", 12_000), ("labels", 9000), ("events", 6000)] {
        let counts: Vec<u64> = (1..=3)
            .map(|i| summary.migration(&format!("public.{table} [range {i}/3]")).unwrap().counts.inserted)
            .collect();
        assert_eq!(counts.iter().sum::<u64>(), rows, "{table}: {counts:?}");
        assert!(counts.iter().all(|n| *n > rows / 6), "{table}: balanced ranges {counts:?}");
    }

    let events = events.await.unwrap();
    // The table referencing a split table starts when all its ranges are done.
    let position = |wanted: &dyn Fn(&ProgressEvent) -> bool| events.iter().position(wanted).unwrap();
    let labels_started = position(&|e| e.phase == Phase::Started && migration(e).starts_with("public.labels [range"));
    for i in 1..=3 {
        let name = format!("public.items [range {i}/3]");
        assert!(position(&|e| e.phase == Phase::Completed && migration(e) == name) < labels_started, "{name}");
    }

    // A diff sync in ranges: both sides read the same range, only differences are written.
    source_client
        .batch_execute(
            "UPDATE labels SET note = 'changed' WHERE code IN ('a5', 'é7', '🦀8');
             DELETE FROM labels WHERE code IN ('B1', 'Z4');
             INSERT INTO labels VALUES ('~new', 1, NULL), ('Ω', 2, 'x');
             UPDATE events SET payload = 'p' WHERE seq % 1000 = 0;
             DELETE FROM events WHERE seq IN (5, 3001);",
        )
        .await
        .unwrap();
    let diff = self::job(&source, &target, SyncMode::Diff, &ProgressHub::new());
    let summary = diff.run(RunRequest::all().force()).await.unwrap();
    assert_eq!(summary.status, RunStatus::Completed, "{summary}");
    assert_eq!(fingerprints(&target_client).await, fingerprints(&source_client).await);
    let written = |table: &str| -> (u64, u64) {
        (1..=3).fold((0, 0), |(inserted, updated), i| {
            let counts = summary.migration(&format!("public.{table} [range {i}/3]")).unwrap().counts;
            (inserted + counts.inserted, updated + counts.updated)
        })
    };
    assert_eq!(written("labels"), (2, 3));
    assert_eq!(written("events"), (0, 6));
    assert_eq!(summary.migration("public.labels (deletes)").unwrap().counts.deleted, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_stopped_inside_its_ranges_resumes_them_even_after_the_source_changed() {
    let (source_db, target_db) = pair("ranges_resume").await;
    let (source, target) = (source_db.database(), target_db.database());
    let (source_client, target_client) = (source_db.client().await, target_db.client().await);

    // Stop the run while the fifth load of the second range of labels (text keys) waits at a
    // gate: that range has then committed exactly 1,250 rows, the others whatever they had.
    let gate = Gate::new();
    let gated = FaultyDatabase::new(PgDatabase::lazy(&target_db.url).unwrap())
        .faults_for_migration("public.labels [range 2/3]", FaultPlan::new().hold_before(5, &gate));
    let job = job(&source, &Arc::new(gated), SyncMode::Full, &ProgressHub::new());
    let plan = job.plan().await.unwrap();
    let planned = ranges_of(&plan, "labels").to_vec();
    let cancel = CancellationToken::new();
    let orchestrator = job.orchestrator(&plan).await.unwrap();
    let run = orchestrator.run(RunRequest::all().with_cancel(cancel.clone()));
    let stopped = cancel_at(&gate, &cancel, run).await.unwrap_or_else(|unreached| panic!("{unreached}")).unwrap();
    assert_eq!(stopped.status, RunStatus::Failed, "{stopped}");
    let ranges: Vec<_> = (1..=3).filter_map(|i| stopped.migration(&format!("public.labels [range {i}/3]"))).collect();
    let second = stopped.migration("public.labels [range 2/3]").unwrap();
    assert_eq!((second.status, second.counts.inserted), (MigrationStatus::Cancelled, 1250), "{stopped}");
    let first: u64 = ranges.iter().map(|r| r.counts.inserted).sum();
    assert!(first < 9000, "stopped midway, after {first} rows");
    let loaded: i64 = target_client.query_one("SELECT count(*) FROM labels", &[]).await.unwrap().get(0);
    assert_eq!(loaded as u64, first, "the target holds exactly the committed batches");
    // The ranges that committed a batch before the stop (one waiting for a --jobs slot may not
    // have): their bounds are fixed from now on.
    let store = target.run_store().await.unwrap();
    let mut started = Vec::new();
    for i in 1..=3 {
        let name = MigrationName::new(format!("public.labels [range {i}/3]"));
        started.push(store.checkpoint(&name).await.unwrap().is_some());
    }
    assert!(started[1], "the second range committed its batches before the stop");

    // The source changes so that a new split would cut elsewhere.
    source_client
        .batch_execute(
            "INSERT INTO labels SELECT '0' || g, 1, 'early' FROM generate_series(1, 3000) g;
             INSERT INTO labels SELECT '~' || g, 2, 'late' FROM generate_series(1, 500) g;",
        )
        .await
        .unwrap();
    let spec = plan.tables.iter().find(|t| t.target.name.name == "labels").unwrap();
    let spec = spec.extract_spec(&spec.key, ReadOrder::Key, false);
    let fresh = source.key_ranges(&spec, NonZeroUsize::new(3).unwrap()).await.unwrap();
    assert_ne!(fresh, planned, "a new split would cut elsewhere");

    // The next run (not forced) reads the stored ranges: exactly the rest, then the new rows
    // (those in ranges completed before the stop come with the catch-up pass).
    let job = self::job(&source, &target, SyncMode::Full, &ProgressHub::new());
    let replanned = job.plan().await.unwrap();
    let resumed = job.orchestrator(&replanned).await.unwrap().run(RunRequest::all()).await.unwrap();
    assert_eq!(resumed.status, RunStatus::Completed, "{resumed}");
    assert!((1..=3).any(|i| resumed.migration(&format!("public.labels [range {i}/3]")).unwrap().resumed), "{resumed}");
    assert_eq!(fingerprints(&target_client).await, fingerprints(&source_client).await);
    for (i, started) in started.iter().enumerate() {
        let name = MigrationName::new(format!("public.labels [range {}/3]", i + 1));
        let checkpoint = store.checkpoint(&name).await.unwrap().unwrap();
        let stored = KeyRange::from_scope(&checkpoint.unscoped().0.unwrap()).unwrap();
        if *started {
            assert_eq!(stored, planned[i], "range {} kept the bounds of the interrupted run", i + 1);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_table_is_split_from_a_sample_of_its_pages_into_ranges_of_similar_size() {
    let db = TestDb::create("ranges_sample").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE big (code text PRIMARY KEY, n integer NOT NULL);
             INSERT INTO big SELECT (ARRAY['a', 'B', 'é', '🦀'])[1 + g % 4] || md5(g::text), g FROM generate_series(1, 250000) g;
             ANALYZE big;",
        )
        .await
        .unwrap();
    let database = db.database();
    let catalog = database.read_catalog().await.unwrap();
    let plan = SyncPlan::build(&catalog, &catalog, None, SyncMode::Full).unwrap();
    let table = &plan.tables[0];
    let spec = table.extract_spec(&table.key, ReadOrder::Key, false);
    let ranges = database.key_ranges(&spec, NonZeroUsize::new(4).unwrap()).await.unwrap();
    assert_eq!(ranges.len(), 4, "{ranges:?}");
    let mut total = 0;
    for range in &ranges {
        let (after, up_to) = (range.after.as_deref().map(text), range.up_to.as_deref().map(text));
        let rows: i64 = client
            .query_one(
                "SELECT count(*) FROM big WHERE ($1::text IS NULL OR code COLLATE \"C\" > $1) \
                 AND ($2::text IS NULL OR code COLLATE \"C\" <= $2)",
                &[&after, &up_to],
            )
            .await
            .unwrap()
            .get(0);
        assert!((40_000..85_000).contains(&rows), "about a quarter of the rows in {range}: {rows}");
        total += rows;
    }
    assert_eq!(total, 250_000, "the ranges hold every key once");
}

fn text(key: &[Value]) -> String {
    match key {
        [Value::Text(text)] => text.clone(),
        other => panic!("not a text key: {other:?}"),
    }
}
