//! The fast path of a full sync on PostgreSQL: loading sessions set
//! `session_replication_role = replica` (no per-row foreign-key checks, no table changed) and
//! the sync proves every foreign key with one set-based query each. Exact copy; the per-row path
//! for a role without the privilege and for tables with user INSERT triggers (not UPDATE or
//! DELETE ones, which an insert-only load never fires), with the reason in pre-flight; an orphan fails the run naming the foreign key and key; rollback restores.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use common::*;
use dmf_core::sync::{CATCH_UP, FK_CHECK, ForeignKeyChecks, SyncJob, SyncMode};
use dmf_core::{EngineConfig, RunRequest, RunSummary};
use dmf_postgres::PgDatabase;

fn job(source: &TestDb, target: Arc<PgDatabase>) -> SyncJob<PgDatabase, PgDatabase> {
    SyncJob::new(source.database(), target, SyncMode::Full)
        .engine(EngineConfig::builder().batch_size(400).build().unwrap())
        .jobs(2)
}

fn fk_line(summary: &RunSummary) -> String {
    summary.preflight.outcomes.iter().find(|o| o.check == FK_CHECK).map(|o| o.detail.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fast_path_copies_exactly_and_the_per_row_path_is_chosen_with_its_reason() {
    let (source, target) = rich_pair("fast_load").await;
    let expected = fingerprints(&source.client().await).await;

    // As the superuser: the fast path.
    let summary = job(&source, target.database()).run(RunRequest::all().force()).await.unwrap();
    assert!(summary.succeeded(), "{summary}");
    assert!(
        fk_line(&summary).starts_with("deferred to a set-based proof (user postgres is a superuser"),
        "{}",
        fk_line(&summary)
    );
    assert_eq!(fingerprints(&target.client().await).await, expected, "the fast path copies exactly");

    // A role that may not set session_replication_role: per row, and says why.
    let role = format!("dmf_plain_{}", &target.name[target.name.len() - 10..]);
    let admin = target.client().await;
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN;
             GRANT CREATE ON DATABASE \"{db}\" TO {role};
             GRANT USAGE ON SCHEMA shop, public, dmf TO {role};
             GRANT ALL ON ALL TABLES IN SCHEMA shop, public, dmf TO {role};
             GRANT ALL ON ALL SEQUENCES IN SCHEMA shop, dmf TO {role};",
            db = target.name
        ))
        .await
        .unwrap();
    let plain_url = target.url.replacen("postgres@", &format!("{role}@"), 1);
    assert_ne!(plain_url, target.url, "the test URL names the postgres user");
    let plain = Arc::new(PgDatabase::lazy(&plain_url).unwrap());
    let summary = job(&source, plain).run(RunRequest::all().force()).await.unwrap();
    assert!(summary.succeeded(), "{summary}");
    assert!(
        fk_line(&summary).starts_with(&format!("per row, because user {role} may not set session_replication_role")),
        "{}",
        fk_line(&summary)
    );
    assert_eq!(fingerprints(&target.client().await).await, expected);

    // A user trigger keeps its table on the per-row path, unless the user accepts silencing it.
    admin
        .batch_execute(
            "CREATE FUNCTION shop.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
             CREATE TRIGGER audit_lines BEFORE INSERT ON shop.order_lines FOR EACH ROW EXECUTE FUNCTION shop.touch();",
        )
        .await
        .unwrap();
    let summary = job(&source, target.database()).run(RunRequest::all().force()).await.unwrap();
    assert!(summary.succeeded(), "{summary}");
    assert!(
        fk_line(&summary).contains("; shop.order_lines per row, because its triggers audit_lines would not fire"),
        "{}",
        fk_line(&summary)
    );
    let summary =
        job(&source, target.database()).skip_target_triggers(true).run(RunRequest::all().force()).await.unwrap();
    assert!(
        fk_line(&summary).contains("these triggers will not fire: shop.order_lines (audit_lines)"),
        "{}",
        fk_line(&summary)
    );
    assert_eq!(fingerprints(&target.client().await).await, expected);

    let summary = job(&source, target.database())
        .foreign_key_checks(ForeignKeyChecks::PerRow)
        .run(RunRequest::all().force())
        .await
        .unwrap();
    assert_eq!(fk_line(&summary), "per row, because --fk-checks per-row was asked for");

    // A trigger that fires only on UPDATE or DELETE, which an insert-only load never fires,
    // keeps no table per row.
    admin
        .batch_execute(
            "DROP TRIGGER audit_lines ON shop.order_lines;
             CREATE TRIGGER stamp_lines BEFORE UPDATE OR DELETE ON shop.order_lines
                 FOR EACH ROW EXECUTE FUNCTION shop.touch();",
        )
        .await
        .unwrap();
    let summary = job(&source, target.database()).run(RunRequest::all().force()).await.unwrap();
    assert!(summary.succeeded(), "{summary}");
    assert!(!fk_line(&summary).contains("per row"), "{}", fk_line(&summary));
    assert_eq!(fingerprints(&target.client().await).await, expected);
    admin.batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_fails_the_fast_path_naming_the_foreign_key_and_rollback_restores_the_target() {
    let (source, target) = rich_pair("fast_orphan").await;
    assert!(job(&source, target.database()).run(RunRequest::all().force()).await.unwrap().succeeded());
    // The source loses its foreign key and gains an orphan line.
    source
        .client()
        .await
        .batch_execute(
            "ALTER TABLE shop.order_lines DROP CONSTRAINT order_lines_order_id_fkey;
             INSERT INTO shop.order_lines VALUES (987654, 1, 'GHOST', 1, 1.00, now());
             UPDATE shop.customers SET name = name || '!' WHERE id <= 3;",
        )
        .await
        .unwrap();
    let before = fingerprints(&target.client().await).await;

    let dir = std::env::temp_dir().join(format!("dmf-fast-orphan-{}", std::process::id()));
    let job = job(&source, target.database()).backup(dmf_postgres::PgBackup::new(&target.url, &dir).unwrap());
    let summary = job.run(RunRequest::all().force()).await.unwrap();
    assert!(!summary.succeeded(), "an orphan never passes\n{summary}");
    let error = summary.migration(CATCH_UP).unwrap().error.clone().unwrap();
    assert!(error.contains("foreign key `order_lines_order_id_fkey` of shop.order_lines: 1 row(s)"), "{error}");
    assert!(error.contains("order_id=987654"), "{error}");
    assert_ne!(fingerprints(&target.client().await).await, before, "the failed run wrote");

    job.rollback(None, false).await.unwrap();
    assert_eq!(fingerprints(&target.client().await).await, before, "rollback restores the target exactly");
    let _ = std::fs::remove_dir_all(dir);
}
