//! A table without a primary key (or NOT NULL unique key) among keyed ones refuses no run: it
//! is left out of every mode, named in a pre-flight warning, whether or not `--tables` names it;
//! the keyed tables sync; verification lists it as not compared and never calls it equal. One
//! exception, PostgreSQL's: a `full` sync cannot empty a table that the keyless one references
//! (`TRUNCATE` refuses, and DMF never cascades), so that run fails before writing, naming it.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use dmf_core::catalog::TableName;
use dmf_core::quality::verify;
use dmf_core::sync::{SkipReason, SyncJob, SyncMode};
use dmf_core::{CheckStatus, EngineConfig, RunRequest, RunStatus};

const SCHEMA: &str = "
CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers (id), total numeric(10,2));
-- No primary key, a nullable unique column: no row key.
CREATE TABLE audit_log (at timestamptz NOT NULL, customer_id bigint, event text, ref text UNIQUE);";

const DATA: &str = "
INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 40) g;
INSERT INTO orders SELECT g, 1 + g % 40, g * 1.5 FROM generate_series(1, 90) g;
INSERT INTO audit_log SELECT timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute', 1 + g % 40, 'login', NULL
    FROM generate_series(1, 25) g;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_without_a_key_is_left_out_with_a_warning_and_never_called_equal() {
    let (source_db, target_db) =
        (common::TestDb::create("keyless_src").await, common::TestDb::create("keyless_dst").await);
    let (source_client, target_client) = (source_db.client().await, target_db.client().await);
    source_client.batch_execute(SCHEMA).await.unwrap();
    source_client.batch_execute(DATA).await.unwrap();
    target_client.batch_execute(SCHEMA).await.unwrap();
    target_client
        .batch_execute(
            "INSERT INTO customers VALUES (1, 'target'); INSERT INTO audit_log VALUES (now(), 1, 'own', 'x')",
        )
        .await
        .unwrap();
    let (source, target) = (source_db.database(), target_db.database());
    let job = |mode: SyncMode, tables: &[&str]| {
        let mut job = SyncJob::new(source.clone(), target.clone(), mode)
            .engine(EngineConfig::builder().batch_size(16).build().unwrap())
            .undo(true);
        if !tables.is_empty() {
            job = job.tables(tables.iter().map(|t| TableName::parse(t)).collect());
        }
        job
    };
    let audit_rows =
        || async { target_client.query_one("SELECT count(*) FROM audit_log", &[]).await.unwrap().get::<_, i64>(0) };

    for (mode, tables) in [
        (SyncMode::Full, &[][..]),
        (SyncMode::Upsert, &[][..]),
        (SyncMode::Diff, &["public.customers", "public.orders", "public.audit_log"][..]),
        (SyncMode::Incremental { column: "id".into(), propagate_deletes: true }, &[][..]),
        (SyncMode::Full, &["public.audit_log", "public.customers", "public.orders"][..]),
    ] {
        let summary = job(mode.clone(), tables).run(RunRequest::all().force()).await.unwrap();
        assert_eq!(summary.status, RunStatus::Completed, "{mode:?} {tables:?}\n{summary}");
        let schema = summary.preflight.outcomes.iter().find(|o| o.check == "schema consistency").unwrap();
        assert_eq!(schema.status, CheckStatus::Warning, "{schema:?}");
        assert!(
            schema.detail.contains("not synced, for want of a primary key or NOT NULL unique key: public.audit_log"),
            "{schema:?}"
        );
        assert!(summary.migration("public.audit_log").is_none(), "{summary}");
        assert!(summary.migration("public.orders").is_some(), "{summary}");
        assert_eq!(audit_rows().await, 1, "{mode:?}: the keyless table was neither emptied nor written");
    }
    assert_eq!(
        common::counts(&job(SyncMode::Upsert, &[]).run(RunRequest::all().force()).await.unwrap(), "public.orders").3,
        90
    );

    // Verification: the keyed tables equal, the keyless one named as not compared; the verdict
    // does not say the target equals the source without naming it.
    let plan = job(SyncMode::Upsert, &[]).plan().await.unwrap();
    let report = verify(source.as_ref(), target.as_ref(), &plan, &[], 5).await.unwrap();
    assert!(report.tables.iter().all(|t| t.is_equal()), "{report}");
    assert_eq!(report.not_compared.len(), 1, "{report}");
    assert_eq!(report.not_compared[0].reason, SkipReason::NoKey);
    assert_eq!(report.unverified_tables().collect::<Vec<_>>(), ["public.audit_log"]);
    assert!(report.to_string().contains("not compared (no primary key and no NOT NULL unique key): public.audit_log"));
    assert_eq!(
        report.verdict(),
        "the target equals the source in every table compared and passes every rule; NOT VERIFIED (no primary key and \
         no NOT NULL unique key): public.audit_log (exclude them from the selection to leave them out on purpose)"
    );
    assert!(!report.passed(), "a table that could not be compared is no pass");
    // Left out on purpose (not selected), it is no longer a reason to fail.
    let plan = job(SyncMode::Upsert, &["public.customers", "public.orders"]).plan().await.unwrap();
    let report = verify(source.as_ref(), target.as_ref(), &plan, &[], 5).await.unwrap();
    assert!(report.passed(), "{report}");

    // When the keyless table references a synced one, `full` cannot empty that one: refused by
    // PostgreSQL's TRUNCATE, named, nothing written; the other modes still sync.
    target_client
        .batch_execute("ALTER TABLE audit_log ADD FOREIGN KEY (customer_id) REFERENCES customers (id)")
        .await
        .unwrap();
    let refused = job(SyncMode::Full, &[]).run(RunRequest::all().force()).await.unwrap();
    assert_eq!(refused.status, RunStatus::Failed, "{refused}");
    let error = refused.error.clone().unwrap_or_default();
    assert!(error.contains("a table outside the sync references them") && error.contains("audit_log"), "{refused}");
    assert_eq!(audit_rows().await, 1);
    let customers: i64 = target_client.query_one("SELECT count(*) FROM customers", &[]).await.unwrap().get(0);
    assert_eq!(customers, 40, "nothing emptied");
    let upsert = job(SyncMode::Upsert, &[]).run(RunRequest::all().force()).await.unwrap();
    assert_eq!(upsert.status, RunStatus::Completed, "{upsert}");
}
