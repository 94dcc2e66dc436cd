//! A batch whose COMMIT reached the server but whose answer was lost (the connection cut right
//! after, by a proxy the test drives) is not sent again: the run completes with the target
//! equal to the source, every row inserted once, and nothing rejected.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use dmf_core::RunStatus;
use dmf_core::sync::{Database, SyncMode};
use dmf_postgres::PgDatabase;
use dmf_testkit::TcpProxy;

/// `url` with its `host:port` replaced by `address`.
fn through(url: &str, address: std::net::SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let user = authority.rsplit_once('@').map(|(user, _)| format!("{user}@")).unwrap_or_default();
    format!("{scheme}://{user}{address}{tail}")
}

fn upstream(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    authority.rsplit_once('@').map_or(authority, |(_, host)| host).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_commit_answer_does_not_replay_the_batch() {
    let (source_db, target_db) = (common::TestDb::create("lost_src").await, common::TestDb::create("lost_dst").await);
    let schema = "CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL);";
    source_db
        .client()
        .await
        .batch_execute(&format!("{schema} INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 3000) g;"))
        .await
        .unwrap();
    target_db.client().await.batch_execute(schema).await.unwrap();

    let proxy = TcpProxy::start(&upstream(&target_db.url)).await.unwrap();
    let target = Arc::new(PgDatabase::lazy(&through(&target_db.url, proxy.address())).unwrap());
    // The first COMMIT on the connection that writes checkpoints (a loader's, after its first
    // batch): the server commits it, the client hears nothing and loses the connection.
    proxy.drop_answer_after(b"INSERT INTO \"dmf\".\"checkpoints\"", b"COMMIT\0");

    let summary = common::sync(&source_db.database(), &target, SyncMode::Full, false).await;
    assert_eq!(proxy.answers_dropped(), 1, "the fault happened");
    assert_eq!(summary.status, RunStatus::Completed, "{summary}");
    assert_eq!(common::counts(&summary, "public.items"), (3000, 3000, 0, 0, 0), "{summary}");
    assert_eq!(summary.migration("public.items").unwrap().counts.rejected, 0, "{summary}");
    let store = target.run_store().await.unwrap();
    assert!(store.rejects(summary.run, None, 10, 0).await.unwrap().is_empty(), "nothing in the quarantine");
    let print = "SELECT count(*), md5(string_agg(id || ':' || label, ',' ORDER BY id)) FROM items";
    let fingerprint = |row: tokio_postgres::Row| (row.get::<_, i64>(0), row.get::<_, String>(1));
    let target_print = fingerprint(target_db.client().await.query_one(print, &[]).await.unwrap());
    assert_eq!(target_print, fingerprint(source_db.client().await.query_one(print, &[]).await.unwrap()));
    assert_eq!(target_print.0, 3000);
}
