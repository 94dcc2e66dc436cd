//! SQL Server identities and sequence objects are synced sequences. Identities are read from
//! `sys.identity_columns` (the last value handed out, none before the first insert) and set
//! with `DBCC CHECKIDENT (…, RESEED, n)`, the table's name a literal and the value a formatted
//! integer; sequence objects a synced table's defaults use are read from `sys.sequences` (matched
//! by `sys.sql_expression_dependencies`) and set with `ALTER SEQUENCE … RESTART WITH n` and one
//! `NEXT VALUE FOR`, all in one transaction. Scripted (reading, setting, and the sync's two
//! steps with a rollback through the target's run store), then live on the TDS server (Babelfish
//! included): a full sync leaves the target's identity at the source's value (not at the largest
//! copied id), and rolling an upsert back puts it back. Sequence objects over the wire:
//! `live_sequences.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
mod live_common;

use std::sync::Arc;

use common::{big, control_tables, healthy_standalone, scripted, text};
use dmf_core::catalog::{Sequence, SequenceKind, TableName, pair_sequences};
use dmf_core::sync::{Database, RecordSequences, SEQUENCES_BEFORE, SyncJob, SyncMode, SyncSequences};
use dmf_core::{DataMigration, EngineConfig, MigrationContext, MigrationName, RunId, RunRequest, RunStatus, Value};
use dmf_mssql::executor::{Response, Script};
use dmf_mssql::{MssqlOptions, SqlError};
use tiberius::ColumnData;

const IDENTITIES: &str = "FROM sys.identity_columns AS ic";
const SEQUENCES: &str = "FROM sys.sequences AS sq";

/// `dbo.ticket_numbers`, which the default of `table.column` uses, at `value`.
fn sequence_object(table: &str, column: &str, value: Option<i64>) -> Sequence {
    Sequence {
        name: TableName::new(Some("dbo"), "ticket_numbers"),
        kind: SequenceKind::Sequence,
        table: TableName::new(Some("dbo"), table),
        column: Some(column.into()),
        last_value: value,
    }
}

/// A `sys.sequences` row: dbo.ticket_numbers used by `dbo.table.column`, at `value`.
fn sequence_row(table: &str, column: &str, value: Option<i64>) -> Vec<ColumnData<'static>> {
    vec![text("dbo"), text("ticket_numbers"), text("dbo"), text(table), text(column), ColumnData::I64(value)]
}

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
        ["SET XACT_ABORT ON; BEGIN TRANSACTION; DBCC CHECKIDENT ('[dbo].[customers]', RESEED, 3010); \
          DBCC CHECKIDENT ('[dbo].[it''s]', RESEED, -4); COMMIT TRANSACTION;"],
        "one batch, one transaction; an identity cannot be set back to unused"
    );
    script.clear_log();
    database.set_sequences(&[identity("dbo", "orders", None)]).await.unwrap();
    assert!(script.statements().is_empty(), "nothing to send");
}

#[tokio::test]
async fn sequence_objects_of_defaults_are_read_per_table_and_restarted_with_identities_in_one_transaction() {
    let (script, database) = scripted(MssqlOptions::default());
    script.on(IDENTITIES, Response::rows(vec![vec![text("dbo"), text("customers"), text("id"), big(3000)]]));
    // One sequence shared by the defaults of two tables (and of one the sync leaves out), and
    // one never used.
    let unused = vec![text("sales"), text("invoice no"), text("dbo"), text("customers"), text("invoice"), big(0)];
    let unused = unused.into_iter().take(5).chain([ColumnData::I64(None)]).collect();
    script.on(
        SEQUENCES,
        Response::rows(vec![
            sequence_row("customers", "number", Some(40)),
            unused,
            sequence_row("tickets", "number", Some(40)),
            sequence_row("archive", "number", Some(40)),
        ]),
    );
    let tables = [TableName::new(Some("dbo"), "customers"), TableName::new(Some("dbo"), "tickets")];
    let read = database.sequences(&tables).await.unwrap();
    let invoices = Sequence {
        name: TableName::new(Some("sales"), "invoice no"),
        column: Some("invoice".into()),
        ..sequence_object("customers", "invoice", None)
    };
    assert_eq!(
        read,
        [
            identity("dbo", "customers", Some(3000)),
            sequence_object("customers", "number", Some(40)),
            invoices.clone(),
            sequence_object("tickets", "number", Some(40)),
        ]
    );
    let sent = script.statements();
    assert!(sent[1].contains("CAST(sq.last_used_value AS bigint)"), "{}", sent[1]);
    assert!(sent[1].contains("JOIN sys.sql_expression_dependencies AS d ON d.referenced_id = sq.object_id"));

    script.clear_log();
    let set = [identity("dbo", "customers", Some(3010)), sequence_object("tickets", "number", Some(41)), invoices];
    database.set_sequences(&set).await.unwrap();
    assert_eq!(
        script.statements(),
        ["SET XACT_ABORT ON; BEGIN TRANSACTION; DBCC CHECKIDENT ('[dbo].[customers]', RESEED, 3010); \
          ALTER SEQUENCE [dbo].[ticket_numbers] RESTART WITH 41; SELECT NEXT VALUE FOR [dbo].[ticket_numbers]; \
          ALTER SEQUENCE [sales].[invoice no] RESTART; COMMIT TRANSACTION;"],
        "restarted at the value, which one NEXT VALUE FOR hands out; a never-used one at its start"
    );

    // The server refuses (no ALTER permission on the sequence): the error names what was set.
    script.on(
        "ALTER SEQUENCE",
        Response::Fail(SqlError::server(
            15151,
            "Cannot alter the sequence 'ticket_numbers', because it does not exist or you do not have permission.",
        )),
    );
    let error = database.set_sequences(&[sequence_object("tickets", "number", Some(41))]).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("setting dbo.ticket_numbers (dbo.tickets.number) at 41 in"), "{message}");
    assert!(message.contains("Cannot alter the sequence 'ticket_numbers'"), "{message}");
}

#[tokio::test]
async fn sql_server_2016_has_no_last_used_value_so_sequences_are_read_by_their_current_value() {
    let (script, database) = scripted(MssqlOptions::default());
    script.on(IDENTITIES, Response::rows(vec![]));
    script.on(SEQUENCES, Response::Fail(SqlError::server(207, "Invalid column name 'last_used_value'.")));
    script.on(SEQUENCES, Response::rows(vec![sequence_row("tickets", "number", Some(100))]));
    let tables = [TableName::new(Some("dbo"), "tickets")];
    assert_eq!(database.sequences(&tables).await.unwrap(), [sequence_object("tickets", "number", Some(100))]);
    let sent = script.statements();
    assert!(sent[1].contains("CAST(sq.last_used_value AS bigint)"));
    assert!(sent[2].contains("CAST(sq.current_value AS bigint)"), "{}", sent[2]);
    assert_eq!(sent.len(), 3);

    // Any other error is the caller's.
    let (script, database) = scripted(MssqlOptions::default());
    script.on(IDENTITIES, Response::rows(vec![]));
    script.on(
        SEQUENCES,
        Response::Fail(SqlError::server(229, "The SELECT permission was denied on the object 'sequences'.")),
    );
    let error = database.sequences(&tables).await.unwrap_err();
    assert!(error.to_string().contains("reading the sequences of"), "{error}");
    assert_eq!(script.statements().len(), 2, "not retried with current_value");
}

/// A scripted target whose run store (the control tables) is present.
fn scripted_target() -> (Script, Arc<dmf_mssql::MssqlDatabase>) {
    let (script, database) = scripted(MssqlOptions::default());
    healthy_standalone(&script);
    control_tables(&script, true, true);
    (script, database)
}

#[tokio::test]
async fn a_sync_sets_the_target_sequence_to_the_source_value_and_its_rollback_sets_it_back() {
    let tables = [TableName::new(Some("dbo"), "tickets")];
    let pairs_of = [(tables[0].clone(), tables[0].clone())];
    // The source handed out 40 tickets; the target (used in testing) 12.
    let (source_script, source) = scripted(MssqlOptions::default());
    source_script.always(IDENTITIES, Response::rows(vec![]));
    source_script.always(SEQUENCES, Response::rows(vec![sequence_row("tickets", "number", Some(40))]));
    let (script, target) = scripted_target();
    script.always(IDENTITIES, Response::rows(vec![]));
    script.always(SEQUENCES, Response::rows(vec![sequence_row("tickets", "number", Some(12))]));
    let pairs =
        pair_sequences(&pairs_of, &source.sequences(&tables).await.unwrap(), &target.sequences(&tables).await.unwrap());
    assert_eq!(pairs.len(), 1);

    let store = target.run_store().await.unwrap();
    let config = Arc::new(EngineConfig::builder().build().unwrap());
    let ctx = MigrationContext::new(RunId(7), config, store);
    let record = RecordSequences::new(Arc::clone(&target), pairs.clone());
    let sync = SyncSequences::new(Arc::clone(&source), Arc::clone(&target), pairs, vec![]);

    // Before the first write: the target's value goes into the undo log.
    script.clear_log();
    record.execute(&ctx).await.unwrap();
    let log = script.log();
    let recorded = log.iter().find(|r| r.sql.contains("INSERT INTO [dmf].[undo_log]")).expect("recorded");
    let Some(Value::Json(before)) = recorded.params.last() else { panic!("{:?}", recorded.params) };
    let before: Sequence = serde_json::from_str(before).unwrap();
    assert_eq!(before, sequence_object("tickets", "number", Some(12)));

    // After the load: the target's sequence is restarted at the source's value and hands it out,
    // so its next is the source's next.
    script.clear_log();
    let result = sync.execute(&ctx).await.unwrap();
    assert_eq!((result.counts.read, result.counts.updated), (1, 1));
    let set: Vec<String> = script.statements().into_iter().filter(|s| s.contains("ALTER SEQUENCE")).collect();
    assert_eq!(
        set,
        ["SET XACT_ABORT ON; BEGIN TRANSACTION; ALTER SEQUENCE [dbo].[ticket_numbers] RESTART WITH 40; \
          SELECT NEXT VALUE FOR [dbo].[ticket_numbers]; COMMIT TRANSACTION;"]
    );

    // The rollback reads the recorded value back and sets the sequence to it.
    let before_json = serde_json::to_string(&before).unwrap();
    script.on("[before_image]", Response::rows(vec![vec![text(&before_json)]]));
    script.clear_log();
    let report = record.rollback(&ctx).await.unwrap();
    assert_eq!(report.restored, 1);
    let sent = script.statements();
    let read = sent.iter().position(|s| s.contains("[before_image]")).expect("read back");
    let set = sent.iter().position(|s| s.contains("ALTER SEQUENCE")).expect("set back");
    assert!(read < set);
    assert_eq!(
        sent[set],
        "SET XACT_ABORT ON; BEGIN TRANSACTION; ALTER SEQUENCE [dbo].[ticket_numbers] RESTART WITH 12; \
         SELECT NEXT VALUE FOR [dbo].[ticket_numbers]; COMMIT TRANSACTION;"
    );
    assert!(sent[set + 1..].iter().any(|s| s.contains("DELETE FROM [dmf].[undo_log]")), "forgotten: {sent:?}");
    assert_eq!(record.name(), &MigrationName::new(SEQUENCES_BEFORE));
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
