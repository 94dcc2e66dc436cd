//! SQL Server sequence objects (`CREATE SEQUENCE`) that synced tables' defaults use, over the
//! wire. Setting them (`ALTER SEQUENCE … RESTART WITH n` and one `NEXT VALUE FOR`, in one
//! transaction with the identities) runs on every TDS server, Babelfish 4.3 included; reading
//! them needs SQL Server, since Babelfish 4.3 lists no sequences in `sys.sequences` (and its
//! defaults read `nextval('ticket_numbers')`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod live_common;

use dmf_core::catalog::{Sequence, SequenceKind, TableName};
use dmf_core::sync::{Database, SyncJob, SyncMode};
use dmf_core::{EngineConfig, RunRequest, RunStatus};

const SCHEMA: &str = "
CREATE SEQUENCE dbo.ticket_numbers AS bigint START WITH 100 INCREMENT BY 5;
CREATE TABLE dbo.tickets (id int IDENTITY(1, 1) NOT NULL PRIMARY KEY,
    number bigint NOT NULL CONSTRAINT df_tickets_number DEFAULT (NEXT VALUE FOR dbo.ticket_numbers),
    title nvarchar(50) NOT NULL);
CREATE TABLE dbo.refunds (id int NOT NULL PRIMARY KEY,
    number bigint NOT NULL CONSTRAINT df_refunds_number DEFAULT (NEXT VALUE FOR [dbo].[ticket_numbers]));";

/// `dbo.ticket_numbers` as the default of `dbo.table.number` uses it, at `value`.
fn numbers(table: &str, value: Option<i64>) -> Sequence {
    Sequence {
        name: TableName::new(Some("dbo"), "ticket_numbers"),
        kind: SequenceKind::Sequence,
        table: TableName::new(Some("dbo"), table),
        column: Some("number".into()),
        last_value: value,
    }
}

fn identity(table: &str, value: Option<i64>) -> Sequence {
    let table = TableName::new(Some("dbo"), table);
    Sequence {
        name: table.clone(),
        kind: SequenceKind::TableCounter,
        table,
        column: Some("id".into()),
        last_value: value,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
async fn a_sequence_is_restarted_so_that_its_next_value_follows_the_one_set() {
    let url = live_common::server_url("sequences_set").await;
    let db = live_common::TestDb::create(&url, "seq_set").await;
    db.batch(SCHEMA).await;
    db.batch("INSERT INTO dbo.tickets (title) VALUES (N'a'); INSERT INTO dbo.tickets (title) VALUES (N'b');").await;
    assert_eq!(db.scalar("SELECT MAX(number) FROM dbo.tickets").await, 105);
    let database = db.database();

    // Never used (as the source's may be): the next value is its start again.
    database.set_sequences(&[numbers("tickets", None)]).await.unwrap();
    assert_eq!(db.scalar("SELECT NEXT VALUE FOR dbo.ticket_numbers").await, 100);

    // Set to 40 with the table's identity, in one transaction: the next ticket takes number
    // 45 (40 plus the increment) and id 501.
    database.set_sequences(&[identity("tickets", Some(500)), numbers("tickets", Some(40))]).await.unwrap();
    db.batch("INSERT INTO dbo.tickets (title) VALUES (N'next');").await;
    assert_eq!(db.scalar("SELECT number FROM dbo.tickets WHERE title = N'next'").await, 45);
    assert_eq!(db.scalar("SELECT id FROM dbo.tickets WHERE title = N'next'").await, 501);
    assert_eq!(db.scalar("SELECT NEXT VALUE FOR dbo.ticket_numbers").await, 50);

    // Beyond 2^53 (a value a float would round), and backwards.
    database.set_sequences(&[numbers("tickets", Some(9_007_199_254_740_993))]).await.unwrap();
    assert_eq!(db.scalar("SELECT NEXT VALUE FOR dbo.ticket_numbers").await, 9_007_199_254_740_998);
    database.set_sequences(&[numbers("tickets", Some(7))]).await.unwrap();
    assert_eq!(db.scalar("SELECT NEXT VALUE FOR dbo.ticket_numbers").await, 12);

    // A sequence that is not there fails the whole transaction, naming what was being set.
    let missing = Sequence { name: TableName::new(Some("dbo"), "gone"), ..numbers("tickets", Some(1)) };
    let error = database.set_sequences(&[numbers("tickets", Some(70)), missing]).await.unwrap_err();
    assert!(error.to_string().contains("dbo.gone (dbo.tickets.number) at 1"), "{error}");
    assert_eq!(db.scalar("SELECT NEXT VALUE FOR dbo.ticket_numbers").await, 17, "the first one not set either");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
#[cfg_attr(
    dmf_mssql_server = "babelfish",
    ignore = "needs SQL Server: sys.sequences (Babelfish 4.3 lists no sequences)"
)]
async fn a_sync_leaves_default_sequences_at_the_source_value_and_a_rollback_puts_them_back() {
    let url = live_common::server_url("sequences_sync").await;
    let source_db = live_common::TestDb::create(&url, "seq_src").await;
    let target_db = live_common::TestDb::create(&url, "seq_dst").await;
    source_db.batch(SCHEMA).await;
    target_db.batch(SCHEMA).await;
    // The source handed out 100 … 195 (20 tickets), the last 5 tickets deleted: its next is 200.
    let mut inserts: Vec<String> =
        (1..=20).map(|n| format!("INSERT INTO dbo.tickets (title) VALUES (N't{n}');")).collect();
    inserts.push("DELETE FROM dbo.tickets WHERE id > 15;".into());
    source_db.batch(&inserts.concat()).await;
    // The target's was used in testing: at 105.
    target_db.batch("SELECT NEXT VALUE FOR dbo.ticket_numbers; SELECT NEXT VALUE FOR dbo.ticket_numbers;").await;
    let (source, target) = (source_db.database(), target_db.database());
    let tables = [TableName::new(Some("dbo"), "tickets"), TableName::new(Some("dbo"), "refunds")];
    assert_eq!(
        source.sequences(&tables).await.unwrap(),
        [identity("tickets", Some(20)), numbers("refunds", Some(195)), numbers("tickets", Some(195))],
        "one per table whose default uses it"
    );
    assert_eq!(
        target.sequences(&tables).await.unwrap()[1..],
        [numbers("refunds", Some(105)), numbers("tickets", Some(105))]
    );

    let job = |mode: SyncMode| {
        SyncJob::new(source.clone(), target.clone(), mode)
            .engine(EngineConfig::builder().batch_size(10).build().unwrap())
            .undo(true)
    };
    let full = job(SyncMode::Full).run(RunRequest::all()).await.unwrap();
    assert_eq!(full.status, RunStatus::Completed, "{full}");
    assert_eq!(target.sequences(&tables).await.unwrap(), source.sequences(&tables).await.unwrap());
    target_db.batch("INSERT INTO dbo.refunds (id) VALUES (1);").await;
    assert_eq!(target_db.scalar("SELECT number FROM dbo.refunds WHERE id = 1").await, 200, "the source's next");
    target_db.batch("DELETE FROM dbo.refunds WHERE id = 1;").await;

    // The source moves on; an upsert follows it, and its rollback puts the sequence back.
    source_db
        .batch("INSERT INTO dbo.tickets (title) VALUES (N'late'); INSERT INTO dbo.tickets (title) VALUES (N'later');")
        .await;
    let before = target.sequences(&tables).await.unwrap();
    assert_eq!(before[1], numbers("refunds", Some(200)), "the refund took 200");
    let upsert = job(SyncMode::Upsert).run(RunRequest::all().force()).await.unwrap();
    assert_eq!(upsert.status, RunStatus::Completed, "{upsert}");
    let after = target.sequences(&tables).await.unwrap();
    assert_eq!(after, source.sequences(&tables).await.unwrap());
    assert_eq!(after[1], numbers("refunds", Some(205)));
    job(SyncMode::Upsert).rollback(None, false).await.unwrap();
    assert_eq!(target.sequences(&tables).await.unwrap(), before);
    assert_eq!(target_db.scalar("SELECT NEXT VALUE FOR dbo.ticket_numbers").await, 205);
}
