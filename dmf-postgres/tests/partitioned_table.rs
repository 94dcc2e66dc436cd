//! A partitioned table is one table to DMF: its partitions are not listed, it is read and
//! written through its parent, and its row estimate adds up the partitions.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use dmf_core::sync::{Database, ReadOrder, SyncMode, SyncPlan};
use dmf_core::{Extractor, RunStatus};

const DDL: &str = "
CREATE TABLE measurements (day date NOT NULL, sensor int NOT NULL, value double precision, PRIMARY KEY (day, sensor))
    PARTITION BY RANGE (day);
CREATE TABLE measurements_2023 PARTITION OF measurements FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE measurements_2024 PARTITION OF measurements FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_table_is_read_and_written_through_its_parent() {
    let (source_db, target_db) = (common::TestDb::create("part_src").await, common::TestDb::create("part_dst").await);
    let source_client = source_db.client().await;
    source_client.batch_execute(DDL).await.unwrap();
    source_client
        .batch_execute(
            "INSERT INTO measurements SELECT date '2023-06-01' + (g % 400), g % 7, g * 0.5 FROM generate_series(1, 2000) g
             ON CONFLICT DO NOTHING;
             ANALYZE measurements_2023, measurements_2024;",
        )
        .await
        .unwrap();
    target_db.client().await.batch_execute(DDL).await.unwrap();

    let source = source_db.database();
    let catalog = source.read_catalog().await.unwrap();
    let names: Vec<String> = catalog.tables.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, ["public.measurements"]);

    let rows: i64 = source_client.query_one("SELECT count(*) FROM measurements", &[]).await.unwrap().get(0);
    let plan = SyncPlan::build(&catalog, &catalog, None, SyncMode::Full).unwrap();
    let table = &plan.tables[0];
    let mut extractor = source.extractor(table.extract_spec(&table.columns, ReadOrder::Key, false));
    assert_eq!(extractor.estimate(None).await.unwrap(), Some(rows as u64));

    let summary = common::sync(&source, &target_db.database(), SyncMode::Full, false).await;
    assert_eq!(summary.status, RunStatus::Completed, "{summary}");
    let per_partition = "SELECT tableoid::regclass::text, count(*) FROM measurements GROUP BY 1 ORDER BY 1";
    let count =
        |rows: Vec<tokio_postgres::Row>| rows.iter().map(|r| (r.get(0), r.get(1))).collect::<Vec<(String, i64)>>();
    assert_eq!(
        count(target_db.client().await.query(per_partition, &[]).await.unwrap()),
        count(source_client.query(per_partition, &[]).await.unwrap())
    );
}

/// A range-partitioned table with three partitions and a default one, written by every mode
/// that stages its rows.
const READINGS: &str = "
CREATE TABLE readings (day date NOT NULL, sensor int NOT NULL, value numeric(10,2),
    updated_at timestamptz NOT NULL DEFAULT timestamptz '2024-01-01 00:00:00+00', PRIMARY KEY (day, sensor))
    PARTITION BY RANGE (day);
CREATE TABLE readings_2023 PARTITION OF readings FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE readings_2024 PARTITION OF readings FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE readings_2025 PARTITION OF readings FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE readings_other PARTITION OF readings DEFAULT;";

/// Rows in every partition, the default one included (2022 and 2026).
const READINGS_DATA: &str = "
INSERT INTO readings (day, sensor, value)
SELECT date '2022-12-01' + (g / 3) * 3, g % 3, g * 0.25 FROM generate_series(0, 1499) g;";

async fn per_partition(client: &tokio_postgres::Client) -> Vec<(String, i64, String)> {
    let rows = client
        .query(
            "SELECT tableoid::regclass::text, count(*), md5(string_agg(r::text, ',' ORDER BY day, sensor)) \
             FROM readings r GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_diff_and_incremental_write_a_partitioned_table_through_its_parent() {
    use dmf_core::sync::SyncJob;
    use dmf_core::{EngineConfig, RunRequest};

    let (source_db, target_db) = (common::TestDb::create("parts_src").await, common::TestDb::create("parts_dst").await);
    let (source_client, target_client) = (source_db.client().await, target_db.client().await);
    source_client.batch_execute(READINGS).await.unwrap();
    source_client.batch_execute(READINGS_DATA).await.unwrap();
    target_client.batch_execute(READINGS).await.unwrap();
    let (source, target) = (source_db.database(), target_db.database());
    let job = |mode: SyncMode| {
        SyncJob::new(source.clone(), target.clone(), mode)
            .engine(EngineConfig::builder().batch_size(200).build().unwrap())
            .undo(true)
    };
    let partitions = per_partition(&source_client).await;
    assert_eq!(partitions.len(), 4, "every partition has rows, the default one too: {partitions:?}");

    // Upsert into the empty parent: every row inserted, each in its partition.
    let first = job(SyncMode::Upsert).run(RunRequest::all()).await.unwrap();
    assert_eq!(first.status, RunStatus::Completed, "{first}");
    assert_eq!(common::counts(&first, "public.readings"), (1500, 1500, 0, 0, 0));
    assert_eq!(per_partition(&target_client).await, partitions);
    let again = job(SyncMode::Upsert).run(RunRequest::all().force()).await.unwrap();
    assert_eq!(common::counts(&again, "public.readings"), (1500, 0, 0, 1500, 0), "{again}");

    // Changes, one of them moving a row to another partition (its partition key, part of the
    // key, changes: the old key is gone and a new one appears).
    source_client
        .batch_execute(
            "UPDATE readings SET value = value + 1, updated_at = timestamptz '2030-01-01 00:00:00+00'
                 WHERE sensor = 1 AND day < '2023-02-01';
             UPDATE readings SET day = '2025-06-02', updated_at = timestamptz '2030-01-02 00:00:00+00'
                 WHERE day = '2023-03-01' AND sensor = 2;
             INSERT INTO readings (day, sensor, value, updated_at)
                 VALUES ('2026-05-01', 9, 1, timestamptz '2030-01-03 00:00:00+00');",
        )
        .await
        .unwrap();
    let moved: String = source_client
        .query_one("SELECT tableoid::regclass::text FROM readings WHERE day = '2025-06-02' AND sensor = 2", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(moved, "readings_2025");
    let changed_in_source: i64 = source_client
        .query_one("SELECT count(*) FROM readings WHERE sensor = 1 AND day < '2023-02-01'", &[])
        .await
        .unwrap()
        .get(0);

    // Diff: the changed rows updated, the moved row deleted from its old partition and
    // inserted into its new one, the new row into the default partition.
    let before_diff = per_partition(&target_client).await;
    let diff = job(SyncMode::Diff).run(RunRequest::all().force()).await.unwrap();
    assert_eq!(diff.status, RunStatus::Completed, "{diff}");
    let (_, inserted, updated, _, _) = common::counts(&diff, "public.readings");
    assert_eq!((inserted, updated), (2, changed_in_source as u64), "{diff}");
    assert_eq!(common::counts(&diff, "public.readings (deletes)").4, 1, "{diff}");
    assert_eq!(per_partition(&target_client).await, per_partition(&source_client).await);
    let plan = job(SyncMode::Diff).plan().await.unwrap();
    let report = dmf_core::quality::verify(source.as_ref(), target.as_ref(), &plan, &[], 5).await.unwrap();
    assert!(report.passed(), "{report}");

    // Its undo log puts every partition back as it was.
    let (run, _) = job(SyncMode::Diff).rollback(None, false).await.unwrap();
    assert_eq!(run, diff.run);
    assert_eq!(per_partition(&target_client).await, before_diff);

    // Incremental by `updated_at`: the first run loads what grew since nothing (every row), the
    // next only the rows changed after it.
    let incremental = SyncMode::Incremental { column: "updated_at".into(), propagate_deletes: true };
    let first = job(incremental.clone()).run(RunRequest::all().force()).await.unwrap();
    assert_eq!(first.status, RunStatus::Completed, "{first}");
    assert_eq!(per_partition(&target_client).await, per_partition(&source_client).await);
    source_client
        .batch_execute(
            "UPDATE readings SET value = -1, updated_at = timestamptz '2031-01-01 00:00:00+00'
                 WHERE day = '2024-01-31' AND sensor IN (0, 1);
             INSERT INTO readings VALUES ('2023-12-31', 7, 7, timestamptz '2031-01-02 00:00:00+00');",
        )
        .await
        .unwrap();
    let second = job(incremental).run(RunRequest::all().force()).await.unwrap();
    assert_eq!(second.status, RunStatus::Completed, "{second}");
    assert_eq!(common::counts(&second, "public.readings"), (3, 1, 2, 0, 0), "{second}");
    assert_eq!(per_partition(&target_client).await, per_partition(&source_client).await);
}
