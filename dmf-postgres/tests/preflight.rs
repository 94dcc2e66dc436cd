//! Pre-flight of a target checks connectivity, the standby role, the read-only setting and
//! the control tables; a source only needs to answer. Emptying tables for a full sync refuses
//! (and empties nothing) when a table outside the sync references them.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use dmf_core::catalog::TableName;
use dmf_core::sync::{Database, DatabaseRole};
use dmf_core::{CheckOutcome, CheckStatus, ErrorKind};
use dmf_postgres::PgDatabase;

fn summary(outcomes: &[CheckOutcome]) -> Vec<(String, CheckStatus)> {
    outcomes.iter().map(|o| (o.check.clone(), o.status)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_must_accept_writes_and_have_or_allow_control_tables() {
    let db = common::TestDb::create("preflight").await;
    let database = db.database();

    let outcomes = database.preflight(DatabaseRole::Target).await;
    assert_eq!(
        summary(&outcomes),
        [
            ("target connectivity".into(), CheckStatus::Passed),
            ("target replica role".into(), CheckStatus::Passed),
            ("target read-only setting".into(), CheckStatus::Passed),
            ("target control tables".into(), CheckStatus::Passed),
        ]
    );
    assert!(outcomes[0].detail.contains("PostgreSQL 1"), "{outcomes:?}");
    assert!(outcomes[1].detail.ends_with("is a primary"), "{outcomes:?}");
    assert!(
        outcomes[3].detail.contains(
            "dmf.runs, dmf.migration_runs, dmf.checkpoints, dmf.rejects, dmf.undo_log, dmf.leases missing: they will be created"
        ),
        "{outcomes:?}"
    );

    database.create_control_tables().await.unwrap();
    let outcomes = database.preflight(DatabaseRole::Target).await;
    assert_eq!(
        outcomes[3].detail,
        "dmf.runs, dmf.migration_runs, dmf.checkpoints, dmf.rejects, dmf.undo_log, dmf.leases exist"
    );

    let source = database.preflight(DatabaseRole::Source).await;
    assert_eq!(
        summary(&source),
        [("source connectivity".into(), CheckStatus::Passed), ("source replica role".into(), CheckStatus::Passed)]
    );

    // A login that may not create anything cannot get the control tables of a new database.
    let role = format!("dmf_plain_{}", &db.name[db.name.len() - 10..]);
    let admin = db.client().await;
    admin.batch_execute(&format!("CREATE ROLE {role} LOGIN")).await.unwrap();
    let fresh = common::TestDb::create("preflight_fresh").await;
    let plain_url = fresh.url.replacen("://postgres@", &format!("://{role}@"), 1);
    assert_ne!(plain_url, fresh.url, "DMF_TEST_PG_URL is expected to log in as postgres");
    let plain = PgDatabase::lazy(&plain_url).unwrap().preflight(DatabaseRole::Target).await;
    assert_eq!(plain[3].status, CheckStatus::Failed, "{plain:?}");
    assert!(plain[3].detail.contains(&format!("user {role} lacks CREATE on the database")), "{plain:?}");
    drop(fresh);
    admin.batch_execute(&format!("DROP ROLE {role}")).await.unwrap();

    // A database whose sessions are read-only by default.
    admin
        .batch_execute(&format!("ALTER DATABASE \"{}\" SET default_transaction_read_only = on", db.name))
        .await
        .unwrap();
    let outcomes = database.preflight(DatabaseRole::Target).await;
    assert_eq!(outcomes[2].status, CheckStatus::Failed, "{outcomes:?}");
    assert!(outcomes[2].detail.starts_with("default_transaction_read_only is on for "), "{outcomes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emptying_tables_referenced_from_outside_the_sync_is_refused_and_empties_nothing() {
    let db = common::TestDb::create("truncate").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE parent (id int PRIMARY KEY);
             CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent (id));
             CREATE TABLE lonely (id int PRIMARY KEY);
             INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1, 1); INSERT INTO lonely VALUES (1);",
        )
        .await
        .unwrap();
    let database = db.database();
    let tables = vec![TableName::new(Some("public"), "lonely"), TableName::new(Some("public"), "parent")];
    let error = database.clear_tables(tables).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Fatal);
    let text = error.to_string();
    assert!(text.contains("cannot empty public.lonely, public.parent for a full sync"), "{text}");
    assert!(text.contains("Table \"child\" references \"parent\"."), "{text}");
    assert!(text.contains("never truncates with CASCADE"), "{text}");
    let rows: i64 = client
        .query_one("SELECT (SELECT count(*) FROM parent) + (SELECT count(*) FROM lonely)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 2, "nothing was emptied");

    let both = vec![TableName::new(Some("public"), "child"), TableName::new(Some("public"), "parent")];
    database.clear_tables(both).await.unwrap();
    let rows: i64 = client.query_one("SELECT count(*) FROM parent", &[]).await.unwrap().get(0);
    assert_eq!(rows, 0);
}
