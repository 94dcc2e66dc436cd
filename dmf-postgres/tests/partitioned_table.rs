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
