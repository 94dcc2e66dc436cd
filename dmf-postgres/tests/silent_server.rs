//! Bounded waits: a target that accepts TCP and never answers, and one that freezes in the
//! middle of a run, end the run within the configured timeouts plus retries (never a hang),
//! and the next run resumes to an exact copy. The proxy is driven by the test; nothing sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use dmf_core::sync::{SyncJob, SyncMode};
use dmf_core::{EngineConfig, RetryPolicy, RunRequest, RunStatus};
use dmf_postgres::PgDatabase;
use dmf_testkit::TcpProxy;

/// Only turns a hang into a failure; no assertion depends on it.
const HANG: Duration = Duration::from_secs(120);
const BOUND: Duration = Duration::from_secs(2);

/// `url` through `proxy`, with a 2 s connect timeout.
fn through(url: &str, proxy: &TcpProxy) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let user = authority.rsplit_once('@').map(|(user, _)| format!("{user}@")).unwrap_or_default();
    let separator = if tail.contains('?') { '&' } else { '?' };
    format!("{scheme}://{user}{}{tail}{separator}connect_timeout=2", proxy.address())
}

fn upstream(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    authority.rsplit_once('@').map_or(authority, |(_, host)| host).to_owned()
}

async fn pair(label: &str) -> (common::TestDb, common::TestDb) {
    let (source, target) =
        (common::TestDb::create(&format!("{label}_src")).await, common::TestDb::create(&format!("{label}_dst")).await);
    let schema = "CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL);";
    source
        .client()
        .await
        .batch_execute(&format!("{schema} INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 3000) g;"))
        .await
        .unwrap();
    target.client().await.batch_execute(schema).await.unwrap();
    (source, target)
}

fn job(source: &common::TestDb, target: Arc<PgDatabase>) -> SyncJob<PgDatabase, PgDatabase> {
    let retry = RetryPolicy {
        max_attempts: 2,
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(20),
        factor: 2.0,
        jitter: false,
    };
    let engine = EngineConfig::builder().batch_size(500).retry(retry).write_timeout(BOUND).build().unwrap();
    SyncJob::new(source.database(), target, SyncMode::Full).engine(engine)
}

async fn fingerprint(db: &common::TestDb) -> (i64, String) {
    let row = db
        .client()
        .await
        .query_one("SELECT count(*), md5(string_agg(id || ':' || label, ',' ORDER BY id)) FROM items", &[])
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_target_that_accepts_tcp_and_never_answers_fails_within_the_connect_timeout() {
    let (source_db, target_db) = pair("silent").await;
    let proxy = TcpProxy::start(&upstream(&target_db.url)).await.unwrap();
    proxy.freeze();
    let target = Arc::new(PgDatabase::lazy(&through(&target_db.url, &proxy)).unwrap().call_timeout(BOUND));

    let failed = tokio::time::timeout(HANG, job(&source_db, Arc::clone(&target)).run(RunRequest::all()))
        .await
        .expect("the run must end, not hang")
        .expect_err("a silent target cannot be synced");
    let message = failed.to_string();
    assert!(message.contains("no answer from PostgreSQL at") && message.contains("connect timeout"), "{message}");
    assert!(failed.is_transient(), "a silent server may answer later: {message}");

    proxy.thaw();
    let summary = job(&source_db, target).run(RunRequest::all()).await.unwrap();
    assert_eq!(summary.status, RunStatus::Completed, "{summary}");
    assert_eq!(fingerprint(&target_db).await, fingerprint(&source_db).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_target_that_freezes_mid_run_stops_the_run_and_the_next_run_resumes_exactly() {
    let (source_db, target_db) = pair("frozen").await;
    let proxy = TcpProxy::start(&upstream(&target_db.url)).await.unwrap();
    let target = Arc::new(PgDatabase::lazy(&through(&target_db.url, &proxy)).unwrap().call_timeout(BOUND));
    // The first batch's COMMIT reaches the server; its answer, and everything after, does not.
    proxy.freeze_after(b"INSERT INTO \"dmf\".\"checkpoints\"", b"COMMIT\0");

    let outcome = tokio::time::timeout(HANG, job(&source_db, Arc::clone(&target)).run(RunRequest::all())).await.expect(
        "the run must end within the write, call and connect timeouts plus retries, not hang on the frozen target",
    );
    // Either the run ended failed (recorded) or, when even its record could not be written,
    // with an error; both name the silence.
    let said = match outcome {
        Ok(summary) => {
            assert_eq!(summary.status, RunStatus::Failed, "{summary}");
            summary.error.unwrap_or_default()
        }
        Err(error) => error.chain(),
    };
    assert!(said.contains("no answer"), "{said}");

    proxy.thaw();
    let summary = tokio::time::timeout(HANG, job(&source_db, target).run(RunRequest::all())).await.unwrap().unwrap();
    assert_eq!(summary.status, RunStatus::Completed, "{summary}");
    let items = summary.migration("public.items").unwrap();
    assert!(items.resumed, "resumed from the checkpoint: {summary}");
    assert_eq!(items.counts.rejected, 0, "{summary}");
    assert_eq!(fingerprint(&target_db).await, fingerprint(&source_db).await, "every row exactly once");
}
