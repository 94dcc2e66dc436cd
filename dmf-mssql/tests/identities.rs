//! SQL Server identities are synced sequences: read from `sys.identity_columns` (the last value
//! handed out, none before the first insert) and set with `DBCC CHECKIDENT (…, RESEED, n)`, the
//! table's name a literal and the value a formatted integer. Scripted, then live on the TDS
//! server (Babelfish included): a full sync leaves the target's identity at the source's value
//! (not at the largest copied id), and rolling an upsert back puts it back.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
mod live_common;

use common::{big, scripted, text};
use dmf_core::catalog::{Sequence, SequenceKind, TableName};
use dmf_core::sync::{Database, SyncJob, SyncMode};
use dmf_core::{EngineConfig, RunRequest, RunStatus};
use dmf_mssql::MssqlOptions;
use dmf_mssql::executor::Response;
use tiberius::ColumnData;

const IDENTITIES: &str = "FROM sys.identity_columns AS ic";

fn identity(schema: &str, table: &str, value: Option<i64>) -> Sequence {
    let table = TableName::new(Some(schema), table);
    Sequence {
        name: table.clone(),
        kind: SequenceKind::TableCounter,
        table,
        column: Some("id".into()),
        last_value: value,
    }
}

#[tokio::test]
async fn identities_are_read_from_the_catalog_and_reseeded_with_an_integer() {
    let (script, database) = scripted(MssqlOptions::default());
    script.on(
        IDENTITIES,
        Response::rows(vec![
            vec![text("dbo"), text("customers"), text("id"), big(3000)],
            vec![text("dbo"), text("orders"), text("id"), ColumnData::I64(None)],
            vec![text("dbo"), text("not synced"), text("id"), big(7)],
        ]),
    );
    let tables = [TableName::new(Some("dbo"), "customers"), TableName::new(Some("dbo"), "orders")];
    let read = database.sequences(&tables).await.unwrap();
    assert_eq!(read, [identity("dbo", "customers", Some(3000)), identity("dbo", "orders", None)]);

    script.clear_log();
    script.on("DBCC CHECKIDENT", Response::Affected(0));
    let set =
        [identity("dbo", "customers", Some(3010)), identity("dbo", "it's", Some(-4)), identity("dbo", "orders", None)];
    database.set_sequences(&set).await.unwrap();
    assert_eq!(
        script.statements(),
        ["DBCC CHECKIDENT ('[dbo].[customers]', RESEED, 3010);DBCC CHECKIDENT ('[dbo].[it''s]', RESEED, -4);"],
        "one batch; an identity cannot be set back to unused"
    );
    let sequence = Sequence { kind: SequenceKind::Sequence, ..identity("dbo", "s", Some(1)) };
    let error = database.set_sequences(&[sequence]).await.unwrap_err();
    assert!(error.to_string().contains("only identities are set on SQL Server"), "{error}");
}

const SCHEMA: &str = "
CREATE TABLE dbo.tickets (id int IDENTITY(1, 1) NOT NULL PRIMARY KEY, title nvarchar(50) NOT NULL);
CREATE TABLE dbo.notes (id bigint IDENTITY(100, 5) NOT NULL PRIMARY KEY, body nvarchar(50) NULL);";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
async fn identities_are_read_and_reseeded_over_the_wire() {
    let url = live_common::server_url("identities_wire").await;
    let db = live_common::TestDb::create(&url, "ident_wire").await;
    db.batch(SCHEMA).await;
    let inserts: String = (1..=12).map(|n| format!("INSERT INTO dbo.tickets (title) VALUES (N't{n}');")).collect();
    db.batch(&format!("{inserts} INSERT INTO dbo.notes (body) VALUES (N'a');")).await;
    let database = db.database();
    let tables = [TableName::new(Some("dbo"), "tickets"), TableName::new(Some("dbo"), "notes")];
    assert_eq!(
        database.sequences(&tables).await.unwrap(),
        [identity("dbo", "notes", Some(100)), identity("dbo", "tickets", Some(12))]
    );
    database
        .set_sequences(&[identity("dbo", "tickets", Some(500)), identity("dbo", "notes", Some(9_000_000_000))])
        .await
        .unwrap();
    assert_eq!(
        database.sequences(&tables).await.unwrap(),
        [identity("dbo", "notes", Some(9_000_000_000)), identity("dbo", "tickets", Some(500))]
    );
    db.batch("INSERT INTO dbo.tickets (title) VALUES (N'next'); INSERT INTO dbo.notes (body) VALUES (N'next');").await;
    assert_eq!(db.scalar("SELECT MAX(id) FROM dbo.tickets").await, 501);
    assert_eq!(db.scalar("SELECT MAX(id) FROM dbo.notes").await, 9_000_000_005);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
#[cfg_attr(
    dmf_mssql_server = "babelfish",
    ignore = "needs SQL Server: Babelfish 4.3 counts rows bulk-loaded with KEEP_IDENTITY as no insert, so after \
              DBCC CHECKIDENT … RESEED, n its next id is n (SQL Server's: n + 1), and IDENT_CURRENT stays at the seed"
)]
async fn a_sync_leaves_identities_at_the_source_value_and_a_rollback_puts_them_back() {
    let url = live_common::server_url("identities").await;
    let source_db = live_common::TestDb::create(&url, "ident_src").await;
    let target_db = live_common::TestDb::create(&url, "ident_dst").await;
    source_db.batch(SCHEMA).await;
    // 40 tickets handed out, the last 5 deleted: the source's next ticket is 41.
    let mut inserts: Vec<String> =
        (1..=40).map(|n| format!("INSERT INTO dbo.tickets (title) VALUES (N't{n}');")).collect();
    inserts.push("DELETE FROM dbo.tickets WHERE id > 35;".into());
    inserts.push("INSERT INTO dbo.notes (body) VALUES (N'a'); INSERT INTO dbo.notes (body) VALUES (N'b');".into());
    source_db.batch(&inserts.concat()).await;
    target_db.batch(SCHEMA).await;
    let (source, target) = (source_db.database(), target_db.database());
    let tables = [TableName::new(Some("dbo"), "tickets"), TableName::new(Some("dbo"), "notes")];
    assert_eq!(
        source.sequences(&tables).await.unwrap(),
        [identity("dbo", "notes", Some(105)), identity("dbo", "tickets", Some(40))]
    );
    // (The fresh target's are unused: SQL Server says so, Babelfish 4.3 reports their seeds.)

    let job = |mode: SyncMode| {
        SyncJob::new(source.clone(), target.clone(), mode)
            .engine(EngineConfig::builder().batch_size(10).build().unwrap())
            .undo(true)
    };
    let full = job(SyncMode::Full).run(RunRequest::all()).await.unwrap();
    assert_eq!(full.status, RunStatus::Completed, "{full}");
    assert_eq!(target.sequences(&tables).await.unwrap(), source.sequences(&tables).await.unwrap());
    target_db
        .batch("INSERT INTO dbo.tickets (title) VALUES (N'new'); INSERT INTO dbo.notes (body) VALUES (N'new');")
        .await;
    assert_eq!(target_db.scalar("SELECT MAX(id) FROM dbo.tickets").await, 41, "the source's next id, not 36");
    assert_eq!(target_db.scalar("SELECT CAST(MAX(id) AS int) FROM dbo.notes").await, 110);
    target_db.batch("DELETE FROM dbo.tickets WHERE id = 41; DELETE FROM dbo.notes WHERE id = 110;").await;

    // The source moves on; an upsert follows it, and its rollback puts the identities back.
    source_db
        .batch("INSERT INTO dbo.tickets (title) VALUES (N'late'); INSERT INTO dbo.tickets (title) VALUES (N'later');")
        .await;
    let before = target.sequences(&tables).await.unwrap();
    let upsert = job(SyncMode::Upsert).run(RunRequest::all().force()).await.unwrap();
    assert_eq!(upsert.status, RunStatus::Completed, "{upsert}");
    assert_eq!(target.sequences(&tables).await.unwrap(), source.sequences(&tables).await.unwrap());
    job(SyncMode::Upsert).rollback(None, false).await.unwrap();
    assert_eq!(target.sequences(&tables).await.unwrap(), before);
    assert_eq!(target_db.scalar("SELECT COUNT(*) FROM dbo.tickets").await, 35);
}
