//! Rule checks on a real SQLite target whose foreign keys are declared but were not enforced
//! while rows were written: an orphan of a plain, a composite and a self-referencing foreign
//! key, a NULL where the source says NOT NULL, a duplicate where the source has a unique key,
//! and rows breaking the user's predicates are each named with table, rule and key, and rows
//! with a NULL in a foreign key are no orphans. What every adapter shows (a clean target
//! passes, a predicate the target cannot run names its rule) is dmf-testkit's sync
//! conformance suite, run in `tests/sync_conformance.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeMap;

use common::Dir;
use dmf_core::quality::{Rule, RuleKind, check_rules, rule_checks, verify};
use dmf_core::sync::{Database, SyncMode, SyncPlan};
use dmf_sqlite::SqliteDatabase;

/// What the source declares.
const STRICT: &str = "
CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT NOT NULL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers (id), amount INTEGER);
CREATE TABLE order_lines (
    order_id INTEGER NOT NULL REFERENCES orders (id),
    line INTEGER NOT NULL,
    qty INTEGER NOT NULL,
    PRIMARY KEY (order_id, line)
);
CREATE TABLE shipments (
    id INTEGER PRIMARY KEY,
    order_id INTEGER,
    line INTEGER,
    FOREIGN KEY (order_id, line) REFERENCES order_lines (order_id, line)
);
CREATE TABLE employees (id INTEGER PRIMARY KEY, name TEXT NOT NULL, manager_id INTEGER REFERENCES employees (id));
";

/// The target: the same foreign keys, but customers' email and name nullable and email not
/// unique.
const WEAK: &str = "
CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT, name TEXT);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers (id), amount INTEGER);
CREATE TABLE order_lines (
    order_id INTEGER NOT NULL REFERENCES orders (id),
    line INTEGER NOT NULL,
    qty INTEGER NOT NULL,
    PRIMARY KEY (order_id, line)
);
CREATE TABLE shipments (
    id INTEGER PRIMARY KEY,
    order_id INTEGER,
    line INTEGER,
    FOREIGN KEY (order_id, line) REFERENCES order_lines (order_id, line)
);
CREATE TABLE employees (id INTEGER PRIMARY KEY, name TEXT NOT NULL, manager_id INTEGER REFERENCES employees (id));
";

/// Valid rows, with NULLs in foreign keys (order 3 has no customer, shipment 3 no line).
const CLEAN: &str = "
INSERT INTO customers VALUES (1, 'a@example.com', 'Ann'), (2, 'b@example.com', 'Bob'), (3, 'c@example.com', 'Cy');
INSERT INTO orders VALUES (1, 1, 100), (2, 2, 50), (3, NULL, 10);
INSERT INTO order_lines VALUES (1, 1, 2), (1, 2, 1), (2, 1, 5);
INSERT INTO shipments VALUES (1, 1, 1), (2, 1, 2), (3, 2, NULL);
INSERT INTO employees VALUES (1, 'Boss', NULL), (2, 'Dev', 1);
";

/// Rows breaking every rule, written with foreign keys off.
const PLANTED: &str = "
PRAGMA foreign_keys = OFF;
INSERT INTO customers VALUES (4, 'a@example.com', NULL), (5, NULL, 'Eve'), (6, NULL, 'Fay');
INSERT INTO orders VALUES (4, 99, 20), (5, 2, -5), (6, 1, NULL);
INSERT INTO order_lines VALUES (2, 2, 0);
INSERT INTO shipments VALUES (4, 1, 9), (5, NULL, 9);
INSERT INTO employees VALUES (3, 'Ghost', 77);
";

fn database(dir: &Dir, name: &str, schema: &str, rows: &[&str]) -> SqliteDatabase {
    let db = SqliteDatabase::create(dir.file(name)).unwrap();
    db.execute_batch(schema).unwrap();
    for batch in rows {
        db.execute_batch(batch).unwrap();
    }
    db
}

fn rules() -> Vec<Rule> {
    vec!["orders: check(amount >= 0)".parse().unwrap(), "order_lines: check(qty > 0)".parse().unwrap()]
}

async fn plan(source: &SqliteDatabase, target: &SqliteDatabase) -> SyncPlan {
    SyncPlan::build(&source.read_catalog().await.unwrap(), &target.read_catalog().await.unwrap(), None, SyncMode::Full)
        .unwrap()
}

const FK_ORDERS: &str = "orders: FK orders_customer_id_fkey (customer_id) → customers (id)";
const FK_LINES: &str = "order_lines: FK order_lines_order_id_fkey (order_id) → orders (id)";
const FK_SHIPMENTS: &str = "shipments: FK shipments_order_id_line_fkey (order_id, line) → order_lines (order_id, line)";
const FK_EMPLOYEES: &str = "employees: FK employees_manager_id_fkey (manager_id) → employees (id)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_violation_is_named_with_its_table_rule_and_key() {
    let dir = Dir::new("rules");
    let source = database(&dir, "source.db", STRICT, &[CLEAN]);
    let target = database(&dir, "target.db", WEAK, &[CLEAN, PLANTED]);
    // The foreign keys are real: with enforcement on, an orphan is refused.
    assert!(target.execute_batch("INSERT INTO orders VALUES (7, 98, 1)").is_err());

    let plan = plan(&source, &target).await;
    let checks = rule_checks(&plan, &rules()).unwrap();
    let reports = check_rules(&target, &checks, 10).await.unwrap();
    let found: BTreeMap<&str, (u64, Vec<&str>)> = reports
        .iter()
        .map(|r| (r.rule.as_str(), (r.violations, r.sample.iter().map(String::as_str).collect())))
        .collect();
    let expected: BTreeMap<&str, (u64, Vec<&str>)> = [
        ("customers: not null(email)", (2, vec!["id=5", "id=6"])),
        ("customers: not null(name)", (1, vec!["id=4"])),
        // Two NULL emails are no duplicates; the two rows of the one duplicate both count.
        ("customers: unique(email)", (2, vec!["id=1", "id=4"])),
        // Order 3 has no customer: no orphan.
        (FK_ORDERS, (1, vec!["id=4"])),
        (FK_LINES, (0, vec![])),
        // Order 1 has lines, but not line 9; shipment 5 has a NULL order: no orphan.
        (FK_SHIPMENTS, (1, vec!["id=4"])),
        (FK_EMPLOYEES, (1, vec!["id=3"])),
        // A NULL amount is not TRUE: it breaks the predicate.
        ("orders: check(amount >= 0)", (2, vec!["id=5", "id=6"])),
        ("order_lines: check(qty > 0)", (1, vec!["(order_id=2, line=2)"])),
    ]
    .into_iter()
    .collect();
    assert_eq!(found, expected);
    let shipments = reports.iter().find(|r| r.rule == FK_SHIPMENTS).unwrap();
    assert_eq!((shipments.table.as_str(), shipments.kind), ("shipments", RuleKind::ForeignKey));

    // The sample is bounded and in key order; the count is not.
    let one = check_rules(&target, &checks, 1).await.unwrap();
    let nulls = one.iter().find(|r| r.rule == "customers: not null(email)").unwrap();
    assert_eq!((nulls.violations, nulls.sample.clone()), (2, vec!["id=5".to_owned()]));

    // The whole report: content differences and rule violations.
    let report = verify(&source, &target, &plan, &rules(), 10).await.unwrap();
    assert!(!report.passed());
    assert_eq!(report.rules, reports);
    let text = report.to_string();
    assert!(text.contains("shipments: FK shipments_order_id_line_fkey (order_id, line)"), "{text}");
    assert!(text.contains("VIOLATED\n    (order_id=2, line=2)\n"), "{text}");
}
