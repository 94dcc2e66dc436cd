//! The loader writes a batch and its checkpoint atomically, counts exactly what each write
//! mode did, and classifies what the target refuses so the engine rejects only the bad rows.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use dmf_core::catalog::TableName;
use dmf_core::sync::{Database, LoadSpec, SyncMode, WriteMode};
use dmf_core::{
    Checkpoint, ErrorKind, LoadBatch, LoadReport, Loader, MigrationName, Position, Row, RowShape, RunId, RunStatus,
    Value,
};

fn rows(shape: &Arc<RowShape>, values: &[(i64, &str)]) -> Vec<Row> {
    values
        .iter()
        .map(|(id, name)| Row::new(Arc::clone(shape), vec![Value::Int(*id), Value::Text((*name).into())]))
        .collect()
}

async fn load(loader: &mut impl Loader<Item = Row>, records: &[Row], position: &str) -> dmf_core::Result<LoadReport> {
    let migration = MigrationName::new("people");
    let checkpoint = Checkpoint::at(Position::new(position));
    loader.load(LoadBatch { migration: &migration, run: RunId(1), records, checkpoint: &checkpoint }).await
}

async fn names(client: &tokio_postgres::Client) -> Vec<(i32, String)> {
    client
        .query("SELECT id, name FROM people ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_commit_with_their_checkpoint_or_not_at_all_and_every_mode_counts_exactly() {
    let db = common::TestDb::create("loader").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE people (id integer PRIMARY KEY, name text NOT NULL CONSTRAINT no_bad CHECK (name <> 'bad'))",
        )
        .await
        .unwrap();
    let database = db.database();
    let table = database.read_catalog().await.unwrap().tables.remove(0);
    let spec = |write, columns: &[&str]| LoadSpec {
        table: TableName::new(Some("public"), "people"),
        columns: columns.iter().map(|c| table.column(c).unwrap().clone()).collect(),
        key: vec!["id".into()],
        write,
        null_columns: BTreeSet::new(),
        undo: false,
        trust_foreign_keys: false,
    };
    let shape =
        Arc::new(RowShape { table: table.name.clone(), columns: vec!["id".into(), "name".into()], key: vec![0] });
    let migration = MigrationName::new("people");

    let mut insert = database.loader(spec(WriteMode::Insert, &["id", "name"]));
    assert_eq!(insert.checkpoint(&migration).await.unwrap(), None);
    let report = load(&mut insert, &rows(&shape, &[(1, "ann"), (2, "bob\ttab"), (3, "cy\\")]), "p1").await.unwrap();
    assert_eq!(report, LoadReport { inserted: 3, ..LoadReport::default() });
    assert_eq!(insert.checkpoint(&migration).await.unwrap(), Some(Checkpoint::at(Position::new("p1"))));

    // A refused row fails the whole batch: neither its rows nor its checkpoint are written.
    let error = load(&mut insert, &rows(&shape, &[(4, "dan"), (5, "bad")]), "p2").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Data, "{}", error.chain());
    let text = error.chain();
    assert!(text.contains("inserting 2 rows of public.people"), "{text}");
    assert!(text.contains("table public.people; constraint no_bad"), "{text}");
    assert_eq!(insert.checkpoint(&migration).await.unwrap(), Some(Checkpoint::at(Position::new("p1"))));
    let duplicate = load(&mut insert, &rows(&shape, &[(1, "again")]), "p2").await.unwrap_err();
    assert_eq!(duplicate.kind(), ErrorKind::Data);
    assert!(duplicate.chain().contains("detail: Key (id)=(1) already exists."), "{}", duplicate.chain());
    assert_eq!(names(&client).await, [(1, "ann".into()), (2, "bob\ttab".into()), (3, "cy\\".into())]);

    // An empty batch only moves the checkpoint.
    assert_eq!(load(&mut insert, &[], "p3").await.unwrap(), LoadReport::default());
    assert_eq!(insert.checkpoint(&migration).await.unwrap().unwrap().position, Some(Position::new("p3")));

    let mut upsert = database.loader(spec(WriteMode::Upsert, &["id", "name"]));
    let report = load(&mut upsert, &rows(&shape, &[(1, "ann"), (2, "bobby"), (6, "eve")]), "p4").await.unwrap();
    assert_eq!(report, LoadReport { inserted: 1, updated: 1, unchanged: 1, deleted: 0, skipped: 0 });
    // Rows whose columns come in another order are matched by name.
    let reversed =
        Arc::new(RowShape { table: table.name.clone(), columns: vec!["name".into(), "id".into()], key: vec![1] });
    let report =
        load(&mut upsert, &[Row::new(reversed, vec![Value::Text("fay".into()), Value::Int(7)])], "p5").await.unwrap();
    assert_eq!(report.inserted, 1);

    let mut update = database.loader(spec(WriteMode::Update, &["id", "name"]));
    let report = load(&mut update, &rows(&shape, &[(1, "annie"), (3, "cy\\"), (42, "nobody")]), "p6").await.unwrap();
    assert_eq!(report, LoadReport { updated: 1, unchanged: 2, ..LoadReport::default() });

    let key_shape = Arc::new(RowShape { table: table.name.clone(), columns: vec!["id".into()], key: vec![0] });
    let mut delete = database.loader(spec(WriteMode::Delete, &["id"]));
    let keys = [1, 99].map(|id| Row::new(Arc::clone(&key_shape), vec![Value::Int(id)]));
    let report = load(&mut delete, &keys, "p7").await.unwrap();
    assert_eq!(report, LoadReport { deleted: 1, unchanged: 1, ..LoadReport::default() });

    assert_eq!(names(&client).await, [(2, "bobby".into()), (3, "cy\\".into()), (6, "eve".into()), (7, "fay".into())]);
    delete.clear_checkpoint(&migration).await.unwrap();
    assert_eq!(delete.checkpoint(&migration).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_the_target_refuses_are_rejected_with_the_reason_and_the_rest_loads() {
    let (source_db, target_db) =
        (common::TestDb::create("rejects_src").await, common::TestDb::create("rejects_dst").await);
    source_db
        .client()
        .await
        .batch_execute(
            "CREATE TABLE codes (id integer PRIMARY KEY, code varchar(20) NOT NULL);
             INSERT INTO codes SELECT g, CASE WHEN g IN (17, 500, 999) THEN 'far too long ' || g ELSE 'c' || g END
             FROM generate_series(1, 1000) g;",
        )
        .await
        .unwrap();
    let target_client = target_db.client().await;
    target_client.batch_execute("CREATE TABLE codes (id integer PRIMARY KEY, code varchar(6) NOT NULL)").await.unwrap();

    let summary = common::sync(&source_db.database(), &target_db.database(), SyncMode::Full, false).await;
    assert_eq!(summary.status, RunStatus::Completed, "{summary}");
    let record = summary.migration("public.codes").unwrap();
    assert_eq!((record.counts.read, record.counts.inserted, record.counts.rejected), (1000, 997, 3));

    let rejects = target_db.database().run_store().await.unwrap().rejects(summary.run, None, 10, 0).await.unwrap();
    let keys: Vec<&str> = rejects.iter().map(|r| r.reject.key.as_str()).collect();
    assert_eq!(keys, ["id=17", "id=500", "id=999"]);
    assert_eq!(rejects[0].reject.stage, dmf_core::Stage::Load);
    assert!(
        rejects[0].reject.reason.contains("value too long for type character varying(6)"),
        "{}",
        rejects[0].reject.reason
    );
    assert!(rejects[0].reject.reason.contains("SQLSTATE 22001"), "{}", rejects[0].reject.reason);
    assert_eq!(rejects[0].reject.payload, serde_json::json!({"id": 17, "code": "far too long 17"}));
    let loaded: i64 = target_client.query_one("SELECT count(*) FROM codes", &[]).await.unwrap().get(0);
    assert_eq!(loaded, 997);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_losing_its_connection_a_loader_or_extractor_fails_once_as_transient_then_reconnects() {
    use dmf_core::Extractor;
    use dmf_core::sync::{ReadOrder, SyncPlan};
    use futures::StreamExt;

    let db = common::TestDb::create("reconnect").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE people (id integer PRIMARY KEY, name text NOT NULL); INSERT INTO people VALUES (100, 'zed');",
        )
        .await
        .unwrap();
    // DMF reaches the server through a proxy that can cut its connections mid-conversation.
    let proxy = common::proxy::CuttingProxy::start(&db.url).await;
    let database = Arc::new(dmf_postgres::PgDatabase::lazy(&proxy.url(&db.url)).unwrap());
    let catalog = database.read_catalog().await.unwrap();
    let plan = SyncPlan::build(&catalog, &catalog, None, SyncMode::Upsert).unwrap();
    let table = &plan.tables[0];
    let mut loader = database.loader(table.load_spec(&table.columns, WriteMode::Upsert, BTreeSet::new()));
    let mut extractor = database.extractor(table.extract_spec(&table.columns, ReadOrder::Key, false));
    let shape = Arc::new(RowShape { table: table.target.name.clone(), columns: table.columns.clone(), key: vec![0] });
    let one = std::num::NonZeroUsize::MIN;

    load(&mut loader, &rows(&shape, &[(1, "ann")]), "p1").await.unwrap();
    let first_page = extractor.extract(None, one).next().await.unwrap().unwrap();

    // Both connections break while in use (as on a network failure or a failover).
    proxy.cut_existing();
    let batch = rows(&shape, &[(2, "bob")]);
    let error = load(&mut loader, &batch, "p2").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transient, "{}", error.chain());
    assert!(error.chain().contains("upserting 1 rows of public.people in postgres@127.0.0.1:"), "{}", error.chain());
    let from = Some(first_page.position.clone());
    let error = extractor.extract(from.clone(), one).next().await.unwrap().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transient, "{}", error.chain());

    // The engine's retry: the same calls again reconnect (stage and statements made anew).
    assert_eq!(load(&mut loader, &batch, "p2").await.unwrap().inserted, 1);
    let page = extractor.extract(from, one).next().await.unwrap().unwrap();
    assert_eq!(page.records[0].values()[0], Value::Int(2));
    assert_eq!(names(&client).await, [(1, "ann".into()), (2, "bob".into()), (100, "zed".into())]);
    assert_eq!(
        loader.checkpoint(&MigrationName::new("people")).await.unwrap().unwrap().position,
        Some(Position::new("p2"))
    );
    // The catalog's, the loader's and the extractor's, then one new one each for the last two.
    assert_eq!(proxy.connections(), 5, "each broken connection was replaced once");
}
