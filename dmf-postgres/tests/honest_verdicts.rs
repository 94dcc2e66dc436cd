//! Honest verdicts on PostgreSQL: a table of the source that the target lacks is a named
//! difference; a rule predicate that writes (`setval`) fails as a write in a read-only
//! transaction and moves nothing; a row whose parent was rejected is rejected too, with that
//! reason, counted, never deferred.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use common::TestDb;
use dmf_core::quality::{Rule, check_rules, rule_checks, verify};
use dmf_core::sync::{CATCH_UP, Database, ForeignKeyChecks, SkipReason, SyncJob, SyncMode, SyncPlan};
use dmf_core::{EngineConfig, RejectLimit, RunRequest};
use dmf_postgres::PgDatabase;

const SCHEMA: &str = "
CREATE SCHEMA shop;
CREATE TABLE shop.customers (id bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE shop.orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES shop.customers (id));
CREATE TABLE shop.lines (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES shop.orders (id));";

const ROWS: &str = "
INSERT INTO shop.customers VALUES (1, 'Ann'), (2, 'Bartholomew');
INSERT INTO shop.orders VALUES (10, 1), (20, 2), (21, 2);
INSERT INTO shop.lines VALUES (100, 10), (200, 20);";

async fn plan(source: &PgDatabase, target: &PgDatabase) -> SyncPlan {
    let (source, target) = (source.read_catalog().await.unwrap(), target.read_catalog().await.unwrap());
    SyncPlan::build(&source, &target, None, SyncMode::Upsert).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_on_a_target_missing_a_table_names_it_as_a_difference() {
    let (source, target) = (TestDb::create("verdict_src").await, TestDb::create("verdict_dst").await);
    source.client().await.batch_execute(&format!("{SCHEMA}{ROWS} CREATE TABLE shop.audit (at text);")).await.unwrap();
    target
        .client()
        .await
        .batch_execute(
            "CREATE SCHEMA shop; CREATE TABLE shop.customers (id bigint PRIMARY KEY, name text NOT NULL);
             INSERT INTO shop.customers VALUES (1, 'Ann'), (2, 'Bartholomew'); CREATE TABLE shop.audit (at text);",
        )
        .await
        .unwrap();
    let (source, target) = (source.database(), target.database());
    let report = verify(source.as_ref(), target.as_ref(), &plan(&source, &target).await, &[], 10).await.unwrap();
    assert!(!report.is_equal() && !report.passed(), "{report}");
    assert_eq!(report.missing_tables().collect::<Vec<_>>(), ["shop.lines", "shop.orders"]);
    let no_key: Vec<&str> =
        report.not_compared.iter().filter(|n| n.reason == SkipReason::NoKey).map(|n| n.table.as_str()).collect();
    assert_eq!(no_key, ["shop.audit"]);
    let text = report.to_string();
    assert!(text.contains("shop.orders") && text.contains("DIFFERENT: the table is missing in the target"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_calling_setval_fails_as_a_write_in_a_read_only_transaction() {
    let db = TestDb::create("verdict_setval").await;
    let client = db.client().await;
    client.batch_execute(&format!("{SCHEMA}{ROWS} CREATE SEQUENCE shop.s; SELECT setval('shop.s', 7);")).await.unwrap();
    let database = db.database();
    let plan = plan(&database, &database).await;
    let rules: Vec<Rule> = vec!["shop.customers: check(setval('shop.s', 4242) > 0)".parse().unwrap()];
    let checks = rule_checks(&plan, &rules).unwrap();
    let error = check_rules(database.as_ref(), &checks, 10).await.unwrap_err();
    let text = error.chain();
    assert!(text.contains("checking `shop.customers: check(setval('shop.s', 4242) > 0)`"), "{text}");
    assert!(text.contains("cannot execute setval() in a read-only transaction"), "{text}");
    let last: i64 = client.query_one("SELECT last_value FROM shop.s", &[]).await.unwrap().get(0);
    assert_eq!(last, 7, "the sequence did not move");

    // A rule that only reads still runs, in the same kind of transaction.
    let rules: Vec<Rule> = vec!["shop.orders: check(customer_id = 1)".parse().unwrap()];
    let report = verify(database.as_ref(), database.as_ref(), &plan, &rules, 10).await.unwrap();
    let rule = report.rules.iter().find(|r| r.rule == "shop.orders: check(customer_id = 1)").unwrap();
    assert_eq!((rule.violations, rule.sample.clone()), (2, vec!["id=20".to_owned(), "id=21".to_owned()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_of_a_rejected_parent_are_rejected_with_that_reason_and_counted() {
    let (source, target) = (TestDb::create("verdict_parent_src").await, TestDb::create("verdict_parent_dst").await);
    source.client().await.batch_execute(&format!("{SCHEMA}{ROWS}")).await.unwrap();
    // The target refuses customer 2's long name.
    let strict = SCHEMA.replace("name text NOT NULL", "name varchar(5) NOT NULL");
    target.client().await.batch_execute(&strict).await.unwrap();
    let (source, target) = (source.database(), target.database());
    let engine = EngineConfig::builder().batch_size(50).reject_limit(RejectLimit::Count(10)).build().unwrap();
    let job = SyncJob::new(Arc::clone(&source), Arc::clone(&target), SyncMode::Upsert)
        .engine(engine)
        .jobs(1)
        .foreign_key_checks(ForeignKeyChecks::PerRow);
    let summary = job.run(RunRequest::all().force()).await.unwrap();
    assert!(summary.succeeded(), "{summary}");
    let counts = |name: &str| summary.migration(name).unwrap().counts;
    assert_eq!(counts("shop.customers").rejected, 1, "{summary}");
    assert_eq!((counts("shop.orders").rejected, counts("shop.orders").deferred), (2, 0), "{summary}");
    assert_eq!((counts("shop.lines").rejected, counts("shop.lines").deferred), (1, 0), "{summary}");
    assert_eq!(counts(CATCH_UP).deferred, 0, "{summary}");

    let store = target.run_store().await.unwrap();
    let orders = store.rejects(summary.run, Some(&"shop.orders".into()), 10, 0).await.unwrap();
    assert_eq!(orders.iter().map(|r| r.reject.key.as_str()).collect::<Vec<_>>(), ["id=20", "id=21"]);
    let reason = &orders[0].reject.reason;
    assert!(
        reason.contains("its parent row was rejected in this run, so it cannot load: shop.customers id=2 (foreign key"),
        "{reason}"
    );
    assert!(reason.contains("too long"), "the parent's own reason: {reason}");

    let mut report = verify(source.as_ref(), target.as_ref(), &job.plan().await.unwrap(), &[], 10).await.unwrap();
    report.explain(&summary);
    assert!(!report.is_equal() && report.passed_with_set_asides(), "{report}");
}
