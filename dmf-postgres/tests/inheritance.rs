//! An inheritance parent and its children are tables of their own: the parent is read, written,
//! emptied and compared `ONLY`, so its children's rows are neither counted twice (when the
//! children are synced too) nor copied into the parent. A parent whose `INSERT` rules route rows
//! elsewhere is upserted without `ON CONFLICT` and `RETURNING`, which such rules refuse.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use dmf_core::sync::{SyncJob, SyncMode};
use dmf_core::{EngineConfig, RunRequest, RunStatus};

const VEHICLES: &str = "
CREATE TABLE vehicles (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE cars (doors int NOT NULL) INHERITS (vehicles);
ALTER TABLE cars ADD PRIMARY KEY (id);
CREATE TABLE bikes (gears int NOT NULL) INHERITS (vehicles);
ALTER TABLE bikes ADD PRIMARY KEY (id);";

const VEHICLES_DATA: &str = "
INSERT INTO vehicles SELECT g, 'vehicle ' || g FROM generate_series(1, 30) g;
INSERT INTO cars SELECT g, 'car ' || g, 2 + g % 3 FROM generate_series(101, 140) g;
INSERT INTO bikes SELECT g, 'bike ' || g, g % 21 FROM generate_series(201, 250) g;";

/// Each table's own rows: `(table, count, md5)`.
async fn own_rows(client: &tokio_postgres::Client) -> Vec<(String, i64, String)> {
    let mut out = Vec::new();
    for table in ["vehicles", "cars", "bikes"] {
        let row = client
            .query_one(
                &format!(
                    "SELECT count(*), coalesce(md5(string_agg(t::text, ',' ORDER BY id)), '') FROM ONLY {table} t"
                ),
                &[],
            )
            .await
            .unwrap();
        out.push((table.to_owned(), row.get(0), row.get(1)));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inheritance_parent_is_synced_and_verified_without_its_children_rows() {
    let (source_db, target_db) = (common::TestDb::create("inh_src").await, common::TestDb::create("inh_dst").await);
    let (source_client, target_client) = (source_db.client().await, target_db.client().await);
    source_client.batch_execute(VEHICLES).await.unwrap();
    source_client.batch_execute(VEHICLES_DATA).await.unwrap();
    target_client.batch_execute(VEHICLES).await.unwrap();
    // A row of the target's own child that the parent's full load must not empty.
    target_client.batch_execute("INSERT INTO bikes VALUES (999, 'local bike', 3)").await.unwrap();
    let (source, target) = (source_db.database(), target_db.database());
    let job = |mode: SyncMode, tables: &[&str]| {
        let mut job = SyncJob::new(source.clone(), target.clone(), mode)
            .engine(EngineConfig::builder().batch_size(7).build().unwrap())
            .undo(true);
        if !tables.is_empty() {
            job = job.tables(tables.iter().map(|t| dmf_core::catalog::TableName::parse(t)).collect());
        }
        job
    };

    // The parent alone: its 30 rows, not the 120 it shows with its children.
    let parent = job(SyncMode::Full, &["public.vehicles"]).run(RunRequest::all()).await.unwrap();
    assert_eq!(parent.status, RunStatus::Completed, "{parent}");
    assert_eq!(common::counts(&parent, "public.vehicles"), (30, 30, 0, 0, 0));
    let bikes: i64 = target_client.query_one("SELECT count(*) FROM ONLY bikes", &[]).await.unwrap().get(0);
    assert_eq!(bikes, 1, "emptying the parent (TRUNCATE ONLY) left its child alone");

    // Every table: each its own rows, none counted twice.
    let full = job(SyncMode::Full, &[]).run(RunRequest::all().force()).await.unwrap();
    assert_eq!(full.status, RunStatus::Completed, "{full}");
    assert_eq!(common::counts(&full, "public.vehicles"), (30, 30, 0, 0, 0));
    assert_eq!(common::counts(&full, "public.cars"), (40, 40, 0, 0, 0));
    assert_eq!(common::counts(&full, "public.bikes"), (50, 50, 0, 0, 0));
    assert_eq!(own_rows(&target_client).await, own_rows(&source_client).await);
    let all: i64 = target_client.query_one("SELECT count(*) FROM vehicles", &[]).await.unwrap().get(0);
    assert_eq!(all, 120, "the parent shows its children's rows, stored once");

    // Upsert and diff change only the table whose own rows changed.
    source_client
        .batch_execute(
            "UPDATE ONLY vehicles SET name = 'renamed' WHERE id = 3;
             UPDATE cars SET doors = 5 WHERE id IN (101, 102);
             DELETE FROM ONLY vehicles WHERE id = 30;",
        )
        .await
        .unwrap();
    let upsert = job(SyncMode::Upsert, &[]).run(RunRequest::all().force()).await.unwrap();
    assert_eq!(upsert.status, RunStatus::Completed, "{upsert}");
    assert_eq!(common::counts(&upsert, "public.vehicles"), (29, 0, 1, 28, 0));
    assert_eq!(common::counts(&upsert, "public.cars"), (40, 0, 2, 38, 0));
    assert_eq!(common::counts(&upsert, "public.bikes"), (50, 0, 0, 50, 0));
    let diff = job(SyncMode::Diff, &[]).run(RunRequest::all().force()).await.unwrap();
    assert_eq!(diff.status, RunStatus::Completed, "{diff}");
    assert_eq!(common::counts(&diff, "public.vehicles (deletes)").4, 1, "{diff}");
    assert_eq!(common::counts(&diff, "public.cars (deletes)").4, 0, "{diff}");
    assert_eq!(own_rows(&target_client).await, own_rows(&source_client).await);

    // Verification compares each table's own rows.
    let plan = job(SyncMode::Diff, &[]).plan().await.unwrap();
    let report = dmf_core::quality::verify(source.as_ref(), target.as_ref(), &plan, &[], 5).await.unwrap();
    assert!(report.passed(), "{report}");
    let rows: Vec<(String, u64, u64)> =
        report.tables.iter().map(|t| (t.table.clone(), t.source_rows, t.target_rows)).collect();
    assert!(rows.contains(&("public.vehicles".to_owned(), 29, 29)), "{report}");

    // Rolling the diff and the upsert back restores the parent's own rows only.
    job(SyncMode::Diff, &[]).rollback(None, false).await.unwrap();
    job(SyncMode::Diff, &[]).rollback(None, false).await.unwrap();
    let (count, name): (i64, String) = {
        let row = target_client
            .query_one("SELECT count(*), max(name) FILTER (WHERE id = 3) FROM ONLY vehicles", &[])
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!((count, name.as_str()), (30, "vehicle 3"));
    let cars: i64 = target_client.query_one("SELECT count(*) FROM cars WHERE doors = 5", &[]).await.unwrap().get(0);
    assert_eq!(cars, 0);
}

/// The old way to partition: a parent whose rules send some inserts to a child.
const EVENTS: &str = "
CREATE TABLE events (id int PRIMARY KEY, kind text NOT NULL, note text);
CREATE TABLE events_archive () INHERITS (events);
ALTER TABLE events_archive ADD PRIMARY KEY (id);";

const ROUTING: &str = "
CREATE RULE events_archive_route AS ON INSERT TO events WHERE (new.kind = 'archived')
    DO INSTEAD INSERT INTO events_archive VALUES (new.*);";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_with_insert_rules_is_upserted_without_on_conflict_or_returning() {
    let (source_db, target_db) = (common::TestDb::create("rule_src").await, common::TestDb::create("rule_dst").await);
    let (source_client, target_client) = (source_db.client().await, target_db.client().await);
    source_client.batch_execute(EVENTS).await.unwrap();
    source_client.batch_execute(ROUTING).await.unwrap();
    source_client
        .batch_execute(
            "INSERT INTO events SELECT g, CASE WHEN g % 4 = 0 THEN 'archived' ELSE 'live' END, 'n' || g
             FROM generate_series(1, 40) g;",
        )
        .await
        .unwrap();
    target_client.batch_execute(EVENTS).await.unwrap();
    target_client.batch_execute(ROUTING).await.unwrap();
    let (source, target) = (source_db.database(), target_db.database());
    let job = |mode: SyncMode| {
        SyncJob::new(source.clone(), target.clone(), mode)
            .engine(EngineConfig::builder().batch_size(8).build().unwrap())
            .undo(true)
    };

    let first = job(SyncMode::Upsert).run(RunRequest::all()).await.unwrap();
    assert_eq!(first.status, RunStatus::Completed, "{first}");
    assert_eq!(common::counts(&first, "public.events"), (30, 30, 0, 0, 0), "the parent's own 30 live events");
    assert_eq!(common::counts(&first, "public.events_archive"), (10, 10, 0, 0, 0));
    source_client.batch_execute("UPDATE events SET note = 'changed' WHERE id IN (1, 2, 4)").await.unwrap();
    let second = job(SyncMode::Upsert).run(RunRequest::all().force()).await.unwrap();
    assert_eq!(second.status, RunStatus::Completed, "{second}");
    assert_eq!(common::counts(&second, "public.events"), (30, 0, 2, 28, 0));
    assert_eq!(common::counts(&second, "public.events_archive"), (10, 0, 1, 9, 0));
    let count = |sql: &'static str| {
        let client = &target_client;
        async move { client.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(count("SELECT count(*) FROM ONLY events").await, 30);
    assert_eq!(count("SELECT count(*) FROM events_archive").await, 10);
    assert_eq!(count("SELECT count(*) FROM events WHERE note = 'changed'").await, 3);
}

const FLEET: &str = "
CREATE TABLE owners (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE fleet (id int PRIMARY KEY, owner_id int REFERENCES owners (id), label text);
-- A child inherits the columns, not the foreign key: its owner_id may name no owner.
CREATE TABLE vans (capacity int NOT NULL) INHERITS (fleet);
ALTER TABLE vans ADD PRIMARY KEY (id);
CREATE TABLE trips (id int PRIMARY KEY, fleet_id int NOT NULL REFERENCES fleet (id));";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_keys_of_an_inheritance_parent_are_proved_on_its_own_rows() {
    let (source_db, target_db) = (common::TestDb::create("fkinh_src").await, common::TestDb::create("fkinh_dst").await);
    let (source_client, target_client) = (source_db.client().await, target_db.client().await);
    source_client.batch_execute(FLEET).await.unwrap();
    source_client
        .batch_execute(
            "INSERT INTO owners SELECT g, 'owner ' || g FROM generate_series(1, 5) g;
             INSERT INTO fleet SELECT g, 1 + g % 5, 'car ' || g FROM generate_series(1, 20) g;
             INSERT INTO vans SELECT g, 999, 'van ' || g, 8 FROM generate_series(101, 110) g;
             INSERT INTO trips SELECT g, 1 + g % 20 FROM generate_series(1, 30) g;",
        )
        .await
        .unwrap();
    target_client.batch_execute(FLEET).await.unwrap();
    let (source, target) = (source_db.database(), target_db.database());
    let job = |mode: SyncMode| {
        SyncJob::new(source.clone(), target.clone(), mode)
            .engine(EngineConfig::builder().batch_size(7).build().unwrap())
    };

    // The fast path's proof counts the parent's own rows: the vans' owner 999, which no foreign
    // key constrains, is no orphan of fleet's.
    let full = job(SyncMode::Full).run(RunRequest::all()).await.unwrap();
    assert_eq!(full.status, RunStatus::Completed, "{full}");
    let fk = full.preflight.outcomes.iter().find(|o| o.check == dmf_core::sync::FK_CHECK).unwrap();
    assert!(fk.detail.starts_with("deferred to a set-based proof"), "{fk:?}");
    assert_eq!(common::counts(&full, "public.vans"), (10, 10, 0, 0, 0));

    // A trip that names a van: PostgreSQL's foreign key looks in fleet's own rows (`ONLY`), so
    // it is an orphan, and verification says so.
    target_client
        .batch_execute(
            "SET session_replication_role = replica; INSERT INTO trips VALUES (500, 105);
             RESET session_replication_role;",
        )
        .await
        .unwrap();
    let plan = job(SyncMode::Upsert).plan().await.unwrap();
    let report = dmf_core::quality::verify(source.as_ref(), target.as_ref(), &plan, &[], 5).await.unwrap();
    let orphans: Vec<(&str, u64, Vec<String>)> = report
        .rules
        .iter()
        .filter(|r| r.violations > 0)
        .map(|r| (r.table.as_str(), r.violations, r.sample.clone()))
        .collect();
    assert_eq!(orphans, [("public.trips", 1, vec!["id=500".to_owned()])], "{report}");
}
