//! Honest verdicts on SQLite: a table of the source (or of the selection) that the target lacks
//! is a named difference, tables left out are listed with the reason; rule predicates run where
//! they cannot write (`PRAGMA query_only`) and cannot end their statement; a row whose parent
//! was rejected is rejected too, with that reason, counted, never deferred.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use common::{Dir, connect};
use dmf_core::catalog::TableName;
use dmf_core::control::SqlConnector;
use dmf_core::quality::{Rule, verify};
use dmf_core::sync::{CATCH_UP, Database, ForeignKeyChecks, SkipReason, SyncJob, SyncMode, SyncPlan};
use dmf_core::{EngineConfig, RejectLimit, RunRequest};
use dmf_sqlite::{SqliteConnector, SqliteDatabase};

const SOURCE: &str = "
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers (id), total INTEGER);
CREATE TABLE audit_log (at TEXT, what TEXT);
INSERT INTO customers VALUES (1, 'Ann'), (2, 'Bob');
INSERT INTO orders VALUES (10, 1, 5), (11, 2, 7);
INSERT INTO audit_log VALUES ('today', 'nothing');";

async fn plan(source: &SqliteDatabase, target: &SqliteDatabase, selection: Option<&[TableName]>) -> SyncPlan {
    let (source, target) = (source.read_catalog().await.unwrap(), target.read_catalog().await.unwrap());
    SyncPlan::build(&source, &target, selection, SyncMode::Upsert).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_a_table_the_target_lacks_and_lists_the_tables_it_did_not_compare() {
    let dir = Dir::new("verdict-missing");
    let (source_path, target_path) = (dir.file("source.db"), dir.file("target.db"));
    connect(&source_path).execute_batch(SOURCE).unwrap();
    // The target has the customers (equal) and the log, but no orders table.
    let target = connect(&target_path);
    target.execute_batch("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL);").unwrap();
    target.execute_batch("INSERT INTO customers VALUES (1, 'Ann'), (2, 'Bob');").unwrap();
    target.execute_batch("CREATE TABLE audit_log (at TEXT, what TEXT);").unwrap();
    let source = SqliteDatabase::open(&source_path).unwrap();
    let target = SqliteDatabase::open(&target_path).unwrap();

    let everything = plan(&source, &target, None).await;
    let report = verify(&source, &target, &everything, &[], 10).await.unwrap();
    assert!(report.tables.iter().all(|t| t.is_equal()), "customers are equal\n{report}");
    assert!(!report.is_equal() && !report.passed() && !report.passed_with_set_asides(), "{report}");
    assert_eq!(report.missing_tables().collect::<Vec<_>>(), ["orders"]);
    let text = report.to_string();
    assert!(text.contains("orders") && text.contains("DIFFERENT: the table is missing in the target"), "{text}");
    assert!(text.contains("not compared (no primary key and no NOT NULL unique key): audit_log"), "{text}");

    // Named in the selection: the same difference; the tables not named are listed.
    let named = [TableName::parse("customers"), TableName::parse("orders")];
    let report = verify(&source, &target, &plan(&source, &target, Some(&named)).await, &[], 10).await.unwrap();
    assert_eq!(report.missing_tables().collect::<Vec<_>>(), ["orders"]);
    assert!(!report.passed());
    let customers = [TableName::parse("customers")];
    let report = verify(&source, &target, &plan(&source, &target, Some(&customers)).await, &[], 10).await.unwrap();
    assert!(report.passed(), "only customers was asked for, and it is equal\n{report}");
    let left_out: Vec<(&str, SkipReason)> = report.not_compared.iter().map(|n| (n.table.as_str(), n.reason)).collect();
    assert_eq!(left_out, [("audit_log", SkipReason::NotSelected), ("orders", SkipReason::NotSelected)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_predicates_run_in_a_transaction_that_refuses_writes_and_cannot_end_their_statement() {
    let dir = Dir::new("verdict-read-only");
    let path = dir.file("db.db");
    connect(&path).execute_batch(SOURCE).unwrap();
    let connector = SqliteConnector::new(path.clone());

    // The rule checks' transaction: any write in it fails.
    let dialect = connector.dialect();
    let mut session = connector.session().await.unwrap();
    session.batch(dialect.begin_read_only()).await.unwrap();
    let error = session.execute("DELETE FROM orders", &[]).await.unwrap_err();
    assert!(error.chain().contains("readonly database"), "{}", error.chain());
    session.batch(dialect.end_read_only()).await.unwrap();
    // Put back: the same session writes again (and nothing was deleted).
    assert_eq!(session.execute("UPDATE orders SET total = total WHERE id = 10", &[]).await.unwrap(), 1);

    // A predicate that would end its statement and write is refused before it runs.
    let smuggled = "orders: check(1 = 1) THEN 1 ELSE 0 END = 0; DELETE FROM orders; SELECT (1)";
    let error = smuggled.parse::<Rule>().unwrap_err().to_string();
    assert!(error.contains("the predicate must be one SQL expression"), "{error}");

    // A legitimate predicate runs, in that transaction.
    let db = SqliteDatabase::open(&path).unwrap();
    let plan = plan(&db, &db, None).await;
    let rules: Vec<Rule> = vec!["orders: check(total > 5)".parse().unwrap()];
    let report = verify(&db, &db, &plan, &rules, 10).await.unwrap();
    let rule = report.rules.iter().find(|r| r.rule == "orders: check(total > 5)").unwrap();
    assert_eq!((rule.violations, rule.sample.clone()), (1, vec!["id=10".to_owned()]));
    let count: i64 = connect(&path).query_row("SELECT count(*) FROM orders", [], |row| row.get(0)).unwrap();
    assert_eq!(count, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_of_a_rejected_parent_are_rejected_with_that_reason_and_counted() {
    for (mode, checks) in [(SyncMode::Upsert, ForeignKeyChecks::Auto), (SyncMode::Full, ForeignKeyChecks::PerRow)] {
        let dir = Dir::new("verdict-orphans");
        let (source_path, target_path) = (dir.file("source.db"), dir.file("target.db"));
        connect(&source_path)
            .execute_batch(
                "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
                 CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers (id));
                 CREATE TABLE lines (id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL REFERENCES orders (id));
                 INSERT INTO customers VALUES (1, 'Ann'), (2, 'Bartholomew');
                 INSERT INTO orders VALUES (10, 1), (20, 2), (21, 2);
                 INSERT INTO lines VALUES (100, 10), (200, 20);",
            )
            .unwrap();
        // The target refuses customer 2's long name: it is rejected, and so must its orders be,
        // and the line of one of them.
        connect(&target_path)
            .execute_batch(
                "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL CHECK (length(name) <= 5));
                 CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers (id));
                 CREATE TABLE lines (id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL REFERENCES orders (id));",
            )
            .unwrap();
        let source = Arc::new(SqliteDatabase::open(&source_path).unwrap());
        let target = Arc::new(SqliteDatabase::open(&target_path).unwrap());
        let engine = EngineConfig::builder().batch_size(50).reject_limit(RejectLimit::Count(10)).build().unwrap();
        let job = SyncJob::new(Arc::clone(&source), Arc::clone(&target), mode.clone())
            .engine(engine)
            .jobs(1)
            .foreign_key_checks(checks);
        let summary = job.run(RunRequest::all().force()).await.unwrap();
        assert!(summary.succeeded(), "{mode}: within the reject limit\n{summary}");
        let counts = |name: &str| summary.migration(name).unwrap().counts;
        assert_eq!(counts("customers").rejected, 1, "{mode}\n{summary}");
        assert_eq!((counts("orders").rejected, counts("orders").deferred), (2, 0), "{mode}\n{summary}");
        assert_eq!((counts("lines").rejected, counts("lines").deferred), (1, 0), "{mode}\n{summary}");
        assert_eq!(counts(CATCH_UP).deferred, 0, "nothing waits for a parent that will never come\n{summary}");

        let store = target.run_store().await.unwrap();
        let orders = store.rejects(summary.run, Some(&"orders".into()), 10, 0).await.unwrap();
        let keys: Vec<&str> = orders.iter().map(|r| r.reject.key.as_str()).collect();
        assert_eq!(keys, ["id=20", "id=21"], "{mode}");
        let reason = &orders[0].reject.reason;
        assert!(
            reason.contains("its parent row was rejected in this run, so it cannot load: customers id=2 (foreign key"),
            "{mode}: {reason}"
        );
        assert!(reason.contains("CHECK constraint failed"), "{mode}: the parent's own reason: {reason}");
        assert!(!reason.contains("deferred"), "{mode}: {reason}");
        let lines = store.rejects(summary.run, Some(&"lines".into()), 10, 0).await.unwrap();
        assert_eq!(lines.len(), 1);
        assert!(lines[0].reject.reason.contains("orders id=20"), "{mode}: {}", lines[0].reject.reason);

        // The verification sees the missing rows and the run's rejects explain them.
        let plan = job.plan().await.unwrap();
        let mut report = verify(source.as_ref(), target.as_ref(), &plan, &[], 10).await.unwrap();
        assert!(!report.is_equal());
        report.explain(&summary);
        assert!(report.passed_with_set_asides(), "{mode}\n{report}");
    }
}
